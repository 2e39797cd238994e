"""check_orders(): hematologic toxicity, nephrotoxicity, electrolytes."""

from __future__ import annotations

from dataclasses import replace

import pytest
from factories import (
    PROBENECID,
    days_ago,
    check,
    POLICY,
    conditions,
    day,
    doses,
    draft,
    labs_ordered,
    make_facts,
    measurement,
    only,
    order,
    stops,
    topics,
)
from cds_service.clinical import check_orders
from cds_service.clinical.renal_dosing import renal_dose
from cds_service.facts.model import ConditionEvidence, ConditionFacts, DataQualityIssue



COLITIS = conditions(sites=["gi"], labels=["CMV colitis"])

# ---------------------------------------------------------------------------------------------
# Hematologic toxicity


@pytest.mark.parametrize(
    "labs,words",
    [
        ({"anc": 300}, "ANC 300/µL"),
        ({"anc": 499}, "ANC 499/µL"),
        ({"platelets": 18000}, "platelets 18,000/µL"),
        ({"hemoglobin": 7.4}, "hemoglobin 7.4 g/dL"),
        # Just below a limit (4.96 mmol/L of hemoglobin is 7.99 g/dL): never shown as the limit itself.
        ({"hemoglobin": 7.99}, "hemoglobin 7.99 g/dL"),
        ({"anc": 499.6}, "ANC 499.6/µL"),
        ({"platelets": 24999.6}, "platelets 24,999.6/µL"),
    ],
)
def test_below_label_limits_is_critical(labs, words):
    d = draft("ganciclovir", 350, 12)
    f = only(check(make_facts(labs=labs, conds=COLITIS, drafts=[d])), "hematologic-toxicity")
    assert f.indicator == "critical" and words in f.summary and "do not give" in f.summary
    # Kotton 2025 is the SOT guideline: its advice and citation for transplant recipients only.
    assert "Kotton" not in f.detail and "kotton-2025" not in {c.key for c in f.sources}
    sot = replace(COLITIS, populations=frozenset({"sot"}))
    f = only(check(make_facts(labs=labs, conds=sot, drafts=[d])), "hematologic-toxicity")
    assert "Do not reduce the ganciclovir dose for leukopenia alone (Kotton 2025)" in f.detail
    assert {c.key for c in f.sources} >= {"ganciclovir-label", "kotton-2025"}


@pytest.mark.parametrize("labs", [{"anc": 500}, {"platelets": 25000}, {"hemoglobin": 8.0}])
def test_at_the_limit_is_not_critical(labs):
    d = draft("ganciclovir", 350, 12)
    assert "hematologic-toxicity" not in topics(check(make_facts(labs=labs, drafts=[d])))


def test_critical_offers_renally_dosed_foscarnet_and_removal():
    d = draft("valganciclovir", 900, 12)
    facts = make_facts(crcl=49, crcl_per_kg=0.7, labs={"anc": 300}, conds=COLITIS, drafts=[d])
    f = only(check(facts), "hematologic-toxicity")
    (alt,) = doses(f)
    expected = renal_dose("foscarnet", "induction", facts, POLICY, "90q12h")
    assert (alt.drug, alt.dose_mg, alt.interval_hours, alt.route) == ("foscarnet", expected.dose_mg, 24, "iv")
    assert alt.dose_mg == 5600 and alt.replaces == d.id and not alt.recommended
    assert [s.order_id for s in stops(f)] == [d.id]
    assert f.selection == "at-most-one"


def test_critical_with_foscarnet_documented_resistant_offers_no_foscarnet():
    d = draft("valganciclovir", 900, 12)
    resistant = replace(COLITIS, resistant_drugs=frozenset({"foscarnet"}))
    f = only(check(make_facts(labs={"anc": 300}, conds=resistant, drafts=[d])), "hematologic-toxicity")
    assert doses(f) == [] and "Foscarnet** is documented resistant" in f.detail
    assert [s.order_id for s in stops(f)] == [d.id]


def test_critical_without_cmv_treatment_context_offers_no_foscarnet():
    d = draft("valganciclovir", 900, 24)  # prophylaxis, no CMV on record
    f = only(check(make_facts(labs={"platelets": 20000}, drafts=[d])), "hematologic-toxicity")
    assert doses(f) == [] and len(stops(f)) == 1 and "infectious diseases" in f.detail


def test_critical_when_foscarnet_cannot_be_dosed_says_why():
    d = draft("valganciclovir", 900, 12)
    facts = make_facts(labs={"anc": 200}, conds=COLITIS, drafts=[d], dosing_weight=None)
    f = only(check(facts), "hematologic-toxicity")
    assert doses(f) == [] and "Foscarnet dose cannot be computed" in f.detail


def test_mild_cytopenia_by_lab_flag_is_info():
    d = draft("valganciclovir", 900, 12)
    anc = measurement("anc", 1200, 1, interpretation="L")
    f = only(check(make_facts(labs=[anc], drafts=[d])), "hematologic-toxicity")
    assert f.indicator == "info" and "ANC 1,200/µL" in f.summary and "flagged L by the lab" in f.detail


def test_mild_cytopenia_by_reference_range_is_info():
    d = draft("ganciclovir", 350, 12)
    plt = measurement("platelets", 120000, 1, reference_low=150000)
    f = only(check(make_facts(labs=[plt], drafts=[d])), "hematologic-toxicity")
    assert f.indicator == "info" and "below the lab's reference low 150000" in f.detail


def test_low_count_without_flags_or_range_is_quiet():
    d = draft("ganciclovir", 350, 12)
    assert check(make_facts(labs={"anc": 1200}, drafts=[d])) == []


def test_stale_severe_count_does_not_drive_a_critical():
    d = draft("ganciclovir", 350, 12)
    findings = check(make_facts(labs={"anc": 300}, lab_ages={"anc": 9}, drafts=[d]))
    assert topics(findings) == ["missing-data"]


def test_bound_that_cannot_tell_is_missing_data():
    d = draft("ganciclovir", 350, 12)
    anc = measurement("anc", 400, 1, comparator=">")
    f = only(check(make_facts(labs=[anc], drafts=[d])), "missing-data")
    assert "cannot show whether it is ANC < 500/µL" in f.detail


def test_hematologic_rules_do_not_apply_to_foscarnet():
    d = draft("foscarnet", 6300, 12)
    assert "hematologic-toxicity" not in topics(check(make_facts(labs={"anc": 300}, drafts=[d])))


# ---------------------------------------------------------------------------------------------
# Cidofovir


def cidofovir_ok_labs(creatinine=0.9, creatinine_days_ago=0.5):
    """Creatinine and urine protein within 48 h (normal unless told)."""
    return [
        measurement("creatinine", creatinine, creatinine_days_ago),
        measurement("urine_protein_dipstick", 0, 0.5, reported="negative"),
    ]


def test_cidofovir_with_clean_checks_is_quiet():
    d = draft("cidofovir", 350, 168)
    assert check(make_facts(labs=cidofovir_ok_labs(), drafts=[d, PROBENECID])) == []


def test_cidofovir_drafted_without_probenecid_is_a_warning_with_the_label_s_regimen():
    d = draft("cidofovir", 350, 168)
    f = only(check(make_facts(labs=cidofovir_ok_labs(), drafts=[d])), "nephrotoxicity")
    assert f.indicator == "warning" and f.order_id == d.id and f.proposals == ()
    assert f.summary == "Cidofovir ordered without probenecid: the label gives each dose with probenecid and IV saline"
    assert "**Probenecid:** none drafted with it, nor active on record: order it with the cidofovir (label)" in f.detail
    assert ("Probenecid 2 g orally 3 h before the infusion, then 1 g at 2 h and 1 g at 8 h after it; 1 L normal saline"
            in f.detail) and {c.key for c in f.sources} == {"cidofovir-label"}
    # Probenecid already running (the course's, or another reason's): nothing to say.
    assert check(make_facts(labs=cidofovir_ok_labs(), drafts=[d], meds=[order("probenecid", 500, 12)])) == []
    # Orders on record that could not be had: an absence there is not known, and the card says so.
    lost = (DataQualityIssue("missing", "medications", "medication orders on record could not be retrieved"),)
    f = only(check(make_facts(labs=cidofovir_ok_labs(), drafts=[d], quality=lost)), "nephrotoxicity")
    assert "none drafted with it, and orders on record could not be retrieved to check for one:" in f.detail
    # With another kidney card for the draft (a nephrotoxic co-medication), a line of that card: one card.
    f = only(check(make_facts(labs=cidofovir_ok_labs(), drafts=[d], meds=[order("tacrolimus", 4, 12)])), "nephrotoxicity")
    assert f.summary.startswith("Cidofovir with a nephrotoxic drug") and "**Probenecid:** none drafted with it" in f.detail
    # The label rules the draft out: its critical card alone (no advice on how to give what is not to be given).
    found = check(make_facts(labs=cidofovir_ok_labs(creatinine=1.6), drafts=[d]))
    assert [(f.topic, f.indicator) for f in found] == [("nephrotoxicity", "critical")]
    # An order on record is its course's, not a new order: patient-view does not ask for its probenecid.
    course = order("cidofovir", 350, 336, start=day(3))
    assert "probenecid" not in " ".join(f.summary for f in check(make_facts(labs=cidofovir_ok_labs(), meds=[course]), targets=[course]))


def test_cidofovir_with_a_probenecid_or_sulfa_allergy_is_contraindicated():
    d = draft("cidofovir", 350, 168)
    allergic = ConditionFacts(
        allergies=frozenset({"probenecid", "sulfa"}),
        evidence=(
            ConditionEvidence("probenecid allergy", "AllergyIntolerance/a1", "allergy/intolerance 'Probenecid'"),
            ConditionEvidence("sulfa allergy", "AllergyIntolerance/a2", "allergy/intolerance coded RxNorm 10831"),
        ),
    )
    f = only(check(make_facts(labs=cidofovir_ok_labs(), conds=allergic, drafts=[d])), "nephrotoxicity")
    assert f.indicator == "critical" and f.summary == "Cidofovir contraindicated: probenecid allergy; sulfa allergy"
    assert "- documented probenecid allergy (AllergyIntolerance/a1: allergy/intolerance 'Probenecid'); cidofovir is given with probenecid" in f.detail
    assert "AllergyIntolerance/a2: allergy/intolerance coded RxNorm 10831" in f.detail and stops(f)[0].order_id == d.id
    # Allergies not retrieved in full (another patient's left out): the one found still contraindicates, and no card
    # says the allergy check was not done.
    partial = (DataQualityIssue("missing", "allergies", "allergies and intolerances could not be retrieved (in full: ...)"),)
    found = check(make_facts(labs=cidofovir_ok_labs(), conds=allergic, drafts=[d], quality=partial))
    assert only(found, "nephrotoxicity").indicator == "critical"
    assert "sulfa allergy (contraindication) not checked" not in " ".join(f.detail for f in found)


def test_cidofovir_crcl_55_or_less_is_critical():
    d = draft("cidofovir", 350, 168)
    # CG (80 x 70) / (72 x 1.45) = 53.6 mL/min
    facts = make_facts(labs=cidofovir_ok_labs(creatinine=1.45), drafts=[d])
    f = only(check(facts), "nephrotoxicity")
    assert f.indicator == "critical" and "CrCl 53.6 mL/min (≤ 55)" in f.summary
    assert [s.order_id for s in stops(f)] == [d.id]
    assert "Probenecid 2 g orally" not in f.detail  # how to give it is no advice where the label says do not
    # What passed is shown with its values too: the pharmacist sees every input the card used.
    checked = f.detail.split("**Checked, within the label's limits:** ")[1].split("\n")[0]
    assert checked.startswith("serum creatinine 1.45 mg/dL (2026-11-26) ≤ 1.5 mg/dL; urine protein 0+ by dipstick")
    assert checked.endswith("no other nephrotoxic agent ordered or stopped in the last 7 days; "
                            "no probenecid or sulfa allergy on record.")
    # A part of the record that could not be had proves no absence.
    lost = [DataQualityIssue("missing", "allergies", "allergies and intolerances could not be retrieved"),
            DataQualityIssue("missing", "medications", "medication orders on record could not be retrieved")]
    found = check(replace(facts, quality=tuple(lost)))
    f = only(found, "nephrotoxicity")
    assert "allergy on record" not in f.detail and "no other nephrotoxic agent" not in f.detail
    # ... and says what could not be checked (the missing-data card).
    gap = only(found, "missing-data")
    assert "a probenecid or sulfa allergy (contraindication) not checked" in gap.detail
    assert "other nephrotoxic agents not checked" in gap.detail


def test_contraindicated_cidofovir_draft_is_removed_with_its_probenecid_draft():
    d = draft("cidofovir", 350, 168)
    pro = draft("probenecid", 2000, 24, id="MedicationRequest/probenecid-draft")
    f = only(check(make_facts(labs=cidofovir_ok_labs(creatinine=1.45), drafts=[d, pro])), "nephrotoxicity")
    [remove] = stops(f)
    assert remove.order_id == d.id and [p.order_id for p in remove.also] == [pro.id]
    assert remove.label == "Remove the cidofovir order and its probenecid"


def test_cidofovir_with_a_nephrotoxic_immunosuppressant_still_says_how_to_give_it():
    d = draft("cidofovir", 350, 168)
    f = only(check(make_facts(labs=cidofovir_ok_labs(), drafts=[d, PROBENECID], meds=[order("tacrolimus", 4, 12)])), "nephrotoxicity")
    assert f.indicator == "warning" and "Probenecid 2 g orally 3 h before" in f.detail


def test_cidofovir_creatinine_above_15_is_critical_even_with_high_crcl():
    d = draft("cidofovir", 600, 168)
    facts = make_facts(age=30, weight_kg=120, labs=cidofovir_ok_labs(creatinine=1.6), drafts=[d])
    assert facts.renal.crcl_ml_min > 100
    f = only(check(facts), "nephrotoxicity")
    assert f.indicator == "critical" and "creatinine 1.6 mg/dL (> 1.5)" in f.summary
    # 133 µmol/L is 1.5045 mg/dL: above the limit, and shown so (not as "1.5 mg/dL (> 1.5)").
    converted = measurement("creatinine", 133 / 88.4, 0.5, reported="133 umol/L")
    facts = make_facts(age=30, weight_kg=120, labs=[converted, *cidofovir_ok_labs()[1:]], drafts=[d])
    f = only(check(facts), "nephrotoxicity")
    assert "creatinine 1.505 mg/dL (> 1.5)" in f.summary
    assert "serum creatinine 1.505 mg/dL (2026-11-26), reported as 133 umol/L > 1.5 mg/dL" in f.detail


@pytest.mark.parametrize(
    "lab,critical",
    [
        (measurement("urine_protein", 150, 0.5), True),
        (measurement("urine_protein", 100, 0.5), True),
        (measurement("urine_protein", 60, 0.5), False),
        (measurement("urine_protein_dipstick", 2, 0.5, reported="2+"), True),
        (measurement("urine_protein_dipstick", 1, 0.5, reported="1+"), False),
    ],
)
def test_cidofovir_proteinuria(lab, critical):
    d = draft("cidofovir", 350, 168)
    labs = [measurement("creatinine", 0.9, 0.5), lab]
    findings = check(make_facts(labs=labs, drafts=[d, PROBENECID]))
    assert ("nephrotoxicity" in topics(findings)) is critical
    if critical:
        assert only(findings, "nephrotoxicity").indicator == "critical"


def test_cidofovir_with_an_active_nephrotoxin_is_critical():
    d = draft("cidofovir", 350, 168)
    facts = make_facts(labs=cidofovir_ok_labs(), drafts=[d], meds=[order("vancomycin", 1000, 12)])
    f = only(check(facts), "nephrotoxicity")
    assert f.indicator == "critical" and "vancomycin" in f.summary


@pytest.mark.parametrize("ended_days_ago,expected", [(3, "critical"), (6, "critical"), (7, None), (10, None)])
def test_cidofovir_nephrotoxin_washout(ended_days_ago, expected):
    d = draft("cidofovir", 350, 168)
    gentamicin = order("gentamicin", 350, 24, status="stopped", end=day(ended_days_ago))
    findings = check(make_facts(labs=cidofovir_ok_labs(), drafts=[d, PROBENECID], meds=[gentamicin]))
    assert ([f.indicator for f in findings if f.topic == "nephrotoxicity"] or [None]) == [expected]


def test_cidofovir_nephrotoxin_end_unknown_is_a_warning():
    d = draft("cidofovir", 350, 168)
    amphotericin = order("amphotericin b", 300, 24, status="completed")
    f = only(check(make_facts(labs=cidofovir_ok_labs(), drafts=[d, PROBENECID], meds=[amphotericin])), "nephrotoxicity")
    assert f.indicator == "warning" and "end date unknown" in f.detail


def test_cidofovir_pre_dose_checks_older_than_48h_are_missing_data():
    d = draft("cidofovir", 350, 168)
    findings = check(make_facts(drafts=[d]))  # creatinine 1 day old is fine; no urine protein at all
    f = only(findings, "missing-data")
    assert labs_ordered(f) == ["urine-protein"] and "no usable urine protein result on record" in f.detail
    findings = check(make_facts(labs=cidofovir_ok_labs(creatinine_days_ago=3), drafts=[d]))
    f = only(findings, "missing-data")
    assert labs_ordered(f) == ["creatinine"] and "is 3 days old (limit 2 days)" in f.detail
    # 53 hours is not "2 days old (limit 2 days)": an age that reads as within the limit is never shown.
    f = only(check(make_facts(labs=cidofovir_ok_labs(creatinine_days_ago=53 / 24), drafts=[d])), "missing-data")
    assert "is 53 hours old (limit 48 hours)" in f.detail


@pytest.mark.parametrize("kw", [dict(creatinine=None), dict(creatinine=None, crcl=80.0), dict(lab_ages={"creatinine": 30})])
def test_cidofovir_without_a_current_creatinine_is_missing_data_not_a_crash(kw):
    # Missing, or older than the staleness window, with or without a reported clearance: nothing is said to
    # be within the label's creatinine limit, and the creatinine is asked for.
    protein = measurement("urine_protein_dipstick", 0, 0.5, reported="negative")
    d = draft("cidofovir", 350, 168)
    findings = check(make_facts(labs=[protein], drafts=[d], **kw))
    f = only(findings, "missing-data")
    assert labs_ordered(f) == ["creatinine"]
    assert "≤ 1.5 mg/dL" not in f.detail


# Creatinine rise since the course began (label: 0.3-0.4 mg/dL -> 3 mg/kg; >= 0.5 -> stop).  A
# 40-year-old of 80 kg keeps CrCl above 55 mL/min up to creatinine 1.5 ((100 x 80) / (72 x 1.5) = 74).


def on_cidofovir(current, baseline=1.0):
    """The next maintenance dose, on cidofovir since 3 weeks; the baseline the day before it began."""
    course = order("cidofovir", 400, 336, start=day(21))
    labs = cidofovir_ok_labs(creatinine=current)
    if baseline is not None:
        labs.append(measurement("creatinine", baseline, 22))
    d = draft("cidofovir", 400, 336)
    return d, check(make_facts(age=40, weight_kg=80, labs=labs, drafts=[d, PROBENECID], meds=[course]))


def test_cidofovir_creatinine_up_03_to_04_is_3_mg_per_kg():
    d, findings = on_cidofovir(1.35)
    f = only(findings, "nephrotoxicity")
    assert f.indicator == "warning" and "creatinine up 0.35 mg/dL during the course: 3 mg/kg (label), 240 mg every 2 weeks" in f.summary
    assert "baseline 1 mg/dL (2026-11-04), now 1.35 mg/dL (2026-11-26)" in f.detail and "(2026-11-05)" in f.detail
    assert "3 mg/kg x 80 kg (actual body weight) = 240 mg -> 240 mg (rounded to the nearest 5 mg, local policy), every 2 weeks" in f.detail
    (dose,) = doses(f)
    assert (dose.dose_mg, dose.interval_hours, dose.replaces) == (240, 336, d.id) and not stops(f)
    assert {c.key for c in f.sources} == {"cidofovir-label"}


def test_cidofovir_3_mg_per_kg_in_induction_ends_with_the_induction():
    # The second weekly dose (day 7 of the course): the 3 mg/kg order is bounded to the 7 days of induction
    # left, not an open weekly order (a third weekly dose); the every-2-weeks maintenance is a new order.
    first = order("cidofovir", 400, 168, start=day(7), end=day(7), status="completed")
    labs = [*cidofovir_ok_labs(creatinine=1.35), measurement("creatinine", 1.0, 8)]
    d = draft("cidofovir", 400, 168)
    f = only(check(make_facts(age=40, weight_kg=80, labs=labs, drafts=[d, PROBENECID], meds=[first])), "nephrotoxicity")
    assert f.summary.endswith("3 mg/kg (label), 240 mg once weekly to day 14 of the course")
    (dose,) = doses(f)
    assert (dose.dose_mg, dose.interval_hours, dose.duration_days, dose.replaces) == (240, 168, 7, d.id)
    assert "**Induction left:** 7 days: the order ends with the induction" in f.detail
    # Without its probenecid: said on this card, not on a second one for the same draft.
    f = only(check(make_facts(age=40, weight_kg=80, labs=labs, drafts=[d], meds=[first])), "nephrotoxicity")
    assert "3 mg/kg (label)" in f.summary and "**Probenecid:** none drafted with it" in f.detail


def test_cidofovir_already_at_3_mg_per_kg_is_quiet():
    course = order("cidofovir", 240, 336, start=day(21))
    labs = [*cidofovir_ok_labs(creatinine=1.35), measurement("creatinine", 1.0, 22)]
    d = draft("cidofovir", 240, 336, mg_per_kg=3)
    findings = check(make_facts(age=40, weight_kg=80, labs=labs, drafts=[d, PROBENECID], meds=[course]))
    assert "nephrotoxicity" not in topics(findings) and "missing-data" not in topics(findings)


def test_cidofovir_creatinine_up_05_is_stop():
    d, findings = on_cidofovir(1.5)
    f = only(findings, "nephrotoxicity")
    assert f.indicator == "critical" and "creatinine up 0.5 mg/dL during the course (≥ 0.5)" in f.summary
    assert "baseline 1 mg/dL (2026-11-04), now 1.5 mg/dL (2026-11-26); ≥ 0.5 mg/dL: stop (label)" in f.detail
    assert [s.order_id for s in stops(f)] == [d.id] and not doses(f)


def test_a_draft_the_kidneys_rule_out_stops_the_drug_s_orders_on_record_with_it():
    # The limit applies to every dose: removing the next dose alone would leave the course running.  One
    # card says so; no duplicate card offers to keep the draft and stop the course instead.
    d, findings = on_cidofovir(1.5)
    [remove] = stops(only(findings, "nephrotoxicity"))
    # Its probenecid goes too: no cidofovir order stays.
    assert [(a.order_id, a.reason) for a in remove.also] == [
        ("MedicationRequest/cidofovir-active", "contraindicated (label)"), (PROBENECID.id, "given only with cidofovir")]
    assert "**Also on record:** cidofovir 400 mg every 336 h (IV), active: the same limit applies to each of its " \
           "doses, so the removal offered here discontinues it too." in only(findings, "nephrotoxicity").detail
    assert "duplicate-therapy" not in topics(findings)
    # Foscarnet below the label's renal table: the same.
    fos = draft("foscarnet", 1500, 24)
    on_record = order("foscarnet", 1500, 24, id="MedicationRequest/fos-on-record", start=day(5))
    findings = check(make_facts(creatinine=4.5, drafts=[fos], meds=[on_record]))  # 0.25 mL/min/kg
    f = only(findings, "nephrotoxicity")
    assert f.indicator == "critical" and [a.order_id for p in stops(f) for a in p.also] == [on_record.id]
    assert "duplicate-therapy" not in topics(findings) and "Hydration" not in f.detail
    # Electrolytes out of range are still said: the foscarnet on record caused them, and stopping it does
    # not correct them.
    found = check(make_facts(creatinine=4.5, labs={"potassium": 2.9}, drafts=[fos], meds=[on_record]))
    assert "nephrotoxicity" in topics(found) and "electrolyte-abnormality" in topics(found)


@pytest.mark.parametrize(
    "current, indicator, judged",
    [(1.45, "critical", "0.5"), (1.44, "warning", "0.4"), (1.25, "warning", "0.3"), (1.24, None, None)],
)
def test_a_rise_between_the_label_s_rows_is_judged_at_its_0_1_mg_dl_steps(current, indicator, judged):
    # The label: 0.3-0.4 -> 3 mg/kg, >= 0.5 -> stop; 0.45 is neither until read at the label's step.
    d, findings = on_cidofovir(current)
    if indicator is None:
        assert "nephrotoxicity" not in topics(findings)
        return
    f = only(findings, "nephrotoxicity")
    assert f.indicator == indicator and f"({judged} in the label's 0.1 mg/dL steps)" in f.detail
    assert bool(stops(f)) == (indicator == "critical") and bool(doses(f)) == (indicator == "warning")


def test_cidofovir_creatinine_up_less_than_03_adds_nothing():
    _, findings = on_cidofovir(1.2)
    assert "nephrotoxicity" not in topics(findings) and "missing-data" not in topics(findings)


def test_cidofovir_without_a_creatinine_before_the_course_cannot_judge_the_rise():
    _, findings = on_cidofovir(1.35, baseline=None)
    f = only(findings, "missing-data")
    assert "creatinine rise since the cidofovir course began" in f.detail
    assert "no creatinine on record on or before the start of the cidofovir course (2026-11-05)" in f.detail
    assert "the earliest creatinine read is 1.35 mg/dL (2026-11-26)" in f.detail
    assert labs_ordered(f) == [] and "nephrotoxicity" not in topics(findings)


def test_first_cidofovir_draft_has_no_rise_to_judge():
    d = draft("cidofovir", 400, 168)
    labs = [*cidofovir_ok_labs(creatinine=1.45), measurement("creatinine", 1.0, 22)]
    findings = check(make_facts(age=40, weight_kg=80, labs=labs, drafts=[d, PROBENECID]))
    assert findings == []  # up 0.45 since 3 weeks, but no course on record
    assert check(make_facts(age=40, weight_kg=80, labs=cidofovir_ok_labs(), drafts=[d, PROBENECID])) == []


def test_cidofovir_rise_03_with_a_contraindication_is_named_in_the_critical_card():
    course = order("cidofovir", 400, 336, start=day(21))
    labs = [measurement("creatinine", 1.35, 0.5), measurement("creatinine", 1.0, 22),
            measurement("urine_protein_dipstick", 3, 0.5, reported="3+")]
    f = only(check(make_facts(age=40, weight_kg=80, labs=labs, drafts=[draft("cidofovir", 400, 336)], meds=[course])), "nephrotoxicity")
    assert f.indicator == "critical" and "≥ 2+" in f.summary and not doses(f)
    assert "creatinine up 0.35 mg/dL (0.4 in the label's 0.1 mg/dL steps) since the cidofovir course began (2026-11-05)" in f.detail
    assert "0.3-0.4 mg/dL: 3 mg/kg (label)" in f.detail


def test_a_recently_completed_cidofovir_course_counts_and_is_no_other_nephrotoxin():
    course = order("cidofovir", 400, 168, status="completed", start=day(28), end=day(3))
    labs = [*cidofovir_ok_labs(creatinine=1.3), measurement("creatinine", 0.9, 30)]
    d = draft("cidofovir", 400, 168)
    f = only(check(make_facts(age=40, weight_kg=80, labs=labs, drafts=[d, PROBENECID], meds=[course])), "nephrotoxicity")
    assert f.indicator == "warning" and "up 0.4 mg/dL" in f.summary and "(2026-10-29)" in f.detail
    # Day 28 of the course: the label's two weekly induction doses are behind it, so 3 mg/kg every 2 weeks.
    assert "stopped" not in f.detail and [p.interval_hours for p in doses(f)] == [336]


def test_a_weekly_cidofovir_draft_past_the_two_induction_weeks_is_changed_to_every_2_weeks():
    # Label: 5 mg/kg once weekly for 2 weeks, then every 2 weeks.  On day 21 of the course a weekly draft
    # gives the maintenance amount twice over.
    course = order("cidofovir", 400, 168, start=day(21))
    labs = [*cidofovir_ok_labs(creatinine=1.0), measurement("creatinine", 1.0, 22)]
    d = draft("cidofovir", 400, 168)
    f = only(check(make_facts(age=40, weight_kg=80, labs=labs, drafts=[d], meds=[course])), "renal-dose-adjustment")
    assert f.summary == "Cidofovir 400 mg weekly too high on day 21 of the course: 400 mg (5 mg/kg) every 2 weeks (2x the band's daily dose)"
    assert "maintenance: day 21 of the cidofovir course begun 2026-11-05 (label: once weekly for 2 weeks, then every 2 weeks)" in f.detail
    assert [(p.dose_mg, p.interval_hours, p.replaces) for p in doses(f)] == [(400, 336, d.id)]
    # The weekly order on record is then a dose change (stop it when the new one starts), not a copy to remove.
    dup = only(check(make_facts(age=40, weight_kg=80, labs=labs, drafts=[d], meds=[course])), "duplicate-therapy")
    assert dup.summary.startswith("Cidofovir dose change") and [p.order_id for p in stops(dup)] == [course.id]
    # A course that ended more than 2 weeks (the maintenance interval) before is another course: this one
    # starts with its induction.
    ended = order("cidofovir", 400, 336, status="completed", start=day(60), end=day(28))
    found = check(make_facts(age=40, weight_kg=80, labs=labs, drafts=[d], meds=[ended]))
    assert "renal-dose-adjustment" not in topics(found)
    # A dose given a day late (15 days after the one before) is the same course: its creatinine baseline
    # stays the one before the course (0.8 mg/dL; now 1.3: up 0.5, stop).
    doses_given = [order("cidofovir", 350, 336, id=f"MedicationRequest/cdv-{n}", status="completed", start=day(n), end=day(n))
                   for n in (29, 22, 7)]
    creatinine = [measurement("creatinine", 0.8, 31), measurement("creatinine", 1.1, 9), measurement("creatinine", 1.3, 1),
                  measurement("urine_protein_dipstick", 0, 0.5, reported="negative")]
    late = draft("cidofovir", 350, 336, start=day(-7))
    f = only(check(make_facts(age=40, weight_kg=80, labs=creatinine, drafts=[late], meds=doses_given)), "nephrotoxicity")
    assert f.indicator == "critical" and "creatinine up 0.5 mg/dL during the course" in f.summary
    # Within the first two weeks (day 7: the second induction dose), and for a first dose: induction, no card.
    for start in (day(7), None):
        meds = [order("cidofovir", 400, 168, start=start)] if start else []
        found = check(make_facts(age=40, weight_kg=80, labs=labs, drafts=[d], meds=meds))
        assert "renal-dose-adjustment" not in topics(found)


# A creatinine reported as a bound: the lab's CrCl (80) is used, as the facts layer does when
# Cockcroft-Gault refuses the bound; without it there is no CrCl (facts/renal.py says why).
BOUND_ISSUE = DataQualityIssue(
    "implausible", "creatinine", "creatinine <2 mg/dL (2026-11-26) is a bound, not a value: it cannot be used in a calculation"
)


def test_cidofovir_creatinine_bound_certainly_above_15_is_critical():
    d = draft("cidofovir", 350, 168)
    labs = [measurement("creatinine", 1.5, 0.5, comparator=">"), *cidofovir_ok_labs()[1:]]
    f = only(check(make_facts(crcl=80, labs=labs, drafts=[d])), "nephrotoxicity")
    assert f.indicator == "critical" and "creatinine >1.5 mg/dL (> 1.5)" in f.summary
    assert "serum creatinine >1.5 mg/dL (2026-11-26) > 1.5 mg/dL" in f.detail and [s.order_id for s in stops(f)] == [d.id]


@pytest.mark.parametrize("crcl,issues", [(80, []), (None, [BOUND_ISSUE])])
def test_cidofovir_creatinine_bound_that_cannot_tell_is_missing_data(crcl, issues):
    d = draft("cidofovir", 350, 168)
    labs = [measurement("creatinine", 2.0, 0.5, comparator="<"), *cidofovir_ok_labs()[1:]]
    findings = check(make_facts(crcl=crcl, labs=labs, quality=issues, drafts=[d, PROBENECID]))
    f = only(findings, "missing-data")
    unknown = "creatinine <2 mg/dL (2026-11-26): a bound that cannot show whether it is above the cidofovir label's limit of 1.5 mg/dL"
    assert f.detail.count(unknown) == 1 and labs_ordered(f) == ["creatinine"]
    assert "nephrotoxicity" not in topics(findings)
    if crcl is None:  # and the CrCl, which the same bound leaves uncomputed, says so once
        assert f.detail.count("is a bound, not a value: it cannot be used in a calculation") == 1


# Cidofovir's boxed warning for neutropenia (label: no count given; the lab's flag or range judges, else the
# policy's CDS_POLICY_ANC_LOW_PER_UL).


@pytest.mark.parametrize(
    "anc,basis",
    [
        (measurement("anc", 1200, 1, interpretation="L"), "flagged L by the lab"),
        (measurement("anc", 1400, 1, reference_low=1500), "below the lab's reference low 1500"),
        (measurement("anc", 400, 1), "below the local lower limit 1500 /uL (policy)"),  # no flag, no range
    ],
)
def test_cidofovir_with_a_low_anc_is_a_neutropenia_warning(anc, basis):
    d = draft("cidofovir", 350, 168)
    f = only(check(make_facts(labs=[*cidofovir_ok_labs(), anc], drafts=[d])), "hematologic-toxicity")
    shown = f"ANC {anc.value:,.0f}/µL"
    assert f.indicator == "warning" and f.summary == f"Cidofovir with low {shown}: boxed warning for neutropenia (label)"
    assert f"**Low ANC:** {shown} (2026-11-25), {basis}" in f.detail
    assert "Cidofovir: boxed warning for neutropenia; monitor neutrophil counts during therapy (label)." in f.detail
    assert "whether to give this dose is the clinician's decision" in f.detail
    assert f.proposals == () and [c.key for c in f.sources] == ["cidofovir-label"] and f.order_id == d.id


def test_cidofovir_with_an_anc_in_the_lab_s_range_or_above_the_policy_s_limit_is_quiet():
    d = draft("cidofovir", 350, 168)
    for anc in (measurement("anc", 1400, 1, reference_low=1200), measurement("anc", 2500, 1)):
        assert "hematologic-toxicity" not in topics(check(make_facts(labs=[*cidofovir_ok_labs(), anc], drafts=[d])))


def test_cidofovir_without_a_current_anc_is_missing_data():
    d = draft("cidofovir", 350, 168)
    ok, fresh = {"creatinine": 0.9, "urine_protein_dipstick": 0}, {"creatinine": 0.5, "urine_protein_dipstick": 0.5}
    findings = check(make_facts(labs={**ok, "anc": None}, lab_ages=fresh, drafts=[d]))
    f = only(findings, "missing-data")
    assert "- cidofovir's boxed warning for neutropenia (label): no usable ANC result on record" in f.detail
    assert labs_ordered(f) == ["cbc"] and [c.key for c in f.sources] == ["cidofovir-label"]
    findings = check(make_facts(labs={**ok, "anc": 300}, lab_ages={**fresh, "anc": 9}, drafts=[d]))
    f = only(findings, "missing-data")  # a stale count drives nothing
    assert "- cidofovir's boxed warning for neutropenia (label): ANC 300 /uL of 2026-11-17 is 9 days old (limit 7 days)" in f.detail
    assert "hematologic-toxicity" not in topics(findings)


def test_cidofovir_anc_bound_that_cannot_tell_is_missing_data():
    d = draft("cidofovir", 350, 168)
    anc = measurement("anc", 2000, 1, comparator="<", reference_low=1500)
    findings = check(make_facts(labs=[*cidofovir_ok_labs(), anc], drafts=[d]))
    f = only(findings, "missing-data")
    assert "ANC <2,000/µL (2026-11-25) cannot show whether it is below the lab's reference low 1500" in f.detail
    assert labs_ordered(f) == ["cbc"] and "hematologic-toxicity" not in topics(findings)


# ---------------------------------------------------------------------------------------------
# Foscarnet kidneys


def test_foscarnet_below_04_per_kg_is_critical_and_no_renal_dose_card():
    d = draft("foscarnet", 6300, 12)
    findings = check(make_facts(crcl=24, crcl_per_kg=0.35, drafts=[d]))
    f = only(findings, "nephrotoxicity")
    assert f.indicator == "critical" and "0.35 mL/min/kg" in f.summary and stops(f)
    assert "renal-dose-adjustment" not in topics(findings)
    # It may be the only treatment left: the card says who chooses what follows.
    assert "choose what follows with infectious diseases" in f.detail


def test_foscarnet_with_another_nephrotoxin_is_a_warning():
    d = draft("foscarnet", 6300, 12)
    f = only(check(make_facts(crcl=112, crcl_per_kg=1.6, drafts=[d], meds=[order("vancomycin", 1000, 12)])), "nephrotoxicity")
    assert f.indicator == "warning" and "vancomycin" in f.summary and "750-1000 mL" in f.detail


def test_a_foscarnet_draft_beside_foscarnet_on_record_is_not_another_nephrotoxin():
    # Maintenance drafted while the induction is on record: the same drug (the duplicate card's), not "foscarnet
    # with another nephrotoxic drug (foscarnet)".
    induction = order("foscarnet", 6300, 12, id="MedicationRequest/fos-induction", start=day(22))
    maintenance = draft("foscarnet", 6300, 24, id="MedicationRequest/fos-maintenance")
    findings = check(make_facts(crcl=112, crcl_per_kg=1.6, drafts=[maintenance], meds=[induction]))
    assert "nephrotoxicity" not in topics(findings) and "duplicate-therapy" in topics(findings)


@pytest.mark.parametrize("anti_cmv,indicator", [("foscarnet", "warning"), ("cidofovir", "critical")])
def test_nephrotoxin_drafted_while_on_foscarnet_or_cidofovir(anti_cmv, indicator):
    vanco = draft("vancomycin", 1000, 12)
    facts = make_facts(drafts=[vanco], meds=[order(anti_cmv, 350, 168)])
    f = only(check(facts), "nephrotoxicity")
    assert f.indicator == indicator and f.order_id == vanco.id and stops(f)[0].order_id == vanco.id


def test_nephrotoxin_drafted_on_dialysis_with_foscarnet_gives_no_hydration_advice():
    vanco = draft("vancomycin", 1000, 12)
    dialysis = ConditionFacts(renal_replacement="dialysis")
    f = only(check(make_facts(drafts=[vanco], meds=[order("foscarnet", 350, 168)], conds=dialysis)), "nephrotoxicity")
    assert "Hydration" not in f.detail
    assert "Hydration" in only(check(make_facts(drafts=[vanco], meds=[order("foscarnet", 350, 168)])), "nephrotoxicity").detail


def test_nephrotoxin_and_targeted_foscarnet_reported_once_from_the_foscarnet_side():
    vanco = draft("vancomycin", 1000, 12, id="MedicationRequest/vanco")
    fos = draft("foscarnet", 6300, 12, id="MedicationRequest/fos")
    findings = check(make_facts(crcl=112, crcl_per_kg=1.6, drafts=[vanco, fos]))
    f = only(findings, "nephrotoxicity")
    assert f.order_id == fos.id


# ---------------------------------------------------------------------------------------------
# Electrolytes (foscarnet)


def fos_facts(**kw):
    return make_facts(crcl=112, crcl_per_kg=1.6, drafts=[draft("foscarnet", 6300, 12)], **kw)


def test_foscarnet_with_normal_electrolytes_is_quiet():
    assert check(fos_facts()) == []


def test_low_potassium_by_lab_flag():
    f = only(check(fos_facts(labs=[measurement("potassium", 3.1, 1, interpretation="L")])), "electrolyte-abnormality")
    assert f.indicator == "warning" and "low potassium 3.1 mmol/L" in f.summary and "flagged L by the lab" in f.detail


def test_low_magnesium_by_local_limit_when_lab_gives_nothing():
    f = only(check(fos_facts(labs={"magnesium": 1.5})), "electrolyte-abnormality")
    assert "magnesium 1.5 mg/dL" in f.summary and "local lower limit 1.7 mg/dL (policy)" in f.detail


def test_an_electrolyte_just_past_its_limit_is_shown_past_it():
    # 3.496 mmol/L against the lab's 3.5 is low: shown as 3.496, never as "3.5 ... below 3.5".
    f = only(check(fos_facts(labs=[measurement("potassium", 3.496, 1, reference_low=3.5)])), "electrolyte-abnormality")
    assert "low potassium 3.496 mmol/L" in f.summary
    assert "potassium 3.496 mmol/L (2026-11-25), below the lab's reference low 3.5 mmol/L" in f.detail
    f = only(check(fos_facts(labs=[measurement("phosphate", 4.504, 1, reference_high=4.5)])), "electrolyte-abnormality")
    assert "high phosphate 4.504 mg/dL" in f.summary


def test_an_abnormal_flag_with_no_direction_is_neither_low_nor_in_range():
    # Potassium 2.8 flagged A, no range: the flag cannot say it is not low, so the local 3.5 decides.
    f = only(check(fos_facts(labs=[measurement("potassium", 2.8, 1, interpretation="A")])), "electrolyte-abnormality")
    assert "low potassium 2.8 mmol/L" in f.summary and "local lower limit 3.5 mmol/L (policy)" in f.detail
    assert "potassium" not in f.detail.split("**Current, in range:**")[1]
    # Phosphate 4.0 flagged A (no local upper limit, no range): shown as the lab's abnormal, never "in range".
    f = only(check(fos_facts(labs=[measurement("phosphate", 4.0, 1, interpretation="A")])), "electrolyte-abnormality")
    assert f.summary == "Foscarnet with flagged abnormal phosphate 4 mg/dL"
    assert "**Flagged abnormal by the lab, no direction given:** phosphate 4 mg/dL" in f.detail
    assert "**Current, in range:**" in f.detail and "phosphate" not in f.detail.split("**Current, in range:**")[1]
    # On record (patient-view), the same card.
    course = order("foscarnet", 6300, 12, id="MedicationRequest/fos-on-record", start=day(5))
    facts = make_facts(crcl=112, crcl_per_kg=1.6, meds=[course], labs=[measurement("potassium", 2.8, 1, interpretation="A")])
    assert "low potassium 2.8" in only(check(facts, targets=[course]), "electrolyte-abnormality").summary


def test_lab_range_wins_over_local_limit():
    calcium = measurement("calcium", 8.3, 1, reference_low=8.0)  # below policy 8.5, above the lab's 8.0
    assert check(fos_facts(labs=[calcium])) == []


def test_low_ionised_calcium_while_total_normal():
    ica = measurement("ionized_calcium", 1.05, 1, interpretation="L")
    f = only(check(fos_facts(labs=[ica])), "electrolyte-abnormality")
    assert "ionized calcium" in f.summary and "ionized calcium may fall while total calcium looks normal" in f.detail


@pytest.mark.parametrize(
    "phosphate, basis",
    [
        (measurement("phosphate", 5.6, 1, interpretation="H"), "flagged H by the lab"),
        (measurement("phosphate", 5.6, 1, reference_low=2.5, reference_high=4.5), "above the lab's reference high 4.5 mg/dL"),
    ],
)
def test_high_phosphate_by_the_lab_is_a_warning(phosphate, basis):
    f = only(check(fos_facts(labs=[phosphate])), "electrolyte-abnormality")
    assert f.summary == "Foscarnet with high phosphate 5.6 mg/dL" and basis in f.detail and not f.proposals


def test_phosphate_high_by_no_lab_range_and_other_highs_are_quiet():
    # No local upper limit for phosphate; the reference names no high potassium or magnesium for foscarnet.
    labs = [measurement("phosphate", 5.6, 1), measurement("potassium", 5.9, 1, interpretation="H")]
    assert check(fos_facts(labs=labs)) == []


def test_no_baseline_electrolytes_proposes_lab_orders():
    facts = fos_facts(labs={"potassium": None, "magnesium": None, "calcium": None, "ionized_calcium": None, "phosphate": None})
    f = only(check(facts), "electrolyte-abnormality")
    assert f.indicator == "warning" and f.selection == "any"
    assert labs_ordered(f) == ["potassium", "magnesium", "calcium", "ionized-calcium", "phosphate"]
    assert "no usable potassium result on record" in f.detail


def test_an_electrolyte_resulting_is_said_so_and_not_ordered_again():
    # The newest potassium is preliminary (unused): not "no potassium in 7 days", and no second potassium order.
    prelim = (DataQualityIssue("preliminary", "potassium", "newest potassium 2026-11-26: 4 mmol/L is preliminary, not final; "
                                                          "not used; older results are not used in its place"),)
    facts = fos_facts(labs={"potassium": None, "magnesium": None}, quality=prelim)
    f = only(check(replace(facts, labs=replace(facts.labs, preliminary_at={"potassium": days_ago(0.5)}))), "electrolyte-abnormality")
    assert f.summary == "Foscarnet with no magnesium in 7 days; potassium resulting (preliminary)"
    assert labs_ordered(f) == ["magnesium"]
    old = only(check(replace(facts, labs=replace(facts.labs, preliminary_at={"potassium": days_ago(60)}))), "electrolyte-abnormality")
    assert labs_ordered(old) == ["potassium", "magnesium"]
    # An ionized calcium resulting beside a current total calcium is not ordered again either.
    low_k = fos_facts(labs=[measurement("potassium", 3.1, 1, interpretation="L")])
    low_k = replace(low_k, labs=replace(low_k.labs, by_analyte={k: v for k, v in low_k.labs.by_analyte.items()
                                                                if k != "ionized_calcium"},
                                        preliminary_at={"ionized_calcium": days_ago(0.5)}))
    f = only(check(low_k), "electrolyte-abnormality")
    assert labs_ordered(f) == [] and "an ionized calcium is resulting (preliminary)" in f.detail


def test_one_calcium_is_a_baseline_and_stale_values_are_missing():
    facts = fos_facts(labs={"calcium": None}, lab_ages={"phosphate": 12})
    f = only(check(facts), "electrolyte-abnormality")
    assert labs_ordered(f) == ["phosphate"]  # ionised calcium present: no calcium proposed
    assert "12 days old (limit 7 days)" in f.detail


def test_total_calcium_alone_is_quiet_but_a_card_shown_anyway_asks_for_an_ionized_calcium():
    assert check(fos_facts(labs={"ionized_calcium": None})) == []  # a total calcium is a baseline
    f = only(check(fos_facts(labs={"ionized_calcium": None, "magnesium": 1.5})), "electrolyte-abnormality")
    assert "Only a total calcium is current" in f.detail
    assert [(p.test, p.recommended) for p in f.proposals] == [("ionized-calcium", False)]
    f = only(check(fos_facts(labs={"magnesium": 1.5})), "electrolyte-abnormality")  # an ionized one on record
    assert "Only a total calcium" not in f.detail and not f.proposals


# ---------------------------------------------------------------------------------------------
# Calcineurin inhibitors are nephrotoxic, but not the agents the labels name


def test_cidofovir_with_tacrolimus_is_a_warning_not_a_contraindication():
    d = draft("cidofovir", 350, 168)
    f = only(check(make_facts(labs=cidofovir_ok_labs(), drafts=[d, PROBENECID], meds=[order("tacrolimus", 2, 12)])), "nephrotoxicity")
    assert f.indicator == "warning" and "nephrotoxic immunosuppressant" in f.detail
    # Its removal says why as the card does: not "contraindicated".
    assert [p.reason for p in f.proposals] == ["nephrotoxic co-medication (label: stop them ≥ 7 days before)"]


def test_foscarnet_with_tacrolimus_alone_is_quiet():
    d = draft("foscarnet", 6300, 12)
    assert check(make_facts(crcl=112, crcl_per_kg=1.6, drafts=[d], meds=[order("tacrolimus", 2, 12)])) == []


def test_tacrolimus_drafted_while_on_cidofovir_is_never_proposed_for_removal():
    tac = draft("tacrolimus", 2, 12)
    f = only(check(make_facts(drafts=[tac], meds=[order("cidofovir", 350, 168)])), "nephrotoxicity")
    assert f.indicator == "warning" and f.proposals == ()


def test_oral_vancomycin_is_not_a_nephrotoxin():
    d = draft("cidofovir", 350, 168)
    assert check(make_facts(labs=cidofovir_ok_labs(), drafts=[d, PROBENECID], meds=[order("vancomycin", 125, 6, "oral")])) == []


def test_local_limits_are_policy():
    facts = fos_facts(labs={"magnesium": 1.5})
    policy = replace(POLICY, magnesium_low_mg_dl=1.4)
    assert check_orders(facts, policy, facts.drafts) == []


def test_a_reason_two_checks_share_is_said_once_with_both_checks():
    d = draft("cidofovir", 350, 168)
    labs = [measurement("urine_protein_dipstick", 0, 0.5, reported="negative")]
    f = only(check(make_facts(crcl=None, weight_kg=None, labs=labs, drafts=[d])), "missing-data")
    assert f.detail.count("no usable weight for the mg/kg dose") == 1
    assert "- renal dose; cidofovir pre-dose checks (label: within 48 h before each dose): " in f.detail


# ---------------------------------------------------------------------------------------------
# Low counts and a marrow-toxic co-medication: one piece of advice, one card


def test_low_counts_with_a_marrow_toxic_co_medication_are_one_card():
    vgc = draft("valganciclovir", 900, 12)
    hgb = measurement("hemoglobin", 11.9, 1, interpretation="L")
    mmf = order("mycophenolate", 1000, 12)
    findings = check(make_facts(labs=[hgb], drafts=[vgc], meds=[mmf]))
    f = only(findings, "hematologic-toxicity")
    assert "drug-interaction" not in topics(findings)
    assert f.indicator == "info" and f.summary == (
        "Valganciclovir with low hemoglobin 11.9 g/dL and mycophenolate (marrow-toxic): monitor CBC at least weekly")
    assert "**Marrow-toxic co-medication:** mycophenolate 1000 mg every 12 h" in f.detail
    assert "interaction-managed" in f.override_reasons
    # Counts in range: the interaction card alone; below the label: the critical card and the interaction.
    ok = check(make_facts(labs={"hemoglobin": 13}, drafts=[vgc], meds=[mmf]))
    assert topics(ok) == ["drug-interaction"]
    severe = check(make_facts(labs={"hemoglobin": 7.5}, conds=COLITIS, drafts=[vgc], meds=[mmf]))
    assert sorted(topics(severe)) == ["drug-interaction", "hematologic-toxicity"]
    assert only(severe, "hematologic-toxicity").indicator == "critical"
