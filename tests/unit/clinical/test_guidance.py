"""Treatment guidance over hand-built facts: each topic fires when its condition holds, stays quiet
when it does not, and every dose it proposes is renal_dose()'s."""

from __future__ import annotations

from datetime import date

from dataclasses import replace

import pytest
from reliability.contract import acceptance_conflicts
from factories import (
    PROBENECID,
    POLICY,
    assert_sound,
    conditions,
    day,
    doses,
    draft,
    make_facts,
    measurement,
    not_detected,
    only,
    order,
    pp65,
    stops,
    topics,
    vl,
)

from cds_service.clinical.findings import ConsultProposal, DoseProposal, LabOrderProposal, discontinued
from cds_service.clinical import check_orders, evaluate
from cds_service.clinical.guidance import guidance
from cds_service.clinical.renal_dosing import RenalDose, renal_dose
from cds_service.facts.model import ConditionEvidence, ConditionFacts, DataQualityIssue, Measurement, MedicationOrder
from cds_service.policy import Policy

TACROLIMUS = order("tacrolimus", 4, 12, start=day(700))
MYCOPHENOLATE = order("mycophenolate mofetil", 1000, 12, classes=("immunosuppressant", "marrow-toxic"), start=day(700))
PREDNISONE = order("prednisone", 5, 24, start=day(700))
BIKTARVY = order("bictegravir/emtricitabine/tenofovir", None, 24, classes=("antiretroviral",), drug_text="Biktarvy")
LETERMOVIR = order("letermovir", 480, 24, start=day(20))


def dose(drug: str, phase: str, facts, regimen: str | None = None) -> RenalDose:
    result = renal_dose(drug, phase, facts, POLICY, regimen)
    assert isinstance(result, RenalDose) and result.dose_mg is not None, result
    return result


def assert_dose_is(proposal: DoseProposal, expected: RenalDose) -> None:
    """A proposed dose is renal_dose()'s: same drug, mg, interval, route and schedule."""
    assert (proposal.drug, proposal.dose_mg, proposal.interval_hours, proposal.route, proposal.schedule) == (
        expected.drug,
        expected.dose_mg,
        expected.interval_hours,
        expected.route,
        expected.schedule,
    )


KIDNEY_COLITIS = conditions(
    populations=("sot",), organs=("kidney",), sites=("gi",), labels=("Kidney transplant", "CMV colitis")
)
RISING = (vl(1200, 16), vl(8400, 9), vl(41000, 2))
VALGAN_TREATMENT = dict(id="MedicationRequest/valgan", start=day(25))


def patient_view(facts, policy=POLICY):
    found = guidance(facts, policy, "patient-view", ())
    assert_sound(found)
    return found


def order_sign(facts, policy=POLICY):
    found = guidance(facts, policy, "order-sign", facts.drafts)
    assert_sound(found)
    return found


# ---------------------------------------------------------------------------------------------
# Relevance


def test_patient_without_cmv_gets_nothing():
    facts = make_facts(conds=conditions(populations=("sot",), organs=("kidney",)), meds=(TACROLIMUS, MYCOPHENOLATE))
    assert patient_view(facts) == []


def test_non_cmv_draft_in_patient_without_cmv_gets_nothing():
    facts = make_facts(drafts=(draft("amoxicillin", 500, 8, classes=("x",)),))
    assert order_sign(facts) == []


def test_status_card_only_on_patient_view():
    facts = make_facts(conds=KIDNEY_COLITIS, viral=RISING, drafts=(draft("valganciclovir", 900, 12, duration_days=21),))
    assert "cmv-status" in topics(patient_view(facts))
    assert "cmv-status" not in topics(order_sign(facts))


# ---------------------------------------------------------------------------------------------
# cmv-treatment-regimen


def test_regimen_for_disease_without_treatment_proposes_renal_ganciclovir_and_actions():
    facts = make_facts(conds=KIDNEY_COLITIS, viral=RISING, crcl=55.0)
    card = only(patient_view(facts), "cmv-treatment-regimen")
    assert card.indicator == "warning" and card.selection == "any"
    [ganciclovir] = doses(card)
    assert_dose_is(ganciclovir, dose("ganciclovir", "induction", facts))
    assert ganciclovir.recommended and ganciclovir.dose_mg == 175  # 2.5 mg/kg x 70 kg (CrCl 50-69)
    assert any(isinstance(p, ConsultProposal) and p.specialty == "infectious-disease" for p in card.proposals)
    tests = {(p.test, p.recurrence) for p in card.proposals if isinstance(p, LabOrderProposal)}
    assert tests == {("cmv-pcr", "weekly"), ("cbc", "weekly")}
    # the oral step-down is computed through renal_dose too, and shown
    step_down = dose("valganciclovir", "induction", facts)
    assert f"{step_down.dose_mg:g} mg" in card.detail and "with food" in card.detail
    assert "83.9%" in card.detail and "sot-valganciclovir-2008" in {c.key for c in card.sources}


def test_a_regimen_started_again_names_the_course_that_ended():
    # IV ganciclovir then valganciclovir, stopped on day 11 with CMV still detectable: treatment again, and the
    # card says what came before it.
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(10), end=day(7), status="completed")
    oral = order("valganciclovir", 900, 12, id="MedicationRequest/vgc", start=day(6), end=day(0), status="stopped")
    card = only(patient_view(make_facts(conds=KIDNEY_COLITIS, viral=(vl(12000, 11), vl(900, 2)), meds=(iv, oral))),
                "cmv-treatment-regimen")
    assert (f"**Last treatment course:** valganciclovir 900 mg every 12 h (oral) [treatment] since {day(10).isoformat()} "
            f"(MedicationRequest/vgc), stopped, ended {day(0).isoformat()}, 11 days.") in card.detail
    # Stopped before its planned end: it ended by today, not on the planned date.
    early = replace(oral, end=day(-10))
    card = only(patient_view(make_facts(conds=KIDNEY_COLITIS, viral=(vl(12000, 11), vl(900, 2)), meds=(iv, early))),
                "cmv-treatment-regimen")
    assert f"stopped, ended {day(0).isoformat()}, 11 days." in card.detail
    # None before: nothing to name.
    card = only(patient_view(make_facts(conds=KIDNEY_COLITIS, viral=(vl(12000, 11), vl(900, 2)))), "cmv-treatment-regimen")
    assert "Last treatment course" not in card.detail


def test_regimen_below_crcl_10_names_no_valganciclovir_step_down():
    # Valganciclovir tablets are not recommended below CrCl 10: the summary says IV ganciclovir only (and, for
    # the longest indication and dialysis dose, stays under CDS Hooks' 140 characters); the detail says why.
    cns = conditions(populations=("sot",), organs=("kidney",), sites=("cns",), labels=("CMV encephalitis",))
    for conds in (KIDNEY_COLITIS, cns):
        card = only(patient_view(make_facts(creatinine=9.5, conds=conds, viral=RISING)), "cmv-treatment-regimen")
        assert "start IV ganciclovir 90 mg 3 times weekly after dialysis (1.25 mg/kg)" in card.summary
        assert "then valganciclovir" not in card.summary and len(card.summary) < 140
        assert "oral valganciclovir, not recommended** for CrCl < 10" in card.detail
    card = only(patient_view(make_facts(creatinine=1.0, conds=cns, viral=RISING)), "cmv-treatment-regimen")
    assert card.summary.endswith(", then valganciclovir")


def _solution(mg: float) -> MedicationOrder:
    """Valganciclovir oral solution, mg 3 times weekly (after dialysis)."""
    return replace(draft("valganciclovir", mg, 56, id="MedicationRequest/vgc-solution"), dose_form="solution",
                   drug_text="valganciclovir 50 MG/ML Oral Solution")


def test_a_valganciclovir_solution_draft_changed_into_the_treatment_stays_in_mg():
    # The prophylaxis-not-treatment card changes a solution draft into the treatment dose: in mg, no tablet count
    # or tablet instruction (as the renal card does).
    facts = make_facts(conds=HIV_RETINITIS, viral=(vl(3000, 16), vl(20000, 9), vl(90000, 2)), crcl=80,
                       drafts=(replace(_solution(900), interval_hours=24),))
    (change,) = doses(only(order_sign(facts), "prophylaxis-not-treatment"))
    assert (change.drug, change.unit_count, change.note) == ("valganciclovir", None, "take with food")
    assert "tablet" not in change.label


def test_the_guideline_s_oral_solution_on_dialysis_is_read_as_its_regimen_not_as_tablets():
    # Kotton 2025 on hemodialysis: 200 mg 3 times weekly after dialysis is induction (treatment): no card calls it
    # tablets the label does not recommend, or prophylaxis; 100 mg is its maintenance, said as such.
    colitis = replace(conditions(sites=("gi",), labels=("CMV colitis",)), renal_replacement="dialysis")
    facts = make_facts(conds=colitis, viral=RISING, crcl=6, crcl_per_kg=0.09, drafts=(_solution(200),))
    found = evaluate(facts, POLICY, "order-sign", facts.drafts)
    assert not {"renal-dose-adjustment", "prophylaxis-not-treatment"} & set(topics(found))
    maintenance = replace(facts, drafts=(_solution(100),))
    card = only(order_sign(maintenance), "prophylaxis-not-treatment")
    assert "tablets" not in card.summary and "guideline's maintenance dose on hemodialysis" in card.detail
    assert "kotton-2025" in {c.key for c in card.sources}
    # Tablets at that dose: read by the label's table as before.
    tablets = replace(facts, drafts=(draft("valganciclovir", 200, 56, id="MedicationRequest/vgc-solution"),))
    assert "tablets not recommended" in " ".join(f.summary for f in order_sign(tablets)).lower()
    # Off dialysis at CrCl < 10, the oral solution is not recommended either (the guideline doses it on hemodialysis).
    off = make_facts(conds=conditions(sites=("gi",), labels=("CMV colitis",)), viral=RISING, crcl=8, crcl_per_kg=0.11,
                     drafts=(replace(_solution(450), interval_hours=24),))
    card = only(order_sign(off), "prophylaxis-not-treatment")
    assert card.summary.startswith("Valganciclovir oral solution not recommended at CrCl")
    assert "nor this oral solution, which the guideline doses on hemodialysis only" in card.detail
    # The solution at another dose: off the guideline's dose, not "tablets".
    for other in (replace(_solution(200), interval_hours=24), replace(_solution(900), interval_hours=12)):
        drafted = replace(facts, drafts=(other,))
        summaries = " ".join(f.summary for f in evaluate(drafted, POLICY, "order-sign", drafted.drafts))
        assert "oral solution off the guideline's dose on dialysis" in summaries and "tablets" not in summaries


def test_regimen_on_dialysis_gives_the_renal_cards_oral_solution_alternative_on_its_step_down_line():
    # On hemodialysis the label recommends no valganciclovir tablets; the guideline's oral solution (Kotton 2025:
    # 200 mg 3 times weekly induction, 100 mg maintenance, after dialysis) is on the step-down line, in the
    # renal card's words, and cited - for a patient without a transplant too, as on the renal card.
    colitis = replace(conditions(sites=("gi",), labels=("CMV colitis",)), renal_replacement="dialysis")
    facts = make_facts(conds=colitis, viral=RISING, crcl=6, crcl_per_kg=0.09)
    card = only(patient_view(facts), "cmv-treatment-regimen")
    alternative = ("Guideline alternative on hemodialysis (Kotton 2025): valganciclovir oral solution 200 mg 3 times "
                   "weekly (induction) or 100 mg 3 times weekly (maintenance), after dialysis.")
    [step_down] = [b for b in card.detail.split("\n\n") if b.startswith("**Step-down after clinical improvement")]
    assert step_down == ("**Step-down after clinical improvement: oral valganciclovir, not recommended** for CrCl < 10 "
                         "mL/min or hemodialysis: tablets not recommended at CrCl < 10 mL/min or on hemodialysis: use IV "
                         f"ganciclovir per its table. {alternative}")
    assert "kotton-2025" in {c.key for c in card.sources}
    vgc = draft("valganciclovir", 900, 12, id="MedicationRequest/vgc")
    renal = only(check_orders(replace(facts, drafts=(vgc,)), POLICY, (vgc,)), "renal-dose-adjustment")
    assert alternative in renal.detail.split("\n")  # the same words on both cards
    # With usable tablets there is no alternative to give, nor the guideline to cite (no transplant).
    card = only(patient_view(make_facts(conds=conditions(sites=("gi",), labels=("CMV colitis",)), viral=RISING)),
                "cmv-treatment-regimen")
    assert "oral solution" not in card.detail and "kotton-2025" not in {c.key for c in card.sources}


def test_a_mutation_named_for_another_drug_leaves_ganciclovir_proposed_not_recommended_with_a_caveat():
    conds = replace(KIDNEY_COLITIS, resistance_genes=frozenset({"UL54"}), attributed_genes=frozenset({"UL54"}),
                    resistant_drugs=frozenset({"foscarnet"}))  # "foscarnet-resistant CMV (UL54 ...)"
    card = only(patient_view(make_facts(conds=conds, viral=RISING, crcl=55.0)), "cmv-treatment-regimen")
    [ganciclovir] = doses(card)
    assert ganciclovir.drug == "ganciclovir" and not ganciclovir.recommended
    assert "UL54 mutations can also confer ganciclovir resistance (resistance definitions)" in card.detail
    assert "resistance-definitions" in {c.key for c in card.sources}


def test_no_regimen_when_treatment_is_active():
    facts = make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))
    assert "cmv-treatment-regimen" not in topics(patient_view(facts))


def test_no_regimen_card_on_order_hooks_a_draft_is_the_treatment_being_started():
    facts = make_facts(conds=KIDNEY_COLITIS, viral=RISING, drafts=(draft("ganciclovir", 350, 12, route="iv"),))
    assert "cmv-treatment-regimen" not in topics(order_sign(facts))


@pytest.mark.parametrize(
    "prophylaxis",
    [LETERMOVIR, order("valganciclovir", 900, 24, id="MedicationRequest/vgc-ppx", start=day(60))],
    ids=["letermovir", "valganciclovir-900-daily"],
)
def test_prophylaxis_is_not_treatment_and_the_regimen_says_so(prophylaxis):
    facts = make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(prophylaxis,))
    card = only(patient_view(facts), "cmv-treatment-regimen")
    assert "Prophylaxis is not treatment" in card.detail and prophylaxis.id in card.detail


def test_maintenance_dose_after_an_induction_course_counts_as_treatment():
    induction = order("valganciclovir", 900, 12, id="MedicationRequest/ind", start=day(30), end=day(9), status="completed")
    maintenance = order("valganciclovir", 900, 24, id="MedicationRequest/maint", start=day(9))
    facts = make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(induction, maintenance))
    # No new course is started beside it (the viraemia card below re-doses this one instead).
    assert not [f for f in patient_view(facts) if "no anti-CMV treatment" in f.summary]


MAINTENANCE_AFTER_COURSE = (
    order("valganciclovir", 900, 12, id="MedicationRequest/ind", start=day(40), end=day(19), status="completed"),
    order("valganciclovir", 900, 24, id="MedicationRequest/maint", start=day(18)),
)


def test_viraemia_on_maintenance_after_transplant_orders_the_treatment_dose_and_stops_the_maintenance():
    # Viraemia alone (kidney recipient, no end-organ disease): the maintenance drug's treatment dose.
    kidney = conditions(populations=("sot",), organs=("kidney",), infection=True)
    facts = make_facts(conds=kidney, viral=RISING, meds=MAINTENANCE_AFTER_COURSE)
    found = patient_view(facts)
    card = only(found, "cmv-treatment-regimen")
    assert card.indicator == "warning"
    assert card.summary == ("CMV viraemia at treatment level on valganciclovir maintenance: change to oral valganciclovir "
                            "900 mg (2 x 450 mg tablets) twice daily")
    [treatment] = doses(card)
    assert_dose_is(treatment, dose("valganciclovir", "induction", facts))
    assert treatment.replaces is None and discontinued(treatment) == ("MedicationRequest/maint",)
    assert not acceptance_conflicts(found, facts, "patient-view")
    # CMV disease: IV ganciclovir first (the brief); an IV maintenance order and a prophylactic dose on record are
    # stopped by the same suggestion.
    iv = order("ganciclovir", 350, 24, route="iv", id="MedicationRequest/gcv-maint", start=day(10))
    prophylaxis = order("valganciclovir", 900, 24, id="MedicationRequest/prophy", start=day(60))
    both = make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(*MAINTENANCE_AFTER_COURSE, iv, prophylaxis))
    found = patient_view(both)
    [treatment] = doses(only(found, "cmv-treatment-regimen"))
    assert_dose_is(treatment, dose("ganciclovir", "induction", both))
    assert set(discontinued(treatment)) == {"MedicationRequest/maint", iv.id, prophylaxis.id}
    assert not acceptance_conflicts(found, both, "patient-view")
    # Letermovir prophylaxis beside it stops too, as when a treatment is started.
    letermovir = make_facts(conds=kidney, viral=RISING, meds=(*MAINTENANCE_AFTER_COURSE, LETERMOVIR))
    [treatment] = doses(only(patient_view(letermovir), "cmv-treatment-regimen"))
    assert set(discontinued(treatment)) == {"MedicationRequest/maint", LETERMOVIR.id}


def test_viraemia_on_maintenance_by_pp65_alone_and_cns_disease():
    # A positive pp65 is the trigger (HSCT), no PCR to say it is controlled: the treatment dose.
    hsct = conditions(populations=("hsct",), hsct_date=day(200), infection=True)
    facts = make_facts(conds=hsct, viral=(), pp65s=(pp65(True, 2),), meds=MAINTENANCE_AFTER_COURSE)
    assert [p.drug for p in doses(only(patient_view(facts), "cmv-treatment-regimen"))] == ["valganciclovir"]
    # CNS disease: foscarnet is added to the IV ganciclovir this card orders, not to the maintenance it stops.
    cns = conditions(populations=("sot",), organs=("kidney",), sites=("cns",), labels=("CMV encephalitis",))
    found = patient_view(make_facts(conds=cns, viral=RISING, meds=MAINTENANCE_AFTER_COURSE))
    assert [p.drug for p in doses(only(found, "cmv-treatment-regimen"))] == ["ganciclovir"]
    combination = only(found, "cns-disease-combination")
    assert "**Ganciclovir:** IV ganciclovir as proposed" in combination.detail and "900 mg every 24 h" not in combination.detail
    # An older fall in IU/mL does not outweigh a newer rise in copies/mL.
    kidney = conditions(populations=("sot",), organs=("kidney",), infection=True)
    mixed = (vl(5000, 20), vl(2000, 16), vl(10000, 9, scale="copies/mL"), vl(50000, 2, scale="copies/mL"))
    assert [f.key for f in patient_view(make_facts(conds=kidney, viral=mixed, meds=MAINTENANCE_AFTER_COURSE))
            if f.key == "cmv-treatment-regimen|maintenance"]


@pytest.mark.parametrize("case", ["falling", "below-quantification", "other-scale", "hiv", "overdose", "low-counts", "controlled"])
def test_no_maintenance_breakthrough_card(case):
    meds, conds, viral, labs, creatinine = MAINTENANCE_AFTER_COURSE, KIDNEY_COLITIS, RISING, None, 1.0
    if case == "falling":
        viral = (vl(40000, 9), vl(8000, 2))
    elif case == "below-quantification":  # risen, then below the assay's limit: not a rise to treat
        viral = (vl(5000, 9), vl(20000, 5), replace(vl(None, 1, below_lloq=True), reported="<137 IU/mL", limit=137, comparator="<"))
    elif case == "other-scale":  # falling in IU/mL; the newest in copies/mL cannot be compared with them
        viral = (vl(40000, 9), vl(8000, 5), vl(20000, 2, scale="copies/mL"))
    elif case == "hiv":  # no transplant: the pre-emptive trigger is the transplant's; the eye judges a relapse
        conds, meds = HIV_RETINITIS, (*MAINTENANCE_AFTER_COURSE, BIKTARVY)
    elif case == "overdose":  # 900 mg daily at CrCl 31 is off its band: the renal card corrects it first
        creatinine = 2.5
    elif case == "low-counts":
        labs = {"anc": 400.0}
    else:
        viral = (not_detected(3),)
    found = patient_view(make_facts(conds=conds, viral=viral, meds=meds, labs=labs, creatinine=creatinine))
    assert not [f for f in found if f.key == "cmv-treatment-regimen|maintenance"]
    if case == "overdose":
        assert "renal-dose-adjustment" in topics(found)


def test_cytopenia_switches_the_regimen_to_renal_foscarnet():
    facts = make_facts(conds=KIDNEY_COLITIS, viral=RISING, labs={"anc": 420.0})
    card = only(patient_view(facts), "cmv-treatment-regimen")
    [foscarnet] = doses(card)
    assert_dose_is(foscarnet, dose("foscarnet", "induction", facts, "90q12h"))
    assert "ANC 420" in card.detail and "nephrotoxicity" in card.detail
    assert not any(p.drug in ("ganciclovir", "valganciclovir") for p in doses(card))


def test_documented_resistance_without_treatment_proposes_foscarnet():
    conds = replace(KIDNEY_COLITIS, resistant_drugs=frozenset({"ganciclovir"}))
    card = only(patient_view(make_facts(conds=conds, viral=RISING)), "cmv-treatment-regimen")
    assert [p.drug for p in doses(card)] == ["foscarnet"]
    assert "documented ganciclovir resistance" in card.detail


def test_documented_resistance_regimen_gives_the_brief_s_alternative_and_the_electrolytes_to_correct():
    conds = replace(KIDNEY_COLITIS, resistant_drugs=frozenset({"ganciclovir"}))
    card = only(patient_view(make_facts(conds=conds, viral=RISING, labs={"potassium": 3.1})), "cmv-treatment-regimen")
    assert "**Regimen (clinical brief):** ganciclovir not tolerated, or resistance: foscarnet for 2-3 weeks" in card.detail
    assert "IV ganciclovir 5 mg/kg every 12 h for the first 3-5 days" not in card.detail
    assert "**Electrolytes before foscarnet (label):**\n- **Low:** potassium 3.1 mmol/L" in card.detail
    # Normal electrolytes (and the ganciclovir plan): nothing to say about them.
    card = only(patient_view(make_facts(conds=conds, viral=RISING)), "cmv-treatment-regimen")
    assert "Electrolytes before foscarnet" not in card.detail


def test_regimen_card_mentions_maribavir_for_documented_resistance_not_intolerance():
    intolerant = replace(KIDNEY_COLITIS, ganciclovir_intolerance=True)
    card = only(patient_view(make_facts(conds=intolerant, viral=RISING)), "cmv-treatment-regimen")
    assert "maribavir" not in card.detail.lower()
    resistant = replace(KIDNEY_COLITIS, resistant_drugs=frozenset({"ganciclovir"}))
    card = only(patient_view(make_facts(conds=resistant, viral=RISING, meds=(TACROLIMUS,))), "cmv-treatment-regimen")
    assert "**Maribavir 400 mg" in card.detail and "maribavir-label" in {s.key for s in card.sources}
    assert "It raises tacrolimus levels (label): monitor them when it starts." in card.detail


def test_regimen_proposes_no_foscarnet_documented_resistant():
    conds = replace(KIDNEY_COLITIS, resistant_drugs=frozenset({"ganciclovir", "foscarnet"}))
    card = only(patient_view(make_facts(conds=conds, viral=RISING)), "cmv-treatment-regimen")
    assert doses(card) == []
    assert "Foscarnet: not proposed" in card.detail and "start IV foscarnet" not in card.summary
    assert "start a regimen chosen with ID (foscarnet resistant, not ganciclovir)" in card.summary
    assert_sound([card])
    # The longest indication words with the longest of these plans still fit in a summary.
    viraemia = replace(conditions(populations=("sot",), organs=("kidney",), infection=True),
                       resistant_drugs=frozenset({"ganciclovir", "foscarnet"}))
    card = only(patient_view(make_facts(conds=viraemia, viral=RISING, meds=(order("letermovir", 480, 24, start=day(40)),))),
                "cmv-treatment-regimen")
    assert card.summary.startswith("CMV viraemia needing pre-emptive therapy, no anti-CMV treatment: start a regimen")
    assert_sound([card])


def test_no_dose_when_renal_dose_cannot_be_computed():
    facts = make_facts(conds=KIDNEY_COLITIS, viral=RISING, creatinine=None)
    card = only(patient_view(facts), "cmv-treatment-regimen")
    assert doses(card) == []  # never a guessed dose
    assert "dose cannot be computed" in card.detail and "no creatinine result on record" in card.detail
    assert "not computable" in card.summary
    assert any(isinstance(p, LabOrderProposal) and p.test == "creatinine" for p in card.proposals)


def test_preemptive_regimen_after_solid_organ_transplant_uses_renal_valganciclovir():
    conds = conditions(populations=("sot",), organs=("liver",), infection=True, labels=("Liver transplant",))
    facts = make_facts(conds=conds, viral=(vl(3800, 9), vl(12500, 2)), crcl=35.0)
    card = only(patient_view(facts), "cmv-treatment-regimen")
    [valgan] = doses(card)
    assert_dose_is(valgan, dose("valganciclovir", "induction", facts))
    assert valgan.dose_mg == 450 and valgan.interval_hours == 24  # CrCl 25-39: 450 mg once daily
    assert "pre-emptive" in card.summary or "viraemia" in card.summary.lower()
    assert "The clinical brief gives a trigger for HSCT only; after solid-organ transplant the local policy decides" in card.detail


def test_the_sot_study_and_guideline_are_cited_only_where_they_apply():
    def regimen(conds):
        return only(patient_view(make_facts(conds=conds, viral=RISING, meds=(TACROLIMUS,))), "cmv-treatment-regimen")

    sot = regimen(KIDNEY_COLITIS)  # ganciclovir: the SOT valganciclovir study and Kotton apply
    assert "83.9%" in sot.detail and {"sot-valganciclovir-2008", "kotton-2025"} <= {c.key for c in sot.sources}
    # Documented ganciclovir resistance: foscarnet is planned, so the valganciclovir study is not said.
    foscarnet = regimen(replace(KIDNEY_COLITIS, resistant_drugs=frozenset({"ganciclovir"})))
    assert "83.9%" not in foscarnet.detail and "sot-valganciclovir-2008" not in {c.key for c in foscarnet.sources}
    hsct_pneumonitis = conditions(populations=("hsct",), sites=("pneumonitis",), labels=("CMV pneumonitis",))
    for card in (regimen(hsct_pneumonitis), only(patient_view(make_facts(
            conds=hsct_pneumonitis, viral=RISING, meds=(TACROLIMUS,))), "immunosuppression-reduction")):
        assert "kotton-2025" not in {c.key for c in card.sources}  # the SOT guideline, for an HSCT patient


def test_single_positive_pcr_after_sot_does_not_trigger_preemptive_therapy():
    conds = conditions(populations=("sot",), organs=("liver",), infection=True)
    facts = make_facts(conds=conds, viral=(not_detected(9), vl(12500, 2)))
    assert "cmv-treatment-regimen" not in topics(patient_view(facts))


# ---------------------------------------------------------------------------------------------
# immunosuppression-reduction


def test_immunosuppression_reduction_names_agents_and_mycophenolate_toxicity():
    facts = make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(TACROLIMUS, MYCOPHENOLATE, PREDNISONE))
    card = only(patient_view(facts), "immunosuppression-reduction")
    assert card.indicator == "warning"
    assert all(name in card.summary for name in ("tacrolimus", "mycophenolate", "prednisone"))
    assert "marrow toxicity" in card.detail


def test_immunosuppression_reduction_names_biologics_of_ibd():
    # UC with CMV colitis on prednisone and infliximab: both are the immunosuppression to weigh.
    uc = conditions(populations=("ibd",), sites=("gi",), ibd_types=("ulcerative-colitis",), labels=("Ulcerative colitis", "CMV colitis"))
    infliximab = order("infliximab", 350, None, route="iv", start=day(20))
    card = only(patient_view(make_facts(conds=uc, viral=(vl(800, 2),), meds=(order("prednisone", 60, 24, start=day(14)), infliximab))),
                "immunosuppression-reduction")
    assert card.summary == "CMV GI disease on prednisone, infliximab: strongly consider reducing or withdrawing immunosuppression"
    assert "infliximab 350 mg interval unknown (IV)" in card.detail


def test_no_immunosuppression_card_without_agents_or_without_active_cmv():
    assert "immunosuppression-reduction" not in topics(patient_view(make_facts(conds=KIDNEY_COLITIS, viral=RISING)))
    cleared = make_facts(conds=conditions(populations=("sot",)), viral=(not_detected(2),), meds=(TACROLIMUS,))
    assert "immunosuppression-reduction" not in topics(patient_view(cleared))


@pytest.mark.parametrize(
    "conds, viral, shown",
    [
        (conditions(populations=("sot",)), (vl(150, 2),), None),  # viraemia alone: the brief says it for disease
        (conditions(populations=("sot",)), (vl(450, 9), vl(900, 2)), None),  # even at the pre-emptive trigger
        (KIDNEY_COLITIS, (vl(8400, 16), not_detected(9), not_detected(2)), None),  # controlled this week
        (KIDNEY_COLITIS, (vl(8400, 16), not_detected(9)), "warning"),  # undetectable, but not this week
    ],
    ids=["low-positive", "two-positives", "disease-controlled", "disease-last-pcr-9-days"],
)
def test_immunosuppression_card_needs_disease_not_yet_controlled_by_treatment(conds, viral, shown):
    course = order("valganciclovir", 900, 12, **VALGAN_TREATMENT)
    found = patient_view(make_facts(conds=conds, viral=viral, meds=(TACROLIMUS, course)))
    if shown is None:
        assert "immunosuppression-reduction" not in topics(found)
    else:
        assert only(found, "immunosuppression-reduction").indicator == shown


def test_ganciclovir_on_record_with_counts_below_the_label_is_critical_on_patient_view():
    course = order("valganciclovir", 900, 12, **VALGAN_TREATMENT)
    low = make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(course,), labs={"anc": 400, "platelets": 20000})
    card = only(patient_view(low), "hematologic-toxicity")
    # Alternatives: discontinue it, or switch to foscarnet (one suggestion orders it and discontinues the order).
    assert card.indicator == "critical" and card.order_id == course.id and card.selection == "at-most-one"
    [foscarnet] = doses(card)
    assert foscarnet.drug == "foscarnet" and foscarnet.replaces is None and foscarnet.label.startswith("Switch to foscarnet")
    assert discontinued(foscarnet) == (course.id,)
    assert [(p.label, p.order_id) for p in stops(card)] == [("Discontinue the valganciclovir order", course.id)]
    # Only below the lab's range (above the label's limits): no card on every chart view.
    mild = make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(course,), labs={"anc": 900})
    assert "hematologic-toxicity" not in topics(patient_view(mild))


def test_treatment_started_over_prophylaxis_on_record_discontinues_it():
    # Prophylaxis is not treatment: the treatment order stops it as it orders (no double ganciclovir).
    prophylaxis = order("valganciclovir", 900, 24, id="MedicationRequest/proph", start=day(60))
    card = only(patient_view(make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(prophylaxis,))), "cmv-treatment-regimen")
    [start] = doses(card)
    assert start.drug == "ganciclovir" and discontinued(start) == (prophylaxis.id,)
    assert "Prophylaxis on record" in card.detail and "discontinues it as it orders" in card.detail


def test_the_prophylaxis_note_promises_no_discontinuation_when_no_treatment_order_is_offered():
    prophylaxis = order("valganciclovir", 900, 24, id="MedicationRequest/proph", start=day(60))
    conds = replace(KIDNEY_COLITIS, resistant_drugs=frozenset({"ganciclovir", "foscarnet"}))
    card = only(patient_view(make_facts(conds=conds, viral=RISING, meds=(prophylaxis,))), "cmv-treatment-regimen")
    assert not doses(card)
    assert "Stop the prophylaxis order when treatment starts." in card.detail
    assert "discontinues it as it orders" not in card.detail


def test_untreated_disease_keeps_the_immunosuppression_card_whatever_the_blood_pcr():
    # Tissue-invasive disease can be PCR-negative in blood: only treatment's control silences it, and
    # prophylaxis is not treatment.
    prophylaxis = order("valganciclovir", 900, 24, id="MedicationRequest/proph", start=day(60))
    for meds in ((TACROLIMUS,), (TACROLIMUS, prophylaxis)):
        found = patient_view(make_facts(conds=KIDNEY_COLITIS, viral=(not_detected(2),), meds=meds))
        assert only(found, "immunosuppression-reduction").indicator == "warning"


# ---------------------------------------------------------------------------------------------
# alternative-therapy


def test_intolerance_while_on_valganciclovir_proposes_foscarnet_not_maribavir():
    # Maribavir's label indication is refractory post-transplant CMV: intolerance alone is not it.
    conds = replace(KIDNEY_COLITIS, ganciclovir_intolerance=True)
    facts = make_facts(conds=conds, viral=RISING, meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))
    card = only(patient_view(facts), "alternative-therapy")
    assert card.selection == "at-most-one"
    [foscarnet] = doses(card)
    assert_dose_is(foscarnet, dose("foscarnet", "induction", facts, "90q12h"))
    assert foscarnet.recommended and "Cidofovir is third line" in card.detail
    # The course on record is discontinued by the switch itself (at-most-one: no separate stop to pair).
    assert (discontinued(foscarnet), foscarnet.replaces) == (("MedicationRequest/valgan",), None)
    assert "each switch offered here discontinues it" in card.detail
    assert "maribavir" not in card.detail.lower()
    assert "despite documented ganciclovir intolerance: switch to foscarnet" in card.summary


@pytest.mark.parametrize("maribavir", [True, False])
def test_a_foscarnet_dose_that_cannot_be_computed_is_said_in_the_summary_with_what_is_offered(maribavir):
    # Dialysis on record with a clearance that contradicts it: no foscarnet dose.  With resistance documented
    # (maribavir's indication) the summary names the maribavir it offers; with intolerance, nothing is offered.
    conds = replace(KIDNEY_COLITIS, renal_replacement="dialysis",
                    **({"resistant_drugs": frozenset({"ganciclovir"})} if maribavir else {"ganciclovir_intolerance": True}))
    facts = make_facts(conds=conds, viral=RISING, meds=(order("ganciclovir", 350, 12, route="iv", **VALGAN_TREATMENT),))
    card = only(patient_view(facts), "alternative-therapy")
    assert "IV foscarnet, dose cannot be computed" in card.detail
    assert [p.drug for p in doses(card)] == (["maribavir"] if maribavir else [])
    assert card.summary.endswith(": switch to foscarnet (dose: inputs needed)"
                                 + (" or maribavir 400 mg twice daily" if maribavir else ""))


def test_intolerance_on_dialysis_does_not_say_switch_to_foscarnet_and_asks_infectious_diseases():
    conds = replace(KIDNEY_COLITIS, ganciclovir_intolerance=True, renal_replacement="dialysis")
    facts = make_facts(conds=conds, viral=RISING, crcl=6, crcl_per_kg=0.09,
                       meds=(order("ganciclovir", 350, 12, route="iv", **VALGAN_TREATMENT),))
    card = only(patient_view(facts), "alternative-therapy")
    assert "switch to foscarnet" not in card.summary and "(foscarnet not advised: kidneys)" in card.summary
    assert not doses(card) and [p.specialty for p in card.proposals if isinstance(p, ConsultProposal)] == ["infectious-disease"]
    assert "Hydration" not in card.detail  # no litre of saline per dose for a dialysed patient


def test_resistance_after_transplant_offers_foscarnet_or_maribavir_with_the_ul97_caveat():
    conds = replace(
        KIDNEY_COLITIS,
        resistance_genes=frozenset({"UL97"}),
        evidence=(ConditionEvidence("CMV UL97 resistance mutation", "Condition/9", "text 'UL97 A594V'"),),
    )
    facts = make_facts(conds=conds, viral=RISING, meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))
    card = only(patient_view(facts), "alternative-therapy")
    foscarnet, maribavir = doses(card)
    assert_dose_is(foscarnet, dose("foscarnet", "induction", facts, "90q12h"))
    assert_dose_is(maribavir, dose("maribavir", "induction", facts))
    assert foscarnet.recommended and not maribavir.recommended  # UL97 does not affect foscarnet
    assert "documented ganciclovir resistance: CMV UL97 resistance mutation (Condition/9" in card.detail
    assert "UL97 mutations can also confer maribavir resistance (resistance definitions)" in card.detail
    assert "resistance-definitions" in {s.key for s in card.sources}


def test_alternative_on_a_draft_updates_that_draft():
    conds = replace(KIDNEY_COLITIS, resistant_drugs=frozenset({"ganciclovir"}))
    gcv = draft("ganciclovir", 350, 12, route="iv")
    card = only(order_sign(make_facts(conds=conds, viral=RISING, drafts=(gcv,))), "alternative-therapy")
    assert all(p.replaces == gcv.id and not discontinued(p) for p in doses(card))


def test_ul54_mutation_with_a_ganciclovir_draft_shows_foscarnet_unrecommended_with_the_caveat():
    conds = replace(KIDNEY_COLITIS, resistance_genes=frozenset({"UL54"}))
    gcv = draft("ganciclovir", 350, 12, route="iv")
    facts = make_facts(conds=conds, viral=RISING, drafts=(gcv,))
    card = only(order_sign(facts), "alternative-therapy")
    foscarnet, maribavir = doses(card)
    assert_dose_is(foscarnet, dose("foscarnet", "induction", facts, "90q12h"))
    assert not foscarnet.recommended and maribavir.drug == "maribavir"
    assert (
        "UL54 mutations can also confer foscarnet (and cidofovir) resistance (resistance definitions): check the "
        "genotype report for this mutation before choosing; consult infectious diseases." in card.detail
    )
    assert "consider foscarnet" in card.summary and "after checking the genotype report" in card.summary
    assert "resistance-definitions" in {s.key for s in card.sources}


def test_foscarnet_documented_resistant_is_not_proposed():
    conds = replace(
        KIDNEY_COLITIS,
        resistant_drugs=frozenset({"ganciclovir", "foscarnet"}),
        evidence=(ConditionEvidence("foscarnet-resistant CMV", "Condition/9", "text 'foscarnet-resistant'"),),
    )
    facts = make_facts(conds=conds, viral=RISING, meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))
    card = only(patient_view(facts), "alternative-therapy")
    [maribavir] = doses(card)  # after transplant, with resistance documented
    assert maribavir.drug == "maribavir" and maribavir.label.startswith("Switch to oral maribavir")
    assert "**Foscarnet: not proposed:** documented foscarnet resistance: foscarnet-resistant CMV" in card.detail
    assert "Cidofovir is third line" in card.detail
    assert "switch to foscarnet" not in card.summary.lower()
    assert card.summary.endswith("consider maribavir 400 mg twice daily (foscarnet resistant)")


def test_foscarnet_documented_resistant_outside_transplant_leaves_a_consult():
    conds = conditions(populations=("hiv",), sites=("gi",), resistance=True)
    conds = replace(conds, resistant_drugs=frozenset({"ganciclovir", "foscarnet"}))
    facts = make_facts(conds=conds, viral=RISING, meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))
    card = only(patient_view(facts), "alternative-therapy")
    assert doses(card) == []
    assert [p.specialty for p in card.proposals if isinstance(p, ConsultProposal)] == ["infectious-disease"]
    assert card.summary.endswith("consult infectious diseases (foscarnet resistant)")
    # Maribavir is no option outside transplant, and Kotton 2025 is the SOT guideline: neither is cited.
    assert "maribavir" not in card.detail.lower()
    assert {c.key for c in card.sources} == {"clinical-brief", "foscarnet-label", "cidofovir-label"}
    sot = replace(KIDNEY_COLITIS, resistant_drugs=frozenset({"ganciclovir"}))
    card = only(patient_view(replace(facts, conditions=sot)), "alternative-therapy")
    assert {"maribavir-label", "kotton-2025"} <= {c.key for c in card.sources}


def test_foscarnet_draft_with_documented_foscarnet_resistance_is_routed_to_the_alternative():
    conds = replace(KIDNEY_COLITIS, resistant_drugs=frozenset({"foscarnet"}))
    fos = draft("foscarnet", 6300, 12, route="iv")
    found = order_sign(make_facts(conds=conds, viral=RISING, drafts=(fos,)))
    card = only(found, "alternative-therapy")
    assert card.order_id == fos.id and card.summary.startswith("Foscarnet despite documented foscarnet resistance")
    [maribavir] = doses(card)
    assert maribavir.drug == "maribavir" and maribavir.replaces == fos.id
    assert "suspected-resistance" not in topics(found)


def test_maribavir_draft_with_documented_maribavir_resistance_proposes_foscarnet():
    conds = replace(KIDNEY_COLITIS, resistant_drugs=frozenset({"maribavir"}))
    mbv = draft("maribavir", 400, 12, route="oral")
    facts = make_facts(conds=conds, viral=RISING, drafts=(mbv,))
    card = only(order_sign(facts), "alternative-therapy")
    [foscarnet] = doses(card)
    assert_dose_is(foscarnet, dose("foscarnet", "induction", facts, "90q12h"))
    assert foscarnet.replaces == mbv.id and foscarnet.recommended
    assert card.summary.startswith("Maribavir despite documented maribavir resistance: switch to foscarnet")


def test_letermovir_prophylaxis_despite_documented_letermovir_resistance():
    kidney = conditions(populations=("sot",), organs=("kidney",))
    ltv = draft("letermovir", 480, 24)
    ul56 = replace(
        kidney,
        resistance_genes=frozenset({"UL56"}),
        evidence=(ConditionEvidence("CMV UL56 resistance mutation", "Condition/9", "text 'UL56 C325Y'"),),
    )
    card = only(order_sign(make_facts(conds=ul56, drafts=(ltv,))), "alternative-therapy")
    assert card.indicator == "warning" and card.order_id == ltv.id
    assert card.summary == "Letermovir prophylaxis despite documented letermovir resistance: consult infectious diseases"
    assert "documented letermovir resistance: CMV UL56 resistance mutation (Condition/9" in card.detail
    assert {"resistance-definitions", "letermovir-label"} <= {s.key for s in card.sources}
    [consult] = card.proposals
    assert isinstance(consult, ConsultProposal) and consult.specialty == "infectious-disease" and consult.recommended
    # On record, patient-view says the same; a UL97 mutation (ganciclovir, maribavir) does not touch letermovir.
    on_record = make_facts(conds=replace(kidney, resistant_drugs=frozenset({"letermovir"})), meds=(LETERMOVIR,))
    assert only(patient_view(on_record), "alternative-therapy").order_id == LETERMOVIR.id
    ul97 = make_facts(conds=replace(kidney, resistance_genes=frozenset({"UL97"})), drafts=(ltv,))
    assert "alternative-therapy" not in topics(order_sign(ul97))
    # With CMV disease the prophylaxis-not-treatment card (order safety) says to treat instead.
    disease = replace(KIDNEY_COLITIS, resistance_genes=frozenset({"UL56"}))
    assert "alternative-therapy" not in topics(order_sign(make_facts(conds=disease, viral=RISING, drafts=(ltv,))))


def test_valganciclovir_prophylaxis_despite_documented_intolerance_asks_infectious_diseases():
    ppx = draft("valganciclovir", 900, 24)
    intolerant = replace(conditions(populations=("sot",), organs=("kidney",)), ganciclovir_intolerance=True)
    card = only(order_sign(make_facts(conds=intolerant, drafts=(ppx,))), "alternative-therapy")
    assert card.summary.startswith("Valganciclovir prophylaxis despite documented ganciclovir intolerance")
    assert not doses(card) and "resistance-definitions" not in {s.key for s in card.sources}


def test_no_alternative_card_without_documented_intolerance():
    facts = make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))
    assert "alternative-therapy" not in topics(patient_view(facts))


# ---------------------------------------------------------------------------------------------
# suspected-resistance

REFRACTORY_VL = (vl(3000, 26), vl(4100, 19), vl(11800, 12), vl(45000, 2))


def test_refractory_after_two_weeks_genotype_and_renal_foscarnet():
    facts = make_facts(
        conds=conditions(populations=("sot",), organs=("kidney",), infection=True),
        viral=REFRACTORY_VL,
        meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),),
    )
    card = only(patient_view(facts), "suspected-resistance")
    assert card.summary.startswith("Refractory CMV") and "25 days" in card.summary
    assert not stops(card)  # each switch discontinues the course itself: no stop without a replacement
    assert any(isinstance(p, LabOrderProposal) and p.test == "cmv-genotype" for p in card.proposals)
    by_drug = {p.drug: p for p in doses(card)}
    assert {d: (discontinued(p), p.replaces) for d, p in by_drug.items()} == {
        "foscarnet": (("MedicationRequest/valgan",), None), "maribavir": (("MedicationRequest/valgan",), None)}
    # One choice: the genotype alone, or the genotype with one switch (never foscarnet and maribavir both).
    assert card.selection == "at-most-one"
    assert [p.label.split(" mg")[0] for p in doses(card)] == [
        f"Send the genotype and switch to IV foscarnet {by_drug['foscarnet'].dose_mg:g}",
        "Send the genotype and switch to oral maribavir 400"]
    assert all([x.test for x in p.also if isinstance(x, LabOrderProposal)] == ["cmv-genotype"] for p in doses(card))
    assert_dose_is(by_drug["foscarnet"], dose("foscarnet", "induction", facts, "90q12h"))
    assert by_drug["maribavir"].dose_mg == 400
    assert "+1.18 log10" in card.detail and "Adherence" in card.detail
    assert "meets the label dose" in card.detail


@pytest.mark.parametrize("baseline_day, refractory", [(1, True), (7, True), (8, False)])
def test_with_no_pcr_before_the_course_its_first_pcr_in_the_interval_after_the_start_is_the_baseline(baseline_day, refractory):
    # Valganciclovir since 23 days; the first PCR drawn with the first doses (day 1), or in the week after them.
    kidney = conditions(populations=("sot",), organs=("kidney",), infection=True)
    course = order("valganciclovir", 900, 12, id="MedicationRequest/valgan", start=day(23))
    viral = (vl(1200, 23 - baseline_day), vl(8400, 9), vl(41000, 2))
    found = patient_view(make_facts(conds=kidney, viral=viral, meds=(course,)))
    assert ("suspected-resistance" in topics(found)) is refractory
    if refractory:
        card = only(found, "suspected-resistance")
        assert card.summary.startswith("Refractory CMV: viral load up 1.5 log10 after 23 days of valganciclovir")
        assert (f"at the start 1,200 IU/mL ({day(23 - baseline_day).isoformat()}) (day {baseline_day} of the course: "
                "no PCR on its scale in the monitoring interval before it)") in card.detail


def test_a_refractory_course_beside_maribavir_already_ordered_is_stopped():
    # Maribavir started, the failing valganciclovir left running: the two are not given together (label).
    kidney = conditions(populations=("sot",), organs=("kidney",), infection=True)
    course = order("valganciclovir", 900, 12, **VALGAN_TREATMENT)
    maribavir = order("maribavir", 400, 12, id="MedicationRequest/mbv", start=day(2))
    found = patient_view(make_facts(conds=kidney, viral=REFRACTORY_VL, meds=(course, maribavir)))
    card = only(found, "suspected-resistance")
    assert card.summary.endswith("maribavir ordered: stop the valganciclovir order") and not doses(card)
    assert [(s.order_id, s.reason) for s in stops(card)] == [(course.id, "maribavir already ordered")]
    assert card.selection == "any" and genotype_scopes(card) == ["UL97/UL54"]  # the genotype and the stop, each
    assert "not given with ganciclovir or valganciclovir (antagonism; maribavir label)" in card.detail
    assert "maribavir-label" in {c.key for c in card.sources}
    assert "drug-interaction" not in topics(found)  # the stop is offered once
    # Foscarnet already ordered: the course stops too, unless the two are meant together.
    foscarnet = order("foscarnet", 6300, 12, id="MedicationRequest/fos", start=day(2))
    card = only(patient_view(make_facts(conds=kidney, viral=REFRACTORY_VL, meds=(course, foscarnet))), "suspected-resistance")
    assert [s.order_id for s in stops(card)] == [course.id] and "unless the two are given together on purpose" in card.detail
    # CNS disease: IV ganciclovir plus foscarnet is the brief's combination, not a course to stop (valganciclovir
    # beside foscarnet is not that combination).
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(25))
    card = only(patient_view(make_facts(conds=CNS, viral=REFRACTORY_VL, meds=(iv, foscarnet))), "suspected-resistance")
    assert not stops(card)
    card = only(patient_view(make_facts(conds=CNS, viral=REFRACTORY_VL, meds=(course, foscarnet))), "suspected-resistance")
    assert [s.order_id for s in stops(card)] == [course.id]


def test_maribavir_and_valganciclovir_both_on_record_is_the_label_s_pair_not_to_give_together():
    # No failing course to switch from (the viral load falls): the antagonism is said on patient-view too, once.
    kidney = conditions(populations=("sot",), organs=("kidney",), infection=True)
    prophylaxis = order("valganciclovir", 900, 24, id="MedicationRequest/vgc", start=day(40))
    maribavir = order("maribavir", 400, 12, id="MedicationRequest/mbv", start=day(2))
    found = patient_view(make_facts(conds=kidney, viral=(vl(1200, 9), vl(800, 2)), meds=(prophylaxis, maribavir)))
    card = only(found, "drug-interaction")
    assert card.indicator == "warning" and "antagonism" in card.summary and card.selection == "at-most-one"
    assert {s.order_id for s in stops(card)} == {prophylaxis.id, maribavir.id}
    # One card per maribavir order, naming every ganciclovir-family partner (not one per pair).
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(5))
    found = patient_view(make_facts(conds=kidney, viral=(vl(1200, 9), vl(800, 2)), meds=(prophylaxis, maribavir, iv)))
    card = only(found, "drug-interaction")
    assert {s.order_id for s in stops(card)} == {prophylaxis.id, maribavir.id, iv.id}
    assert "cmv-treatment-regimen" not in topics(found)  # no step-down to valganciclovir beside maribavir
    # A renal correction of the partner keeps the pair: the pair is said, and the correction waits for the view
    # after it is resolved (accepted after a stop, it would bring the order back).
    found = patient_view(make_facts(conds=kidney, crcl=30, viral=(vl(1200, 9), vl(800, 2)), meds=(prophylaxis, maribavir)))
    assert "drug-interaction" in topics(found) and "renal-dose-adjustment" not in topics(found)
    # Maribavir alone: nothing to say.
    assert "drug-interaction" not in topics(patient_view(make_facts(conds=kidney, viral=(vl(1200, 9), vl(800, 2)),
                                                                   meds=(maribavir,))))


def test_suspected_resistance_names_every_gene_and_letermovir_genes_when_letermovir_was_given():
    kidney = conditions(populations=("sot",), organs=("kidney",), infection=True)
    course = order("valganciclovir", 900, 12, **VALGAN_TREATMENT)
    card = only(patient_view(make_facts(conds=kidney, viral=REFRACTORY_VL, meds=(course,))), "suspected-resistance")
    genes = "UL97: ganciclovir, maribavir; UL54: ganciclovir, cidofovir, foscarnet; UL56/UL89/UL51: letermovir"
    assert genes in card.detail
    assert "Letermovir on record" not in card.detail
    assert genotype_scopes(card) == ["UL97/UL54"]
    ended = order("letermovir", 480, 24, id="MedicationRequest/ltv", start=day(120), end=day(30), status="completed")
    facts = make_facts(conds=kidney, viral=REFRACTORY_VL, meds=(course, ended))
    card = only(patient_view(facts), "suspected-resistance")
    assert "ask the laboratory to include UL56/UL89/UL51 (letermovir resistance)" in card.detail
    # The genotype request itself asks for the letermovir genes too.
    assert genotype_scopes(card) == ["UL97/UL54/UL56/UL89/UL51"]


def genotype_scopes(card):
    return [p.scope for p in card.proposals if isinstance(p, LabOrderProposal) and p.test == "cmv-genotype"]


def test_suspected_resistance_does_not_switch_to_foscarnet_documented_resistant():
    conds = conditions(populations=("sot",), organs=("kidney",), infection=True)
    conds = replace(conds, resistant_drugs=frozenset({"foscarnet"}))
    facts = make_facts(conds=conds, viral=REFRACTORY_VL, meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))
    card = only(patient_view(facts), "suspected-resistance")
    assert [p.drug for p in doses(card)] == ["maribavir"]
    assert "Foscarnet: not proposed" in card.detail and "foscarnet" not in card.summary


def test_suspected_resistance_without_a_creatinine_asks_for_one_and_still_offers_maribavir():
    conds = conditions(populations=("sot",), organs=("kidney",), infection=True)
    facts = make_facts(conds=conds, creatinine=None, viral=REFRACTORY_VL,
                       meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))
    card = only(patient_view(facts), "suspected-resistance")
    assert "foscarnet, dose cannot be computed" in card.detail
    assert [p.drug for p in doses(card)] == ["maribavir"]
    # The switches are exclusive (at-most-one): the creatinine is the monitoring card's order, not a choice here.
    tests = [p.test for p in card.proposals if isinstance(p, LabOrderProposal)]
    assert tests == ["cmv-genotype"] and card.selection == "at-most-one"
    assert [p.test for p in only(patient_view(facts), "monitoring-plan").proposals] == ["creatinine"]
    assert "Choose one switch" not in card.detail and "when its replacement starts" in card.detail


def test_a_failing_iv_course_gets_no_step_down_beside_its_resistance_switches():
    # Both would stop the IV order: maribavir and valganciclovir together would be the antagonism.
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv-iv", route="iv", start=day(25))
    conds = conditions(populations=("sot",), organs=("kidney",), infection=True)
    found = patient_view(make_facts(conds=conds, viral=REFRACTORY_VL, meds=(iv,)))
    assert "suspected-resistance" in topics(found) and "cmv-treatment-regimen" not in topics(found)


def test_one_card_switches_away_from_an_order_when_two_would():
    # Counts below the label and a refractory course: the resistance card keeps its switches (foscarnet or
    # maribavir, with the genotype); the critical card only stops the order and names that card, so no two
    # accepted suggestions start two drugs in its place.
    conds = conditions(populations=("sot",), organs=("kidney",), infection=True)
    course = order("valganciclovir", 900, 12, **VALGAN_TREATMENT)
    found = patient_view(make_facts(conds=conds, viral=REFRACTORY_VL, meds=(course,), labs={"anc": 400.0}))
    resistance = only(found, "suspected-resistance")
    assert [p.drug for p in doses(resistance)] == ["foscarnet", "maribavir"]
    counts = only(found, "hematologic-toxicity")
    assert counts.indicator == "critical" and doses(counts) == []
    assert [p.order_id for p in stops(counts)] == [course.id]
    assert f'**Alternative:** proposed on the card "{resistance.summary}"' in counts.detail


def test_an_under_dosed_course_is_not_corrected_upward_when_the_counts_rule_it_out():
    conds = conditions(populations=("sot",), organs=("kidney",), infection=True)
    under = order("valganciclovir", 450, 12, **VALGAN_TREATMENT)  # CrCl >= 60: 900 mg twice daily
    found = patient_view(make_facts(conds=conds, viral=REFRACTORY_VL, meds=(under,), labs={"anc": 400.0}))
    resistance = only(found, "suspected-resistance")
    assert doses(resistance) == [] and [p.test for p in resistance.proposals] == ["cmv-genotype"]
    assert "not to be continued at any dose" in resistance.detail
    # Nothing else replaces the order: the critical card offers foscarnet itself.
    assert [p.drug for p in doses(only(found, "hematologic-toxicity"))] == ["foscarnet"]


# The label's stops during a cidofovir course, and foscarnet below its renal table, for an order on record.
SOT = conditions(populations=("sot",), organs=("kidney",), infection=True)
CIDOFOVIR_COURSE = order("cidofovir", 350, 168, id="MedicationRequest/cdv", start=day(10))


def test_a_cidofovir_course_the_label_says_to_stop_gets_a_critical_card():
    # Creatinine 0.6 -> 1.2 mg/dL since the course began (CrCl 65: above every limit to start it).
    risen = [measurement("creatinine", 0.6, 12), measurement("creatinine", 1.2, 1)]
    found = patient_view(make_facts(creatinine=None, labs=risen, conds=SOT, meds=(CIDOFOVIR_COURSE,)))
    card = only(found, "nephrotoxicity")
    assert card.indicator == "critical" and card.order_id == CIDOFOVIR_COURSE.id
    assert card.summary == "Cidofovir: creatinine up 0.6 mg/dL since the course began (≥ 0.5): stop (label)"
    assert ("creatinine up 0.6 mg/dL since the cidofovir course began (2026-11-16): baseline 0.6 mg/dL (2026-11-14), "
            "now 1.2 mg/dL (2026-11-25)") in card.detail
    assert [(p.label, p.order_id, p.also) for p in stops(card)] == [
        ("Discontinue the cidofovir order", CIDOFOVIR_COURSE.id, ())] and doses(card) == []
    assert {c.key for c in card.sources} == {"cidofovir-label"} and "Probenecid on record" not in card.detail
    # Probenecid on record may be for its doses, or for gout: named, not stopped.
    probenecid = order("probenecid", 1000, 24, id="MedicationRequest/prb", start=day(10))
    card = only(patient_view(make_facts(creatinine=None, labs=risen, conds=SOT, meds=(CIDOFOVIR_COURSE, probenecid))),
                "nephrotoxicity")
    assert "**Probenecid on record:** probenecid 1000 mg every 24 h" in card.detail
    assert [p.order_id for p in stops(card)] == [CIDOFOVIR_COURSE.id] and stops(card)[0].also == ()
    # 3+ proteinuria: stop as well (2+ is a limit to starting, not a stop during the course).
    for grade, critical in ((3.0, True), (2.0, False)):
        found = patient_view(make_facts(labs={"urine_protein_dipstick": grade}, conds=SOT, meds=(CIDOFOVIR_COURSE,)))
        assert ("nephrotoxicity" in topics(found)) == critical
    assert "urine protein 3+ by dipstick (≥ 3+): stop (label)" in only(patient_view(make_facts(
        labs={"urine_protein_dipstick": 3.0}, conds=SOT, meds=(CIDOFOVIR_COURSE,))), "nephrotoxicity").summary
    # Measured in mg/dL: at or above the strip's 3+ pad (300 mg/dL) the same stop; a bound below it cannot tell.
    for protein, critical in ((500, True), (300, True), (299, False), (measurement("urine_protein", 400, 1, comparator="<"), False)):
        labs = [protein] if isinstance(protein, Measurement) else {"urine_protein": protein}
        found = patient_view(make_facts(labs=labs, conds=SOT, meds=(CIDOFOVIR_COURSE,)))
        assert ("nephrotoxicity" in topics(found)) == critical, protein
    card = only(patient_view(make_facts(labs={"urine_protein": 500}, conds=SOT, meds=(CIDOFOVIR_COURSE,))), "nephrotoxicity")
    assert card.summary == "Cidofovir: urine protein 500 mg/dL (≥ 3+): stop (label)"
    assert "- urine protein 500 mg/dL (2026-11-25): ≥ 300 mg/dL, the 3+ pad of a reagent strip" in card.detail


def test_a_rise_at_the_stop_only_in_the_label_s_steps_is_not_called_at_least_0_5():
    # 0.45 is read at the label's 0.1 mg/dL steps as 0.5 (the stop); the summary does not say 0.45 >= 0.5.
    risen = [measurement("creatinine", 0.6, 12), measurement("creatinine", 1.05, 1)]
    card = only(patient_view(make_facts(creatinine=None, labs=risen, conds=SOT, meds=(CIDOFOVIR_COURSE,))), "nephrotoxicity")
    assert card.summary == "Cidofovir: creatinine up 0.45 mg/dL since the course began (0.5 in the label's steps): stop (label)"


@pytest.mark.parametrize("creatinines", [
    [(0.6, 12), (0.8, 1)],  # up 0.2: short of the 3 mg/kg step, and 350 mg is the 5 mg/kg band's dose
    [(2.2, 1)],  # no creatinine before the course: the rise cannot be judged (the monitoring card asks)
])
def test_a_cidofovir_course_short_of_the_label_s_steps_gets_no_kidney_card(creatinines):
    labs = [measurement("creatinine", value, days) for value, days in creatinines]
    found = patient_view(make_facts(creatinine=None, labs=labs, conds=SOT, meds=(CIDOFOVIR_COURSE,)))
    assert "nephrotoxicity" not in topics(found) and "renal-dose-adjustment" not in topics(found)


@pytest.mark.parametrize("rise", [0.3, 0.4])
def test_a_cidofovir_course_at_the_label_s_3_mg_per_kg_step_gets_it_for_its_next_dose(rise):
    # The standing weekly order gives the next dose (day 10 of the course): 3 mg/kg x 70 kg = 210 mg, to day 14.
    labs = [measurement("creatinine", 0.6, 12), measurement("creatinine", 0.6 + rise, 1)]
    found = patient_view(make_facts(creatinine=None, labs=labs, conds=SOT, meds=(CIDOFOVIR_COURSE,)))
    card = only(found, "nephrotoxicity")
    assert card.indicator == "warning" and card.order_id == CIDOFOVIR_COURSE.id
    assert card.summary.startswith(f"Cidofovir: creatinine up {rise:g} mg/dL during the course: 3 mg/kg (label), 210 mg")
    assert [(p.dose_mg, p.interval_hours, p.replaces, p.duration_days) for p in doses(card)] == [
        (210, 168, CIDOFOVIR_COURSE.id, 4)]
    assert "renal-dose-adjustment" not in topics(found)
    # Already ordered at 3 mg/kg: nothing to say, tacrolimus on record or not (as on the 5 mg/kg bands).
    stepped = order("cidofovir", 210, 168, id="MedicationRequest/cdv", start=day(10))
    tacrolimus = order("tacrolimus", 4, 12, id="MedicationRequest/tac", start=day(100))
    for meds in ((stepped,), (stepped, tacrolimus)):
        assert "nephrotoxicity" not in topics(patient_view(make_facts(creatinine=None, labs=labs, conds=SOT, meds=meds)))
    # Not yet at it, the 3 mg/kg card names the tacrolimus beside it.
    card = only(patient_view(make_facts(creatinine=None, labs=labs, conds=SOT, meds=(CIDOFOVIR_COURSE, tacrolimus))),
                "nephrotoxicity")
    assert card.summary.startswith("Cidofovir: creatinine up") and "tacrolimus" in card.detail
    # What rules out its next dose (the label's limits for each dose: 2+ proteinuria) is said instead, as the
    # next dose's order would be told.
    with_protein = [*labs, measurement("urine_protein_dipstick", 2.0, 1)]
    card = only(patient_view(make_facts(creatinine=None, labs=with_protein, conds=SOT, meds=(CIDOFOVIR_COURSE,))),
                "nephrotoxicity")
    assert card.indicator == "critical" and card.summary.startswith("Cidofovir contraindicated: urine protein 2+")
    assert f"creatinine up {rise:g} mg/dL" in card.detail and [p.order_id for p in stops(card)] == [CIDOFOVIR_COURSE.id]


def test_foscarnet_on_record_below_the_label_s_renal_table_gets_a_critical_card():
    course = order("foscarnet", 6300, 12, id="MedicationRequest/fos", start=day(10))
    found = patient_view(make_facts(creatinine=4.5, conds=SOT, meds=(course,), viral=(vl(3000, 6), vl(2000, 2))))
    card = only(found, "nephrotoxicity")  # CrCl 17.3 mL/min = 0.25 mL/min/kg
    assert card.indicator == "critical" and card.summary == "Foscarnet not recommended: CrCl 0.25 mL/min/kg is below 0.4 (label)"
    assert [p.order_id for p in stops(card)] == [course.id] and "Hydration" not in card.detail
    assert "nephrotoxicity" not in topics(patient_view(make_facts(conds=SOT, meds=(course,))))


def test_an_order_on_record_off_its_renal_band_gets_the_renal_card_before_its_step_down():
    # IV ganciclovir 5 mg/kg q12h written at CrCl 78, now 35 (day 10): the label's band is 2.5 mg/kg q24h.
    course = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(10))
    viral = (vl(3000, 6), vl(2000, 2))
    found = patient_view(make_facts(creatinine=2.2, conds=SOT, meds=(course,), viral=viral))
    card = only(found, "renal-dose-adjustment")
    assert card.summary.startswith("Ganciclovir 350 mg q12h too high for CrCl 35.4 mL/min: 175 mg (2.5 mg/kg) q24h")
    assert [(p.dose_mg, p.interval_hours, p.replaces) for p in doses(card)] == [(175, 24, course.id)]
    # The step-down would stop the order the card re-doses: it waits for a view after the correction.
    assert "cmv-treatment-regimen" not in topics(found)
    found = patient_view(make_facts(conds=SOT, meds=(course,), viral=viral))  # CrCl 78: on its band
    assert "renal-dose-adjustment" not in topics(found) and "step down" in only(found, "cmv-treatment-regimen").summary
    # A prophylactic dose beside the treatment course is stopped by its step-down, not re-dosed (CrCl 48.6:
    # the IV dose is on its band, valganciclovir 900 mg daily is not).
    on_band = order("ganciclovir", 175, 24, id="MedicationRequest/gcv-on-band", start=day(7))
    prophylaxis = order("valganciclovir", 900, 24, id="MedicationRequest/vgc-pro", start=day(40))
    found = patient_view(make_facts(creatinine=1.6, conds=SOT, meds=(on_band, prophylaxis), viral=viral))
    assert "renal-dose-adjustment" not in topics(found)
    [step] = doses(only(found, "cmv-treatment-regimen"))
    assert set(discontinued(step)) == {on_band.id, prophylaxis.id}
    # A course another card moves off (documented resistance) gets no dose correction.
    resistant = replace(SOT, resistant_drugs=frozenset({"ganciclovir"}))
    found = patient_view(make_facts(creatinine=2.2, conds=resistant, meds=(course,), viral=viral))
    assert "alternative-therapy" in topics(found) and "renal-dose-adjustment" not in topics(found)
    # Valganciclovir tablets the label does not recommend (CrCl 8.6): IV ganciclovir, ordered as the tablets
    # are discontinued (one card, though two such orders are on record: its switch stops both).
    tablets = order("valganciclovir", 900, 12, id="MedicationRequest/vgc", start=day(10))
    more = order("valganciclovir", 450, 24, id="MedicationRequest/vgc-2", start=day(10))
    card = only(patient_view(make_facts(creatinine=9.0, conds=SOT, meds=(tablets, more), viral=viral)), "renal-dose-adjustment")
    assert card.summary.startswith("Valganciclovir tablets not recommended at CrCl 8.6 mL/min")
    [switch] = doses(card)
    assert (switch.drug, switch.replaces, set(discontinued(switch))) == ("ganciclovir", None, {tablets.id, more.id})
    # Below CrCl 10 with IV ganciclovir already on record: one card stops both tablet orders.
    iv = order("ganciclovir", 45, 48, id="MedicationRequest/gcv-iv", start=day(12))
    found = patient_view(make_facts(creatinine=9.0, conds=SOT, meds=(tablets, more, iv), viral=viral))
    [card] = [f for f in found if f.topic == "renal-dose-adjustment" and f.order_id in (tablets.id, more.id)]
    assert [(p.order_id, [a.order_id for a in p.also]) for p in stops(card)] == [(tablets.id, [more.id])]
    # Cidofovir weekly on day 21: judged by the bands (every 2 weeks now) only where its creatinine rise is
    # known and short of the label's 3 mg/kg step; else its next dose's order is (order hooks).
    weekly = order("cidofovir", 350, 168, id="MedicationRequest/cdv", start=day(21))
    steady = [measurement("creatinine", 1.0, 25), measurement("creatinine", 1.0, 1)]
    card = only(patient_view(make_facts(creatinine=None, labs=steady, conds=SOT, meds=(weekly,), viral=viral)),
                "renal-dose-adjustment")
    assert card.summary.startswith("Cidofovir 350 mg weekly too high on day 21 of the course: 350 mg (5 mg/kg) every 2 weeks")
    risen = [measurement("creatinine", 1.0, 25), measurement("creatinine", 1.3, 1)]
    for labs in (risen, None):  # up 0.3 (3 mg/kg), or no creatinine before the course
        found = patient_view(make_facts(creatinine=None if labs else 1.0, labs=labs, conds=SOT, meds=(weekly,), viral=viral))
        assert "renal-dose-adjustment" not in topics(found)
    # HIV retinitis past its 21 days of induction: its card speaks of the phase (maintenance), not this one.
    retinitis = order("valganciclovir", 900, 12, id="MedicationRequest/vgc-ret", start=day(25))
    found = patient_view(make_facts(creatinine=9.0, conds=HIV_RETINITIS, meds=(retinitis,), viral=viral))
    assert "hiv-retinitis" in topics(found) and "renal-dose-adjustment" not in topics(found)
    # A prophylactic dose beside an IV course that has its own correction (so no step-down): both re-dosed.
    iv_off = order("ganciclovir", 350, 12, id="MedicationRequest/gcv-off", start=day(5))
    prophylaxis_off = order("valganciclovir", 900, 24, id="MedicationRequest/vgc-pro-off", start=day(40))
    found = patient_view(make_facts(creatinine=4.5, conds=SOT, meds=(iv_off, prophylaxis_off), viral=viral))
    assert {f.order_id for f in found if f.topic == "renal-dose-adjustment"} == {iv_off.id, prophylaxis_off.id}


def test_two_failing_courses_of_different_drugs_start_one_alternative():
    # Ganciclovir and cidofovir both 25 days in, the viral load up 1.2 log10: the first card switches (with the
    # genotype); the second stops its course, naming that card, instead of starting a second foscarnet.  Begun
    # the same day, the courses are taken by drug name (regimens._newest_first), whatever the bundle's order.
    gcv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(25))
    cdv = order("cidofovir", 350, 168, id="MedicationRequest/cdv", start=day(25))
    for meds in ((gcv, cdv), (cdv, gcv)):
        found = patient_view(make_facts(conds=SOT, meds=meds, viral=REFRACTORY_VL))
        first, second = (f for f in found if f.topic == "suspected-resistance")
        assert (first.order_id, [p.drug for p in doses(first)]) == (cdv.id, ["foscarnet", "maribavir"])
        assert second.order_id == gcv.id and doses(second) == [] and [p.order_id for p in stops(second)] == [gcv.id]
        assert second.summary.endswith("after 25 days of ganciclovir: stop the ganciclovir order")
        assert f'**Alternative:** proposed on the card "{first.summary}"' in second.detail


def test_two_failing_courses_get_the_same_advice_whatever_order_the_record_lists_them_in():
    # Ganciclovir and maribavir both failing: maribavir's card switches to foscarnet, ganciclovir's stops it.
    gcv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(25))
    mbv = order("maribavir", 400, 12, id="MedicationRequest/mbv", start=day(25))
    for meds in ((gcv, mbv), (mbv, gcv)):
        cards = {f.order_id: f for f in patient_view(make_facts(conds=SOT, meds=meds, viral=REFRACTORY_VL))
                 if f.topic == "suspected-resistance"}
        assert [p.drug for p in doses(cards[mbv.id])] == ["foscarnet"]
        assert doses(cards[gcv.id]) == [] and [p.order_id for p in stops(cards[gcv.id])] == [gcv.id]


def test_cns_disease_points_to_the_foscarnet_another_card_starts():
    # Patient-view: ganciclovir for CMV encephalitis, a cidofovir course failing: its resistance card offers
    # foscarnet (or maribavir); the CNS card keeps its advice and points there, ordering no second course.
    cns = conditions(populations=("sot",), organs=("kidney",), sites=("cns",), labels=("CMV encephalitis",))
    gcv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(3))
    cdv = order("cidofovir", 350, 168, id="MedicationRequest/cdv", start=day(25))
    found = patient_view(make_facts(conds=cns, meds=(gcv, cdv), viral=REFRACTORY_VL))
    card = only(found, "cns-disease-combination")
    assert doses(card) == [] and card.summary.endswith("foscarnet is offered on another card")
    assert f'**Foscarnet** is offered on the card "{only(found, "suspected-resistance").summary}"' in card.detail


def test_cns_disease_adds_no_foscarnet_where_another_card_already_starts_it():
    # CMV encephalitis; ganciclovir and a cidofovir renewal drafted, the cidofovir course failing: the
    # resistance card switches the cidofovir draft to foscarnet, so the CNS card does not add a second one.
    cns = conditions(populations=("sot",), organs=("kidney",), sites=("cns",), labels=("CMV encephalitis",))
    course = order("cidofovir", 350, 168, id="MedicationRequest/cdv", start=day(25))
    drafts = (draft("ganciclovir", 350, 12, id="MedicationRequest/gcv-d"), draft("cidofovir", 350, 168, id="MedicationRequest/cdv-d"))
    found = guidance(make_facts(conds=cns, meds=(course,), drafts=drafts, viral=REFRACTORY_VL), POLICY, "order-sign", drafts)
    starting_foscarnet = [f.topic for f in found for p in doses(f) if p.drug == "foscarnet"]
    assert starting_foscarnet == ["suspected-resistance"] and "cns-disease-combination" not in topics(found)
    # Without the failing course, the CNS card adds it.
    found = guidance(make_facts(conds=cns, drafts=drafts[:1]), POLICY, "order-sign", drafts[:1])
    assert [p.drug for p in doses(only(found, "cns-disease-combination"))] == ["foscarnet"]


def test_foscarnet_on_record_with_electrolytes_out_of_range_gets_the_electrolyte_card():
    course = order("foscarnet", 6300, 12, id="MedicationRequest/fos", start=day(10))
    viral = (vl(3000, 6), vl(2000, 2))
    found = patient_view(make_facts(conds=SOT, meds=(course,), viral=viral, labs={"potassium": 2.9, "magnesium": 1.0}))
    card = only(found, "electrolyte-abnormality")
    assert card.indicator == "warning" and card.order_id == course.id
    assert card.summary == "Foscarnet with low potassium 2.9 mmol/L, magnesium 1 mg/dL" and card.proposals == ()
    # Also beside the card that stops it for the kidneys (CrCl 0.25 mL/min/kg): stopping it does not correct them.
    found = patient_view(make_facts(creatinine=4.5, conds=SOT, meds=(course,), viral=viral, labs={"potassium": 2.9}))
    assert "nephrotoxicity" in topics(found) and "electrolyte-abnormality" in topics(found)
    # In range: nothing; none current: the monitoring plan asks for them (no second card ordering them).
    assert "electrolyte-abnormality" not in topics(patient_view(make_facts(conds=SOT, meds=(course,), viral=viral)))
    stale = patient_view(make_facts(conds=SOT, meds=(course,), viral=viral, lab_ages={"potassium": 20, "magnesium": 20}))
    assert "electrolyte-abnormality" not in topics(stale) and "electrolytes" in only(stale, "monitoring-plan").summary


def test_a_failing_course_the_kidneys_rule_out_is_not_corrected_upward():
    # Cidofovir 150 mg weekly for 26 days (under the maintenance band's 350 mg every 2 weeks), viral load up
    # 1.2 log10, creatinine up 0.6: the label says stop.
    under = order("cidofovir", 150, 168, id="MedicationRequest/cdv", start=day(26))
    risen = [measurement("creatinine", 0.6, 30), measurement("creatinine", 1.2, 1)]
    found = patient_view(make_facts(creatinine=None, labs=risen, conds=SOT, meds=(under,), viral=REFRACTORY_VL))
    resistance = only(found, "suspected-resistance")
    assert doses(resistance) == [] and [p.test for p in resistance.proposals] == ["cmv-genotype"]
    assert "the label says not to give it for the kidneys (see the nephrotoxicity card)" in resistance.detail
    assert [p.order_id for p in stops(only(found, "nephrotoxicity"))] == [under.id]
    # Without the rise, the same course is corrected to the label dose first.
    found = patient_view(make_facts(conds=SOT, meds=(under,), viral=REFRACTORY_VL))
    assert [(p.dose_mg, p.interval_hours) for p in doses(only(found, "suspected-resistance"))] == [(350, 336)]
    # Its renewal drafted: not corrected upward either (the draft's critical card removes it, with the course).
    renewal = draft("cidofovir", 150, 168, id="MedicationRequest/cdv-renewal")
    labs = [*risen, measurement("urine_protein_dipstick", 0, 0.5, reported="negative")]
    facts = make_facts(creatinine=None, labs=labs, conds=SOT, meds=(under,), drafts=(renewal,), viral=REFRACTORY_VL)
    resistance = only(guidance(facts, POLICY, "order-sign", [renewal]), "suspected-resistance")
    assert doses(resistance) == [] and "not to be continued at any dose" in resistance.detail
    [remove] = stops(only(check_orders(facts, POLICY, [renewal]), "nephrotoxicity"))
    assert (remove.order_id, [a.order_id for a in remove.also]) == (renewal.id, [under.id])


# Cidofovir's course from its first dose (weekly x 2), then every 2 weeks; the viral load from before it.
CIDOFOVIR_FAILING_VL = (vl(3000, 36), vl(11800, 20), vl(45000, 2))
CIDOFOVIR_STEADY = [measurement("creatinine", 1.0, 40), measurement("creatinine", 1.0, 1),
                    measurement("urine_protein_dipstick", 0, 0.5, reported="negative")]
CIDOFOVIR_INDUCTION = order("cidofovir", 350, 168, id="MedicationRequest/cdv-ind", status="completed", start=day(35), end=day(22))


def test_a_cidofovir_course_every_2_weeks_is_still_treatment_judged_for_resistance():
    # Every 2 weeks after the two weekly doses is the same treatment course (not maintenance that no rule
    # reads): 35 days from its first dose, viral load up 1.2 log10 -> refractory.
    every_2_weeks = order("cidofovir", 350, 336, id="MedicationRequest/cdv-q2w", start=day(21))
    found = patient_view(make_facts(creatinine=None, labs=CIDOFOVIR_STEADY, conds=SOT,
                                    meds=(CIDOFOVIR_INDUCTION, every_2_weeks), viral=CIDOFOVIR_FAILING_VL))
    card = only(found, "suspected-resistance")
    assert card.summary.startswith("Refractory CMV: viral load up 1.2 log10 after 35 days of cidofovir")
    assert card.order_id == every_2_weeks.id and "[treatment] since " + day(35).isoformat() in card.detail
    assert [discontinued(p) for p in doses(card)] == [(every_2_weeks.id,)] * 2  # foscarnet or maribavir


def test_a_draft_that_continues_a_course_ended_on_record_is_judged_for_resistance():
    # Cidofovir ordered dose by dose: the next dose's draft continues the course whose orders have ended.
    last_dose = order("cidofovir", 350, 336, id="MedicationRequest/cdv-last", status="completed", start=day(21), end=day(21))
    next_dose = draft("cidofovir", 350, 336, id="MedicationRequest/cdv-next")
    probenecid = draft("probenecid", 2000, None, id="MedicationRequest/prb")
    facts = make_facts(creatinine=None, labs=CIDOFOVIR_STEADY, conds=SOT, meds=(CIDOFOVIR_INDUCTION, last_dose),
                       drafts=(next_dose, probenecid), viral=CIDOFOVIR_FAILING_VL)
    card = only(evaluate(facts, POLICY, "order-sign", facts.drafts), "suspected-resistance")
    assert "after 35 days of cidofovir" in card.summary
    switches = doses(card)
    assert switches and all(p.replaces == next_dose.id and probenecid.id in discontinued(p) for p in switches)
    # Valganciclovir renewed the day its order ended: the same course, failing after 26 days.
    ended = order("valganciclovir", 900, 12, id="MedicationRequest/vgc-ended", status="completed", start=day(26), end=day(1))
    renewal = draft("valganciclovir", 900, 12, id="MedicationRequest/vgc")
    facts = make_facts(conds=SOT, meds=(ended,), drafts=(renewal,), viral=(vl(3000, 27), vl(11800, 12), vl(45000, 2)))
    card = only(guidance(facts, POLICY, "order-sign", [renewal]), "suspected-resistance")
    assert "after 26 days of valganciclovir" in card.summary and all(p.replaces == renewal.id for p in doses(card))


@pytest.mark.parametrize("ended_days_ago, status, between", [
    (10, "completed", True), (21, "completed", True), (25, "completed", False), (5, "stopped", False)],
    ids=["10-days", "at-the-course-gap", "past-the-course-gap", "stopped-not-completed"])
def test_a_cidofovir_course_ordered_dose_by_dose_is_treatment_between_its_doses(ended_days_ago, status, between):
    # Every dose its own order, each completed the day it was given: the patient is on cidofovir until the
    # course gap (21 days, local policy) passes with no next dose; an order stopped is a course stopped, even
    # right after a completed dose.
    last_dose = order("cidofovir", 350, 336, id="MedicationRequest/cdv-last", status=status,
                      start=day(ended_days_ago), end=day(ended_days_ago))
    first = order("cidofovir", 350, 168, id="MedicationRequest/cdv-first", status="completed",
                  start=day(ended_days_ago + 7), end=day(ended_days_ago + 7))
    found = patient_view(make_facts(creatinine=None, labs=CIDOFOVIR_STEADY[:2], conds=SOT, meds=(first, last_dose),
                                    viral=(vl(3000, ended_days_ago + 22), vl(400, 10))))
    status_card = only(found, "cmv-status")
    if between:
        assert not {"cmv-treatment-regimen", "treatment-duration"} & set(topics(found))
        assert "on cidofovir" in status_card.summary and "**Between doses:**" in status_card.detail
        # The monitoring plan applies (the weekly PCR is overdue), with cidofovir's checks.
        plan = only(found, "monitoring-plan")
        assert plan.summary.startswith("On cidofovir") and "overdue CMV PCR" in plan.summary
        assert "cidofovir: serum creatinine and urine protein within 48 h before each dose" in plan.detail
    else:
        assert "no anti-CMV therapy" in status_card.summary and "cmv-treatment-regimen" in topics(found)


HIV_ONLY = conditions(populations=("hiv",), labels=("HIV infection",))  # viraemia with no card that starts treatment


@pytest.mark.parametrize("status, start, end, warned", [
    ("active", 0, 0, False),  # the dose given today: its order's end is not the course's
    ("completed", 10, 10, False),  # between doses
    ("completed", 25, 25, True),  # the course gap has passed with no next dose
    ("stopped", 5, 5, True),  # stopped, not completed
    ("completed", 20, 6, True),  # a course of weekly doses completed: over
], ids=["one-dose-today", "between-doses", "past-the-gap", "one-dose-stopped", "several-doses-completed"])
def test_a_cidofovir_course_ended_while_detectable(status, start, end, warned):
    cidofovir = order("cidofovir", 350, 168, id="MedicationRequest/cdv", status=status, start=day(start), end=day(end))
    found = patient_view(make_facts(creatinine=None, labs=CIDOFOVIR_STEADY[:2], conds=HIV_ONLY, meds=(cidofovir, BIKTARVY),
                                    viral=(vl(3000, 30), vl(20000, 2))))
    assert ("treatment-duration" in topics(found)) == warned
    if warned:
        assert "while CMV is detectable (20,000 IU/mL)" in only(found, "treatment-duration").summary


def test_a_cidofovir_course_start_counts_only_orders_known_to_belong_to_it():
    # A completed order of 200 days ago with no end date may have ended long before this course: the course
    # runs from the active order's start (16 days), and the probable-refractory rule reads it from there.
    old = order("cidofovir", 350, 168, id="MedicationRequest/cdv-old", status="completed", start=day(200))
    current = order("cidofovir", 350, 168, id="MedicationRequest/cdv", start=day(16))
    found = patient_view(make_facts(creatinine=None, labs=[measurement("creatinine", 1.0, 20), measurement("creatinine", 1.0, 1)],
                                    conds=SOT, meds=(old, current), viral=(vl(3000, 17), vl(3500, 2))))
    assert "on cidofovir 16 days" in only(found, "cmv-status").summary
    assert "after 16 days of cidofovir" in only(found, "suspected-resistance").summary


def test_a_dose_by_dose_course_is_judged_on_the_doses_given_not_the_next_dose_drafted():
    last_dose = order("cidofovir", 350, 336, id="MedicationRequest/cdv-last", status="completed", start=day(21), end=day(21))
    # Given at the label dose: refractory, whatever the next dose's draft says (its own card corrects it).
    low = draft("cidofovir", 175, 336, id="MedicationRequest/cdv-next")
    facts = make_facts(creatinine=None, labs=CIDOFOVIR_STEADY, conds=SOT, meds=(CIDOFOVIR_INDUCTION, last_dose),
                       drafts=(low,), viral=CIDOFOVIR_FAILING_VL)
    found = evaluate(facts, POLICY, "order-sign", facts.drafts)
    assert only(found, "suspected-resistance").summary.startswith("Refractory CMV")
    assert "too low" in only(found, "renal-dose-adjustment").summary
    # Given at half the label dose: under-dosed, not refractory; a draft at the label dose is the correction.
    half = [replace(o, dose_mg=175) for o in (CIDOFOVIR_INDUCTION, last_dose)]
    label_dose = draft("cidofovir", 350, 336, id="MedicationRequest/cdv-next")
    facts = make_facts(creatinine=None, labs=CIDOFOVIR_STEADY, conds=SOT, meds=half, drafts=(label_dose,),
                       viral=CIDOFOVIR_FAILING_VL)
    card = only(evaluate(facts, POLICY, "order-sign", facts.drafts), "suspected-resistance")
    assert card.summary.endswith("under-dosed for the kidneys: this draft corrects it") and not doses(card)


def test_hiv_retinitis_cidofovir_every_2_weeks_is_maintenance_not_a_failing_treatment():
    # As valganciclovir once daily after its induction: the retinitis maintenance, not judged for resistance.
    induction = order("valganciclovir", 900, 12, id="MedicationRequest/vgc", status="completed", start=day(50), end=day(29))
    maintenance = order("cidofovir", 350, 336, id="MedicationRequest/cdv", start=day(28))
    found = patient_view(make_facts(creatinine=None, labs=CIDOFOVIR_STEADY[:2], conds=HIV_RETINITIS,
                                    meds=(induction, maintenance, BIKTARVY), viral=(vl(300, 30), vl(900, 2))))
    assert "suspected-resistance" not in topics(found) and "[maintenance]" in only(found, "cmv-status").detail


def test_the_no_art_card_gives_the_valganciclovir_regimen_only_where_it_is_what_is_given():
    maintenance = order("cidofovir", 350, 336, id="MedicationRequest/cdv", start=day(28))
    regimen = "**Regimen (label; clinical brief):** valganciclovir 900 mg twice daily"
    for conds, meds, shown in ((HIV_RETINITIS, (order("valganciclovir", 900, 24, start=day(40)),), True),
                               (HIV_RETINITIS, (maintenance,), False),  # on cidofovir
                               (replace(HIV_RETINITIS, resistant_drugs=frozenset({"ganciclovir"})), (), False)):
        card = only(patient_view(make_facts(creatinine=None, labs=CIDOFOVIR_STEADY[:2], conds=conds, meds=meds,
                                            viral=(vl(900, 2),))), "hiv-retinitis")
        assert (regimen in card.detail) is shown, (meds, conds.resistant_drugs)
    # Resistant, with no treatment: the card starts foscarnet, with foscarnet's retinitis regimen (2-3 weeks).
    assert "**Regimen (foscarnet label; clinical brief):** induction 90 mg/kg every 12 h" in card.detail
    assert "**Start now (2-3 weeks): IV foscarnet" in card.detail


def test_a_failing_cidofovir_course_between_doses_is_judged_with_nothing_to_stop():
    # Dose by dose, the last dose a week ago: the genotype and a switch that stops no order (none runs).
    doses_given = (CIDOFOVIR_INDUCTION,
                   order("cidofovir", 350, 336, id="MedicationRequest/cdv-21", status="completed", start=day(21), end=day(21)),
                   order("cidofovir", 350, 336, id="MedicationRequest/cdv-7", status="completed", start=day(7), end=day(7)))
    card = only(patient_view(make_facts(creatinine=None, labs=CIDOFOVIR_STEADY, conds=SOT, meds=doses_given,
                                        viral=CIDOFOVIR_FAILING_VL)), "suspected-resistance")
    assert card.summary.startswith("Refractory CMV: viral load up 1.2 log10 after 35 days of cidofovir")
    assert doses(card) and all(not discontinued(p) for p in doses(card)) and not stops(card)
    assert "Give no further cidofovir dose" in card.detail
    # Given at half the label dose: not refractory; the next dose at the label dose (no order to correct).
    half = tuple(replace(o, dose_mg=175) for o in doses_given)
    card = only(patient_view(make_facts(creatinine=None, labs=CIDOFOVIR_STEADY, conds=SOT, meds=half,
                                        viral=CIDOFOVIR_FAILING_VL)), "suspected-resistance")
    assert card.summary.endswith("under-dosed for the kidneys: next dose 350 mg every 2 weeks")
    assert [p.test for p in card.proposals] == ["cmv-genotype"]


@pytest.mark.parametrize("drafted", [draft("valganciclovir", 900, 12, id="MedicationRequest/vgc"),
                                     draft("letermovir", 480, 24, id="MedicationRequest/ltv")], ids=["valganciclovir", "letermovir"])
def test_another_anti_cmv_drug_drafted_between_cidofovir_doses_is_two_agents(drafted):
    last_dose = order("cidofovir", 350, 336, id="MedicationRequest/cdv-7", status="completed", start=day(7), end=day(7))
    facts = make_facts(creatinine=None, labs=CIDOFOVIR_STEADY, conds=KIDNEY_COLITIS, meds=(last_dose,), drafts=(drafted, PROBENECID),
                       viral=(vl(3000, 20), vl(2000, 2)))
    found = evaluate(facts, POLICY, "order-sign", facts.drafts)
    card = only(found, "duplicate-therapy")
    assert card.indicator == "warning" and "during a cidofovir course (last dose" in card.summary
    # Text only: whether it replaces cidofovir is the clinician's (and other cards may change the draft).
    assert card.proposals == () and "order no further cidofovir dose; if not, remove this" in card.detail
    assert "prophylaxis-not-treatment" not in topics(found)  # no second treatment started
    # Its counts below the label: the critical card changes the draft to foscarnet, and the warning stays.
    if drafted.ingredient == "valganciclovir":
        facts = replace(facts, labs=make_facts(labs=[*CIDOFOVIR_STEADY, measurement("anc", 400, 0.5)]).labs)
        found = evaluate(facts, POLICY, "order-sign", facts.drafts)
        counts = only(found, "hematologic-toxicity")
        assert counts.indicator == "critical" and "duplicate-therapy" in topics(found)
        assert [(p.drug, p.replaces) for p in doses(counts)] == [("foscarnet", drafted.id)]
    # The course's next dose drafted: nothing to say.
    next_dose = draft("cidofovir", 350, 336, id="MedicationRequest/cdv-next")
    facts = make_facts(creatinine=None, labs=CIDOFOVIR_STEADY, conds=KIDNEY_COLITIS, meds=(last_dose,), drafts=(next_dose, PROBENECID),
                       viral=(vl(3000, 20), vl(2000, 2)))
    assert evaluate(facts, POLICY, "order-sign", facts.drafts) == []


LAST_DOSE = order("cidofovir", 350, 336, id="MedicationRequest/cdv-7", status="completed", start=day(7), end=day(7))


@pytest.mark.parametrize("last", [
    replace(LAST_DOSE, end=None, duration_days=1),  # one day by its duration (boundsDuration), no end date
    replace(LAST_DOSE, end=None),  # no end on record: it may have been one dose
    replace(LAST_DOSE, interval_hours=None, timing_basis=None),  # a one-off order, one day
    replace(LAST_DOSE, start=None),  # only its end on record
], ids=["duration-no-end", "no-end", "one-off", "end-only"])
def test_a_cidofovir_dose_with_no_end_date_is_between_doses_too(last):
    facts = make_facts(creatinine=None, labs=CIDOFOVIR_STEADY, conds=KIDNEY_COLITIS, meds=(last,), viral=(vl(3000, 20), vl(2000, 2)))
    found = patient_view(facts)
    assert "**Between doses:**" in only(found, "cmv-status").detail and "cmv-treatment-regimen" not in topics(found)
    valganciclovir = draft("valganciclovir", 900, 12, id="MedicationRequest/vgc")
    found = evaluate(replace(facts, drafts=(valganciclovir,)), POLICY, "order-sign", (valganciclovir,))
    assert_sound(found)
    assert f"(last dose {day(7).isoformat()})" in only(found, "duplicate-therapy").summary


def test_between_cidofovir_doses_the_kidneys_and_documented_resistance_still_speak():
    doses_given = (CIDOFOVIR_INDUCTION, order("cidofovir", 175, 336, id="MedicationRequest/cdv-21", status="completed",
                                              start=day(21), end=day(21)), replace(LAST_DOSE, dose_mg=175))
    # Proteinuria 3+: the label's stop, as a critical card with nothing to stop (no further dose); the
    # under-dosed failing course is not to be continued at any dose: the genotype only.
    labs = [*CIDOFOVIR_STEADY[:2], measurement("urine_protein_dipstick", 3, 0.5, reported="3+")]
    found = patient_view(make_facts(creatinine=None, labs=labs, conds=SOT, meds=doses_given, viral=CIDOFOVIR_FAILING_VL))
    kidneys = only(found, "nephrotoxicity")
    assert kidneys.indicator == "critical" and kidneys.summary.endswith("no further dose (label: stop)") and not kidneys.proposals
    resistance = only(found, "suspected-resistance")
    assert [p.test for p in resistance.proposals] == ["cmv-genotype"] and "not to be continued at any dose" in resistance.detail
    # Cidofovir documented resistant: the alternative, stopping nothing.
    resistant = replace(SOT, resistant_drugs=frozenset({"cidofovir"}))
    card = only(patient_view(make_facts(creatinine=None, labs=CIDOFOVIR_STEADY, conds=resistant, meds=doses_given,
                                        viral=CIDOFOVIR_FAILING_VL)), "alternative-therapy")
    assert doses(card) and all(not discontinued(p) for p in doses(card)) and not stops(card)
    assert "Give no further cidofovir dose" in card.detail


def test_another_course_started_after_the_last_cidofovir_dose_ends_the_between_doses_state():
    foscarnet = order("foscarnet", 4900, 12, id="MedicationRequest/fos", start=day(3))
    found = patient_view(make_facts(creatinine=None, labs=CIDOFOVIR_STEADY, conds=SOT,
                                    meds=(CIDOFOVIR_INDUCTION, LAST_DOSE, foscarnet), viral=CIDOFOVIR_FAILING_VL))
    status = only(found, "cmv-status")
    assert "on foscarnet" in status.summary and "Between doses" not in status.detail
    assert all("cidofovir" not in f.summary for f in found if f.topic == "suspected-resistance")
    # One begun before the last cidofovir dose runs beside it: the cidofovir course goes on.
    beside = replace(foscarnet, start=day(30))
    found = patient_view(make_facts(creatinine=None, labs=CIDOFOVIR_STEADY, conds=SOT,
                                    meds=(CIDOFOVIR_INDUCTION, LAST_DOSE, beside), viral=CIDOFOVIR_FAILING_VL))
    assert "**Between doses:**" in only(found, "cmv-status").detail
    # The next cidofovir dose drafted with valganciclovir: order safety's duplicate card speaks of the pair, once.
    next_dose = draft("cidofovir", 350, 336, id="MedicationRequest/cdv-next")
    valganciclovir = draft("valganciclovir", 900, 12, id="MedicationRequest/vgc")
    facts = make_facts(creatinine=None, labs=CIDOFOVIR_STEADY, conds=SOT, meds=(LAST_DOSE,), drafts=(next_dose, valganciclovir),
                       viral=(vl(3000, 20), vl(2000, 2)))
    duplicates = [f for f in evaluate(facts, POLICY, "order-sign", facts.drafts) if f.topic == "duplicate-therapy"]
    assert len(duplicates) == 1 and "during a cidofovir course" not in duplicates[0].summary


def test_a_planned_duration_past_the_calendar_is_no_end_and_no_crash():
    # boundsDuration of 5e9 days read as a number: the order has no end to read (it raised OverflowError).
    endless = replace(LAST_DOSE, end=None, duration_days=5e9)
    found = patient_view(make_facts(creatinine=None, labs=CIDOFOVIR_STEADY, conds=SOT, meds=(endless,), viral=(vl(3000, 2),)))
    assert "cmv-status" in topics(found)
    for drafted in (draft("valganciclovir", 900, 12, duration_days=5e9), draft("letermovir", 480, 24, duration_days=5e9)):
        hsct = conditions(populations=("hsct",), hsct_date=day(20), infection=True)
        assert_sound(evaluate(make_facts(conds=hsct, drafts=(drafted,), viral=(vl(3000, 2),)), POLICY, "order-sign", (drafted,)))


def test_a_single_cidofovir_dose_ordered_is_not_a_course_set_too_short():
    # Cidofovir ordered dose by dose: a weekly order that ends the day it starts is one dose, not a 1-day course.
    one = draft("cidofovir", 350, 168, id="MedicationRequest/cdv-one", start=day(0), end=day(0))
    facts = make_facts(creatinine=None, labs=CIDOFOVIR_STEADY, conds=SOT, drafts=(one,), viral=(vl(3000, 3),))
    assert "treatment-duration" not in topics(guidance(facts, POLICY, "order-sign", [one]))
    # A valganciclovir order for 7 days is a course set too short.
    short = draft("valganciclovir", 900, 12, id="MedicationRequest/vgc-7", start=day(0), end=day(-6))
    facts = make_facts(conds=SOT, drafts=(short,), viral=(vl(3000, 3),))
    assert "treatment-duration" in topics(guidance(facts, POLICY, "order-sign", [short]))


def test_prophylaxis_with_critical_counts_is_stopped_by_the_treatment_start_not_switched_twice():
    prophylaxis = order("valganciclovir", 900, 24, id="MedicationRequest/proph", start=day(60))
    found = patient_view(make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(prophylaxis,), labs={"anc": 400.0}))
    [start] = doses(only(found, "cmv-treatment-regimen"))
    assert start.drug == "foscarnet" and start.interval_hours == 12 and discontinued(start) == (prophylaxis.id,)
    counts = only(found, "hematologic-toxicity")
    assert doses(counts) == [] and "**Alternative:** proposed on the card" in counts.detail


def test_probable_refractory_when_viral_load_is_not_falling():
    facts = make_facts(viral=(vl(3000, 26), vl(5000, 2)), meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))
    card = only(patient_view(facts), "suspected-resistance")
    assert card.summary.startswith("Probable refractory CMV")
    assert "maribavir" not in {p.drug for p in doses(card)}  # not post-transplant


@pytest.mark.parametrize("latest, summary", [
    (32900, "Refractory CMV: viral load up 1.04 log10"),  # 3000 -> 32,900: 1.04, over the 1 log10 limit
    (30000, "Probable refractory CMV: viral load up 1 log10"),  # exactly 1: not over it
])
@pytest.mark.parametrize("first", [3000, 1234])  # 1234 -> 12340: 1.0000000000000004 in floats, still tenfold
def test_a_rise_near_1_log10_is_never_shown_rounded_onto_the_limit(latest, summary, first):
    latest = latest * first / 3000
    facts = make_facts(viral=(vl(first, 26), vl(latest, 2)), meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))
    assert only(patient_view(facts), "suspected-resistance").summary.startswith(summary)


def test_no_resistance_card_before_two_weeks_of_therapy():
    recent = order("valganciclovir", 900, 12, id="MedicationRequest/valgan", start=day(10))
    facts = make_facts(viral=(vl(3000, 11), vl(45000, 2)), meds=(recent,))
    assert "suspected-resistance" not in topics(patient_view(facts))


def test_no_resistance_card_when_viral_load_falls():
    facts = make_facts(viral=(vl(30000, 26), vl(2000, 2)), meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))
    assert "suspected-resistance" not in topics(patient_view(facts))


def test_scales_are_never_mixed():
    facts = make_facts(
        viral=(vl(3000, 26, scale="copies/mL"), vl(45000, 2)),
        meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),),
    )
    assert "suspected-resistance" not in topics(patient_view(facts))


def test_an_under_dosed_course_is_not_called_refractory_and_its_dose_is_corrected_first():
    under = order("valganciclovir", 450, 12, **VALGAN_TREATMENT)  # CrCl 77.8: label 900 mg twice daily
    facts = make_facts(viral=REFRACTORY_VL, meds=(under,))
    card = only(patient_view(facts), "suspected-resistance")
    assert "Under-dosed for the kidneys" in card.detail and "refractory" not in card.summary.lower()
    assert card.summary.endswith("under-dosed for the kidneys: correct to 900 mg twice daily")
    first, genotype = card.proposals  # no switch yet: it waits for 2 weeks at the label dose
    assert (first.drug, first.dose_mg, first.interval_hours, first.recommended) == ("valganciclovir", 900, 12, True)
    assert first.replaces == under.id  # the course's order is updated: no second order
    assert genotype.test == "cmv-genotype" and not genotype.recommended
    assert "Switch to foscarnet" not in card.detail and "Correct the dose first" in card.detail


def test_resistance_on_order_hook_when_the_refractory_course_is_renewed():
    facts = make_facts(
        viral=REFRACTORY_VL,
        meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),),
        drafts=(draft("valganciclovir", 900, 12, duration_days=21),),
    )
    card = only(order_sign(facts), "suspected-resistance")
    # The renewal draft becomes the switch, and the course on record stops with it (never both drugs).
    assert all(p.replaces == "MedicationRequest/valganciclovir-draft" for p in doses(card))
    assert all(discontinued(p) == ("MedicationRequest/valgan",) for p in doses(card))
    assert "Stop the valganciclovir order (MedicationRequest/valgan) when its replacement starts" in card.detail


def test_on_order_hooks_an_under_dosed_renewal_is_not_corrected_upward_when_counts_rule_it_out():
    facts = make_facts(
        viral=REFRACTORY_VL, labs={"anc": 400.0},
        meds=(order("valganciclovir", 450, 12, **VALGAN_TREATMENT),),
        drafts=(draft("valganciclovir", 450, 12, duration_days=21),),
    )
    card = only(order_sign(facts), "suspected-resistance")
    assert doses(card) == [] and "not to be continued at any dose" in card.detail


# ---------------------------------------------------------------------------------------------
# cns-disease-combination, pneumonitis-ivig

CNS = conditions(populations=("sot",), sites=("cns",), labels=("CMV encephalitis",))


def test_cns_disease_without_therapy_adds_renal_foscarnet_to_the_regimen():
    facts = make_facts(conds=CNS, viral=RISING)
    found = patient_view(facts)
    card = only(found, "cns-disease-combination")
    [foscarnet] = doses(card)
    assert_dose_is(foscarnet, dose("foscarnet", "induction", facts, "90q12h"))
    assert [p.drug for p in doses(only(found, "cmv-treatment-regimen"))] == ["ganciclovir"]
    # How to give it, as every card proposing foscarnet says.
    assert "Hydration: 750-1000 mL before the first dose and with each dose (label)." in card.detail


def test_no_cns_combination_for_a_ganciclovir_course_the_counts_rule_out():
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv-iv", route="iv", start=day(3))
    found = patient_view(make_facts(conds=CNS, viral=RISING, meds=(iv,), labs={"anc": 400.0}))
    assert "cns-disease-combination" not in topics(found)
    assert [p.drug for p in doses(only(found, "hematologic-toxicity"))] == ["foscarnet"]


def test_cns_card_on_ganciclovir_draft_alone_and_quiet_with_foscarnet():
    gcv = draft("ganciclovir", 350, 12, route="iv")
    assert "cns-disease-combination" in topics(order_sign(make_facts(conds=CNS, viral=RISING, drafts=(gcv,))))
    with_foscarnet = make_facts(
        conds=CNS, viral=RISING, drafts=(gcv,), meds=(order("foscarnet", 6300, 12, route="iv", start=day(1)),)
    )
    assert "cns-disease-combination" not in topics(order_sign(with_foscarnet))


def test_cns_combination_only_initially():
    # "ganciclovir plus foscarnet may be preferred initially": not after the combination was given, once the
    # PCR is no longer detected, nor after the step-down to oral valganciclovir.
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv-iv", route="iv", start=day(4))
    assert "cns-disease-combination" in topics(patient_view(make_facts(conds=CNS, viral=RISING, meds=(iv,))))
    given = order("foscarnet", 6300, 12, id="MedicationRequest/fos", route="iv", start=day(4), end=day(1), status="completed")
    assert "cns-disease-combination" not in topics(patient_view(make_facts(conds=CNS, viral=RISING, meds=(iv, given))))
    cleared = make_facts(conds=CNS, viral=(not_detected(2),), meds=(iv,))
    assert "cns-disease-combination" not in topics(patient_view(cleared))
    # Untreated CNS disease can be PCR-negative in blood: still said before the first dose.
    untreated = draft("ganciclovir", 350, 12, route="iv")
    assert "cns-disease-combination" in topics(order_sign(make_facts(conds=CNS, viral=(not_detected(2),), drafts=(untreated,))))
    oral = draft("valganciclovir", 900, 12)
    assert "cns-disease-combination" not in topics(order_sign(make_facts(conds=CNS, viral=RISING, meds=(iv,), drafts=(oral,))))
    # Valganciclovir as the first treatment (drafted, or begun on record) is no step-down: still said.
    assert "cns-disease-combination" in topics(order_sign(make_facts(conds=CNS, viral=RISING, drafts=(oral,))))
    first = order("valganciclovir", 900, 12, id="MedicationRequest/vgc", start=day(2))
    assert "cns-disease-combination" in topics(patient_view(make_facts(conds=CNS, viral=RISING, meds=(first,))))


def test_cns_card_says_iv_ganciclovir_first_when_valganciclovir_starts_the_course():
    # The brief starts CMV disease on IV ganciclovir for 3-5 days, valganciclovir after clinical improvement.
    oral_line = "**Oral valganciclovir starts this course.**"
    oral = draft("valganciclovir", 900, 12)
    facts = make_facts(conds=CNS, viral=RISING, drafts=(oral,), creatinine=1.5)
    card = only(order_sign(facts), "cns-disease-combination")
    assert card.summary.startswith("CMV encephalitis/myelitis: IV ganciclovir plus foscarnet") and oral_line in card.detail
    # The IV dose for the patient's kidneys, not the brief's 5 mg/kg alone.
    iv = dose("ganciclovir", "induction", facts)
    assert iv.mg_per_kg < 5 and f"for this patient's kidneys IV ganciclovir {iv.dose_mg:g} mg every 12 h" in card.detail
    # IV ganciclovir drafted with it: not an oral start (the duplicate card removes the tablets).
    both = make_facts(conds=CNS, viral=RISING, drafts=(oral, draft("ganciclovir", 350, 12, route="iv")))
    assert all(oral_line not in f.detail for f in order_sign(both))
    first = order("valganciclovir", 900, 12, id="MedicationRequest/vgc", start=day(2))
    card = only(patient_view(make_facts(conds=CNS, viral=RISING, meds=(first,))), "cns-disease-combination")
    assert "IV ganciclovir plus" in card.summary and oral_line in card.detail
    # On IV ganciclovir, or with no treatment (the regimen card's IV ganciclovir): nothing said of the route.
    for found in (order_sign(make_facts(conds=CNS, viral=RISING, drafts=(draft("ganciclovir", 350, 12, route="iv"),))),
                  patient_view(make_facts(conds=CNS, viral=RISING))):
        card = only(found, "cns-disease-combination")
        assert card.summary.startswith("CMV encephalitis/myelitis: ganciclovir plus") and oral_line not in card.detail


def test_cns_card_does_not_add_foscarnet_documented_resistant():
    gcv = draft("ganciclovir", 350, 12, route="iv")
    resistant = replace(CNS, resistant_drugs=frozenset({"foscarnet"}))
    assert "cns-disease-combination" not in topics(order_sign(make_facts(conds=resistant, viral=RISING, drafts=(gcv,))))
    assert "cns-disease-combination" not in topics(patient_view(make_facts(conds=resistant, viral=RISING)))


def test_no_foscarnet_added_to_a_ganciclovir_draft_another_card_switches():
    # A UL54 mutation documents ganciclovir resistance: the alternative-therapy card changes the draft to
    # foscarnet (or maribavir); adding foscarnet to the same draft as well would order foscarnet twice.
    gcv = draft("ganciclovir", 350, 12, route="iv")
    mutation = replace(CNS, resistance_genes=frozenset({"UL54"}))
    found = order_sign(make_facts(conds=mutation, viral=RISING, drafts=(gcv,)))
    switch = only(found, "alternative-therapy")
    assert [(p.drug, p.replaces) for p in doses(switch)] == [("foscarnet", gcv.id), ("maribavir", gcv.id)]
    assert "cns-disease-combination" not in topics(found)


def test_cns_card_warns_when_a_documented_mutation_may_affect_foscarnet():
    # A UL54 mutation recorded as conferring cidofovir resistance: ganciclovir is not documented resistant,
    # so the combination stands, with the line that the mutation may also affect foscarnet.
    gcv = draft("ganciclovir", 350, 12, route="iv")
    mutation = replace(CNS, resistance_genes=frozenset({"UL54"}), attributed_genes=frozenset({"UL54"}),
                       resistant_drugs=frozenset({"cidofovir"}))
    card = only(order_sign(make_facts(conds=mutation, viral=RISING, drafts=(gcv,))), "cns-disease-combination")
    assert "UL54 mutations can also confer foscarnet resistance" in card.detail
    assert "resistance-definitions" in {s.key for s in card.sources}
    assert [p.recommended for p in doses(card)] == [False]


def test_pneumonitis_ivig_only_for_pneumonitis():
    pneumonitis = conditions(populations=("hsct",), sites=("pneumonitis",), labels=("CMV pneumonitis",))
    card = only(patient_view(make_facts(conds=pneumonitis, viral=RISING)), "pneumonitis-ivig")
    assert "every other day for 3-5 doses" in card.summary and card.proposals == ()
    assert "pneumonitis-ivig" not in topics(patient_view(make_facts(conds=KIDNEY_COLITIS, viral=RISING)))


def test_pneumonitis_ivig_not_proposed_again_after_a_course():
    pneumonitis = conditions(populations=("hsct",), sites=("pneumonitis",), labels=("CMV pneumonitis",))
    given = order(None, id="MedicationRequest/ivig", start=day(10), end=day(4), status="completed",
                  drug_text="immune globulin intravenous (human) 10% solution")
    assert "pneumonitis-ivig" not in topics(patient_view(make_facts(conds=pneumonitis, viral=RISING, meds=(given,))))
    # Hepatitis B immune globulin is not the adjunct: still proposed.
    hbig = order(None, id="MedicationRequest/hbig", start=day(30), drug_text="hepatitis B immune globulin (human)")
    assert "pneumonitis-ivig" in topics(patient_view(make_facts(conds=pneumonitis, viral=RISING, meds=(hbig,))))


def test_a_switch_from_maintenance_during_treatment_level_viraemia_starts_the_new_drug_at_induction():
    induction = order("valganciclovir", 900, 12, id="MedicationRequest/ind", start=day(40), end=day(19), status="completed")
    maintenance = order("valganciclovir", 900, 24, id="MedicationRequest/maint", start=day(18))
    low = make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(induction, maintenance), labs={"anc": 400.0})
    critical = only(patient_view(low), "hematologic-toxicity")
    assert "**Alternative: foscarnet** (induction" in critical.detail
    assert [(p.drug, p.interval_hours) for p in doses(critical)] == [("foscarnet", 12)]
    resistant = replace(KIDNEY_COLITIS, resistant_drugs=frozenset({"ganciclovir"}))
    switch = only(patient_view(make_facts(conds=resistant, viral=RISING, meds=(induction, maintenance))), "alternative-therapy")
    [foscarnet] = [p for p in doses(switch) if p.drug == "foscarnet"]
    assert foscarnet.interval_hours == 12  # induction (90 mg/kg q12h band), not the daily maintenance
    quiet = make_facts(conds=resistant, viral=(not_detected(3),), meds=(induction, maintenance))
    [kept] = [p for p in doses(only(patient_view(quiet), "alternative-therapy")) if p.drug == "foscarnet"]
    assert kept.interval_hours == 24  # viraemia controlled: maintenance follows maintenance


# ---------------------------------------------------------------------------------------------
# hiv-retinitis

HIV_RETINITIS = conditions(populations=("hiv",), sites=("retinitis",), labels=("HIV infection", "CMV retinitis"))


@pytest.mark.parametrize("conds, topic", [(KIDNEY_COLITIS, "cmv-treatment-regimen"), (HIV_RETINITIS, "hiv-retinitis")])
def test_a_child_s_regimen_card_gives_no_adult_doses(conds, topic):
    card = only(patient_view(make_facts(age=12, weight_kg=35, conds=conds, viral=RISING)), topic)
    assert "**Regimen" in card.detail and "the adult regimen is not given: adult dose bands do not apply" in card.detail
    assert not any(words in card.detail for words in ("900 mg", "5 mg/kg"))
    assert not doses(card)


def test_hiv_retinitis_without_treatment_starts_21_day_valganciclovir_induction():
    facts = make_facts(conds=HIV_RETINITIS, viral=(vl(5600, 3),), meds=(BIKTARVY,))
    found = patient_view(facts)
    assert "cmv-treatment-regimen" not in topics(found)  # the HIV regimen replaces the generic one
    card = only(found, "hiv-retinitis")
    [valgan] = doses(card)
    assert_dose_is(valgan, dose("valganciclovir", "induction", facts))
    assert valgan.duration_days == 21 and "Biktarvy" in card.detail
    # The brief's monitoring during treatment, as on the other treatment cards.
    assert "**Monitoring:** CMV PCR weekly until undetectable" in card.detail
    assert [p.test for p in card.proposals if isinstance(p, LabOrderProposal)] == ["cmv-pcr", "cbc"]


def test_after_transplant_positives_too_old_to_act_on_ask_for_a_new_pcr():
    # Two positives at the trigger, the newer 18 days old (over the policy's 14): no therapy started on them, and
    # the status card, the only card, asks for a repeat PCR now (in an open HSCT window the hsct card does).
    kidney = conditions(populations=("sot",), organs=("kidney",))
    found = patient_view(make_facts(conds=kidney, viral=(vl(3800, 25), vl(12500, 18))))
    status = only(found, "cmv-status")
    assert status.indicator == "warning" and status.summary.endswith("positive results not repeated, repeat CMV PCR now")
    assert "**Trigger met, but more than 14 days ago:**" in status.detail
    assert [(p.test, p.recommended) for p in status.proposals] == [("cmv-pcr", True)]
    assert "cmv-treatment-regimen" not in topics(found)
    # Not with CMV disease (the regimen card treats it), nor once older than twice the limit (a past episode),
    # nor with the orders on record not had (a course may be running).
    colitis = conditions(populations=("sot",), organs=("kidney",), sites=("gi",))
    for facts in (make_facts(conds=colitis, viral=(vl(3800, 25), vl(12500, 18))),
                  make_facts(conds=kidney, viral=(vl(3800, 60), vl(12500, 45))),
                  make_facts(conds=kidney, viral=(vl(3800, 25), vl(12500, 18)), quality=LOST_ORDERS)):
        assert only(patient_view(facts), "cmv-status").proposals == ()
    # Fresh, the regimen card starts pre-emptive therapy and the status card is the usual info.
    found = patient_view(make_facts(conds=kidney, viral=(vl(3800, 9), vl(12500, 2))))
    assert "cmv-treatment-regimen" in topics(found) and only(found, "cmv-status").indicator == "info"
    assert only(found, "cmv-status").proposals == ()


def test_a_threshold_in_iu_that_copies_cannot_be_compared_with_is_said_not_checked():
    # The policy's threshold is in IU/mL; the two positive PCRs are in copies/mL: not converted, so whether
    # pre-emptive therapy is due is not known, and the status card says so (it had said nothing).
    kidney = conditions(populations=("sot",), organs=("kidney",))
    copies = (vl(4500, 9, scale="copies/mL"), vl(23000, 2, scale="copies/mL"))
    policy = replace(POLICY, preemptive_viral_load_iu_ml=1000)
    found = patient_view(make_facts(conds=kidney, viral=copies), policy)
    status = only(found, "cmv-status")
    assert status.indicator == "warning" and status.summary.endswith("pre-emptive trigger not checked (copies/mL)")
    assert "**Pre-emptive trigger not checked:** 2 consecutive positive CMV PCR results: 23000 copies/mL" in status.detail
    assert "(not all in IU/mL: the local threshold is 1000 IU/mL)" in status.detail
    # Positives too old to start therapy on, or over 200 days old, or during a course: no such warning.
    # Qualitative "detected" results are no copies/mL: nothing to compare, and nothing said of copies either.
    for viral, meds in (((vl(4500, 40, scale="copies/mL"), vl(23000, 33, scale="copies/mL")), ()),
                        ((vl(None, 9, scale=None), vl(None, 2, scale=None)), ()),
                        (copies, (order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))):
        found = patient_view(make_facts(conds=kidney, viral=viral, meds=meds), policy)
        assert "not checked" not in only(found, "cmv-status").summary
    assert "cmv-treatment-regimen" not in topics(found)
    # Without a threshold, copies/mL positives meet the trigger: the regimen card starts therapy.
    found = patient_view(make_facts(conds=kidney, viral=copies))
    assert "cmv-treatment-regimen" in topics(found) and only(found, "cmv-status").indicator == "info"


def test_a_first_positive_pcr_after_transplant_says_the_next_pcr_decides():
    # The brief starts pre-emptive therapy after two consecutive positive PCRs: one positive, off treatment, is no
    # trigger yet; the status card (info, the only card) says the next PCR decides.
    hsct = conditions(populations=("hsct",), hsct_date=day(60))
    one = (vl(2300, 3), not_detected(10))
    found = patient_view(make_facts(conds=hsct, viral=one))
    status = only(found, "cmv-status")
    assert topics(found) == ["cmv-status"] and status.indicator == "info"
    assert status.summary.endswith("no anti-CMV therapy; 1 of 2 positive PCRs for pre-emptive therapy")
    assert ("**Pre-emptive trigger (local policy):** 2 consecutive positive CMV PCR results; so far 1: 2300 IU/mL"
            in status.detail and "The next CMV PCR decides" in status.detail)
    # After a kidney transplant too; with a threshold, counted against it; three needed: two more to go.
    kidney = conditions(populations=("sot",), organs=("kidney",))
    assert "1 of 2 positive PCRs" in only(patient_view(make_facts(conds=kidney, viral=one)), "cmv-status").summary
    below = replace(POLICY, preemptive_viral_load_iu_ml=5000)
    assert "positive PCRs" not in only(patient_view(make_facts(conds=hsct, viral=one), below), "cmv-status").summary
    three = replace(POLICY, preemptive_consecutive_pcr=3)
    status = only(patient_view(make_facts(conds=hsct, viral=one), three), "cmv-status")
    assert "1 of 3 positive PCRs" in status.summary and "2 more positive CMV PCR results in a row" in status.detail
    assert "the brief gives two consecutive positive PCR results; the count is local policy" in status.detail
    # A result that could not be read between two positives: no count.  In an open HSCT window its card asks to
    # repeat the PCR; after a kidney transplant the status card does (a warning with the PCR to order).
    between = make_facts(conds=hsct, viral=(vl(2300, 3), vl(900, 10)), unread_pcr=(6,))
    found = patient_view(between)
    assert "positive PCRs" not in only(found, "cmv-status").summary and "unreadable" not in only(found, "cmv-status").summary
    status = only(patient_view(make_facts(conds=kidney, viral=(vl(2300, 3), vl(900, 10)), unread_pcr=(6,))), "cmv-status")
    assert status.indicator == "warning" and "unreadable" in status.summary and status.summary.endswith("repeat CMV PCR now")
    assert [p.test for p in status.proposals] == ["cmv-pcr"] and "not counted as in a row" in status.detail
    # The same pair too old to start therapy on (but not twice that) still asks, as an unbroken one does.
    old = only(patient_view(make_facts(conds=kidney, viral=(vl(2300, 20), vl(900, 27)), unread_pcr=(24,))), "cmv-status")
    assert old.indicator == "warning" and [p.test for p in old.proposals] == ["cmv-pcr"]
    # Not with the trigger met (the regimen card starts therapy), an old positive, or on treatment.
    for viral, meds in (((vl(2300, 3), vl(900, 10)), ()), ((vl(2300, 30), not_detected(40)), ()),
                        (one, (order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))):
        assert "positive PCRs" not in only(patient_view(make_facts(conds=hsct, viral=viral, meds=meds)), "cmv-status").summary


def test_courses_on_record_given_at_once_get_a_duplicate_therapy_card():
    # IV ganciclovir beside valganciclovir (twice the ganciclovir), the family beside foscarnet outside CNS
    # disease: a warning each, naming the orders, text only (which to keep is the clinician's).
    iv = order("ganciclovir", 175, 12, id="MedicationRequest/gcv", start=day(8), route="iv")
    tablets = order("valganciclovir", 900, 12, id="MedicationRequest/vgc", start=day(4))
    foscarnet = order("foscarnet", 3500, 12, id="MedicationRequest/fos", start=day(4))
    for meds, what in (((iv, tablets), "two ganciclovir-family orders"), ((iv, foscarnet), "ganciclovir family and foscarnet")):
        card = only(patient_view(make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=meds)), "duplicate-therapy")
        assert card.indicator == "warning" and card.summary == f"Anti-CMV courses given at once: {what}: check which to give"
        assert card.proposals == () and all(m.id in card.detail for m in meds)
    # Letermovir beside treatment: info, its discontinuation offered (as the order hooks do).
    letermovir = order("letermovir", 480, 24, id="MedicationRequest/ltv", start=day(60))
    card = only(patient_view(make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(iv, letermovir))), "duplicate-therapy")
    assert card.indicator == "info" and [(p.order_id, p.recommended) for p in stops(card)] == [(letermovir.id, True)]


def test_letermovir_beside_ganciclovir_family_prophylaxis_on_record_gets_an_info_card():
    # Two prophylaxis agents being given: info, text only (which to keep is the clinician's).
    hsct = conditions(populations=("hsct",))
    letermovir = order("letermovir", 480, 24, id="MedicationRequest/ltv", start=day(30))
    prevention = order("valganciclovir", 900, 24, id="MedicationRequest/vgc", start=day(5))
    card = only(patient_view(make_facts(conds=hsct, meds=(letermovir, prevention))), "duplicate-therapy")
    assert (card.indicator, card.summary, card.proposals) == (
        "info", "Anti-CMV courses given at once: two prophylaxis agents: check which to give", ())
    assert letermovir.id in card.detail and prevention.id in card.detail and "both are CMV prophylaxis" in card.detail
    # A handover (letermovir ends today), or either alone: nothing.
    for meds in ((replace(letermovir, end=day(0)), prevention), (letermovir,), (prevention,)):
        assert "duplicate-therapy" not in topics(patient_view(make_facts(conds=hsct, meds=meds)))
    # CMV disease: the regimen card starts treatment, discontinuing the prophylaxis as it orders; no such card.
    found = patient_view(make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(letermovir, prevention)))
    assert "cmv-treatment-regimen" in topics(found) and "duplicate-therapy" not in topics(found)
    # On the order hooks, a prevention dose drafted for CMV disease is prophylaxis where treatment is needed: its
    # card proposes the treatment, discontinuing the letermovir as it orders; no switch of prophylaxis, and no
    # duplicate card saying the same again.
    facts = make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(letermovir,), drafts=(draft("valganciclovir", 900, 24),))
    found = evaluate(facts, POLICY, "order-sign", facts.drafts)
    [treatment] = doses(only(found, "prophylaxis-not-treatment"))
    assert letermovir.id in {s.order_id for s in treatment.also} and "duplicate-therapy" not in topics(found)


@pytest.mark.parametrize("meds", [
    # The brief's combination for CNS disease is below; one course alone:
    (order("ganciclovir", 175, 12, id="MedicationRequest/gcv", start=day(8), route="iv"),),
    # a handover: the IV order ends today as the tablets begin,
    (order("ganciclovir", 175, 12, id="MedicationRequest/gcv", start=day(14), end=day(0), route="iv"),
     order("valganciclovir", 900, 12, id="MedicationRequest/vgc", start=day(0))),
    # an order on hold,
    (order("ganciclovir", 175, 12, id="MedicationRequest/gcv", start=day(14), status="on-hold", route="iv"),
     order("valganciclovir", 900, 12, id="MedicationRequest/vgc", start=day(4))),
], ids=["alone", "handover", "on-hold"])
def test_courses_not_given_at_once_get_no_duplicate_card(meds):
    found = patient_view(make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=meds))
    assert "duplicate-therapy" not in topics(found)


def test_a_duplicate_on_record_is_left_to_a_card_that_stops_it_but_not_to_an_optional_step_down():
    # IV ganciclovir on its band and a prevention dose left running: the step-down (info, "after clinical
    # improvement", not recommended) would end both, but both are being given today: the warning stays.
    meds = (order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(14), route="iv"),
            order("valganciclovir", 900, 24, id="MedicationRequest/vgc-ppx", start=day(40)))
    found = patient_view(make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=meds))
    assert "duplicate-therapy" in topics(found) and "cmv-treatment-regimen" in topics(found)
    # Counts below the label: the critical card stops the family's orders, so no duplicate card besides it.
    found = patient_view(make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=meds, labs={"anc": 400.0}))
    assert "hematologic-toxicity" in topics(found) and "duplicate-therapy" not in topics(found)


@pytest.mark.parametrize("tablets", [
    order("valganciclovir", 900, 24, id="MedicationRequest/vgc", start=day(0)),  # a maintenance dose
    order("valganciclovir", 900, 12, id="MedicationRequest/vgc", start=day(0), status="on-hold"),
    order("valganciclovir", 900, 12, id="MedicationRequest/vgc", start=day(-20)),  # starting in 20 days
], ids=["maintenance-dose", "on-hold", "starting-later"])
def test_an_iv_course_ending_without_treatment_carrying_on_is_said(tablets):
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(14), end=day(0), route="iv")
    found = patient_view(make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(iv, tablets)))
    assert any(f.summary.startswith("Ganciclovir ends") and "while CMV is detectable" in f.summary for f in found)


@pytest.mark.parametrize("starts", [0, -1], ids=["same-day", "next-day"])  # FHIR's end date is the last day given
def test_an_iv_course_handing_over_to_tablets_is_no_end_of_treatment(starts):
    # IV ganciclovir ends today as valganciclovir carries the course on: not "ends while CMV is detectable".
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(14), end=day(0), route="iv")
    tablets = order("valganciclovir", 900, 12, id="MedicationRequest/vgc", start=day(starts))
    found = patient_view(make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(iv, tablets)))
    assert not any("while CMV is detectable" in f.summary for f in found)
    # For HIV retinitis, the maintenance dose is the regimen's next step: it carries the course on too.
    maintenance = order("valganciclovir", 900, 24, id="MedicationRequest/vgc", start=day(starts))
    retinitis_iv = replace(iv, start=day(21))
    found = patient_view(make_facts(conds=HIV_RETINITIS, viral=(vl(900, 2),), meds=(retinitis_iv, maintenance, BIKTARVY)))
    assert not any("while CMV is detectable" in f.summary for f in found)
    # Alone, its end is the end of treatment.
    found = patient_view(make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(iv,)))
    assert any(f.summary.startswith("Ganciclovir ends") and "while CMV is detectable" in f.summary for f in found)


def test_ganciclovir_with_foscarnet_for_cns_disease_is_no_duplicate_on_record():
    iv = order("ganciclovir", 175, 12, id="MedicationRequest/gcv", start=day(8), route="iv")
    foscarnet = order("foscarnet", 3500, 12, id="MedicationRequest/fos", start=day(4))
    cns = conditions(populations=("sot",), organs=("kidney",), sites=("cns",))
    assert "duplicate-therapy" not in topics(patient_view(make_facts(conds=cns, viral=RISING, meds=(iv, foscarnet))))


LOST_ORDERS = (DataQualityIssue("missing", "medications", "medication orders on record could not be retrieved (HTTP 404)"),)


def test_orders_on_record_not_retrieved_are_no_proof_of_no_treatment():
    # Whether a course already runs is not known: the start cards say so and recommend nothing, the status card
    # does not say "no anti-CMV therapy", and no card says there is no ART.
    found = patient_view(make_facts(conds=KIDNEY_COLITIS, viral=RISING, quality=LOST_ORDERS))
    card = only(found, "cmv-treatment-regimen")
    assert ", treatment on record unknown, if none: start IV ganciclovir" in card.summary
    assert "**Orders on record could not be retrieved:** whether anti-CMV treatment is already running" in card.detail
    assert "No active anti-CMV treatment on record" not in card.detail
    assert [p.recommended for p in doses(card)] == [False]
    status = only(found, "cmv-status")
    assert status.summary.endswith("anti-CMV therapy unknown (orders not retrieved)")
    found = patient_view(make_facts(conds=HIV_RETINITIS, viral=(vl(5600, 3),), quality=LOST_ORDERS))
    card = only(found, "hiv-retinitis")
    assert card.summary.startswith("HIV with CMV retinitis, treatment on record unknown, if none: start oral valganciclovir")
    assert "**Antiretroviral therapy:** not known" in card.detail  # the summary, at its length limit, leaves ART out
    assert "no ART" not in card.summary and "**Antiretroviral therapy:** not known" in card.detail
    # The IVIG card for pneumonitis says the same of immunoglobulin.
    pneumonitis = conditions(populations=("hsct",), sites=("pneumonitis",))
    card = only(patient_view(make_facts(conds=pneumonitis, viral=RISING, quality=LOST_ORDERS)), "pneumonitis-ivig")
    assert "Whether immunoglobulin is already given is not known" in card.detail and "No immunoglobulin" not in card.detail
    # Had, the same record says there is none.
    had = patient_view(make_facts(conds=KIDNEY_COLITIS, viral=RISING))
    assert ", no anti-CMV treatment: start" in only(had, "cmv-treatment-regimen").summary
    assert [p.recommended for p in doses(only(had, "cmv-treatment-regimen"))] == [True]


def test_hiv_retinitis_on_valganciclovir_draft_says_regimen_and_art():
    facts = make_facts(conds=HIV_RETINITIS, viral=(vl(5600, 3),), drafts=(draft("valganciclovir", 900, 12),))
    card = only(order_sign(facts), "hiv-retinitis")
    assert card.indicator == "info" and "no ART on record" in card.summary
    # With ART on record, an order that follows the regimen needs no card (alert fatigue).
    with_art = make_facts(conds=HIV_RETINITIS, viral=(vl(5600, 3),), meds=(BIKTARVY,),
                          drafts=(draft("valganciclovir", 900, 12),))
    assert "hiv-retinitis" not in topics(order_sign(with_art))


def test_hiv_retinitis_steps_down_after_21_days_of_induction():
    induction = order("valganciclovir", 900, 12, id="MedicationRequest/ind", start=day(23))
    facts = make_facts(conds=HIV_RETINITIS, viral=(not_detected(3),), meds=(induction, BIKTARVY))
    card = only(patient_view(facts), "hiv-retinitis")
    [maintenance] = doses(card)
    assert_dose_is(maintenance, dose("valganciclovir", "maintenance", facts))
    # A new order that stops the induction (not the induction rewritten): see the accepted record below.
    assert maintenance.replaces is None and discontinued(maintenance) == (induction.id,)
    assert [a.reason for a in maintenance.also] == ["stepped down to maintenance"]
    # The maintenance already ordered (yesterday) at that dose: only the induction stops.
    daily = order("valganciclovir", 900, 24, id="MedicationRequest/daily", start=day(1))
    card = only(patient_view(make_facts(conds=HIV_RETINITIS, viral=(not_detected(3),), meds=(induction, daily, BIKTARVY))),
                "hiv-retinitis")
    assert not doses(card) and [(p.order_id, p.reason) for p in stops(card)] == [(induction.id, "stepped down to maintenance")]
    assert "**Maintenance already ordered:**" in card.detail


def test_hiv_retinitis_induction_above_its_renal_band_gets_a_recommended_step_down_warning():
    # 900 mg q12h on day 23, the kidneys now at CrCl 46 (creatinine 1.7, 60 y, 70 kg): the band's induction is
    # 450 mg q12h, so the order gives twice it; the step-down (450 mg daily) corrects it, and says so.
    induction = order("valganciclovir", 900, 12, id="MedicationRequest/ind", start=day(23))
    on_band = patient_view(make_facts(conds=HIV_RETINITIS, viral=(not_detected(3),), meds=(induction, BIKTARVY)))
    assert only(on_band, "hiv-retinitis").indicator == "info" and not doses(only(on_band, "hiv-retinitis"))[0].recommended
    found = patient_view(make_facts(creatinine=1.7, conds=HIV_RETINITIS, viral=(not_detected(3),), meds=(induction, BIKTARVY)))
    card = only(found, "hiv-retinitis")
    assert card.indicator == "warning" and card.summary.endswith("above its renal band; optimise ART")
    [maintenance] = doses(card)
    assert (maintenance.dose_mg, maintenance.interval_hours, maintenance.recommended) == (450, 24, True)
    assert "**Above its renal band now:** 900 mg q12h: 2x the band's daily dose for CrCl 45.8 mL/min (450 mg q12h)" in card.detail
    assert "renal-dose-adjustment" not in topics(found)  # one card for the order, as before


def test_hiv_retinitis_with_other_cmv_disease_gets_no_maintenance_step_down():
    # CNS disease besides the retinitis: ganciclovir plus foscarnet initially, treated until it resolves;
    # the retinitis card does not end the ganciclovir the CNS card adds foscarnet to.
    cns = conditions(populations=("hiv",), sites=("retinitis", "cns"), labels=("HIV infection", "CMV retinitis", "CMV encephalitis"))
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(25))
    found = patient_view(make_facts(conds=cns, viral=(vl(900, 3),), meds=(iv, BIKTARVY)))
    assert "cns-disease-combination" in topics(found)
    assert not [p for f in found if f.topic == "hiv-retinitis" for p in (*doses(f), *stops(f))]


def test_hiv_retinitis_with_other_cmv_disease_steps_down_once_that_disease_is_cleared_in_blood():
    # Colitis besides the retinitis: after 21 days of induction, maintenance follows once CMV DNA is no longer
    # detected in blood (the other disease's course end, two weekly PCRs); while it is detected, treatment goes on.
    colitis = conditions(populations=("hiv",), sites=("retinitis", "gi"), labels=("HIV infection", "CMV retinitis", "CMV colitis"))
    induction = order("valganciclovir", 900, 12, id="MedicationRequest/ind", start=day(21))
    detected = patient_view(make_facts(conds=colitis, viral=(vl(5600, 4),), meds=(induction, BIKTARVY)))
    assert not [p for f in detected if f.topic == "hiv-retinitis" for p in doses(f)]
    cleared = make_facts(conds=colitis, viral=(not_detected(1), not_detected(8)), meds=(induction, BIKTARVY))
    card = only(patient_view(cleared), "hiv-retinitis")
    [maintenance] = doses(card)
    assert_dose_is(maintenance, dose("valganciclovir", "maintenance", cleared)) and discontinued(maintenance) == (induction.id,)
    assert "**The other CMV disease:** CMV PCR not detected" in card.detail
    # IV ganciclovir past its first days: the brief's oral step-down, which continues the retinitis' induction.
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(7), route="iv")
    card = only(patient_view(make_facts(conds=colitis, viral=(vl(5600, 4),), meds=(iv, BIKTARVY))), "cmv-treatment-regimen")
    assert card.summary.startswith("IV ganciclovir day 7: after clinical improvement, step down to oral valganciclovir")
    assert "**HIV CMV retinitis too:**" in card.detail
    # Retinitis alone on IV ganciclovir: its own card's 21 days, no oral step-down card.
    alone = patient_view(make_facts(conds=HIV_RETINITIS, viral=(vl(5600, 4),), meds=(iv, BIKTARVY)))
    assert "cmv-treatment-regimen" not in topics(alone)
    # IV ganciclovir past 21 days: while the colitis is detectable, the oral step-down (its text no longer says the
    # oral course completes the 21 days); once it is cleared, only the retinitis card's maintenance (one step-down).
    long_iv = replace(iv, start=day(26))
    card = only(patient_view(make_facts(conds=colitis, viral=(vl(5600, 4),), meds=(long_iv, BIKTARVY))), "cmv-treatment-regimen")
    assert "its 21 days of induction are over" in card.detail
    found = patient_view(make_facts(conds=colitis, viral=(not_detected(1), not_detected(8)), meds=(long_iv, BIKTARVY)))
    assert "cmv-treatment-regimen" not in topics(found)
    assert [(p.drug, p.interval_hours) for p in doses(only(found, "hiv-retinitis"))] == [("valganciclovir", 24)]


@pytest.mark.parametrize("drug, dose_mg, interval, creatinine", [
    ("valganciclovir", 900, 12, 1.0), ("ganciclovir", 90, 56, 9.0), ("foscarnet", 6300, 12, 1.0)])
def test_the_hiv_retinitis_step_down_once_accepted_reads_as_maintenance(drug, dose_mg, interval, creatinine):
    # Accepting the card stops the induction today and starts the maintenance order: the next view sees
    # maintenance after an induction, not a prevention dose with no treatment (which would ask to start one).
    induction = order(drug, dose_mg, interval, id="MedicationRequest/ind", route="oral" if drug == "valganciclovir" else "iv",
                      start=day(23))
    facts = make_facts(creatinine=creatinine, conds=HIV_RETINITIS, viral=(not_detected(3),), meds=(induction, BIKTARVY))
    [p] = doses(only(patient_view(facts), "hiv-retinitis"))
    # The suggestion accepted as an EHR applies it: the orders it discontinues stopped today, the order it
    # updates rewritten in place, or else a new order from today; read as the facts layer reads the signed
    # resource ("3 times weekly after dialysis": every 56 h).
    given = dict(dose_mg=p.dose_mg, interval_hours=p.interval_hours or 168 / 3, unit_count=p.unit_count,
                 unit_strength_mg=p.unit_strength_mg)
    meds = [replace(m, status="stopped", end=day(0)) if m.id in discontinued(p) else m for m in (induction, BIKTARVY)]
    if p.replaces:
        meds = [replace(m, **given) if m.id == p.replaces else m for m in meds]
    else:
        meds.append(order(p.drug, id="MedicationRequest/maintenance", route=p.route, start=day(0), **given))
    after = make_facts(creatinine=creatinine, conds=HIV_RETINITIS, viral=(not_detected(3),), meds=meds)
    found = patient_view(after)
    assert "hiv-retinitis" not in topics(found) and "renal-dose-adjustment" not in topics(found)
    assert "maintenance" in only(found, "cmv-status").detail


def test_hiv_retinitis_after_iv_ganciclovir_induction_orders_valganciclovir_and_stops_the_iv():
    # An IV ganciclovir order is never rewritten into valganciclovir tablets: a new order, the IV one stopped.
    induction = order("ganciclovir", 350, 12, id="MedicationRequest/gcv-iv", route="iv", start=day(23))
    facts = make_facts(conds=HIV_RETINITIS, viral=(not_detected(3),), meds=(induction, BIKTARVY))
    [maintenance] = doses(only(patient_view(facts), "hiv-retinitis"))
    assert maintenance.drug == "valganciclovir" and maintenance.replaces is None
    assert discontinued(maintenance) == (induction.id,)


@pytest.mark.parametrize("induction_drug", ["ganciclovir", "valganciclovir"])
def test_hiv_retinitis_below_crcl_10_steps_down_to_iv_ganciclovir_maintenance(induction_drug):
    # Valganciclovir tablets are not recommended below CrCl 10: the maintenance is IV ganciclovir per its
    # table (0.625 mg/kg 3 times weekly after dialysis): a new IV order that discontinues the induction
    # (IV ganciclovir or the tablets).
    induction = order(induction_drug, 900 if induction_drug == "valganciclovir" else 90, 12, id="MedicationRequest/ind",
                      route="oral" if induction_drug == "valganciclovir" else "iv", start=day(25))
    facts = make_facts(creatinine=9.0, conds=HIV_RETINITIS, viral=(not_detected(3),), meds=(induction, BIKTARVY))
    found = patient_view(facts)
    assert "renal-dose-adjustment" not in topics(found)  # the retinitis card speaks for the course
    card = only(found, "hiv-retinitis")
    [maintenance] = doses(card)
    assert_dose_is(maintenance, dose("ganciclovir", "maintenance", facts))
    assert maintenance.dose_mg == 45 and maintenance.schedule == "3 times weekly after dialysis"
    assert maintenance.replaces is None and discontinued(maintenance) == (induction.id,)
    assert "step down to IV ganciclovir 45 mg 3 times weekly after dialysis" in card.summary
    assert "oral valganciclovir, not recommended** for CrCl < 10" in card.detail
    assert {s.key for s in card.sources} >= {"valganciclovir-label", "ganciclovir-label"}
    # Without a creatinine there is no dose: the card asks for what it needs.
    unknown = only(patient_view(make_facts(creatinine=None, conds=HIV_RETINITIS, viral=(not_detected(3),),
                                           meds=(induction, BIKTARVY))), "hiv-retinitis")
    assert not doses(unknown)


def test_hiv_retinitis_foscarnet_induction_past_its_label_weeks_steps_down_to_foscarnet_maintenance():
    # Foscarnet's label (CMV retinitis in AIDS): induction for 2-3 weeks, then 90 mg/kg/day, by the renal table.
    for creatinine in (1.0, 2.5):  # CrCl 1.11 and 0.44 mL/min/kg: 70 mg/kg every 24 h, 50 mg/kg every 48 h
        induction = order("foscarnet", 6300, 12, id="MedicationRequest/fos", route="iv", start=day(23))
        facts = make_facts(creatinine=creatinine, conds=HIV_RETINITIS, viral=(not_detected(3),), meds=(induction, BIKTARVY))
        found = patient_view(facts)
        assert "renal-dose-adjustment" not in topics(found)  # the step-down is the order's new dose
        card = only(found, "hiv-retinitis")
        [maintenance] = doses(card)
        assert_dose_is(maintenance, dose("foscarnet", "maintenance", facts, "90/day"))
        assert maintenance.replaces is None and discontinued(maintenance) == (induction.id,)
        assert "induction 23 days (label 2-3 weeks): step down to IV foscarnet" in card.summary
        assert {s.key for s in card.sources} == {"clinical-brief", "foscarnet-label"}
    assert (maintenance.dose_mg, maintenance.interval_hours) == (3500, 48)
    # Within the label's 2-3 weeks, with ART on record: nothing to say.
    early = order("foscarnet", 6300, 12, id="MedicationRequest/fos", route="iv", start=day(16))
    assert "hiv-retinitis" not in topics(patient_view(make_facts(conds=HIV_RETINITIS, viral=(not_detected(3),),
                                                                 meds=(early, BIKTARVY))))
    # Below CrCl 0.4 mL/min/kg the kidneys' critical card stops foscarnet: no maintenance of it.
    found = patient_view(make_facts(creatinine=4.5, conds=HIV_RETINITIS, viral=(not_detected(3),), meds=(induction, BIKTARVY)))
    assert "hiv-retinitis" not in topics(found) and only(found, "nephrotoxicity").indicator == "critical"
    # Beside a valganciclovir induction as long, the valganciclovir course is the one stepped down.
    valganciclovir = order("valganciclovir", 900, 12, id="MedicationRequest/vgc", start=day(23))
    card = only(patient_view(make_facts(conds=HIV_RETINITIS, viral=(not_detected(3),),
                                        meds=(induction, valganciclovir, BIKTARVY))), "hiv-retinitis")
    assert card.order_id == valganciclovir.id
    # Foscarnet is part of a combination this card does not end: beside a shorter ganciclovir course, or
    # for CNS disease besides the retinitis (ganciclovir plus foscarnet initially).
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv", start=day(10))
    cns = conditions(populations=("hiv",), sites=("retinitis", "cns"), labels=("HIV infection", "CMV retinitis", "CMV encephalitis"))
    for conds, meds in ((HIV_RETINITIS, (induction, iv, BIKTARVY)), (cns, (induction, iv, BIKTARVY)), (cns, (induction, BIKTARVY))):
        found = patient_view(make_facts(conds=conds, viral=(vl(900, 3),), meds=meds))
        assert not [p for f in found if f.topic == "hiv-retinitis" for p in doses(f)]


def test_the_hiv_retinitis_step_down_never_offers_ganciclovir_for_foscarnet():
    # Only valganciclovir tablets the kidneys rule out turn into IV ganciclovir: foscarnet below its renal
    # table (whose critical card otherwise stops it first) has no maintenance, not ganciclovir's.
    from cds_service.clinical.populations import hiv_retinitis
    from cds_service.clinical.regimens import therapy_state
    induction = order("foscarnet", 6300, 12, id="MedicationRequest/fos", route="iv", start=day(25))
    facts = make_facts(creatinine=4.5, conds=HIV_RETINITIS, viral=(not_detected(3),), meds=(induction, BIKTARVY))
    card = hiv_retinitis(facts, POLICY, therapy_state(facts, POLICY))
    assert card is not None and not doses(card) and "ganciclovir" not in card.summary


def test_hiv_retinitis_no_maintenance_step_down_for_a_failing_induction():
    induction = order("valganciclovir", 900, 12, id="MedicationRequest/ind", start=day(25))
    found = patient_view(make_facts(conds=HIV_RETINITIS, viral=REFRACTORY_VL, meds=(induction, BIKTARVY)))
    assert "suspected-resistance" in topics(found) and "hiv-retinitis" not in topics(found)


def test_a_maintenance_draft_before_21_days_of_retinitis_induction_is_early():
    # Day 7 of induction: the regimen's induction is 21 days.  Nothing is proposed (the clinician decides).
    induction = order("valganciclovir", 900, 12, id="MedicationRequest/ind", start=day(7))
    maintenance = draft("valganciclovir", 900, 24)
    facts = make_facts(conds=HIV_RETINITIS, viral=(vl(500, 3),), meds=(induction, BIKTARVY), drafts=(maintenance,))
    card = only(order_sign(facts), "hiv-retinitis")
    assert card.indicator == "warning" and card.order_id == maintenance.id and card.proposals == ()
    assert card.summary == ("HIV CMV retinitis: maintenance from day 7 of induction; the regimen's induction is 21 days "
                            "(to 2026-12-10); optimise ART")
    assert f"since {day(7).isoformat()} ({induction.id})" in card.detail and "keep the induction to day 21" in card.detail
    # From day 21 (or a draft that begins then, as an order set's next phase does), or a draft dated before the
    # induction began: no card.
    for ind, begins in ((order("valganciclovir", 900, 12, id="MedicationRequest/ind", start=day(21)), None),
                        (induction, day(-14)), (induction, day(10))):
        later = draft("valganciclovir", 900, 24, start=begins)
        facts = make_facts(conds=HIV_RETINITIS, viral=(vl(500, 3),), meds=(ind, BIKTARVY), drafts=(later,))
        assert not [f for f in order_sign(facts) if "of induction" in f.summary]
    # Beside other CMV disease: the same before day 21; after it, while that disease is not cleared in blood (it is
    # treated until then), a warning that says so; once cleared, none.  Beside CNS disease, the CNS card's.
    both = conditions(populations=("hiv",), sites=("retinitis", "gi"), labels=("HIV infection", "CMV retinitis", "CMV colitis"))
    facts = make_facts(conds=both, viral=(vl(500, 3),), meds=(induction, BIKTARVY), drafts=(maintenance,))
    assert only(order_sign(facts), "hiv-retinitis").summary.startswith("HIV CMV retinitis: maintenance from day 7")
    past = order("valganciclovir", 900, 12, id="MedicationRequest/ind", start=day(23))
    facts = make_facts(conds=both, viral=(vl(500, 3),), meds=(past, BIKTARVY), drafts=(maintenance,))
    card = only(order_sign(facts), "hiv-retinitis")
    assert card.indicator == "warning" and card.proposals == ()
    assert card.summary.startswith("HIV CMV retinitis with other CMV disease: maintenance before that disease is cleared")
    assert "not on record yet (newest CMV PCR: 500 IU/mL" in card.detail
    cleared = make_facts(conds=both, viral=(not_detected(1), not_detected(8)), meds=(past, BIKTARVY), drafts=(maintenance,))
    assert "hiv-retinitis" not in topics(order_sign(cleared))
    cns = conditions(populations=("hiv",), sites=("retinitis", "cns"), labels=("HIV infection", "CMV retinitis", "CMV encephalitis"))
    facts = make_facts(conds=cns, viral=(vl(500, 3),), meds=(induction, BIKTARVY), drafts=(maintenance,))
    assert not [f for f in order_sign(facts) if f.topic == "hiv-retinitis" and "maintenance" in f.summary]


def test_hiv_retinitis_quiet_during_induction_with_art():
    induction = order("valganciclovir", 900, 12, id="MedicationRequest/ind", start=day(5))
    facts = make_facts(conds=HIV_RETINITIS, viral=(vl(5600, 3),), meds=(induction, BIKTARVY))
    assert "hiv-retinitis" not in topics(patient_view(facts))


@pytest.mark.parametrize(
    "onset, start, maintenance",
    [(120, 60, True), (66, 45, True), (30, 10, False), (10, 5, False), (None, 60, True)],
    ids=["long-ago", "induction-21-days-then-maintenance", "induction-would-be-on-record", "breakthrough", "no-onset"],
)
def test_a_maintenance_dose_after_an_induction_older_than_the_record_is_maintenance(onset, start, maintenance):
    # 900 mg once daily since `start` days ago, no induction order on record (30 days of ended orders are
    # read).  Maintenance when it began at least 14 days after the disease (room for an induction) and
    # the disease began at least 44 days ago (that induction would have ended before the record read); and,
    # outside transplant (no ganciclovir-family prophylaxis in the reference), when the onset is not on record.
    conds = replace(HIV_RETINITIS, cmv_disease_onset=day(onset) if onset is not None else None)
    daily = order("valganciclovir", 900, 24, id="MedicationRequest/maint", start=day(start))
    found = patient_view(make_facts(conds=conds, viral=(not_detected(3),), meds=(daily, BIKTARVY)))
    if maintenance:
        assert "hiv-retinitis" not in topics(found)  # on maintenance with ART: nothing to say
        assert "on valganciclovir" in only(found, "cmv-status").summary
    else:  # prophylaxis before (or without a date for) the disease: induction is due
        card = only(found, "hiv-retinitis")
        assert card.indicator == "warning" and "no treatment" in card.summary


def test_maintenance_with_pcr_not_detected_is_not_asked_for_weekly_pcr():
    daily = order("valganciclovir", 900, 24, id="MedicationRequest/maint", start=day(120))
    old_negative = make_facts(conds=HIV_RETINITIS, viral=(not_detected(20),), meds=(daily, BIKTARVY))
    plan = [f for f in patient_view(old_negative) if f.topic == "monitoring-plan"]
    assert not plan or "CMV PCR" not in plan[0].summary
    # Detected on maintenance: the weekly PCR is still asked for.
    detected = make_facts(conds=HIV_RETINITIS, viral=(vl(500, 20),), meds=(daily, BIKTARVY))
    assert "CMV PCR" in only(patient_view(detected), "monitoring-plan").summary


def test_hiv_retinitis_maintenance_of_unknown_onset_is_renewed_quietly():
    daily = order("valganciclovir", 900, 24, id="MedicationRequest/maint", start=day(117))
    renewal = draft("valganciclovir", 900, 24)
    facts = make_facts(conds=HIV_RETINITIS, viral=(not_detected(3),), meds=(daily, BIKTARVY), drafts=(renewal,))
    assert topics(order_sign(facts)) == []  # no re-induction for a renewal (the order checks say it is a second order)
    # Renewed after the last order lapsed (completed 2 days ago): a renewal still.
    lapsed = replace(daily, status="completed", end=day(2))
    assert topics(order_sign(make_facts(conds=HIV_RETINITIS, viral=(not_detected(3),), meds=(lapsed, BIKTARVY),
                                        drafts=(renewal,)))) == []
    # Begun 3 days ago: an induction before it would be on record, and none is: induction first.
    recent = replace(daily, start=day(3))
    card = only(patient_view(make_facts(conds=HIV_RETINITIS, viral=(not_detected(3),), meds=(recent, BIKTARVY))), "hiv-retinitis")
    assert card.indicator == "warning" and "no treatment" in card.summary
    # Without a transplant, a maintenance dose drafted with none on record is still induction-first.
    fresh = make_facts(conds=HIV_RETINITIS, viral=RISING, meds=(BIKTARVY,), drafts=(renewal,))
    assert "prophylaxis-not-treatment" in topics(order_sign(fresh))


def test_a_prevention_dose_drafted_for_cmv_disease_is_not_treatment():
    colitis = replace(KIDNEY_COLITIS, cmv_disease_onset=day(4), transplant_dates={"kidney": day(270)})
    daily = draft("valganciclovir", 900, 24, duration_days=90, id="MedicationRequest/vgc-daily")
    found = order_sign(make_facts(conds=colitis, viral=RISING, drafts=(daily,)))
    card = only(found, "prophylaxis-not-treatment")
    assert card.summary == "Valganciclovir at a prophylaxis dose, not treatment: CMV GI disease (colitis) present"
    change = doses(card)[0]  # disease: IV ganciclovir first (the brief), at the renal dose
    assert (change.drug, change.dose_mg, change.interval_hours, change.replaces) == ("ganciclovir", 350, 12, daily.id)
    # Viraemia without disease: pre-emptive oral valganciclovir instead.
    viraemia = replace(conditions(populations=("sot",), organs=("kidney",)), transplant_dates={"kidney": day(270)})
    card = only(order_sign(make_facts(conds=viraemia, viral=RISING, drafts=(daily,))), "prophylaxis-not-treatment")
    assert card.summary.endswith("treatment-level CMV viraemia present")
    assert (doses(card)[0].drug, doses(card)[0].dose_mg, doses(card)[0].interval_hours) == ("valganciclovir", 900, 12)
    assert "label-indication" not in topics(found)  # not "prophylaxis past day 200": it is under-treatment
    # At CrCl 15 the once-daily 900 mg is no label dose at all (7x the maintenance band): said, with how far above,
    # so that an order kept as prophylaxis is not kept at it.
    card = only(order_sign(make_facts(conds=colitis, viral=RISING, drafts=(daily,), creatinine=4.9)), "prophylaxis-not-treatment")
    assert card.summary.startswith("Valganciclovir above its renal band, not treatment")
    assert "above the label's prevention (maintenance) dose for these kidneys (900 mg q24h: " in card.detail


def test_a_prophylaxis_draft_changed_to_treatment_stops_the_prophylaxis_on_record():
    colitis = replace(KIDNEY_COLITIS, cmv_disease_onset=day(4), transplant_dates={"kidney": day(270)})
    on_record = order("letermovir", 480, 24, id="MedicationRequest/ltv", start=day(60))
    daily = draft("valganciclovir", 900, 24, duration_days=90, id="MedicationRequest/vgc-daily")
    card = only(order_sign(make_facts(conds=colitis, viral=RISING, meds=(on_record,), drafts=(daily,))),
                "prophylaxis-not-treatment")
    change = doses(card)[0]
    assert change.replaces == daily.id and discontinued(change) == (on_record.id,)
    assert "(MedicationRequest/ltv): the change offered here also discontinues it." in card.detail


# ---------------------------------------------------------------------------------------------
# ibd-cmv-colitis

UC_COLITIS = conditions(populations=("ibd",), ibd_types=("ulcerative-colitis",), sites=("gi",), labels=("UC", "CMV colitis"))
METHYLPRED = order("methylprednisolone", 60, 24, route="iv", classes=("immunosuppressant", "corticosteroid"), start=day(7))


def test_ibd_with_cmv_colitis_biopsy_and_steroid_resistant_screening():
    found = patient_view(make_facts(conds=UC_COLITIS, viral=(vl(1450, 2),), meds=(METHYLPRED,)))
    card = only(found, "ibd-cmv-colitis")
    assert "78-93%" in card.detail and "steroid-resistant acute severe" in card.detail
    assert "methylprednisolone" in card.detail
    assert "cmv-treatment-regimen" in topics(found)  # same regimen


def test_ibd_colitis_confirmed_on_biopsy_asks_for_no_biopsy():
    confirmed = replace(UC_COLITIS, colitis_biopsy_confirmed=True)
    card = only(patient_view(make_facts(conds=confirmed, viral=(vl(1450, 2),), meds=(METHYLPRED,))), "ibd-cmv-colitis")
    assert card.summary == "UC with CMV colitis confirmed on biopsy: same treatment regimen"
    assert card.proposals == () and "the record says the colitis was confirmed that way" in card.detail
    unconfirmed = only(patient_view(make_facts(conds=UC_COLITIS, viral=(vl(1450, 2),))), "ibd-cmv-colitis")
    assert [p.test for p in unconfirmed.proposals] == ["colonic-biopsy"]


def test_ibd_suspected_colitis_recommends_biopsy():
    suspected = conditions(populations=("ibd",), ibd_types=("crohns",))
    card = only(patient_view(make_facts(conds=suspected, viral=(vl(1450, 2),))), "ibd-cmv-colitis")
    assert card.indicator == "warning"
    [biopsy] = card.proposals
    assert biopsy.test == "colonic-biopsy" and biopsy.recommended


ASUC = replace(
    conditions(populations=("ibd",), ibd_types=("ulcerative-colitis",), labels=("acute severe ulcerative colitis",)),
    acute_severe_uc=True, steroid_resistant_asuc=True,
)


@pytest.mark.parametrize("meds", [(METHYLPRED,), ()], ids=["steroids-on-record", "steroids-elsewhere"])
def test_steroid_resistant_acute_severe_uc_without_a_cmv_test_asks_for_screening(meds):
    card = only(patient_view(make_facts(conds=ASUC, meds=meds)), "ibd-cmv-colitis")
    assert card.indicator == "warning" and "CMV screening is mandatory" in card.summary
    assert "no CMV PCR or pp65 result on record" in card.detail
    assert ("methylprednisolone" in card.detail) == bool(meds)
    assert [p.test for p in card.proposals] == ["colonic-biopsy", "cmv-pcr"] and card.selection == "any"
    assert all(p.recommended for p in card.proposals) and [c.key for c in card.sources] == ["clinical-brief"]


def test_acute_severe_uc_on_steroids_not_said_to_fail_gets_an_info():
    flare = replace(ASUC, steroid_resistant_asuc=False)
    card = only(patient_view(make_facts(conds=flare, meds=(METHYLPRED,))), "ibd-cmv-colitis")
    assert card.indicator == "info" and "if it does not respond" in card.summary
    assert not any(p.recommended for p in card.proposals)
    assert patient_view(make_facts(conds=flare)) == []  # no steroids on record: nothing to say yet


@pytest.mark.parametrize(
    "conds, viral",
    [
        (replace(ASUC, steroid_resistant_asuc=False), (not_detected(3),)),  # tested this week, not said to fail
        (conditions(populations=("ibd",), ibd_types=("ulcerative-colitis",)), ()),  # not an acute severe flare
    ],
)
def test_no_screening_card_after_a_recent_test_or_outside_an_acute_severe_flare(conds, viral):
    assert "ibd-cmv-colitis" not in topics(patient_view(make_facts(conds=conds, meds=(METHYLPRED,), viral=viral)))


def test_steroid_resistant_acute_severe_uc_with_a_negative_blood_pcr_still_needs_the_biopsy():
    # A blood PCR that found no CMV does not show the colon free of it (clinical brief: biopsy with IHC).
    # An info (biopsy results are not read: it cannot tell a biopsy was done), the biopsy recommended.
    card = only(patient_view(make_facts(conds=ASUC, meds=(METHYLPRED,), viral=(not_detected(3),))), "ibd-cmv-colitis")
    assert card.indicator == "info" and "a negative blood CMV test does not rule out CMV colitis" in card.summary
    assert "a blood test that finds no CMV does not rule out CMV colitis" in card.detail
    assert [(p.test, p.recommended) for p in card.proposals] == [("colonic-biopsy", True)]  # no second PCR
    # A positive pp65 newer than the PCR is CMV found in blood: the suspected-colitis warning, the biopsy offered.
    found = patient_view(make_facts(conds=ASUC, meds=(METHYLPRED,), viral=(not_detected(3),), pp65s=(pp65(True, 1),)))
    card = only(found, "ibd-cmv-colitis")
    assert card.indicator == "warning" and card.summary == "UC, suspected CMV colitis: colonic biopsy with histology + immunohistochemistry"
    assert "pp65 antigen positive" in card.detail
    # An older positive pp65, before the negative PCR, does not: the biopsy reminder stays.
    found = patient_view(make_facts(conds=ASUC, meds=(METHYLPRED,), viral=(not_detected(3),), pp65s=(pp65(True, 60),)))
    assert "a negative blood CMV test does not rule out CMV colitis" in only(found, "ibd-cmv-colitis").summary
    # Nor does one outside the monitoring interval with no PCR at all: the screening card asks for both tests.
    found = patient_view(make_facts(conds=ASUC, meds=(METHYLPRED,), pp65s=(pp65(True, 400),)))
    card = only(found, "ibd-cmv-colitis")
    assert "CMV screening is mandatory" in card.summary and [p.test for p in card.proposals] == ["colonic-biopsy", "cmv-pcr"]
    uc = conditions(populations=("ibd",), ibd_types=("ulcerative-colitis",))
    assert "ibd-cmv-colitis" not in topics(patient_view(make_facts(conds=uc, pp65s=(pp65(True, 400),))))


def test_acute_severe_uc_with_cmv_detected_gets_the_colitis_card_not_the_screening_one():
    card = only(patient_view(make_facts(conds=ASUC, meds=(METHYLPRED,), viral=(vl(1450, 2),))), "ibd-cmv-colitis")
    assert "suspected CMV colitis" in card.summary


def test_ibd_without_cmv_is_silent():
    assert patient_view(make_facts(conds=conditions(populations=("ibd",), ibd_types=("crohns",)))) == []


@pytest.mark.parametrize(
    "documented", [{"resistant_drugs": frozenset({"foscarnet"})}, {"resistance_genes": frozenset({"UL56"})}],
    ids=["foscarnet-resistant", "UL56-mutation"],
)
def test_any_documented_resistance_makes_the_record_cmv_relevant(documented):
    kidney = conditions(populations=("sot",), organs=("kidney",))
    assert patient_view(make_facts(conds=kidney)) == []
    assert "cmv-status" in topics(patient_view(make_facts(conds=replace(kidney, **documented))))


# ---------------------------------------------------------------------------------------------
# hsct-preemptive


def hsct(days_since: int, **kw):
    return conditions(populations=("hsct",), hsct_date=day(days_since), labels=("Allogeneic HSCT",), **kw)


def test_hsct_two_consecutive_positive_pcrs_start_preemptive_valganciclovir():
    facts = make_facts(conds=hsct(60), viral=(not_detected(17), vl(450, 10), vl(2300, 3)), meds=(TACROLIMUS,))
    card = only(patient_view(facts), "hsct-preemptive")
    assert card.indicator == "warning" and "day 60" in card.summary
    [valgan] = doses(card)
    assert_dose_is(valgan, dose("valganciclovir", "induction", facts))
    # The IV ganciclovir route is shown with its dose too: both labels are cited.
    assert "**Alternative route: IV ganciclovir" in card.detail
    assert {"valganciclovir-label", "ganciclovir-label"} <= {s.key for s in card.sources}


@pytest.mark.parametrize("card_topic", ["hsct-preemptive", "hiv-retinitis"])
def test_every_card_that_starts_foscarnet_lists_the_electrolytes_first(card_topic):
    conds = hsct(60) if card_topic == "hsct-preemptive" else HIV_RETINITIS
    labs = {"anc": 400.0, "magnesium": 1.2}  # ANC below the label: foscarnet instead; magnesium low
    facts = make_facts(conds=conds, viral=(not_detected(17), vl(450, 10), vl(2300, 3)), labs=labs)
    card = only(patient_view(facts), card_topic)
    assert [p.drug for p in doses(card)] == ["foscarnet"]
    assert "**Electrolytes before foscarnet (label):**\n- **Low:** magnesium 1.2 mg/dL" in card.detail
    if card_topic == "hiv-retinitis":
        assert "renal function and electrolytes 2-3 times weekly (foscarnet)." in card.detail


def test_hsct_one_positive_pp65_triggers():
    facts = make_facts(conds=hsct(40), viral=(not_detected(3),), pp65s=(pp65(True, 2),))
    assert doses(only(patient_view(facts), "hsct-preemptive"))


def test_a_pcr_that_found_no_cmv_after_a_positive_pp65_cancels_its_trigger():
    # A positive pp65, then a PCR not detected: no pre-emptive therapy (nor a regimen after SOT, nor prophylaxis
    # called "not treatment").
    liver = conditions(populations=("sot",), organs=("liver",), infection=True)
    letermovir = draft("letermovir", 480, 24)

    def started(**results) -> bool:
        return (bool([f for f in patient_view(make_facts(conds=hsct(30), **results)) if doses(f)])
                and "cmv-treatment-regimen" in topics(patient_view(make_facts(conds=liver, **results)))
                and "prophylaxis-not-treatment" in topics(order_sign(make_facts(conds=hsct(20), drafts=(letermovir,), **results))))

    assert not started(viral=(not_detected(1),), pp65s=(pp65(True, 6),))
    # Not a bound that may have been detected, nor a PCR of the same time or before it.
    undecided = replace(vl(None, 1, detected=False, below_lloq=True), reported="<137 IU/mL")
    assert started(viral=(undecided,), pp65s=(pp65(True, 6),))
    assert started(viral=(not_detected(6),), pp65s=(pp65(True, 6),))
    assert started(viral=(not_detected(8),), pp65s=(pp65(True, 6),))
    # pp65 is the less sensitive test: a negative one after two positive PCRs does not undo them.
    assert started(viral=(vl(1500, 9), vl(4000, 5)), pp65s=(pp65(False, 1),))


def test_hsct_threshold_policy_applies():
    facts = make_facts(conds=hsct(60), viral=(vl(450, 10), vl(800, 3)))
    assert "hsct-preemptive" not in topics(patient_view(facts, Policy(preemptive_viral_load_iu_ml=1000)))


@pytest.mark.parametrize("newest, starts", [(14, True), (15, False)])
def test_old_positives_ask_for_a_new_pcr_not_for_pre_emptive_therapy(newest, starts):
    # The newest trigger result at most CDS_POLICY_PREEMPTIVE_RESULT_MAX_AGE_DAYS (14) old.
    facts = make_facts(conds=hsct(60), viral=(vl(2300, newest), vl(450, newest + 7)))
    card = only(patient_view(facts), "hsct-preemptive")
    if starts:
        assert card.indicator == "warning" and doses(card)
    else:
        # The trigger was met but never acted on: repeat the PCR now (no therapy on stale results).
        assert card.indicator == "warning" and card.summary.endswith("positive CMV results not repeated: repeat CMV PCR now")
        assert "Trigger met, but more than 14 days ago" in card.detail and not doses(card)
        assert [p.test for p in card.proposals] == ["cmv-pcr"]
    shorter = Policy(preemptive_result_max_age_days=newest - 1)  # the window is policy
    assert not doses(only(patient_view(facts, shorter), "hsct-preemptive"))


def test_no_hsct_card_outside_the_window():
    facts = make_facts(conds=hsct(150), viral=(vl(450, 10), vl(2300, 3)))
    assert "hsct-preemptive" not in topics(patient_view(facts))


def test_chronic_gvhd_extends_the_window():
    facts = make_facts(conds=hsct(150, chronic_gvhd=True), viral=(vl(450, 10), vl(2300, 3)))
    card = only(patient_view(facts), "hsct-preemptive")
    assert "chronic GVHD" in card.detail and "365" in card.detail


def test_no_hsct_window_without_a_transplant_date():
    facts = make_facts(conds=conditions(populations=("hsct",)), viral=(vl(450, 10), vl(2300, 3)))
    assert "hsct-preemptive" not in topics(patient_view(facts))


def test_hsct_pcr_overdue_reminder():
    facts = make_facts(conds=hsct(30), viral=(not_detected(12),), meds=(LETERMOVIR,))
    card = only(patient_view(facts), "hsct-preemptive")
    assert card.indicator == "info" and "overdue" in card.summary
    [pcr] = card.proposals
    assert (pcr.test, pcr.recurrence) == ("cmv-pcr", "weekly")


def test_an_unreadable_newest_pcr_is_to_confirm_or_repeat_not_a_test_left_undone():
    # A positive 10 days ago, a PCR 3 days ago that could not be read: it may have been positive.
    facts = make_facts(conds=hsct(30), viral=(vl(450, 10),), unread_pcr=(3,), meds=(LETERMOVIR,))
    card = only(patient_view(facts), "hsct-preemptive")
    assert card.indicator == "warning"
    assert card.summary == "HSCT day 30: the newest CMV PCR could not be read: confirm or repeat it now"
    assert "the newest CMV PCR (2026-11-23) could not be read (listed among the CMV results not used)" in card.detail
    # With no newer PCR taken, the same record is the weekly reminder.
    card = only(patient_view(make_facts(conds=hsct(30), viral=(vl(450, 10),), meds=(LETERMOVIR,))), "hsct-preemptive")
    assert card.indicator == "info" and "overdue" in card.summary


def test_an_hsct_date_to_come_opens_no_window_and_counts_no_negative_day():
    found = patient_view(make_facts(conds=hsct(-5), viral=(vl(450, 10), vl(2300, 3))))
    status = only(found, "cmv-status")
    assert "**HSCT 2026-12-01: a date 5 days from now, so no CMV monitoring window yet.**" in status.detail
    assert "hsct-preemptive" not in topics(found)


def test_hsct_in_window_with_current_negative_pcr_is_quiet():
    facts = make_facts(conds=hsct(30), viral=(not_detected(2),), meds=(LETERMOVIR,))
    assert topics(patient_view(facts)) == ["cmv-status"]


# ---------------------------------------------------------------------------------------------
# monitoring-plan


def test_monitoring_plan_names_overdue_tests():
    facts = make_facts(
        viral=(vl(3000, 12),), meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),), lab_ages={"platelets": 9}
    )
    card = only(patient_view(facts), "monitoring-plan")
    assert {p.test for p in card.proposals} == {"cmv-pcr", "cbc"}
    assert "CMV PCR" in card.summary and "CBC" in card.summary


def test_monitoring_plan_quiet_when_tests_are_current_or_no_treatment():
    on_time = make_facts(viral=(vl(3000, 2),), meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))
    assert "monitoring-plan" not in topics(patient_view(on_time))
    prophylaxis = make_facts(conds=hsct(30), viral=(not_detected(12),), meds=(LETERMOVIR,))
    assert "monitoring-plan" not in topics(patient_view(prophylaxis))


def test_foscarnet_induction_needs_electrolytes_twice_weekly():
    foscarnet = order("foscarnet", 6300, 12, route="iv", start=day(6))
    facts = make_facts(viral=(vl(3000, 2),), meds=(foscarnet,), lab_ages={"potassium": 5, "creatinine": 5})
    card = only(patient_view(facts), "monitoring-plan")
    due = {p.test: p.recurrence for p in card.proposals}
    assert due == {"electrolytes": "2-3 times weekly", "creatinine": "2-3 times weekly"}


# ---------------------------------------------------------------------------------------------
# treatment-duration


def test_draft_course_shorter_than_two_weeks():
    facts = make_facts(conds=KIDNEY_COLITIS, viral=RISING, drafts=(draft("valganciclovir", 900, 12, duration_days=10),))
    card = only(order_sign(facts), "treatment-duration")
    assert "10 days" in card.summary and card.order_id == "MedicationRequest/valganciclovir-draft"


def test_course_length_cards_cite_the_sot_guideline_for_sot_only():
    short = draft("valganciclovir", 900, 12, duration_days=10)
    sot_card = only(order_sign(make_facts(conds=KIDNEY_COLITIS, viral=RISING, drafts=(short,))), "treatment-duration")
    assert {"kotton-2025", "resistance-definitions"} <= {c.key for c in sot_card.sources}
    retinitis = only(order_sign(make_facts(conds=HIV_RETINITIS, viral=RISING, meds=(BIKTARVY,), drafts=(short,))),
                     "treatment-duration")
    keys = [c.key for c in retinitis.sources]
    assert "kotton-2025" not in keys and "resistance-definitions" not in keys and len(keys) == len(set(keys))


def test_a_draft_that_ends_before_it_begins_has_no_course_length_to_count():
    # An end date and no start: it starts when signed, after its end (before: "course set to -4 days").
    facts = make_facts(conds=KIDNEY_COLITIS, viral=RISING, drafts=(draft("valganciclovir", 900, 12, end=day(5)),))
    card = only(order_sign(facts), "treatment-duration")
    assert card.summary == "Valganciclovir order ends 2026-11-21, before it begins (2026-11-26)"
    assert "its course length cannot be checked" in card.detail


def test_two_week_course_and_iv_phase_are_not_flagged():
    facts = make_facts(
        conds=KIDNEY_COLITIS,
        viral=RISING,
        drafts=(
            draft("valganciclovir", 900, 12, duration_days=21),
            draft("ganciclovir", 350, 12, route="iv", duration_days=5),
        ),
    )
    assert "treatment-duration" not in topics(order_sign(facts))


def test_course_ending_while_viral_load_detectable():
    ending = order("valganciclovir", 900, 12, id="MedicationRequest/valgan", start=day(18), end=day(-3))
    card = only(patient_view(make_facts(viral=(vl(30000, 20), vl(900, 2)), meds=(ending,))), "treatment-duration")
    assert "while CMV is detectable" in card.summary


def test_course_stopped_with_detectable_viral_load():
    stopped = order("valganciclovir", 900, 12, id="MedicationRequest/v", start=day(30), end=day(5), status="completed")
    found = patient_view(make_facts(viral=(vl(30000, 31), vl(900, 6), vl(1200, 1)), meds=(stopped,)))
    assert "stopped" in only(found, "treatment-duration").summary


# ---------------------------------------------------------------------------------------------
# cmv-status


def test_status_shows_trend_and_day_count():
    facts = make_facts(viral=REFRACTORY_VL, meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))
    card = only(patient_view(facts), "cmv-status")
    assert card.indicator == "info"
    assert "45,000 IU/mL (2026-11-24)" in card.summary and "up 1.2 log10" in card.summary
    assert "on valganciclovir 25 days (since 2026-11-01)" in card.summary
    assert "3,000 IU/mL" in card.detail and "+1.18 log10" in card.detail
    # A bound below quantification that does not say whether CMV was detected is not shown as "not detected".
    undecided = replace(vl(None, 1, detected=False, below_lloq=True), reported="<137 IU/mL")
    card = only(patient_view(make_facts(viral=(*REFRACTORY_VL[:-1], undecided),
                                        meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))), "cmv-status")
    assert "below quantification (<137 IU/mL), detection not reported" in card.summary
    card = only(patient_view(facts), "cmv-status")
    # The therapy line gives the course's start once, then its day count.
    assert "[treatment] since 2026-11-01, 25 days (MedicationRequest/valgan;" in card.detail


def test_status_of_an_order_that_begins_later_counts_no_days():
    # An order set's next phase, active but not begun: no negative day count anywhere.
    later = order("valganciclovir", 900, 12, id="MedicationRequest/later", start=day(-20))
    found = patient_view(make_facts(viral=REFRACTORY_VL, meds=(later,)))
    card = only(found, "cmv-status")
    assert "on valganciclovir from 2026-12-16 (not begun)" in card.summary
    assert "from 2026-12-16 (not begun) (MedicationRequest/later" in card.detail
    assert not [f for f in found if "-20" in f.summary + f.detail]


def test_status_leads_with_the_order_being_given_not_the_next_phase():
    # IV ganciclovir running, the valganciclovir step-down ordered from the day after tomorrow (one course).
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/iv", start=day(6))
    oral = order("valganciclovir", 900, 12, id="MedicationRequest/oral", start=day(-2))
    for meds in ((iv, oral), (oral, iv)):
        found = patient_view(make_facts(conds=KIDNEY_COLITIS, viral=(vl(1200, 20), vl(8400, 10)), meds=meds))
        card = only(found, "cmv-status")
        assert "on ganciclovir 6 days (since 2026-11-20)" in card.summary
        assert "from 2026-11-28 (not begun) (MedicationRequest/oral" in card.detail
        assert only(found, "monitoring-plan").summary.startswith("On ganciclovir (6 days)")


def test_status_says_which_cmv_results_could_not_be_used():
    conflict = ("CMV PCR results of the same time (2026-11-25) disagree: 9000 [IU]/mL (Observation/b); 2300 [IU]/mL "
                "(Observation/a); which is right cannot be told: not used")
    facts = make_facts(viral=REFRACTORY_VL, quality=[DataQualityIssue("conflicting", "cmv_viral_load", conflict)])
    assert f"**CMV results not used:** {conflict}." in only(patient_view(facts), "cmv-status").detail
    assert "CMV results not used" not in only(patient_view(make_facts(viral=REFRACTORY_VL)), "cmv-status").detail


def test_status_says_what_could_not_be_read_of_an_order_on_record():
    unread = order("valganciclovir", 900, 12, id="MedicationRequest/v", problems=(
        "the order ends (2026-11-06) before it starts (2026-11-16): neither date is used",))
    card = only(patient_view(make_facts(viral=REFRACTORY_VL, meds=(unread,))), "cmv-status")
    assert "not read: the order ends (2026-11-06) before it starts (2026-11-16)" in card.detail


# ---------------------------------------------------------------------------------------------
# Every dose proposed anywhere is renal_dose()'s


SCENARIOS = {
    "disease": make_facts(conds=KIDNEY_COLITIS, viral=RISING, crcl=30.0),
    "cns": make_facts(conds=CNS, viral=RISING, crcl=45.0),
    "cytopenia": make_facts(conds=KIDNEY_COLITIS, viral=RISING, labs={"platelets": 20000.0}, crcl=60.0),
    "hsct": make_facts(conds=hsct(60), viral=(vl(450, 10), vl(2300, 3)), crcl=15.0),
    "hiv": make_facts(conds=HIV_RETINITIS, viral=(vl(5600, 3),), crcl=45.0),
    "refractory": make_facts(
        conds=conditions(populations=("hsct",), hsct_date=day(300)),
        viral=REFRACTORY_VL,
        meds=(order("valganciclovir", 450, 12, **VALGAN_TREATMENT),),
        crcl=50.0,
    ),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_proposed_dose_is_renal_dose(name):
    facts = SCENARIOS[name]
    proposals = [p for f in patient_view(facts) for p in f.proposals if isinstance(p, DoseProposal)]
    assert proposals
    for p in proposals:
        candidates = [
            dose(p.drug, phase, facts, regimen)
            for phase, regimen in (
                [("induction", "90q12h"), ("maintenance", "90/day")] if p.drug == "foscarnet" else
                [("induction", None), ("maintenance", None)]
            )
        ]
        assert any(
            (c.dose_mg, c.interval_hours, c.schedule, c.route) == (p.dose_mg, p.interval_hours, p.schedule, p.route)
            for c in candidates
        ), (name, p)


def test_tablets_not_recommended_at_crcl_below_10_falls_back_to_iv_ganciclovir():
    facts = make_facts(conds=hsct(60), viral=(vl(450, 10), vl(2300, 3)), crcl=8.0)
    card = only(patient_view(facts), "hsct-preemptive")
    [iv] = doses(card)
    assert_dose_is(iv, dose("ganciclovir", "induction", facts))
    assert "tablets not recommended" in card.detail


# ---------------------------------------------------------------------------------------------
# Courses and targets


def test_iv_to_oral_step_down_is_one_course():
    iv = order("ganciclovir", 350, 12, route="iv", id="MedicationRequest/iv", start=day(20), end=day(15), status="completed")
    oral = order("valganciclovir", 900, 12, id="MedicationRequest/oral", start=day(15))
    facts = make_facts(viral=(vl(3000, 21), vl(45000, 1)), meds=(iv, oral))
    card = only(patient_view(facts), "suspected-resistance")
    assert "after 20 days of valganciclovir" in card.summary  # counted from the IV start
    assert "20 days" in only(patient_view(facts), "cmv-status").summary


def test_step_down_draft_course_counts_from_the_iv_start():
    iv = order("ganciclovir", 350, 12, route="iv", id="MedicationRequest/iv", start=day(7))
    for days, flagged in ((7, False), (5, True)):  # 7 + 7 = 14 days in total; 7 + 5 = 12
        facts = make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(iv,), drafts=(draft("valganciclovir", 900, 12, duration_days=days),))
        assert ("treatment-duration" in topics(order_sign(facts))) is flagged


def test_order_select_checks_only_the_selected_draft():
    gcv = draft("ganciclovir", 350, 12, route="iv")
    other = draft("amoxicillin", 500, 8)
    facts = make_facts(conds=CNS, viral=RISING, drafts=(gcv, other), selected=(other.id,))
    assert guidance(facts, POLICY, "order-select", (other,)) == []
    assert "cns-disease-combination" in topics(guidance(facts, POLICY, "order-select", (gcv,)))


def test_t_cell_depletion_said_by_the_transplant_s_condition_extends_the_window():
    transplant = ConditionEvidence("hematopoietic stem cell transplant", "Condition/hsct", "text 'allogeneic hsct'")
    depleted = ConditionEvidence("T-cell depletion", "Condition/hsct", "text 't-cell depleted'")
    facts = make_facts(conds=replace(hsct(150), evidence=(transplant, depleted)), viral=(vl(450, 10), vl(2300, 3)))
    card = only(patient_view(facts), "hsct-preemptive")
    assert "T-cell depletion (Condition/hsct: text 't-cell depleted')" in card.detail and "365" in card.detail
    # Said by another condition (ATG for aplastic anaemia years before): not the graft's; the window stays 100 days.
    elsewhere = replace(depleted, source_id="Condition/aplastic-anaemia")
    facts = make_facts(conds=replace(hsct(150), evidence=(transplant, elsewhere)), viral=(vl(450, 10), vl(2300, 3)))
    assert "hsct-preemptive" not in topics(patient_view(facts))


def test_hsct_prolonged_immunosuppression_extends_the_window():
    facts = make_facts(conds=hsct(150), viral=(vl(450, 10), vl(2300, 3)), meds=(TACROLIMUS,))
    card = only(patient_view(facts), "hsct-preemptive")
    assert "immunosuppression beyond day 100: tacrolimus" in card.detail


def test_hsct_negative_pp65_does_not_trigger():
    facts = make_facts(conds=hsct(40), viral=(not_detected(3),), pp65s=(pp65(False, 2),))
    assert "hsct-preemptive" not in topics(patient_view(facts))


def test_hsct_in_window_without_any_cmv_data_gets_status_and_monitoring_reminder():
    found = patient_view(make_facts(conds=hsct(20)))
    assert topics(found) == ["cmv-status", "hsct-preemptive"]
    assert "no CMV PCR or pp65 result on record" in only(found, "hsct-preemptive").detail


def test_rise_after_an_undetectable_result_is_not_a_course_stopped_early():
    stopped = order("valganciclovir", 900, 12, id="MedicationRequest/v", start=day(30), end=day(5), status="completed")
    facts = make_facts(viral=(vl(30000, 31), not_detected(6), vl(1200, 1)), meds=(stopped,))
    assert "treatment-duration" not in topics(patient_view(facts))


def test_prophylactic_valganciclovir_gets_no_alternative_card():
    conds = replace(KIDNEY_COLITIS, ganciclovir_intolerance=True)
    ppx = order("valganciclovir", 900, 24, id="MedicationRequest/ppx", start=day(60))
    facts = make_facts(conds=conds, viral=RISING, meds=(ppx,))
    found = patient_view(facts)
    assert "alternative-therapy" not in topics(found)
    assert [p.drug for p in doses(only(found, "cmv-treatment-regimen"))] == ["foscarnet"]


# ---------------------------------------------------------------------------------------------
# label-indication: maribavir is for refractory post-transplant CMV

MARIBAVIR = draft("maribavir", 400, 12, route="oral", id="MedicationRequest/maribavir")


def test_maribavir_first_line_after_transplant_is_a_warning():
    card = only(order_sign(make_facts(conds=KIDNEY_COLITIS, viral=RISING, drafts=(MARIBAVIR,))), "label-indication")
    assert card.indicator == "warning" and card.order_id == MARIBAVIR.id
    assert "no documented resistance, and no course of ganciclovir" in card.detail
    assert "no solid-organ or stem-cell transplant" not in card.detail
    assert [p.specialty for p in card.proposals if isinstance(p, ConsultProposal)] == ["infectious-disease"]


@pytest.mark.parametrize(
    "meds, conds",
    [
        ((order("valganciclovir", 900, 12, **VALGAN_TREATMENT),), KIDNEY_COLITIS),  # 25 days of valganciclovir
        ((), replace(KIDNEY_COLITIS, resistant_drugs=frozenset({"ganciclovir"}))),  # documented resistance
    ],
    ids=["after-a-course", "documented-resistance"],
)
def test_maribavir_for_refractory_cmv_after_transplant_has_no_indication_card(meds, conds):
    found = order_sign(make_facts(conds=conds, viral=RISING, meds=meds, drafts=(MARIBAVIR,)))
    assert "label-indication" not in topics(found)


def test_maribavir_after_a_course_the_viral_load_fell_on_is_a_warning():
    # 25 days of valganciclovir, 30,000 -> 200 IU/mL: a response (resistance definitions), not refractory CMV.
    course = order("valganciclovir", 900, 12, **VALGAN_TREATMENT)
    falling = (vl(30000, 26), vl(200, 2))
    card = only(order_sign(make_facts(conds=KIDNEY_COLITIS, viral=falling, meds=(course,), drafts=(MARIBAVIR,))),
                "label-indication")
    assert "the viral load fell on valganciclovir (day 25: 30,000 IU/mL" in card.detail
    assert "-2.18 log10): a response, not refractory CMV" in card.detail
    # Unchanged or rising on it, or no PCR to judge it by: the course stands as refractory, as before.
    for viral in ((vl(3000, 26), vl(5000, 2)), ()):
        found = order_sign(make_facts(conds=KIDNEY_COLITIS, viral=viral, meds=(course,), drafts=(MARIBAVIR,)))
        assert "label-indication" not in topics(found)


def test_maribavir_after_a_course_under_dosed_for_the_kidneys_is_a_warning():
    # Valganciclovir 450 mg twice daily at CrCl 90 (the band: 900 mg twice daily) with the viral load rising:
    # not appropriately dosed therapy, so not refractory CMV (resistance definitions).
    course = order("valganciclovir", 450, 12, **VALGAN_TREATMENT)
    facts = make_facts(conds=KIDNEY_COLITIS, crcl=90, viral=RISING, meds=(course,), drafts=(MARIBAVIR,))
    card = only(order_sign(facts), "label-indication")
    assert "valganciclovir 450 mg every 12 h" in card.detail and "was under-dosed for the kidneys" in card.detail
    # At the band's dose the same course is refractory: no card.
    at_band = replace(facts, medications=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))
    assert "label-indication" not in topics(order_sign(at_band))


@pytest.mark.parametrize("end", [None, date(2026, 12, 14)], ids=["open", "planned-end-later"])
def test_maribavir_after_a_short_course_or_outside_transplant_is_a_warning(end):
    short = order("valganciclovir", 900, 12, id="MedicationRequest/valgan", start=day(6), end=end)  # 6 days given
    card = only(order_sign(make_facts(conds=KIDNEY_COLITIS, viral=RISING, meds=(short,), drafts=(MARIBAVIR,))), "label-indication")
    assert "of at least 2 weeks" in card.detail
    hiv = replace(HIV_RETINITIS, resistant_drugs=frozenset({"ganciclovir"}))
    card = only(order_sign(make_facts(conds=hiv, viral=RISING, drafts=(MARIBAVIR,))), "label-indication")
    assert "no solid-organ or stem-cell transplant on record." in card.detail


# ---------------------------------------------------------------------------------------------
# label-indication: letermovir's window after HSCT (started on day 0-28, through day 100, up to 200)


def letermovir_draft(**kw):
    return draft("letermovir", 480, 24, route="oral", id="MedicationRequest/letermovir", **kw)


def test_letermovir_started_after_day_28_of_hsct_is_an_info():
    card = only(order_sign(make_facts(conds=hsct(45), drafts=(letermovir_draft(),))), "label-indication")
    assert card.indicator == "info" and card.summary.startswith("Letermovir started on day 45 after HSCT")
    assert "with no letermovir course on record" in card.detail and [c.key for c in card.sources] == ["letermovir-label"]


def test_letermovir_planned_past_day_200_is_an_info():
    planned = letermovir_draft(duration_days=240)  # 240 days from day 20: the last dose on day 259
    card = only(order_sign(make_facts(conds=hsct(20), drafts=(planned,))), "label-indication")
    assert card.summary.startswith("Letermovir planned to day 259 after HSCT")
    renewed = order("letermovir", 480, 24, route="oral", start=day(60))  # a renewal starting on day 230
    card = only(order_sign(make_facts(conds=hsct(230), meds=(renewed,), drafts=(letermovir_draft(),))), "label-indication")
    assert card.summary.startswith("Letermovir started on day 230 after HSCT")


def test_letermovir_on_record_past_day_200_is_an_info_on_patient_view():
    # As valganciclovir prophylaxis past its day after a kidney transplant is: the order on record is running now.
    running = order("letermovir", 480, 24, route="oral", start=day(200))
    card = only(patient_view(make_facts(conds=hsct(210), viral=(not_detected(3),), meds=(running,))), "label-indication")
    assert card.summary.startswith("Letermovir on day 210 after HSCT") and "it is still given on day 210" in card.detail
    # An order that ended on day 195 (its end date), within the window: nothing.
    ended = order("letermovir", 480, 24, route="oral", start=day(200), end=day(15))
    assert "label-indication" not in topics(patient_view(make_facts(conds=hsct(210), viral=(not_detected(3),), meds=(ended,))))
    # Within the window, or a late start of a course on record (the order hooks said it): nothing on patient-view.
    for since, started in ((150, 140), (60, 25)):
        found = patient_view(make_facts(conds=hsct(since), viral=(not_detected(3),),
                                        meds=(order("letermovir", 480, 24, route="oral", start=day(started)),)))
        assert "label-indication" not in topics(found)


def test_letermovir_left_at_240_mg_after_the_cyclosporine_stopped_is_said_on_patient_view():
    ltv = order("letermovir", 240, 24, id="MedicationRequest/ltv", start=day(8))
    stopped = order("cyclosporine", 100, 12, start=day(10), end=day(2), status="stopped")
    card = only(patient_view(make_facts(conds=hsct(10), viral=(not_detected(3),), meds=(ltv, stopped))), "label-dose")
    assert card.summary.startswith("Letermovir 240 mg q24h too low: the label dose is 480 mg once daily")
    assert [(p.dose_mg, p.replaces) for p in doses(card)] == [(480, ltv.id)]
    # With the cyclosporine running, 240 mg is the label's dose: nothing to say.
    running = order("cyclosporine", 100, 12, start=day(10))
    assert "label-dose" not in topics(patient_view(make_facts(conds=hsct(10), viral=(not_detected(3),), meds=(ltv, running))))


def test_letermovir_480_beside_cyclosporine_on_record_gets_the_pair_s_dose_on_patient_view():
    # The mirror of the case above: the label's 240 mg with cyclosporine, as the order hooks say it.
    ltv = order("letermovir", 480, 24, id="MedicationRequest/ltv", start=day(8))
    running = order("cyclosporine", 100, 12, start=day(10))
    found = patient_view(make_facts(conds=hsct(10), viral=(not_detected(3),), meds=(ltv, running)))
    card = only(found, "drug-interaction")
    assert card.summary == "Letermovir with cyclosporine: label dose 240 mg once daily"
    assert [(p.dose_mg, p.replaces) for p in doses(card)] == [(240, ltv.id)] and "label-dose" not in topics(found)
    # A child: the pair is said, its adult dose is not (the label's doses are adults').
    child = only(patient_view(make_facts(age=8, crcl=None, conds=hsct(10), viral=(not_detected(3),), meds=(ltv, running))),
                 "drug-interaction")
    assert "240" not in child.summary + child.detail and not doses(child) and "adult" in child.summary
    # At 240 mg: quiet.
    at_240 = replace(ltv, dose_mg=240)
    assert "drug-interaction" not in topics(patient_view(make_facts(conds=hsct(10), viral=(not_detected(3),),
                                                                    meds=(at_240, running))))


def test_maribavir_beside_rifampin_on_record_is_said_on_patient_view():
    mbv = order("maribavir", 400, 12, id="MedicationRequest/mbv", start=day(7))
    rifampin = order("rifampin", 600, 24, id="MedicationRequest/rif", start=day(3))
    card = only(patient_view(make_facts(conds=KIDNEY_COLITIS, meds=(mbv, rifampin))), "drug-interaction")
    assert "rifampin" in card.summary and {p.order_id for p in card.proposals} == {mbv.id, rifampin.id}
    # For a child too: not recommended is no adult dose (only the dose-changing pairs lose their adult words).
    child = only(patient_view(make_facts(age=14, crcl=None, conds=KIDNEY_COLITIS, meds=(mbv, rifampin))), "drug-interaction")
    assert child.summary == "Maribavir with rifampin: not recommended with rifampin"
    assert {p.order_id for p in child.proposals} == {mbv.id, rifampin.id}


def test_letermovir_to_day_200_exactly_is_quiet():
    exactly = letermovir_draft(duration_days=201)  # from day 0: the last dose on day 200
    assert "label-indication" not in topics(order_sign(make_facts(conds=hsct(0), drafts=(exactly,))))


@pytest.mark.parametrize(
    "conds, meds, drafted",
    [
        (hsct(20), (), letermovir_draft()),  # started in the window
        (hsct(45), (order("letermovir", 480, 24, route="oral", start=day(30)),), letermovir_draft()),  # a renewal
        (hsct(20), (), letermovir_draft(duration_days=150)),  # to day 170: the extension the label allows
        (conditions(populations=("hsct",), labels=("Allogeneic HSCT",)), (), letermovir_draft()),  # no HSCT date
    ],
    ids=["in-window", "renewal", "extended-to-170", "no-date"],
)
def test_letermovir_within_its_hsct_window_or_without_a_date_is_quiet(conds, meds, drafted):
    assert "label-indication" not in topics(order_sign(make_facts(conds=conds, meds=meds, drafts=(drafted,))))


# ---------------------------------------------------------------------------------------------
# label-indication: valganciclovir prophylaxis after solid-organ transplant (to day 100 or 200)


def sot(*organs: str, days_since: int | None = 30) -> ConditionFacts:
    onset = day(days_since) if days_since is not None else None
    return ConditionFacts(
        populations=frozenset({"sot"}),
        transplant_organs=frozenset(organs),
        transplant_dates={o: onset for o in organs} if onset else {},
        evidence=tuple(ConditionEvidence(f"{o} transplant", f"Condition/{o}", "ICD-10-CM Z94", onset) for o in organs),
    )


def prophylaxis(duration_days: float) -> MedicationOrder:
    return draft("valganciclovir", None, 24, unit_count=2, unit_strength_mg=450, duration_days=duration_days,
                 id="MedicationRequest/vgc-prophylaxis")


@pytest.mark.parametrize(
    "organs, duration, day_limit",
    [(("kidney",), 200, 200), (("heart",), 100, 100), (("kidney", "pancreas"), 100, 100)],
)
def test_valganciclovir_prophylaxis_past_the_label_s_day_is_an_info(organs, duration, day_limit):
    # transplanted 30 days ago: the draft runs to day 30 + duration, past the label's day
    card = only(order_sign(make_facts(conds=sot(*organs), drafts=(prophylaxis(duration),))), "label-indication")
    assert card.indicator == "info" and f"to day {30 + duration - 1} after" in card.summary
    assert card.summary.endswith(f"the label gives it to day {day_limit}")


@pytest.mark.parametrize(
    "conds, duration",
    [
        (sot("kidney"), 171),  # 171 days from day 30: the last dose on day 200
        (sot("liver"), 300),  # the reference gives no day for a liver transplant
        (sot("kidney", days_since=None), 300),  # no transplant date: not assumed
    ],
    ids=["within", "liver", "no-date"],
)
def test_valganciclovir_prophylaxis_within_the_label_or_without_a_date_is_quiet(conds, duration):
    assert "label-indication" not in topics(order_sign(make_facts(conds=conds, drafts=(prophylaxis(duration),))))


def test_letermovir_past_day_200_after_a_kidney_transplant_is_an_info():
    planned = letermovir_draft(duration_days=200)  # from day 30: the last dose on day 229
    card = only(order_sign(make_facts(conds=sot("kidney"), drafts=(planned,))), "label-indication")
    assert card.indicator == "info"
    assert card.summary == "Letermovir prophylaxis planned to day 229 after kidney transplant: the label gives it to day 200"
    assert "(D+/R-)" in card.detail and [c.key for c in card.sources] == ["letermovir-label"]


@pytest.mark.parametrize(
    "conds, duration",
    [
        (sot("kidney"), 171),  # the last dose on day 200
        (sot("liver"), 300),  # the label gives letermovir no liver window
        (ConditionFacts(  # to day 209 after the kidney, 189 after the HSCT, whose window judges it
            populations=frozenset({"sot", "hsct"}), transplant_organs=frozenset({"kidney"}), hsct_date=day(10),
            evidence=sot("kidney").evidence), 180),
    ],
    ids=["within", "liver", "hsct-too"],
)
def test_letermovir_within_its_kidney_window_or_judged_by_hsct_is_quiet(conds, duration):
    drafted = letermovir_draft(duration_days=duration)
    assert "label-indication" not in topics(order_sign(make_facts(conds=conds, drafts=(drafted,))))


def test_prophylaxis_on_record_past_the_label_s_day_is_an_info_on_patient_view():
    running = order("valganciclovir", 900, 24, id="MedicationRequest/vgc-proph", start=day(260))
    found = patient_view(make_facts(conds=sot("kidney", days_since=269), meds=(running,)))
    card = only(found, "label-indication")
    assert card.summary == "Valganciclovir prophylaxis on day 269 after kidney transplant: the label gives it to day 200"
    within = make_facts(conds=sot("kidney", days_since=150), meds=(running,))
    assert "label-indication" not in topics(patient_view(within))
    # Still active on record, but its end date (day 190) passed within the window: it ran no further.
    ended = replace(running, end=day(79))
    assert "label-indication" not in topics(patient_view(make_facts(conds=sot("kidney", days_since=269), meds=(ended,))))
    one_day = replace(running, start=day(9), end=day(9))  # one day, day 260: it ran, it did not "start"
    card = only(patient_view(make_facts(conds=sot("kidney", days_since=269), meds=(one_day,))), "label-indication")
    assert card.summary.startswith("Valganciclovir prophylaxis ran to day 260 after kidney transplant")
    # A transplant date with no condition evidence to quote: the card still says what the window counts from.
    bare = replace(sot("kidney", days_since=269), evidence=())
    card = only(patient_view(make_facts(conds=bare, meds=(running,))), "label-indication")
    assert f"**Transplant:** kidney, {day(269).isoformat()}." in card.detail
    beyond = replace(running, end=day(9))  # ended on day 260: past the window
    card = only(patient_view(make_facts(conds=sot("kidney", days_since=269), meds=(beyond,))), "label-indication")
    assert card.summary == "Valganciclovir prophylaxis ran to day 260 after kidney transplant: the label gives it to day 200"


def test_the_window_counts_from_the_transplant_date_and_shows_the_transplant_not_its_complications():
    conds = ConditionFacts(
        populations=frozenset({"sot"}), transplant_organs=frozenset({"kidney"}), transplant_dates={"kidney": day(300)},
        evidence=(
            ConditionEvidence("kidney transplant", "Condition/1", "ICD-10-CM Z94.0", day(300)),
            ConditionEvidence("kidney transplant complication", "Condition/2", "ICD-10-CM T86.11", day(20)),
        ),
    )
    card = only(order_sign(make_facts(conds=conds, drafts=(prophylaxis(60),))), "label-indication")
    assert "planned to day 359 after kidney transplant" in card.summary
    assert "Condition/1" in card.detail and "complication" not in card.detail


# ---------------------------------------------------------------------------------------------
# prophylaxis-not-treatment: the regimen the regimen cards would start, in place of the draft


def sign(facts, policy=POLICY):
    """Order-sign findings, guidance and order safety together (as the service sends them)."""
    found = order_sign(facts, policy) + check_orders(facts, policy, facts.drafts)
    assert_sound(found)
    return found


def test_letermovir_with_cmv_disease():
    ltv = draft("letermovir", 480, 24)
    facts = make_facts(drafts=[ltv], conds=conditions(sites=["gi"], labels=["CMV colitis"]))
    f = only(sign(facts), "prophylaxis-not-treatment")
    assert f.indicator == "warning" and "CMV GI disease (colitis)" in f.summary and "CMV colitis" in f.detail
    (p,) = doses(f)
    iv = renal_dose("ganciclovir", "induction", facts, POLICY)
    # The treatment the draft should be is the recommended choice (the removal the other).
    assert (p.drug, p.dose_mg, p.interval_hours, p.route, p.recommended) == ("ganciclovir", iv.dose_mg, 12, "iv", True)
    assert not stops(f)[0].recommended
    assert p.dose_mg == 350 and p.replaces == ltv.id and stops(f)[0].order_id == ltv.id


def test_a_prevention_dose_pushed_during_disease_gets_one_change_to_accept():
    # The route card says not to give it as a push; the prophylaxis card changes it into the treatment, given as
    # an infusion: the route card does not also change it (into the infusion of the prevention dose).
    gd = replace(draft("ganciclovir", 175, 24, route="iv"), bolus_text="175 mg IV push every 24 hours")
    facts = make_facts(drafts=[gd], conds=conditions(sites=["gi"], labels=["CMV colitis"]))
    found = evaluate(facts, POLICY, "order-sign", facts.drafts)
    route = only(found, "administration-route")
    assert route.indicator == "critical" and doses(route) == []
    changes = [p for f in found for p in doses(f) if p.replaces == gd.id]
    assert [(p.dose_mg, p.interval_hours, p.recommended) for p in changes] == [(350, 12, True)]
    assert not acceptance_conflicts(found, facts, "order-sign")


def test_letermovir_with_two_consecutive_positive_pcr():
    ltv = draft("letermovir", 480, 24)
    facts = make_facts(drafts=[ltv], viral=[vl(850, 2), vl(400, 9), not_detected(16)])
    f = only(sign(facts), "prophylaxis-not-treatment")
    assert "treatment-level CMV viraemia" in f.summary and "2 consecutive positive" in f.detail
    (p,) = doses(f)  # viraemia without disease: pre-emptive oral valganciclovir (the brief)
    assert (p.drug, p.dose_mg, p.interval_hours) == ("valganciclovir", 900, 12)


def test_letermovir_with_counts_below_the_label_gets_foscarnet():
    ltv = draft("letermovir", 480, 24)
    facts = make_facts(drafts=[ltv], viral=[vl(850, 2), vl(400, 9)], labs={"anc": 400}, crcl=112, crcl_per_kg=1.6)
    (p,) = doses(only(sign(facts), "prophylaxis-not-treatment"))
    assert p.drug == "foscarnet"  # ANC < 500: not valganciclovir (label)


def test_a_prevention_dose_for_hiv_retinitis_gets_oral_valganciclovir_induction():
    retinitis = conditions(populations=("hiv",), sites=("retinitis",), labels=("HIV", "CMV retinitis"))
    daily = draft("valganciclovir", 900, 24)
    (p,) = doses(only(sign(make_facts(conds=retinitis, drafts=[daily])), "prophylaxis-not-treatment"))
    assert (p.drug, p.dose_mg, p.interval_hours, p.replaces) == ("valganciclovir", 900, 12, daily.id)


def test_letermovir_with_a_single_blip_is_quiet_by_default():
    ltv = draft("letermovir", 480, 24)
    assert "prophylaxis-not-treatment" not in topics(sign(make_facts(drafts=[ltv], viral=[vl(150, 2), not_detected(9)])))


def test_letermovir_with_policy_threshold():
    ltv = draft("letermovir", 480, 24)
    policy = replace(POLICY, preemptive_viral_load_iu_ml=1000)
    facts = make_facts(drafts=[ltv], viral=[vl(2500, 2), vl(1200, 9)])  # two in a row at or above it
    f = only(sign(facts, policy), "prophylaxis-not-treatment")
    assert "2 consecutive positive CMV PCR results ≥ 1000 IU/mL" in f.detail
    for viral in ([vl(800, 2), vl(700, 9)], [vl(2500, 2), vl(700, 9)], [vl(2500, 2), not_detected(9)]):
        below = make_facts(drafts=[ltv], viral=viral)  # one result above it is not two
        assert "prophylaxis-not-treatment" not in topics(sign(below, policy))


def test_letermovir_with_positive_pp65():
    ltv = draft("letermovir", 480, 24)
    assert "prophylaxis-not-treatment" in topics(sign(make_facts(drafts=[ltv], pp65s=[pp65(True, 2)])))


def test_letermovir_prophylaxis_in_a_seropositive_hsct_recipient_is_quiet():
    ltv = draft("letermovir", 480, 24)
    facts = make_facts(drafts=[ltv], conds=conditions(populations=["hsct"], hsct_date=day(10)), viral=[not_detected(3)])
    assert sign(facts) == []


def test_letermovir_with_disease_and_no_weight_says_why_no_dose():
    ltv = draft("letermovir", 480, 24)
    facts = make_facts(drafts=[ltv], conds=conditions(sites=["pneumonitis"]), dosing_weight=None)
    f = only(sign(facts), "prophylaxis-not-treatment")
    assert not doses(f) and "IV ganciclovir, dose cannot be computed" in f.detail


def test_no_prophylaxis_not_treatment_card_while_a_treatment_runs():
    # The duplicate-therapy card tells to remove the letermovir; no second valganciclovir is proposed.
    ltv = draft("letermovir", 480, 24)
    running = order("valganciclovir", 900, 12, **VALGAN_TREATMENT)
    found = sign(make_facts(drafts=[ltv], meds=[running], viral=[vl(850, 2), vl(400, 9)]))
    assert "prophylaxis-not-treatment" not in topics(found) and "duplicate-therapy" in topics(found)


@pytest.mark.parametrize("ltv_id", ["MedicationRequest/a-ltv", "MedicationRequest/z-ltv"],
                         ids=["letermovir-checked-first", "valganciclovir-checked-first"])
def test_letermovir_drafted_with_valganciclovir_for_colitis_is_removed_once_by_the_prophylaxis_card(ltv_id):
    # Both the duplicate-therapy card (from either draft) and the prophylaxis-not-treatment card removed the
    # letermovir draft. One removal, on the card whose reason fits (letermovir is prophylaxis only), and
    # recommended: the valganciclovir draft is the treatment.
    vgc = draft("valganciclovir", 900, 12, id="MedicationRequest/m-vgc", duration_days=21)
    ltv = draft("letermovir", 480, 24, id=ltv_id)
    facts = make_facts(conds=conditions(sites=("gi",), labels=("CMV colitis",)), drafts=(vgc, ltv))
    found = evaluate(facts, POLICY, "order-sign", facts.drafts)
    assert_sound(found)
    removals = [(f.topic, p) for f in found for p in stops(f) if p.order_id == ltv.id]
    assert [(topic, p.recommended) for topic, p in removals] == [("prophylaxis-not-treatment", True)]
    card = only(found, "prophylaxis-not-treatment")
    assert "Letermovir is prophylaxis only and is not a treatment" in card.detail
    assert f"**Treatment:** the draft {vgc.describe()} (one treatment course, not two)." in card.detail
    assert "duplicate-therapy" not in topics(found)  # its words (prophylaxis adds nothing to treatment) are the card's


def test_letermovir_drafted_beside_letermovir_on_record_keeps_the_discontinuation_of_the_one_on_record():
    # The draft's removal is the prophylaxis card's; the letermovir on record is still stopped by the
    # duplicate cards, as the treatment draft starts.
    vgc = draft("valganciclovir", 900, 12, id="MedicationRequest/a-vgc", duration_days=21)
    ltv = draft("letermovir", 480, 24, id="MedicationRequest/z-ltv")
    on_record = order("letermovir", 480, 24, id="MedicationRequest/ltv-old", start=day(20))
    facts = make_facts(conds=conditions(sites=("gi",), labels=("CMV colitis",)), drafts=(vgc, ltv), meds=(on_record,))
    found = evaluate(facts, POLICY, "order-sign", facts.drafts)
    assert_sound(found)
    assert [f.topic for f in found for p in stops(f) if p.order_id == ltv.id] == ["prophylaxis-not-treatment"]
    assert any(p.order_id == on_record.id and p.recommended for f in found if f.topic == "duplicate-therapy" for p in stops(f))


@pytest.mark.parametrize("rrt, where, iv_words", [
    ("dialysis", "on dialysis", "IV ganciclovir at the dialysis dose"),
    (None, "at CrCl < 10 mL/min", "IV ganciclovir at the dose for these kidneys"),
], ids=["hemodialysis", "crcl-below-10"])
def test_valganciclovir_where_the_label_recommends_no_tablets_is_not_called_a_prevention_dose(rrt, where, iv_words):
    # 450 mg every 48 h for CMV colitis: on hemodialysis (or below CrCl 10) the label recommends no tablets
    # at all, so the dose is no prevention dose there. The card says so, and still changes the draft into
    # IV ganciclovir at the label's lowest band (1.25 mg/kg 3 times weekly after dialysis).
    vgc = draft("valganciclovir", 450, 48, id="MedicationRequest/vgc")
    facts = make_facts(conds=replace(conditions(sites=("gi",), labels=("CMV colitis",)), renal_replacement=rrt),
                       drafts=(vgc,), crcl=6, crcl_per_kg=0.09)
    found = evaluate(facts, POLICY, "order-sign", facts.drafts)
    assert_sound(found)
    card = only(found, "prophylaxis-not-treatment")
    assert card.summary == f"Valganciclovir tablets not recommended {where} and not treatment: CMV GI disease (colitis) present"
    assert "prevention" not in card.detail.lower() and "prophylaxis dose" not in card.summary
    assert (f"Valganciclovir tablets are not recommended {where} at any dose (valganciclovir label: tablets not "
            f"recommended at CrCl < 10 mL/min or on hemodialysis: use IV ganciclovir per its table): this order is not "
            f"a treatment, and treatment needs {iv_words}.") in card.detail
    [change] = doses(card)
    assert_dose_is(change, dose("ganciclovir", "induction", facts))
    assert (change.dose_mg, change.schedule, change.replaces) == (90, "3 times weekly after dialysis", vgc.id)


def test_valganciclovir_on_dialysis_with_no_regimen_to_propose_says_the_treatment_is_to_be_chosen():
    # Ganciclovir and foscarnet both documented resistant: no regimen below to point to.
    vgc = draft("valganciclovir", 450, 48, id="MedicationRequest/vgc")
    conds = replace(conditions(sites=("gi",), labels=("CMV colitis",)), renal_replacement="dialysis",
                    resistant_drugs=frozenset({"ganciclovir", "foscarnet"}))
    found = evaluate(make_facts(conds=conds, drafts=(vgc,), crcl=6, crcl_per_kg=0.09), POLICY, "order-sign", (vgc,))
    card = only(found, "prophylaxis-not-treatment")
    assert "this order is not a treatment, and the treatment is to be chosen with infectious diseases." in card.detail
    assert "is below" not in card.detail


def test_a_valganciclovir_prevention_dose_off_dialysis_is_still_called_one():
    daily = draft("valganciclovir", 900, 24, id="MedicationRequest/vgc")
    card = only(order_sign(make_facts(conds=conditions(sites=("gi",), labels=("CMV colitis",)), drafts=(daily,))),
                "prophylaxis-not-treatment")
    assert card.summary.startswith("Valganciclovir at a prophylaxis dose, not treatment")
    assert "Valganciclovir at the label's prevention (maintenance) dose" in card.detail
    # Off the band's prevention dose (450 mg daily at CrCl 80, where it is 900 mg): not called the label's.
    low = replace(daily, dose_mg=450, unit_count=1)
    card = only(order_sign(make_facts(conds=conditions(sites=("gi",), labels=("CMV colitis",)), drafts=(low,))),
                "prophylaxis-not-treatment")
    assert "Valganciclovir at a dose that is not the label's prevention (maintenance) dose" in card.detail


def test_a_prevention_dose_for_treatment_gets_the_treatment_dose_not_a_kidney_adjusted_prevention_dose():
    from cds_service.clinical import evaluate
    daily = draft("valganciclovir", 900, 24, id="MedicationRequest/vgc-daily")
    facts = make_facts(crcl=29.9, viral=[vl(850, 2), vl(400, 9)], drafts=[daily])
    assert "renal-dose-adjustment" in topics(check_orders(facts, POLICY, facts.drafts))  # alone: the prevention band
    found = evaluate(facts, POLICY, "order-sign", facts.drafts)
    assert "prophylaxis-not-treatment" in topics(found) and "renal-dose-adjustment" not in topics(found)


def test_a_regimen_that_cannot_be_given_is_not_told_to_start():
    # Ganciclovir resistance (so foscarnet) below 0.4 mL/min/kg, where the foscarnet label advises against it.
    conds = replace(KIDNEY_COLITIS, resistant_drugs=frozenset({"ganciclovir"}))
    card = only(patient_view(make_facts(conds=conds, viral=RISING, crcl=21, crcl_per_kg=0.3)), "cmv-treatment-regimen")
    assert "start" not in card.summary and card.summary.endswith(
        "IV foscarnet not recommended (kidneys): consult ID")


def test_the_resistance_summary_does_not_say_consider_foscarnet_when_the_label_advises_against_it():
    # On dialysis the foscarnet label's lowest band says not recommended: the card offers maribavir only.
    conds = replace(KIDNEY_COLITIS, renal_replacement="dialysis")
    facts = make_facts(conds=conds, viral=REFRACTORY_VL, creatinine=None,
                       meds=(order("valganciclovir", 900, 12, **VALGAN_TREATMENT),))
    card = only(patient_view(facts), "suspected-resistance")
    assert [p.drug for p in doses(card)] == ["maribavir"]
    assert "foscarnet" not in card.summary and "Switch to foscarnet" not in card.detail
