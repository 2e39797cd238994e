"""Proposals -> suggestion actions and their FHIR resources (R4, validated with fhir.resources R4B)."""

from __future__ import annotations

import copy
import json
from types import MappingProxyType

import pytest
from card_testkit import PATIENT_ID, actions, empty_values, finding, sandbox_draft, validate_r4b

from cds_service.cards import render_cards
from cds_service.cards.fhir import mentions_drug
from cds_service.clinical.findings import (
    ConsultProposal,
    DoseProposal,
    LabOrderProposal,
    StopOrderProposal,
    discontinuation,
)

DRAFT_ID = "MedicationRequest/request-123"
UCUM = "http://unitsofmeasure.org"
ORAL = {"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral route"}
IV = {"system": "http://snomed.info/sct", "code": "47625008", "display": "Intravenous route"}

# Renal band for CrCl 40-59 mL/min (maintenance): 450 mg once daily, one 450 mg tablet.
VALGAN_450_DAILY = DoseProposal(
    label="Change to valganciclovir 450 mg once daily",
    drug="valganciclovir",
    dose_mg=450,
    interval_hours=24,
    route="oral",
    schedule="once daily",
    replaces=DRAFT_ID,
    unit_count=1,
    unit_strength_mg=450,
    note="take with food",
    recommended=True,
)


def only_action(proposal, orders=None, patient_id=PATIENT_ID) -> dict:
    (action,) = actions(render_cards([finding(proposals=(proposal,))], orders, patient_id))
    return action


def ganciclovir_draft(dose_mg=350, interval_h=12) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": "gcv-1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authoredOn": "2026-11-25",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "J05AB06", "display": "Ganciclovir"}]
        },
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": interval_h, "periodUnit": "h"}},
                "route": {"coding": [IV]},
                "doseAndRate": [{"doseQuantity": {"value": dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}}],
            }
        ],
    }


# ---------------------------------------------------------------------------------------------
# Update of a draft


def test_update_of_the_sandbox_draft_keeps_the_order_and_changes_the_tablet_dose():
    draft = sandbox_draft()
    action = only_action(VALGAN_450_DAILY, {DRAFT_ID: draft})
    assert action["type"] == "update"
    assert "450 mg (1 × 450 mg tablet) by mouth once daily" in action["description"]
    order = action["resource"]
    assert (order["resourceType"], order["id"]) == ("MedicationRequest", "request-123")
    # The sandbox applies the medication only with a text and coding[0].code: both kept as sent.
    assert order["medicationCodeableConcept"] == draft["medicationCodeableConcept"]
    assert order["medicationCodeableConcept"]["text"] and order["medicationCodeableConcept"]["coding"][0]["code"] == "313566"
    for kept in ("status", "intent", "subject", "authoredOn", "dispenseRequest"):
        assert order[kept] == draft[kept]
    (dosage,) = order["dosageInstruction"]
    # One tablet, in the unit the draft counted in ({pill}), no longer two.
    assert dosage["doseAndRate"] == [{"doseQuantity": {"value": 1, "system": UCUM, "code": "{pill}"}}]
    assert dosage["timing"] == {
        "repeat": {
            "frequency": 1,
            "period": 1,
            "periodUnit": "d",
            "boundsPeriod": {"start": "2026-11-24", "end": "2026-12-15"},  # the course is unchanged
        },
        "code": {"text": "once daily"},
    }
    assert dosage["route"]["coding"] == [ORAL]
    assert dosage["text"] == "450 mg (1 × 450 mg tablet) by mouth once daily; take with food"
    assert dosage["patientInstruction"] == "take with food"
    validate_r4b(order)


@pytest.mark.parametrize("product, dose, kept", [
    ("letermovir 480 MG Oral Tablet", 240, False),  # half a tablet: the drug's own concept instead
    ("Prevymis 480mg tabs", 240, False),
    ("letermovir 480 mg, oral tablet", 240, False),
    ("letermovir 240 MG Oral Tablet", 480, True),  # two tablets
    ("letermovir 20 MG/ML Injectable Solution", 240, True),  # no tablet strength to fit
])
def test_an_update_never_puts_a_dose_on_a_tablet_product_that_cannot_give_it(product, dose, kept):
    draft = sandbox_draft()
    draft["medicationCodeableConcept"] = {"text": product, "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                                       "code": "1", "display": product}]}
    proposal = DoseProposal(label=f"Change letermovir to {dose} mg once daily", drug="letermovir", dose_mg=dose,
                            interval_hours=24, route="oral", schedule="once daily", replaces=DRAFT_ID)
    order = only_action(proposal, {DRAFT_ID: draft})["resource"]
    assert (order["medicationCodeableConcept"] == draft["medicationCodeableConcept"]) is kept
    if not kept:
        assert order["medicationCodeableConcept"]["text"] == "letermovir" and "dispenseRequest" not in order


def test_an_update_never_puts_a_dose_on_a_referenced_tablet_product_that_cannot_give_it():
    draft = sandbox_draft()
    del draft["medicationCodeableConcept"]
    draft["contained"] = [{"resourceType": "Medication", "id": "m", "code": {"text": "letermovir 480 MG Oral Tablet"}}]
    draft["medicationReference"] = {"reference": "#m"}
    proposal = DoseProposal(label="Change letermovir to 240 mg once daily", drug="letermovir", dose_mg=240,
                            interval_hours=24, route="oral", schedule="once daily", replaces=DRAFT_ID)
    order = only_action(proposal, {DRAFT_ID: draft})["resource"]
    assert "medicationReference" not in order and order["medicationCodeableConcept"]["text"] == "letermovir"


@pytest.mark.parametrize("field, junk", [
    ("coding", -1), ("coding", True), ("coding", {"code": "313566"}),
    ("dispenseRequest", [{"numberOfRepeatsAllowed": 1}, {}]), ("dispenseRequest", True), ("dispenseRequest", 7),
])
def test_an_update_of_a_draft_with_junk_where_an_object_or_array_belongs_is_still_made(field, junk):
    # The facts layer reads the drug from the concept's text; the suggestion must not fail on the rest.
    draft = sandbox_draft()
    if field == "coding":
        draft["medicationCodeableConcept"]["coding"] = junk
    else:
        draft[field] = junk
    action = only_action(VALGAN_450_DAILY, {DRAFT_ID: draft})
    assert action["type"] == "update" and action["resource"]["id"] == "request-123"
    assert action["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 1


def test_update_does_not_change_the_drafts_input():
    draft = sandbox_draft()
    before = copy.deepcopy(draft)
    only_action(VALGAN_450_DAILY, {DRAFT_ID: draft})
    assert draft == before


def test_update_from_a_read_only_resource_gives_plain_json():
    def frozen(value):
        if isinstance(value, dict):
            return MappingProxyType({k: frozen(v) for k, v in value.items()})
        if isinstance(value, list):
            return tuple(frozen(v) for v in value)
        return value

    cards = render_cards([finding(proposals=(VALGAN_450_DAILY,))], {DRAFT_ID: frozen(sandbox_draft())}, PATIENT_ID)
    order = actions(cards)[0]["resource"]
    assert json.loads(json.dumps(cards)) == cards
    assert order["medicationCodeableConcept"] == sandbox_draft()["medicationCodeableConcept"]
    validate_r4b(order)


def test_sandbox_category_object_becomes_an_array_so_the_update_is_valid_r4():
    draft = sandbox_draft()
    assert isinstance(draft["category"], dict)  # what the sandbox really sends
    order = only_action(VALGAN_450_DAILY, {DRAFT_ID: draft})["resource"]
    assert order["category"] == [draft["category"]]


def test_update_in_mg_for_an_iv_order():
    proposal = DoseProposal(
        "Change to ganciclovir 87.5 mg every 24 h", "ganciclovir", 87.5, 24, "iv", "every 24 h",
        replaces="MedicationRequest/gcv-1",
    )
    draft = ganciclovir_draft()
    order = only_action(proposal, {"MedicationRequest/gcv-1": draft})["resource"]
    assert order["id"] == "gcv-1"
    # The draft's concept had no text: it gets its coding's display, the coding itself unchanged.
    assert order["medicationCodeableConcept"] == {
        "coding": draft["medicationCodeableConcept"]["coding"],
        "text": "Ganciclovir",
    }
    (dosage,) = order["dosageInstruction"]
    assert dosage["doseAndRate"] == [{"doseQuantity": {"value": 87.5, "unit": "mg", "system": UCUM, "code": "mg"}}]
    assert dosage["timing"] == {
        "repeat": {"frequency": 1, "period": 1, "periodUnit": "d"},
        "code": {"text": "every 24 h"},
    }
    assert dosage["route"]["coding"] == [IV]
    validate_r4b(order)


@pytest.mark.parametrize("minutes", [90, None])
def test_an_update_writes_the_proposal_s_infusion_time_and_nothing_else_of_the_old_dosage(minutes):
    proposal = DoseProposal("Change to foscarnet 4900 mg every 12 h", "foscarnet", 4900, 12, "iv", "every 12 h",
                            replaces="MedicationRequest/gcv-1", infusion_minutes=minutes)
    draft = ganciclovir_draft()
    draft["medicationCodeableConcept"] = {"text": "foscarnet 24 MG/ML Injectable Solution"}
    draft["dosageInstruction"][0]["timing"]["repeat"].update({"duration": 30, "durationUnit": "min"})
    draft["dosageInstruction"][0]["method"] = {"text": "IV push"}
    (dosage,) = only_action(proposal, {"MedicationRequest/gcv-1": draft})["resource"]["dosageInstruction"]
    repeat = {"frequency": 1, "period": 12, "periodUnit": "h"}
    assert dosage["timing"]["repeat"] == (repeat | {"duration": 90, "durationUnit": "min"} if minutes else repeat)
    assert "method" not in dosage
    # The text the EHR shows says what the timing says.
    assert dosage["text"].startswith("4900 mg by IV infusion over 90 min every 12 h" if minutes else "4900 mg by IV infusion every 12 h")


def test_tablet_proposal_on_an_order_dosed_in_mg_stays_in_mg():
    draft = sandbox_draft()
    draft["dosageInstruction"][0]["doseAndRate"] = [
        {"doseQuantity": {"value": 900, "unit": "mg", "system": UCUM, "code": "mg"}}
    ]
    (dosage,) = only_action(VALGAN_450_DAILY, {DRAFT_ID: draft})["resource"]["dosageInstruction"]
    assert dosage["doseAndRate"][0]["doseQuantity"] == {"value": 450, "unit": "mg", "system": UCUM, "code": "mg"}


def test_update_of_the_page_load_draft_without_drug_sets_the_proposed_drug():
    draft = sandbox_draft("sandbox-order-select-pageload.json")
    assert "medicationCodeableConcept" not in draft and "intent" not in draft
    order = only_action(VALGAN_450_DAILY, {DRAFT_ID: draft})["resource"]
    assert order["id"] == "request-123"
    assert order["medicationCodeableConcept"] == {
        "coding": [
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "313566",
                "display": "valganciclovir 450 MG Oral Tablet",
            }
        ],
        "text": "valganciclovir 450 MG Oral Tablet",
    }
    assert order["intent"] == "order"
    dose = order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert dose["value"] == 1 and dose["code"] == "TAB"
    validate_r4b(order)


def test_a_dose_never_lands_on_another_drug():
    # A ganciclovir dose proposed for the valganciclovir draft: the medication becomes ganciclovir
    # ("ganciclovir" inside "valganciclovir" is not a match).
    proposal = DoseProposal("Switch to IV ganciclovir", "ganciclovir", 175, 12, "iv", "every 12 h", replaces=DRAFT_ID)
    order = only_action(proposal, {DRAFT_ID: sandbox_draft()})["resource"]
    assert order["id"] == "request-123"
    assert order["medicationCodeableConcept"] == {
        "text": "ganciclovir",
        "coding": [{"system": "http://www.whocc.no/atc", "code": "J05AB06", "display": "ganciclovir"}],
    }
    assert order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["code"] == "mg"
    # The draft's supply (so many valganciclovir tablets, repeats) is not carried over to the new drug.
    assert "dispenseRequest" in sandbox_draft() and "dispenseRequest" not in order
    validate_r4b(order)


@pytest.mark.parametrize(
    "concept, drug, expected",
    [
        ({"text": "valganciclovir 450 MG Oral Tablet"}, "valganciclovir", True),
        ({"text": "valganciclovir 450 MG Oral Tablet"}, "ganciclovir", False),
        ({"text": "Valcyte 450 mg tablet"}, "valganciclovir", True),
        ({"coding": [{"code": "313566"}]}, "valganciclovir", True),
        ({"coding": [{"display": "Ganciclovir 500 MG Injection"}]}, "ganciclovir", True),
        ({"text": "Foscavir"}, "ganciclovir", False),
        (None, "ganciclovir", False),
    ],
)
def test_mentions_drug(concept, drug, expected):
    assert mentions_drug(concept, drug) is expected


def test_dstu2_medication_order_keeps_its_dstu2_shape():
    order_id = "MedicationOrder/mo-1"
    draft = {
        "resourceType": "MedicationOrder",
        "id": "mo-1",
        "status": "draft",
        "patient": {"reference": f"Patient/{PATIENT_ID}"},
        "dateWritten": "2026-11-24",
        "medicationCodeableConcept": {
            "text": "valganciclovir 450 MG Oral Tablet",
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "313566"}],
        },
        "dosageInstruction": [
            {
                "doseQuantity": {"value": 2, "system": UCUM, "code": "{pill}"},
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnits": "d"}},
            }
        ],
    }
    proposal = DoseProposal(
        "Change to 450 mg every 48 h", "valganciclovir", 450, 48, "oral", "every 2 days",
        replaces=order_id, unit_count=1, unit_strength_mg=450, note="take with food", duration_days=14,
    )
    order = only_action(proposal, {order_id: draft})["resource"]
    assert (order["resourceType"], order["id"], order["dateWritten"]) == ("MedicationOrder", "mo-1", "2026-11-24")
    assert order["patient"] == draft["patient"] and "subject" not in order and "intent" not in order
    assert order["medicationCodeableConcept"] == draft["medicationCodeableConcept"]
    (dosage,) = order["dosageInstruction"]
    assert dosage["doseQuantity"] == {"value": 1, "system": UCUM, "code": "{pill}"}
    assert "doseAndRate" not in dosage and "patientInstruction" not in dosage
    assert dosage["timing"]["repeat"] == {
        "frequency": 1,
        "period": 2,
        "periodUnits": "d",
        "boundsQuantity": {"value": 14, "unit": "days", "system": UCUM, "code": "d"},
    }
    assert dosage["text"].endswith("every 2 days for 14 days; take with food")
    # Discontinued (an order on record): status stopped, with the DSTU2 reasonEnded (R4's statusReason).
    active = {**draft, "status": "active"}
    stop = only_action(StopOrderProposal("Stop valganciclovir", order_id, "antagonism with maribavir"), {order_id: active})
    assert stop["type"] == "update" and stop["resource"]["status"] == "stopped"
    assert stop["resource"]["reasonEnded"] == {"text": "antagonism with maribavir"} and "statusReason" not in stop["resource"]


def test_without_the_original_order_a_dose_change_becomes_a_new_order():
    action = only_action(VALGAN_450_DAILY, orders=None)
    assert action["type"] == "create"
    assert action["description"].endswith("in place of the current order")
    assert "id" not in action["resource"]
    validate_r4b(action["resource"])


# ---------------------------------------------------------------------------------------------
# New medication orders


def test_new_valganciclovir_tablet_order():
    proposal = DoseProposal(
        "Start valganciclovir 900 mg every 12 h", "valganciclovir", 900, 12, "oral", "every 12 h",
        duration_days=21, unit_count=2, unit_strength_mg=450, note="take with food",
    )
    action = only_action(proposal)
    assert action["type"] == "create"
    order = action["resource"]
    assert (order["resourceType"], order["status"], order["intent"]) == ("MedicationRequest", "draft", "order")
    assert order["subject"] == {"reference": f"Patient/{PATIENT_ID}"}
    assert order["medicationCodeableConcept"]["coding"][0]["code"] == "313566"
    (dosage,) = order["dosageInstruction"]
    assert dosage["doseAndRate"][0]["doseQuantity"] == {
        "value": 2,
        "unit": "tablet",
        "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
        "code": "TAB",
    }
    assert dosage["timing"]["repeat"] == {
        "frequency": 1,
        "period": 12,
        "periodUnit": "h",
        "boundsDuration": {"value": 21, "unit": "days", "system": UCUM, "code": "d"},
    }
    assert dosage["text"] == "900 mg (2 × 450 mg tablets) by mouth every 12 h for 21 days; take with food"
    assert order["dispenseRequest"] == {"expectedSupplyDuration": {"value": 21, "unit": "days", "system": UCUM, "code": "d"}}
    validate_r4b(order)


@pytest.mark.parametrize(
    "drug, atc",
    [("ganciclovir", "J05AB06"), ("valganciclovir", "J05AB14"), ("foscarnet", "J05AD01"),
     ("cidofovir", "J05AB12"), ("letermovir", "J05AX18")],
)
def test_new_order_carries_text_and_atc_code(drug, atc):
    order = only_action(DoseProposal(f"Start {drug}", drug, 100, 24, "iv", "every 24 h"))["resource"]
    assert order["medicationCodeableConcept"] == {
        "text": drug,
        "coding": [{"system": "http://www.whocc.no/atc", "code": atc, "display": drug}],
    }
    assert order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["code"] == "mg"
    assert "dispenseRequest" not in order
    validate_r4b(order)


def test_maribavir_atc_code_is_unverified_so_text_only():
    order = only_action(DoseProposal("Start maribavir", "maribavir", 400, 12, "oral", "every 12 h"))["resource"]
    assert order["medicationCodeableConcept"] == {"text": "maribavir"}
    validate_r4b(order)


def test_tablet_count_of_an_unknown_product_is_ordered_in_mg():
    proposal = DoseProposal("Start", "valganciclovir", 900, 12, "oral", "every 12 h", unit_count=3, unit_strength_mg=300)
    order = only_action(proposal)["resource"]
    assert order["medicationCodeableConcept"]["coding"][0]["code"] == "J05AB14"
    assert order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 900


def test_dialysis_schedule_without_a_fixed_interval():
    proposal = DoseProposal(
        "Ganciclovir 87.5 mg 3 times weekly after dialysis", "ganciclovir", 87.5, None, "iv",
        "3 times weekly after dialysis",
    )
    (dosage,) = only_action(proposal)["resource"]["dosageInstruction"]
    assert dosage["timing"] == {
        "repeat": {"frequency": 3, "period": 1, "periodUnit": "wk"},
        "code": {"text": "3 times weekly after dialysis"},
    }
    assert dosage["text"] == "87.5 mg by IV infusion 3 times weekly after dialysis"


@pytest.mark.parametrize(
    "interval, schedule, repeat",
    [
        # A fixed interval: 1 per interval (hours, or days when whole days).
        (8, "every 8 h", {"frequency": 1, "period": 8, "periodUnit": "h"}),
        (12, "every 12 h", {"frequency": 1, "period": 12, "periodUnit": "h"}),
        (48, "every 48 h", {"frequency": 1, "period": 2, "periodUnit": "d"}),
        # The label's words decide when they name a frequency (as the dose tables write them).
        (12, "twice daily", {"frequency": 2, "period": 1, "periodUnit": "d"}),
        (24, "once daily", {"frequency": 1, "period": 1, "periodUnit": "d"}),
        (48, "every 2 days", {"frequency": 1, "period": 2, "periodUnit": "d"}),
        (84, "twice weekly", {"frequency": 2, "period": 1, "periodUnit": "wk"}),
        (24, "every 24 h, 5 days a week", {"frequency": 5, "period": 1, "periodUnit": "wk"}),
        (168, "once weekly for 2 weeks", {"frequency": 1, "period": 1, "periodUnit": "wk"}),
        (336, "every 2 weeks", {"frequency": 1, "period": 2, "periodUnit": "wk"}),
        (None, "3 times weekly after dialysis", {"frequency": 3, "period": 1, "periodUnit": "wk"}),
        (None, "3x/week after HD", {"frequency": 3, "period": 1, "periodUnit": "wk"}),
        # Hyphenated "twice-daily" is twice daily, not "daily".
        (12, "twice-daily", {"frequency": 2, "period": 1, "periodUnit": "d"}),
    ],
)
def test_schedules(interval, schedule, repeat):
    proposal = DoseProposal("x", "cidofovir", 350, interval, "iv", schedule)
    (dosage,) = only_action(proposal)["resource"]["dosageInstruction"]
    assert dosage["timing"] == {"repeat": repeat, "code": {"text": schedule}}


def test_a_schedule_that_states_its_length_is_not_repeated_in_the_dose_text():
    # Cidofovir's induction: "once weekly for 2 weeks" bounded to 14 days, said once.
    proposal = DoseProposal("x", "cidofovir", 350, 168, "iv", "once weekly for 2 weeks", duration_days=14)
    (dosage,) = only_action(proposal)["resource"]["dosageInstruction"]
    assert dosage["text"].endswith("350 mg by IV infusion once weekly for 2 weeks")
    assert dosage["timing"]["repeat"]["boundsDuration"]["value"] == 14
    (dosage,) = only_action(DoseProposal("x", "valganciclovir", 900, 12, "oral", "twice daily", duration_days=21))[
        "resource"]["dosageInstruction"]
    assert "twice daily for 21 days" in dosage["text"]


def test_unreadable_schedule_is_kept_as_words_only():
    proposal = DoseProposal("x", "ganciclovir", 100, None, "iv", "after each session per nephrology")
    order = only_action(proposal)["resource"]
    assert order["dosageInstruction"][0]["timing"] == {"code": {"text": "after each session per nephrology"}}
    validate_r4b(order)


# ---------------------------------------------------------------------------------------------
# Lab orders and consults


@pytest.mark.parametrize(
    "test, loinc",
    [("creatinine", "2160-0"), ("cbc", "58410-2"), ("cmv-pcr", "72493-0"), ("magnesium", "19123-9"),
     ("calcium", "17861-6"), ("ionized-calcium", "1994-3"), ("phosphate", "2777-1"),
     ("potassium", "2823-3"), ("urine-protein", "2888-6")],
)
def test_lab_order_is_a_loinc_coded_service_request(test, loinc):
    action = only_action(LabOrderProposal(f"Order {test}", test))
    assert action["type"] == "create"
    request = action["resource"]
    assert (request["resourceType"], request["status"], request["intent"]) == ("ServiceRequest", "draft", "order")
    assert request["code"]["coding"][0]["system"] == "http://loinc.org"
    assert request["code"]["coding"][0]["code"] == loinc
    assert request["code"]["text"]
    assert request["category"][0]["coding"][0]["code"] == "108252007"
    assert request["subject"] == {"reference": f"Patient/{PATIENT_ID}"}
    validate_r4b(request)


def test_weekly_cmv_pcr_has_a_weekly_occurrence():
    action = only_action(LabOrderProposal("Order weekly CMV PCR", "cmv-pcr", recurrence="weekly"))
    assert action["resource"]["occurrenceTiming"] == {
        "repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"},
        "code": {"text": "weekly"},
    }
    assert action["description"] == "Order CMV DNA viral load (PCR), plasma (weekly)"
    validate_r4b(action["resource"])


@pytest.mark.parametrize("test", ["cmv-genotype", "electrolytes", "colonic-biopsy", "pp65", "unlisted-test"])
def test_tests_without_a_verified_code_are_ordered_by_text(test):
    request = only_action(LabOrderProposal("Order", test, recurrence="2-3 times weekly"))["resource"]
    assert set(request["code"]) == {"text"}
    validate_r4b(request)


def test_a_scoped_request_names_its_scope_for_the_lab():
    action = only_action(LabOrderProposal("Order genotype", "cmv-genotype", scope="UL97/UL54/UL56/UL89/UL51"))
    assert action["resource"]["code"] == {"text": "CMV antiviral resistance genotype (UL97/UL54/UL56/UL89/UL51)"}
    assert action["description"] == "Order CMV antiviral resistance genotype (UL97/UL54/UL56/UL89/UL51)"
    validate_r4b(action["resource"])


def test_weight_is_not_a_laboratory_procedure():
    request = only_action(LabOrderProposal("Record weight", "weight"))["resource"]
    assert request["code"]["coding"][0]["code"] == "29463-7"
    assert "category" not in request
    validate_r4b(request)


def test_infectious_diseases_consult():
    action = only_action(ConsultProposal("Consult ID", "infectious-disease", "CMV disease: consult ID early"))
    request = action["resource"]
    assert request["code"] == {"text": "Infectious diseases consultation"}
    assert request["reasonCode"] == [{"text": "CMV disease: consult ID early"}]
    assert request["performerType"] == {"text": "Infectious diseases"}
    assert action["description"] == "Request infectious diseases consultation: CMV disease: consult ID early"
    validate_r4b(request)


# ---------------------------------------------------------------------------------------------
# Stopping orders


def test_a_dose_change_leaves_out_the_quantity_counted_for_the_old_dose():
    draft = sandbox_draft()
    draft["dispenseRequest"] = {"quantity": {"value": 84, "system": UCUM, "code": "{pill}"}, "numberOfRepeatsAllowed": 2}
    order = only_action(VALGAN_450_DAILY, {DRAFT_ID: draft})["resource"]
    assert order["dispenseRequest"] == {"numberOfRepeatsAllowed": 2}
    draft["dispenseRequest"] = {"quantity": {"value": 84, "system": UCUM, "code": "{pill}"}}
    assert "dispenseRequest" not in only_action(VALGAN_450_DAILY, {DRAFT_ID: draft})["resource"]


def test_stop_a_draft_is_a_delete_of_that_order():
    action = only_action(StopOrderProposal("Remove draft", DRAFT_ID, "letermovir is prophylaxis only"), {DRAFT_ID: sandbox_draft()})
    assert action == {
        "type": "delete",
        "description": "Remove the draft order valganciclovir 450 MG Oral Tablet: letermovir is prophylaxis only",
        "resourceId": DRAFT_ID,
    }


def test_stop_without_the_order_is_a_delete():
    action = only_action(StopOrderProposal("Remove draft", DRAFT_ID, "duplicate therapy"), patient_id=None)
    assert action["type"] == "delete" and action["resourceId"] == DRAFT_ID


def test_stop_an_active_order_is_discontinuation_not_deletion():
    active = ganciclovir_draft()
    active["status"] = "active"
    action = only_action(StopOrderProposal("Stop ganciclovir", "MedicationRequest/gcv-1", "foscarnet started"),
                         {"MedicationRequest/gcv-1": active})
    assert action["type"] == "update"
    order = action["resource"]
    assert (order["id"], order["status"], order["statusReason"]) == ("gcv-1", "stopped", {"text": "foscarnet started"})
    assert order["dosageInstruction"] == active["dosageInstruction"]
    validate_r4b(order)


def test_a_switch_from_an_order_on_record_orders_and_discontinues_in_one_suggestion():
    active = ganciclovir_draft()
    active["status"] = "active"
    switch = DoseProposal("Switch to foscarnet", "foscarnet", 6300, 12, "iv", "every 12 h",
                          also=(discontinuation("MedicationRequest/gcv-1", "foscarnet"),))
    cards = render_cards([finding(proposals=(switch,))], {"MedicationRequest/gcv-1": active}, PATIENT_ID)
    (suggestion,) = cards[0]["suggestions"]
    create, stop = suggestion["actions"]  # accepted together: never foscarnet on top of ganciclovir
    assert create["type"] == "create" and create["resource"]["status"] == "draft"
    assert create["resource"]["medicationCodeableConcept"]["text"].lower().startswith("foscarnet")
    assert stop["type"] == "update" and stop["resource"]["id"] == "gcv-1"
    assert (stop["resource"]["status"], stop["resource"]["statusReason"]) == ("stopped", {"text": "replaced by foscarnet"})
    validate_r4b(stop["resource"])


def test_an_order_without_a_status_is_discontinued_never_deleted():
    # Only a draft says it is one: an order on record that lost its status is still on record.
    unknown = ganciclovir_draft()
    del unknown["status"]
    action = only_action(StopOrderProposal("Stop ganciclovir", "MedicationRequest/gcv-1", "foscarnet started"),
                         {"MedicationRequest/gcv-1": unknown})
    assert action["type"] == "update" and action["resource"]["status"] == "stopped"


def test_a_draft_without_a_status_is_still_removed_as_a_draft():
    # The hook sent it as a draft: its missing status does not make it an order on record.
    draft = ganciclovir_draft()
    del draft["status"]
    stop = StopOrderProposal("Remove ganciclovir", "MedicationRequest/gcv-1", "duplicate")
    cards = render_cards([finding(proposals=(stop,))], {"MedicationRequest/gcv-1": draft}, PATIENT_ID,
                         drafts={"MedicationRequest/gcv-1"})
    (action,) = actions(cards)
    assert action["type"] == "delete" and action["resourceId"] == "MedicationRequest/gcv-1"


def test_an_order_sent_without_an_id_gets_no_action_that_cannot_point_at_it():
    # The facts layer names it by its place in the bundle; neither a delete of that name nor an update
    # without an id is anything a CDS client can apply, and a new order beside it would be a second one.
    unnamed = ganciclovir_draft()
    del unnamed["id"]
    placeholder = "MedicationRequest/(unidentified 1)"
    orders = {placeholder: unnamed}
    remove = StopOrderProposal("Remove ganciclovir", placeholder, "duplicate")
    change = DoseProposal("Change to ganciclovir 175 mg", "ganciclovir", 175, 12, "iv", "every 12 h", replaces=placeholder)
    stop_too = DoseProposal("Switch to foscarnet", "foscarnet", 6300, 12, "iv", "every 12 h",
                            also=(discontinuation(placeholder, "foscarnet"),))
    cards = render_cards([finding(proposals=(remove, change, stop_too))], orders, PATIENT_ID, drafts={placeholder})
    # None is offered: not the delete, the update or the stop of the order without an id, nor the switch that
    # would start foscarnet beside it.
    assert actions(cards) == []
    # A stop that carries one (the probenecid drafted with a contraindicated cidofovir) still stops the rest.
    remove_both = StopOrderProposal("Remove the cidofovir order and its probenecid", DRAFT_ID, "contraindicated",
                                    also=(StopOrderProposal("Remove", placeholder, "given only with cidofovir"),))
    named_draft = {DRAFT_ID: {**unnamed, "id": "request-123"}, placeholder: unnamed}
    cards = render_cards([finding(proposals=(remove_both,))], named_draft, PATIENT_ID, drafts={DRAFT_ID, placeholder})
    assert [(a["type"], a.get("resourceId")) for a in actions(cards)] == [("delete", DRAFT_ID)]
    # A switch from an order that has an id is still offered, with its stop.
    named = {DRAFT_ID: {**unnamed, "id": "request-123"}}
    switch = DoseProposal("Switch to foscarnet", "foscarnet", 6300, 12, "iv", "every 12 h",
                          also=(discontinuation(DRAFT_ID, "foscarnet"),))
    assert [a["type"] for a in actions(render_cards([finding(proposals=(switch,))], named, PATIENT_ID))] == ["create", "delete"]


def test_a_switch_does_not_touch_an_order_it_was_not_sent():
    switch = DoseProposal("Switch to foscarnet", "foscarnet", 6300, 12, "iv", "every 12 h",
                          also=(discontinuation("MedicationRequest/elsewhere", "foscarnet"),))
    assert [a["type"] for a in actions(render_cards([finding(proposals=(switch,))], {}, PATIENT_ID))] == ["create"]
    assert actions(render_cards([finding(proposals=(switch,))], {}, None)) == []  # no patient: no order at all


# ---------------------------------------------------------------------------------------------
# Every resource, every shape


def test_every_suggested_resource_is_valid_r4_and_has_no_empty_values():
    proposals = (
        VALGAN_450_DAILY,
        DoseProposal("a", "foscarnet", 3150, 24, "iv", "every 24 h", duration_days=14),
        DoseProposal("b", "ganciclovir", 87.5, None, "iv", "3 times weekly after dialysis", replaces=DRAFT_ID),
        LabOrderProposal("c", "ionized-calcium", recurrence="twice weekly"),
        LabOrderProposal("d", "cmv-genotype"),
        ConsultProposal("e", "gastroenterology", "colonic biopsy for CMV colitis"),
        StopOrderProposal("f", DRAFT_ID, "duplicate"),
    )
    cards = render_cards([finding(proposals=proposals, selection="any")], {DRAFT_ID: sandbox_draft()}, PATIENT_ID)
    resources = [a["resource"] for a in actions(cards) if "resource" in a]
    assert len(resources) == 6
    for resource in resources:
        validate_r4b(resource)
    assert empty_values(cards) == []
