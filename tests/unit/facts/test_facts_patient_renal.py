"""Patient age/sex, Cockcroft-Gault CrCl and the dosing weight, against hand-computed numbers.

Reference patient: male, born 1962-05-01, so 64 on 2026-11-26; SCr 1.8 mg/dL; 70 kg.
  CrCl    = (140 - 64) x 70 / (72 x 1.8) = 5320 / 129.6 = 41.049 mL/min
  per kg  = 76 / 129.6                   = 0.58642 mL/min/kg
  female: x 0.85 -> 34.892 mL/min, 0.49846 mL/min/kg
Shown (and banded) cut to 0.1 mL/min and 0.01 mL/min/kg, never rounded up.
Obese variant: 110 kg, 170 cm (66.93 in): IBW = 50 + 2.3 x 6.929 = 65.937 kg, put in the formulas down to
0.01 kg as 65.93; 1.2 x IBW = 79.1 < 110.
  adjusted = 65.93 + 0.4 x (110 - 65.93) = 83.558 -> 83.55 kg -> CrCl 48.995 (48.9)
  ideal    -> CrCl 38.667;  actual -> CrCl 64.506
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest
from facts_testkit import UCUM, basics, facts, kinds, obs, patient

from cds_service.facts import quality
from cds_service.facts.renal import ideal_body_weight
from cds_service.policy import Policy

# ---------------------------------------------------------------------------------------------
# Patient


@pytest.mark.parametrize(
    "birth, age",
    [("1962-05-01", 64), ("1962-11-26", 64), ("1962-11-27", 63), ("2000-02-29", 26)],
)
def test_age_in_whole_years_on_the_evaluation_date(birth, age):
    assert facts(patient_resource=patient(birth=birth)).patient.age_years == age


def test_partial_birth_date_uses_the_oldest_possible_age_and_says_so():
    f = facts(patient_resource=patient(birth="1962"))
    assert f.patient.age_years == 64 and f.patient.birth_date.isoformat() == "1962-01-01"
    assert "assumption" in kinds(f, "age")


@pytest.mark.parametrize("birth", ["2027-01-01", "1850-01-01", "1900-01-01", "not a date", "1962-13-45", 19620501])
def test_future_or_invalid_birth_date_gives_no_age(birth):
    f = facts(patient_resource=patient(birth=birth), observations=basics())
    assert f.patient.age_years is None
    assert "implausible" in kinds(f, "age")
    assert f.renal is None


def test_missing_patient_resource():
    f = facts(patient_resource=None, observations=basics())
    assert f.patient.age_years is None and f.patient.sex == "unknown"
    assert kinds(f, "age") == {"missing"} and "missing" in kinds(f, "sex")
    assert f.renal is None


@pytest.mark.parametrize("gender, sex", [("female", "female"), ("male", "male"), ("other", "other"),
                                         ("unknown", "unknown"), (None, "unknown"), ("F", "unknown")])
def test_sex_from_gender(gender, sex):
    f = facts(patient_resource=patient(gender=gender))
    assert f.patient.sex == sex
    assert ("missing" in kinds(f, "sex")) == (gender not in ("female", "male", "other", "unknown"))


def test_child_is_out_of_scope_and_gets_no_renal_function():
    f = facts(patient_resource=patient(birth="2012-03-01"), observations=basics(weight=40, creatinine=0.5))
    assert f.patient.age_years == 14
    assert f.renal is None
    (issue,) = f.issues_for("age")
    assert issue.kind == "out-of-scope" and "Schwartz" in issue.detail


# ---------------------------------------------------------------------------------------------
# Cockcroft-Gault


def test_cockcroft_gault_male():
    r = facts(observations=basics(height=170)).renal  # 70 kg at 170 cm: not obese
    assert r.method == "cockcroft-gault"
    assert (r.crcl_ml_min, r.crcl_ml_min_per_kg) == (41.0, 0.58)  # 41.049..., 0.5864...: cut to what is shown
    assert (r.age_years, r.sex_factor, r.weight_kg_used, r.weight_basis) == (64, 1.0, 70, "actual")
    assert r.creatinine_mg_dl_used == 1.8 and r.creatinine.value == 1.8 and r.weight.value == 70
    assert r.calculation == (
        "CrCl = (140 - 64) x 70 kg / (72 x 1.8 mg/dL) = 41.0 mL/min; "
        "per kg = (140 - 64) / (72 x 1.8 mg/dL) = 0.58 mL/min/kg"
    )
    assert r.inputs[0] == "Creatinine 1.8 mg/dL (2026-11-24, 2 days old)"
    assert "Height 170 cm (2026-11-24, 2 days old)" in r.inputs
    assert "Age 64 years" in r.inputs and r.assumptions == ()


def test_cockcroft_gault_female():
    r = facts(patient_resource=patient(gender="female"), observations=basics()).renal
    assert (r.crcl_ml_min, r.crcl_ml_min_per_kg) == (34.8, 0.49)  # 34.892..., 0.4984...: never rounded up
    assert r.sex_factor == 0.85 and "x 0.85" in r.calculation


@pytest.mark.parametrize(
    "birth, kg, creatinine, crcl, per_kg",
    [
        # Exactly on a band edge, where unrounded float arithmetic gives 49.99999999999999 (ganciclovir
        # 50-69), 24.999999999999996 (valganciclovir 25-39) and 55.00000000000001 (cidofovir: <= 55
        # is contraindicated).
        ("2006-05-01", 63, 2.1, 50.0, 0.79),
        ("2006-05-01", 46.5, 3.1, 25.0, 0.53),
        ("1994-05-01", 44, 1.2, 55.0, 1.25),
        # Never rounded up into a band with a higher dose: 0.3985 mL/min/kg is 0.39, below foscarnet's
        # 0.4 (the label's "stop"), and 27.89 mL/min is 27.8.
        ("1956-05-01", 70, 2.44, 27.8, 0.39),
        ("1962-05-01", 69.93, 1.48, 49.8, 0.71),  # 49.875: not ganciclovir's 50-69 band
    ],
)
def test_clearance_is_the_value_the_card_shows(birth, kg, creatinine, crcl, per_kg):
    r = facts(patient_resource=patient(birth=birth), observations=basics(kg, creatinine)).renal
    assert (r.crcl_ml_min, r.crcl_ml_min_per_kg) == (crcl, per_kg)
    assert f"= {crcl:.1f} mL/min;" in r.calculation and r.calculation.endswith(f"= {per_kg:.2f} mL/min/kg")


def test_creatinine_in_umol_per_litre():
    observations = [obs("29463-7", 70, "kg"), obs("14682-9", 159.12, "umol/L")]  # 159.12 / 88.4 = 1.8
    r = facts(observations=observations).renal
    assert r.crcl_ml_min == 41.0
    assert "reported 159.12 umol/L" in r.inputs[0]


@pytest.mark.parametrize("gender", ["other", "unknown", None])
def test_sex_not_male_or_female_takes_the_female_factor_and_says_so(gender):
    f = facts(patient_resource=patient(gender=gender), observations=basics())
    assert f.renal.sex_factor == 0.85
    assert f.renal.crcl_ml_min == 34.8
    assert any("female factor 0.85" in a for a in f.renal.assumptions)
    assert "assumption" in kinds(f, "sex")


def test_creatinine_floor_policy():
    policy = Policy(creatinine_floor_mg_dl=0.8)
    r = facts(policy, observations=basics(creatinine=0.5)).renal
    assert r.creatinine.value == 0.5 and r.creatinine_mg_dl_used == 0.8
    assert r.crcl_ml_min == 92.3  # 76 x 70 / (72 x 0.8) = 92.36
    assert any("floor" in a for a in r.assumptions)
    assert not facts(policy, observations=basics(creatinine=0.5, height=170)).issues_for("creatinine")  # policy, not data
    # No floor by default.
    assert facts(observations=basics(creatinine=0.5)).renal.creatinine_mg_dl_used == 0.5
    # A bound at or below the floor ("<0.5 mg/dL") is the floor's case: the floor is used whatever lies below.
    bound = [obs("29463-7", 70, "kg", when="2026-11-24T08:00:00Z"),
             obs("2160-0", None, when="2026-11-24T08:00:00Z",
                 valueQuantity={"value": 0.5, "comparator": "<", "unit": "mg/dL", "system": UCUM, "code": "mg/dL"})]
    r = facts(policy, observations=bound).renal
    assert r.creatinine.comparator == "<" and r.creatinine_mg_dl_used == 0.8 and r.crcl_ml_min == 92.3
    assert any("creatinine <0.5 mg/dL raised to the policy floor 0.8 mg/dL" in a for a in r.assumptions)
    # Above the floor, or with no floor, a bound is no value: no clearance.
    assert facts(Policy(creatinine_floor_mg_dl=0.4), observations=bound).renal is None
    assert facts(observations=bound).renal is None


@pytest.mark.parametrize(
    "crcl_weight, basis, kg, crcl",
    [("adjusted", "adjusted", 83.55, 48.9), ("ideal", "ideal", 65.93, 38.6), ("actual", "actual", 110, 64.5)],
)
def test_obesity_weight_policy_for_crcl(crcl_weight, basis, kg, crcl):
    r = facts(Policy(crcl_weight=crcl_weight), observations=basics(weight=110, height=170)).renal
    assert r.weight_basis == basis
    assert r.weight_kg_used == pytest.approx(kg, rel=1e-4)
    assert r.crcl_ml_min == crcl
    assert r.crcl_ml_min_per_kg == 0.58  # weight cancels (label)
    if basis != "actual":
        assert r.ideal_weight_kg == 65.93 and r.height.value == 170


def test_adjusted_weight_factor_is_policy_and_shown():
    # 65.93 + 0.3 x (110 - 65.93) = 79.151 -> 79.15 kg -> CrCl 76 x 79.15 / 129.6 = 46.42
    r = facts(Policy(crcl_weight="adjusted", adjusted_weight_factor=0.3), observations=basics(weight=110, height=170)).renal
    assert r.weight_kg_used == 79.15 and r.crcl_ml_min == 46.4
    weight = next(line for line in r.inputs if line.startswith("Weight"))
    assert "adjusted weight 79.15 kg = IBW 65.93 + 0.3 x (110 - 65.93)" in weight and "factor: local policy" in weight


_CALCULATION = re.compile(
    r"CrCl = \(140 - (\d+)\) x ([\d.]+) kg / \(72 x ([\d.]+) mg/dL\)( x 0\.85)? = ([\d.]+) mL/min; "
    r"per kg = \(140 - \d+\) / \(72 x ([\d.]+) mg/dL\)(?: x 0\.85)? = ([\d.]+) mL/min/kg"
)


def _cut(value: float, digits: int) -> str:
    """As the card shows a clearance: cut, never rounded up (float noise first)."""
    return f"{math.floor(round(value * 10 ** digits, 6)) / 10 ** digits:.{digits}f}"


def test_the_formula_s_digits_never_lift_the_clearance_over_a_band_s_edge():
    # 61 umol/L (0.69005 mg/dL), 86 years, 46 kg: exactly 49.99 mL/min, ganciclovir's 25-49 band.  To the nearest
    # 0.0001 mg/dL the creatinine would be 0.69 and the clearance 50.0 (the 50-69 band, a higher dose); it goes
    # into the formula up, 0.6901, and the clearance stays 49.9.
    r = facts(patient_resource=patient(birth="1940-05-01"), observations=[
        obs("2160-0", 61, "umol/L"), obs("29463-7", 46, "kg")]).renal
    assert (r.age_years, r.creatinine_mg_dl_used, r.crcl_ml_min) == (86, 0.6901, 49.9)
    assert "(72 x 0.6901 mg/dL) = 49.9 mL/min" in r.calculation


def test_a_creatinine_put_in_with_its_digits_is_not_called_a_floor():
    from cds_service.clinical.renal_dosing import renal_dose

    # 133 umol/L is 1.5046 mg/dL in the formula, no floor: the inputs say so, not "(creatinine floor)".
    f = facts(observations=[obs("2160-0", 133, "umol/L"), obs("29463-7", 75, "kg")])
    line = next(i for i in renal_dose("ganciclovir", "induction", f, Policy()).inputs if i.startswith("Serum creatinine"))
    assert "floor" not in line and "(72 x 1.5046 mg/dL)" in f.renal.calculation
    # With a floor that applies, it does, with the value used.
    floored = facts(Policy(creatinine_floor_mg_dl=1.0), observations=[obs("2160-0", 62, "umol/L"), obs("29463-7", 75, "kg")])
    line = next(i for i in renal_dose("ganciclovir", "induction", floored, Policy(creatinine_floor_mg_dl=1.0)).inputs
                if i.startswith("Serum creatinine"))
    assert line.endswith("; 1 mg/dL used (creatinine floor, local policy)")
    # A bound at the floor ("<0.8" with a floor of 0.8) is the floor's case too, and said so.
    policy = Policy(creatinine_floor_mg_dl=0.8)
    bound = facts(policy, observations=[obs("2160-0", valueString="<0.8 mg/dL"), obs("29463-7", 75, "kg")])
    line = next(i for i in renal_dose("ganciclovir", "induction", bound, policy).inputs if i.startswith("Serum creatinine"))
    assert line.endswith("; 0.8 mg/dL used (creatinine floor, local policy)")


@pytest.mark.parametrize("sex", ["male", "female"])
@pytest.mark.parametrize("creatinine, weight, height, policy", [
    ((133, "umol/L"), (75, "kg"), None, Policy()),  # 1.5045 mg/dL: shown as 1.5, it read 62.5 for 62.3
    ((0.625, "mg/dL"), (70, "kg"), None, Policy()),  # 1.40 mL/min/kg from 0.625; 1.41 from 0.62
    ((1.18, "mg/dL"), (165.3, "[lb_av]"), None, Policy()),  # 74.98 kg
    ((97, "umol/L"), (251, "[lb_av]"), (69, "[in_i]"), Policy(crcl_weight="adjusted")),
    ((1.4, "mg/dL"), (120, "kg"), (172.7, "cm"), Policy(crcl_weight="ideal")),
])
def test_the_clearance_can_be_worked_out_again_from_the_numbers_it_shows(sex, creatinine, weight, height, policy):
    observations = [obs("2160-0", *creatinine), obs("29463-7", *weight), *([obs("8302-2", *height)] if height else [])]
    r = facts(policy, patient_resource=patient(gender=sex), observations=observations).renal
    age, kg, scr, female, crcl, scr_per_kg, per_kg = _CALCULATION.fullmatch(r.calculation).groups()
    factor = 0.85 if female else 1.0
    assert crcl == _cut((140 - int(age)) * float(kg) / (72 * float(scr)) * factor, 1) == f"{r.crcl_ml_min:.1f}"
    assert per_kg == _cut((140 - int(age)) / (72 * float(scr_per_kg)) * factor, 2) == f"{r.crcl_ml_min_per_kg:.2f}"
    # The weight put in it, from the numbers its own line shows (ideal body weight from the height, adjusted).
    line = next(line for line in r.inputs if line.startswith("Weight"))
    if found := re.search(r"IBW ([\d.]+) kg \(height ([\d.]+) cm\)", line):
        ibw, cm = map(float, found.groups())
        assert ibw == round((50 if sex == "male" else 45.5) + 2.3 * (cm / 2.54 - 60), 2)
    if found := re.search(r"adjusted weight ([\d.]+) kg = IBW ([\d.]+) \+ ([\d.]+) x \(([\d.]+) - [\d.]+\)", line):
        adjusted, ibw, share, actual = map(float, found.groups())
        assert adjusted == round(ibw + share * (actual - ibw), 2) == float(kg)
    if found := re.search(r"ideal weight ([\d.]+) kg", line):
        assert float(found.group(1)) == float(kg)


def test_not_obese_uses_actual_weight_whatever_the_policy():
    r = facts(Policy(crcl_weight="ideal"), observations=basics(weight=70, height=170)).renal
    assert (r.weight_basis, r.weight_kg_used) == ("actual", 70)


def test_no_height_means_actual_weight_and_an_assumption():
    f = facts(Policy(crcl_weight="adjusted"), observations=basics(weight=110))
    assert f.renal.weight_basis == "actual" and f.renal.weight_kg_used == 110
    assert any("no current height" in a for a in f.renal.assumptions)
    assert "assumption" in kinds(f, "height")


def test_ideal_body_weight_devine():
    assert ideal_body_weight(170, "male") == pytest.approx(65.9370, rel=1e-4)
    assert ideal_body_weight(160, "female") == pytest.approx(52.3819, rel=1e-4)
    assert ideal_body_weight(170, "unknown") == ideal_body_weight(170, "female")


@pytest.mark.parametrize(
    "dosing_weight, basis, kg",
    [("actual", "actual", 110), ("ideal", "ideal", 65.93), ("adjusted", "adjusted", 83.55)],
)
def test_dosing_weight_policy(dosing_weight, basis, kg):
    d = facts(Policy(dosing_weight=dosing_weight), observations=basics(weight=110, height=170)).dosing_weight
    assert d.basis == basis and d.kg == pytest.approx(kg, rel=1e-4)
    assert d.weight.value == 110 and d.calculation


# ---------------------------------------------------------------------------------------------
# When CrCl cannot be computed


def test_stale_creatinine_names_its_date_and_age():
    observations = [obs("29463-7", 70, "kg"), obs("2160-0", 1.2, "mg/dL", when="2026-10-01T12:00:00Z")]
    f = facts(observations=observations)
    assert f.renal is None
    (issue,) = f.issues_for("creatinine")
    assert issue.kind == "stale"
    assert issue.detail == "creatinine 1.2 mg/dL of 2026-10-01 is 56 days old (limit 7 days)"
    # 7.2 days old is not shown as "7 days old (limit 7 days)", which reads as within the limit.
    f = facts(observations=[obs("29463-7", 70, "kg"), obs("2160-0", 1.2, "mg/dL", when="2026-11-19T07:00:00Z")])
    assert f.issues_for("creatinine")[0].detail == "creatinine 1.2 mg/dL of 2026-11-19 is more than 7 days old (limit 7 days)"
    # Hours near a limit of hours (cidofovir's 48 h), days well beyond it.
    assert (quality._older(53 / 24, 2), quality._older(40, 2)) == ("53 hours old (limit 48 hours)", "40 days old (limit 2 days)")


def test_an_adult_weight_below_the_policy_s_limit_is_implausible():
    # 7 kg for a 64-year-old: no clearance or dosing weight from it (a dose of 10 mg had been computed).
    f = facts(observations=basics(weight=7))
    assert f.renal.crcl_ml_min is None and f.dosing_weight is None and "implausible" in kinds(f, "weight")
    assert "below 25 kg, implausible for an adult" in f.issues_for("weight")[0].detail
    off = facts(Policy(adult_min_weight_kg=0), observations=basics(weight=7))
    assert off.renal.crcl_ml_min is not None and off.dosing_weight.kg == 7


def test_stale_weight_leaves_only_the_clearance_per_kg():
    observations = [obs("29463-7", 70, "kg", when="2026-09-01"), obs("2160-0", 1.2, "mg/dL")]
    f = facts(observations=observations)
    assert f.dosing_weight is None and kinds(f, "weight") == {"stale"}
    # Per kg the weight cancels (foscarnet's clearance, label): (140 - 64) / (72 x 1.2) = 0.879, cut to 0.87.
    renal = f.renal
    assert (renal.crcl_ml_min, renal.crcl_ml_min_per_kg, renal.weight, renal.method) == (None, 0.87, None, "cockcroft-gault")
    assert renal.calculation == ("per kg = (140 - 64) / (72 x 1.2 mg/dL) = 0.87 mL/min/kg (the weight cancels); "
                                 "CrCl in mL/min not computed: no current weight")
    # No creatinine: nothing at all.
    assert facts(observations=observations[:1]).renal is None


def test_stale_weight_beside_a_reported_crcl_adds_the_clearance_per_kg():
    observations = [obs("29463-7", 70, "kg", when="2026-09-01"), obs("2160-0", 1.2, "mg/dL"), obs("35591-7", 62, "mL/min")]
    renal = facts(observations=observations).renal
    assert (renal.method, renal.crcl_ml_min, renal.crcl_ml_min_per_kg) == ("reported", 62, 0.87)
    assert renal.calculation.endswith("; Cockcroft-Gault per kg = (140 - 64) / (72 x 1.2 mg/dL) = 0.87 mL/min/kg (the weight cancels)")
    assert renal.assumptions[0].startswith("Cockcroft-Gault CrCl in mL/min not computed here (no usable current weight)")
    assert "the CrCl per kg is Cockcroft-Gault's, from the creatinine" in renal.assumptions[0]


def test_missing_inputs_are_always_assessed():
    f = facts(observations=[])
    assert f.renal is None
    assert kinds(f, "creatinine") == {"missing"} and kinds(f, "weight") == {"missing"}


def test_missing_mentions_a_newer_unusable_value():
    f = facts(observations=[obs("29463-7", 900, "kg"), obs("2160-0", 1.2, "mg/dL")])
    missing = [q for q in f.issues_for("weight") if q.kind == "missing"]
    assert missing and "not a plausible value" in missing[0].detail


def test_creatinine_bound_is_not_a_value():
    o = obs("2160-0", 0.3, "mg/dL")
    o["valueQuantity"]["comparator"] = "<"
    f = facts(observations=[obs("29463-7", 70, "kg"), o])
    assert f.renal is None and "implausible" in kinds(f, "creatinine")


def test_reported_crcl_when_no_usable_creatinine():
    observations = [obs("29463-7", 70, "kg"), obs("35591-7", 48, "mL/min")]
    f = facts(observations=observations)
    r = f.renal
    assert (r.method, r.crcl_ml_min, r.creatinine) == ("reported", 48, None)
    assert r.crcl_ml_min_per_kg == 0.68  # 48 / 70 = 0.6857
    assert r.reported.value == 48
    assert "missing" in kinds(f, "creatinine")  # still said


def _bound(o: dict) -> dict:
    o["valueQuantity"]["comparator"] = ">"
    return o


@pytest.mark.parametrize("newest_creatinine", [
    _bound(obs("2160-0", 5, "mg/dL", when="2026-11-26T08:00:00Z")),  # a bound
    obs("2160-0", 5, None, when="2026-11-26T08:00:00Z", ucum=False),  # no unit
    obs("2160-0", 5, "mg/dL", when="2026-11-27T20:00:00Z"),  # dated past the evaluation time's tolerance
])
def test_a_creatinine_that_cannot_be_used_leaves_no_clearance_not_even_a_reported_one(newest_creatinine):
    # The newest creatinine may show the kidneys failing: the laboratory's older CrCl 72 is not used in its place.
    observations = [obs("29463-7", 70, "kg"), obs("35591-7", 72, "mL/min", when="2026-11-24T08:00:00Z"),
                    newest_creatinine]
    f = facts(observations=observations)
    assert f.renal is None and kinds(f, "creatinine") & set(quality.UNUSABLE_KINDS)


@pytest.mark.parametrize("old_creatinine", [
    obs("2160-0", 5, None, when="2026-02-01T08:00:00Z", ucum=False),  # no unit, months old
    obs("2160-0", 1.0, "mg/dL", when="2026-02-01T08:00:00Z", status="preliminary"),
])
def test_an_old_creatinine_that_cannot_be_used_leaves_the_current_reported_crcl(old_creatinine):
    # Only a current unusable creatinine may show the kidneys failing now: an old one, like an old usable one,
    # leaves the laboratory's current CrCl in place.
    observations = [obs("29463-7", 70, "kg"), obs("35591-7", 72, "mL/min"), old_creatinine]
    r = facts(observations=observations).renal
    assert (r.method, r.crcl_ml_min) == ("reported", 72)


def test_a_reported_crcl_per_kg_is_never_lifted_over_an_edge_by_the_weight_s_digits():
    # 25 mL/min over 137.8 lb (62.5055 kg) is 0.39997 mL/min/kg, under foscarnet's 0.4 (not recommended).  The
    # weight divides, so it goes in up (62.51), not down (62.5, which gave 0.40).
    r = facts(observations=[obs("29463-7", 137.8, "[lb_av]"), obs("35591-7", 25, "mL/min")]).renal
    assert (r.weight_kg_used, r.crcl_ml_min_per_kg) == (62.51, 0.39)
    assert "per kg = 25 / 62.51 kg (actual) = 0.39 mL/min/kg" in r.calculation


def test_reported_crcl_without_weight_has_no_per_kg():
    r = facts(observations=[obs("35591-7", 48, "mL/min")]).renal
    assert r.method == "reported" and r.crcl_ml_min_per_kg is None and r.weight is None


def test_stale_reported_crcl_is_not_used():
    assert facts(observations=[obs("35591-7", 48, "mL/min", when="2026-10-01")]).renal is None


def test_egfr_is_never_used_for_crcl():
    f = facts(observations=[obs("29463-7", 70, "kg"), obs("98979-8", 55, "mL/min/{1.73_m2}")])
    assert f.renal is None and f.labs.latest("egfr").value == 55


# ---------------------------------------------------------------------------------------------
# Quality helpers for the clinical layer


def test_current_and_unavailable_helpers():
    f = facts(observations=[obs("751-8", 1.2, "10*3/uL", when="2026-11-10"), obs("2823-3", 4.0, "mmol/L")])
    policy = Policy()
    window = quality.max_age_days(policy, "anc")
    assert window == policy.blood_count_max_age_days
    assert quality.current(f, "anc", window) is None
    stale = quality.unavailable(f, "anc", window)
    assert stale.kind == "stale" and "16 days old (limit 7 days)" in stale.detail
    assert quality.current(f, "anc", 30).value == 1200 and quality.unavailable(f, "anc", 30) is None
    assert quality.current(f, "potassium", quality.max_age_days(policy, "potassium")).value == 4.0
    missing = quality.unavailable(f, "magnesium", 7)
    assert (missing.kind, missing.item) == ("missing", "magnesium")
    # With LabFacts the caller gives the time.
    assert quality.current(f.labs, "potassium", 7, f.evaluated_at).value == 4.0


def test_max_age_days_covers_every_analyte():
    policy = replace(Policy(), urine_protein_max_age_days=3)
    assert quality.max_age_days(policy, "urine_protein_dipstick") == 3
    for analyte in ("creatinine", "crcl_reported", "egfr", "anc", "wbc", "platelets", "hemoglobin",
                    "potassium", "magnesium", "calcium", "ionized_calcium", "phosphate", "urine_protein",
                    "weight", "height"):
        assert quality.max_age_days(policy, analyte) > 0
