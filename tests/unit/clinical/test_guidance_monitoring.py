"""Monitoring during and outside treatment: which test counts as weekly CMV monitoring (PCR or
pp65), and the sources the monitoring and course-length cards cite for the lines they show."""

from __future__ import annotations

from dataclasses import replace

import pytest
from factories import POLICY, assert_sound, conditions, day, days_ago, draft, make_facts, not_detected, only, order, pp65, topics, vl

from cds_service.clinical.findings import discontinued
from cds_service.clinical.guidance import guidance

LETERMOVIR = order("letermovir", 480, 24, start=day(20))
VALGANCICLOVIR = order("valganciclovir", 900, 12, id="MedicationRequest/valgan", start=day(25))


def patient_view(facts):
    found = guidance(facts, POLICY, "patient-view", ())
    assert_sound(found)
    return found


def order_sign(facts):
    found = guidance(facts, POLICY, "order-sign", facts.drafts)
    assert_sound(found)
    return found


def hsct(days_since: int):
    return conditions(populations=("hsct",), hsct_date=day(days_since), labels=("Allogeneic HSCT",))


def sources(card) -> set[str]:
    return {c.key for c in card.sources}


# ---------------------------------------------------------------------------------------------
# HSCT surveillance: weekly PCR or pp65


def test_hsct_recent_negative_pp65_is_weekly_monitoring():
    facts = make_facts(conds=hsct(40), viral=(not_detected(20),), pp65s=(pp65(False, 2),), meds=(LETERMOVIR,))
    found = patient_view(facts)
    assert topics(found) == ["cmv-status"]
    assert "**Monitoring:** CMV PCR or pp65 within the weekly interval." in only(found, "cmv-status").detail


@pytest.mark.parametrize(
    ("pcr_age", "pp65_age", "named"),
    [
        (20, 10, "last pp65 antigen negative (2026-11-16) is 10 days old"),
        (10, 20, "last CMV PCR not detected (2026-11-16) is 10 days old"),
    ],
)
def test_hsct_overdue_names_the_newest_test(pcr_age, pp65_age, named):
    facts = make_facts(
        conds=hsct(40), viral=(not_detected(pcr_age),), pp65s=(pp65(False, pp65_age),), meds=(LETERMOVIR,)
    )
    found = patient_view(facts)
    card = only(found, "hsct-preemptive")
    assert card.indicator == "info" and "PCR (or pp65) monitoring is overdue" in card.summary
    assert named in card.detail and named in only(found, "cmv-status").detail


def test_hsct_with_neither_test_on_record():
    card = only(patient_view(make_facts(conds=hsct(40), meds=(LETERMOVIR,))), "hsct-preemptive")
    assert "no CMV PCR or pp65 result on record" in card.detail


def test_pp65_does_not_replace_the_pcr_during_treatment():
    # The brief: during treatment, CMV viral load by PCR weekly.
    facts = make_facts(conds=hsct(40), viral=(vl(3000, 12),), pp65s=(pp65(False, 1),), meds=(VALGANCICLOVIR,))
    found = patient_view(facts)
    card = only(found, "monitoring-plan")
    assert "cmv-pcr" in {p.test for p in card.proposals}
    assert "last CMV PCR 3,000 IU/mL (2026-11-14) is 12 days old" in card.detail
    assert "last CMV PCR 3,000 IU/mL (2026-11-14) is 12 days old" in only(found, "cmv-status").detail


def test_pp65_outside_hsct_does_not_count():
    sot_infection = conditions(populations=("sot",), infection=True)
    facts = make_facts(conds=sot_infection, viral=(not_detected(20),), pp65s=(pp65(False, 2),))
    assert "last CMV PCR not detected (2026-11-06) is 20 days old" in only(patient_view(facts), "cmv-status").detail


@pytest.mark.parametrize("age", [2, 500])
def test_negative_results_alone_are_quiet(age):
    # Nothing about CMV but negative tests (outside an HSCT window): no status card on every chart view.
    facts = make_facts(conds=conditions(populations=("sot",)), viral=(not_detected(age),), pp65s=(pp65(False, age),))
    assert patient_view(facts) == []


# ---------------------------------------------------------------------------------------------
# monitoring-plan: the label lines it shows are cited


def test_cidofovir_pre_dose_checks_cite_the_cidofovir_label():
    cidofovir = order("cidofovir", 350, 168, route="iv", start=day(10))
    card = only(patient_view(make_facts(viral=(vl(3000, 12),), meds=(cidofovir,))), "monitoring-plan")
    assert "urine protein within 48 h before each dose (label)" in card.detail
    assert "cidofovir-label" in sources(card) and "foscarnet-label" not in sources(card)


def test_plan_without_label_lines_cites_no_label():
    card = only(patient_view(make_facts(viral=(vl(3000, 12),), meds=(VALGANCICLOVIR,))), "monitoring-plan")
    assert "(label)" not in card.detail
    assert sources(card) == {"clinical-brief"}  # Kotton 2025 is the SOT guideline: for SOT recipients only
    sot = conditions(populations=("sot",), organs=("kidney",), infection=True)
    card = only(patient_view(make_facts(conds=sot, viral=(vl(3000, 12),), meds=(VALGANCICLOVIR,))), "monitoring-plan")
    assert sources(card) == {"clinical-brief", "kotton-2025"}


# ---------------------------------------------------------------------------------------------
# treatment-duration: the SOT course length is the 2008 study's


def test_sot_course_length_cites_the_sot_study():
    sot = conditions(populations=("sot",), organs=("kidney",), sites=("gi",), labels=("Kidney transplant", "CMV colitis"))
    facts = make_facts(conds=sot, viral=(vl(8400, 9), vl(41000, 2)), drafts=(draft("valganciclovir", 900, 12, duration_days=10),))
    card = only(order_sign(facts), "treatment-duration")
    assert "median 21 days" in card.detail and "sot-valganciclovir-2008" in sources(card)


def test_course_length_without_sot_does_not_cite_the_sot_study():
    facts = make_facts(conds=hsct(150), viral=(vl(8400, 9), vl(41000, 2)), drafts=(draft("valganciclovir", 900, 12, duration_days=10),))
    card = only(order_sign(facts), "treatment-duration")
    assert "median 21 days" not in card.detail and "sot-valganciclovir-2008" not in sources(card)


@pytest.mark.parametrize("duration, flagged", [(14, True), (20, True), (21, False)])
def test_hiv_retinitis_induction_is_21_days_not_2_weeks(duration, flagged):
    retinitis = conditions(populations=("hiv",), sites=("retinitis",), labels=("HIV disease", "CMV retinitis"))
    facts = make_facts(conds=retinitis, viral=(vl(8400, 9), vl(41000, 2)),
                       drafts=(draft("valganciclovir", 900, 12, duration_days=duration),))
    found = order_sign(facts)
    if not flagged:
        assert "treatment-duration" not in topics(found)
        return
    card = only(found, "treatment-duration")
    assert card.summary == f"Valganciclovir course set to {duration} days: HIV CMV retinitis induction is 21 days"
    assert "valganciclovir-label" in sources(card)


@pytest.mark.parametrize("last_day, flagged", [(day(-13), False), (day(-12), True)])
def test_a_course_s_end_date_is_its_last_day(last_day, flagged):
    # Today to 13 days ahead is 14 days of treatment (FHIR's end is inclusive); to 12 ahead, 13 days.
    sot = conditions(populations=("sot",), organs=("kidney",), sites=("gi",), labels=("Kidney transplant", "CMV colitis"))
    bounded = draft("valganciclovir", 900, 12, start=day(0), end=last_day)
    found = order_sign(make_facts(conds=sot, viral=(vl(8400, 9), vl(41000, 2)), drafts=(bounded,)))
    assert ("treatment-duration" in topics(found)) is flagged
    if flagged:
        assert only(found, "treatment-duration").summary.startswith("Valganciclovir course set to 13 days")


@pytest.mark.parametrize(
    "day_on, extra, sites, shown",
    [(6, (), ("gi",), True), (4, (), ("gi",), False), (6, ("valganciclovir",), ("gi",), False), (6, (), ("cns",), False)],
    ids=["day-6", "day-4", "oral-ordered", "cns"],
)
def test_iv_ganciclovir_past_its_first_days_suggests_the_oral_step_down(day_on, extra, sites, shown):
    sot = conditions(populations=("sot",), organs=("kidney",), sites=sites, labels=("Kidney transplant", "CMV disease"))
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv-iv", route="iv", start=day(day_on))
    drafts = tuple(draft(d, 900, 12) for d in extra)
    found = patient_view(make_facts(conds=sot, viral=(vl(41000, 8), vl(2300, 1)), meds=(iv,), drafts=drafts))
    step = [f for f in found if f.topic == "cmv-treatment-regimen"]
    if not shown:
        assert step == []
        return
    (card,) = step
    assert card.indicator == "info" and card.order_id == iv.id
    assert card.summary == f"IV ganciclovir day {day_on}: after clinical improvement, step down to oral valganciclovir 900 mg twice daily"
    assert "down 1.3 log10" in card.detail and "Stop the IV ganciclovir order" in card.detail
    (oral,) = card.proposals  # one suggestion orders the oral drug and discontinues the IV: never both at once
    assert (oral.drug, oral.dose_mg, oral.interval_hours) == ("valganciclovir", 900, 12)
    assert discontinued(oral) == (iv.id,) and oral.replaces is None


@pytest.mark.parametrize(
    "start, viral, shown",
    [
        (21, (not_detected(8), not_detected(1)), True),
        (10, (not_detected(8), not_detected(1)), False),  # under 2 weeks
        (21, (vl(300, 8), not_detected(1)), False),  # one undetectable result: the policy asks for two
        (21, (not_detected(15), not_detected(9)), False),  # not this week's
    ],
    ids=["criteria-met", "day-10", "one-negative", "stale"],
)
def test_a_course_that_has_met_its_end_criteria_says_so(start, viral, shown):
    sot = conditions(populations=("sot",), organs=("kidney",), sites=("gi",), labels=("Kidney transplant", "CMV colitis"))
    course = order("valganciclovir", 900, 12, id="MedicationRequest/valgan", start=day(start))
    found = patient_view(make_facts(conds=sot, viral=viral, meds=(course,)))
    ends = [f for f in found if f.topic == "treatment-duration"]
    if not shown:
        assert ends == []
        return
    (card,) = ends
    assert card.indicator == "info" and card.summary.startswith(f"Valganciclovir day {start}, CMV PCR undetectable 2 times")
    one = POLICY.__class__(course_end_negative_pcr=1)  # the brief's "one or two": policy
    assert "treatment-duration" in topics(guidance(make_facts(conds=sot, viral=(vl(300, 8), not_detected(1)), meds=(course,)),
                                                   one, "patient-view", ()))


@pytest.mark.parametrize("ganciclovir_day, named", [(21, ("Foscarnet day 21 and ganciclovir day 21", "the courses can end")),
                                                    (10, ("Foscarnet day 21,", "the course can end"))],
                         ids=["both-courses", "one-under-2-weeks"])
def test_courses_given_together_end_on_one_card(ganciclovir_day, named):
    # Ganciclovir with foscarnet in CNS disease: the PCRs that end one course end the other, so one card says so.
    cns = conditions(populations=("sot",), organs=("kidney",), sites=("cns",), labels=("Kidney transplant", "CMV encephalitis"))
    ganciclovir = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(ganciclovir_day), route="iv")
    foscarnet = order("foscarnet", 6300, 12, id="MedicationRequest/fos", start=day(21), route="iv")
    found = patient_view(make_facts(conds=cns, viral=(not_detected(8), not_detected(1)), meds=(ganciclovir, foscarnet)))
    (card,) = [f for f in found if f.topic == "treatment-duration"]
    assert card.indicator == "info" and all(words in card.summary for words in named)
    assert "**Course:** foscarnet" in card.detail
    assert ("(MedicationRequest/gcv): day 21" in card.detail) is (ganciclovir_day == 21)
    # The status card names both drugs given.
    status = only(found, "cmv-status").summary
    assert status.endswith(("on foscarnet 21 days (since 2026-11-05), with ganciclovir",
                            "on ganciclovir 10 days (since 2026-11-16), with foscarnet")[ganciclovir_day == 10])


@pytest.mark.parametrize("unread, shown", [((), True), ((4,), False), ((10,), True)],
                         ids=["all-read", "one-between-unread", "older-unread"])
def test_undetectable_in_a_row_does_not_count_across_a_pcr_that_could_not_be_read(unread, shown):
    # A PCR of 4 days ago that could not be used (unreadable, or two of one time that disagree) may have been
    # detected: the two undetectable results either side are not two in a row.
    sot = conditions(populations=("sot",), organs=("kidney",), sites=("gi",), labels=("Kidney transplant", "CMV colitis"))
    course = order("valganciclovir", 900, 12, id="MedicationRequest/valgan", start=day(21))
    found = patient_view(make_facts(conds=sot, viral=(not_detected(8), not_detected(1)), unread_pcr=unread, meds=(course,)))
    assert ("treatment-duration" in topics(found)) is shown


@pytest.mark.parametrize("unread, started", [((), True), ((5,), False), ((12,), True), ((1,), True)],
                         ids=["all-read", "one-between-unread", "older-unread", "newer-unread"])
def test_consecutive_positives_do_not_count_across_a_pcr_that_could_not_be_read(unread, started):
    # Between them, an unread PCR may have been negative: repeat the PCR (not silence, not therapy).  Older or
    # newer, it does not come between them (a newer one is the status card's "not used").
    card = only(patient_view(make_facts(conds=hsct(40), viral=(vl(2300, 9), vl(1500, 2)), unread_pcr=unread)),
                "hsct-preemptive")
    if started:
        assert "start pre-emptive" in card.summary
    else:
        assert card.indicator == "warning" and card.summary == (
            "HSCT day 40: positive CMV results with an unreadable PCR between them: repeat CMV PCR now")
        assert "**Positive, but not in a row:** 2 positive CMV PCR results" in card.detail
        assert [p.test for p in card.proposals] == ["cmv-pcr"]


def test_positive_pp65_tests_do_not_count_across_one_that_could_not_be_read():
    two = POLICY.__class__(preemptive_pp65_positive=2, preemptive_consecutive_pcr=0)
    facts = make_facts(conds=hsct(40), pp65s=(pp65(True, 9), pp65(True, 2)))
    assert "start pre-emptive" in only(guidance(facts, two, "patient-view", ()), "hsct-preemptive").summary
    unread = replace(facts, pp65_unread=(days_ago(5),))
    assert "start pre-emptive" not in " ".join(f.summary for f in guidance(unread, two, "patient-view", ()))


def test_a_course_stopped_after_an_undetectable_result_counts_only_if_no_pcr_to_its_end_went_unread():
    stopped = order("valganciclovir", 900, 12, id="MedicationRequest/v", start=day(30), end=day(5), status="completed")
    viral = (vl(30000, 31), not_detected(6), vl(1200, 1))
    assert "treatment-duration" not in topics(patient_view(make_facts(viral=viral, meds=(stopped,))))
    found = patient_view(make_facts(viral=viral, unread_pcr=(5.5,), meds=(stopped,)))
    assert "stopped 2026-11-21 while CMV is detectable" in only(found, "treatment-duration").summary
    assert "treatment-duration" not in topics(patient_view(make_facts(viral=viral, unread_pcr=(3,), meds=(stopped,))))


def test_no_step_down_to_valganciclovir_when_counts_are_below_its_label():
    sot = conditions(populations=("sot",), organs=("kidney",), sites=("gi",), labels=("Kidney transplant", "CMV colitis"))
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv-iv", route="iv", start=day(10))
    found = patient_view(make_facts(conds=sot, viral=(vl(41000, 8), vl(2300, 1)), meds=(iv,), labs={"anc": 400}))
    assert only(found, "hematologic-toxicity").indicator == "critical"
    assert "cmv-treatment-regimen" not in topics(found)


def test_two_negatives_of_the_same_week_are_not_two_weekly_results():
    sot = conditions(populations=("sot",), organs=("kidney",), sites=("gi",), labels=("Kidney transplant", "CMV colitis"))
    course = order("valganciclovir", 900, 12, id="MedicationRequest/valgan", start=day(15))
    same_week = make_facts(conds=sot, viral=(vl(3000, 9), not_detected(1.5), not_detected(1)), meds=(course,))
    assert "treatment-duration" not in topics(patient_view(same_week))


@pytest.mark.parametrize("why", ["intolerance", "dialysis"])
def test_no_step_down_when_valganciclovir_is_ruled_out(why):
    sot = conditions(populations=("sot",), organs=("kidney",), sites=("gi",), labels=("Kidney transplant", "CMV colitis"),
                     intolerance=why == "intolerance")
    if why == "dialysis":
        sot = replace(sot, renal_replacement="dialysis")
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv-iv", route="iv", start=day(6))
    found = patient_view(make_facts(conds=sot, viral=(vl(41000, 8), vl(2300, 1)), meds=(iv,)))
    assert not [f for f in found if f.topic == "cmv-treatment-regimen"]


@pytest.mark.parametrize("middle, shown", [(not_detected(3), True), (vl(300, 3), False)])
def test_a_same_week_repeat_is_skipped_not_counted_and_not_ignored(middle, shown):
    sot = conditions(populations=("sot",), organs=("kidney",), sites=("gi",), labels=("Kidney transplant", "CMV colitis"))
    course = order("valganciclovir", 900, 12, id="MedicationRequest/valgan", start=day(21))
    facts = make_facts(conds=sot, viral=(not_detected(1), middle, not_detected(8)), meds=(course,))
    assert ("treatment-duration" in topics(patient_view(facts))) is shown
