"""Treatment guidance through the running service: the fixture patients' hook requests
(fhir_fixtures/requests) over HTTP, as of FIXTURE_NOW.  Only the guidance topics are asserted here;
the order-safety cards in the same responses are tested with the order-safety rules."""

from __future__ import annotations

import re

import pytest
from conftest import FIXTURES, SERVICE_OF_HOOK, load_json

from reliability.contract import card_signature

GUIDANCE_TOPICS = {
    "cmv-treatment-regimen",
    "immunosuppression-reduction",
    "alternative-therapy",
    "suspected-resistance",
    "cns-disease-combination",
    "pneumonitis-ivig",
    "hiv-retinitis",
    "ibd-cmv-colitis",
    "hsct-preemptive",
    "monitoring-plan",
    "treatment-duration",
    "cmv-status",
}


def call(live_service, slug: str, hook: str) -> list[dict]:
    body = load_json(FIXTURES / "requests" / f"{slug}.{hook}.json")
    response = live_service.call(SERVICE_OF_HOOK[hook], body)
    assert response.status_code == 200, response.text
    return response.json()["cards"]


def topic(card: dict) -> str:
    return card["source"]["topic"]["code"]


def guidance_cards(cards: list[dict]) -> dict[str, dict]:
    found = {}
    for card in cards:
        if topic(card) in GUIDANCE_TOPICS:
            assert topic(card) not in found, f"two {topic(card)} cards"
            found[topic(card)] = card
    return found


def orders(card: dict) -> list[tuple[str, float, str]]:
    """(drug text, mg per dose, dose text) of every MedicationRequest a card's suggestions create or update."""
    result = []
    for suggestion in card.get("suggestions", []):
        for action in suggestion["actions"]:
            resource = action.get("resource") or {}
            if resource.get("resourceType") != "MedicationRequest":
                continue
            text = resource["dosageInstruction"][0]["text"]
            mg = float(re.match(r"([\d.]+) mg", text).group(1))
            result.append((resource["medicationCodeableConcept"]["text"].lower(), mg, text))
    return result


def service_requests(card: dict) -> list[str]:
    return [
        action["resource"]["code"].get("text", "")
        for suggestion in card.get("suggestions", [])
        for action in suggestion["actions"]
        if (action.get("resource") or {}).get("resourceType") == "ServiceRequest"
    ]


def test_kidney_colitis_patient_view_regimen_at_the_renal_dose(live_service):
    found = guidance_cards(call(live_service, "kidney-colitis", "patient-view"))
    assert {"cmv-status", "cmv-treatment-regimen", "immunosuppression-reduction"} <= set(found)
    assert "suspected-resistance" not in found
    regimen = found["cmv-treatment-regimen"]
    assert regimen["indicator"] == "warning" and regimen["selectionBehavior"] == "any"
    [(drug, mg, text)] = orders(regimen)
    assert "ganciclovir" in drug and mg == 175 and "every 12 h" in text  # CrCl 61.3: 2.5 mg/kg x 70 kg
    assert "900 mg" in regimen["detail"]  # valganciclovir step-down at CrCl >= 60
    assert any("CMV" in s for s in service_requests(regimen))
    assert "mycophenolate" in found["immunosuppression-reduction"]["summary"]


def test_kidney_colitis_order_sign_adds_no_guidance(live_service):
    # the ganciclovir draft is the treatment being started: no regimen card, no status card
    assert guidance_cards(call(live_service, "kidney-colitis", "order-sign")) == {}


def test_liver_renal_doses_stay_in_the_25_39_band(live_service):
    found = guidance_cards(call(live_service, "liver-renal", "patient-view"))
    assert "cmv-status" in found
    for card in found.values():
        for drug, mg, text in orders(card):
            assert (mg, "once daily" in text or "every 24 h" in text) in {(450, True), (170, True)}, (drug, text)
            assert not (mg == 900 and "every 12 h" in text)


def test_hsct_preemptive_patient_view(live_service):
    found = guidance_cards(call(live_service, "hsct-preemptive", "patient-view"))
    card = found["hsct-preemptive"]
    assert card["indicator"] == "warning" and "day 60" in card["summary"]
    [(drug, mg, text)] = orders(card)
    assert "valganciclovir" in drug and mg == 900 and "twice daily" in text
    assert "400 mg" in card["detail"]  # IV ganciclovir 5 mg/kg x 80 kg as the alternative route
    assert "suspected-resistance" not in found


def test_hsct_preemptive_letermovir_draft_gets_no_guidance(live_service):
    assert guidance_cards(call(live_service, "hsct-preemptive", "order-sign")) == {}


def test_hsct_pneumonitis_patient_view(live_service):
    found = guidance_cards(call(live_service, "hsct-pneumonitis", "patient-view"))
    assert {"cmv-treatment-regimen", "pneumonitis-ivig", "immunosuppression-reduction"} <= set(found)
    [(drug, mg, text)] = orders(found["cmv-treatment-regimen"])
    assert "ganciclovir" in drug and mg == 300 and "every 12 h" in text
    assert "365" in found["cmv-status"]["detail"] and "chronic GVHD" in found["cmv-status"]["detail"]
    assert "hsct-preemptive" not in found  # disease: the regimen applies


def test_hiv_retinitis_patient_view_and_order_select(live_service):
    found = guidance_cards(call(live_service, "hiv-retinitis", "patient-view"))
    assert "cmv-treatment-regimen" not in found
    card = found["hiv-retinitis"]
    [(drug, mg, text)] = orders(card)
    assert "valganciclovir" in drug and mg == 900 and "for 21 days" in text
    assert "Biktarvy" in card["detail"]
    # The draft follows the regimen and ART is on record: nothing to repeat on the order.
    assert guidance_cards(call(live_service, "hiv-retinitis", "order-select")) == {}


def test_uc_steroids_colitis_patient_view(live_service):
    found = guidance_cards(call(live_service, "uc-steroids-colitis", "patient-view"))
    assert {"ibd-cmv-colitis", "cmv-treatment-regimen"} <= set(found)
    assert "78-93%" in found["ibd-cmv-colitis"]["detail"]
    [(drug, mg, _)] = orders(found["cmv-treatment-regimen"])
    assert "ganciclovir" in drug and mg == 290


def test_refractory_valganciclovir_patient_view(live_service):
    found = guidance_cards(call(live_service, "refractory-valganciclovir", "patient-view"))
    card = found["suspected-resistance"]
    assert card["summary"].startswith("Refractory CMV")
    assert any("UL97" in s for s in service_requests(card))
    drugs = {drug for drug, _, _ in orders(card)}
    assert any("foscarnet" in d for d in drugs) and any("maribavir" in d for d in drugs)
    assert "meets the label dose" in card["detail"]
    assert "cmv-treatment-regimen" not in found


def test_foscarnet_low_mg_documented_resistance_never_proposes_ganciclovir(live_service):
    found = guidance_cards(call(live_service, "foscarnet-low-mg", "patient-view"))
    proposed = [drug for card in found.values() for drug, _, _ in orders(card)]
    assert proposed and all("foscarnet" in d for d in proposed)


def test_cidofovir_creatinine_hiv_retinitis_at_the_renal_dose(live_service):
    found = guidance_cards(call(live_service, "cidofovir-creatinine", "patient-view"))
    [(drug, mg, text)] = orders(found["hiv-retinitis"])
    assert "valganciclovir" in drug and mg == 450 and "twice daily" in text  # CrCl 42.8


def test_letermovir_prophylaxis_only_the_status_card(live_service):
    found = guidance_cards(call(live_service, "letermovir-prophylaxis", "patient-view"))
    assert set(found) == {"cmv-status"}
    assert "letermovir prophylaxis" in found["cmv-status"]["summary"]


@pytest.mark.parametrize("hook", ["patient-view", "order-select", "order-sign"])
def test_no_cmv_no_cards(live_service, hook):
    assert call(live_service, "no-cmv", hook) == []


def test_sandbox_renal_order_select_adds_no_guidance(live_service):
    assert guidance_cards(call(live_service, "sandbox-renal", "order-select")) == {}
    assert "cmv-status" in guidance_cards(call(live_service, "sandbox-renal", "patient-view"))


def test_a_switch_of_a_draft_discontinues_the_course_on_record_in_the_same_suggestion(live_service):
    # refractory-valganciclovir (valganciclovir on record), with IV ganciclovir drafted and ganciclovir
    # resistance on record: each switch of the draft also stops the valganciclovir, in one suggestion.
    body = load_json(FIXTURES / "requests" / "refractory-valganciclovir.order-sign.json")
    ganciclovir = load_json(FIXTURES / "requests" / "kidney-colitis.order-sign.json")["context"]["draftOrders"]["entry"][0]
    ganciclovir["resource"]["subject"] = {"reference": f"Patient/{body['context']['patientId']}"}
    body["context"]["draftOrders"]["entry"] = [ganciclovir]
    condition = body["prefetch"]["conditions"]["entry"][0]["resource"]
    resistance = {**condition, "id": "ganciclovir-resistance",
                  "code": {"text": "CMV ganciclovir resistance (UL97 mutation)"}}
    body["prefetch"]["conditions"]["entry"].append({"resource": resistance})
    response = live_service.call(SERVICE_OF_HOOK["order-sign"], body)
    assert response.status_code == 200, response.text
    [card] = [c for c in response.json()["cards"] if topic(c) == "alternative-therapy"]
    assert card["suggestions"]
    for suggestion in card["suggestions"]:
        changed, stopped = [(a["resource"]["id"], a["resource"].get("status")) for a in suggestion["actions"]]
        assert changed == ("cmv-kidney-colitis-draft-1", "draft")
        assert stopped == ("cmv-refractory-valganciclovir-med-4", "stopped")


REQUESTS = sorted((FIXTURES / "requests").glob("*.json"))


@pytest.mark.parametrize("path", REQUESTS, ids=lambda p: p.stem)
def test_the_cards_do_not_depend_on_the_order_of_the_prefetched_bundles(live_service, path):
    # EHRs list search results in their own order (by date, by id, by last update); the answer to the same
    # record must be the same (the facts list orders on record newest first, conditions oldest first).
    request = load_json(path)
    reversed_request = {**request, "prefetch": {
        key: {**bundle, "entry": bundle["entry"][::-1]} if isinstance(bundle, dict) and "entry" in bundle else bundle
        for key, bundle in request.get("prefetch", {}).items()}}
    service_id = SERVICE_OF_HOOK[request["hook"]]
    answers = [live_service.call(service_id, body) for body in (request, reversed_request)]
    assert [a.status_code for a in answers] == [200, 200]
    assert card_signature(answers[0].json()["cards"]) == card_signature(answers[1].json()["cards"])
