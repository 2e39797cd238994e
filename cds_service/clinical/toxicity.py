"""Toxicity checks for an anti-CMV order: blood counts, kidneys, electrolytes.

Limits are the labels' (reference sections 5-7); a value drives a decision only when it is current
(Policy staleness windows).  What cannot be checked becomes a `Gap` for the missing-data finding.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Iterable

from cds_service.clinical import dose_tables as T
from cds_service.clinical.drugs import (
    COMPANION_REASON,
    GANCICLOVIR_FAMILY,
    also_on_record,
    alternatives_ordered,
    already_ordered_lines,
    cidofovir_course,
    cmv_drug,
    describe_order,
    display_name,
    drafted_with,
    drug_name,
    groups_of,
    in_group,
    is_nephrotoxic_immunosuppressant,
    is_nephrotoxin,
    list_orders,
    other_orders,
    running_on_record,
)
from cds_service.clinical.findings import Finding, LabOrderProposal, StopOrderProposal, carried_stops, discontinuation
from cds_service.clinical.interactions import MARROW_TOXIC
from cds_service.clinical.inputs import (
    below,
    current,
    fitting,
    flagged_high,
    flagged_low,
    fmt,
    high_basis,
    high_limit,
    inputs_block,
    is_low,
    low_basis,
    low_limit,
    name,
    recorded_as,
    resulting,
    show,
    why_not_current,
)
from cds_service.clinical.missing_data import Gap, retrieved
from cds_service.clinical.renal_dosing import (
    CannotDose,
    RenalDose,
    cidofovir_creatinine,
    cidofovir_preparation,
    cidofovir_creatinine_unknown,
    dialysis_row,
    renal_dose,
    renal_replacement_words,
    rounded_to_nothing,
    weight_based_dose,
)
from cds_service.clinical.sources import cite, sot_guideline
from cds_service.clinical.therapy import band_proposal, cidofovir_course_day, cidofovir_induction_left, matches_band
from cds_service.facts.conditions import allergy_label
from cds_service.facts.model import ClinicalFacts, Measurement, MedicationOrder, decimals_beside
from cds_service.facts.units import at_step
from cds_service.frozen import frozen
from cds_service.policy import Policy

Result = list  # of Finding | Gap

# ---------------------------------------------------------------------------------------------
# Haematological limits (ganciclovir, valganciclovir; label): do not give below these.


@frozen
class CountLimit:
    analyte: str
    limit: float
    words: str  # "ANC < 500/µL"


BLOOD_COUNT_LIMITS = (
    CountLimit("anc", 500, "ANC < 500/µL"),
    CountLimit("platelets", 25000, "platelets < 25,000/µL"),
    CountLimit("hemoglobin", 8, "hemoglobin < 8 g/dL"),
)


_LABEL_LIMIT = {limit.analyte: limit.limit for limit in BLOOD_COUNT_LIMITS}


def count_words(m: Measurement, beside: float | None = None) -> str:
    """'ANC 380/µL (2026-11-25)', 'hemoglobin 7.4 g/dL (2026-11-25)': with the digits that keep it on its
    side of the limit it is compared with (`beside`; by default the label's): 7.99 g/dL, not 8."""
    when = m.date_words
    limit = _LABEL_LIMIT.get(m.analyte) if beside is None else beside
    cells = m.unit == "/uL"
    decimals = decimals_beside(m.value, 0 if cells else 1, limit)
    value = f"{m.comparator or ''}{m.value:,.{decimals}f}" if cells else f"{m.comparator or ''}{fmt(m.value, decimals)}"
    unit = "/µL" if cells else f" {m.unit}"
    return f"{name(m.analyte)} {value}{unit} ({when})"


def hematologic(
    order: MedicationOrder,
    drug: str,
    phase: str,
    how: str,
    facts: ClinicalFacts,
    policy: Policy,
    marrow_toxic: tuple[MedicationOrder, ...] = (),
    elsewhere: Elsewhere | None = None,
) -> Result:
    """Critical below the label's limits; info when a count is only below the lab's reference range
    (naming `marrow_toxic`, the co-medication that adds to the marrow toxicity: one card, not two).
    `elsewhere`: another card that already proposes what follows the order (see Elsewhere)."""
    severe, mild, gaps = _counts_against_the_label(facts, policy)
    result: Result = []
    if gaps:
        result.append(Gap("blood count limits (label: do not give below them)", tuple(gaps), ("cbc",), f"{drug}-label"))
    if severe:
        result.append(_cytopenia_critical(order, drug, phase, how, severe, facts, policy, elsewhere))
    elif mild:
        result.append(_cytopenia_info(order, drug, mild, marrow_toxic, facts))
    return result


def counts_below_the_label(facts: ClinicalFacts, policy: Policy) -> bool:
    """Whether a current blood count is below the ganciclovir/valganciclovir labels' limits (the
    critical card's condition: it depends on the counts, not on the order)."""
    return bool(_counts_against_the_label(facts, policy)[0])


def _counts_against_the_label(facts: ClinicalFacts, policy: Policy) -> tuple[tuple, tuple, tuple[str, ...]]:
    """-> (counts below the label's limits as (limit, value), counts low by the lab's range only, why
    a limit cannot be checked).  Every order of the family and the regimens ask: read once per
    evaluation (facts.once)."""
    return facts.once(("counts_against_the_label",), lambda: _read_counts(facts, policy), policy)


def _read_counts(facts: ClinicalFacts, policy: Policy) -> tuple[tuple, tuple, tuple[str, ...]]:
    severe, mild, gaps = [], [], []
    for limit in BLOOD_COUNT_LIMITS:
        m = current(facts, limit.analyte, policy.blood_count_max_age_days)
        if m is None:
            gaps.append(why_not_current(facts, limit.analyte, policy.blood_count_max_age_days))
            continue
        low = below(m, limit.limit)
        if low is None:
            gaps.append(f"{count_words(m)} cannot show whether it is {limit.words}")
        elif low:
            severe.append((limit, m))
        elif flagged_low(m):  # no local limits for blood counts: the lab's range only
            mild.append(m)
    return tuple(severe), tuple(mild), tuple(gaps)


@frozen
class Elsewhere:
    """Where what follows a ganciclovir-family order with counts below the label is already proposed:
    a card that replaces this very order (a switch or a correction), a card that starts foscarnet for
    another order, or the anti-CMV drafts the clinician is ordering.  The critical card then proposes
    no foscarnet of its own, so that accepting every card never orders two replacements or two
    courses; and it does not remove a draft another card changes (removing it after the change would
    delete the new order)."""

    line: str  # the card's "Alternative" line
    replaces_order: bool

    @classmethod
    def of(cls, replacing: Finding | None, foscarnet: Finding | None) -> Elsewhere | None:
        """`replacing`: a card that replaces the order; `foscarnet`: a card that starts foscarnet."""
        if replacing is not None:
            return cls(f'**Alternative:** proposed on the card "{replacing.summary}"', replaces_order=True)
        if foscarnet is not None:
            return cls(f'**Alternative:** foscarnet, proposed on the card "{foscarnet.summary}" (one foscarnet '
                       "course, not two).", replaces_order=False)
        return None

    @classmethod
    def drafted(cls, drafts: Iterable[MedicationOrder]) -> Elsewhere:
        """An order on record, on an order hook: the drafts being ordered are what follows it."""
        return cls(f"**Being ordered:** {list_orders(drafts)}: the alternative to this order is chosen with "
                   "them (no other is proposed here).", replaces_order=False)


def _cytopenia_critical(
    order, drug, phase: str, how: str, severe, facts: ClinicalFacts, policy: Policy, elsewhere: Elsewhere | None
) -> Finding:
    values = ", ".join(count_words(m).rsplit(" (", 1)[0] for _, m in severe)
    summary = f"{drug.capitalize()} with {values}: below the label's limits, do not give"
    foscarnet_resistant = facts.conditions.resistant_to("foscarnet")
    already = alternatives_ordered(facts, but=order.id)
    lines = [
        f"**Ordered:** {describe_order(order)}",
        "**Below the label's limits:** " + "; ".join(f"{count_words(m)} ({limit.words})" for limit, m in severe),
        f"The {drug} label: do not give when ANC < 500/µL, platelets < 25,000/µL or hemoglobin < 8 g/dL.",
        *([KOTTON_LEUKOPENIA] if sot_guideline(facts) else []),
        *([] if elsewhere or foscarnet_resistant or already else
          ["When ganciclovir is not tolerated, foscarnet is the alternative (clinical brief)."]),
    ]
    # A draft is removed or changed; an order on record is discontinued and the alternative ordered anew.
    verb, replaces = ("Remove", order.id) if order.is_draft else ("Discontinue", None)
    why = "blood count below the label's limit"
    # The counts rule out the whole family, so its other orders on record stop too: with each suggestion
    # of a draft's card (also when another card's switch would stop them: the clinician may choose none of
    # its switches); for an order on record, which has a card of its own for each (patient-view), with the
    # switch to foscarnet only.
    on_record = tuple(m for m in facts.active_medications if m.id != order.id and cmv_drug(m) in GANCICLOVIR_FAMILY)
    stops = carried_stops((o.id for o in on_record), why)
    proposals: list = [StopOrderProposal(f"{verb} the {drug} order", order.id, why, also=stops if order.is_draft else ())]
    treating = facts.conditions.cmv_disease or facts.conditions.cmv_infection or any(r.detected for r in facts.viral_load.results)
    changed_elsewhere = bool(elsewhere and elsewhere.replaces_order and order.is_draft)
    if on_record and order.is_draft and not changed_elsewhere:
        lines.append(also_on_record(on_record, "the same limits apply", "each suggestion here"))
    if changed_elsewhere:
        # The draft is that card's; the family's orders on record are stopped here whatever is chosen there.
        proposals = [StopOrderProposal(f"Discontinue the {cmv_drug(on_record[0])} order on record", on_record[0].id,
                                       why, also=stops[1:])] if on_record else []
        lines.append(f"{elsewhere.line}, which changes this draft (one card changes it, not two). If none of its "
                     "changes is accepted, remove the draft.")
        if on_record:
            lines.append(f"**Also on record:** {list_orders(on_record)}: the same limits apply: discontinue it in any "
                         "case (offered here).")
    elif elsewhere and elsewhere.replaces_order:
        lines.append(f"{elsewhere.line} (one card replaces this order, not two).")
    elif elsewhere:
        lines.append(elsewhere.line)
    elif already:
        lines += already_ordered_lines(already)
    elif treating and foscarnet_resistant:
        lines.append("**Foscarnet** is documented resistant: choose the alternative with infectious diseases.")
    elif treating:
        regimen = "90q12h" if phase == "induction" else "90/day"
        alt = renal_dose("foscarnet", phase, facts, policy, regimen)
        if isinstance(alt, RenalDose) and alt.dose_mg:
            lines.append(
                f"**Alternative: foscarnet** ({phase}, {alt.band}) {alt.dose_mg:g} mg ({fmt(alt.mg_per_kg)} mg/kg) "
                f"{alt.schedule}. Calculation: {alt.calculation}. {T.FOSCARNET_HYDRATION} Watch kidney "
                "function and electrolytes."
            )
            lines += inputs_block(alt.inputs)
            if electrolytes := foscarnet_electrolytes_block(facts, policy):
                lines.append(electrolytes)
            label = f"{'Change to' if order.is_draft else 'Switch to'} foscarnet {fmt(alt.dose_mg)} mg {alt.schedule}"
            switch = band_proposal(label, alt, replaces=replaces)
            if order.is_draft:
                proposals.insert(0, replace(switch, also=stops))
            else:
                proposals.insert(0, replace(switch, also=(discontinuation(order.id, "foscarnet"), *stops)))
                if on_record:
                    lines.append(also_on_record(on_record, "the same limits apply (a card of its own for each)", "the switch"))
        elif isinstance(alt, RenalDose):
            lines.append(f"**Foscarnet** is {alt.not_recommended} either: consult infectious diseases.")
        else:
            lines.append("**Foscarnet dose cannot be computed:** " + "; ".join(alt.reasons) + ".")
    else:
        lines.append("No CMV infection or disease on record: discuss an alternative with infectious diseases.")
    lines.append(f"Phase of the {drug} order: {how}.")
    return Finding(
        topic="hematologic-toxicity",
        indicator="critical",
        summary=summary if len(summary) < 140 else f"{drug.capitalize()}: blood count below the label's limits, do not give",
        detail="\n".join(lines),
        sources=cite(f"{drug}-label", *sot_guideline(facts), "foscarnet-label", "clinical-brief"),
        proposals=tuple(proposals),  # alternatives: remove (discontinue) the order, or switch it to foscarnet
        override_reasons=("benefit-outweighs-risk", "specialist-directed", "lab-result-pending", "newer-result-elsewhere"),
        order_id=order.id,
        key=f"hematologic-toxicity|{order.id}",
    )


KOTTON_LEUKOPENIA = "Do not reduce the ganciclovir dose for leukopenia alone (Kotton 2025)."


def _cytopenia_info(
    order, drug, mild: list[Measurement], marrow_toxic: tuple[MedicationOrder, ...], facts: ClinicalFacts
) -> Finding:
    values = ", ".join(count_words(m, low_limit(m)).rsplit(" (", 1)[0] for m in mild)
    lines = [
        f"**Ordered:** {describe_order(order)}",
        "**Low counts:** " + "; ".join(f"{count_words(m, low_limit(m))}, {low_basis(m)}" for m in mild),
    ]
    summary = f"{drug.capitalize()} with low {values}: above the label's limits; monitor CBC at least weekly"
    if marrow_toxic:
        names = ", ".join(sorted({display_name(g) for o in marrow_toxic for g in groups_of(o, MARROW_TOXIC)}))
        lines.append(f"**Marrow-toxic co-medication:** {list_orders(marrow_toxic)}: additive bone-marrow toxicity (label).")
        summary = fitting(f"{drug.capitalize()} with low {values} and {names} (marrow-toxic): monitor CBC at least weekly",
                          f"{drug.capitalize()} with low {values} and marrow-toxic co-medication: monitor CBC at least weekly")
    lines += [
        f"Above the {drug} label's limits (ANC 500/µL, platelets 25,000/µL, hemoglobin 8 g/dL): "
        "the drug may be given. Check the blood count at least weekly during treatment (clinical brief).",
        *([KOTTON_LEUKOPENIA] if sot_guideline(facts) else []),
    ]
    return Finding(
        topic="hematologic-toxicity",
        indicator="info",
        summary=summary,
        detail="\n".join(lines),
        sources=cite(f"{drug}-label", "clinical-brief", *sot_guideline(facts)),
        override_reasons=("monitoring-arranged", "already-addressed", *(("interaction-managed",) if marrow_toxic else ())),
        order_id=order.id,
        key=f"hematologic-toxicity|{order.id}",
    )


# Cidofovir's boxed warning for neutropenia names no count (label): the ANC counts as low only by the
# lab's own flag or range, and no dose change is proposed.
CIDOFOVIR_NEUTROPENIA = "Cidofovir: boxed warning for neutropenia; monitor neutrophil counts during therapy (label)"


def cidofovir_neutropenia(order: MedicationOrder, facts: ClinicalFacts, policy: Policy) -> Result:
    """A warning when the current ANC is low by the lab; a gap when there is none, or when a reported
    bound cannot show whether it is below the lab's range."""
    days = policy.blood_count_max_age_days
    check = "cidofovir's boxed warning for neutropenia (label)"
    anc = current(facts, "anc", days)
    if anc is None:
        return [Gap(check, (why_not_current(facts, "anc", days),), ("cbc",), "cidofovir-label")]
    # The lab's flag or range decides; with neither, the policy's limit (the label gives no number).
    limit = policy.anc_low_per_ul
    if anc.interpretation is None and below(anc, low_limit(anc, limit)) is None:
        return [Gap(check, (f"{count_words(anc, low_limit(anc, limit))} cannot show whether it is {low_basis(anc, limit)}",),
                    ("cbc",), "cidofovir-label")]
    if not is_low(anc, limit):
        return []
    return [
        Finding(
            topic="hematologic-toxicity",
            indicator="warning",
            summary=f"Cidofovir with low {count_words(anc, low_limit(anc, limit)).rsplit(' (', 1)[0]}: boxed warning for neutropenia (label)",
            detail="\n".join(
                [
                    f"**Ordered:** {describe_order(order)}",
                    f"**Low ANC:** {count_words(anc, low_limit(anc, limit))}, {low_basis(anc, limit)}",
                    f"{CIDOFOVIR_NEUTROPENIA}.",
                    "The label gives no neutrophil count below which cidofovir is withheld or its dose changed: "
                    "whether to give this dose is the clinician's decision.",
                ]
            ),
            sources=cite("cidofovir-label"),
            override_reasons=("benefit-outweighs-risk", "specialist-directed", "monitoring-arranged", "already-addressed"),
            order_id=order.id,
            key=f"hematologic-toxicity|{order.id}",
        )
    ]


# ---------------------------------------------------------------------------------------------
# Nephrotoxicity


# The label's steps for a creatinine rise during a course (dose_tables: CIDOFOVIR_*_RISE_MG_DL).
CIDOFOVIR_RISE_RULE = (
    "During a course (label): creatinine up 0.3-0.4 mg/dL from the baseline → 3 mg/kg; "
    "up ≥ 0.5 mg/dL or ≥ 3+ proteinuria → stop."
)


def cidofovir_nephrotoxicity(
    order: MedicationOrder, facts: ClinicalFacts, policy: Policy, rise: "CreatinineRise | str | None"
) -> Result:
    """The label's contraindications and a creatinine rise of ≥ 0.5 mg/dL during the course (critical),
    a rise of 0.3-0.4 mg/dL (warning: 3 mg/kg), and its 48-hour pre-dose checks (gaps)."""
    contraindications: list[tuple[str, str]] = []  # (short for the summary, full for the detail)
    cautions: list[str] = []
    gaps: list[str] = []
    items: list[str] = []
    within: list[str] = []  # the checks that passed, shown on the card with their values
    pre_dose_days = T.CIDOFOVIR_PRE_DOSE_CHECK_HOURS / 24

    creatinine, too_high = cidofovir_creatinine(facts, policy)
    limit = T.CIDOFOVIR_MAX_CREATININE_MG_DL
    if too_high is False and creatinine is not None:  # without one, the pre-dose check below asks for it
        within.append(f"serum creatinine {show(creatinine, limit)} ≤ 1.5 mg/dL")
    if too_high:
        value = f"{creatinine.comparator or ''}{fmt(creatinine.value, beside=limit)}"
        contraindications.append((f"creatinine {value} mg/dL (> 1.5)", f"serum creatinine {show(creatinine, limit)} > 1.5 mg/dL"))
    elif too_high is None:
        gaps.append(cidofovir_creatinine_unknown(creatinine))
        items.append("creatinine")
    if current(facts, "creatinine", pre_dose_days) is None:
        gaps.append(why_not_current(facts, "creatinine", pre_dose_days))
        items.append("creatinine")
    on_dialysis = facts.conditions.renal_replacement == "dialysis"
    if facts.renal is not None and facts.renal.crcl_ml_min is not None and not on_dialysis:
        crcl = f"CrCl {fmt(facts.renal.crcl_ml_min, 1)} mL/min"
        if facts.renal.crcl_ml_min <= T.CIDOFOVIR_MIN_CRCL:
            contraindications.append((f"{crcl} (≤ 55)", f"{crcl} ≤ 55 mL/min ({facts.renal.calculation or facts.renal.method})"))
        else:
            within.append(f"{crcl} > 55 mL/min")
    else:
        # Says why there is no clearance, or (dialysis on record) whether its lowest band applies.
        dose = renal_dose("cidofovir", "induction", facts, policy)
        if isinstance(dose, CannotDose):
            gaps.extend(dose.reasons)
            items.extend(dose.missing)
        elif on_dialysis and dose.not_recommended:
            contraindications.append((
                "on dialysis (CrCl ≤ 55)",
                f"{renal_replacement_words(facts)}: a dialysed patient's clearance is far below the label's 55 mL/min",
            ))

    protein_days = min(policy.urine_protein_max_age_days, pre_dose_days)
    quantitative = current(facts, "urine_protein", protein_days)
    dipstick = current(facts, "urine_protein_dipstick", protein_days)
    limit = T.CIDOFOVIR_MAX_URINE_PROTEIN_MG_DL
    if quantitative is not None and below(quantitative, limit) is False:
        contraindications.append((f"urine protein {fmt(quantitative.value, beside=limit)} mg/dL (≥ 100)",
                                  f"urine protein {show(quantitative, limit)} ≥ 100 mg/dL"))
    elif quantitative is not None and below(quantitative, limit):
        within.append(f"urine protein {show(quantitative, limit)} < 100 mg/dL")
    if dipstick is not None:
        grade = f"urine protein {fmt(dipstick.value)}+ by dipstick"
        dated = f"{grade} ({dipstick.date_words})" if dipstick.effective else grade
        if below(dipstick, T.CIDOFOVIR_MAX_DIPSTICK_GRADE) is False:
            contraindications.append((f"{grade} (≥ 2+)", f"{dated} ≥ 2+"))
        elif below(dipstick, T.CIDOFOVIR_MAX_DIPSTICK_GRADE):
            within.append(f"{dated} < 2+")
    if quantitative is None and dipstick is None:
        gaps.append(why_not_current(facts, "urine_protein", protein_days))
        items.append("urine-protein")

    now = facts.evaluated_at.date()
    active = other_orders(facts, order)
    nephrotoxins_before = len(contraindications) + len(cautions)
    # Cidofovir orders on record are the course (judged by its creatinine rise), not "other" agents.
    for other in (o for o in active if cmv_drug(o) != "cidofovir"):
        if is_nephrotoxic_immunosuppressant(other):
            cautions.append(f"{describe_order(other)}: a nephrotoxic immunosuppressant (not among the agents the label names); monitor kidney function")
        elif is_nephrotoxin(other):
            contraindications.append((f"{drug_name(other)} ordered (nephrotoxic)", f"another nephrotoxic agent ordered: {describe_order(other)}"))
    active_ids = {o.id for o in active}
    for past in facts.medications:
        if past.id in active_ids or past.id == order.id or past.status not in ("completed", "stopped"):
            continue
        if not is_nephrotoxin(past) or is_nephrotoxic_immunosuppressant(past) or cmv_drug(past) == "cidofovir":
            continue
        if past.end is None:
            cautions.append(f"{describe_order(past)}: end date unknown, cannot confirm it stopped ≥ 7 days ago")
        elif (now - past.end).days < T.CIDOFOVIR_NEPHROTOXIN_WASHOUT_DAYS:
            contraindications.append(
                (f"{drug_name(past)} stopped {past.end.isoformat()} (< 7 days)", f"nephrotoxic agent stopped {past.end.isoformat()} (< 7 days ago): {describe_order(past)}")
            )

    # An absence is a check only when that part of the record could be had; else the check is a gap.
    if not retrieved(facts, "medications"):
        gaps.append("medication orders could not be retrieved: other nephrotoxic agents not checked")
    elif len(contraindications) + len(cautions) == nephrotoxins_before:
        within.append("no other nephrotoxic agent ordered or stopped in the last 7 days")
    if not facts.conditions.allergies:  # a documented one is a contraindication (below), whatever else is unknown
        if retrieved(facts, "allergies"):
            within.append("no probenecid or sulfa allergy on record")
        else:
            gaps.append("allergies could not be retrieved in full: a probenecid or sulfa allergy (contraindication) "
                        "not checked")
    # Cidofovir is given with probenecid: the label contraindicates it with a probenecid or sulfa allergy.
    for allergen in sorted(facts.conditions.allergies):
        label = allergy_label(allergen)
        records = recorded_as(facts.conditions, label)
        contraindications.append((label, f"documented {label} ({records}); cidofovir is given with probenecid"))

    reduce = reduced_dose_due(rise)
    if isinstance(rise, CreatinineRise) and rise.judged >= T.CIDOFOVIR_STOP_RISE_MG_DL:
        contraindications.append((f"creatinine up {fmt(rise.up)} mg/dL during the course ({rise.stop_rule()})", f"creatinine {rise.words()}; ≥ 0.5 mg/dL: stop (label)"))

    # No probenecid with a draft the label does not rule out: a line of its other nephrotoxicity card, or its own.
    probenecid = None if contraindications else _probenecid_missing(order, facts)
    result: Result = []
    if gaps:
        result.append(Gap("cidofovir pre-dose checks (label: within 48 h before each dose)", tuple(gaps), tuple(items), "cidofovir-label"))
    if isinstance(rise, str):
        result.append(Gap("creatinine rise since the cidofovir course began (label: 0.3-0.4 mg/dL → 3 mg/kg, ≥ 0.5 → stop)", (rise,), (), "cidofovir-label"))
    if reduce and not contraindications:
        dose, days_left = reduced_dose(order, facts, policy)
        if not (isinstance(dose, RenalDose) and matches_band(order, dose, facts, policy)):  # not ordered at 3 mg/kg yet
            return [*result, _reduced_dose_finding(order, rise, dose, cautions, days_left, cidofovir_preparation(facts),
                                                   probenecid)]
    elif reduce:
        cautions.append(f"creatinine {rise.words()}; 0.3-0.4 mg/dL: 3 mg/kg (label)")
    if contraindications or cautions:
        critical = bool(contraindications)
        if critical:
            summary = fitting(
                "Cidofovir contraindicated: " + "; ".join(short for short, _ in contraindications),
                f"Cidofovir contraindicated: {contraindications[0][0]} and {len(contraindications) - 1} more (label)")
        else:
            summary = "Cidofovir with a nephrotoxic drug: check it is stopped or kidney function monitored"
        # The removal's reason says what the card says: a caution (a nephrotoxic co-medication) is no contraindication.
        reason = "contraindicated (label)" if critical else "nephrotoxic co-medication (label: stop them ≥ 7 days before)"
        remove, also_lines = _kidney_stop(order, "cidofovir", facts, reason, course=critical)
        lines = [
            f"**Ordered:** {describe_order(order)}",
            "**Contraindications (label):**" if critical else "**Nephrotoxic co-medication (label: stop nephrotoxic agents ≥ 7 days before):**",
            *(f"- {full}" for _, full in contraindications),
            *(f"- {c}" for c in cautions),
            *also_lines,
            *([f"**Checked, within the label's limits:** {'; '.join(within)}."] if within else []),
            "",
            "Cidofovir label: contraindicated with serum creatinine > 1.5 mg/dL, CrCl ≤ 55 mL/min, urine protein "
            "≥ 100 mg/dL (≥ 2+) or other nephrotoxic agents (stop them ≥ 7 days before); also with a probenecid or "
            "sulfa allergy (read from the allergies on record).",
            *([CIDOFOVIR_RISE_RULE] if isinstance(rise, CreatinineRise) else []),
            # How to give it is no advice on a drug the label says not to give.
            *([] if critical else [f"If given: {cidofovir_preparation(facts)}"]),
            *([probenecid] if probenecid else []),
        ]
        result.append(
            Finding(
                topic="nephrotoxicity",
                indicator="critical" if critical else "warning",
                summary=summary,
                detail="\n".join(lines),
                sources=cite("cidofovir-label"),
                proposals=(remove,),
                override_reasons=("benefit-outweighs-risk", "specialist-directed", "newer-result-elsewhere"),
                order_id=order.id,
                key=f"nephrotoxicity|{order.id}",
            )
        )
    elif probenecid:
        result.append(_without_probenecid(order, probenecid, cidofovir_preparation(facts)))
    return result


def _probenecid_missing(order: MedicationOrder, facts: ClinicalFacts) -> str | None:
    """A cidofovir draft with no probenecid drafted with it or active on record, in words; None otherwise.
    The label gives every dose with probenecid and saline (its regimen to limit the nephrotoxicity)."""
    if not order.is_draft or any(in_group(m, "probenecid") for m in (*facts.drafts, *facts.active_medications)):
        return None
    on_record = ("nor active on record" if retrieved(facts, "medications")
                 else "and orders on record could not be retrieved to check for one")
    return (f"**Probenecid:** none drafted with it, {on_record}: order it with the cidofovir (label), or record why "
            "it is not given.")


def _without_probenecid(order: MedicationOrder, missing: str, preparation: str) -> Finding:
    """The card of a cidofovir draft whose only kidney finding is the probenecid it lacks."""
    return Finding(
        topic="nephrotoxicity",
        indicator="warning",
        summary="Cidofovir ordered without probenecid: the label gives each dose with probenecid and IV saline",
        detail="\n".join([
            f"**Ordered:** {describe_order(order)}",
            missing,
            "",
            f"**With each dose (label):** {preparation}",
        ]),
        sources=cite("cidofovir-label"),
        override_reasons=("already-addressed", "specialist-directed", "patient-specific-regimen"),
        order_id=order.id,
        key=f"nephrotoxicity|{order.id}",  # the draft's one kidney card
    )


def _kidney_stop(
    order: MedicationOrder, drug: str, facts: ClinicalFacts, reason: str, course: bool = True
) -> tuple[StopOrderProposal, list[str]]:
    """The removal of a draft (or discontinuation of an order on record) the label says not to give for
    the kidneys, and the card's lines about what goes with it.  With `course`, a draft's removal
    discontinues the drug's orders on record too (the same limit applies to each of their doses:
    accepted alone, it must not leave them running; an order on record has a card of its own, on
    patient-view); the probenecid drafted for a cidofovir draft goes with it when no cidofovir order
    stays (drugs.drafted_with)."""
    on_record = tuple(m for m in facts.active_medications if m.id != order.id and cmv_drug(m) == drug
                      ) if course and order.is_draft else ()
    probenecid = drafted_with(order, facts, leaving={m.id for m in on_record})
    verb, what = ("Remove", "the removal") if order.is_draft else ("Discontinue", "the stop")
    stop = StopOrderProposal(
        f"{verb} the {drug} order" + (" and its probenecid" if probenecid else ""), order.id, reason,
        also=(*carried_stops((m.id for m in on_record), reason), *carried_stops((d.id for d in probenecid), COMPANION_REASON, "Remove")),
    )
    lines = [also_on_record(on_record, "the same limit applies to each of its doses", f"{what} offered here")] if on_record else []
    return stop, lines


def cidofovir_banded(order: MedicationOrder, facts: ClinicalFacts, policy: Policy) -> bool:
    """Whether the label's 5 mg/kg bands judge a cidofovir order on record: its creatinine rise since the
    course began is known and short of the 3 mg/kg step, and nothing the label lists rules out its next
    dose (cidofovir_nephrotoxicity).  Else its next dose's order is judged (order hooks)."""
    rise = creatinine_rise(order, facts, policy)
    if not isinstance(rise, CreatinineRise) or rise.judged >= T.CIDOFOVIR_REDUCE_RISE_MG_DL:
        return False
    return not _cidofovir_contraindicated(order, facts, policy, rise)


def reduced_dose_due(rise: "CreatinineRise | str | None") -> bool:
    """The label's 3 mg/kg applies (creatinine up 0.3-0.4 mg/dL since the course began): the card
    above proposes it, in place of the usual 5 mg/kg."""
    return isinstance(rise, CreatinineRise) and T.CIDOFOVIR_REDUCE_RISE_MG_DL <= rise.judged < T.CIDOFOVIR_STOP_RISE_MG_DL


@frozen
class CreatinineRise:
    """Creatinine now against the baseline before the cidofovir course."""

    start: date  # the course's start
    baseline: Measurement  # the newest creatinine on or before `start`
    current: Measurement  # the newest creatinine, newer than the baseline

    @property
    def up(self) -> float:
        """mg/dL, to the digits a card shows."""
        return round(self.current.value - self.baseline.value, 2)

    @property
    def judged(self) -> float:
        """The rise at the label's 0.1 mg/dL steps (rounded half up), as its rows are compared with: from
        the exact difference (float noise removed), not from `up`, which is already rounded."""
        rise = self.current.value - self.baseline.value
        return at_step(rise, Decimal(T.CIDOFOVIR_RISE_STEP_MG_DL), ROUND_HALF_UP)

    def stop_rule(self) -> str:
        """Why a rise at the stop is one, for a summary: '≥ 0.5', or '0.5 in the label's steps' for 0.45."""
        return "≥ 0.5" if self.up >= T.CIDOFOVIR_STOP_RISE_MG_DL else f"{fmt(self.judged)} in the label's steps"

    def words(self) -> str:
        step = f" ({fmt(self.judged)} in the label's {T.CIDOFOVIR_RISE_STEP_MG_DL} mg/dL steps)" if self.judged != self.up else ""
        return (
            f"up {fmt(self.up)} mg/dL{step} since the cidofovir course began ({self.start.isoformat()}): "
            f"baseline {show(self.baseline)}, now {show(self.current)}"
        )


def creatinine_rise(order: MedicationOrder, facts: ClinicalFacts, policy: Policy) -> CreatinineRise | str | None:
    """The rise the label judges, or why it cannot be judged (words), or None with nothing to judge.

    The course starts at the earliest start among the cidofovir orders on record (active or recently
    ended; an order on record is one of them); without one, a draft is a first dose.  Baseline: the newest exact creatinine on or
    before that day.  Current: the newest creatinine, as the contraindication check reads it; an
    exact value newer than the baseline is needed (the pre-dose check asks for one when missing).
    """
    course = cidofovir_course(order, facts, policy.cidofovir_course_gap_days)
    if not course:
        return None
    day = cidofovir_course_day(order, facts, policy, course)
    if day is None:
        return "the start of the cidofovir course is not on record"
    start = day[0]
    latest = current(facts, "creatinine", policy.creatinine_max_age_days)
    if latest is None:
        return None  # no current creatinine: the pre-dose check says why and asks for one
    series = [m for m in facts.labs.series("creatinine") if m.effective is not None]
    baseline = next((m for m in series if m.effective.date() <= start and m.comparator is None), None)
    if baseline is None:
        oldest = f"; the earliest creatinine read is {show(series[-1])}" if series else ""
        return f"no creatinine on record on or before the start of the cidofovir course ({start.isoformat()}){oldest}"
    if latest.comparator is not None or latest.effective <= baseline.effective:
        return None
    return CreatinineRise(start, baseline, latest)


def reduced_dose(order: MedicationOrder, facts: ClinicalFacts, policy: Policy) -> tuple[RenalDose | CannotDose, int | None]:
    """The label's 3 mg/kg for the order's schedule: the 5 mg/kg band dose of renal_dose, recomputed
    per kg of the same dosing weight and rounded the same way; and, in induction, the days of it left (the
    weekly doses stop at day 14 of the course, then every 2 weeks).  Weekly within the course's first 14
    days is induction; anything else, or an unreadable interval, maintenance (the course is under way)."""
    weekly = T.CIDOFOVIR.doses["induction"][0].interval_hours
    course = cidofovir_course_day(order, facts, policy)
    induction = course is None or course[1] < T.CIDOFOVIR_INDUCTION_DAYS
    phase = "induction" if induction and order.interval_hours and order.interval_hours <= weekly else "maintenance"
    dose = renal_dose("cidofovir", phase, facts, policy)
    if not isinstance(dose, RenalDose) or dose.dose_mg is None:
        return dose, None
    days_left = None
    if phase == "induction":
        days_left, schedule = cidofovir_induction_left(order, facts, policy)
        if schedule:
            dose = replace(dose, schedule=schedule, calculation=dose.calculation.replace(dose.schedule, schedule))
    # renal_dose computed an mg/kg dose, so there is a dosing weight.
    per_kg = T.CIDOFOVIR_REDUCED_MG_PER_KG
    mg, calculation = weight_based_dose("cidofovir", per_kg, facts.dosing_weight, dose.schedule, policy)
    if mg <= 0:
        return rounded_to_nothing("cidofovir", calculation), None
    return replace(dose, dose_mg=mg, mg_per_kg=per_kg, calculation=calculation), days_left


def _reduced_dose_finding(
    order: MedicationOrder, rise: CreatinineRise, dose: RenalDose | CannotDose, cautions: list[str], days_left: int | None,
    preparation: str, probenecid: str | None = None,
) -> Finding:
    """Creatinine up 0.3-0.4 mg/dL during the course: the label's 3 mg/kg, in mg for this patient (in induction,
    an order bounded to the induction's days left: the every-2-weeks maintenance is a new order)."""
    per_kg = f"{fmt(T.CIDOFOVIR_REDUCED_MG_PER_KG)} mg/kg"
    lines = [f"**Ordered:** {describe_order(order)}", f"**Creatinine rise:** {rise.words()}.", CIDOFOVIR_RISE_RULE]
    proposals: tuple = ()
    if isinstance(dose, RenalDose) and dose.dose_mg is not None:
        shown = f"{fmt(dose.dose_mg)} mg ({per_kg}) {dose.schedule}"
        summary = f"Cidofovir: creatinine up {fmt(rise.up)} mg/dL during the course: {per_kg} (label), {fmt(dose.dose_mg)} mg {dose.schedule}"
        lines += [
            f"**Dose ({dose.phase}):** {shown}. Calculation: {dose.calculation}.",
            *([f"**Induction left:** {days_left} days: the order ends with the induction (label: once weekly for 2 "
               "weeks, then every 2 weeks); the every-2-weeks maintenance is a new order."] if days_left else []),
            *inputs_block(dose.inputs),
        ]
        proposals = (band_proposal(f"Change to cidofovir {shown}", dose, order, replaces=order.id, recommended=True,
                                   duration_days=days_left),)
    else:
        summary = f"Cidofovir: creatinine up {fmt(rise.up)} mg/dL during the course: {per_kg} (label)"
        why = "; ".join(dose.reasons) if isinstance(dose, CannotDose) else dose.not_recommended
        lines.append(f"**Dose:** {per_kg} x dosing weight; not computed in mg: {why}.")
    if cautions:
        lines += ["", "**Nephrotoxic co-medication:**", *(f"- {c}" for c in cautions)]
    lines += ["", f"If given: {preparation}", *([probenecid] if probenecid else [])]
    return Finding(
        topic="nephrotoxicity",
        indicator="warning",
        summary=summary,
        detail="\n".join(lines),
        sources=cite("cidofovir-label"),
        proposals=proposals,
        override_reasons=("dose-confirmed-id-pharmacy", "specialist-directed", "newer-result-elsewhere"),
        order_id=order.id,
        key=f"nephrotoxicity|{order.id}",
    )


def foscarnet_below_the_table(facts: ClinicalFacts) -> tuple[bool, bool]:
    """(Foscarnet not recommended for the kidneys, because of dialysis): CrCl below the label's table
    (0.4 mL/min/kg), or dialysis (unless a current clearance says otherwise: renal_dose then asks to
    confirm it)."""
    per_kg = facts.renal.crcl_ml_min_per_kg if facts.renal else None
    too_low = per_kg is not None and per_kg < T.FOSCARNET_MIN_CRCL_PER_KG
    dialysis = dialysis_row("foscarnet", facts)
    return too_low or dialysis, dialysis


def foscarnet_nephrotoxicity(order: MedicationOrder, facts: ClinicalFacts) -> Result:
    """Critical below CrCl 0.4 mL/min/kg (label: not recommended); warning with another nephrotoxin."""
    too_low, dialysis = foscarnet_below_the_table(facts)
    # Another foscarnet order (maintenance after induction, a copy) is the same drug, not another
    # nephrotoxin: the duplicate-therapy card speaks of it.
    others = [o for o in other_orders(facts, order) if is_nephrotoxin(o) and cmv_drug(o) != "foscarnet"]
    partners = [o for o in others if not is_nephrotoxic_immunosuppressant(o)]
    immunosuppressants = [o for o in others if is_nephrotoxic_immunosuppressant(o)]
    if not too_low and not partners:
        return []  # a calcineurin inhibitor alone is the usual transplant regimen: not a card of its own
    lines = [f"**Ordered:** {describe_order(order)}"]
    if dialysis:
        summary = "Foscarnet not recommended on dialysis: the label's renal table ends at CrCl 0.4 mL/min/kg"
        lines.append(
            f"**{renal_replacement_words(facts)}:** a dialysed patient's own clearance is below 0.4 mL/min/kg, "
            "where the label's renal table ends (not recommended)."
        )
    elif too_low:
        per_kg = facts.renal.crcl_ml_min_per_kg  # too low, not on dialysis: a clearance was computed
        summary = f"Foscarnet not recommended: CrCl {fmt(per_kg)} mL/min/kg is below 0.4 (label)"
        lines.append(f"**CrCl {fmt(per_kg)} mL/min/kg** ({facts.renal.calculation or facts.renal.method}): the label's renal table ends at 0.4 mL/min/kg; stop foscarnet below it.")
    else:
        names = ", ".join(dict.fromkeys(drug_name(o) for o in partners))
        summary = f"Foscarnet with another nephrotoxic drug ({names}): additive kidney injury"
    if too_low:
        stop, also_lines = _kidney_stop(order, "foscarnet", facts, "nephrotoxicity")
        lines += also_lines
    if partners or immunosuppressants:
        lines.append("**Other nephrotoxic drugs ordered:** " + list_orders(partners + immunosuppressants))
    lines.append(
        "Foscarnet causes kidney impairment in about a quarter of patients (clinical brief). Monitor CrCl 2-3 times "
        "a week during induction and every 1-2 weeks in maintenance, with electrolytes on the same schedule (label)."
    )
    if not too_low:  # how to give it is no advice on a drug the label says not to give (nor fluid on dialysis)
        lines.append(T.FOSCARNET_HYDRATION)
    else:  # it may be the only treatment left (ganciclovir resistant or ruled out): say who decides what follows
        lines.append("The label gives no foscarnet dose below 0.4 mL/min/kg: choose what follows with infectious diseases.")
    return [
        Finding(
            topic="nephrotoxicity",
            indicator="critical" if too_low else "warning",
            summary=summary,
            detail="\n".join(lines),
            sources=cite("foscarnet-label", "clinical-brief"),
            proposals=(stop,) if too_low else (),
            override_reasons=("benefit-outweighs-risk", "dialysis-nephrology", "monitoring-arranged", "specialist-directed"),
            order_id=order.id,
            key=f"nephrotoxicity|{order.id}",
        )
    ]


# Why a failing course is not corrected upward (resistance.suspected_resistance's `ruled_out`).
COUNTS_RULE_OUT = "the blood counts are below the label's limits (see the blood-count card)"
KIDNEYS_RULE_OUT = "the label says not to give it for the kidneys (see the nephrotoxicity card)"


def kidneys_rule_out(draft: MedicationOrder, drug: str, facts: ClinicalFacts, policy: Policy) -> bool:
    """Whether the label says not to give a draft for the kidneys (its critical nephrotoxicity card)."""
    if drug == "foscarnet":
        return foscarnet_below_the_table(facts)[0]
    return drug == "cidofovir" and _cidofovir_contraindicated(draft, facts, policy, creatinine_rise(draft, facts, policy))


def _cidofovir_contraindicated(order: MedicationOrder, facts: ClinicalFacts, policy: Policy, rise) -> bool:
    """Whether cidofovir_nephrotoxicity finds something the label lists that rules out the order's dose."""
    return any(isinstance(f, Finding) and f.indicator == "critical"
               for f in cidofovir_nephrotoxicity(order, facts, policy, rise))


def cidofovir_step_on_record(order: MedicationOrder, facts: ClinicalFacts, policy: Policy) -> Finding | None:
    """A cidofovir order on record whose creatinine has risen 0.3-0.4 mg/dL since its course began
    (patient-view): the card its next dose would get (the label's 3 mg/kg, or what rules that dose out),
    for the order that gives that dose.  Short of the step the 5 mg/kg bands judge it (cidofovir_banded);
    at a stop kidneys_stop_on_record speaks."""
    rise = creatinine_rise(order, facts, policy)
    if not reduced_dose_due(rise):
        return None
    # Its pre-dose checks (gaps) are for the dose's own order: a view is not a dose.
    found = [f for f in cidofovir_nephrotoxicity(order, facts, policy, rise) if isinstance(f, Finding)]
    ruled_out = next((f for f in found if f.indicator == "critical"), None)
    if ruled_out is not None:
        return ruled_out
    dose, _ = reduced_dose(order, facts, policy)
    if isinstance(dose, RenalDose) and matches_band(order, dose, facts, policy):
        return None  # at 3 mg/kg already: a nephrotoxic co-medication is no more news than on the 5 mg/kg bands
    return next(iter(found), None)


def kidneys_stop_on_record(order: MedicationOrder, drug: str, facts: ClinicalFacts, policy: Policy) -> Finding | None:
    """An order on record the label says to stop for the kidneys (patient-view; critical, as a draft's
    card is): cidofovir whose creatinine has risen ≥ 0.5 mg/dL since its course began, or with ≥ 3+
    proteinuria (by dipstick, or measured at the strip's 3+ pad or above); foscarnet below the label's renal table.  Only the label's stops: its contraindications
    to starting are for the order that gives the next dose (order hooks), the 3 mg/kg step is
    cidofovir_step_on_record's, and a rise that cannot be judged is for the missing-data card."""
    if drug == "foscarnet":
        return next((f for f in foscarnet_nephrotoxicity(order, facts) if f.indicator == "critical"), None)
    if drug != "cidofovir":
        return None
    reasons: list[tuple[str, str]] = []  # (short for the summary, full for the detail)
    rise = creatinine_rise(order, facts, policy)
    if isinstance(rise, CreatinineRise) and rise.judged >= T.CIDOFOVIR_STOP_RISE_MG_DL:
        reasons.append((f"creatinine up {fmt(rise.up)} mg/dL since the course began ({rise.stop_rule()})", f"creatinine {rise.words()}"))
    dipstick = current(facts, "urine_protein_dipstick", policy.urine_protein_max_age_days)
    if dipstick is not None and below(dipstick, T.CIDOFOVIR_STOP_DIPSTICK_GRADE) is False:
        grade = f"urine protein {fmt(dipstick.value)}+ by dipstick"
        reasons.append((f"{grade} (≥ 3+)", f"{grade} ({dipstick.date_words})" if dipstick.effective else grade))
    quantitative = current(facts, "urine_protein", policy.urine_protein_max_age_days)
    limit = T.CIDOFOVIR_STOP_URINE_PROTEIN_MG_DL
    if quantitative is not None and below(quantitative, limit) is False:
        value = f"urine protein {quantitative.comparator or ''}{fmt(quantitative.value, beside=limit)} mg/dL"
        reasons.append((f"{value} (≥ 3+)", f"urine protein {show(quantitative, limit)}: ≥ {fmt(limit)} "
                                            "mg/dL, the 3+ pad of a reagent strip (the scale on which the label equates "
                                            "≥ 100 mg/dL with 2+)"))
    if not reasons:
        return None
    # A course between doses (its last order completed): no order to stop, no further dose to give.
    running = running_on_record(order, facts)
    stop = _kidney_stop(order, drug, facts, "label: stop during the course")[0] if running else None
    # Probenecid on record may be for the cidofovir doses, or for gout: named, not stopped.
    probenecid = [m for m in facts.active_medications if in_group(m, "probenecid")]
    return Finding(
        topic="nephrotoxicity",
        indicator="critical",
        summary="Cidofovir: " + "; ".join(short for short, _ in reasons) + (": stop (label)" if running else ": no further dose (label: stop)"),
        detail="\n".join([
            f"**On record:** {describe_order(order)}" + ("" if running else ", completed: give no further cidofovir dose"),
            "**Stop (label):**",
            *(f"- {full}" for _, full in reasons),
            CIDOFOVIR_RISE_RULE,
            *([f"**Probenecid on record:** {list_orders(probenecid)}: given with the cidofovir doses; stop it with "
               "the cidofovir unless it is for another reason."] if probenecid else []),
            "Choose what follows with infectious diseases.",
        ]),
        sources=cite("cidofovir-label"),
        proposals=(stop,) if stop else (),
        override_reasons=("benefit-outweighs-risk", "specialist-directed", "newer-result-elsewhere"),
        order_id=order.id,
        key=f"nephrotoxicity|{order.id}",
    )


def nephrotoxin_with_cmv_drug(order: MedicationOrder, facts: ClinicalFacts, target_ids: frozenset[str]) -> Result:
    """A nephrotoxic (non-CMV) target drafted while foscarnet or cidofovir is ordered."""
    if not is_nephrotoxin(order):
        return []
    result: Result = []
    for other in other_orders(facts, order):
        drug = cmv_drug(other)
        if drug not in ("foscarnet", "cidofovir") or other.id in target_ids:
            continue  # a targeted foscarnet/cidofovir order reports the pair itself
        cidofovir = drug == "cidofovir"
        if is_nephrotoxic_immunosuppressant(order) and not cidofovir:
            continue  # as for foscarnet orders: a calcineurin inhibitor alone is no card
        contraindicated = cidofovir and not is_nephrotoxic_immunosuppressant(order)
        drug_words = drug_name(order)
        effect = (
            "cidofovir is contraindicated with other nephrotoxic agents (label: stop them ≥ 7 days before a dose)"
            if contraindicated
            else "a nephrotoxic immunosuppressant with cidofovir: monitor kidney function before each dose"
            if cidofovir
            else "additive kidney injury with foscarnet (label)"
        )
        result.append(
            Finding(
                topic="nephrotoxicity",
                indicator="critical" if contraindicated else "warning",
                summary=f"{drug_words.capitalize()} is nephrotoxic and {drug} is ordered: {'contraindicated' if contraindicated else 'additive kidney injury'}",
                detail="\n".join(
                    [
                        f"**Ordered:** {describe_order(order)}",
                        f"**Anti-CMV order:** {describe_order(other)}",
                        f"{effect.capitalize()}.",
                        # No litre of saline per dose for a dialysed patient.
                        *([] if facts.conditions.renal_replacement == "dialysis" else
                          [cidofovir_preparation(facts) if cidofovir else T.FOSCARNET_HYDRATION]),
                    ]
                ),
                sources=cite(f"{drug}-label"),
                # never propose removing an immunosuppressant: rejection outweighs the kidney risk
                proposals=()
                if is_nephrotoxic_immunosuppressant(order)
                else (StopOrderProposal(f"Remove the {drug_words} order", order.id, f"nephrotoxic with {drug}"),),
                override_reasons=("benefit-outweighs-risk", "specialist-directed", "monitoring-arranged"),
                order_id=order.id,
                key=f"nephrotoxicity|{order.id}|{other.id}",
            )
        )
    return result


# ---------------------------------------------------------------------------------------------
# Electrolytes (foscarnet)


def _electrolytes(policy: Policy) -> tuple[tuple[str, float, str], ...]:
    """(analyte, local lower limit, cards test key); the limits apply only without the lab's range."""
    return (
        ("potassium", policy.potassium_low_mmol_l, "potassium"),
        ("magnesium", policy.magnesium_low_mg_dl, "magnesium"),
        ("calcium", policy.calcium_low_mg_dl, "calcium"),
        ("ionized_calcium", policy.ionized_calcium_low_mmol_l, "ionized-calcium"),
        ("phosphate", policy.phosphate_low_mg_dl, "phosphate"),
    )


# Foscarnet also raises phosphate (label: hypo- or hyperphosphataemia).  High only by the lab's flag or
# reference range: no local upper limit is set.
HIGH_TOO = ("phosphate",)


@frozen
class Electrolytes:
    """Foscarnet's electrolytes as of now: low (with the limit used), high, current values, and those
    with no result within the policy's window (with the test that would give one)."""

    low: tuple[tuple[Measurement, float], ...]
    high: tuple[Measurement, ...]
    values: dict[str, Measurement]
    missing: tuple[tuple[str, str], ...]  # (analyte, cards test key)
    # Flagged abnormal by the lab with no direction (A), inside every limit known here: not "in range".
    abnormal: tuple[Measurement, ...] = ()

    @property
    def out_of_range(self) -> bool:
        return bool(self.low or self.high or self.abnormal)

    @property
    def worth_saying(self) -> bool:
        return self.out_of_range or bool(self.missing)


def read_electrolytes(facts: ClinicalFacts, policy: Policy) -> Electrolytes:
    low: list[tuple[Measurement, float]] = []
    values: dict[str, Measurement] = {}
    for analyte, limit, _ in _electrolytes(policy):
        m = current(facts, analyte, policy.electrolyte_max_age_days)
        if m is None:
            continue
        values[analyte] = m
        if is_low(m, limit):
            low.append((m, limit))
    shown_low = [m for m, _ in low]
    high = [m for a, m in values.items() if a in HIGH_TOO and m not in shown_low and flagged_high(m)]
    abnormal = [m for m in values.values() if m.interpretation == "A" and m not in shown_low and m not in high]
    calcium = {"calcium", "ionized_calcium"}
    # One calcium (total or ionized) is a baseline; without either, both are proposed.
    missing = [(a, test) for a, _, test in _electrolytes(policy)
               if not (a in values or (a in calcium and calcium & set(values)))]
    return Electrolytes(tuple(low), tuple(high), values, tuple(missing), tuple(abnormal))


def electrolyte_lines(e: Electrolytes, facts: ClinicalFacts, policy: Policy) -> list[str]:
    """The low, high, missing and in-range electrolytes in words, as the cards show them."""
    days = policy.electrolyte_max_age_days
    lines = []
    if e.low:
        lines.append("**Low:** " + "; ".join(f"{name(m.analyte)} {show(m, low_limit(m, limit))}, {low_basis(m, limit)}"
                                            for m, limit in e.low))
        lines.append("Correct before and during foscarnet.")
    if e.high:
        lines.append("**High:** " + "; ".join(f"{name(m.analyte)} {show(m, high_limit(m))}, {high_basis(m)}" for m in e.high))
    if e.missing:
        lines.append(f"**No baseline within {days} days:** " + "; ".join(why_not_current(facts, a, days) for a, _ in e.missing))
    if e.abnormal:
        lines.append("**Flagged abnormal by the lab, no direction given:** "
                     + "; ".join(f"{name(m.analyte)} {show(m)}" for m in e.abnormal) + ": check it.")
    shown_low = [m for m, _ in e.low]
    normal = [m for m in e.values.values() if m not in shown_low and m not in e.high and m not in e.abnormal]
    if normal:
        lines.append("**Current, in range:** " + "; ".join(f"{name(m.analyte)} {show(m)}" for m in normal))
    return lines


def foscarnet_electrolytes_block(facts: ClinicalFacts, policy: Policy) -> str | None:
    """For a card that proposes foscarnet: the electrolytes to correct or check first (label), if any."""
    e = read_electrolytes(facts, policy)
    if not e.worth_saying:
        return None
    return "**Electrolytes before foscarnet (label):**\n" + "\n".join(f"- {line}" for line in electrolyte_lines(e, facts, policy))


def electrolytes(order: MedicationOrder, facts: ClinicalFacts, policy: Policy) -> Result:
    """Foscarnet with electrolytes out of range, or without a current value (the tests proposed).  For
    a foscarnet order on record (patient-view) only a value out of range is worth a card, and it orders
    no test: the monitoring plan asks for the overdue ones."""
    e = read_electrolytes(facts, policy)
    if not (e.worth_saying if order.is_draft else e.out_of_range):
        return []
    low, high, values, missing = e.low, e.high, e.values, e.missing
    days = policy.electrolyte_max_age_days
    parts = []
    if low:
        parts.append("low " + ", ".join(f"{name(m.analyte)} {fmt(m.value, beside=low_limit(m, limit))} {m.unit}"
                                        for m, limit in low))
    if high:
        parts.append("high " + ", ".join(f"{name(m.analyte)} {fmt(m.value, beside=high_limit(m))} {m.unit}" for m in high))
    if e.abnormal:
        parts.append("flagged abnormal " + ", ".join(f"{name(m.analyte)} {fmt(m.value)} {m.unit}" for m in e.abnormal))
    # A newest result still preliminary is a test resulting: said so, not called absent nor ordered again.
    pending = [a for a, _ in missing if resulting(facts, a, days)]
    absent = [(a, test) for a, test in missing if a not in pending]
    if absent:
        parts.append(f"no {', '.join(name(a) for a, _ in absent)} in {days} days")
    if pending:
        parts.append(f"{', '.join(name(a) for a in pending)} resulting (preliminary)")
    summary = fitting(f"Foscarnet with {'; '.join(parts)}",
                      f"Foscarnet: {len(low) + len(high) + len(e.abnormal)} electrolyte(s) out of range, {len(missing)} "
                      f"without a baseline in {days} days")
    lines = [f"**Ordered:** {describe_order(order)}", *electrolyte_lines(e, facts, policy)]
    lines += [
        "",
        "Foscarnet (label): hypocalcaemia (ionized calcium may fall while total calcium looks normal), hypo- or "
        "hyperphosphataemia, hypomagnesaemia and hypokalaemia; seizures; QT prolongation. Check electrolytes "
        "2-3 times a week during induction and every 1-2 weeks in maintenance.",
        "A value counts as low by the lab's flag or reference range; only without either, by the local lower limit "
        "(policy; a flag with no direction, A, is no such flag). Phosphate also counts as high, by the lab's flag or "
        "range only.",
    ]
    proposals = tuple(LabOrderProposal(f"Order {name(a)}", test) for a, test in absent)
    if "calcium" in values and "ionized_calcium" not in values:
        # Not a card of its own (a total calcium is a baseline); said when the card is shown anyway.
        if resulting(facts, "ionized_calcium", days):
            lines.append("Only a total calcium is current: ionized calcium may fall while total calcium looks normal "
                         "(label); an ionized calcium is resulting (preliminary).")
        else:
            lines.append("Only a total calcium is current: ionized calcium may fall while total calcium looks normal "
                         f"(label); an ionized calcium shows it (none in {days} days).")
            proposals += (LabOrderProposal("Order ionized calcium", "ionized-calcium"),)
    if not order.is_draft:
        proposals = ()
    return [
        Finding(
            topic="electrolyte-abnormality",
            indicator="warning",
            summary=summary,
            detail="\n".join(lines),
            sources=cite("foscarnet-label"),
            proposals=proposals,
            selection="any",
            override_reasons=("monitoring-arranged", "lab-result-pending", "newer-result-elsewhere", "already-addressed"),
            order_id=order.id,
            key=f"electrolyte-abnormality|{order.id}",
        )
    ]

