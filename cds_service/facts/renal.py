"""Renal function (Cockcroft-Gault) and the dosing weight, exactly as the labels and policy say.

Cockcroft-Gault (labels): CrCl = (140 - age) x weight / (72 x SCr mg/dL), x 0.85 if female; per kg
(foscarnet) = (140 - age) / (72 x SCr), x 0.85 if female.  Which weight (actual, ideal, adjusted)
when the patient is obese, and any creatinine floor, are local policy (policy.py).  Ideal body
weight is Devine's: 50 kg (male) / 45.5 kg (female) + 2.3 kg per inch over 5 feet; adjusted =
IBW + factor x (actual - IBW), the factor a policy setting (0.4 by default).

Sex other/unknown: the female factor (0.85) and the female IBW are applied, which give the lower
CrCl and the lower weight, and the assumption is stated.  Inputs must be current (policy windows),
exact (not a bound such as "<0.3"), and the patient an adult; otherwise there is no CrCl and the
issues say which input is missing, stale or unusable.  Without a current weight the CrCl per kg is
still computed (the weight cancels), so foscarnet's bands and its "not recommended" can be read;
the CrCl in mL/min is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from cds_service.facts import quality, units
from cds_service.facts.model import (
    DataQualityIssue,
    DosingWeight,
    LabFacts,
    Measurement,
    PatientFacts,
    RenalFunction,
)
from cds_service.facts.patient import ADULT_AGE
from cds_service.frozen import frozen
from cds_service.policy import Policy

INCH_CM = 2.54
FEMALE_FACTOR = 0.85
# Digits a CrCl is computed to (and shown with): 0.1 mL/min, 0.01 mL/min/kg (foscarnet's bands).
CRCL_DIGITS = 1
CRCL_PER_KG_DIGITS = 2
# Digits the formulas' inputs are put in with, and shown with, so that a card's arithmetic can be redone
# from the card itself (a creatinine of 133 umol/L is 1.5046 mg/dL: shown as 1.5, the formula's 62.3
# mL/min read as 62.5).  Far finer than any measurement, and rounded the cautious way (creatinine up; weights
# and height down, or up where a weight divides): the clearance can only come out lower, never lifted over a
# band's edge.
CREATININE_DIGITS = 4  # mg/dL
WEIGHT_DIGITS = 2  # kg, and cm of height
_CREATININE_STEP = Decimal(1).scaleb(-CREATININE_DIGITS)
_WEIGHT_STEP = Decimal(1).scaleb(-WEIGHT_DIGITS)


def _creatinine_in_formula(mg_dl: float) -> float:
    """A creatinine as Cockcroft-Gault takes it: up to its digits (a lower clearance)."""
    return units.at_step(mg_dl, _CREATININE_STEP, ROUND_CEILING)


def _in_formula(kg_or_cm: float, divides: bool = False) -> float:
    """A weight or height as the formulas take it, to its digits: down where it multiplies (a lower clearance
    and dose), up where it divides (a reported clearance per kg)."""
    return units.at_step(kg_or_cm, _WEIGHT_STEP, ROUND_CEILING if divides else ROUND_FLOOR)


def clearance_shown(value: float, digits: int) -> float:
    """A clearance cut to the digits the card shows, never rounded up: the band is chosen from the
    value the clinician reads, and rounding cannot lift a patient into a band with a higher dose
    (0.3968 mL/min/kg is 0.39, below foscarnet's 0.4; 49.96 mL/min is 49.9, not ganciclovir's 50).
    Float noise goes first, so a clearance of exactly 50 (49.99999999999999) stays 50."""
    return units.at_step(value, Decimal(1).scaleb(-digits), ROUND_FLOOR)


@dataclass
class RenalAssessment:
    renal: RenalFunction | None
    dosing_weight: DosingWeight | None
    issues: list[DataQualityIssue] = field(default_factory=list)


def ideal_body_weight(height_cm: float, sex: str) -> float:
    """Devine IBW (kg); sex other than male uses the female base (the lower weight)."""
    base = 50.0 if sex == "male" else 45.5
    return base + 2.3 * (height_cm / INCH_CM - 60.0)


@frozen
class _Weight:
    kg: float
    basis: str  # actual, ideal, adjusted
    description: str
    ideal_kg: float | None
    height: Measurement | None
    assumptions: tuple[tuple[str, str], ...] = ()  # (item, words): assumptions about missing data


def policy_weight(
    choice: str, weight: Measurement, height: Measurement | None, sex: str, policy: Policy, now: datetime
) -> _Weight:
    """The weight a policy choice ("actual", "ideal", "adjusted") gives for this patient.

    The choice applies only when the height shows obesity (actual > obesity_ibw_ratio x IBW);
    otherwise, and when there is no current height, actual weight is used.
    """
    actual = _in_formula(weight.value)
    shown = f"actual weight {_kg(actual)} kg ({_dated(weight, now)})"
    if choice == "actual":
        return _Weight(actual, "actual", shown, None, None)
    if height is None:
        return _Weight(actual, "actual", shown, None, None, ((
            "height",
            f"no current height: obesity cannot be assessed, so actual weight is used "
            f"(policy: {choice} weight when obese)",
        ),))
    height_cm = _in_formula(height.value)
    ibw = _in_formula(ideal_body_weight(height_cm, sex))
    assumptions = ()
    if sex != "male" and sex != "female":
        assumptions = (("sex", f"sex {sex}: female ideal body weight used (the lower weight)"),)
    if ibw <= 0:
        return _Weight(actual, "actual", shown, None, height, assumptions + ((
            "height", f"height {_kg(height_cm)} cm is outside the ideal-body-weight formula: actual weight used",
        ),))
    ibw_text = f"IBW {_kg(ibw)} kg (height {_kg(height_cm)} cm)"
    if actual <= policy.obesity_ibw_ratio * ibw:
        return _Weight(actual, "actual", f"{shown}; not obese ({ibw_text})", ibw, height, assumptions)
    obese = f"obese: actual {_kg(actual)} kg > {policy.obesity_ibw_ratio:g} x {ibw_text}"
    if choice == "ideal":
        return _Weight(ibw, "ideal", f"ideal weight {_kg(ibw)} kg ({obese})", ibw, height, assumptions)
    factor = policy.adjusted_weight_factor
    adjusted = _in_formula(ibw + factor * (actual - ibw))
    return _Weight(
        adjusted,
        "adjusted",
        f"adjusted weight {_kg(adjusted)} kg = IBW {_kg(ibw)} + {factor:g} x ({_kg(actual)} - {_kg(ibw)}) ({obese}; "
        "factor: local policy)",
        ibw,
        height,
        assumptions,
    )


def assess_renal(
    patient: PatientFacts, labs: LabFacts, policy: Policy, now: datetime, known: list[DataQualityIssue]
) -> RenalAssessment:
    """CrCl and dosing weight; issues for weight and creatinine are always assessed (every dose
    depends on them).  `known` are the issues already found (for 'a newer value was unusable')."""
    issues: list[DataQualityIssue] = []
    weight = _exact(labs, "weight", policy.weight_max_age_days, now, known, issues)
    age = patient.age_years
    if weight is not None and age is not None and age >= ADULT_AGE and weight.value < policy.adult_min_weight_kg:
        issues.append(DataQualityIssue(
            "implausible", "weight",
            f"weight {quality.value_text(weight)} ({weight.date_words}) is below {policy.adult_min_weight_kg:g} kg, "
            "implausible for an adult (CDS_POLICY_ADULT_MIN_WEIGHT_KG): confirm it", weight.source_id))
        weight = None
    # A creatinine bound at or below the policy's floor ("<0.5 mg/dL" with a floor of 0.8) is the floor's
    # case: the value used is the floor whatever the true value below it.
    creatinine = _exact(labs, "creatinine", policy.creatinine_max_age_days, now, known, issues,
                        bound_up_to=policy.creatinine_floor_mg_dl)
    # Height matters only for obesity under a non-"actual" weight policy.
    needs_height = weight is not None and (policy.crcl_weight != "actual" or policy.dosing_weight != "actual")
    height = _exact(labs, "height", policy.height_max_age_days, now, known, []) if needs_height else None

    dosing = None
    if weight is not None:
        chosen = policy_weight(policy.dosing_weight, weight, height, patient.sex, policy, now)
        dosing = DosingWeight(
            kg=chosen.kg,
            basis=chosen.basis,
            weight=weight,
            height=chosen.height,
            calculation=chosen.description,
        )
        issues.extend(DataQualityIssue("assumption", item, words) for item, words in chosen.assumptions)

    if age is None or age < ADULT_AGE:
        return RenalAssessment(None, dosing, issues)  # the patient facts say why
    data_assumptions: list[tuple[str, str]] = []
    if creatinine is not None and weight is not None:
        renal, data_assumptions = _cockcroft_gault(patient, age, creatinine, weight, height, policy, now)
    elif creatinine is None and _current_unusable(labs, "creatinine", policy.creatinine_max_age_days, now):
        # A current creatinine that cannot be used (a bound, an unknown unit, implausible) may be the one
        # showing the kidneys failing: no clearance, not even the laboratory's older reported one.
        renal = None
    else:
        renal = _reported(labs, age, weight, creatinine, policy, now)
        if creatinine is not None and (renal is None or renal.crcl_ml_min_per_kg is None):
            # No current weight: the clearance per kg needs none (foscarnet's bands).
            renal, data_assumptions = _per_kg_without_weight(patient, age, creatinine, renal, policy, now)
    issues.extend(DataQualityIssue("assumption", item, words) for item, words in data_assumptions)
    return RenalAssessment(renal, dosing, list(dict.fromkeys(issues)))


def _sex_factor(patient: PatientFacts) -> tuple[float, list[tuple[str, str]]]:
    """(Cockcroft-Gault's sex factor, [(item, words)] the assumption when sex is not male or female)."""
    if patient.sex == "male":
        return 1.0, []
    if patient.sex == "female":
        return FEMALE_FACTOR, []
    return FEMALE_FACTOR, [("sex", f"sex {patient.sex}: female factor 0.85 applied (the lower CrCl)")]


def _creatinine_used(creatinine: Measurement, policy: Policy) -> tuple[float, list[str]]:
    """(the creatinine put in the formula, [the floor's assumption when it applied])."""
    scr = _creatinine_in_formula(creatinine.value)
    floor = policy.creatinine_floor_mg_dl
    if floor > 0 and (scr < floor or creatinine.comparator):  # a bound is kept only at or below the floor
        return floor, [f"creatinine {creatinine.comparator or ''}{_scr(scr)} mg/dL raised to the policy floor "
                       f"{_scr(floor)} mg/dL"]
    return scr, []


def _per_kg(age: int, used: float, factor: float) -> tuple[float, str]:
    """(CrCl per kg, its calculation): (140 - age) / (72 x SCr), x 0.85 if female."""
    per_kg = clearance_shown((140 - age) / (72 * used) * factor, CRCL_PER_KG_DIGITS)
    return per_kg, f"per kg = (140 - {age}) / (72 x {_scr(used)} mg/dL){_sex_term(factor)} = {per_kg:.{CRCL_PER_KG_DIGITS}f} mL/min/kg"


def _sex_term(factor: float) -> str:
    """The sex factor as the calculation shows it: ' x 0.85', or nothing for 1."""
    return " x 0.85" if factor != 1.0 else ""


def _cockcroft_gault(patient, age, creatinine, weight, height, policy, now) -> tuple[RenalFunction, list]:
    """-> (CrCl, [(item, words)] assumptions about missing data, for DataQualityIssues)."""
    chosen = policy_weight(policy.crcl_weight, weight, height, patient.sex, policy, now)
    factor, sex_assumptions = _sex_factor(patient)
    data_assumptions = [*chosen.assumptions, *sex_assumptions]
    used, floor_words = _creatinine_used(creatinine, policy)
    assumptions = [words for _, words in data_assumptions] + floor_words
    crcl = clearance_shown((140 - age) * chosen.kg / (72 * used) * factor, CRCL_DIGITS)
    per_kg, per_kg_words = _per_kg(age, used, factor)
    calculation = (
        f"CrCl = (140 - {age}) x {_kg(chosen.kg)} kg / (72 x {_scr(used)} mg/dL){_sex_term(factor)} = {crcl:.{CRCL_DIGITS}f} mL/min; "
        + per_kg_words
    )
    inputs = [
        f"Creatinine {_measured(creatinine, now)}",
        f"Weight {_measured(weight, now)}; {chosen.description}" if chosen.basis != "actual"
        else f"Weight {_measured(weight, now)}",
    ]
    if chosen.height is not None:
        inputs.append(f"Height {_measured(chosen.height, now)}")
    inputs += [f"Age {age} years", f"Sex {patient.sex}"]
    renal = RenalFunction(
        crcl_ml_min=crcl,
        crcl_ml_min_per_kg=per_kg,
        method="cockcroft-gault",
        creatinine=creatinine,
        creatinine_mg_dl_used=used,
        creatinine_floored=bool(floor_words),
        weight=weight,
        weight_kg_used=chosen.kg,
        weight_basis=chosen.basis,
        age_years=age,
        sex_factor=factor,
        assumptions=tuple(assumptions),
        calculation=calculation,
        inputs=tuple(inputs),
        height=chosen.height,
        ideal_weight_kg=chosen.ideal_kg,
    )
    return renal, data_assumptions


def _per_kg_without_weight(patient, age, creatinine, reported, policy, now) -> tuple[RenalFunction, list]:
    """No current weight: the Cockcroft-Gault CrCl per kg, which needs none (label: the weight cancels), beside
    the laboratory's reported CrCl in mL/min when there is one, else with no CrCl in mL/min.
    -> (clearance, [(item, words)] assumptions about missing data)."""
    factor, data_assumptions = _sex_factor(patient)
    used, floor_words = _creatinine_used(creatinine, policy)
    per_kg, per_kg_words = _per_kg(age, used, factor)
    assumptions = [words for _, words in data_assumptions] + floor_words
    inputs = [f"Creatinine {_measured(creatinine, now)}", f"Age {age} years", f"Sex {patient.sex}"]
    if reported is not None:
        return replace(
            reported, crcl_ml_min_per_kg=per_kg, creatinine=creatinine, creatinine_mg_dl_used=used,
            creatinine_floored=bool(floor_words), sex_factor=factor,
            assumptions=("Cockcroft-Gault CrCl in mL/min not computed here (no usable current weight): the laboratory's "
                         "reported CrCl is used; the CrCl per kg is Cockcroft-Gault's, from the creatinine (the weight "
                         "cancels)", *assumptions),
            calculation=f"{reported.calculation}; Cockcroft-Gault {per_kg_words} (the weight cancels)",
            inputs=reported.inputs + tuple(inputs),
        ), data_assumptions
    return RenalFunction(
        crcl_ml_min=None,
        crcl_ml_min_per_kg=per_kg,
        method="cockcroft-gault",
        creatinine=creatinine,
        creatinine_mg_dl_used=used,
        creatinine_floored=bool(floor_words),
        weight=None,
        weight_kg_used=None,
        weight_basis=None,
        age_years=age,
        sex_factor=factor,
        assumptions=tuple(assumptions),
        calculation=f"{per_kg_words} (the weight cancels); CrCl in mL/min not computed: no current weight",
        inputs=tuple(inputs),
    ), data_assumptions


def _current_unusable(labs: LabFacts, analyte: str, max_age_days: float, now: datetime) -> bool:
    """Whether the analyte's newest result is current but cannot be used (with no exact value from _exact: a current
    one is a bound it refused; or a result the labs could not read, undated or within `max_age_days`): not merely
    missing, nor old."""
    if quality.current(labs, analyte, max_age_days, now) is not None:
        return True
    if analyte not in labs.unusable_at:
        return False
    at = labs.unusable_at[analyte]
    return at is None or (now - at).total_seconds() <= max_age_days * 86400


def _reported(labs, age, weight, creatinine, policy, now) -> RenalFunction | None:
    """The laboratory's Cockcroft-Gault CrCl (LOINC 35591-7) when this one cannot be computed."""
    reported = quality.current(labs, "crcl_reported", policy.creatinine_max_age_days, now)
    if reported is None or reported.comparator:
        return None
    missing = [name for name, value in (("creatinine", creatinine), ("weight", weight)) if value is None]
    kg = _in_formula(weight.value, divides=True) if weight is not None else None
    per_kg = clearance_shown(reported.value / kg, CRCL_PER_KG_DIGITS) if kg is not None else None
    calculation = f"reported Cockcroft-Gault CrCl {reported.value:g} mL/min"
    if per_kg is not None:
        calculation += (
            f"; per kg = {reported.value:g} / {_kg(kg)} kg (actual) = {per_kg:.{CRCL_PER_KG_DIGITS}f} mL/min/kg"
        )
    inputs = [f"Reported CrCl {_measured(reported, now)}"]
    if weight is not None:
        inputs.append(f"Weight {_measured(weight, now)}")
    return RenalFunction(
        crcl_ml_min=reported.value,
        crcl_ml_min_per_kg=per_kg,
        method="reported",
        creatinine=None,
        creatinine_mg_dl_used=None,
        weight=weight,
        weight_kg_used=kg,
        weight_basis="actual" if weight is not None else None,
        age_years=age,
        sex_factor=None,
        assumptions=(
            f"Cockcroft-Gault not computed here (no usable current {' or '.join(missing)}): "
            "the laboratory's reported CrCl is used",
        ),
        calculation=calculation,
        reported=reported,
        inputs=tuple(inputs),
    )


def _exact(labs, analyte, max_age, now, known, issues, bound_up_to: float = 0) -> Measurement | None:
    """The current exact value of an analyte; records why there is none in `issues`.  `bound_up_to`: an upper
    bound ("<0.5") at or below this is kept too (the creatinine floor uses it)."""
    value = quality.current(labs, analyte, max_age, now)
    if value is None:
        issues.append(quality.describe_unavailable(labs, analyte, max_age, now, known))
        return None
    if value.comparator in ("<", "<=") and 0 < value.value <= bound_up_to:
        return value
    if value.comparator:
        issues.append(DataQualityIssue(
            "implausible", analyte,
            f"{quality.label(analyte)} {quality.value_text(value)} ({value.date_words}) is a bound, "
            "not a value: it cannot be used in a calculation",
            value.source_id,
        ))
        return None
    return value


def _n(value: float, digits: int = 1) -> str:
    return f"{round(value, digits):g}"


def _kg(value: float) -> str:
    """A weight (or height) as the formulas take it: '72', '74.84'."""
    return _n(value, WEIGHT_DIGITS)


def _scr(value: float) -> str:
    """A creatinine as the formula takes it: '1.8', '0.625', '1.5045'."""
    return _n(value, CREATININE_DIGITS)


def _dated(measurement: Measurement, now: datetime) -> str:
    when = measurement.date_words
    age = measurement.age_days(now)
    if age is None or measurement.dated_by_report:  # the report's age is not the sample's
        return when
    days = int(age)
    return f"{when}, {'today' if days == 0 else '1 day old' if days == 1 else f'{days} days old'}"


def _measured(measurement: Measurement, now: datetime) -> str:
    """'1.5 mg/dL (2026-11-20, 6 days old; reported 132.6 umol/L)'."""
    shown = f"{quality.value_text(measurement)} ({_dated(measurement, now)}"
    canonical = f"{measurement.value:g} {measurement.unit}"
    if measurement.reported and measurement.reported != canonical:
        shown += f"; reported {measurement.reported}"
    return shown + ")"
