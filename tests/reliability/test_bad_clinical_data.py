"""Data nobody cleaned, through the running service: each case is a clear 4xx or a 200 with honest
cards, never a 5xx, and never a dose computed from nonsense.

The base case is liver-renal order-select (valganciclovir 900 mg q12h at CrCl 29.9): untouched, it
gets a renal-dose-adjustment card.  Spoil its weight, creatinine or age and that card must go,
replaced by missing-data ("cannot check"), with no dose proposed anywhere.
"""

from __future__ import annotations

import math
import time

import orjson
import pytest
import requests

from conftest import SERVICE_OF_HOOK

from .conftest import encode, seed
from .contract import assert_answer, topics
from .faulty_fhir import closed_port
from .mutations import (
    CREATININE_CODES,
    active_valganciclovir,
    WEIGHT_CODES,
    dose_quantities,
    drafts,
    nested_json,
    observations,
    replace_value,
    set_quantity,
    strings,
    suggested_doses,
    suggested_resources,
)

BASE = "liver-renal.order-select"
SERVICE = SERVICE_OF_HOOK["order-select"]
# Nothing in the requests below is to be fetched: a FHIR server that is not there answers at once.
NOWHERE = f"http://127.0.0.1:{closed_port()}/fhir"


def base() -> dict:
    body = seed(BASE)
    body["fhirServer"] = NOWHERE
    return body


def post(service, body, service_id: str = SERVICE) -> requests.Response:
    return requests.post(service.url(f"/cds-services/{service_id}"), data=encode(body),
                         headers={"Content-Type": "application/json"}, timeout=30)


def post_bytes(service, data: bytes, service_id: str = SERVICE) -> requests.Response:
    return requests.post(service.url(f"/cds-services/{service_id}"), data=data,
                         headers={"Content-Type": "application/json"}, timeout=30)


def test_the_untouched_base_case_gets_its_renal_dose_card(service):
    # The control: without it, "no renal card" below could pass for any reason at all.
    cards = assert_answer(post(service, base()), 200)["cards"]
    assert "renal-dose-adjustment" in topics(cards)


def _birth_date(value):
    def mutate(body):
        if value is ...:
            body["prefetch"]["patient"].pop("birthDate")
        else:
            body["prefetch"]["patient"]["birthDate"] = value
    return mutate


# Inputs of the renal dose that are nonsense: the dose cannot be checked.
NONSENSE_INPUTS = {
    "weight zero": set_quantity(WEIGHT_CODES, value=0),
    "weight negative": set_quantity(WEIGHT_CODES, value=-68),
    "weight 1e308": set_quantity(WEIGHT_CODES, value=1e308),
    "weight as a string": set_quantity(WEIGHT_CODES, value="68"),
    "weight without a value": set_quantity(WEIGHT_CODES, value=...),
    "weight in an unknown unit": set_quantity(WEIGHT_CODES, unit="stone", code="[stone_zz]"),
    "weight without a unit": set_quantity(WEIGHT_CODES, unit=..., code=..., system=...),
    "weight 68 g": set_quantity(WEIGHT_CODES, unit="g", code="g"),
    "weight as text": replace_value(WEIGHT_CODES, valueString="about 68 kg"),
    "creatinine zero": set_quantity(CREATININE_CODES, value=0),
    "creatinine negative": set_quantity(CREATININE_CODES, value=-185),
    "creatinine 1e308": set_quantity(CREATININE_CODES, value=1e308),
    "creatinine as a string": set_quantity(CREATININE_CODES, value="185"),
    "creatinine as a boolean": set_quantity(CREATININE_CODES, value=True),
    "creatinine in an unknown unit": set_quantity(CREATININE_CODES, unit="furlongs", code="[fur_us]"),
    "creatinine with unit and code disagreeing": set_quantity(CREATININE_CODES, unit="mg/dL", code="umol/L"),
    "creatinine as a range": replace_value(CREATININE_CODES, valueRange={"low": {"value": 1}, "high": {"value": 3}}),
    "creatinine as an object value": set_quantity(CREATININE_CODES, value={"value": 185}),
    "birth date in the future": _birth_date("2031-02-03"),
    "birth date 200 years ago": _birth_date("1826-01-01"),
    "birth date not a date": _birth_date("the fifth of May"),
    "birth date a number": _birth_date(19640502),
    "no birth date": _birth_date(...),
}


@pytest.mark.parametrize("name", NONSENSE_INPUTS)
def test_nonsense_renal_inputs_give_missing_data_and_no_dose(service, name):
    body = base()
    NONSENSE_INPUTS[name](body)
    cards = assert_answer(post(service, body), 200)["cards"]
    found = topics(cards)
    assert "renal-dose-adjustment" not in found, found
    assert "missing-data" in found, found
    assert suggested_doses(cards) == [], suggested_doses(cards)


def test_every_lab_value_as_a_string_gives_missing_data_and_no_dose(service):
    body = base()
    for obs in observations(body):
        quantity = obs.get("valueQuantity")
        if quantity and "value" in quantity:
            quantity["value"] = str(quantity["value"])
    cards = assert_answer(post(service, body), 200)["cards"]
    assert "renal-dose-adjustment" not in topics(cards)
    assert "missing-data" in topics(cards)
    assert suggested_doses(cards) == []


def test_operation_outcomes_in_place_of_the_prefetch_give_missing_data(service):
    body = base()
    failed = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    for key in ("observations", "medications", "conditions", "allergies"):
        body["prefetch"][key] = failed
    cards = assert_answer(post(service, body), 200)["cards"]
    assert "renal-dose-adjustment" not in topics(cards)
    assert "missing-data" in topics(cards)
    assert suggested_doses(cards) == []


def test_an_operation_outcome_in_place_of_the_patient_is_412(service):
    body = base()
    body["prefetch"]["patient"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}
    assert_answer(post(service, body), 412)


# ------------------------------------------------------------------------ the draft order itself


def _dose(**changes):
    def mutate(body):
        for quantity in dose_quantities(body):
            for key, value in changes.items():
                quantity[key] = value
    return mutate


def _timing(**repeat):
    def mutate(body):
        for draft in drafts(body):
            for dosage in draft.get("dosageInstruction") or []:
                dosage.setdefault("timing", {})["repeat"] = repeat
    return mutate


def _draft_entries(*resources):
    def mutate(body):
        body["context"]["draftOrders"]["entry"] = [{"resource": r} if isinstance(r, dict) else r for r in resources]
    return mutate


def _selections(*references):
    def mutate(body):
        body["context"]["selections"] = list(references)
    return mutate


def _control_characters(body):
    for container, key in [*strings(body["context"]["draftOrders"]), *strings(body["prefetch"])]:
        container[key] = f"\u0000\u202e\x1b[31m{container[key]}\r\n\t\u0007\ufeff"


ODD_DRAFTS = {
    "dose 1e308 mg": _dose(value=1e308),
    "dose negative": _dose(value=-900),
    "dose zero": _dose(value=0),
    "dose as a string": _dose(value="900"),
    "dose in an unknown unit": _dose(unit="furlongs", code="[fur_us]"),
    "dose as null": _dose(value=None),
    "frequency 1e308": _timing(frequency=1e308, period=1, periodUnit="d"),
    "period zero": _timing(frequency=2, period=0, periodUnit="d"),
    "period negative": _timing(frequency=2, period=-1, periodUnit="d"),
    "period in fortnights": _timing(frequency=2, period=1, periodUnit="fortnight"),
    "timing a string": _timing(frequency="twice", period="daily"),
    "control characters everywhere": _control_characters,
    "selection points nowhere": _selections("MedicationRequest/does-not-exist"),
    "selection of odd strings": _selections("", "MedicationRequest/", "../../../etc/passwd", "x" * 10_000),
    "selection of the patient": _selections("Patient/cmv-liver-renal"),
    "drafts that are not orders": _draft_entries(
        {"resourceType": "Patient", "id": "cmv-liver-renal-draft-1"},
        {"resourceType": "Observation", "id": "o", "status": "final"},
        {"resourceType": "ServiceRequest", "id": "s", "status": "draft"},
        {"resourceType": "OperationOutcome", "issue": []},
    ),
    "draft entries that are not objects": _draft_entries(None, 42, "MedicationRequest/1", [], {}, {"resource": None}),
    "draft without a drug or dose": _draft_entries(
        {"resourceType": "MedicationRequest", "id": "cmv-liver-renal-draft-1", "status": "draft"}
    ),
    "draft of a drug nobody knows": _draft_entries(
        {"resourceType": "MedicationRequest", "id": "cmv-liver-renal-draft-1", "status": "draft", "intent": "order",
         "medicationCodeableConcept": {"text": "unobtainium 5 MG Oral Tablet"},
         "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 5, "unit": "mg"}}]}]}
    ),
}


@pytest.mark.parametrize("name", ODD_DRAFTS)
def test_odd_drafts_and_selections_are_answered_honestly(service, name):
    body = base()
    ODD_DRAFTS[name](body)
    response = post(service, body)
    cards = assert_answer(response, (200, 400))
    if response.status_code != 200:
        return
    for quantity in suggested_doses(cards["cards"]):
        value = quantity.get("value")
        # A proposed dose is a real dose: finite, positive, and not beyond any anti-CMV regimen.
        assert isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= 10_000, quantity
    if name.startswith("selection") or name.startswith("draft"):
        # The selected order is not there (or is not an order): there is nothing to re-dose.
        assert "renal-dose-adjustment" not in topics(cards["cards"])


@pytest.mark.parametrize("fixture", ["cidofovir-creatinine.order-sign", "refractory-valganciclovir.order-sign",
                                     "hsct-preemptive.order-sign", "liver-renal.order-sign"])
def test_orders_sent_without_ids_get_no_action_pointing_at_them(service, fixture):
    # Untouched, these requests get delete or update actions on their drafts.  Without ids the drafts are still
    # checked and the cards still say what to do, but no action names an order the EHR cannot find.
    body = seed(fixture)
    body["fhirServer"] = NOWHERE
    for resource in drafts(body):
        resource.pop("id", None)
    response = post(service, body, SERVICE_OF_HOOK["order-sign"])
    cards = assert_answer(response, (200,))["cards"]
    assert cards, fixture  # the advice itself stays
    actions = [a for card in cards for s in card.get("suggestions", []) for a in s["actions"]]
    assert not [a for a in actions if a["type"] == "delete" or (a["type"] == "update" and not a["resource"].get("id"))]
    assert "unidentified" not in orjson.dumps(actions).decode()


# Orders whose dose or interval is a number no one could give: "cannot check", not arithmetic on it.
ABSURD_ORDERS = {
    "1e308 tablets": ("sandbox-renal.order-select", "dose", 1e308),
    "1e308 mg/kg": ("hsct-pneumonitis.order-select", "dose", 1e308),
    "1e308 mg": ("liver-renal.order-select", "dose", 1e308),
    "2^70 tablets": ("sandbox-renal.order-select", "dose", 2**70),
    "1e308 times a day": ("liver-renal.order-select", "repeat", {"frequency": 1e308, "period": 1, "periodUnit": "d"}),
    "every 1e308 years": ("liver-renal.order-select", "repeat", {"frequency": 1, "period": 1e308, "periodUnit": "a"}),
    "every 1e-300 hours": ("liver-renal.order-select", "repeat", {"frequency": 1, "period": 1e-300, "periodUnit": "h"}),
    "twice every nanoday": ("liver-renal.order-select", "repeat", {"frequency": 2, "period": 1e-9, "periodUnit": "d"}),
}


@pytest.mark.parametrize("name", ABSURD_ORDERS)
def test_an_absurd_dose_or_interval_cannot_be_checked(service, name):
    fixture, part, value = ABSURD_ORDERS[name]
    body = seed(fixture)
    body["fhirServer"] = NOWHERE
    if part == "dose":
        for quantity in dose_quantities(body):
            quantity["value"] = value
    else:
        for draft in drafts(body):
            draft["dosageInstruction"][0]["timing"]["repeat"] = value
    cards = assert_answer(post(service, body), 200)["cards"]  # the contract: no "inf mg", no "q0h"
    assert "renal-dose-adjustment" not in topics(cards), [c["summary"] for c in cards]
    assert "missing-data" in topics(cards)


def test_a_nonsense_reference_range_does_not_make_a_normal_count_low(service):
    # kidney-colitis: ANC 4.2 x10^3/uL, flagged N by the lab.  A lower limit of 1e308 x10^3/uL is
    # junk (it overflows to infinity in /uL), not a reason to call 4,200/uL low.
    body = seed("kidney-colitis.order-select")
    body["fhirServer"] = NOWHERE
    for obs in observations(body):
        if obs["code"]["coding"][0]["code"] == "751-8":
            obs["referenceRange"] = [{"low": {"value": 1e308, "unit": "10*3/uL"}}]
            obs["interpretation"] = [{"coding": [{"code": "N"}]}]
    cards = assert_answer(post(service, body), 200)["cards"]
    assert "hematologic-toxicity" not in topics(cards), [c["summary"] for c in cards]


# --------------------------------------------------------------------- bodies that are not sane


def test_json_nested_10000_levels_is_a_400_not_a_recursion_error(service):
    response = post_bytes(service, nested_json(10_000))
    assert_answer(response, (400, 413))


def test_a_field_nested_10000_levels_is_a_400(service):
    body = orjson.dumps(base())
    data = body[:-1] + b',"extension":' + nested_json(10_000) + b"}"
    assert_answer(post_bytes(service, data), (400, 413))


def test_an_active_order_on_record_is_echoed_in_a_suggestion(service):
    # The control for the "active order" cases below: the junk does reach the cards.
    body = seed("kidney-colitis.order-select")
    body["fhirServer"] = NOWHERE
    body["prefetch"]["medications"]["entry"] = [{"resource": active_valganciclovir("shallow")}]
    cards = assert_answer(post(service, body), 200)["cards"]
    assert "active-vgc" in [r.get("id") for r in suggested_resources(cards)]


@pytest.mark.parametrize("depth", [100, 300, 1000])
@pytest.mark.parametrize("where", ["draft", "observation", "active order"])
def test_deep_junk_inside_resources_is_never_a_500(service, where, depth):
    # Within what the JSON parser accepts (1,024 levels), so it reaches the facts and cards layers.
    if where == "active order":
        body = seed("kidney-colitis.order-select")
        body["fhirServer"] = NOWHERE
        body["prefetch"]["medications"]["entry"] = [{"resource": active_valganciclovir("DEEP")}]
    else:
        body = base()
        target = drafts(body)[0] if where == "draft" else observations(body)[0]
        target["extension"] = [{"url": "urn:junk", "valueString": "x", "extension": "DEEP"}]
    # Spliced in as bytes: JSON encoders refuse to write what the parser accepts.
    data = orjson.dumps(body).replace(b'"DEEP"', nested_json(depth - 2), 1)
    assert_answer(post_bytes(service, data), (200, 400, 413))


@pytest.mark.parametrize(
    "name,data",
    [
        ("not UTF-8", b'{"hook": "order-select", "hookInstance": "\xff\xfe"}'),
        ("a lone surrogate", b'{"hook": "order-select", "hookInstance": "\\ud800"}'),
        ("NaN", b'{"hook": "order-select", "hookInstance": NaN}'),
        ("a number too big for a double", b'{"hook": "order-select", "hookInstance": 1' + b"0" * 400 + b"}"),
        ("trailing garbage", b'{"hook": "order-select"} {"hook": 1}'),
        ("a byte-order mark", b'\xef\xbb\xbf{"hook": "order-select"}'),
        ("nothing", b""),
        ("whitespace", b" \n\t "),
        ("null", b"null"),
    ],
)
def test_malformed_bodies_are_400(service, name, data):
    assert_answer(post_bytes(service, data), 400)


def test_a_body_over_the_size_limit_is_413_and_quick(service):
    data = b'{"hook": "order-select", "x": "' + b"a" * (service.settings.max_body_bytes + 10) + b'"}'
    started = time.monotonic()
    assert_answer(post_bytes(service, data), 413)
    assert time.monotonic() - started < 5


def test_huge_strings_make_short_summaries(service):
    body = base()
    for draft in drafts(body):
        draft["medicationCodeableConcept"]["text"] = "valganciclovir " + "450 MG Oral Tablet " * 50_000
    for container, key in strings(body["prefetch"]["patient"]):
        container[key] = container[key] * 1000
    assert_answer(post(service, body), 200)  # summaries < 140 characters are part of the contract


def test_many_identical_drafts_are_answered_in_bounded_time_with_bounded_cards(service):
    # An order set signed at once is tens of orders; 200 copies of one draft must not explode
    # (one card per pair of duplicates would be 19,900 cards).
    count = 200
    body = base()
    draft = drafts(body)[0]
    body["context"]["draftOrders"]["entry"] = [{"resource": {**draft, "id": f"d{i}"}} for i in range(count)]
    body["context"]["selections"] = [f"MedicationRequest/d{i}" for i in range(count)]
    started = time.monotonic()
    cards = assert_answer(post(service, body), 200)["cards"]
    elapsed = time.monotonic() - started
    assert len(cards) <= 3 * count, f"{len(cards)} cards for {count} drafts"
    assert elapsed < 5, f"{elapsed:.1f} s"
    assert all(r.get("resourceType") for r in suggested_resources(cards))
