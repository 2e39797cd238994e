"""renal_dose(): every row of every label table, both sides of every band edge, rounding, tablets,
fixed doses and the CannotDose paths.

The expected rows are restated here from the clinical reference (sections 3, 4, 6, 7, 8), not read
from dose_tables, so a wrong table fails these tests.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from factories import POLICY, draft, make_facts, measurement, order
from cds_service.clinical.inputs import above
from cds_service.clinical.renal_dosing import CannotDose, RenalDose, renal_dose
from cds_service.facts.model import RENAL_REPLACEMENT_LABELS, ConditionEvidence, ConditionFacts, DataQualityIssue


def dose(drug, phase, facts, regimen=None) -> RenalDose:
    result = renal_dose(drug, phase, facts, POLICY, regimen)
    assert isinstance(result, RenalDose), result
    return result


# ---------------------------------------------------------------------------------------------
# Ganciclovir IV (70 kg): CrCl -> (band, induction mg/kg, interval, maintenance mg/kg, interval)

GCV = [
    # inside each band
    (100, "CrCl ≥ 70 mL/min", (5, 12), (5, 24)),
    (60, "CrCl 50-69 mL/min", (2.5, 12), (2.5, 24)),
    (35, "CrCl 25-49 mL/min", (2.5, 24), (1.25, 24)),
    (15, "CrCl 10-24 mL/min", (1.25, 24), (0.625, 24)),
    (5, "CrCl < 10 mL/min or hemodialysis", (1.25, None), (0.625, None)),
    # both sides of each edge (CrCl is continuous: 69.5 belongs to 50-69)
    (70, "CrCl ≥ 70 mL/min", (5, 12), (5, 24)),
    (69.99, "CrCl 50-69 mL/min", (2.5, 12), (2.5, 24)),
    (69.5, "CrCl 50-69 mL/min", (2.5, 12), (2.5, 24)),
    (50, "CrCl 50-69 mL/min", (2.5, 12), (2.5, 24)),
    (49.99, "CrCl 25-49 mL/min", (2.5, 24), (1.25, 24)),
    (25, "CrCl 25-49 mL/min", (2.5, 24), (1.25, 24)),
    (24.99, "CrCl 10-24 mL/min", (1.25, 24), (0.625, 24)),
    (10, "CrCl 10-24 mL/min", (1.25, 24), (0.625, 24)),
    (9.99, "CrCl < 10 mL/min or hemodialysis", (1.25, None), (0.625, None)),
]
GCV_MG = {5: 350, 2.5: 175, 1.25: 90, 0.625: 45}  # x 70 kg, to the nearest 5 mg (87.5 -> 90, 43.75 -> 45)


@pytest.mark.parametrize("crcl,band,induction,maintenance", GCV)
def test_ganciclovir_bands(crcl, band, induction, maintenance):
    facts = make_facts(crcl=crcl)
    for phase, (mg_per_kg, interval) in (("induction", induction), ("maintenance", maintenance)):
        d = dose("ganciclovir", phase, facts)
        assert (d.band, d.mg_per_kg, d.interval_hours, d.route) == (band, mg_per_kg, interval, "iv")
        assert d.dose_mg == GCV_MG[mg_per_kg]
        assert d.source.key == "ganciclovir-label"
        if interval is None:
            assert d.schedule == "3 times weekly after dialysis" and d.doses_per_week == 3
        else:
            assert d.schedule == f"every {interval} h"


# ---------------------------------------------------------------------------------------------
# Valganciclovir oral: CrCl -> (band, induction (mg, interval, words), maintenance (...))

VGC = [
    (90, "CrCl ≥ 60 mL/min", (900, 12, "twice daily"), (900, 24, "once daily")),
    (50, "CrCl 40-59 mL/min", (450, 12, "twice daily"), (450, 24, "once daily")),
    (30, "CrCl 25-39 mL/min", (450, 24, "once daily"), (450, 48, "every 2 days")),
    (15, "CrCl 10-24 mL/min", (450, 48, "every 2 days"), (450, 84, "twice weekly")),
    (60, "CrCl ≥ 60 mL/min", (900, 12, "twice daily"), (900, 24, "once daily")),
    (59.99, "CrCl 40-59 mL/min", (450, 12, "twice daily"), (450, 24, "once daily")),
    (40, "CrCl 40-59 mL/min", (450, 12, "twice daily"), (450, 24, "once daily")),
    (39.99, "CrCl 25-39 mL/min", (450, 24, "once daily"), (450, 48, "every 2 days")),
    (25, "CrCl 25-39 mL/min", (450, 24, "once daily"), (450, 48, "every 2 days")),
    (24.99, "CrCl 10-24 mL/min", (450, 48, "every 2 days"), (450, 84, "twice weekly")),
    (10, "CrCl 10-24 mL/min", (450, 48, "every 2 days"), (450, 84, "twice weekly")),
]


@pytest.mark.parametrize("crcl,band,induction,maintenance", VGC)
def test_valganciclovir_bands_in_whole_tablets(crcl, band, induction, maintenance):
    facts = make_facts(crcl=crcl)
    for phase, (mg, interval, words) in (("induction", induction), ("maintenance", maintenance)):
        d = dose("valganciclovir", phase, facts)
        assert (d.band, d.dose_mg, d.interval_hours, d.schedule, d.route) == (band, mg, interval, words, "oral")
        assert (d.unit_count, d.unit_strength_mg) == (mg / 450, 450)
        assert d.mg_per_kg is None


@pytest.mark.parametrize("crcl", [9.99, 5, 0])
@pytest.mark.parametrize("phase", ["induction", "maintenance"])
def test_valganciclovir_below_10_is_not_recommended_use_iv_ganciclovir(crcl, phase):
    d = dose("valganciclovir", phase, make_facts(crcl=crcl))
    assert d.dose_mg is None and d.unit_count is None
    assert "tablets not recommended" in d.not_recommended and "IV ganciclovir" in d.not_recommended
    assert d.band == "CrCl < 10 mL/min or hemodialysis"


def test_valganciclovir_needs_no_weight():
    facts = make_facts(crcl=45, dosing_weight=None)
    assert dose("valganciclovir", "induction", facts).dose_mg == 450


# ---------------------------------------------------------------------------------------------
# Foscarnet (70 kg): CrCl mL/min/kg -> (band, 60q8h, 90q12h, 90/day, 120/day) as (mg/kg, interval)

FOS = [
    (1.6, "CrCl > 1.4 mL/min/kg", (60, 8), (90, 12), (90, 24), (120, 24)),
    (1.2, "CrCl > 1.0-1.4 mL/min/kg", (45, 8), (70, 12), (70, 24), (90, 24)),
    (0.9, "CrCl > 0.8-1.0 mL/min/kg", (50, 12), (50, 12), (50, 24), (65, 24)),
    (0.7, "CrCl > 0.6-0.8 mL/min/kg", (40, 12), (80, 24), (80, 48), (105, 48)),
    (0.55, "CrCl > 0.5-0.6 mL/min/kg", (60, 24), (60, 24), (60, 48), (80, 48)),
    (0.45, "CrCl ≥ 0.4-0.5 mL/min/kg", (50, 24), (50, 24), (50, 48), (65, 48)),
    # edges: "> x" excludes x; "≥ 0.4" includes it
    (1.41, "CrCl > 1.4 mL/min/kg", (60, 8), (90, 12), (90, 24), (120, 24)),
    (1.4, "CrCl > 1.0-1.4 mL/min/kg", (45, 8), (70, 12), (70, 24), (90, 24)),
    (1.01, "CrCl > 1.0-1.4 mL/min/kg", (45, 8), (70, 12), (70, 24), (90, 24)),
    (1.0, "CrCl > 0.8-1.0 mL/min/kg", (50, 12), (50, 12), (50, 24), (65, 24)),
    (0.81, "CrCl > 0.8-1.0 mL/min/kg", (50, 12), (50, 12), (50, 24), (65, 24)),
    (0.8, "CrCl > 0.6-0.8 mL/min/kg", (40, 12), (80, 24), (80, 48), (105, 48)),
    (0.61, "CrCl > 0.6-0.8 mL/min/kg", (40, 12), (80, 24), (80, 48), (105, 48)),
    (0.6, "CrCl > 0.5-0.6 mL/min/kg", (60, 24), (60, 24), (60, 48), (80, 48)),
    (0.51, "CrCl > 0.5-0.6 mL/min/kg", (60, 24), (60, 24), (60, 48), (80, 48)),
    (0.5, "CrCl ≥ 0.4-0.5 mL/min/kg", (50, 24), (50, 24), (50, 48), (65, 48)),
    (0.4, "CrCl ≥ 0.4-0.5 mL/min/kg", (50, 24), (50, 24), (50, 48), (65, 48)),
]
REGIMENS = (("induction", "60q8h"), ("induction", "90q12h"), ("maintenance", "90/day"), ("maintenance", "120/day"))


@pytest.mark.parametrize("per_kg,band,q8,q12,day90,day120", FOS)
def test_foscarnet_bands_all_regimens(per_kg, band, q8, q12, day90, day120):
    facts = make_facts(crcl=per_kg * 70, crcl_per_kg=per_kg)
    for (phase, regimen), (mg_per_kg, interval) in zip(REGIMENS, (q8, q12, day90, day120)):
        d = dose("foscarnet", phase, facts, regimen)
        assert (d.band, d.regimen, d.mg_per_kg, d.interval_hours, d.route) == (band, regimen, mg_per_kg, interval, "iv")
        assert d.dose_mg == mg_per_kg * 70  # all multiples of 50 mg at 70 kg


@pytest.mark.parametrize("per_kg", [0.39, 0.2])
@pytest.mark.parametrize("phase,regimen", REGIMENS)
def test_foscarnet_below_04_not_recommended(per_kg, phase, regimen):
    d = dose("foscarnet", phase, make_facts(crcl=per_kg * 70, crcl_per_kg=per_kg), regimen)
    assert d.dose_mg is None and "not recommended" in d.not_recommended and d.band == "CrCl < 0.4 mL/min/kg"


def test_foscarnet_default_regimens_and_phase_checks():
    facts = make_facts()  # CG 1.11 mL/min/kg
    assert dose("foscarnet", "induction", facts).regimen == "90q12h"
    assert dose("foscarnet", "maintenance", facts).regimen == "90/day"
    with pytest.raises(ValueError):
        renal_dose("foscarnet", "maintenance", facts, POLICY, "60q8h")
    with pytest.raises(ValueError):
        renal_dose("ganciclovir", "induction", facts, POLICY, "90q12h")
    with pytest.raises(ValueError):
        renal_dose("acyclovir", "induction", facts, POLICY)


def test_foscarnet_uses_crcl_per_kg_not_ml_min():
    # 0.7 mL/min/kg but a large CrCl in mL/min: the per-kg band applies
    facts = make_facts(crcl=110, crcl_per_kg=0.7)
    assert dose("foscarnet", "induction", facts, "90q12h").band == "CrCl > 0.6-0.8 mL/min/kg"


# ---------------------------------------------------------------------------------------------
# Rounding


@pytest.mark.parametrize(
    "drug,phase,crcl,weight,expected",
    [
        ("ganciclovir", "induction", 15, 50, 65),  # 1.25 x 50 = 62.5 -> 65 (half up)
        ("ganciclovir", "induction", 100, 72.3, 360),  # 361.5 -> 360
        ("ganciclovir", "induction", 100, 72.5, 365),  # 362.5 -> 365
        ("ganciclovir", "maintenance", 15, 45, 30),  # 0.625 x 45 = 28.125 -> 30
        ("ganciclovir", "maintenance", 5, 58, 35),  # 0.625 x 58 = 36.25 -> 35
        ("cidofovir", "induction", 80, 61.3, 305),  # 5 x 61.3 = 306.5 -> 305
    ],
)
def test_rounding_to_5_mg(drug, phase, crcl, weight, expected):
    d = dose(drug, phase, make_facts(crcl=crcl, weight_kg=weight))
    assert d.dose_mg == expected
    assert "rounded to the nearest 5 mg" in d.calculation and f"{weight:g} kg" in d.calculation


@pytest.mark.parametrize("drug, step, expected", [("ganciclovir", 10, 360), ("ganciclovir", 1, 363), ("cidofovir", 25, 375)])
def test_the_rounding_step_is_local_policy(drug, step, expected):
    # 5 mg/kg x 72.5 kg = 362.5 mg
    policy = replace(POLICY, **{f"{drug}_rounding_mg": step})
    d = renal_dose(drug, "induction", make_facts(crcl=100, weight_kg=72.5), policy)
    assert d.dose_mg == expected and f"rounded to the nearest {step} mg, local policy" in d.calculation


@pytest.mark.parametrize(
    "per_kg,weight,regimen,expected",
    [
        (1.6, 63.3, "90q12h", 5700),  # 5697 -> 5700
        (1.6, 55.4, "60q8h", 3300),  # 3324 -> 3300
        (1.6, 55.42, "60q8h", 3350),  # 3325.2 -> 3350
        (0.7, 48.1, "90q12h", 3850),  # 80 x 48.1 = 3848 -> 3850
    ],
)
def test_foscarnet_rounding_to_50_mg(per_kg, weight, regimen, expected):
    facts = make_facts(crcl=per_kg * weight, crcl_per_kg=per_kg, weight_kg=weight)
    phase = "induction" if regimen in ("60q8h", "90q12h") else "maintenance"
    d = dose("foscarnet", phase, facts, regimen)
    assert d.dose_mg == expected and "nearest 50 mg" in d.calculation


@pytest.mark.parametrize("drug, weight", [("foscarnet", 0.25), ("ganciclovir", 0.4)])
def test_a_weight_based_dose_that_rounds_to_nothing_is_no_dose(drug, weight):
    # 90 mg/kg x 0.25 kg = 22.5 mg -> 0 mg at a 50 mg step: no "0 mg" order, the weight is to check.
    facts = make_facts(crcl=100, crcl_per_kg=1.5, weight_kg=weight)
    d = renal_dose(drug, "induction", facts, POLICY)
    assert isinstance(d, CannotDose) and d.missing == ("weight",)
    assert "that is no dose, so none is proposed; check the weight" in d.reasons[0]


def test_dosing_weight_basis_is_used_and_shown():
    facts = make_facts(crcl=80)
    adjusted = replace(facts.dosing_weight, kg=80.0, basis="adjusted", calculation="IBW 70 + 0.4 x (95 - 70) = 80 kg")
    d = dose("ganciclovir", "induction", replace(facts, dosing_weight=adjusted))
    assert d.dose_mg == 400
    assert "adjusted body weight" in d.calculation
    assert any("Dosing weight 80 kg (adjusted body weight)" in line for line in d.inputs)


# ---------------------------------------------------------------------------------------------
# Inputs shown


def test_inputs_show_converted_creatinine_with_its_original_unit():
    scr = measurement("creatinine", 1.5, 1, reported="132.6 umol/L")
    facts = make_facts(labs=[scr])
    d = dose("ganciclovir", "induction", facts)
    text = "\n".join(d.inputs)
    assert "1.5 mg/dL (2026-11-25), reported as 132.6 umol/L" in text
    assert "Cockcroft-Gault" in text and "(140 - 60) x 70 kg / (72 x 1.50 mg/dL) = 51.9 mL/min" in text
    assert d.band == "CrCl 50-69 mL/min"  # 51.9 mL/min


def test_inputs_show_assumptions():
    facts = make_facts(sex="unknown")
    d = dose("valganciclovir", "induction", facts)
    assert any(line.startswith("Assumption: sex unknown") for line in d.inputs)


# ---------------------------------------------------------------------------------------------
# Cidofovir and the fixed-dose drugs


@pytest.mark.parametrize(
    "crcl,creatinine,expected",
    [(56, 1.0, 350), (55.01, 1.0, 350), (55, 1.0, None), (40, 1.0, None), (80, 1.6, None), (80, 1.5, 350)],
)
def test_cidofovir_contraindicated_band(crcl, creatinine, expected):
    d = dose("cidofovir", "induction", make_facts(crcl=crcl, creatinine=creatinine))
    assert d.dose_mg == expected
    if expected:
        assert (d.mg_per_kg, d.interval_hours, d.schedule) == (5, 168, "once weekly for 2 weeks")
        assert dose("cidofovir", "maintenance", make_facts(crcl=crcl)).interval_hours == 336
    else:
        assert "contraindicated" in d.not_recommended


# A creatinine reported as a bound, against the label's 1.5 mg/dL: (comparator, value, above 1.5?).
CREATININE_BOUNDS = [
    (None, 1.6, True), (None, 1.5, False), (None, 1.4, False),
    (">", 1.5, True), (">", 1.6, True), (">", 1.4, None),
    (">=", 1.6, True), (">=", 1.5, None), (">=", 1.4, None),
    ("<", 1.5, False), ("<", 1.4, False), ("<", 2.0, None),
    ("<=", 1.5, False), ("<=", 1.4, False), ("<=", 1.6, None),
]


@pytest.mark.parametrize("comparator,value,expected", CREATININE_BOUNDS)
def test_above_a_limit_with_every_comparator(comparator, value, expected):
    m = measurement("creatinine", value, comparator=comparator)
    assert above(m, 1.5) is expected


def test_cidofovir_creatinine_bound_certainly_above_15_is_contraindicated():
    creatinine = measurement("creatinine", 1.5, comparator=">")
    d = dose("cidofovir", "induction", make_facts(crcl=80, labs=[creatinine]))  # CrCl reported by the lab
    assert d.dose_mg is None and "contraindicated" in d.not_recommended


@pytest.mark.parametrize("comparator,value", [("<", 2.0), ("<=", 1.6), (">=", 1.5)])
def test_cidofovir_creatinine_bound_that_cannot_tell_gives_no_dose(comparator, value):
    creatinine = measurement("creatinine", value, 1, comparator=comparator)
    result = renal_dose("cidofovir", "induction", make_facts(crcl=80, labs=[creatinine]), POLICY)
    assert isinstance(result, CannotDose) and result.missing == ("creatinine",)
    assert result.reasons == (
        f"creatinine {comparator}{value:g} mg/dL (2026-11-25): a bound that cannot show whether it is above "
        "the cidofovir label's limit of 1.5 mg/dL",
    )
    # CrCl ≤ 55 is contraindicated whatever the creatinine
    assert "contraindicated" in dose("cidofovir", "induction", make_facts(crcl=40, labs=[creatinine])).not_recommended


def test_letermovir_fixed_dose_and_cyclosporine():
    assert (dose("letermovir", "induction", make_facts(crcl=None)).dose_mg) == 480  # no renal data needed
    facts = make_facts(meds=[order("cyclosporine", 100, 12)])
    d = dose("letermovir", "induction", facts)
    assert (d.dose_mg, d.interval_hours, d.band) == (240, 24, "with cyclosporine (label)")


@pytest.mark.parametrize(
    "partners,expected",
    [
        ((), (400, None)),
        (("carbamazepine",), (800, None)),
        (("phenytoin",), (1200, None)),
        (("phenobarbital",), (1200, None)),
        (("phenytoin", "phenobarbital"), (1200, None)),  # the same dose for each
        (("rifampin",), (None, "not recommended with rifampin")),
        (("carbamazepine", "rifabutin"), (None, "not recommended with rifabutin")),
    ],
)
def test_maribavir_inducer_doses(partners, expected):
    facts = make_facts(drafts=[draft(p, 200, 12) for p in partners])
    d = dose("maribavir", "induction", facts)
    assert d.dose_mg == expected[0]
    if expected[1]:
        assert d.not_recommended.startswith(expected[1])
    else:
        assert d.interval_hours == 12 and d.schedule == "twice daily"


def test_maribavir_with_inducers_of_different_label_doses_gets_no_dose():
    facts = make_facts(drafts=[draft("carbamazepine", 200, 12), draft("phenytoin", 100, 8)])
    result = renal_dose("maribavir", "induction", facts, POLICY)
    assert isinstance(result, CannotDose) and result.reasons == (
        "the maribavir label gives a dose for each of carbamazepine and phenytoin, none for them together: "
        "ask a pharmacist or infectious diseases",
    )


def test_st_johns_wort_by_text():
    facts = make_facts(meds=[order(None, drug_text="St. John's Wort 300 mg capsule")])
    assert "St John's wort" in dose("maribavir", "induction", facts).not_recommended


# ---------------------------------------------------------------------------------------------
# CannotDose


def test_no_creatinine_cannot_dose_and_names_the_quality_issue():
    facts = make_facts(creatinine=None)
    result = renal_dose("ganciclovir", "induction", facts, POLICY)
    assert isinstance(result, CannotDose)
    assert "no creatinine result on record" in result.reasons and "creatinine" in result.missing


def test_stale_creatinine_from_quality_issue():
    facts = make_facts(
        crcl=None, quality=[DataQualityIssue("stale", "creatinine", "creatinine 2026-10-01 is 56 days old (limit 7)")]
    )
    for drug in ("ganciclovir", "valganciclovir", "foscarnet"):
        result = renal_dose(drug, "induction", facts, POLICY)
        assert isinstance(result, CannotDose) and result.reasons[0].startswith("creatinine 2026-10-01")


def test_a_result_that_could_not_be_used_is_said_once():
    # The facts layer's "missing" issue quotes the unusable newest results: not said again beside it.
    conflict = "creatinine results of the same time (2026-11-25) disagree: 2 mg/dL (Observation/b); 1 mg/dL (Observation/a)"
    facts = make_facts(creatinine=None, crcl=None, quality=[
        DataQualityIssue("conflicting", "creatinine", conflict),
        DataQualityIssue("missing", "creatinine", f"no usable creatinine result on record ({conflict})")])
    result = renal_dose("ganciclovir", "induction", facts, POLICY)
    assert isinstance(result, CannotDose) and result.reasons == (f"no usable creatinine result on record ({conflict})",)


def test_renal_none_without_issues_still_says_why():
    result = renal_dose("valganciclovir", "maintenance", make_facts(crcl=None), POLICY)
    assert isinstance(result, CannotDose) and result.reasons == ("creatinine clearance could not be computed",)


def test_weight_missing_blocks_mg_per_kg_drugs_only():
    facts = make_facts(
        crcl=40, dosing_weight=None, quality=[DataQualityIssue("implausible", "weight", "weight 7 kg is implausible")]
    )
    for drug in ("ganciclovir", "foscarnet", "cidofovir"):
        result = renal_dose(drug, "induction", facts, POLICY)
        if drug == "cidofovir":  # CrCl 40: contraindicated, no weight needed to say so
            assert isinstance(result, RenalDose) and result.not_recommended
            continue
        assert isinstance(result, CannotDose), drug
        # The band needs no weight: it is said, and what its mg dose lacks.
        band = {"ganciclovir": "the CrCl 25-49 mL/min band gives 2.5 mg/kg every 24 h",
                "foscarnet": "the CrCl > 0.5-0.6 mL/min/kg band gives 60 mg/kg every 24 h"}[drug]
        assert result.reasons == (f"{band}; the dose in mg needs a current weight", "weight 7 kg is implausible")
        assert result.missing == ("weight",)
    assert dose("valganciclovir", "induction", facts).dose_mg == 450


def test_foscarnet_not_recommended_needs_no_weight():
    facts = make_facts(crcl=20, crcl_per_kg=0.3, dosing_weight=None)
    assert dose("foscarnet", "induction", facts).not_recommended


def test_foscarnet_without_per_kg_clearance():
    facts = make_facts(crcl=50)
    facts = replace(facts, renal=replace(facts.renal, crcl_ml_min_per_kg=None))
    result = renal_dose("foscarnet", "induction", facts, POLICY)
    assert isinstance(result, CannotDose) and "per kg" in result.reasons[0]


@pytest.mark.parametrize("drug", ["ganciclovir", "valganciclovir", "foscarnet", "letermovir"])
def test_children_are_out_of_scope(drug):
    issue = DataQualityIssue("out-of-scope", "age", "patient is 12 years old: adult dose bands only")
    result = renal_dose(drug, "induction", make_facts(age=12, quality=[issue]), POLICY)
    assert isinstance(result, CannotDose) and result.reasons[0].startswith("adult dose bands do not apply")
    # the age alone is enough, even without the facts layer's issue
    result = renal_dose(drug, "induction", make_facts(age=15), POLICY)
    assert isinstance(result, CannotDose) and "15 years" in result.reasons[0]


def test_unknown_phase_is_an_error():
    with pytest.raises(ValueError):
        renal_dose("ganciclovir", "prophylaxis", make_facts(), POLICY)


# ---------------------------------------------------------------------------------------------
# Renal replacement therapy on record


def on_rrt(kind: str, **kw):
    label = RENAL_REPLACEMENT_LABELS[kind]
    matched = {"dialysis": "ICD-10-CM Z99.2", "crrt": "text 'CRRT'", "peritoneal": "text 'peritoneal dialysis'"}[kind]
    evidence = (ConditionEvidence(label, "Condition/9", matched),)
    return make_facts(conds=ConditionFacts(renal_replacement=kind, evidence=evidence), **kw)


@pytest.mark.parametrize("crcl", [6, None])  # a clearance in the lowest band, or none at all
def test_dialysis_takes_the_labels_lowest_band(crcl):
    facts = on_rrt("dialysis", crcl=crcl)
    gcv = dose("ganciclovir", "induction", facts)
    assert (gcv.band, gcv.dose_mg, gcv.schedule) == ("CrCl < 10 mL/min or hemodialysis", 90, "3 times weekly after dialysis")
    assert gcv.inputs[0].startswith("On dialysis (Condition/9: ICD-10-CM Z99.2): the label's lowest band applies")
    assert "not recommended" in dose("valganciclovir", "induction", facts).not_recommended
    assert dose("foscarnet", "induction", facts).not_recommended == "not recommended at CrCl < 0.4 mL/min/kg (label)"
    assert dose("cidofovir", "induction", facts).not_recommended.startswith("contraindicated")
    assert dose("letermovir", "induction", facts).dose_mg == 480  # no renal band


def test_dialysis_on_record_with_a_higher_clearance_gives_no_dose():
    # A problem list may still say dialysis after a kidney transplant: neither band is chosen.
    facts = on_rrt("dialysis", crcl=45)
    result = renal_dose("ganciclovir", "induction", facts, POLICY)
    assert isinstance(result, CannotDose)
    (reason,) = result.reasons
    assert reason.startswith("On dialysis (Condition/9: ICD-10-CM Z99.2), but the current creatinine clearance is 45 mL/min (CrCl 25-49 mL/min)")
    assert "confirm whether the patient is on dialysis" in reason and "off dialysis, the CrCl 25-49 mL/min band" in reason


@pytest.mark.parametrize("kind, named", [("crrt", "text 'CRRT'"), ("peritoneal", "text 'peritoneal dialysis'")])
def test_crrt_and_peritoneal_dialysis_have_no_label_dose(kind, named):
    # The labels' dialysis row is hemodialysis's ("3 times weekly after dialysis"): no dose is read into either.
    facts = on_rrt(kind, crcl=30)
    label = RENAL_REPLACEMENT_LABELS[kind]
    for drug in ("ganciclovir", "valganciclovir", "foscarnet", "cidofovir"):
        result = renal_dose(drug, "induction", facts, POLICY)
        assert isinstance(result, CannotDose)
        assert result.reasons == (
            f"On {label} (Condition/9: {named}): the {drug} label gives no dose on {label}; dose it with the clinical "
            "pharmacist or nephrology",
        )
    assert dose("maribavir", "induction", facts).dose_mg == 400
