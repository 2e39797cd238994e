"""Hand-built ClinicalFacts for the clinical rule tests (no FHIR, no facts layer).

Defaults: a 60-year-old man, 70 kg (actual weight, 2 days ago), creatinine 1.0 mg/dL yesterday
(Cockcroft-Gault (140 - 60) x 70 / (72 x 1.0) = 77.8 mL/min, 1.11 mL/min/kg), normal blood counts
and electrolytes yesterday, no conditions, no viral loads, no orders.

    make_facts(**overrides)                  any ClinicalFacts field, plus the conveniences below
    measurement(analyte, value, days_ago)    a lab value in its canonical unit
    order(ingredient, dose_mg, interval_hours, route, ...) / draft(...)   a MedicationOrder
    renal(crcl, ...) / cockcroft_gault(...)  a RenalFunction; vl(...), pp65(...), conditions(...)
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable

from reliability.contract import UNCOMPUTED

from cds_service.cards import contract_problems
from cds_service.clinical import check_orders
from cds_service.clinical.findings import DoseProposal, Finding, LabOrderProposal, StopOrderProposal
from cds_service.facts.drugs import classes_of, ingredients_named
from cds_service.facts.medications import newest_first
from cds_service.facts.model import (
    ANALYTE_UNITS,
    ClinicalFacts,
    ConditionEvidence,
    ConditionFacts,
    DataQualityIssue,
    DosingWeight,
    LabFacts,
    Measurement,
    MedicationOrder,
    PatientFacts,
    Pp65Result,
    RenalFunction,
    ViralLoadResult,
    ViralLoadSeries,
)
from cds_service.policy import Policy

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
TODAY = NOW.date()
POLICY = Policy()

NORMAL_LABS: dict[str, float] = {
    "creatinine": 1.0,
    "anc": 4200.0,
    "wbc": 6400.0,
    "platelets": 215000.0,
    "hemoglobin": 13.8,
    "potassium": 4.2,
    "magnesium": 1.9,
    "calcium": 9.2,
    "ionized_calcium": 1.2,
    "phosphate": 3.4,
}

IV_DRUGS = ("ganciclovir", "foscarnet", "cidofovir", "vancomycin", "amphotericin b", "gentamicin", "imipenem-cilastatin")


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def day(n: int) -> date:
    """The date n days before the evaluation date (negative: after it)."""
    return TODAY - timedelta(days=n)


# ---------------------------------------------------------------------------------------------
# Inputs


def measurement(
    analyte: str,
    value: float,
    days_ago: float | None = 1,
    *,
    reported: str | None = None,
    comparator: str | None = None,
    interpretation: str | None = None,
    reference_low: float | None = None,
    reference_high: float | None = None,
    source_id: str | None = None,
) -> Measurement:
    """A value in the analyte's canonical unit; `reported` is the original ('132.6 umol/L')."""
    unit = ANALYTE_UNITS[analyte]
    effective = NOW - timedelta(days=days_ago) if days_ago is not None else None
    return Measurement(
        analyte=analyte,
        value=value,
        unit=unit,
        effective=effective,
        source_id=source_id or f"Observation/{analyte}-{days_ago}",
        reported=reported or f"{comparator or ''}{value:g} {unit}",
        comparator=comparator,
        interpretation=interpretation,
        reference_low=reference_low,
        reference_high=reference_high,
    )


def cockcroft_gault(
    age: int, weight: Measurement, creatinine: Measurement, sex: str = "male", *, weight_kg_used: float | None = None
) -> RenalFunction:
    """Cockcroft-Gault as the labels define it (mL/min, and per kg for foscarnet)."""
    kg = weight_kg_used if weight_kg_used is not None else weight.value
    factor = 0.85 if sex in ("female", "unknown") else 1.0
    per_kg = (140 - age) / (72 * creatinine.value) * factor
    crcl = per_kg * kg
    sex_part = " x 0.85" if factor != 1.0 else ""
    return RenalFunction(
        crcl_ml_min=crcl,
        crcl_ml_min_per_kg=per_kg,
        method="cockcroft-gault",
        creatinine=creatinine,
        creatinine_mg_dl_used=creatinine.value,
        weight=weight,
        weight_kg_used=kg,
        weight_basis="actual",
        age_years=age,
        sex_factor=factor,
        assumptions=("sex unknown: female factor 0.85 applied (lower CrCl)",) if sex == "unknown" else (),
        calculation=f"(140 - {age}) x {kg:g} kg / (72 x {creatinine.value:.2f} mg/dL){sex_part} = {crcl:.1f} mL/min",
    )


def renal(
    crcl: float,
    weight_kg: float = 70.0,
    creatinine: float = 1.0,
    age: int = 60,
    *,
    per_kg: float | None = None,
    method: str = "cockcroft-gault",
) -> RenalFunction:
    """A RenalFunction with a stated clearance (band tests); per kg defaults to crcl / weight."""
    cr = measurement("creatinine", creatinine)
    wt = measurement("weight", weight_kg, 2)
    return RenalFunction(
        crcl_ml_min=crcl,
        crcl_ml_min_per_kg=per_kg if per_kg is not None else crcl / weight_kg,
        method=method,
        creatinine=cr if method == "cockcroft-gault" else None,
        creatinine_mg_dl_used=creatinine if method == "cockcroft-gault" else None,
        weight=wt,
        weight_kg_used=weight_kg,
        weight_basis="actual",
        age_years=age,
        sex_factor=1.0,
        calculation=f"stated for the test: {crcl:g} mL/min",
        reported=measurement("crcl_reported", crcl) if method == "reported" else None,
    )


def dosing_weight(weight: Measurement | float, basis: str = "actual") -> DosingWeight:
    if not isinstance(weight, Measurement):
        weight = measurement("weight", weight, 2)
    return DosingWeight(weight.value, basis, weight, calculation=f"{basis} weight {weight.value:g} kg")


def vl(value: float | None, days_ago: float, *, scale: str | None = "IU/mL", detected: bool = True, below_lloq: bool = False) -> ViralLoadResult:
    reported = f"{value:g} {scale}" if value is not None else ("detected" if detected else "not detected")
    return ViralLoadResult(
        effective=NOW - timedelta(days=days_ago),
        source_id=f"Observation/vl-{days_ago}",
        scale=scale,
        value=value if detected else None,
        detected=detected,
        below_quantification=below_lloq,
        reported=reported,
        code="72493-0",
    )


def not_detected(days_ago: float) -> ViralLoadResult:
    return vl(None, days_ago, detected=False)


def pp65(positive: bool, days_ago: float) -> Pp65Result:
    return Pp65Result(NOW - timedelta(days=days_ago), f"Observation/pp65-{days_ago}", positive, "positive" if positive else "negative")


def conditions(
    *,
    populations: Iterable[str] = (),
    sites: Iterable[str] = (),
    organs: Iterable[str] = (),
    hsct_date: date | None = None,
    ibd_types: Iterable[str] = (),
    chronic_gvhd: bool = False,
    infection: bool = False,
    intolerance: bool = False,
    resistance: bool = False,
    labels: Iterable[str] = (),
) -> ConditionFacts:
    return ConditionFacts(
        populations=frozenset(populations),
        transplant_organs=frozenset(organs),
        hsct_date=hsct_date,
        ibd_types=frozenset(ibd_types),
        chronic_gvhd=chronic_gvhd,
        cmv_disease_sites=frozenset(sites),
        cmv_infection=infection,
        ganciclovir_intolerance=intolerance,
        resistant_drugs=frozenset({"ganciclovir"} if resistance else ()),
        evidence=tuple(ConditionEvidence(label, f"Condition/{i}", f"text '{label.lower()}'") for i, label in enumerate(labels, 1)),
    )


# ---------------------------------------------------------------------------------------------
# Orders


def order(
    ingredient: str | None,
    dose_mg: float | None = None,
    interval_hours: float | None = None,
    route: str | None = "default",
    *,
    id: str | None = None,
    draft: bool = False,
    status: str | None = None,
    mg_per_kg: float | None = None,
    unit_count: float | None = None,
    unit_strength_mg: float | None = None,
    dose_form: str | None = None,
    drug_text: str | None = None,
    classes: Iterable[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    duration_days: float | None = None,
    problems: Iterable[str] = (),
    resource: dict | None = None,
) -> MedicationOrder:
    """A medication order; route defaults to IV for the IV drugs and oral otherwise.

    A tablet-count order: order("valganciclovir", unit_count=2, unit_strength_mg=450, ...) gets
    dose_mg 900 and dose_basis "2 x 450 mg tablet", as the facts layer reads the sandbox's orders.
    """
    if route == "default":
        route = "iv" if ingredient in IV_DRUGS else "oral"
    dose_basis = None
    if unit_count is not None and unit_strength_mg is not None:
        dose_mg = dose_mg if dose_mg is not None else unit_count * unit_strength_mg
        dose_basis = f"{unit_count:g} x {unit_strength_mg:g} mg tablet"
        dose_form = dose_form or "tablet"
    elif mg_per_kg is not None:
        dose_basis = f"{mg_per_kg:g} mg/kg" + (f" = {dose_mg:g} mg" if dose_mg is not None else "")
    status = status or ("draft" if draft else "active")
    slug = (ingredient or "unknown").replace(" ", "-").replace("/", "-").replace("'", "")
    systemic = route in ("iv", "oral", None) and not (drug_text and any(
        w in drug_text.lower() for w in ("ophthalmic", "intravitreal", "ointment", "eye gel")))
    if classes is None:  # as the facts layer classes the drug (facts/drugs.py)
        named = ingredients_named([t for t in (ingredient, drug_text) if t])
        classes = classes_of(named, route, dose_form) if systemic else ()
    return MedicationOrder(
        id=id or f"MedicationRequest/{slug}-{status}",
        ingredient=ingredient,
        drug_text=drug_text or ingredient,
        classes=frozenset(classes),
        is_draft=draft,
        status=status,
        intent="order",
        dose_mg=dose_mg,
        dose_basis=dose_basis,
        mg_per_kg=mg_per_kg,
        unit_count=unit_count,
        unit_strength_mg=unit_strength_mg,
        dose_form=dose_form,
        interval_hours=interval_hours,
        timing_basis=f"every {interval_hours:g} h" if interval_hours else None,
        route=route,
        start=start,
        end=end,
        duration_days=duration_days,
        problems=tuple(problems),
        systemic=systemic,
        resource=resource or {},
    )


def draft(ingredient: str | None, dose_mg: float | None = None, interval_hours: float | None = None, route: str | None = "default", **kw) -> MedicationOrder:
    return order(ingredient, dose_mg, interval_hours, route, draft=True, **kw)


# The probenecid the cidofovir label gives with each dose, drafted with a cidofovir order as an order set does
# (a cidofovir draft without it has a card of its own).
PROBENECID = draft("probenecid", 2000, 24)


# ---------------------------------------------------------------------------------------------
# Facts

_COMPUTED = object()


def make_facts(
    *,
    age: int | None = 60,
    sex: str = "male",
    weight_kg: float | None = 70.0,
    creatinine: float | None = 1.0,
    labs: dict[str, float | None] | Iterable[Measurement] | LabFacts | None = None,
    lab_ages: dict[str, float] | None = None,
    crcl: Any = _COMPUTED,
    crcl_per_kg: float | None = None,
    conds: ConditionFacts | None = None,
    meds: Iterable[MedicationOrder] = (),
    drafts: Iterable[MedicationOrder] = (),
    selected: Iterable[str] | None = None,
    viral: Iterable[ViralLoadResult] = (),
    unread_pcr: Iterable[float] = (),
    pp65s: Iterable[Pp65Result] = (),
    quality: Iterable[DataQualityIssue] = (),
    **overrides: Any,
) -> ClinicalFacts:
    """ClinicalFacts as the facts layer would build them; see the module docstring for defaults.

    labs: a dict of values merged into the normal panel (None removes an analyte), Measurements that
    replace the panel's values of their analytes, or a LabFacts used as is.
    unread_pcr: days ago of PCRs taken that could not be used (ViralLoadSeries.unread).
    crcl: default = Cockcroft-Gault from age, sex, weight and creatinine (None when one is missing,
    with a 'missing' quality issue); a number = that clearance stated (per kg: crcl_per_kg or
    crcl / weight); None = no clearance.
    Any other ClinicalFacts field can be overridden by name (renal=..., dosing_weight=..., ...).
    """
    ages = lab_ages or {}
    values: dict[str, float | None] = {**NORMAL_LABS, "creatinine": creatinine}
    extra: list[Measurement] = []
    if isinstance(labs, dict):
        values.update(labs)
    elif labs is not None and not isinstance(labs, LabFacts):
        extra = list(labs)
    by_analyte: dict[str, tuple[Measurement, ...]] = {
        a: (measurement(a, v, ages.get(a, 1)),) for a, v in values.items() if v is not None
    }
    if weight_kg is not None:
        by_analyte["weight"] = (measurement("weight", weight_kg, ages.get("weight", 2)),)
    for a in {m.analyte for m in extra}:
        by_analyte[a] = tuple(sorted((m for m in extra if m.analyte == a), key=_newest_first))
    lab_facts = labs if isinstance(labs, LabFacts) else LabFacts(by_analyte)

    issues = list(quality)
    weight = lab_facts.latest("weight")
    scr = lab_facts.latest("creatinine")
    if crcl is _COMPUTED:
        renal_fn = None
        if age is None:
            issues.append(DataQualityIssue("missing", "age", "birth date missing: age unknown"))
        if weight is None:
            issues.append(DataQualityIssue("missing", "weight", "no weight on record"))
        if scr is None:
            issues.append(DataQualityIssue("missing", "creatinine", "no creatinine result on record"))
        if age is not None and weight is not None and scr is not None:
            renal_fn = cockcroft_gault(age, weight, scr, sex)
    elif crcl is None:
        renal_fn = None
    else:
        renal_fn = renal(crcl, weight_kg or 70.0, creatinine or 1.0, age or 60, per_kg=crcl_per_kg)
    drafts = tuple(drafts)
    fields: dict[str, Any] = dict(
        evaluated_at=NOW,
        patient=PatientFacts("p1", date(TODAY.year - age, 1, 1) if age is not None else None, age, sex),
        labs=lab_facts,
        viral_load=ViralLoadSeries(tuple(sorted(viral, key=lambda r: r.effective, reverse=True)),
                                   tuple(sorted((days_ago(d) for d in unread_pcr), reverse=True))),
        pp65=tuple(sorted(pp65s, key=lambda p: p.effective, reverse=True)),
        renal=renal_fn,
        dosing_weight=dosing_weight(weight) if weight is not None else None,
        conditions=conds or ConditionFacts(),
        medications=tuple(newest_first(meds)),
        drafts=drafts,
        selected=frozenset(selected if selected is not None else (d.id for d in drafts)),
        quality=tuple(issues),
    )
    fields.update(overrides)
    return ClinicalFacts(**fields)


def _newest_first(m: Measurement):
    return -(m.effective.timestamp() if m.effective else float("-inf"))


def with_renal(facts: ClinicalFacts, **changes: Any) -> ClinicalFacts:
    return replace(facts, renal=replace(facts.renal, **changes))


# ---------------------------------------------------------------------------------------------
# Assertions


def topics(findings: list[Finding]) -> list[str]:
    return [f.topic for f in findings]


def only(findings: list[Finding], topic: str) -> Finding:
    found = [f for f in findings if f.topic == topic]
    assert len(found) == 1, f"expected one {topic} finding, got {topics(findings)}"
    return found[0]


def doses(finding: Finding) -> list[DoseProposal]:
    return [p for p in finding.proposals if isinstance(p, DoseProposal)]


def stops(finding: Finding) -> list[StopOrderProposal]:
    return [p for p in finding.proposals if isinstance(p, StopOrderProposal)]


def labs_ordered(finding: Finding) -> list[str]:
    return [p.test for p in finding.proposals if isinstance(p, LabOrderProposal)]


# A Python None where a fact was missing ("None of the ..." is English); with the uncomputed numbers the
# rendered cards are checked for (reliability/contract.py).  The factories' texts have neither.
NONE_SHOWN = re.compile(r"\bNone\b(?! of\b)")


def assert_sound(findings: list[Finding]) -> None:
    """Each finding keeps the card contract (cards.contract_problems), has a stable key and shows no
    None or uncomputed number."""
    for f in findings:
        assert contract_problems(f) == [], (f.topic, f.summary, contract_problems(f))
        assert f.key, f.topic
        shown = [m.group() for t in (f.summary, f.detail, *(p.label for p in f.proposals))
                 for m in (NONE_SHOWN.search(t), UNCOMPUTED.search(t)) if m]
        assert not shown, (f.topic, shown)


def check(facts: ClinicalFacts, targets=None) -> list[Finding]:
    """check_orders over the drafts (or `targets`), every finding checked for the card contract."""
    findings = check_orders(facts, POLICY, facts.drafts if targets is None else targets)
    assert_sound(findings)
    return findings
