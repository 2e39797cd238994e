"""Across the cards of one call: every suggestion can be accepted with every other one
(reliability/contract.py: acceptance_conflicts, also checked on every fixture request and fuzzed one).

A clinician (or an EHR that applies suggestions one by one) may accept a suggestion from each card.
So no two cards replace the same order, no two cards start foscarnet in place of ganciclovir-family
orders, and no card removes a draft another card changes into another drug (removed after the change,
the new order would go)."""

from __future__ import annotations

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
COURSE = order("valganciclovir", 900, 12, id="MedicationRequest/valgan", start=day(25))
RENEWAL = draft("valganciclovir", 900, 12, id="MedicationRequest/renewal")
LOW_ANC = {"anc": 400.0}


def call(facts, hook: str = "order-sign") -> list[Finding]:
    found = evaluate(facts, POLICY, hook, facts.drafts if hook != "patient-view" else ())
    assert acceptance_conflicts(found, facts) == []
    return found


def test_a_renewal_the_counts_rule_out_is_changed_by_the_resistance_card_alone():
    found = call(make_facts(conds=KIDNEY, viral=REFRACTORY_VL, meds=(COURSE,), drafts=(RENEWAL,), labs=LOW_ANC))
    resistance = only(found, "suspected-resistance")
    assert [(p.drug, p.replaces, discontinued(p)) for p in doses(resistance)] == [
        ("foscarnet", RENEWAL.id, (COURSE.id,)), ("maribavir", RENEWAL.id, (COURSE.id,))]
    counts = only(found, "hematologic-toxicity")
    # Still critical, but it neither removes the draft nor changes it to foscarnet a second time.
    assert counts.indicator == "critical" and counts.order_id == RENEWAL.id and counts.proposals == ()
    assert f'proposed on the card "{resistance.summary}", which changes this draft' in counts.detail
    assert "If none of its changes is accepted, remove the draft." in counts.detail
    # Both valganciclovir orders are to stop: no duplicate between them to resolve.
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
    assert [p.drug for p in doses(first)] == ["foscarnet"] and discontinued(doses(first)[0]) == (ganciclovir.id,)
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
    # A letermovir prophylaxis draft while CMV needs treatment: the prophylaxis-not-treatment card turns it
    # into foscarnet (the counts rule ganciclovir out); the ganciclovir draft's card does not start another.
    letermovir = draft("letermovir", 480, 24, id="MedicationRequest/ltv")
    ganciclovir = draft("ganciclovir", 350, 12, id="MedicationRequest/gcv")
    rising = (vl(1200, 16), vl(8400, 9), vl(41000, 2))
    found = call(make_facts(conds=KIDNEY, viral=rising, drafts=(letermovir, ganciclovir), labs=LOW_ANC))
    [start] = doses(only(found, "prophylaxis-not-treatment"))
    assert start.drug == "foscarnet"
    counts = only(found, "hematologic-toxicity")
    assert doses(counts) == [] and [p.order_id for p in stops(counts)] == [ganciclovir.id]


def test_no_advice_continues_a_ganciclovir_draft_the_counts_rule_out():
    ganciclovir = draft("ganciclovir", 350, 12, route="iv", id="MedicationRequest/gcv")
    cns = call(make_facts(conds=CNS, viral=DETECTED, drafts=(ganciclovir,), labs=LOW_ANC))
    assert "cns-disease-combination" not in topics(cns)  # "add foscarnet to the ganciclovir"
    assert [p.drug for p in doses(only(cns, "hematologic-toxicity"))] == ["foscarnet"]
    assert "cns-disease-combination" in topics(call(make_facts(conds=CNS, viral=DETECTED, drafts=(ganciclovir,))))

    valganciclovir = draft("valganciclovir", 900, 12, id="MedicationRequest/vgc")
    retinitis = call(make_facts(conds=HIV_RETINITIS, viral=DETECTED, drafts=(valganciclovir,), labs=LOW_ANC))
    assert "hiv-retinitis" not in topics(retinitis)  # "valganciclovir 900 mg twice daily for 21 days"
    assert "hiv-retinitis" in topics(call(make_facts(conds=HIV_RETINITIS, viral=DETECTED, drafts=(valganciclovir,))))


def test_copies_of_a_draft_give_one_interaction_card():
    # Two identical valganciclovir drafts are checked once; mycophenolate drafted with them is one pair.
    first = draft("valganciclovir", 900, 12, id="MedicationRequest/a")
    copy = draft("valganciclovir", 900, 12, id="MedicationRequest/b")
    mycophenolate = draft("mycophenolate mofetil", 1000, 12, id="MedicationRequest/mmf")
    found = call(make_facts(conds=KIDNEY, viral=DETECTED, drafts=(first, copy, mycophenolate)))
    [interaction] = [f for f in found if f.topic == "drug-interaction"]
    assert interaction.order_id == first.id and "mycophenolate" in interaction.summary
    assert [p.order_id for p in stops(only(found, "duplicate-therapy"))] == [first.id, copy.id]
