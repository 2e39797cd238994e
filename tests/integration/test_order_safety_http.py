"""Order-safety cards through the live service (real HTTP, real facts, rules and cards layers).

Requests are the fixture requests (fhir_fixtures/requests), the captured sandbox call with a
fixture record, and requests built here from the fixture patient bundles with other drafts.
"""

from __future__ import annotations

import copy
import importlib.util

import pytest
from conftest import FIXTURES, SERVICE_OF_HOOK, SHARED, load_json

REQUESTS = FIXTURES / "requests"
ORDER_SAFETY_TOPICS = {
    "renal-dose-adjustment",
    "hematologic-toxicity",
    "nephrotoxicity",
    "electrolyte-abnormality",
    "drug-interaction",
    "duplicate-therapy",
    "prophylaxis-not-treatment",
    "administration-route",
    "infusion-time",
    "missing-data",
}


def _builder():
    """fhir_fixtures/build_requests.py (drafts and prefetch as the fixture requests build them)."""
    spec = importlib.util.spec_from_file_location("build_requests", FIXTURES / "build_requests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _builder()


def call(live_service, body) -> list[dict]:
    response = live_service.call(SERVICE_OF_HOOK[body["hook"]], body)
    assert response.status_code == 200, response.text
    return response.json()["cards"]


def fixture_cards(live_service, name: str) -> list[dict]:
    return call(live_service, load_json(REQUESTS / f"{name}.json"))


def topic(card: dict) -> str:
    return card["source"]["topic"]["code"]


def cards_of(cards: list[dict], wanted: str) -> list[dict]:
    return [c for c in cards if topic(c) == wanted]


def one(cards: list[dict], wanted: str) -> dict:
    found = cards_of(cards, wanted)
    assert len(found) == 1, [(topic(c), c["summary"]) for c in cards]
    return found[0]


def update_action(card: dict) -> dict:
    (suggestion,) = [s for s in card["suggestions"] if s["actions"][0]["type"] == "update"]
    (action,) = suggestion["actions"]
    return action


def dose_of(resource: dict) -> tuple[float, str, dict]:
    """(value, unit code, timing.repeat) of the first dosage, R4 or DSTU2."""
    dosage = resource["dosageInstruction"][0]
    quantity = dosage["doseAndRate"][0]["doseQuantity"] if "doseAndRate" in dosage else dosage["doseQuantity"]
    return quantity["value"], quantity.get("code"), dosage["timing"]["repeat"]


def request_for(slug: str, hook: str, drafts: list[dict], medications: list[dict] = ()) -> dict:
    """A hook request for a fixture patient, with our drafts (and extra orders on record)."""
    bundle = load_json(FIXTURES / "patients" / f"{slug}.json")
    resources = build.bundle_resources(bundle) + list(medications)
    patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    prefetch = build.prefetch_for(resources, build.FHIR_SERVER)
    return build.hook_request(f"test-{slug}", hook, patient_id, prefetch, drafts=drafts)


def patient_id_of(slug: str) -> str:
    bundle = load_json(FIXTURES / "patients" / f"{slug}.json")
    return next(r["id"] for r in build.bundle_resources(bundle) if r["resourceType"] == "Patient")


def mg_draft(slug: str, n: int, text: str, dose: float, route: str, repeat: dict, unit: str = "mg") -> dict:
    return build.draft(patient_id_of(slug), n, text=text, coding=build.named(text), dose=dose, unit=unit,
                       route=route, repeat=repeat, sig=f"{dose} {unit}")


# ---------------------------------------------------------------------------------------------
# The fixture requests


@pytest.mark.parametrize("name", ["liver-renal.order-select", "liver-renal.order-sign", "liver-renal-dstu2.order-sign"])
def test_liver_renal_valganciclovir_is_renally_adjusted(live_service, name):
    cards = fixture_cards(live_service, name)
    card = one(cards, "renal-dose-adjustment")
    assert card["indicator"] == "warning"
    assert "too high for CrCl 29.9 mL/min: 450 mg q24h" in card["summary"]
    assert "reported as 185 umol/L" in card["detail"]  # creatinine converted from umol/L, shown as sent
    action = update_action(card)
    resource = action["resource"]
    assert resource["id"] == "cmv-liver-renal-draft-1"
    assert resource["resourceType"] == ("MedicationOrder" if "dstu2" in name else "MedicationRequest")
    value, unit, repeat = dose_of(resource)
    assert (value, unit) == (450, "mg")
    assert (repeat["frequency"], repeat["period"], repeat["periodUnit" if "dstu2" not in name else "periodUnits"]) == (1, 1, "d")
    assert not [c for c in cards if c["indicator"] == "critical"]


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_kidney_colitis_ganciclovir_is_renally_adjusted(live_service, hook):
    card = one(fixture_cards(live_service, f"kidney-colitis.{hook}"), "renal-dose-adjustment")
    assert card["summary"].startswith("Ganciclovir 350 mg q12h too high for CrCl 61.3 mL/min: 175 mg (2.5 mg/kg) q12h")
    value, unit, repeat = dose_of(update_action(card)["resource"])
    assert (value, unit) == (175, "mg") and (repeat["frequency"], repeat["period"], repeat["periodUnit"]) == (1, 12, "h")


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_cidofovir_with_renal_impairment_is_critical(live_service, hook):
    cards = fixture_cards(live_service, f"cidofovir-creatinine.{hook}")
    card = one(cards, "nephrotoxicity")
    assert card["indicator"] == "critical" and cards[0] is card
    assert "creatinine 1.8 mg/dL (> 1.5)" in card["summary"] and "CrCl 42.8 mL/min (≤ 55)" in card["summary"]
    (suggestion,) = card["suggestions"]
    assert suggestion["actions"][0] == {
        "type": "delete",
        "description": suggestion["actions"][0]["description"],
        "resourceId": "MedicationRequest/cmv-cidofovir-creatinine-draft-1",
    }
    assert "probenecid" in card["detail"].lower()


def test_foscarnet_electrolytes_and_renal_band(live_service):
    cards = fixture_cards(live_service, "foscarnet-low-mg.order-select")
    electrolytes = one(cards, "electrolyte-abnormality")
    assert electrolytes["indicator"] == "warning"
    for words in ("potassium 3.3 mmol/L", "magnesium 1.4 mg/dL", "ionized calcium 1.05 mmol/L"):
        assert words in electrolytes["summary"]
    renal = one(cards, "renal-dose-adjustment")
    assert "4900 mg (70 mg/kg) q12h" in renal["summary"]
    assert dose_of(update_action(renal)["resource"])[0] == 4900


def _observations(body: dict, loinc: str) -> list[dict]:
    entries = body["prefetch"]["observations"]["entry"]
    return [e["resource"] for e in entries if any(c.get("code") == loinc for c in e["resource"]["code"]["coding"])]


@pytest.mark.parametrize("creatinine", [3.0, 1.0])
def test_foscarnet_with_a_stale_weight_is_still_judged_by_its_clearance_per_kg(live_service, creatinine):
    # foscarnet-low-mg: 60 years, male.  Per kg the weight cancels (label): (140 - 60) / (72 x SCr).
    body = load_json(REQUESTS / "foscarnet-low-mg.order-sign.json")
    for weight in _observations(body, "29463-7"):
        weight["effectiveDateTime"] = "2026-09-01"  # 86 days old on the fixture's day
    for scr in _observations(body, "2160-0"):
        scr["valueQuantity"]["value"] = creatinine
    cards = call(live_service, body)
    if creatinine == 3.0:  # 0.37 mL/min/kg: below the label's table, whatever the weight
        card = one(cards, "nephrotoxicity")
        assert card["indicator"] == "critical"
        assert card["summary"] == "Foscarnet not recommended: CrCl 0.37 mL/min/kg is below 0.4 (label)"
        assert "per kg = (140 - 60) / (72 x 3 mg/dL) = 0.37 mL/min/kg (the weight cancels)" in card["detail"]
    else:  # 1.11 mL/min/kg: the band is known, its mg dose is not (the ordered q12h regimen's, not q8h's)
        assert not cards_of(cards, "nephrotoxicity") and not cards_of(cards, "renal-dose-adjustment")
        card = one(cards, "missing-data")
        assert "band gives 70 mg/kg every 12 h; the dose in mg needs a current weight" in card["detail"]
        assert "86 days old" in card["detail"]


@pytest.mark.parametrize("name", ["no-cmv.order-select", "no-cmv.order-sign", "no-cmv.patient-view"])
def test_no_cards_for_a_patient_without_cmv(live_service, name):
    assert fixture_cards(live_service, name) == []


def test_stale_inputs_give_missing_data_and_no_dose(live_service):
    cards = fixture_cards(live_service, "stale-labs.order-select")
    card = one(cards, "missing-data")
    assert "42 days old" in card["detail"] and "169 days old" in card["detail"]
    assert not cards_of(cards, "renal-dose-adjustment")
    actions = [a for s in card.get("suggestions", []) for a in s["actions"]]
    assert all(a["type"] == "create" and a["resource"]["resourceType"] == "ServiceRequest" for a in actions)
    assert "450" not in card["detail"]


def test_letermovir_with_treatment_level_viraemia(live_service):
    cards = fixture_cards(live_service, "hsct-preemptive.order-select")
    assert one(cards, "prophylaxis-not-treatment")["indicator"] == "warning"
    assert one(cards, "drug-interaction")["indicator"] == "info"  # letermovir raises tacrolimus
    assert not cards_of(cards, "renal-dose-adjustment")


def test_maribavir_with_active_valganciclovir(live_service):
    cards = fixture_cards(live_service, "refractory-valganciclovir.order-select")
    antagonism = [c for c in cards_of(cards, "drug-interaction") if c["indicator"] == "warning"]
    assert len(antagonism) == 1 and "antagonism" in antagonism[0]["summary"]
    assert not cards_of(cards, "renal-dose-adjustment")


@pytest.mark.parametrize("name", ["hsct-pneumonitis.order-select", "hiv-retinitis.order-sign"])
def test_correct_doses_are_not_flagged(live_service, name):
    cards = fixture_cards(live_service, name)
    assert not cards_of(cards, "renal-dose-adjustment")
    assert not [c for c in cards if c["indicator"] == "critical"]


def test_low_hemoglobin_and_tmp_smx_are_one_blood_count_card(live_service):
    cards = fixture_cards(live_service, "hiv-retinitis.order-sign")
    counts = one(cards, "hematologic-toxicity")
    assert counts["indicator"] == "info" and "hemoglobin 11.9 g/dL and trimethoprim-sulfamethoxazole" in counts["summary"]
    assert not cards_of(cards, "drug-interaction")  # the same weekly-count advice is not given twice


def test_patient_view_has_no_order_safety_cards(live_service):
    cards = fixture_cards(live_service, "liver-renal.patient-view")
    assert not [c for c in cards if topic(c) in ORDER_SAFETY_TOPICS - {"missing-data", "drug-interaction"}]


# ---------------------------------------------------------------------------------------------
# The sandbox's own call


def sandbox_request(hook: str = "order-select") -> dict:
    """The captured sandbox call (shared/examples) with the sandbox-renal record as its prefetch."""
    example = load_json(SHARED / "examples" / "sandbox-order-select-valganciclovir.json")
    record = build.bundle_resources(load_json(FIXTURES / "patients" / "sandbox-renal.json"))
    for key, value in build.prefetch_for(record, example["fhirServer"]).items():
        example["prefetch"].setdefault(key, value)
    if hook == "order-sign":
        example["hook"] = "order-sign"
        del example["context"]["selections"]
    return example


@pytest.mark.skipif(not (SHARED / "examples").is_dir(), reason="../shared/examples is not here")
@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_sandbox_valganciclovir_gets_a_renal_card_it_can_apply(live_service, hook):
    body = sandbox_request(hook)
    draft = copy.deepcopy(body["context"]["draftOrders"]["entry"][0]["resource"])
    card = one(call(live_service, body), "renal-dose-adjustment")
    assert card["summary"].startswith(
        "Valganciclovir 900 mg (2 tablets) q12h too high for CrCl 35.5 mL/min: 450 mg (1 tablet) q24h"
    )
    assert card["uuid"] and card["selectionBehavior"] == "at-most-one"
    action = update_action(card)
    resource = action["resource"]
    assert resource["id"] == "request-123"
    concept = resource["medicationCodeableConcept"]
    assert concept["text"] and concept["coding"][0]["code"] == "313566"  # what the sandbox applies
    assert concept == draft["medicationCodeableConcept"]
    value, unit, repeat = dose_of(resource)
    assert (value, unit) == (1, "{pill}")  # one 450 mg tablet, in the draft's own unit
    assert (repeat["frequency"], repeat["period"], repeat["periodUnit"]) == (1, 1, "d")


def test_fixture_sandbox_request_matches(live_service):
    card = one(fixture_cards(live_service, "sandbox-renal.order-select"), "renal-dose-adjustment")
    assert update_action(card)["resource"]["id"] == "request-123"


def test_sandbox_page_load_gets_no_order_safety_card(live_service):
    body = load_json(SHARED / "examples" / "sandbox-order-select-pageload.json")
    record = build.bundle_resources(load_json(FIXTURES / "patients" / "sandbox-renal.json"))
    for key, value in build.prefetch_for(record, body["fhirServer"]).items():
        body["prefetch"].setdefault(key, value)
    assert not [c for c in call(live_service, body) if topic(c) in ORDER_SAFETY_TOPICS]


# ---------------------------------------------------------------------------------------------
# Requests built from fixture patients with other drafts


def test_already_adjusted_orders_are_not_flagged(live_service):
    # liver-renal (CrCl 29.9, 68 kg): ganciclovir 2.5 mg/kg = 170 mg every 24 h is the 25-49 induction
    # band, though every 24 h reads as maintenance; valganciclovir 450 mg every 2 days is its maintenance.
    drafts = [
        mg_draft("liver-renal", 1, "ganciclovir 500 MG Injection", 170, "iv", build.DAILY),
        mg_draft("liver-renal", 2, "valganciclovir 450 MG Oral Tablet", 450, "oral", {"frequency": 1, "period": 2, "periodUnit": "d"}),
    ]
    cards = call(live_service, request_for("liver-renal", "order-sign", drafts))
    assert not cards_of(cards, "renal-dose-adjustment")
    # both drafted at once is one card, a warning: signed together, both would be given
    (switch,) = cards_of(cards, "duplicate-therapy")
    assert switch["indicator"] == "warning"


def test_intramuscular_ganciclovir_is_critical_and_becomes_an_iv_infusion(live_service):
    gcv = mg_draft("kidney-colitis", 1, "ganciclovir 500 MG", 350, "iv", build.Q12H)
    gcv["dosageInstruction"][0]["route"] = {"coding": [{"system": "http://snomed.info/sct", "code": "78421000"}]}
    cards = call(live_service, request_for("kidney-colitis", "order-sign", [gcv]))
    card = one(cards, "administration-route")
    assert card["indicator"] == "critical" and "intramuscular" in card["summary"]
    assert not cards_of(cards, "renal-dose-adjustment")
    resource = update_action(card)["resource"]
    assert resource["id"] == gcv["id"]
    assert resource["dosageInstruction"][0]["route"]["coding"][0]["code"] == "47625008"  # IV
    assert dose_of(resource)[:2] == (175, "mg")  # the kidney-colitis band: 2.5 mg/kg x 70 kg


def test_ganciclovir_ordered_as_an_iv_push_is_critical_and_becomes_an_infusion(live_service):
    gcv = mg_draft("kidney-colitis", 1, "ganciclovir 500 MG Injection", 350, "iv", build.Q12H)
    gcv["dosageInstruction"][0]["method"] = {"text": "IV push"}
    cards = call(live_service, request_for("kidney-colitis", "order-sign", [gcv]))
    card = one(cards, "administration-route")
    assert card["indicator"] == "critical" and "ordered as an IV push or bolus: do not give" in card["summary"]
    assert "as an IV push or bolus ('IV push')" in card["detail"]
    dosage = update_action(card)["resource"]["dosageInstruction"][0]
    assert "method" not in dosage and dosage["route"]["coding"][0]["code"] == "47625008"
    assert dose_of(update_action(card)["resource"])[:2] == (175, "mg")


def test_valganciclovir_tablets_through_a_nasogastric_tube(live_service):
    vgc = mg_draft("kidney-colitis", 1, "valganciclovir 450 MG Oral Tablet", 900, "oral", build.Q12H)
    vgc["dosageInstruction"][0]["route"] = {"text": "Nasogastric tube"}
    card = one(call(live_service, request_for("kidney-colitis", "order-sign", [vgc])), "administration-route")
    assert card["indicator"] == "warning" and "feeding tube" in card["summary"]


@pytest.mark.parametrize("minutes", [45, 120])
def test_foscarnet_infusion_time_is_checked_and_kept_in_its_renal_dose_only_when_not_too_fast(live_service, minutes):
    # foscarnet-low-mg: 70 kg, CrCl 1.0-1.4 mL/min/kg.  90 mg/kg every 12 h (label: over 1.5-2 h).
    fos = mg_draft("foscarnet-low-mg", 1, "foscarnet 24 MG/ML Injectable Solution", 6300, "iv", build.Q12H)
    fos["dosageInstruction"][0]["timing"]["repeat"].update({"duration": minutes, "durationUnit": "min"})
    cards = call(live_service, request_for("foscarnet-low-mg", "order-sign", [fos]))
    value, _, repeat = dose_of(update_action(one(cards, "renal-dose-adjustment"))["resource"])
    assert value == 4900  # 70 mg/kg
    if minutes == 45:
        card = one(cards, "infusion-time")
        assert card["summary"] == "Foscarnet 90 mg/kg ordered over 45 min: the label gives 90 mg/kg q12h over 1.5-2 h"
        assert "Dose per kg: 6300 mg / 70 kg = 90 mg/kg" in card["detail"]
        assert "duration" not in repeat  # a time the label calls too fast is not proposed again
    else:
        assert not cards_of(cards, "infusion-time")
        assert (repeat["duration"], repeat["durationUnit"]) == (120, "min")  # the prescriber's time, kept


def test_imipenem_drafted_while_on_ganciclovir(live_service):
    pid = patient_id_of("kidney-colitis")
    active = mg_draft("kidney-colitis", 9, "ganciclovir 500 MG Injection", 175, "iv", build.Q12H)
    active.update(id=f"{pid}-ganciclovir-active", status="active")
    imipenem = mg_draft("kidney-colitis", 1, "imipenem-cilastatin 500 MG Injection", 500, "iv",
                        {"frequency": 1, "period": 6, "periodUnit": "h"})
    cards = call(live_service, request_for("kidney-colitis", "order-select", [imipenem], [active]))
    card = one(cards, "drug-interaction")
    assert card["indicator"] == "warning" and "seizures" in card["summary"]
    assert not cards_of(cards, "renal-dose-adjustment")  # the ganciclovir order is not the target


def test_letermovir_with_cyclosporine_gets_240_mg(live_service):
    pid = patient_id_of("letermovir-prophylaxis")
    cyclosporine = mg_draft("letermovir-prophylaxis", 9, "cyclosporine 100 MG Oral Capsule", 150, "oral", build.Q12H)
    cyclosporine.update(id=f"{pid}-cyclosporine", status="active")
    letermovir = mg_draft("letermovir-prophylaxis", 1, "Prevymis (letermovir) 480 MG Oral Tablet", 480, "oral", build.DAILY)
    cards = call(live_service, request_for("letermovir-prophylaxis", "order-select", [letermovir], [cyclosporine]))
    card = [c for c in cards_of(cards, "drug-interaction") if "cyclosporine" in c["summary"]]
    assert len(card) == 1 and card[0]["indicator"] == "warning"
    value, unit, repeat = dose_of(update_action(card[0])["resource"])
    assert (value, unit) == (240, "mg") and (repeat["frequency"], repeat["period"], repeat["periodUnit"]) == (1, 1, "d")


def test_another_patient_s_entries_in_the_prefetch_never_dose_this_one(live_service):
    # A search Bundle carrying another patient's labs, conditions and orders (a server ignoring the patient
    # parameter, a wrong query): left out, said, and no dose computed from that patient's creatinine.
    body = load_json(REQUESTS / "liver-renal.order-select.json")
    assert "renal-dose-adjustment" in {topic(c) for c in call(live_service, body)}
    other = copy.deepcopy(body)
    for key in ("observations", "conditions", "medications"):
        for entry in other["prefetch"][key]["entry"]:
            entry["resource"]["subject"] = {"reference": "https://ehr.example/fhir/Patient/SOMEONE-ELSE/_history/2"}
    cards = call(live_service, other)
    assert "renal-dose-adjustment" not in {topic(c) for c in cards}
    missing = next(c for c in cards if topic(c) == "missing-data")
    assert "laboratory results and vital signs could not be retrieved (in full: 12 of its entries name another patient" in missing["detail"]
    # Its own entries, referenced absolutely, are read as before.
    own = copy.deepcopy(body)
    for entry in own["prefetch"]["observations"]["entry"]:
        entry["resource"]["subject"] = {"reference": f"https://ehr.example/fhir/Patient/{body['context']['patientId']}"}
    assert [c["summary"] for c in call(live_service, own)] == [c["summary"] for c in call(live_service, body)]
