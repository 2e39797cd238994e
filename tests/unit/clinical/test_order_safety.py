"""check_orders(): target rules, renal dose adjustment, phase detection, missing data, dedup."""

from __future__ import annotations

from dataclasses import replace

import pytest
from factories import (
    PROBENECID,
    days_ago,
    check,
    conditions,
    day,
    POLICY,
    doses,
    draft,
    labs_ordered,
    make_facts,
    measurement,
    only,
    order,
    stops,
    topics,
    vl,
)
from cds_service.clinical import check_orders, evaluate
from cds_service.clinical.renal_dosing import dose_proposal, renal_dose
from cds_service.facts.model import ConditionEvidence, ConditionFacts, DataQualityIssue



def valganciclovir_tablets(count=2, interval=12, **kw):
    return draft("valganciclovir", interval_hours=interval, unit_count=count, unit_strength_mg=450, **kw)


# ---------------------------------------------------------------------------------------------
# Targets


def test_patient_view_passes_no_targets_and_gets_nothing():
    facts = make_facts(crcl=35, drafts=[valganciclovir_tablets()])
    assert check(facts, targets=()) == []


def test_order_select_checks_only_the_selected_draft():
    bad_vgc = valganciclovir_tablets(id="MedicationRequest/vgc")
    bad_gcv = draft("ganciclovir", 350, 12, id="MedicationRequest/gcv")
    facts = make_facts(crcl=35, drafts=[bad_vgc, bad_gcv], selected=["MedicationRequest/gcv"])
    selected = [d for d in facts.drafts if d.id in facts.selected]
    findings = check(facts, selected)
    assert [(f.topic, f.order_id) for f in findings if f.topic == "renal-dose-adjustment"] == [
        ("renal-dose-adjustment", "MedicationRequest/gcv")
    ]


def test_order_sign_checks_every_draft():
    bad_vgc = valganciclovir_tablets(id="MedicationRequest/vgc")
    bad_gcv = draft("ganciclovir", 350, 12, id="MedicationRequest/gcv")
    findings = check(make_facts(crcl=35, drafts=[bad_vgc, bad_gcv]))
    renal = sorted(f.order_id for f in findings if f.topic == "renal-dose-adjustment")
    assert renal == ["MedicationRequest/gcv", "MedicationRequest/vgc"]


def test_sandbox_page_load_draft_without_a_drug_gets_nothing():
    empty = draft(None, route=None, id="MedicationRequest/request-123", problems=("no medication",))
    assert check(make_facts(crcl=None, weight_kg=None, drafts=[empty])) == []


def test_non_cmv_order_in_a_quiet_patient_gets_nothing():
    facts = make_facts(crcl=None, drafts=[draft("amlodipine", 5, 24)], meds=[order("tacrolimus", 2, 12)])
    assert check(facts) == []


def test_correct_order_in_a_well_patient_gets_nothing():
    facts = make_facts(drafts=[valganciclovir_tablets(2, 12)])  # CrCl 77.8, 900 mg twice daily
    assert check(facts) == []


def test_same_target_twice_is_reported_once():
    d = valganciclovir_tablets()
    facts = make_facts(crcl=35, drafts=[d])
    findings = check(facts, [d, d])
    assert topics(findings) == ["renal-dose-adjustment"]


# ---------------------------------------------------------------------------------------------
# Renal dose adjustment


def test_valganciclovir_tablets_too_high_for_crcl_35():
    d = valganciclovir_tablets(id="MedicationRequest/request-123")
    f = only(check(make_facts(crcl=35, drafts=[d])), "renal-dose-adjustment")
    assert f.indicator == "warning" and f.order_id == d.id
    assert f.summary.startswith("Valganciclovir 900 mg (2 tablets) q12h too high for CrCl 35 mL/min: 450 mg (1 tablet) q24h")
    (p,) = doses(f)
    assert (p.drug, p.dose_mg, p.interval_hours, p.route, p.replaces) == ("valganciclovir", 450, 24, "oral", d.id)
    assert (p.unit_count, p.unit_strength_mg, p.recommended) == (1, 450, True)
    assert "food" in p.note
    assert "assumed induction" in f.detail and "CrCl 25-39 mL/min" in f.detail
    assert [c.key for c in f.sources] == ["valganciclovir-label"]


def test_a_tiny_dose_is_shown_as_it_is_never_as_0_mg():
    # 0.004 mg rounds to 0 at two decimals; a card must not say "0 mg" of a dose that is not 0.
    d = draft("valganciclovir", 0.004, 12)
    f = only(check(make_facts(crcl=35, drafts=[d])), "renal-dose-adjustment")
    assert f.summary.startswith("Valganciclovir 0.004 mg q12h too low") and " 0 mg" not in f.summary
    assert "(0.0018% of the band's daily dose)" in f.summary  # 0.008 mg of 450 mg a day


def test_mg_order_gets_mg_proposal_without_tablet_count():
    d = draft("valganciclovir", 900, 12)
    (p,) = doses(only(check(make_facts(crcl=35, drafts=[d])), "renal-dose-adjustment"))
    assert (p.dose_mg, p.unit_count, p.unit_strength_mg) == (450, None, None)


def test_too_low_is_flagged_too():
    d = draft("valganciclovir", 450, 24)  # at CrCl 77.8 maintenance is 900 mg once daily
    f = only(check(make_facts(drafts=[d])), "renal-dose-adjustment")
    assert "too low" in f.summary and "50% of the band's daily dose" in f.summary
    assert "resistance" in f.detail
    assert doses(f)[0].dose_mg == 900 and doses(f)[0].interval_hours == 24


def test_ganciclovir_unadjusted_induction_and_the_detail_shows_every_input():
    d = draft("ganciclovir", 350, 12)
    scr = measurement("creatinine", 2.0, 1, reported="176.8 umol/L")
    facts = make_facts(labs=[scr], drafts=[d])  # CG (80 x 70) / (72 x 2.0) = 38.9 mL/min
    f = only(check(facts), "renal-dose-adjustment")
    assert f.summary == (
        "Ganciclovir 350 mg q12h too high for CrCl 38.9 mL/min: 175 mg (2.5 mg/kg) q24h (4x the band's daily dose)"
    )
    for text in (
        "2 mg/dL (2026-11-25), reported as 176.8 umol/L",  # creatinine, date, original unit
        "(140 - 60) x 70 kg / (72 x 2.00 mg/dL) = 38.9 mL/min",  # CrCl and how
        "Dosing weight 70 kg (actual body weight)",  # weight, basis
        "70 kg (2026-11-24)",  # weight date
        "CrCl 25-49 mL/min",  # the band row
        "induction 2.5 mg/kg every 24 h; maintenance 1.25 mg/kg every 24 h",
        "assumed induction from its interval (every 12 h)",  # the phase assumed
        "2.5 mg/kg x 70 kg (actual body weight) = 175 mg",  # the calculation
        "Ganciclovir injection (Cytovene-IV) US prescribing information",  # the label
    ):
        assert text in f.detail, text
    (p,) = doses(f)
    assert (p.drug, p.dose_mg, p.interval_hours, p.schedule, p.route) == ("ganciclovir", 175, 24, "every 24 h", "iv")
    assert p == replace(p, dose_mg=renal_dose("ganciclovir", "induction", facts, POLICY).dose_mg)


def test_mg_per_kg_order_compared_per_kg():
    d = draft("ganciclovir", 350, 12, mg_per_kg=5)
    f = only(check(make_facts(crcl=35, drafts=[d])), "renal-dose-adjustment")
    assert f.summary.startswith("Ganciclovir 5 mg/kg (350 mg) q12h too high")


@pytest.mark.parametrize(
    "drug,dose_mg,interval,crcl,per_kg,mg_per_kg",
    [
        # already renally adjusted orders whose interval alone would mislead
        ("ganciclovir", 175, 24, 35, None, None),  # induction at 25-49 (looks like maintenance)
        ("ganciclovir", 90, 24, 35, None, None),  # maintenance at 25-49 (1.25 mg/kg = 87.5 -> 90)
        ("ganciclovir", 85, 24, 35, None, None),  # within one 5 mg step of the band dose
        ("ganciclovir", 175, 12, 60, None, None),  # induction at 50-69
        ("ganciclovir", 45, 24, 15, None, None),  # maintenance at 10-24
        ("ganciclovir", 90, 56, 8, None, None),  # 3 times weekly after dialysis
        ("ganciclovir", 360, 12, 80, None, None),  # within 10% of 350
        ("ganciclovir", 420, 168 / 5, 80, None, None),  # label maintenance alternative 6 mg/kg daily, 5 days a week
        ("ganciclovir", None, 168 / 5, 80, None, 6),  # the same, ordered per kg
        ("valganciclovir", 450, 24, 30, None, None),  # induction at 25-39
        ("valganciclovir", 450, 48, 30, None, None),  # maintenance at 25-39
        ("valganciclovir", 450, 84, 15, None, None),  # twice weekly at 10-24
        ("valganciclovir", 450, 24, 45, None, None),  # maintenance at 40-59
        ("foscarnet", 5600, 24, 49, 0.7, None),  # 90q12h regimen adjusted to 80 mg/kg q24h
        ("foscarnet", 2800, 12, 49, 0.7, None),  # 60q8h regimen adjusted to 40 mg/kg q12h
        ("foscarnet", 5600, 48, 49, 0.7, None),  # 90/day maintenance adjusted to 80 mg/kg q48h
        ("foscarnet", None, 48, 49, 0.7, 105),  # 120/day maintenance adjusted, ordered per kg
        ("foscarnet", 6300, 12, 100, 1.6, None),  # 90 mg/kg q12h
        ("foscarnet", 4200, 8, 100, 1.6, None),  # 60 mg/kg q8h
    ],
)
def test_orders_matching_a_band_are_not_flagged(drug, dose_mg, interval, crcl, per_kg, mg_per_kg):
    d = draft(drug, dose_mg, interval, mg_per_kg=mg_per_kg)
    facts = make_facts(crcl=crcl, crcl_per_kg=per_kg, drafts=[d])
    assert "renal-dose-adjustment" not in topics(check(facts))


def test_6_mg_per_kg_is_only_accepted_at_normal_clearance():
    d = draft("ganciclovir", 420, 168 / 5)
    f = only(check(make_facts(crcl=60, drafts=[d])), "renal-dose-adjustment")
    assert "too high" in f.summary and doses(f)[0].dose_mg == 175


def test_6_mg_per_kg_every_day_is_not_the_5_days_a_week_alternative():
    # 7 doses a week of 6 mg/kg is 42 mg/kg a week against the label's 30 (6 x 5) or 35 (5 x 7).
    d = draft("ganciclovir", 420, 24)
    f = only(check(make_facts(crcl=80, drafts=[d])), "renal-dose-adjustment")
    assert "too high" in f.summary
    (p,) = doses(f)
    assert (p.dose_mg, p.interval_hours) == (350, 24)


def test_dose_beyond_tolerance_is_flagged():
    d = draft("ganciclovir", 400, 12)  # 14% above 350
    f = only(check(make_facts(crcl=80, drafts=[d])), "renal-dose-adjustment")
    assert "too high" in f.summary and "1.1x" in f.summary


def test_foscarnet_q8h_unadjusted():
    d = draft("foscarnet", 4200, 8)
    f = only(check(make_facts(crcl=49, crcl_per_kg=0.7, drafts=[d])), "renal-dose-adjustment")
    assert "60 mg/kg q8h regimen" in f.detail
    (p,) = doses(f)
    assert (p.dose_mg, p.interval_hours) == (2800, 12)
    # The order an EHR applies carries the hydration too (its dose text: "...; hydration 750-1000 mL ...").
    assert p.note == "hydration 750-1000 mL before the first dose and with each dose"
    assert f.summary.startswith("Foscarnet 4200 mg q8h too high for CrCl 0.7 mL/min/kg: 2800 mg (40 mg/kg) q12h")
    assert "Hydration: 750-1000 mL before the first dose and with each dose (label)." in f.detail  # with the dose it proposes


def test_foscarnet_daily_regimen_chosen_by_closeness_to_ordered_mg_per_kg():
    d = draft("foscarnet", 8400, 24)  # 120 mg/kg daily at 0.9 mL/min/kg
    f = only(check(make_facts(crcl=63, crcl_per_kg=0.9, drafts=[d])), "renal-dose-adjustment")
    assert "120 mg/kg/day regimen" in f.detail
    assert (doses(f)[0].dose_mg, doses(f)[0].interval_hours) == (4550, 24)


@pytest.mark.parametrize("started, per_kg, expected", [
    # Kidneys recovered on day 5: the induction dose of today's band (90 mg/kg q12h), or, if the order is
    # maintenance (after an induction with another drug, or one before the orders read), 90 mg/kg q24h.
    (5, 1.98, [(6300, 12), (6300, 24)]),
    (5, 1.2, [(4900, 12), (4900, 24)]),  # 70 mg/kg
    (20, 1.98, [(6300, 24)]),  # past the label's 2-3 weeks of induction: read by its interval, as maintenance
], ids=["day-5", "day-5-band-2", "day-20"])
def test_a_young_foscarnet_course_at_a_reduced_daily_dose_gets_both_readings(started, per_kg, expected):
    # 4200 mg = 60 mg/kg every 24 h: the induction dose of CrCl 0.5-0.6, matching no band of today's clearance.
    reduced = order("foscarnet", 4200, 24, id="MedicationRequest/fos", start=day(started), route="iv")
    renewal = draft("foscarnet", 4200, 24, route="iv")
    facts = make_facts(crcl=100, crcl_per_kg=per_kg, meds=[reduced], drafts=[renewal])
    card = next(f for f in check(facts) if f.topic == "renal-dose-adjustment" and f.order_id == renewal.id)
    assert [(p.dose_mg, p.interval_hours) for p in doses(card)] == expected
    assert not any(p.recommended for p in doses(card)) if len(expected) == 2 else doses(card)[0].recommended
    assert (f"foscarnet began on record {day(started).isoformat()}" in card.detail) == (started < 14)
    if len(expected) == 2:
        assert card.summary.startswith("Foscarnet 4200 mg q24h matches no band for CrCl") and len(card.summary) < 140
        assert "**If induction (" in card.detail and "**If maintenance (" in card.detail
    # Patient-view re-doses the order on record the same way.
    facts = make_facts(crcl=100, crcl_per_kg=per_kg, meds=[reduced], conds=conditions(sites=["gi"]))
    card = only(evaluate(facts, POLICY, "patient-view", ()), "renal-dose-adjustment")
    assert [(p.dose_mg, p.interval_hours) for p in doses(card)] == expected


def test_a_foscarnet_draft_with_both_readings_beside_its_induction_on_record_is_a_dose_change():
    # One of the renal card's alternatives (induction 6300 mg q12h) is the order on record, the other (maintenance)
    # is not: a dose change whose stop of the current order fits either choice, not a copy to remove.
    induction = order("foscarnet", 6300, 12, id="MedicationRequest/fos", start=day(5), route="iv")
    renewal = draft("foscarnet", 4200, 24, route="iv")
    found = check(make_facts(crcl=100, crcl_per_kg=1.5, meds=[induction], drafts=[renewal]))
    assert [(p.dose_mg, p.interval_hours) for p in doses(only(found, "renal-dose-adjustment"))] == [(6300, 12), (6300, 24)]
    card = only(found, "duplicate-therapy")
    assert card.summary.startswith("Foscarnet dose change") and [s.order_id for s in stops(card)] == [induction.id]


def test_a_reduced_daily_foscarnet_dose_of_an_older_or_undated_foscarnet_course_is_read_by_its_interval():
    # Foscarnet began 24 days ago (its induction, a few days held before the reduced dose), or a foscarnet order on
    # record has no start: maintenance by its interval, one dose.  After another drug's course foscarnet's own
    # days are young: both readings (a switch for resistance starts with induction; maintenance may follow
    # another drug's induction).
    renewal = draft("foscarnet", 3500, 24, route="iv")  # 50 mg/kg q24h: induction at 0.4-0.5, maintenance at 0.8-1.0
    for before, expected in (
        (order("foscarnet", 6300, 12, id="MedicationRequest/fos-1", start=day(24), end=day(7), route="iv",
               status="completed"), [(6300, 24)]),
        (order("foscarnet", 4200, 24, id="MedicationRequest/fos-1", start=None, route="iv"), [(6300, 24)]),
        (order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(26), end=day(6), route="iv",
               status="completed"), [(6300, 12), (6300, 24)]),
    ):
        facts = make_facts(crcl=100, crcl_per_kg=1.98, meds=[before], drafts=[renewal])
        card = next(f for f in check(facts) if f.topic == "renal-dose-adjustment" and f.order_id == renewal.id)
        assert [(p.dose_mg, p.interval_hours) for p in doses(card)] == expected


def test_ganciclovir_below_10_proposes_the_dialysis_schedule():
    d = draft("ganciclovir", 175, 24)
    f = only(check(make_facts(crcl=8, drafts=[d])), "renal-dose-adjustment")
    (p,) = doses(f)
    assert (p.dose_mg, p.interval_hours, p.schedule) == (45, None, "3 times weekly after dialysis")


def test_valganciclovir_below_10_suggests_iv_ganciclovir():
    d = valganciclovir_tablets()
    facts = make_facts(crcl=8, drafts=[d])
    f = only(check(facts), "renal-dose-adjustment")
    assert f.summary.startswith("Valganciclovir tablets not recommended at CrCl 8 mL/min: use IV ganciclovir")
    (p,) = doses(f)
    iv = renal_dose("ganciclovir", "induction", facts, POLICY)
    assert (p.drug, p.dose_mg, p.interval_hours, p.schedule, p.route, p.replaces) == (
        "ganciclovir", iv.dose_mg, None, "3 times weekly after dialysis", "iv", d.id,
    )
    assert p.unit_count is None
    assert "oral solution 200 mg 3 times weekly" in f.detail and "Kotton 2025" in f.detail


def test_valganciclovir_below_10_stops_the_valganciclovir_on_record_with_the_change():
    d = valganciclovir_tablets()
    on_record = order("valganciclovir", 450, 24, id="MedicationRequest/vgc-on-record", start=day(20))
    f = only(check(make_facts(crcl=8, drafts=[d], meds=[on_record])), "renal-dose-adjustment")
    (p,) = doses(f)
    assert (p.drug, p.replaces, [s.order_id for s in p.also]) == ("ganciclovir", d.id, [on_record.id])
    assert "not recommended either, so the suggestion here discontinues it too." in f.detail


def test_valganciclovir_below_10_with_iv_ganciclovir_already_ordered_removes_the_draft():
    # No second ganciclovir order: the draft goes (with the valganciclovir on record, not recommended either).
    d = valganciclovir_tablets()
    ganciclovir = order("ganciclovir", 90, None, id="MedicationRequest/gcv", start=day(20))
    on_record = order("valganciclovir", 450, 24, id="MedicationRequest/vgc-on-record", start=day(20))
    f = only(check(make_facts(crcl=8, drafts=[d], meds=[ganciclovir, on_record])), "renal-dose-adjustment")
    assert f.summary == ("Valganciclovir tablets not recommended at CrCl 8 mL/min: IV ganciclovir already ordered; "
                         "remove this draft")
    assert doses(f) == [] and [(p.order_id, [s.order_id for s in p.also]) for p in stops(f)] == [(d.id, [on_record.id])]
    assert "**IV ganciclovir already ordered:** ganciclovir 90 mg" in f.detail


def test_valganciclovir_below_10_without_weight_says_why_and_proposes_nothing():
    d = valganciclovir_tablets()
    facts = make_facts(crcl=8, drafts=[d], dosing_weight=None)
    findings = check(facts)
    f = only(findings, "renal-dose-adjustment")
    assert f.proposals == () and "cannot be computed" in f.detail


def test_oral_ganciclovir_is_not_banded_and_is_not_valganciclovir():
    d = draft("ganciclovir", 1000, 8, route="oral")
    findings = check(make_facts(crcl=35, drafts=[d]))
    assert "renal-dose-adjustment" not in topics(findings)
    f = only(findings, "administration-route")
    assert f.indicator == "warning" and "not interchangeable 1:1 with valganciclovir" in f.summary and not f.proposals
    assert {c.key for c in f.sources} == {"ganciclovir-label", "valganciclovir-label"}


@pytest.mark.parametrize("route", ["intramuscular", "subcutaneous"])
def test_ganciclovir_ordered_im_or_sc_is_critical_with_the_iv_band_dose(route):
    gcv = replace(draft("ganciclovir", 350, 12), route=None, route_text=route)
    facts = make_facts(crcl=60, drafts=[gcv])
    findings = check(facts)
    f = only(findings, "administration-route")
    assert f.indicator == "critical" and f.order_id == gcv.id
    assert f.summary == f"Ganciclovir ordered {route}: do not give, IV infusion only (label)"
    assert "never by rapid IV bolus, intramuscular or subcutaneous injection" in f.detail
    (iv,) = doses(f)
    band = renal_dose("ganciclovir", "induction", facts, POLICY)
    assert (iv.dose_mg, iv.interval_hours, iv.route, iv.replaces) == (band.dose_mg, 12, "iv", gcv.id) and iv.recommended
    assert [s.order_id for s in stops(f)] == [gcv.id]  # or remove it
    assert "renal-dose-adjustment" not in topics(findings)  # this card carries the band dose


def test_ganciclovir_im_without_a_clearance_only_offers_removal():
    gcv = replace(draft("ganciclovir", 350, 12), route=None, route_text="intramuscular")
    f = only(check(make_facts(creatinine=None, crcl=None, drafts=[gcv])), "administration-route")
    assert not doses(f) and "IV dose for the kidneys cannot be computed" in f.detail


def test_iv_ganciclovir_and_im_foscarnet_get_no_route_card():
    assert "administration-route" not in topics(check(make_facts(crcl=60, drafts=[draft("ganciclovir", 350, 12)])))
    fos = replace(draft("foscarnet", 6300, 12), route=None, route_text="intramuscular")
    assert "administration-route" not in topics(check(make_facts(crcl=60, drafts=[fos])))  # the reference says IV only for ganciclovir


@pytest.mark.parametrize("words", ["IV push", "Intravenous bolus", "slow IV push"])
def test_ganciclovir_ordered_as_iv_push_or_bolus_is_critical_with_the_infusion_dose(words):
    gcv = replace(draft("ganciclovir", 350, 12), bolus_text=words)
    facts = make_facts(crcl=60, drafts=[gcv])
    findings = check(facts)
    f = only(findings, "administration-route")
    assert f.indicator == "critical"
    assert f.summary == "Ganciclovir ordered as an IV push or bolus: do not give, IV infusion only (label)"
    assert f"as an IV push or bolus ({words!r})" in f.detail
    (iv,) = doses(f)
    band = renal_dose("ganciclovir", "induction", facts, POLICY)
    assert (iv.dose_mg, iv.interval_hours, iv.route, iv.replaces) == (band.dose_mg, 12, "iv", gcv.id)
    assert "renal-dose-adjustment" not in topics(findings)


def test_a_push_or_bolus_word_through_a_tube_or_by_mouth_is_not_an_iv_bolus():
    for route, route_text in (("oral", None), (None, "enteral tube")):
        gcv = replace(draft("ganciclovir", 350, 12), route=route, route_text=route_text, bolus_text="Bolus")
        assert "as an IV push or bolus" not in " ".join(f.summary for f in check(make_facts(crcl=60, drafts=[gcv])))


def test_a_push_or_bolus_of_another_drug_gets_no_route_card():
    for d in (draft("foscarnet", 6300, 12), draft("cidofovir", 350, 168)):
        assert "administration-route" not in topics(check(make_facts(crcl=100, drafts=[replace(d, bolus_text="IV push")])))


@pytest.mark.parametrize(
    "dose_mg, mg_per_kg, interval, minutes, words",
    [
        (6300, None, 12, 60, "over 1.5-2 h"),  # 90 mg/kg (70 kg) q12h over 1 h
        (None, 90, 12, 89, "over 1.5-2 h"),
        (4200, None, 8, 30, "over at least 1 h"),  # 60 mg/kg q8h over 30 min
    ],
)
def test_foscarnet_induction_infused_faster_than_the_label_is_a_warning(dose_mg, mg_per_kg, interval, minutes, words):
    fos = replace(draft("foscarnet", dose_mg, interval, mg_per_kg=mg_per_kg), infusion_minutes=minutes)
    f = only(check(make_facts(crcl=100, drafts=[fos])), "infusion-time")
    assert f.indicator == "warning" and f.order_id == fos.id and not f.proposals
    per_kg = 90 if interval == 12 else 60
    assert f.summary == f"Foscarnet {per_kg} mg/kg ordered over {minutes} min: the label gives {per_kg} mg/kg q{interval}h {words}"
    assert f"Infusion time {minutes} min" in f.detail
    assert ("Dose per kg: " in f.detail) == (dose_mg is not None)  # computed from the dosing weight: shown


@pytest.mark.parametrize(
    "dose_mg, interval, minutes",
    [
        (6300, 12, 90),  # 90 mg/kg over 1.5 h: as the label says
        (4200, 8, 60),  # 60 mg/kg over 1 h
        (6300, 12, None),  # no infusion time stated: nothing to check
        (4900, 12, 30),  # 70 mg/kg q12h (a renal band): the reference gives no infusion time for it
        (6300, 24, 30),  # 90 mg/kg daily maintenance: none either
    ],
)
def test_foscarnet_infusion_time_is_quiet_when_as_labelled_or_not_stated_by_the_reference(dose_mg, interval, minutes):
    fos = replace(draft("foscarnet", dose_mg, interval), infusion_minutes=minutes)
    assert "infusion-time" not in topics(check(make_facts(crcl=100, drafts=[fos])))


@pytest.mark.parametrize("minutes", [45, None])
def test_a_foscarnet_induction_proposal_runs_for_the_label_s_time_unless_the_order_s_own_is_kept(minutes):
    # 120 mg/kg q12h (70 kg) at full clearance: too high; the proposal is the label's 90 mg/kg q12h, over 1.5-2 h.
    fos = replace(draft("foscarnet", 8400, 12), infusion_minutes=minutes)
    (p,) = doses(only(check(make_facts(crcl=100, drafts=[fos])), "renal-dose-adjustment"))
    assert (p.dose_mg, p.interval_hours, p.infusion_minutes) == (6300, 12, 90)  # not 45 min, which is too fast


@pytest.mark.parametrize(
    "drug, phase, crcl, regimen, minutes",
    [
        ("foscarnet", "induction", 100, "90q12h", 90),  # label: over 1.5-2 h
        ("foscarnet", "induction", 100, "60q8h", 60),  # over at least 1 h
        ("foscarnet", "induction", 60, "90q12h", None),  # a renal band (70 mg/kg q12h): the reference gives no time
        ("foscarnet", "maintenance", 100, None, None),  # 90 mg/kg daily: none either
        ("ganciclovir", "induction", 100, None, None),
    ],
)
def test_label_infusion_time_of_a_band_dose(drug, phase, crcl, regimen, minutes):
    rd = renal_dose(drug, phase, make_facts(crcl=crcl), POLICY, regimen)
    assert dose_proposal(rd, "Order").infusion_minutes == minutes


def test_foscarnet_infusion_time_in_mg_without_a_weight_is_not_judged():
    fos = replace(draft("foscarnet", 6300, 12), infusion_minutes=30)
    assert "infusion-time" not in topics(check(make_facts(weight_kg=None, crcl=None, drafts=[fos])))


def test_an_order_per_kg_without_a_weight_is_compared_per_kg():
    # Only the mg dose needs the weight: 90 mg/kg every 12 h against the band's 60 mg/kg every 24 h is 3x its dose.
    fos = draft("foscarnet", None, 12, mg_per_kg=90)
    card = only(check(make_facts(weight_kg=None, crcl=40, crcl_per_kg=0.55, drafts=[fos])), "missing-data")
    assert "**Order:** foscarnet 90 mg/kg every 12 h (IV)" in card.detail
    assert ("the order gives 90 mg/kg every 12 h: 3x the band's dose per kg a day (180 against 60 mg/kg a day)"
            in card.detail)
    at_band = draft("foscarnet", None, 24, mg_per_kg=60)
    card = only(check(make_facts(weight_kg=None, crcl=40, crcl_per_kg=0.55, drafts=[at_band])), "missing-data")
    assert "the order gives 60 mg/kg every 24 h, the induction (90 mg/kg q12h regimen) band's dose per kg" in card.detail
    # The dose of a band of another phase than its interval reads as is that band's (as matching reads it with a
    # weight): 80 mg/kg every 24 h is the induction dose at 0.6-0.8, not twice the maintenance dose.
    reduced = draft("foscarnet", None, 24, mg_per_kg=80)
    card = only(check(make_facts(weight_kg=None, crcl=50, crcl_per_kg=0.7, drafts=[reduced])), "missing-data")
    assert "the order gives 80 mg/kg every 24 h, the induction (90 mg/kg q12h regimen) band's dose per kg" in card.detail


def test_valganciclovir_tablets_through_a_feeding_tube_are_a_warning():
    tablets = replace(valganciclovir_tablets(2, 12), route=None, route_text="enteral tube")
    f = only(check(make_facts(drafts=[tablets])), "administration-route")
    assert f.indicator == "warning" and f.order_id == tablets.id and not f.proposals
    assert "do not break or crush" in f.summary and "oral solution" in f.detail


def test_valganciclovir_tablets_by_mouth_or_tube_are_a_warning_too():
    tablets = replace(valganciclovir_tablets(2, 12), route="oral", route_text="enteral tube")
    assert only(check(make_facts(drafts=[tablets])), "administration-route").indicator == "warning"


def test_ganciclovir_through_a_feeding_tube_is_oral_ganciclovir():
    gcv = replace(draft("ganciclovir", 1000, 8), route=None, route_text="enteral tube")
    findings = check(make_facts(crcl=35, drafts=[gcv]))
    assert "renal-dose-adjustment" not in topics(findings)  # the IV bands do not apply
    assert "by mouth or tube" in only(findings, "administration-route").summary


def test_valganciclovir_solution_through_a_tube_or_tablets_by_mouth_get_no_route_card():
    solution = replace(draft("valganciclovir", 900, 12, dose_form="solution"), route=None, route_text="enteral tube")
    for d in (solution, valganciclovir_tablets(2, 12)):
        assert "administration-route" not in topics(check(make_facts(drafts=[d])))


def test_a_dose_proposal_keeps_the_order_s_infusion_time_unless_it_was_a_push():
    gcv = replace(draft("ganciclovir", 700, 12), infusion_minutes=60)  # too high at CrCl 60
    (p,) = doses(only(check(make_facts(crcl=60, drafts=[gcv])), "renal-dose-adjustment"))
    assert p.infusion_minutes == 60
    pushed = replace(gcv, bolus_text="IV push", infusion_minutes=2)
    (p,) = doses(only(check(make_facts(crcl=60, drafts=[pushed])), "administration-route"))
    assert p.route == "iv" and p.infusion_minutes is None


def test_eye_gel_is_not_systemic():
    gel = draft("ganciclovir", None, 4, route=None, drug_text="ganciclovir 0.15% ophthalmic gel")
    assert check(make_facts(crcl=35, drafts=[gel])) == []


# ---------------------------------------------------------------------------------------------
# Missing data


def test_missing_creatinine_gives_one_missing_data_finding_and_no_dose():
    d = draft("ganciclovir", 350, 12)
    findings = check(make_facts(creatinine=None, drafts=[d]))
    assert topics(findings) == ["missing-data"]
    f = findings[0]
    assert f.indicator == "warning" and f.order_id == d.id
    assert "no creatinine result on record" in f.detail
    assert labs_ordered(f) == ["creatinine"]
    assert not doses(f)


def test_missing_data_lists_everything_once():
    d = draft("ganciclovir", 350, 12)
    facts = make_facts(
        crcl=None,
        dosing_weight=None,
        labs={"anc": None, "platelets": None, "hemoglobin": None},
        quality=[
            DataQualityIssue("stale", "creatinine", "creatinine 2026-10-01 is 56 days old (limit 7)"),
            DataQualityIssue("unit-unknown", "weight", "weight 154 with unit 'lb?' cannot be read"),
        ],
        drafts=[d],
    )
    findings = check(facts)
    f = only(findings, "missing-data")
    assert len(findings) == 1
    assert f.detail.count("creatinine 2026-10-01 is 56 days old") == 1
    assert "weight 154 with unit 'lb?'" in f.detail and "no usable ANC result on record" in f.detail
    assert labs_ordered(f) == ["creatinine", "cbc"]
    assert "creatinine, weight, blood count" in f.summary


def test_unreadable_order_dose():
    d = draft("valganciclovir", None, 12, problems=("dose unit 'puff' is not a mass",))
    f = only(check(make_facts(drafts=[d])), "missing-data")
    assert "dose unit 'puff' is not a mass" in f.detail and "a readable dose and interval" in f.detail


def test_orders_on_record_not_retrieved_leave_interactions_unchecked_and_say_so():
    # Mycophenolate on record would give the marrow-toxicity card; with the orders on record not had, nothing
    # can be said of them, and the card says so; the renal dose (which does not depend on them) still stands.
    d = draft("ganciclovir", 350, 12, route="iv")
    had = check(make_facts(crcl=35, drafts=[d], meds=[order("mycophenolate mofetil", 1000, 12)]))
    assert "drug-interaction" in topics(had) and "missing-data" not in topics(had)
    lost = (DataQualityIssue("missing", "medications", "medication orders on record could not be retrieved (HTTP 404)"),)
    found = check(make_facts(crcl=35, drafts=[d], quality=lost))
    card = only(found, "missing-data")
    assert card.indicator == "warning" and card.summary == "Ganciclovir order not fully checked: orders on record not retrieved"
    assert ("- interactions and duplicate therapy: medication orders on record could not be retrieved: co-medications "
            "and other courses unknown") in card.detail
    assert "**Not retrieved from the EHR:** medication orders on record could not be retrieved (HTTP 404)." in card.detail
    assert "No dose is suggested" not in card.detail and card.proposals == ()
    assert card.override_reasons == ("already-addressed", "interaction-managed")  # no lab result to wait for
    assert [p.dose_mg for p in doses(only(found, "renal-dose-adjustment"))] == [175]
    # Too long for a summary with the missing inputs, the orders not retrieved go to the detail only.
    vgc = draft("valganciclovir", 900, 12)
    card = only(check(make_facts(creatinine=None, weight_kg=None, drafts=[vgc], quality=lost,
                                 labs={"anc": None, "platelets": None, "hemoglobin": None})), "missing-data")
    assert card.summary == ("Valganciclovir order not fully checked: serum creatinine, weight, blood count missing, "
                            "outdated or unreadable")
    assert "- interactions and duplicate therapy: medication orders on record could not be retrieved" in card.detail
    # Beside an input that is missing, the dose is held back, and only for that input.
    card = only(check(make_facts(creatinine=None, drafts=[d], quality=lost)), "missing-data")
    assert card.summary.startswith("Ganciclovir order not fully checked: serum creatinine missing, outdated or unreadable")
    assert "No dose is suggested from missing, outdated or implausible values." in card.detail


def test_a_missing_data_summary_too_long_keeps_the_missing_inputs_first():
    from cds_service.clinical.missing_data import Gap, missing_data_finding

    # Every missing input and the dialysis note do not fit in 140 characters: the inputs stay, the note goes to
    # the detail (never the bare "inputs missing" while the inputs fit).
    gaps = [Gap("renal dose", ("no current creatinine", "no current weight"), ("creatinine", "weight")),
            Gap("blood count limits", ("no current blood count",), ("cbc",)),
            Gap("cidofovir pre-dose checks", ("no urine protein",), ("urine-protein",)),
            Gap("renal dose", ("dialysis on record beside a higher clearance",), ("dialysis",))]
    card = missing_data_finding(draft("valganciclovir", 900, 12), "valganciclovir", gaps)
    assert card.summary == ("Valganciclovir order not fully checked: serum creatinine, weight, blood count, urine "
                            "protein missing, outdated or unreadable")
    assert "dialysis on record beside a higher clearance" in card.detail


def test_child_gets_missing_data_not_adult_dose():
    issue = DataQualityIssue("out-of-scope", "age", "patient is 9 years old")
    d = draft("valganciclovir", 900, 12)
    findings = check(make_facts(age=9, quality=[issue], drafts=[d]))
    f = only(findings, "missing-data")
    assert "adult dose bands do not apply" in f.detail
    assert "renal-dose-adjustment" not in topics(findings)
    # Nothing is missing: the card says what it is (a child), not "inputs missing".
    assert f.summary == "Valganciclovir order not fully checked: adult dose bands do not apply"
    assert "No dose is suggested from the adult bands for a child." in f.detail and "missing" not in f.detail


def test_stale_blood_count_is_missing_data_with_cbc_order():
    d = draft("valganciclovir", 900, 12)
    facts = make_facts(lab_ages={"anc": 10, "platelets": 10, "hemoglobin": 10}, drafts=[d])
    f = only(check(facts), "missing-data")
    assert "10 days old (limit 7 days)" in f.detail and labs_ordered(f) == ["cbc"]


def test_non_cmv_orders_never_get_missing_data():
    facts = make_facts(crcl=None, weight_kg=None, creatinine=None, drafts=[draft("vancomycin", 1000, 12)])
    assert check(facts) == []


# ---------------------------------------------------------------------------------------------
# Order of findings


def test_critical_first():
    d = draft("ganciclovir", 350, 12)
    facts = make_facts(crcl=35, labs={"anc": 300}, drafts=[d])
    findings = check(facts)
    assert [f.indicator for f in findings] == sorted(
        (f.indicator for f in findings), key=["critical", "warning", "info"].index
    )
    assert findings[0].topic == "hematologic-toxicity"


def test_identical_drafts_are_checked_once_and_reported_as_duplicates():
    drafts = [valganciclovir_tablets(id=f"MedicationRequest/d{i}") for i in range(40)]
    findings = check(make_facts(crcl=35, drafts=drafts))
    assert sorted(topics(findings)) == ["duplicate-therapy", "renal-dose-adjustment"]
    duplicate = only(findings, "duplicate-therapy")
    assert duplicate.summary == "Second valganciclovir order: 39 other valganciclovir orders already ordered"
    assert "and 34 more" in duplicate.detail and len(duplicate.proposals) == 6  # this one + 5 listed


def test_dose_tolerance_is_policy():
    d = draft("ganciclovir", 375, 12)  # 7% above 350: within the default 10%
    assert check(make_facts(crcl=80, drafts=[d])) == []
    strict = replace(POLICY, dose_tolerance_fraction=0.05)
    findings = check_orders(make_facts(crcl=80, drafts=[d]), strict, [d])
    assert topics(findings) == ["renal-dose-adjustment"]


# ---------------------------------------------------------------------------------------------
# On dialysis: the labels' lowest band, with or without a clearance in it


def dialysis_facts(**kw):
    evidence = (ConditionEvidence("dialysis", "Condition/9", "ICD-10-CM Z99.2"),)
    return make_facts(conds=ConditionFacts(renal_replacement="dialysis", evidence=evidence), **kw)


@pytest.mark.parametrize("crcl", [None, 6])
def test_dialysis_orders_are_checked_against_the_dialysis_row(crcl):
    gcv = draft("ganciclovir", 350, 12)
    f = only(check(dialysis_facts(crcl=crcl, drafts=[gcv])), "renal-dose-adjustment")
    assert f.summary.startswith("Ganciclovir 350 mg q12h too high for dialysis: 90 mg (1.25 mg/kg) 3 times weekly after dialysis")
    assert "On dialysis (Condition/9: ICD-10-CM Z99.2)" in f.detail
    vgc = draft("valganciclovir", 900, 12)
    f = only(check(dialysis_facts(crcl=crcl, drafts=[vgc])), "renal-dose-adjustment")
    assert f.summary == "Valganciclovir tablets not recommended on dialysis: use IV ganciclovir 90 mg (1.25 mg/kg) 3 times weekly after dialysis"
    fos = draft("foscarnet", 6300, 12)
    f = only(check(dialysis_facts(crcl=crcl, drafts=[fos])), "nephrotoxicity")
    assert f.indicator == "critical" and f.summary.startswith("Foscarnet not recommended on dialysis")
    assert "Hydration" not in f.detail  # no litre of saline per dose for a dialysed patient
    assert check(dialysis_facts(crcl=crcl, drafts=[draft("ganciclovir", 90, 56)])) == []  # the dialysis dose
    cdv = draft("cidofovir", 350, 168)
    f = only(check(dialysis_facts(crcl=crcl, drafts=[cdv])), "nephrotoxicity")
    assert f.indicator == "critical" and "on dialysis (CrCl ≤ 55)" in f.summary


@pytest.mark.parametrize("barrier, words", [
    ({"resistant_drugs": frozenset({"ganciclovir"})}, "ganciclovir resistance documented"),
    ({"ganciclovir_intolerance": True}, "ganciclovir intolerance documented"),
])
def test_valganciclovir_on_dialysis_with_ganciclovir_ruled_out_is_not_sent_to_iv_ganciclovir(barrier, words):
    ruled_out = replace(dialysis_facts(crcl=6, drafts=[draft("valganciclovir", 900, 12)]).conditions, **barrier)
    f = only(check(make_facts(crcl=6, conds=ruled_out, drafts=[draft("valganciclovir", 900, 12)])), "renal-dose-adjustment")
    assert f.proposals == () and f"{words}: not IV ganciclovir" in f.summary
    assert "oral solution" not in f.detail


def test_dialysis_with_a_higher_clearance_asks_to_confirm_and_proposes_no_dose():
    # Within the band of the clearance (ganciclovir 2.5 mg/kg every 24 h at CrCl 45), but above the dialysis
    # row: which is true decides, so the missing-data card asks.
    for d in (draft("ganciclovir", 175, 24), draft("valganciclovir", 450, 12)):
        findings = check(dialysis_facts(crcl=45, drafts=[d]))
        assert topics(findings) == ["missing-data"]
        assert "confirm whether the patient is on dialysis" in findings[0].detail
    # Cidofovir's bands split at 55 mL/min: 45 is contraindicated either way, 80 needs the confirmation.
    cdv = draft("cidofovir", 350, 168)
    assert only(check(dialysis_facts(crcl=45, drafts=[cdv, PROBENECID])), "nephrotoxicity").indicator == "critical"
    findings = check(dialysis_facts(crcl=80, drafts=[cdv, PROBENECID]))
    assert "nephrotoxicity" not in topics(findings)
    assert "confirm whether the patient is on dialysis" in only(findings, "missing-data").detail


@pytest.mark.parametrize("ordered,crcl,on_dialysis,off_dialysis", [
    # Full doses: above the band of the clearance and above the dialysis row, whichever is true.
    (("ganciclovir", 350, 12), 45, "90 mg (1.25 mg/kg) 3 times weekly after dialysis", "CrCl 25-49 mL/min):** 175 mg (2.5 mg/kg) every 24 h"),
    (("valganciclovir", 900, 12), 30, "valganciclovir tablets not recommended", "CrCl 25-39 mL/min):** 450 mg (1 x 450 mg tablet) once daily"),
    (("foscarnet", 6300, 12), 45, "foscarnet not recommended", "CrCl > 0.6-0.8 mL/min/kg):** 5600 mg (80 mg/kg) every 24 h"),
])
def test_dialysis_beside_a_higher_clearance_and_an_order_above_both_is_too_high_either_way(ordered, crcl, on_dialysis, off_dialysis):
    # A patient on hemodialysis has a Cockcroft-Gault clearance of 10-25 mL/min from a typical creatinine: the
    # order is too high on both accounts of the record, and the card says so (no dose: which is true is to confirm).
    d = draft(*ordered)
    found = check(dialysis_facts(crcl=crcl, drafts=[d]))
    f = only(found, "renal-dose-adjustment")
    assert "missing-data" not in topics(found)  # the card says what is to be confirmed
    assert f.indicator == "warning" and f.proposals == () and f.order_id == d.id
    assert f.summary.endswith("is above the label's dose on dialysis and off it: confirm dialysis")
    assert "confirm whether the patient is on dialysis" in f.detail and "Whichever is true, the order is above" in f.detail
    assert on_dialysis in f.detail.split("**On dialysis (")[1].split("\n")[0]
    assert off_dialysis in f.detail


def test_an_order_on_record_above_the_dose_on_dialysis_and_off_it_is_said_on_patient_view_too():
    colitis = replace(conditions(populations=("sot",), organs=("kidney",), sites=("gi",), labels=("CMV colitis",)),
                      renal_replacement="dialysis")
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(2))
    facts = make_facts(crcl=45, conds=colitis, viral=(vl(20000, 2),), meds=(iv,))
    f = only(evaluate(facts, POLICY, "patient-view", ()), "renal-dose-adjustment")
    assert f.order_id == iv.id and f.summary.endswith("is above the label's dose on dialysis and off it: confirm dialysis")


def test_a_dialysed_creatinine_s_clearance_just_above_the_dialysis_row_agrees_with_dialysis():
    # Creatinine 6 mg/dL between sessions: Cockcroft-Gault 13 mL/min, the band next to the dialysis row.  The
    # dialysis dose is right (no card), and a full dose gets the dialysis row's card, not "confirm dialysis".
    assert check(dialysis_facts(crcl=13, drafts=[draft("ganciclovir", 90, 56, mg_per_kg=1.25)])) == []
    f = only(check(dialysis_facts(crcl=13, drafts=[draft("valganciclovir", 900, 12)])), "renal-dose-adjustment")
    assert "not recommended" in f.summary and "confirm" not in f.detail
    # Foscarnet's table is per kg: 13 mL/min is 0.19 mL/min/kg, its dialysis row already; its next row (0.4-0.5,
    # 28-35 mL/min at 70 kg) is a real clearance beside the dialysis on record: confirm, not stop.
    f = only(check(dialysis_facts(crcl=13, crcl_per_kg=0.19, drafts=[draft("foscarnet", 6300, 12)])), "nephrotoxicity")
    assert f.indicator == "critical" and f.summary.startswith("Foscarnet not recommended on dialysis")
    found = check(dialysis_facts(crcl=31.5, crcl_per_kg=0.45, drafts=[draft("foscarnet", 3150, 24)]))
    assert "nephrotoxicity" not in topics(found) and "confirm whether the patient is on dialysis" in only(found, "missing-data").summary


def test_the_dialysis_dose_beside_a_clearance_that_contradicts_dialysis_is_its_phase_and_asks_to_confirm():
    # CrCl 45 with dialysis on record: one of them is wrong.  The order gives the dialysis row's induction: it is
    # read as induction (a treatment, not a prevention dose), and only the confirmation is asked.
    kidney_colitis = replace(conditions(populations=("sot",), organs=("kidney",), sites=("gi",), labels=("CMV colitis",)),
                             renal_replacement="dialysis")
    d = draft("ganciclovir", 90, 56, mg_per_kg=1.25)
    facts = make_facts(crcl=45, conds=kidney_colitis, viral=(vl(20000, 2),), drafts=[d])
    found = evaluate(facts, POLICY, "order-select", facts.drafts)
    assert topics(found) == ["missing-data"]
    assert only(found, "missing-data").summary == "Ganciclovir order not fully checked: confirm whether the patient is on dialysis"
    assert "No dose is suggested until it is confirmed whether the patient is on dialysis." in only(found, "missing-data").detail


def test_the_dialysis_dose_on_record_beside_a_clearance_that_contradicts_dialysis_asks_to_confirm_on_patient_view():
    # An old dialysis entry after a kidney transplant: the order at the dialysis row's dose would be about a tenth
    # of the dose at CrCl 78.  Patient-view says so as the order hooks do: confirm, no dose proposed.
    kidney_colitis = replace(conditions(populations=("sot",), organs=("kidney",), sites=("gi",), labels=("CMV colitis",)),
                             renal_replacement="dialysis")
    on_record = order("ganciclovir", 90, 56, id="MedicationRequest/gcv", mg_per_kg=1.25, start=day(3))
    found = evaluate(make_facts(crcl=78, conds=kidney_colitis, viral=(vl(20000, 2),), meds=[on_record]), POLICY, "patient-view", ())
    card = only(found, "missing-data")
    assert card.summary == "Ganciclovir order not fully checked: confirm whether the patient is on dialysis"
    assert card.order_id == on_record.id and not card.proposals
    # At the dose of the clearance instead (valganciclovir 900 mg daily at CrCl 78): confirm too.
    tablets = order("valganciclovir", 900, 24, id="MedicationRequest/vgc", start=day(3))
    found = evaluate(make_facts(crcl=78, conds=kidney_colitis, viral=(vl(20000, 2),), meds=[tablets]), POLICY, "patient-view", ())
    assert only(found, "missing-data").summary == "Valganciclovir order not fully checked: confirm whether the patient is on dialysis"


def test_a_ganciclovir_order_below_the_marrow_limits_gets_no_dose_card_beside_the_critical_one():
    gcv = draft("ganciclovir", 350, 12)  # too high at CrCl 35, but not to be given at all
    findings = check(make_facts(crcl=35, labs={"anc": 400}, drafts=[gcv]))
    assert only(findings, "hematologic-toxicity").indicator == "critical"
    assert "renal-dose-adjustment" not in topics(findings)
    assert "renal-dose-adjustment" in topics(check(make_facts(crcl=35, drafts=[gcv])))


def test_two_valganciclovir_drafts_below_10_make_one_iv_ganciclovir_order():
    # The first draft is changed to IV ganciclovir (stopping the valganciclovir on record); the second is removed.
    first, second = valganciclovir_tablets(id="MedicationRequest/vgc-1"), valganciclovir_tablets(1, 24, id="MedicationRequest/vgc-2")
    on_record = order("valganciclovir", 450, 24, id="MedicationRequest/vgc-on-record", start=day(20))
    found = [f for f in check(make_facts(crcl=8, drafts=[first, second], meds=[on_record])) if f.topic == "renal-dose-adjustment"]
    cards = {f.order_id: f for f in found}
    assert [(p.drug, [s.order_id for s in p.also]) for p in doses(cards[first.id])] == [("ganciclovir", [on_record.id])]
    assert doses(cards[second.id]) == [] and [(p.order_id, p.also) for p in stops(cards[second.id])] == [(second.id, ())]
    assert cards[second.id].summary.endswith("another valganciclovir draft is ordered; remove this one")


def test_no_step_down_to_valganciclovir_tablets_the_kidneys_rule_out():
    # IV ganciclovir on record, valganciclovir drafted at CrCl 8: the renal card removes the draft (IV ganciclovir
    # already ordered); no duplicate card offers stopping the ganciclovir for it (accepting both would leave nothing).
    ganciclovir = order("ganciclovir", 90, None, id="MedicationRequest/gcv", start=day(20))
    found = check(make_facts(crcl=8, drafts=[valganciclovir_tablets()], meds=[ganciclovir]))
    assert "duplicate-therapy" not in topics(found)
    assert [p.order_id for f in found for p in stops(f)] == [valganciclovir_tablets().id]


def test_of_two_valganciclovir_drafts_below_10_the_induction_one_becomes_iv_ganciclovir():
    # Listed after a maintenance draft, the induction draft is still the one changed (to the IV induction dose).
    maintenance = valganciclovir_tablets(1, 48, id="MedicationRequest/vgc-maint")
    induction = valganciclovir_tablets(id="MedicationRequest/vgc-ind")
    facts = make_facts(crcl=8, drafts=[maintenance, induction])
    cards = {f.order_id: f for f in check(facts) if f.topic == "renal-dose-adjustment"}
    iv = renal_dose("ganciclovir", "induction", facts, POLICY)
    assert [(p.drug, p.dose_mg, p.replaces) for p in doses(cards[induction.id])] == [("ganciclovir", iv.dose_mg, induction.id)]
    assert [p.order_id for p in stops(cards[maintenance.id])] == [maintenance.id] and doses(cards[maintenance.id]) == []


@pytest.mark.parametrize("theirs, ours, spared", [(False, True, True), (True, True, True), (True, False, False)],
                         ids=["ours-recommended", "both-recommended", "only-the-other-recommended"])
def test_a_draft_removed_by_the_prophylaxis_card_is_not_removed_again_unless_that_takes_a_recommendation(theirs, ours, spared):
    # One removal of a letermovir draft, on the prophylaxis-not-treatment card; but a recommended removal
    # elsewhere never gives way to one that is not recommended.
    from cds_service.clinical.findings import Finding, StopOrderProposal
    from cds_service.clinical.order_safety import _sparing_drafts
    ltv = draft("letermovir", 480, 24)

    def card(topic, recommended):
        return Finding(topic=topic, indicator="warning", summary=topic, detail="", sources=(),
                       proposals=(StopOrderProposal("Remove the letermovir order", ltv.id, "why", recommended),))
    other = card("duplicate-therapy", theirs)
    kept = _sparing_drafts([other], {}, {ltv.id: (ltv, card("prophylaxis-not-treatment", ours))}, frozenset({ltv.id}))
    assert (kept == []) is spared and (kept == [other]) is not spared


def test_a_test_whose_newest_result_is_preliminary_is_not_ordered_again():
    # The newest creatinine is preliminary (the facts layer leaves it unused and names it): the dose waits for the
    # final result, and the card does not order a creatinine that is already resulting.
    d = draft("ganciclovir", 350, 12, route="iv")
    prelim = (DataQualityIssue("preliminary", "creatinine", "newest creatinine 2026-11-26: 6 mg/dL is preliminary, not final; "
                                                            "not used; older results are not used in its place"),)
    facts = make_facts(creatinine=None, crcl=None, drafts=[d], quality=prelim)
    pending = replace(facts, labs=replace(facts.labs, preliminary_at={"creatinine": days_ago(1)}))
    card = only(check(pending), "missing-data")
    assert "creatinine" not in labs_ordered(card) and "**Resulting:** serum creatinine" in card.detail
    # A preliminary result months old is no test under way: ordered.
    old = replace(facts, labs=replace(facts.labs, preliminary_at={"creatinine": days_ago(90)}))
    assert labs_ordered(only(check(old), "missing-data")) == ["creatinine"]
    # Nor one dated past the future tolerance.
    ahead = replace(facts, labs=replace(facts.labs, preliminary_at={"creatinine": days_ago(-3)}))
    assert labs_ordered(only(check(ahead), "missing-data")) == ["creatinine"]
    none = (DataQualityIssue("missing", "creatinine", "no usable creatinine result on record"),)
    card = only(check(make_facts(creatinine=None, crcl=None, drafts=[d], quality=none)), "missing-data")
    assert labs_ordered(card) == ["creatinine"]  # with nothing resulting, it is ordered
