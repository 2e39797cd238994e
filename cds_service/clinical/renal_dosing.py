"""Renal dosing: the label's dose band for a drug, phase and creatinine clearance.

Both the order-safety checks and the treatment guidance compute every dose through `renal_dose`, so
one table (clinical/dose_tables.py) serves both.  A dose is computed only from current, plausible
inputs (facts.renal and facts.dosing_weight, which the facts layer leaves None when it cannot trust
them); otherwise the answer is `CannotDose` with the reasons in words.  Adult bands only.

letermovir and maribavir have no renal band; for them `renal_dose` returns the label's fixed dose,
adjusted for co-medications the label names (cyclosporine; maribavir's inducers).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from cds_service.clinical import dose_tables as T
from cds_service.clinical.drugs import co_medications, display_name, in_group
from cds_service.clinical.findings import Citation, DoseProposal, discontinuation
from cds_service.clinical.inputs import above, current, dosing_weight_line, fmt, recorded_as, show
from cds_service.clinical.sources import SOURCES
from cds_service.facts.model import RENAL_REPLACEMENT_LABELS, ClinicalFacts, DosingWeight, Measurement, RenalFunction
from cds_service.facts.quality import UNUSABLE_KINDS
from cds_service.facts.renal import CREATININE_DIGITS
from cds_service.frozen import frozen
from cds_service.policy import Policy

Phase = Literal["induction", "maintenance"]
# Foscarnet regimens (label): induction "60q8h" or "90q12h"; maintenance "90/day" or "120/day".
FoscarnetRegimen = Literal["60q8h", "90q12h", "90/day", "120/day"]


@frozen
class RenalDose:
    """The band's dose for this patient, with everything a card must show."""

    drug: str  # "ganciclovir", "valganciclovir", "foscarnet"
    phase: Phase
    regimen: str | None  # foscarnet regimen; None otherwise
    band: str  # "CrCl 25-49 mL/min", "CrCl > 1.0-1.4 mL/min/kg"
    route: Literal["iv", "oral"]
    dose_mg: float | None  # absolute dose per administration, rounded (None if not recommended)
    mg_per_kg: float | None  # band's mg/kg (IV drugs)
    interval_hours: float | None  # None for "3 times weekly after dialysis" style schedules
    schedule: str  # "every 12 h", "every 2 days", "twice weekly", "3 times weekly after dialysis"
    unit_count: float | None = None  # valganciclovir: tablets per dose
    unit_strength_mg: float | None = None  # valganciclovir: 450
    not_recommended: str | None = None  # why the label says not to use (e.g. CrCl < 10 tablets)
    calculation: str = ""  # "2.5 mg/kg x 70 kg = 175 mg (rounded to 175 mg)"
    inputs: tuple[str, ...] = ()  # lines: "Weight 70 kg (2026-11-20)", "Creatinine ...", "CrCl ..."
    source: Citation | None = None
    # Added by the order-safety helper (compatible): doses per week, also for schedules without a
    # fixed interval (3 for "3 times weekly after dialysis"), so an order's frequency can be compared.
    doses_per_week: float | None = None


@frozen
class CannotDose:
    """A renal dose cannot be computed: the missing/stale/implausible inputs, in words."""

    drug: str
    reasons: tuple[str, ...]  # e.g. ("no creatinine in the last 7 days", "weight missing")
    missing: tuple[str, ...] = ()  # items to order/record: "creatinine", "weight"
    # Dialysis on record beside a clearance above the lowest band (one of them is wrong): the dose on each
    # reading, (on dialysis, off dialysis), so that an order above both can be said to be too high either way.
    readings: tuple[RenalDose | CannotDose, ...] = ()
    # The band is known but not the weight its mg dose needs: its (mg/kg, doses a week), against which an order
    # written per kg can still be compared.
    band_per_kg: tuple[float, float] | None = None


# Quality items that explain a missing creatinine clearance or dosing weight.
_RENAL_ITEMS = ("creatinine", "crcl_reported", "weight", "height", "age", "sex")
_WEIGHT_ITEMS = ("weight", "height")
ADULT_AGE = 18


def renal_dose(
    drug: str,
    phase: Phase,
    facts: ClinicalFacts,
    policy: Policy,
    regimen: FoscarnetRegimen | None = None,
) -> RenalDose | CannotDose:
    """The label's dose of `drug` in `phase` for the patient's kidneys (and dosing weight), else why it
    cannot be given.  Each order of a drug, and the regimens, ask for the same doses: worked out once per
    evaluation (facts.once)."""
    if phase not in ("induction", "maintenance"):
        raise ValueError(f"unknown phase {phase!r}")
    return facts.once(("renal_dose", drug, phase, regimen), lambda: _renal_dose(drug, phase, facts, policy, regimen), policy)


def _renal_dose(
    drug: str, phase: Phase, facts: ClinicalFacts, policy: Policy, regimen: FoscarnetRegimen | None
) -> RenalDose | CannotDose:
    child = out_of_scope(facts)
    if child:
        return CannotDose(drug, (child,), ("adult",))
    if drug in T.FIXED_DOSE_DRUGS:
        return _fixed_dose(T.FIXED_DOSE_DRUGS[drug], phase, facts)
    table = T.BAND_TABLES.get(drug)
    if table is None:
        raise ValueError(f"no dose table for {drug!r}")
    key = _table_key(drug, phase, regimen)

    replacement = facts.conditions.renal_replacement
    if replacement in ("crrt", "peritoneal"):
        # CRRT has no label dose (reference section 3: local practice), for any of the banded drugs; nor has
        # peritoneal dialysis (the labels' dialysis row is hemodialysis's: "3 times weekly after dialysis").
        return CannotDose(drug, (
            f"{renal_replacement_words(facts)}: the {drug} label gives no dose on {RENAL_REPLACEMENT_LABELS[replacement]}; "
            "dose it with the clinical pharmacist or nephrology",
        ))
    renal = facts.renal
    reasons: list[str] = []
    missing: list[str] = []
    if replacement == "dialysis":
        conflict = _dialysis_conflict(drug, table, facts)
        if conflict:
            # The same record read each way: without its clearance (dialysis decides), and without its dialysis.
            off = replace(facts.conditions, renal_replacement=None)
            readings = (renal_dose(drug, phase, replace(facts, renal=None), policy, regimen),
                        renal_dose(drug, phase, replace(facts, conditions=off), policy, regimen))
            return CannotDose(drug, (conflict,), ("dialysis",), readings=readings)
    elif renal is None or (table.unit == "mL/min" and renal.crcl_ml_min is None):
        _explain(facts, _RENAL_ITEMS, reasons, missing, "creatinine clearance could not be computed")
    elif table.unit == "mL/min/kg" and renal.crcl_ml_min_per_kg is None:
        reasons.append("creatinine clearance per kg (foscarnet's unit) could not be derived")
        _explain(facts, _WEIGHT_ITEMS, reasons, missing, "")
    if reasons:
        if facts.dosing_weight is None and drug != "valganciclovir":
            _explain(facts, _WEIGHT_ITEMS, reasons, missing, "no usable weight for the mg/kg dose")
        return CannotDose(drug, tuple(dict.fromkeys(reasons)), tuple(dict.fromkeys(missing)))

    # On dialysis: the labels' lowest row ("CrCl < 10 mL/min / hemodialysis" for ganciclovir and
    # valganciclovir); a dialysed patient's own clearance is below every other band of every table.
    index = len(table.bands) - 1 if replacement == "dialysis" else _band_index(table, renal)
    if drug == "cidofovir" and index != len(table.bands) - 1:
        creatinine, too_high = cidofovir_creatinine(facts, policy)
        if too_high is None:  # a bound ('<2.0'): neither a dose nor a contraindication can be said
            return CannotDose(drug, (cidofovir_creatinine_unknown(creatinine),), ("creatinine",))
        if too_high:
            index = len(table.bands) - 1
    band = table.bands[index]
    cell = table.doses[key][index]
    inputs = renal_inputs(facts, needs_weight=cell.mg_per_kg is not None)
    common = dict(
        drug=drug,
        phase=phase,
        regimen=key if drug == "foscarnet" else None,
        band=band.label,
        route=table.route,
        schedule=cell.schedule,
        source=SOURCES[table.source],
        interval_hours=cell.interval_hours,
        doses_per_week=cell.doses_per_week,
    )
    if cell.not_recommended:
        return RenalDose(dose_mg=None, mg_per_kg=None, not_recommended=cell.not_recommended, inputs=inputs, **common)

    if cell.mg is not None:  # valganciclovir: whole tablets
        count = cell.mg / T.VALGANCICLOVIR_TABLET_MG
        calculation = f"{fmt(cell.mg)} mg = {fmt(count)} x {fmt(T.VALGANCICLOVIR_TABLET_MG)} mg tablet, {cell.schedule}"
        return RenalDose(
            dose_mg=cell.mg,
            mg_per_kg=None,
            unit_count=count,
            unit_strength_mg=T.VALGANCICLOVIR_TABLET_MG,
            calculation=calculation,
            inputs=inputs,
            **common,
        )

    weight = facts.dosing_weight
    if weight is None:
        # The band is known (its clearance needs no weight: foscarnet per kg, or a reported CrCl); its mg dose is not.
        reasons, missing = [f"the {band.label} band gives {fmt(cell.mg_per_kg)} mg/kg {cell.schedule}; the dose in mg needs a "
                            "current weight"], []
        _explain(facts, _WEIGHT_ITEMS, reasons, missing, "no usable weight for the mg/kg dose")
        per_kg = (cell.mg_per_kg, cell.doses_per_week) if cell.doses_per_week else None
        return CannotDose(drug, tuple(dict.fromkeys(reasons)), tuple(dict.fromkeys(missing)) or ("weight",),
                          band_per_kg=per_kg)
    dose, calculation = weight_based_dose(drug, cell.mg_per_kg, weight, cell.schedule, policy)
    if dose <= 0:
        return rounded_to_nothing(drug, calculation)
    return RenalDose(dose_mg=dose, mg_per_kg=cell.mg_per_kg, calculation=calculation, inputs=inputs, **common)


def weight_based_dose(
    drug: str, mg_per_kg: float, weight: DosingWeight, schedule: str, policy: Policy
) -> tuple[float, str]:
    """(mg per dose, the calculation in words): mg/kg x the dosing weight, rounded to the policy's step."""
    exact = mg_per_kg * weight.kg
    step = policy.rounding_step_mg(drug)
    dose = round_half_up(exact, step)
    calculation = (
        f"{fmt(mg_per_kg, 3)} mg/kg x {fmt(weight.kg, 2)} kg ({weight.basis} body weight) = {fmt(exact, 2)} mg"
        f" -> {fmt(dose)} mg (rounded to the nearest {fmt(step)} mg, local policy), {schedule}"
    )
    return dose, calculation


def rounded_to_nothing(drug: str, calculation: str) -> CannotDose:
    """A weight-based dose that rounds to 0 mg (a weight of 1 kg, say): no dose; the weight is to check."""
    return CannotDose(drug, (f"{calculation}: that is no dose, so none is proposed; check the weight",), ("weight",))


def round_half_up(mg: float, step: float) -> float:
    """'62.5 mg' -> 65 mg at a 5 mg step."""
    steps = round(mg / step, 9)  # absorb float noise before rounding half up
    return float(int(steps + 0.5)) * step


def _band_index(table: T.BandTable, renal: RenalFunction) -> int | None:
    """The band of the table's clearance (mL/min or mL/min/kg); None when that one is unknown."""
    crcl = renal.crcl_ml_min_per_kg if table.unit == "mL/min/kg" else renal.crcl_ml_min
    if crcl is None:
        return None
    return next(i for i, band in enumerate(table.bands) if band.contains(crcl))


def dialysis_row(drug: str, facts: ClinicalFacts) -> bool:
    """Dialysis on record, and no current clearance that contradicts it: the table's lowest row applies."""
    return facts.conditions.renal_replacement == "dialysis" and _dialysis_conflict(drug, T.BAND_TABLES[drug], facts) is None


def _dialysis_conflict(drug: str, table: T.BandTable, facts: ClinicalFacts) -> str | None:
    """Dialysis on record, but a current clearance well above the lowest band: one of the two is wrong
    (a problem list may still say dialysis after a transplant), so no dose is chosen between them.  Between
    sessions a dialysed patient's creatinine gives a Cockcroft-Gault clearance just above the "< 10 mL/min"
    row (6 mg/dL is 13 mL/min at 60 years and 70 kg): in the mL/min tables of several bands (ganciclovir,
    valganciclovir) the band next to it agrees with dialysis.  Not in foscarnet's (13 mL/min is 0.19 mL/min/kg,
    in its lowest row already; its next row, 0.4-0.5, is 28-35 mL/min at 70 kg), nor in cidofovir's two bands,
    whose other one is the normal."""
    renal = facts.renal
    index = _band_index(table, renal) if renal is not None else None
    lowest = len(table.bands) - 1
    agrees = lowest - 1 if table.unit == "mL/min" and lowest > 1 else lowest
    if index is None or index >= agrees:
        return None
    crcl = (
        f"{fmt(renal.crcl_ml_min_per_kg)} mL/min/kg" if table.unit == "mL/min/kg" else f"{fmt(renal.crcl_ml_min, 1)} mL/min"
    )
    return (
        f"{renal_replacement_words(facts)}, but the current creatinine clearance is {crcl} ({table.bands[index].label}): "
        f"confirm whether the patient is on dialysis. On dialysis the {drug} label's lowest band applies "
        f"({table.bands[-1].label}); off dialysis, the {table.bands[index].label} band"
    )


def dialysis_alternative(dose: RenalDose | CannotDose | None) -> tuple[str, ...]:
    """The guideline's oral-solution alternative (Kotton 2025) where the label recommends no
    valganciclovir tablets (CrCl < 10 mL/min, dialysis): its text, for every card that shows that
    valganciclovir dose (the renal card, the regimen cards' step-down); shown, never proposed as an
    order.  Its source: DIALYSIS_ALTERNATIVE_SOURCE."""
    shown = isinstance(dose, RenalDose) and dose.drug == "valganciclovir" and bool(dose.not_recommended)
    return (T.VALGANCICLOVIR_DIALYSIS_GUIDELINE,) if shown else ()


DIALYSIS_ALTERNATIVE_SOURCE = "kotton-2025"


def dialysis_solution_doses(facts: ClinicalFacts) -> tuple[RenalDose, ...]:
    """The guideline's valganciclovir oral-solution doses on hemodialysis (Kotton 2025), by phase, for reading an
    oral-solution order of a patient on dialysis; none off dialysis."""
    if facts.conditions.renal_replacement != "dialysis":
        return ()
    return tuple(
        RenalDose(drug="valganciclovir", phase=phase, regimen=None, band="hemodialysis, oral solution (Kotton 2025)",
                  route="oral", dose_mg=mg, mg_per_kg=None, interval_hours=None, schedule=T.VALGANCICLOVIR_DIALYSIS_SCHEDULE,
                  doses_per_week=3.0, calculation=f"{fmt(mg)} mg {T.VALGANCICLOVIR_DIALYSIS_SCHEDULE} (guideline)",
                  inputs=renal_inputs(facts, needs_weight=False), source=SOURCES[DIALYSIS_ALTERNATIVE_SOURCE])
        for phase, mg in T.VALGANCICLOVIR_DIALYSIS_SOLUTION_MG.items()
    )


def renal_replacement_words(facts: ClinicalFacts) -> str:
    """'On dialysis (Condition/4: ICD-10-CM Z99.2)': the renal replacement therapy on record."""
    label = RENAL_REPLACEMENT_LABELS[facts.conditions.renal_replacement]
    shown = recorded_as(facts.conditions, label)
    return f"On {label}" + (f" ({shown})" if shown else "")


def renal_inputs(facts: ClinicalFacts, needs_weight: bool = True) -> tuple[str, ...]:
    """The inputs a renal dose rests on, one line each, as a card shows them (written once per evaluation:
    every band dose of every order shows the same)."""
    return facts.once(("renal_inputs", needs_weight), lambda: _renal_inputs(facts, needs_weight))


def _renal_inputs(facts: ClinicalFacts, needs_weight: bool) -> tuple[str, ...]:
    lines: list[str] = []
    renal = facts.renal
    patient = facts.patient
    if facts.conditions.renal_replacement == "dialysis":
        lines.append(
            f"{renal_replacement_words(facts)}: the label's lowest band applies (CrCl < 10 mL/min or "
            "hemodialysis); Cockcroft-Gault does not estimate kidney function on dialysis"
        )
    if patient.age_years is not None or patient.sex != "unknown":
        age = f"{patient.age_years} years" if patient.age_years is not None else "age unknown"
        lines.append(f"Patient: {age}, sex {patient.sex}")
    if renal is not None:
        if renal.creatinine is not None:
            used = ""
            if renal.creatinine_floored and renal.creatinine_mg_dl_used is not None:
                used = f"; {fmt(renal.creatinine_mg_dl_used, CREATININE_DIGITS)} mg/dL used (creatinine floor, local policy)"
            lines.append(f"Serum creatinine: {show(renal.creatinine)}{used}")
        if renal.weight is not None and renal.weight_kg_used is not None:
            basis = f"{renal.weight_basis} body weight" if renal.weight_basis else "weight"
            lines.append(
                f"Weight in Cockcroft-Gault: {fmt(renal.weight_kg_used, 2)} kg ({basis}), "
                f"from measured weight {show(renal.weight)}"
            )
        per_kg = f" ({fmt(renal.crcl_ml_min_per_kg)} mL/min/kg)" if renal.crcl_ml_min_per_kg is not None else ""
        if renal.method == "reported" and renal.creatinine is not None and per_kg:  # not the lab's: Cockcroft-Gault's
            per_kg = f" (per kg {fmt(renal.crcl_ml_min_per_kg)} mL/min/kg by Cockcroft-Gault from the creatinine)"
        if renal.method == "reported" and renal.reported is not None:
            how = f"reported by the lab, {show(renal.reported)}"
        else:
            how = "Cockcroft-Gault"
        calc = f": {renal.calculation}" if renal.calculation else ""
        if renal.crcl_ml_min is not None:
            lines.append(f"CrCl {fmt(renal.crcl_ml_min, 1)} mL/min{per_kg}, {how}{calc}")
        else:
            lines.append(f"CrCl per kg {fmt(renal.crcl_ml_min_per_kg)} mL/min/kg, {how}{calc}")
        lines.extend(f"Assumption: {a}" for a in renal.assumptions)
    if needs_weight and facts.dosing_weight is not None:
        lines.append(dosing_weight_line(facts.dosing_weight))
    return tuple(lines)


def _table_key(drug: str, phase: Phase, regimen: str | None) -> str:
    if drug != "foscarnet":
        if regimen is not None:
            raise ValueError(f"{drug} has no regimens")
        return phase
    regimen = regimen or T.FOSCARNET_DEFAULT_REGIMEN[phase]
    if T.FOSCARNET_REGIMEN_PHASE.get(regimen) != phase:
        raise ValueError(f"foscarnet regimen {regimen!r} is not a {phase} regimen")
    return regimen


def out_of_scope(facts: ClinicalFacts) -> str | None:
    """Why the adult bands do not apply to this patient (a child, or an age out of scope), or None."""
    for issue in facts.issues_for("age"):
        if issue.kind == "out-of-scope":
            return f"adult dose bands do not apply: {issue.detail}"
    age = facts.patient.age_years
    if age is not None and age < ADULT_AGE:
        return f"adult dose bands do not apply: patient is {age} years old (paediatric dosing per the label)"
    return None


def cidofovir_preparation(facts: ClinicalFacts) -> str:
    """How each cidofovir dose is given (label), without the adult amounts where the adult bands do not apply."""
    return T.CIDOFOVIR_PREPARATION if out_of_scope(facts) is None else T.CIDOFOVIR_PREPARATION_NOT_ADULT


def _explain(facts: ClinicalFacts, items, reasons: list[str], missing: list[str], fallback: str) -> None:
    """Add the facts layer's data-quality issues for `items` (assumptions aside) to the reasons."""
    found = False
    for item in items:
        issues = [i for i in facts.issues_for(item) if i.kind != "assumption"]
        if any(i.kind == "missing" for i in issues):  # it quotes the results that could not be used
            issues = [i for i in issues if i.kind not in UNUSABLE_KINDS]
        for issue in issues:
            found = True
            reasons.append(issue.detail)
            missing.append(item)
    if not found and fallback:
        reasons.append(fallback)


def cidofovir_creatinine(facts: ClinicalFacts, policy: Policy) -> tuple[Measurement | None, bool | None]:
    """The current creatinine and whether it is above the label's limit (also when CrCl was reported):
    (None, False) without one; (value, None) when a reported bound cannot tell ('<2.0')."""
    creatinine = current(facts, "creatinine", policy.creatinine_max_age_days)
    if creatinine is None:
        return None, False
    return creatinine, above(creatinine, T.CIDOFOVIR_MAX_CREATININE_MG_DL)


def cidofovir_creatinine_unknown(creatinine: Measurement) -> str:
    """Why a creatinine bound leaves the label's creatinine limit unchecked, in words for the card."""
    return (
        f"creatinine {show(creatinine)}: a bound that cannot show whether it is above the cidofovir label's "
        f"limit of {fmt(T.CIDOFOVIR_MAX_CREATININE_MG_DL)} mg/dL"
    )


def _fixed_dose(drug: T.FixedDoseDrug, phase: Phase, facts: ClinicalFacts) -> RenalDose | CannotDose:
    """letermovir / maribavir: the label's fixed dose, adjusted for co-medications it names."""
    others = co_medications(facts)
    hits = [a for a in drug.adjustments if any(in_group(o, a.group) and o.ingredient != drug.drug for o in others)]
    # A "not recommended" partner outranks a dose change.  The label gives one dose per partner and
    # none for partners that call for different doses together: no dose is guessed for those.
    blocking = [a for a in hits if a.dose is None]
    if not blocking and len({(a.dose.mg, a.dose.interval_hours) for a in hits}) > 1:
        together = " and ".join(display_name(a.group) for a in hits)
        return CannotDose(drug.drug, (
            f"the {drug.drug} label gives a dose for each of {together}, none for them together: "
            "ask a pharmacist or infectious diseases",
        ))
    chosen = blocking[0] if blocking else (hits[0] if hits else None)
    dose = chosen.dose if chosen and chosen.dose else drug.standard
    # The reference gives one dose, no renal table: said as such, not as a claim about kidney function.
    band = f"with {display_name(chosen.group)} (label)" if chosen else "the fixed dose (label)"
    partners = ", ".join(display_name(a.group) for a in hits)
    inputs = (f"Co-medication the label names: {partners}",) if partners else ()
    common = dict(
        drug=drug.drug,
        phase=phase,
        regimen=None,
        band=band,
        route=dose.route,
        mg_per_kg=None,
        source=SOURCES[drug.source],
        inputs=inputs,
    )
    if chosen and chosen.dose is None:
        return RenalDose(dose_mg=None, interval_hours=None, schedule="", not_recommended=chosen.not_recommended, **common)
    return RenalDose(
        dose_mg=dose.mg,
        interval_hours=dose.interval_hours,
        schedule=dose.schedule,
        doses_per_week=168.0 / dose.interval_hours,
        calculation=f"{fmt(dose.mg)} mg {dose.schedule} ({band})",
        **common,
    )


# The label's instruction for valganciclovir tablets, carried on every valganciclovir proposal (a dose not in
# tablets, the oral solution's, is only taken with food).
VALGANCICLOVIR_NOTE = "take with food; do not break or crush tablets"
VALGANCICLOVIR_SOLUTION_NOTE = "take with food"
# What a proposed order's instructions say beside the dose (labels): the foscarnet order an EHR applies
# carries its hydration, as the card does.
_NOTES = {"valganciclovir": VALGANCICLOVIR_NOTE,
          "foscarnet": f"hydration {T.FOSCARNET_HYDRATION_WORDS}"}


def dose_proposal(
    rd: RenalDose,
    label: str,
    *,
    replaces: str | None = None,
    recommended: bool = False,
    duration_days: float | None = None,
    tablets: bool = True,
    infusion_minutes: float | None = None,
    discontinues: tuple[str, ...] = (),
    stop_reason: str | None = None,
) -> DoseProposal:
    """The suggestion of a band dose: every dose the service proposes is built here from renal_dose().

    tablets: give valganciclovir as a count of 450 mg tablets (False: as mg, for an order in mg).
    infusion_minutes: the infusion time of the IV order it updates, when kept (band_proposal decides);
    else the label's, where the reference gives one (label_infusion_minutes).
    discontinues: the orders on record it takes over from (a switch, prophylaxis), stopped by the same
    suggestion, each "replaced by <drug>" unless `stop_reason` says otherwise."""
    also = tuple(discontinuation(order_id, rd.drug, stop_reason) for order_id in discontinues)
    counted = tablets and rd.unit_count is not None
    return DoseProposal(
        label=label,
        drug=rd.drug,
        dose_mg=rd.dose_mg,
        interval_hours=rd.interval_hours,
        route=rd.route,
        schedule=rd.schedule,
        replaces=replaces,
        duration_days=duration_days,
        unit_count=rd.unit_count if counted else None,
        unit_strength_mg=rd.unit_strength_mg if counted else None,
        note=VALGANCICLOVIR_SOLUTION_NOTE if rd.drug == "valganciclovir" and rd.unit_count is None else _NOTES.get(rd.drug),
        recommended=recommended,
        infusion_minutes=infusion_minutes if infusion_minutes is not None else label_infusion_minutes(rd),
        also=also,
    )


def label_infusion_minutes(rd: RenalDose) -> float | None:
    """How long each dose of a band dose runs by its label, where the reference says (foscarnet induction: the
    shortest time the label allows); None for every other dose."""
    label = label_infusion(rd.drug, rd.mg_per_kg, rd.interval_hours) if rd.route == "iv" else None
    return label.minimum_minutes if label else None


def label_infusion(
    drug: str, mg_per_kg: float | None, interval_hours: float | None, tolerance: float = 0.0
) -> T.InfusionTime | None:
    """The label's infusion time for a foscarnet dose (dose_tables.FOSCARNET_INFUSION_TIMES), if it gives one."""
    if drug != "foscarnet" or mg_per_kg is None:
        return None
    return next((
        t for t in T.FOSCARNET_INFUSION_TIMES
        if abs(mg_per_kg - t.mg_per_kg) <= tolerance * t.mg_per_kg + 1e-9
        and same_frequency(interval_hours, 168.0 / t.interval_hours)
    ), None)


INTERVAL_TOLERANCE = 0.05  # an interval matches within 5% (rounding of "2 per 1 d" style timings)


def same_frequency(interval_hours: float | None, doses_per_week: float | None) -> bool:
    """Whether an order's interval gives a band's doses per week (within INTERVAL_TOLERANCE)."""
    if not interval_hours or not doses_per_week:
        return False
    ordered = 168.0 / interval_hours
    return abs(ordered - doses_per_week) <= INTERVAL_TOLERANCE * doses_per_week
