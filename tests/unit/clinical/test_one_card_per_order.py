"""Across the cards of one call: every suggestion can be accepted with every other one
(reliability/contract.py: acceptance_conflicts, also checked on every fixture request and fuzzed one).

A clinician (or an EHR that applies suggestions one by one) may accept a suggestion from each card.
So no two cards replace the same order, no two cards start foscarnet in place of ganciclovir-family
orders, and no card removes a draft another card changes into another drug (removed after the change,
the new order would go)."""

from __future__ import annotations

from dataclasses import replace

from factories import (
    POLICY,
    conditions,
    day,
    doses,
    draft,
    make_facts,
    only,
    order,
    stops,
    topics,
    vl,
)

from reliability.contract import acceptance_conflicts

from cds_service.clinical import evaluate
from cds_service.clinical.findings import Finding, discontinued

KIDNEY = conditions(populations=("sot",), organs=("kidney",), infection=True)
CNS = conditions(populations=("sot",), organs=("kidney",), sites=("cns",), labels=("CMV encephalitis",))
HIV_RETINITIS = conditions(populations=("hiv",), sites=("retinitis",), labels=("HIV infection", "CMV retinitis"))
REFRACTORY_VL = (vl(3000, 26), vl(4100, 19), vl(11800, 12), vl(45000, 2))
DETECTED = (vl(3000, 6), vl(2000, 2))
RISING = (vl(1200, 16), vl(8400, 9), vl(41000, 2))
COURSE = order("valganciclovir", 900, 12, id="MedicationRequest/valgan", start=day(25))
RENEWAL = draft("valganciclovir", 900, 12, id="MedicationRequest/renewal")
LOW_ANC = {"anc": 400.0}


def call(facts, hook: str = "order-sign") -> list[Finding]:
    found = evaluate(facts, POLICY, hook, facts.drafts if hook != "patient-view" else ())
    assert acceptance_conflicts(found, facts, hook) == []
    return found


def test_a_renewal_the_counts_rule_out_is_changed_by_the_resistance_card_alone():
    found = call(make_facts(conds=KIDNEY, viral=REFRACTORY_VL, meds=(COURSE,), drafts=(RENEWAL,), labs=LOW_ANC))
    resistance = only(found, "suspected-resistance")
    assert [(p.drug, p.replaces, discontinued(p)) for p in doses(resistance)] == [
        ("foscarnet", RENEWAL.id, (COURSE.id,)), ("maribavir", RENEWAL.id, (COURSE.id,))]
    counts = only(found, "hematologic-toxicity")
    # Still critical, but it neither removes the draft nor changes it to foscarnet a second time.
    assert counts.indicator == "critical" and counts.order_id == RENEWAL.id
    assert f'proposed on the card "{resistance.summary}", which changes this draft' in counts.detail
    assert "If none of its changes is accepted, remove the draft." in counts.detail
    # The course on record is stopped here whatever the resistance card gets (the genotype alone stops
    # nothing), and the counts leave no duplicate to resolve.
    assert [(p.order_id, p.also) for p in stops(counts)] == [(COURSE.id, ())] and doses(counts) == []
    assert "the same limits apply: discontinue it in any case (offered here)." in counts.detail
    assert "duplicate-therapy" not in topics(found)


def test_a_renewal_switched_for_resistance_is_not_removed_by_the_duplicate_card():
    found = call(make_facts(conds=KIDNEY, viral=REFRACTORY_VL, meds=(COURSE,), drafts=(RENEWAL,)))
    resistance = only(found, "suspected-resistance")
    duplicate = only(found, "duplicate-therapy")
    # Discontinuing the course on record is what the switch does as well: that stays.
    assert [p.order_id for p in stops(duplicate)] == [COURSE.id]
    assert f'is changed on the card "{resistance.summary}": not removed here' in duplicate.detail


def test_without_a_switch_the_duplicate_card_still_offers_to_remove_the_renewal():
    # Viral load falling: no resistance card, so nothing else changes the draft.
    falling = (vl(30000, 26), vl(2000, 2))
    found = call(make_facts(conds=KIDNEY, viral=falling, meds=(COURSE,), drafts=(RENEWAL,)))
    assert [p.order_id for p in stops(only(found, "duplicate-therapy"))] == [RENEWAL.id, COURSE.id]


def test_two_critical_orders_on_record_start_one_foscarnet_course():
    ganciclovir = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(5))
    valganciclovir = order("valganciclovir", 900, 12, id="MedicationRequest/vgc", start=day(5))
    found = call(make_facts(conds=KIDNEY, viral=DETECTED, meds=(ganciclovir, valganciclovir), labs=LOW_ANC),
                 "patient-view")
    first, second = [f for f in found if f.topic == "hematologic-toxicity"]
    # The switch discontinues both (accepted alone, it would leave valganciclovir given beside foscarnet).
    both = (ganciclovir.id, valganciclovir.id)
    assert [p.drug for p in doses(first)] == ["foscarnet"] and discontinued(doses(first)[0]) == both
    assert "(a card of its own for each), so the switch discontinues it too." in first.detail
    # The second order is stopped, and its card points to the one foscarnet course.
    assert doses(second) == [] and [p.order_id for p in stops(second)] == [valganciclovir.id]
    assert f'**Alternative:** foscarnet, proposed on the card "{first.summary}"' in second.detail


def test_two_critical_drafts_start_one_foscarnet_course_and_no_step_down_between_them():
    ganciclovir = draft("ganciclovir", 350, 12, id="MedicationRequest/d1")
    valganciclovir = draft("valganciclovir", 900, 12, id="MedicationRequest/d2")
    found = call(make_facts(conds=KIDNEY, viral=DETECTED, drafts=(ganciclovir, valganciclovir), labs=LOW_ANC))
    first, second = [f for f in found if f.topic == "hematologic-toxicity"]
    assert [(p.drug, p.replaces) for p in doses(first)] == [("foscarnet", ganciclovir.id)]
    assert doses(second) == [] and [p.order_id for p in stops(second)] == [valganciclovir.id]
    assert "foscarnet, proposed on the card" in second.detail
    # "Switch ganciclovir to valganciclovir" would contradict both critical cards.
    assert "duplicate-therapy" not in topics(found)


def test_a_critical_draft_defers_to_a_foscarnet_start_on_another_card():
    # Documented cidofovir resistance: the alternative-therapy card changes the cidofovir draft to foscarnet;
    # the ganciclovir draft's critical card stops it and names that card, rather than start a second course.
    cidofovir = draft("cidofovir", 350, 168, id="MedicationRequest/cdv")
    ganciclovir = draft("ganciclovir", 350, 12, id="MedicationRequest/gcv")
    conds = replace(KIDNEY, resistant_drugs=frozenset({"cidofovir"}))
    found = call(make_facts(conds=conds, viral=DETECTED, drafts=(cidofovir, ganciclovir), labs=LOW_ANC))
    switch = only(found, "alternative-therapy")
    assert [(p.drug, p.replaces) for p in doses(switch)][0] == ("foscarnet", cidofovir.id)
    counts = next(f for f in found if f.topic == "hematologic-toxicity" and f.order_id == ganciclovir.id)
    assert doses(counts) == [] and [p.order_id for p in stops(counts)] == [ganciclovir.id]
    assert f'foscarnet, proposed on the card "{switch.summary}"' in counts.detail


def test_a_prophylaxis_draft_beside_a_treatment_draft_is_removed_not_turned_into_a_second_course():
    letermovir = draft("letermovir", 480, 24, id="MedicationRequest/ltv")
    ganciclovir = draft("ganciclovir", 350, 12, id="MedicationRequest/gcv")
    found = call(make_facts(conds=KIDNEY, viral=RISING, drafts=(letermovir, ganciclovir)))
    card = only(found, "prophylaxis-not-treatment")
    assert doses(card) == [] and [p.order_id for p in stops(card)] == [letermovir.id]
    assert "**Treatment:** the draft ganciclovir 350 mg" in card.detail
    # Counts below the label rule the ganciclovir draft out: the letermovir draft becomes the treatment
    # (foscarnet), and the ganciclovir draft's critical card only removes it, naming that card.
    found = call(make_facts(conds=KIDNEY, viral=RISING, drafts=(letermovir, ganciclovir), labs=LOW_ANC))
    card = only(found, "prophylaxis-not-treatment")
    assert [(p.drug, p.replaces) for p in doses(card)] == [("foscarnet", letermovir.id)]
    counts = only(found, "hematologic-toxicity")
    assert doses(counts) == [] and f'foscarnet, proposed on the card "{card.summary}"' in counts.detail
    # Alone, the letermovir draft is turned into the treatment.
    alone = call(make_facts(conds=KIDNEY, viral=RISING, drafts=(letermovir,)))
    assert [p.replaces for p in doses(only(alone, "prophylaxis-not-treatment"))] == [letermovir.id]


def test_no_advice_continues_a_ganciclovir_draft_the_counts_rule_out():
    ganciclovir = draft("ganciclovir", 350, 12, route="iv", id="MedicationRequest/gcv")
    cns = call(make_facts(conds=CNS, viral=DETECTED, drafts=(ganciclovir,), labs=LOW_ANC))
    assert "cns-disease-combination" not in topics(cns)  # "add foscarnet to the ganciclovir"
    assert [p.drug for p in doses(only(cns, "hematologic-toxicity"))] == ["foscarnet"]
    assert "cns-disease-combination" in topics(call(make_facts(conds=CNS, viral=DETECTED, drafts=(ganciclovir,))))

    valganciclovir = draft("valganciclovir", 900, 12, id="MedicationRequest/vgc")
    retinitis = only(call(make_facts(conds=HIV_RETINITIS, viral=DETECTED, drafts=(valganciclovir,), labs=LOW_ANC)),
                     "hiv-retinitis")
    # Not "valganciclovir 900 mg twice daily for 21 days", but still: no ART on record.
    assert "twice daily" not in retinitis.summary + retinitis.detail and "no antiretroviral therapy" in retinitis.summary
    normal = only(call(make_facts(conds=HIV_RETINITIS, viral=DETECTED, drafts=(valganciclovir,))), "hiv-retinitis")
    assert "900 mg twice daily" in normal.summary


def test_copies_of_a_draft_give_one_interaction_card():
    # Two identical valganciclovir drafts are checked once; mycophenolate drafted with them is one pair.
    first = draft("valganciclovir", 900, 12, id="MedicationRequest/a")
    copy = draft("valganciclovir", 900, 12, id="MedicationRequest/b")
    mycophenolate = draft("mycophenolate mofetil", 1000, 12, id="MedicationRequest/mmf")
    found = call(make_facts(conds=KIDNEY, viral=DETECTED, drafts=(first, copy, mycophenolate)))
    [interaction] = [f for f in found if f.topic == "drug-interaction"]
    assert interaction.order_id == first.id and "mycophenolate" in interaction.summary
    assert [p.order_id for p in stops(only(found, "duplicate-therapy"))] == [first.id, copy.id]


def test_an_order_on_record_the_counts_rule_out_is_stopped_with_the_draft():
    # The draft's critical card stops the family's orders on record with each of its suggestions: accepting
    # either one alone leaves no valganciclovir given (no duplicate card is needed for the pair).
    falling = (vl(30000, 26), vl(2000, 2))
    prophylaxis = order("valganciclovir", 900, 24, id="MedicationRequest/vgc-pro", start=day(40))
    found = call(make_facts(conds=KIDNEY, viral=falling, meds=(COURSE, prophylaxis), drafts=(RENEWAL,), labs=LOW_ANC))
    assert topics(found) == ["hematologic-toxicity"]
    counts = only(found, "hematologic-toxicity")
    both = (COURSE.id, prophylaxis.id)
    assert [(p.drug, p.replaces, discontinued(p)) for p in doses(counts)] == [("foscarnet", RENEWAL.id, both)]
    assert [(p.order_id, tuple(s.order_id for s in p.also)) for p in stops(counts)] == [(RENEWAL.id, both)]
    assert ("**Also on record:** valganciclovir 900 mg every 12 h (oral), active; valganciclovir 900 mg every 24 h "
            "(oral), active: the same limits apply, so each suggestion here discontinues it too.") in counts.detail


def test_a_draft_changed_elsewhere_leaves_the_critical_card_to_stop_the_familys_orders_on_record():
    # Documented resistance: the alternative-therapy card switches the ganciclovir draft and its switches stop
    # the family's courses on record; the critical card still offers stopping them in one suggestion, for a
    # clinician who accepts none of those switches.
    resistant = replace(KIDNEY, resistant_drugs=frozenset({"ganciclovir"}))
    ganciclovir = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(25))
    renewal = draft("ganciclovir", 350, 12, id="MedicationRequest/gcv-renewal")
    found = call(make_facts(conds=resistant, viral=DETECTED, meds=(ganciclovir, COURSE), drafts=(renewal,),
                            labs=LOW_ANC))
    alternative = only(found, "alternative-therapy")
    assert {discontinued(p) for p in doses(alternative)} == {(ganciclovir.id, COURSE.id)}
    counts = only(found, "hematologic-toxicity")
    assert doses(counts) == [] and [(p.order_id, [s.order_id for s in p.also]) for p in stops(counts)] == [
        (ganciclovir.id, [COURSE.id])]


def test_a_copy_of_a_draft_the_counts_rule_out_is_still_removed():
    first = draft("ganciclovir", 350, 12, id="MedicationRequest/gcv-1")
    copy = draft("ganciclovir", 350, 12, id="MedicationRequest/gcv-2")
    found = call(make_facts(conds=KIDNEY, viral=DETECTED, drafts=(first, copy), labs=LOW_ANC))
    assert only(found, "hematologic-toxicity").order_id == first.id
    # The first is changed to foscarnet on the critical card; its copy is removed on the duplicate card.
    assert [p.order_id for p in stops(only(found, "duplicate-therapy"))] == [copy.id]


def test_no_second_foscarnet_when_foscarnet_is_already_ordered():
    on_record = order("foscarnet", 4900, 12, id="MedicationRequest/fos", start=day(10))
    ganciclovir = draft("ganciclovir", 350, 12, id="MedicationRequest/gcv")
    found = call(make_facts(conds=KIDNEY, viral=DETECTED, meds=(on_record,), drafts=(ganciclovir,), labs=LOW_ANC))
    counts = only(found, "hematologic-toxicity")
    assert doses(counts) == [] and [p.order_id for p in stops(counts)] == [ganciclovir.id]
    assert "**Foscarnet is already ordered:** foscarnet 4900 mg" in counts.detail
    # The duplicate card still offers removing the ganciclovir draft (nothing else changes it).
    assert ganciclovir.id in [p.order_id for p in stops(only(found, "duplicate-therapy"))]


def test_a_card_dropped_for_the_counts_is_not_named_and_changes_nothing():
    # Tablets at CrCl < 10 would be changed to IV ganciclovir; the counts rule ganciclovir out too.
    valganciclovir = draft("valganciclovir", 900, 12, id="MedicationRequest/vgc")
    found = call(make_facts(conds=KIDNEY, viral=DETECTED, creatinine=8.0, drafts=(valganciclovir,), labs=LOW_ANC))
    assert not any(p.drug == "ganciclovir" for f in found for p in doses(f))
    assert "IV ganciclovir" not in " ".join(f.summary for f in found)


def test_an_interaction_card_does_not_remove_a_draft_another_card_switches():
    # Maribavir documented resistant: the alternative-therapy card changes the maribavir draft to foscarnet;
    # the antagonism card (maribavir with the ganciclovir course) then only offers stopping the course.
    on_ganciclovir = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(10))
    maribavir = draft("maribavir", 400, 12, id="MedicationRequest/mbv")
    resistant = replace(KIDNEY, resistant_drugs=frozenset({"maribavir"}))
    found = call(make_facts(conds=resistant, viral=DETECTED, meds=(on_ganciclovir,), drafts=(maribavir,)))
    switch = only(found, "alternative-therapy")
    assert [(p.drug, p.replaces) for p in doses(switch)] == [("foscarnet", maribavir.id)]
    interaction = only(found, "drug-interaction")
    assert [p.order_id for p in stops(interaction)] == [on_ganciclovir.id]
    assert f'is changed on the card "{switch.summary}": not removed here' in interaction.detail


def test_no_switch_to_an_alternative_already_ordered():
    # Ganciclovir resistance documented, and foscarnet (or maribavir) already on record: the ganciclovir draft
    # only stops; nothing orders a second alternative.
    ganciclovir = draft("ganciclovir", 350, 12, id="MedicationRequest/gcv")
    resistant = replace(KIDNEY, resistant_drugs=frozenset({"ganciclovir"}))
    for alternative in (order("foscarnet", 4900, 12, id="MedicationRequest/fos", start=day(10)),
                        order("maribavir", 400, 12, id="MedicationRequest/mbv", start=day(10))):
        found = call(make_facts(conds=resistant, viral=DETECTED, meds=(alternative,), drafts=(ganciclovir,)))
        card = only(found, "alternative-therapy")
        drug = alternative.ingredient
        assert doses(card) == [] and [p.order_id for p in stops(card)] == [ganciclovir.id]
        assert card.summary.endswith(f"{drug} already ordered: stop the ganciclovir")
        assert f"**{drug.capitalize()} is already ordered:**" in card.detail


def test_a_duplicate_pair_is_judged_with_every_card_of_the_call_whichever_draft_reports_it():
    # The pair is reported from the foscarnet draft (the smaller id); the ganciclovir draft's own critical card
    # decides what happens to it.
    ganciclovir = draft("ganciclovir", 350, 12, id="MedicationRequest/b-gcv")
    foscarnet = draft("foscarnet", 4900, 12, id="MedicationRequest/a-fos")
    found = call(make_facts(conds=KIDNEY, viral=DETECTED, drafts=(ganciclovir, foscarnet), labs=LOW_ANC))
    counts = only(found, "hematologic-toxicity")
    assert doses(counts) == [] and "**Foscarnet is already ordered:**" in counts.detail


def test_a_drug_documented_resistant_gets_no_dose_correction_beside_its_switch():
    # Corrected after the switch to maribavir, the resistant foscarnet would come back.
    foscarnet = draft("foscarnet", 9000, 12, id="MedicationRequest/fos")
    resistant = replace(KIDNEY, resistant_drugs=frozenset({"foscarnet"}))
    found = call(make_facts(conds=resistant, viral=DETECTED, drafts=(foscarnet,)))
    assert [p.drug for p in doses(only(found, "alternative-therapy"))] == ["maribavir"]
    assert "renal-dose-adjustment" not in topics(found)
    assert "renal-dose-adjustment" in topics(call(make_facts(conds=KIDNEY, viral=DETECTED, drafts=(foscarnet,))))


def test_two_ganciclovir_family_courses_are_switched_by_one_card():
    ganciclovir = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(25))
    resistant = replace(KIDNEY, resistant_drugs=frozenset({"ganciclovir"}))
    found = call(make_facts(conds=resistant, viral=DETECTED, meds=(COURSE, ganciclovir)), "patient-view")
    [switch] = [f for f in found if f.topic == "alternative-therapy"]
    # Begun the same day, the courses are taken by drug name (regimens._newest_first): ganciclovir's card.
    assert {discontinued(p) for p in doses(switch)} == {(ganciclovir.id, COURSE.id)}
    assert "**Also on record:** valganciclovir 900 mg" in switch.detail

    drafts = (draft("ganciclovir", 350, 12, id="MedicationRequest/gcv-d"), draft("valganciclovir", 900, 12, id="MedicationRequest/vgc-d"))
    found = call(make_facts(conds=resistant, viral=DETECTED, drafts=drafts))
    first, second = [f for f in found if f.topic == "alternative-therapy"]
    assert [p.drug for p in doses(first)] == ["foscarnet", "maribavir"]
    assert doses(second) == [] and [p.order_id for p in stops(second)] == [drafts[1].id]
    assert f'proposed on the card "{first.summary}"' in second.detail


def test_hiv_retinitis_with_other_cmv_disease_starts_one_course():
    hiv_cns = conditions(populations=("hiv",), sites=("retinitis", "cns"), labels=("HIV infection", "CMV retinitis", "CMV encephalitis"))
    found = call(make_facts(conds=hiv_cns, viral=DETECTED), "patient-view")
    regimen = only(found, "cmv-treatment-regimen")
    retinitis = only(found, "hiv-retinitis")
    assert doses(retinitis) == [] and f'proposed on the card "{regimen.summary}"' in retinitis.detail
    assert [p.specialty for p in retinitis.proposals] == ["ophthalmology"]


def test_an_order_hook_stops_a_course_on_record_the_counts_rule_out():
    # Foscarnet drafted to add for CNS disease while ganciclovir is on record, ANC 400: the ganciclovir
    # course gets its critical card, as on patient-view (foscarnet is the draft: no second one).
    on_ganciclovir = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(5))
    foscarnet = draft("foscarnet", 4900, 12, id="MedicationRequest/fos")
    found = call(make_facts(conds=CNS, viral=DETECTED, meds=(on_ganciclovir,), drafts=(foscarnet,), labs=LOW_ANC))
    counts = only(found, "hematologic-toxicity")
    assert counts.indicator == "critical" and counts.order_id == on_ganciclovir.id
    assert doses(counts) == [] and [p.order_id for p in stops(counts)] == [on_ganciclovir.id]
    assert "**Being ordered:** foscarnet 4900 mg" in counts.detail
    # The same for a cidofovir or letermovir draft: what is being ordered follows the course, not foscarnet.
    for other in (draft("cidofovir", 350, 168, id="MedicationRequest/cdv"), draft("letermovir", 480, 24, id="MedicationRequest/ltv")):
        found = call(make_facts(conds=KIDNEY, viral=DETECTED, meds=(on_ganciclovir,), drafts=(other,), labs=LOW_ANC))
        counts = next(f for f in found if f.topic == "hematologic-toxicity" and f.order_id == on_ganciclovir.id)
        assert doses(counts) == [] and [p.order_id for p in stops(counts)] == [on_ganciclovir.id]
        # The cidofovir draft's own neutropenia warning: ANC 400/uL, below the policy's limit with no lab range.
        assert [f.indicator for f in found if f.topic == "hematologic-toxicity" and f.order_id == other.id] == (
            ["warning"] if other.ingredient == "cidofovir" else [])
    # Beside a ganciclovir-family draft, that draft's cards stop the family: no second card for the course.
    renewal = call(make_facts(conds=KIDNEY, viral=DETECTED, meds=(on_ganciclovir,),
                              drafts=(draft("ganciclovir", 350, 12, id="MedicationRequest/gcv-d"),), labs=LOW_ANC))
    assert [f.order_id for f in renewal if f.topic == "hematologic-toxicity"] == ["MedicationRequest/gcv-d"]
    # Quiet without a count below the label, and for a draft that is no anti-CMV therapy.
    assert "hematologic-toxicity" not in topics(call(make_facts(conds=CNS, viral=DETECTED, meds=(on_ganciclovir,),
                                                                drafts=(foscarnet,))))
    imipenem = draft("imipenem-cilastatin", 500, 6, id="MedicationRequest/imi")
    assert "hematologic-toxicity" not in topics(call(make_facts(conds=CNS, viral=DETECTED, meds=(on_ganciclovir,),
                                                                drafts=(imipenem,), labs=LOW_ANC)))


def test_the_critical_card_orders_no_foscarnet_beside_maribavir_already_ordered():
    on_maribavir = order("maribavir", 400, 12, id="MedicationRequest/mbv", start=day(10))
    ganciclovir = draft("ganciclovir", 350, 12, id="MedicationRequest/gcv")
    found = call(make_facts(conds=KIDNEY, viral=DETECTED, meds=(on_maribavir,), drafts=(ganciclovir,), labs=LOW_ANC))
    counts = only(found, "hematologic-toxicity")
    assert doses(counts) == [] and "**Maribavir is already ordered:**" in counts.detail


def test_a_prophylaxis_draft_is_not_removed_in_favour_of_a_cidofovir_draft():
    # Cidofovir's contraindications are order safety's (creatinine 2.0 here): the letermovir draft is still
    # turned into the treatment, so accepting every card leaves one.
    letermovir = draft("letermovir", 480, 24, id="MedicationRequest/ltv")
    cidofovir = draft("cidofovir", 350, 168, id="MedicationRequest/cdv")
    found = call(make_facts(conds=KIDNEY, viral=RISING, creatinine=2.0, drafts=(letermovir, cidofovir)))
    assert [p.replaces for p in doses(only(found, "prophylaxis-not-treatment"))] == [letermovir.id]


def test_a_dose_correction_stays_where_the_alternative_card_switches_nothing():
    # Ganciclovir resistance documented, no alternative to offer (not post-transplant, foscarnet resistant
    # too): the card consults infectious diseases, and the renal correction of the draft stays.
    resistant = replace(conditions(infection=True), resistant_drugs=frozenset({"ganciclovir", "foscarnet"}))
    valganciclovir = draft("valganciclovir", 900, 12, id="MedicationRequest/vgc")
    found = call(make_facts(conds=resistant, viral=DETECTED, creatinine=2.5, drafts=(valganciclovir,)))
    assert doses(only(found, "alternative-therapy")) == []
    assert "renal-dose-adjustment" in topics(found)


def test_the_probenecid_drafted_with_a_switched_cidofovir_goes_with_each_switch():
    cidofovir = draft("cidofovir", 350, 168, id="MedicationRequest/cdv")
    probenecid = draft("probenecid", 2000, None, id="MedicationRequest/prb")
    resistant = replace(KIDNEY, resistant_drugs=frozenset({"cidofovir"}))
    found = call(make_facts(conds=resistant, viral=DETECTED, creatinine=2.0, drafts=(cidofovir, probenecid)))
    switch = only(found, "alternative-therapy")
    # Accepted alone, a switch must not leave the probenecid (given only with cidofovir) to be signed.
    assert [(p.drug, p.replaces, [s.order_id for s in p.also]) for p in doses(switch)] == [
        ("foscarnet", cidofovir.id, [probenecid.id]), ("maribavir", cidofovir.id, [probenecid.id])]
    assert "given only with cidofovir, so each suggestion that removes or changes the cidofovir" in switch.detail
    # The contraindication card no longer removes the cidofovir (changed on the switch card), nor the probenecid
    # alone (cidofovir kept without it would be worse): it stays critical, with nothing to accept.
    contraindicated = only(found, "nephrotoxicity")
    assert contraindicated.indicator == "critical" and contraindicated.proposals == ()
    assert f'is changed on the card "{switch.summary}": not removed here' in contraindicated.detail


def test_the_probenecid_stays_while_another_cidofovir_order_does():
    # Two cidofovir drafts (or a draft beside a course on record): removing one must not take the probenecid
    # the other needs with every dose.
    first = draft("cidofovir", 350, 168, id="MedicationRequest/cdv-1")
    second = draft("cidofovir", 375, 168, id="MedicationRequest/cdv-2")
    course = order("cidofovir", 350, 168, id="MedicationRequest/cdv-course", start=day(10))
    probenecid = draft("probenecid", 2000, None, id="MedicationRequest/prb")
    for drafts, meds in (((first, second, probenecid), ()), ((first, probenecid), (course,))):
        found = call(make_facts(conds=KIDNEY, viral=DETECTED, drafts=drafts, meds=meds))
        removals = [p for f in found for p in stops(f) if p.order_id in (first.id, second.id)]
        assert removals and all(p.also == () for p in removals)


def test_a_dose_card_keeps_its_words_but_not_its_change_of_a_draft_another_card_switches():
    # A renewal under-dosed for the kidneys, of a refractory course: the resistance card changes the draft to
    # foscarnet or maribavir; the renal card's correction, accepted after that, would bring valganciclovir back.
    under_dosed = draft("valganciclovir", 450, 12, id="MedicationRequest/renewal")
    found = call(make_facts(conds=KIDNEY, viral=REFRACTORY_VL, meds=(COURSE,), drafts=(under_dosed,)))
    resistance = only(found, "suspected-resistance")
    renal = only(found, "renal-dose-adjustment")
    assert renal.proposals == () and "900 mg q12h" in renal.summary
    assert f'is changed on the card "{resistance.summary}": its dose is not changed here' in renal.detail


def test_one_alternative_course_for_two_treatment_drafts_switched_for_different_reasons():
    # The ganciclovir renewal of a refractory course is switched by the resistance card; the cidofovir draft,
    # documented resistant, is then removed rather than switched into a second foscarnet course.
    ganciclovir = draft("ganciclovir", 350, 12, id="MedicationRequest/a-gcv")
    cidofovir = draft("cidofovir", 350, 168, id="MedicationRequest/b-cdv")
    on_record = order("ganciclovir", 350, 12, id="MedicationRequest/gcv-course", start=day(25))
    resistant = replace(KIDNEY, resistant_drugs=frozenset({"cidofovir"}))
    found = call(make_facts(conds=resistant, viral=REFRACTORY_VL, meds=(on_record,), drafts=(ganciclovir, cidofovir)))
    resistance = only(found, "suspected-resistance")
    assert [p.drug for p in doses(resistance)] == ["foscarnet", "maribavir"]
    alternative = only(found, "alternative-therapy")
    assert doses(alternative) == [] and [p.order_id for p in stops(alternative)] == [cidofovir.id]
    assert f'proposed on the card "{resistance.summary}"' in alternative.detail


def test_of_two_prophylaxis_drafts_the_valganciclovir_becomes_the_treatment():
    letermovir = draft("letermovir", 480, 24, id="MedicationRequest/a-ltv")
    valganciclovir = draft("valganciclovir", 900, 24, id="MedicationRequest/b-vgc")
    found = call(make_facts(conds=KIDNEY, viral=RISING, drafts=(letermovir, valganciclovir)))
    cards = {f.order_id: f for f in found if f.topic == "prophylaxis-not-treatment"}
    assert [(p.drug, p.replaces) for p in doses(cards[valganciclovir.id])] == [("valganciclovir", valganciclovir.id)]
    assert doses(cards[letermovir.id]) == [] and [p.order_id for p in stops(cards[letermovir.id])] == [letermovir.id]


def test_a_second_draft_continuing_a_refractory_course_is_removed_on_a_card_of_its_own():
    ganciclovir = draft("ganciclovir", 350, 12, id="MedicationRequest/a-gcv")
    valganciclovir = draft("valganciclovir", 900, 12, id="MedicationRequest/b-vgc")
    on_record = order("ganciclovir", 350, 12, id="MedicationRequest/gcv-course", start=day(25))
    found = call(make_facts(conds=KIDNEY, viral=REFRACTORY_VL, meds=(on_record,), drafts=(ganciclovir, valganciclovir)))
    first, second = [f for f in found if f.topic == "suspected-resistance"]
    assert {p.replaces for p in doses(first)} == {ganciclovir.id}
    assert doses(second) == [] and [p.order_id for p in stops(second)] == [valganciclovir.id]
    assert f'proposed on the card "{first.summary}"' in second.detail


def test_no_dose_correction_of_a_draft_the_alternative_card_stops():
    # Foscarnet documented resistant, maribavir already on record: the alternative card stops the foscarnet
    # draft; a renal correction accepted after that would bring it back.
    foscarnet = draft("foscarnet", 6300, 12, id="MedicationRequest/fos")
    on_maribavir = order("maribavir", 400, 12, id="MedicationRequest/mbv", start=day(10))
    resistant = replace(KIDNEY, resistant_drugs=frozenset({"foscarnet"}))
    found = call(make_facts(conds=resistant, viral=DETECTED, meds=(on_maribavir,), drafts=(foscarnet,)))
    assert [p.order_id for p in stops(only(found, "alternative-therapy"))] == [foscarnet.id]
    assert "renal-dose-adjustment" not in topics(found)


def test_on_order_select_an_unselected_valganciclovir_prophylaxis_draft_is_the_one_to_change():
    letermovir = draft("letermovir", 480, 24, id="MedicationRequest/a-ltv")
    valganciclovir = draft("valganciclovir", 900, 24, id="MedicationRequest/b-vgc")
    facts = make_facts(conds=KIDNEY, viral=RISING, drafts=(letermovir, valganciclovir), selected=(letermovir.id,))
    found = evaluate(facts, POLICY, "order-select", (letermovir,))
    assert acceptance_conflicts(found, facts, "order-select") == []
    card = only(found, "prophylaxis-not-treatment")
    assert doses(card) == [] and [p.order_id for p in stops(card)] == [letermovir.id]
    assert "**Treatment:** the draft valganciclovir 900 mg" in card.detail and "changed to the treatment dose" in card.detail


def test_a_foscarnet_draft_below_the_renal_table_is_no_treatment_to_defer_to():
    letermovir = draft("letermovir", 480, 24, id="MedicationRequest/ltv")
    foscarnet = draft("foscarnet", 1000, 24, id="MedicationRequest/fos")
    found = call(make_facts(conds=KIDNEY, viral=RISING, creatinine=6.0, drafts=(letermovir, foscarnet)))
    assert only(found, "nephrotoxicity").indicator == "critical"  # foscarnet not recommended for the kidneys
    assert [p.replaces for p in doses(only(found, "prophylaxis-not-treatment"))] == [letermovir.id]


def test_with_counts_below_the_label_the_antagonism_card_stops_only_the_ganciclovir():
    # Maribavir on record is the alternative the critical card names; stopping it instead would leave nothing.
    on_maribavir = order("maribavir", 400, 12, id="MedicationRequest/mbv", start=day(10))
    ganciclovir = draft("ganciclovir", 350, 12, id="MedicationRequest/gcv")
    found = call(make_facts(conds=KIDNEY, viral=DETECTED, meds=(on_maribavir,), drafts=(ganciclovir,), labs=LOW_ANC))
    interaction = only(found, "drug-interaction")
    assert [p.order_id for p in stops(interaction)] == [ganciclovir.id]
    assert "stop the ganciclovir-family order, not the other" in interaction.detail
    normal = only(call(make_facts(conds=KIDNEY, viral=DETECTED, meds=(on_maribavir,), drafts=(ganciclovir,))),
                  "drug-interaction")
    assert [p.order_id for p in stops(normal)] == [ganciclovir.id, on_maribavir.id]


def test_a_switch_of_a_draft_stops_the_orders_on_record_of_the_drug_it_leaves():
    # A ganciclovir draft beside a valganciclovir course, ganciclovir resistance documented: each switch of the
    # draft discontinues the course (accepted alone, it would leave valganciclovir running beside foscarnet).
    resistant = replace(KIDNEY, resistant_drugs=frozenset({"ganciclovir"}))
    ganciclovir = draft("ganciclovir", 350, 12, id="MedicationRequest/gcv")
    found = call(make_facts(conds=resistant, viral=DETECTED, meds=(COURSE,), drafts=(ganciclovir,)))
    alternative = only(found, "alternative-therapy")
    assert [(p.drug, p.replaces, discontinued(p)) for p in doses(alternative)] == [
        ("foscarnet", ganciclovir.id, (COURSE.id,)), ("maribavir", ganciclovir.id, (COURSE.id,))]
    assert ("**Also on record:** valganciclovir 900 mg every 12 h (oral) [treatment] since 2026-11-01 "
            "(MedicationRequest/valgan): the same drug family, so each switch offered here discontinues it too."
            ) in alternative.detail


def test_a_second_switched_draft_is_removed_with_the_orders_on_record_its_drug_leaves():
    # Two drafts the record argues against, of different drugs: the first is switched, the second removed; the
    # removal stops the foscarnet on record (of the second draft's drug), which the switch does not.
    resistant = replace(KIDNEY, resistant_drugs=frozenset({"ganciclovir", "foscarnet"}))
    foscarnet = order("foscarnet", 4900, 12, id="MedicationRequest/fos", start=day(10))
    ganciclovir = draft("ganciclovir", 350, 12, id="MedicationRequest/gcv")
    renewal = draft("foscarnet", 4900, 12, id="MedicationRequest/fos-renewal")
    found = call(make_facts(conds=resistant, viral=DETECTED, meds=(foscarnet,), drafts=(ganciclovir, renewal)))
    cards = {f.order_id: f for f in found if f.topic == "alternative-therapy"}
    assert {p.drug for p in doses(cards[ganciclovir.id])} == {"maribavir"}
    removal = stops(cards[renewal.id])
    assert [(p.order_id, tuple(s.order_id for s in p.also)) for p in removal] == [(renewal.id, (foscarnet.id,))]


PROPHYLAXIS_ON_RECORD = order("valganciclovir", 900, 24, id="MedicationRequest/vgc-pro", start=day(40))
IV_COURSE = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(25))


def test_the_step_down_stops_a_prophylactic_valganciclovir_left_on_record():
    # Accepted alone, the step-down would leave two valganciclovir orders.
    found = call(make_facts(conds=KIDNEY, viral=DETECTED, meds=(IV_COURSE, PROPHYLAXIS_ON_RECORD)), "patient-view")
    step_down = only(found, "cmv-treatment-regimen")
    assert [(p.drug, discontinued(p)) for p in doses(step_down)] == [
        ("valganciclovir", (IV_COURSE.id, PROPHYLAXIS_ON_RECORD.id))]
    assert "the same drug family, so the step-down offered here discontinues it too." in step_down.detail


def test_a_switch_from_a_course_on_record_stops_the_familys_prophylaxis_too():
    resistant = replace(KIDNEY, resistant_drugs=frozenset({"ganciclovir"}))
    found = call(make_facts(conds=resistant, viral=DETECTED, meds=(IV_COURSE, PROPHYLAXIS_ON_RECORD)), "patient-view")
    alternative = only(found, "alternative-therapy")
    assert {discontinued(p) for p in doses(alternative)} == {(IV_COURSE.id, PROPHYLAXIS_ON_RECORD.id)}


def test_the_hiv_retinitis_maintenance_step_down_stops_the_familys_other_orders():
    # Valganciclovir induction done (a maintenance order that stops it); the IV ganciclovir left on record goes with it.
    found = call(make_facts(conds=HIV_RETINITIS, viral=DETECTED, meds=(COURSE, IV_COURSE)), "patient-view")
    retinitis = only(found, "hiv-retinitis")
    assert [(p.drug, p.replaces, discontinued(p)) for p in doses(retinitis)] == [
        ("valganciclovir", None, (IV_COURSE.id, COURSE.id))]


def test_a_resistance_switch_of_a_cidofovir_draft_sends_the_genotype_and_removes_the_probenecid():
    # The switch carries the genotype (a lab order) as well as the probenecid's removal.
    course = order("cidofovir", 350, 168, id="MedicationRequest/cdv", start=day(26))
    renewal = draft("cidofovir", 350, 168, id="MedicationRequest/cdv-renewal")
    probenecid = draft("probenecid", 2000, None, id="MedicationRequest/prb")
    found = call(make_facts(conds=KIDNEY, viral=REFRACTORY_VL, meds=(course,), drafts=(renewal, probenecid)))
    switches = doses(only(found, "suspected-resistance"))
    assert switches and all(p.replaces == renewal.id for p in switches)
    assert all({type(s).__name__ for s in p.also} == {"StopOrderProposal", "LabOrderProposal"} for p in switches)
    assert all(probenecid.id in [s.order_id for s in p.also if hasattr(s, "order_id")] for p in switches)


def test_the_foscarnet_for_counts_below_the_label_is_at_the_treatment_courses_dose():
    # A prophylactic valganciclovir listed before an IV ganciclovir course: the switch that stops both is the
    # treatment course's, at the induction dose (every 12 h), not the prophylaxis card's maintenance dose.
    found = call(make_facts(conds=KIDNEY, viral=DETECTED, meds=(PROPHYLAXIS_ON_RECORD, IV_COURSE), labs=LOW_ANC),
                 "patient-view")
    cards = {f.order_id: f for f in found if f.topic == "hematologic-toxicity"}
    assert [(p.drug, p.interval_hours, set(discontinued(p))) for p in doses(cards[IV_COURSE.id])] == [
        ("foscarnet", 12, {IV_COURSE.id, PROPHYLAXIS_ON_RECORD.id})]
    assert doses(cards[PROPHYLAXIS_ON_RECORD.id]) == []
