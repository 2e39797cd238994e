"""A grid of order combinations through `evaluate`: no call raises, every finding keeps the card
contract, and every suggestion can be accepted with every other one (reliability/contract.py).

The cross-card rules meet in combinations no hand-written test names: drafts of several anti-CMV
drugs, courses on record, documented resistance or intolerance, CNS disease, HIV retinitis, HSCT,
dialysis, viral loads, blood counts below the label, proteinuria and kidney function (a creatinine
rise during a cidofovir course included).  A fixed sample of their product (the same every run) runs
each applicable hook.  A failure names its combination, to be turned into a test of its own where it
is fixed.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest
from factories import POLICY, assert_sound, conditions, day, doses, draft, make_facts, measurement, order, vl

from reliability.contract import acceptance_conflicts

from cds_service.clinical import evaluate

DRAFTS = {
    "gcv": draft("ganciclovir", 350, 12, id="MedicationRequest/gcv-d"),
    "gcv-copy": draft("ganciclovir", 350, 12, id="MedicationRequest/gcv-d2"),
    "vgc": draft("valganciclovir", 900, 12, id="MedicationRequest/vgc-d"),
    "vgc-prophylaxis": draft("valganciclovir", 900, 24, id="MedicationRequest/vgc-pro-d"),
    "vgc-low": draft("valganciclovir", 450, 24, id="MedicationRequest/vgc-d-low"),
    "fos": draft("foscarnet", 6300, 12, id="MedicationRequest/fos-d"),
    "cdv": draft("cidofovir", 350, 168, id="MedicationRequest/cdv-d"),
    "cdv-q2w": draft("cidofovir", 350, 336, id="MedicationRequest/cdv-d-q2w"),
    "probenecid": draft("probenecid", 2000, 24, id="MedicationRequest/prb-d"),
    "ltv": draft("letermovir", 480, 24, id="MedicationRequest/ltv-d"),
    "mbv": draft("maribavir", 400, 12, id="MedicationRequest/mbv-d"),
}
ON_RECORD = {
    "vgc": order("valganciclovir", 900, 12, id="MedicationRequest/vgc-m", start=day(25)),
    "gcv": order("ganciclovir", 350, 12, id="MedicationRequest/gcv-m", start=day(25)),
    "fos": order("foscarnet", 6300, 12, id="MedicationRequest/fos-m", start=day(10)),
    "fos-long": order("foscarnet", 6300, 12, id="MedicationRequest/fos-m-long", start=day(25)),
    "cdv": order("cidofovir", 350, 168, id="MedicationRequest/cdv-m", start=day(10)),
    "cdv-long": order("cidofovir", 350, 168, id="MedicationRequest/cdv-m-long", start=day(25)),
    "cdv-dose": order("cidofovir", 350, 336, id="MedicationRequest/cdv-m-dose", status="completed", start=day(10),
                      end=day(10)),  # ordered dose by dose: between doses
    "cdv-dose-undated": order("cidofovir", 350, 168, id="MedicationRequest/cdv-m-undated", status="completed",
                              start=day(5), duration_days=1),  # a dose's length, no end date
    "ltv": order("letermovir", 480, 24, id="MedicationRequest/ltv-m", start=day(40)),
    "mbv": order("maribavir", 400, 12, id="MedicationRequest/mbv-m", start=day(10)),
    "vgc-prophylaxis": order("valganciclovir", 900, 24, id="MedicationRequest/vgc-pro-m", start=day(40)),
    "vgc-later": order("valganciclovir", 900, 24, id="MedicationRequest/vgc-m-later", start=day(-5)),  # not begun
    "vgc-day-7": order("valganciclovir", 900, 12, id="MedicationRequest/vgc-m-7", start=day(7)),  # induction under way
    "gcv-stopped": order("ganciclovir", 350, 12, id="MedicationRequest/gcv-m-stop", status="stopped",
                         start=day(25), end=day(3)),
}
KIDNEY = conditions(populations=("sot",), organs=("kidney",), infection=True)
CONDITIONS = {
    "kidney": KIDNEY,
    "gcv-resistant": replace(KIDNEY, resistant_drugs=frozenset({"ganciclovir"})),
    "gcv-fos-resistant": replace(KIDNEY, resistant_drugs=frozenset({"ganciclovir", "foscarnet"})),
    "cdv-resistant": replace(KIDNEY, resistant_drugs=frozenset({"cidofovir"})),
    "mbv-resistant": replace(KIDNEY, resistant_drugs=frozenset({"maribavir"})),
    "gcv-intolerant": replace(KIDNEY, ganciclovir_intolerance=True),
    "cns": conditions(populations=("sot",), organs=("kidney",), sites=("cns",), labels=("CMV encephalitis",)),
    "hiv-retinitis": conditions(populations=("hiv",), sites=("retinitis",), labels=("HIV infection", "CMV retinitis")),
    "hsct": conditions(populations=("hsct",), hsct_date=day(60), infection=True),
    "hsct-to-come": conditions(populations=("hsct",), hsct_date=day(-5), infection=True),  # a date not yet reached
    "dialysis": replace(KIDNEY, renal_replacement="dialysis"),
}
VIRAL_LOADS = {
    "none": (),
    "detected": (vl(3000, 6), vl(2000, 2)),
    "rising": (vl(1200, 16), vl(8400, 9), vl(41000, 2)),
    "refractory": (vl(3000, 26), vl(4100, 19), vl(11800, 12), vl(45000, 2)),
}
# Labs beside the normal panel: blood counts below the label, cidofovir's stop for proteinuria.
LABS = {"normal": {}, "anc-400": {"anc": 400.0}, "platelets-20000": {"platelets": 20000.0},
        "proteinuria-3+": {"urine_protein_dipstick": 3.0}, "urine-protein-500": {"urine_protein": 500.0}}
# Creatinine results (mg/dL, days ago): a clearance for each band, none, and a rise during the cidofovir
# courses on record (0.6 to 1.2 mg/dL: the label's stop, at CrCl 65).
CREATININE = {"crcl-78": ((1.0, 1),), "crcl-35": ((2.2, 1),), "crcl-17": ((4.5, 1),), "no-creatinine": (),
              "crcl-8": ((9.5, 1),), "rise-0.6": ((0.6, 14), (1.2, 1))}

DRAFT_SETS = [(), *((d,) for d in DRAFTS), *itertools.combinations(DRAFTS, 2),
              *(("cdv", "probenecid", d) for d in DRAFTS if d not in ("cdv", "cdv-q2w", "probenecid")),
              ("gcv", "vgc", "ltv"), ("gcv", "fos", "ltv"), ("gcv", "vgc", "fos"),
              ("vgc-low", "vgc"), ("vgc-prophylaxis", "vgc")]  # a maintenance-interval draft listed first
RECORD_SETS = [(), *((m,) for m in ON_RECORD), ("vgc", "gcv"), ("ltv", "vgc"), ("fos", "vgc"), ("gcv", "vgc-prophylaxis"),
               ("gcv", "ltv", "vgc-prophylaxis"), ("vgc", "gcv", "fos"), ("gcv", "cdv"), ("vgc", "cdv"), ("fos", "cdv"),
               ("gcv", "cdv-long"), ("mbv", "vgc"), ("mbv", "vgc-prophylaxis"), ("mbv", "gcv")]
GRID = [combo for combo in itertools.product(DRAFT_SETS, RECORD_SETS, CONDITIONS, VIRAL_LOADS, LABS, CREATININE)
        if combo[0] or combo[1]]
SAMPLE = sorted(random.Random(20261126).sample(range(len(GRID)), 2000))
CHUNKS = 8


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_every_combination_answers_soundly(chunk):
    failures = []
    for i in SAMPLE[chunk::CHUNKS]:
        drafted, on_record, conds, viral, labs, creatinine = GRID[i]
        results = [*(measurement(a, v) for a, v in LABS[labs].items()),
                   *(measurement("creatinine", v, days) for v, days in CREATININE[creatinine])]
        facts = make_facts(conds=CONDITIONS[conds], viral=VIRAL_LOADS[viral], labs=results or None,
                           creatinine=None, meds=tuple(ON_RECORD[m] for m in on_record),
                           drafts=tuple(DRAFTS[d] for d in drafted))
        hooks = ("order-sign", "order-select") if drafted else ("patient-view",)
        for hook in hooks:
            called = replace(facts, selected=frozenset({facts.drafts[0].id})) if hook == "order-select" else facts
            targets = {"order-sign": called.drafts, "order-select": called.drafts[:1]}.get(hook, ())
            found = evaluate(called, POLICY, hook, targets)
            assert_sound(found)
            problems = acceptance_conflicts(found, called, hook)
            if problems:
                failures.append((hook, GRID[i], problems))
    assert failures == []


def test_a_maintenance_draft_listed_first_does_not_start_a_second_course_below_crcl_10():
    # Refractory valganciclovir course at CrCl 8.2, a q24h draft listed before a q12h one: the renal card
    # changes the induction draft to IV ganciclovir and the resistance card acts on that same draft, so no
    # suggestion pair orders both IV ganciclovir and maribavir (found by a long fuzz run).
    facts = make_facts(conds=KIDNEY, viral=VIRAL_LOADS["refractory"], labs=[measurement("creatinine", 9.5, 1)],
                       creatinine=None, meds=(ON_RECORD["vgc"],), drafts=(DRAFTS["vgc-low"], DRAFTS["vgc"]))
    found = evaluate(facts, POLICY, "order-sign", facts.drafts)
    assert_sound(found)
    assert acceptance_conflicts(found, facts, "order-sign") == []


RISING_26_DAYS = (vl(3000, 26), vl(4100, 19), vl(11800, 12), vl(45000, 2))


def test_an_under_dosed_course_that_another_course_s_switch_stops_is_not_corrected():
    # Two valganciclovir orders failing at once (one under-dosed, one on hold): the refractory card's switch to
    # foscarnet stops both, so the under-dosed one's card proposes no correction (accepted after the switch, it
    # would bring valganciclovir back beside foscarnet; found by a randomised check).
    meds = (order("valganciclovir", 450, 12, id="MedicationRequest/m0-valg", start=day(18)),
            order("valganciclovir", 900, 12, id="MedicationRequest/m1-valg", start=day(26), status="on-hold"))
    facts = make_facts(viral=RISING_26_DAYS, meds=meds)
    found = evaluate(facts, POLICY, "patient-view", ())
    assert_sound(found)
    assert acceptance_conflicts(found, facts, "patient-view") == []
    card = next(f for f in found if f.order_id == "MedicationRequest/m0-valg")
    assert card.summary.endswith("under-dosed for the kidneys: the switch on another card stops it") and not doses(card)


def test_a_draft_the_resistance_card_corrects_gets_no_second_dose_from_the_renal_card():
    # The under-dosed course's draft: the resistance card corrects it to the course's treatment dose; the renal
    # card had read its daily interval as maintenance and changed the same draft to another dose.
    facts = make_facts(viral=RISING_26_DAYS, meds=(order("valganciclovir", 450, 12, id="MedicationRequest/m2-valg", start=day(19)),),
                       drafts=(draft("valganciclovir", 450, 24, id="MedicationRequest/d0-valg"),))
    found = evaluate(facts, POLICY, "order-sign", facts.drafts)
    assert_sound(found)
    assert acceptance_conflicts(found, facts, "order-sign") == []
    assert "renal-dose-adjustment" not in [f.topic for f in found]
    [correction] = doses(next(f for f in found if f.topic == "suspected-resistance"))
    assert (correction.replaces, correction.dose_mg, correction.interval_hours) == ("MedicationRequest/d0-valg", 900, 12)
    # A draft above the correction keeps its renal card, which says it is too high, without a second change of it.
    high = replace(facts, drafts=(draft("valganciclovir", 1800, 12, id="MedicationRequest/d0-valg"),))
    found = evaluate(high, POLICY, "order-sign", high.drafts)
    assert acceptance_conflicts(found, high, "order-sign") == []
    renal = next(f for f in found if f.topic == "renal-dose-adjustment")
    assert "too high" in renal.summary and not doses(renal) and "proposed on the suspected-resistance card" in renal.detail
    # An IV push above the correction: its route card keeps saying not to give it so, without a second change.
    course = order("ganciclovir", 175, 12, id="MedicationRequest/m2-gcv", start=day(19), route="iv")
    push = replace(draft("ganciclovir", 1050, 24, id="MedicationRequest/d0-gcv", route="iv"), bolus_text="IV push")
    facts = make_facts(viral=RISING_26_DAYS, meds=(course,), drafts=(push,))
    found = evaluate(facts, POLICY, "order-sign", facts.drafts)
    assert acceptance_conflicts(found, facts, "order-sign") == []
    route = next(f for f in found if f.topic == "administration-route")
    assert route.indicator == "critical" and not doses(route)


def test_prophylaxis_drafts_the_prophylaxis_card_settles_get_no_duplicate_card_undoing_it():
    # Two prevention-dose drafts for CMV disease: one becomes the treatment, the other goes; a duplicate card
    # removing the one changed into the treatment would undo it (found by a randomised check).
    facts = make_facts(conds=conditions(sites=("retinitis", "gi"), infection=True),
                       meds=(order("ganciclovir", 175, 24, id="MedicationRequest/m0-ganc", start=day(21)),),
                       drafts=(draft("ganciclovir", 175, 24, id="MedicationRequest/d0-ganc"),
                               draft("valganciclovir", 450, 24, id="MedicationRequest/d1-valg")))
    found = evaluate(facts, POLICY, "order-sign", facts.drafts)
    assert_sound(found)
    assert acceptance_conflicts(found, facts, "order-sign") == []
    assert [f.topic for f in found] == ["prophylaxis-not-treatment", "prophylaxis-not-treatment"]


def test_an_under_dosed_valganciclovir_course_beside_maribavir_is_not_corrected():
    # Not given together (antagonism): the interaction card offers to stop one; a correction would keep both.
    meds = (order("valganciclovir", 450, 12, id="MedicationRequest/m0-valg", start=day(18), status="on-hold"),
            order("maribavir", 400, 12, id="MedicationRequest/m1-mari", start=day(18)))
    facts = make_facts(crcl=90, crcl_per_kg=0.3, viral=(vl(1200, 16), vl(8400, 9), vl(41000, 2)), meds=meds)
    found = evaluate(facts, POLICY, "patient-view", ())
    assert_sound(found)
    assert acceptance_conflicts(found, facts, "patient-view") == []
    card = next(f for f in found if f.topic == "suspected-resistance" and f.order_id == "MedicationRequest/m0-valg")
    assert card.summary.endswith("maribavir is ordered beside it") and not doses(card)
    # A maribavir order past its end date is not being given: the correction stands.
    ended = replace(facts, medications=(meds[0], replace(meds[1], end=day(20))))
    found = evaluate(ended, POLICY, "patient-view", ())
    card = next(f for f in found if f.topic == "suspected-resistance" and f.order_id == "MedicationRequest/m0-valg")
    assert [(p.dose_mg, p.interval_hours) for p in doses(card)] == [(900, 12)]


@pytest.mark.parametrize("failing", [
    order("cidofovir", 350, 168, id="MedicationRequest/m2-cido", start=day(25)),
    order("maribavir", 400, 12, id="MedicationRequest/m2-mari", start=day(25)),
])
def test_an_under_dosed_course_beside_another_course_s_switch_is_stopped_not_corrected(failing):
    # Another course fails and its card switches to foscarnet, which does not stop this under-dosed
    # valganciclovir course: corrected upward, it would be given beside foscarnet (one course, not two).
    meds = (order("valganciclovir", 450, 12, id="MedicationRequest/m1-valg", start=day(30)), failing)
    facts = make_facts(crcl=80, viral=RISING_26_DAYS, meds=meds)
    found = evaluate(facts, POLICY, "patient-view", ())
    assert_sound(found)
    assert acceptance_conflicts(found, facts, "patient-view") == []
    switch = next(f for f in found if f.order_id == failing.id and f.topic == "suspected-resistance")
    assert [p.drug for p in doses(switch)] == ["foscarnet"]
    card = next(f for f in found if f.order_id == "MedicationRequest/m1-valg" and f.topic == "suspected-resistance")
    assert card.summary.endswith("under-dosed for the kidneys: stop the valganciclovir order") and not doses(card)
    assert [(type(p).__name__, p.order_id) for p in card.proposals] == [("StopOrderProposal", "MedicationRequest/m1-valg")]
    assert not any(doses(f) for f in found if f.order_id == "MedicationRequest/m1-valg")


def test_a_test_several_cards_order_is_ordered_once():
    # Two drafts with no creatinine on record: each missing-data card asks for it, one orders it.
    facts = make_facts(creatinine=None, drafts=(draft("ganciclovir", 350, 12, id="MedicationRequest/d1"),
                                                draft("valganciclovir", 900, 12, id="MedicationRequest/d2")))
    found = evaluate(facts, POLICY, "order-sign", facts.drafts)
    first, second = [f for f in found if f.topic == "missing-data"]
    assert [p.test for p in first.proposals] == ["creatinine"] and not second.proposals
    assert f'proposed on the card "{first.summary}"' in second.detail
    # Two failing courses' cards each send the genotype: the one that recommends it keeps it.
    meds = (order("cidofovir", 350, 168, id="MedicationRequest/m0-cido", start=day(22)),
            order("foscarnet", 6300, 12, id="MedicationRequest/m2-fosc", start=day(18)))
    facts = make_facts(viral=RISING_26_DAYS, meds=meds)
    found = evaluate(facts, POLICY, "patient-view", ())
    assert acceptance_conflicts(found, facts, "patient-view") == []
    genotypes = [(f.order_id, p.recommended) for f in found for p in f.proposals
                 if getattr(p, "test", None) == "cmv-genotype"]
    assert genotypes == [("MedicationRequest/m2-fosc", True)]
    stop = next(f for f in found if f.order_id == "MedicationRequest/m0-cido")
    assert [p.order_id for p in stop.proposals] == ["MedicationRequest/m0-cido"] and "genotype" in stop.detail


@pytest.mark.parametrize("drug, dose, hours, said", [
    ("valganciclovir", 900, 12, True), ("maribavir", 400, 12, False), ("foscarnet", 6300, 12, False)])
def test_the_brief_s_ganciclovir_resistance_line_is_only_on_a_ganciclovir_family_course(drug, dose, hours, said):
    meds = (order(drug, dose, hours, id="MedicationRequest/course", start=day(25)),)
    facts = make_facts(crcl=90, viral=RISING_26_DAYS, meds=meds)
    card = next(f for f in evaluate(facts, POLICY, "patient-view", ()) if f.topic == "suspected-resistance")
    assert ("Ganciclovir resistance develops with extended use" in card.detail) is said
