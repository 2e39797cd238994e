"""Hook request validation over real HTTP: protocol violations are 400 OperationOutcomes; clinical
incompleteness is answered; unknown services are 404; oversized bodies 413."""

from __future__ import annotations

import copy
import json

import pytest
import requests

from conftest import SERVICE_OF_HOOK

from .conftest import hook_body, patient

PREFETCH = {"patient": patient()}


def outcome_of(response: requests.Response, status: int) -> str:
    """The diagnostics of an OperationOutcome response with this status."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    (issue,) = body["issue"]
    assert issue["severity"] == "error" and issue["code"]
    return issue.get("diagnostics", "")


def post_raw(service, service_id: str, data: bytes, content_type="application/json") -> requests.Response:
    return requests.post(
        service.url(f"/cds-services/{service_id}"), data=data, headers={"Content-Type": content_type}, timeout=10
    )


def without(body: dict, *path: str) -> dict:
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return body


def with_value(body: dict, value, *path: str) -> dict:
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


SELECT = hook_body("order-select", prefetch=PREFETCH)
VIEW = hook_body("patient-view", prefetch=PREFETCH)
FEEDBACK = {"feedback": [{"card": "card-1", "outcome": "accepted", "outcomeTimestamp": "2026-11-26T12:00:00Z"}]}
TOKEN = {"access_token": "t0k3n", "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read",
         "subject": "cds-service"}

# (name, service hook, body, words the diagnostics must contain)
VIOLATIONS = [
    ("array body", "patient-view", [VIEW], "JSON object"),
    ("string body", "patient-view", "hello", "JSON object"),
    ("no hook", "patient-view", without(VIEW, "hook"), "hook is required"),
    ("hook not a string", "patient-view", with_value(VIEW, 7, "hook"), "hook is required"),
    ("other service's hook", "patient-view", with_value(VIEW, "order-select", "hook"), "not the hook"),
    # A long value is not echoed whole: its first 100 characters name it.
    ("a long unknown hook", "patient-view", with_value(VIEW, "x" * 100 + "y" * 10_000, "hook"), "'" + "x" * 100 + "' is not"),
    ("no hookInstance", "patient-view", without(VIEW, "hookInstance"), "hookInstance is required"),
    ("empty hookInstance", "patient-view", with_value(VIEW, "", "hookInstance"), "hookInstance is required"),
    ("no context", "patient-view", without(VIEW, "context"), "context is required"),
    ("context an array", "patient-view", with_value(VIEW, [], "context"), "context is required"),
    ("no patientId", "patient-view", without(VIEW, "context", "patientId"), "context.patientId is required"),
    ("null userId", "patient-view", with_value(VIEW, None, "context", "userId"), "context.userId is required"),
    ("patientId a number", "patient-view", with_value(VIEW, 12, "context", "patientId"), "context.patientId must be a string"),
    ("encounterId an object", "patient-view", with_value(VIEW, {}, "context", "encounterId"), "context.encounterId must be a string"),
    ("no selections", "order-select", without(SELECT, "context", "selections"), "context.selections is required"),
    ("selections a string", "order-select", with_value(SELECT, "MedicationRequest/1", "context", "selections"), "must be an array"),
    ("selections of numbers", "order-select", with_value(SELECT, [1], "context", "selections"), "array of strings"),
    ("no draftOrders", "order-select", without(SELECT, "context", "draftOrders"), "context.draftOrders is required"),
    ("draftOrders an array", "order-select", with_value(SELECT, [], "context", "draftOrders"), "must be an object"),
    ("draftOrders of 501 entries", "order-select",
     with_value(SELECT, {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "MedicationRequest"}}] * 501},
                "context", "draftOrders"),
     "context.draftOrders holds 501 entries: at most 500"),
    ("draftOrders not a Bundle", "order-select", with_value(SELECT, {"resourceType": "MedicationRequest"}, "context", "draftOrders"), "FHIR Bundle"),
    ("prefetch an array", "patient-view", with_value(VIEW, [], "prefetch"), "prefetch must be a JSON object"),
    ("fhirServer a number", "patient-view", with_value(VIEW, 80, "fhirServer"), "fhirServer must be"),
    ("fhirServer not http", "patient-view", with_value(VIEW, "ftp://fhir.example.org", "fhirServer"), "fhirServer must be"),
    ("fhirServer relative", "patient-view", with_value(VIEW, "/fhir", "fhirServer"), "fhirServer must be"),
    ("fhirServer with credentials", "patient-view", with_value(VIEW, "https://u:p@fhir.example.org", "fhirServer"), "fhirServer must be"),
    # Not a base for paths: a query makes every search server-wide ("?_format=json/Observation?patient=1"),
    # a fragment drops the path, a dot segment leaves the base.
    *((f"fhirServer {what}", "patient-view", with_value(VIEW, url, "fhirServer"), "no query, fragment or dot segment")
      for what, url in (("with a query", "https://fhir.example.org/r4?_format=json"),
                        ("with an empty query", "https://fhir.example.org/r4?"),
                        ("with a fragment", "https://fhir.example.org/r4#x"),
                        ("with path parameters", "https://fhir.example.org/r4;jsessionid=1"),
                        ("with a dot segment", "https://fhir.example.org/r4/../admin"),
                        ("with an encoded dot segment", "https://fhir.example.org/r4/%2e%2e/admin"),
                        ("with a twice-encoded dot segment", "https://fhir.example.org/r4/%252e%252e/admin"),
                        ("with a space", "https://fhir.example.org/r4/.. "))),
    ("fhirAuthorization without fhirServer", "patient-view", with_value(VIEW, TOKEN, "fhirAuthorization"), "without fhirServer"),
]
FHIR_SERVER = "https://fhir.example.org/r4"
AUTHORIZATION_VIOLATIONS = [
    ("not an object", "Bearer t0k3n", "must be a JSON object"),
    ("access_token missing", without(TOKEN, "access_token"), "access_token is required"),
    ("access_token a number", with_value(TOKEN, 5, "access_token"), "access_token is required"),
    ("token_type missing", without(TOKEN, "token_type"), "token_type is required"),
    ("token_type MAC", with_value(TOKEN, "MAC", "token_type"), "token_type is required"),
    ("expires_in a string", with_value(TOKEN, "300", "expires_in"), "expires_in is required"),
    ("expires_in a fraction", with_value(TOKEN, 299.5, "expires_in"), "expires_in is required"),
    ("scope missing", without(TOKEN, "scope"), "scope is required"),
    ("subject missing", without(TOKEN, "subject"), "subject is required"),
    ("patient a number", with_value(TOKEN, 1, "patient"), "patient must be a string"),
    # It goes into an Authorization header as it is: only visible ASCII can.
    ("access_token not ASCII", with_value(TOKEN, "tok€n", "access_token"), "access_token must be visible ASCII"),
    ("access_token with a space", with_value(TOKEN, "tok en", "access_token"), "access_token must be visible ASCII"),
    ("access_token with a newline", with_value(TOKEN, "tok\r\nX-Evil: 1", "access_token"), "must be visible ASCII"),
]


@pytest.mark.parametrize("name,hook,body,words", VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_protocol_violations_are_400_with_a_clear_message(protocol_service, name, hook, body, words):
    response = protocol_service.call(SERVICE_OF_HOOK[hook], body)
    assert words in outcome_of(response, 400)
    assert protocol_service.recorder.calls == []


@pytest.mark.parametrize(
    "name,authorization,words", AUTHORIZATION_VIOLATIONS, ids=[v[0] for v in AUTHORIZATION_VIOLATIONS]
)
def test_malformed_fhir_authorization_is_400(protocol_service, name, authorization, words):
    body = {**VIEW, "fhirServer": FHIR_SERVER, "fhirAuthorization": authorization}
    assert words in outcome_of(protocol_service.call("cmv-patient-view", body), 400)


def test_expires_in_written_as_a_whole_float_is_whole_seconds(protocol_service):
    # 300.0 is the number 300 in JSON (a JavaScript client may write it so).
    body = {**VIEW, "fhirServer": FHIR_SERVER, "fhirAuthorization": with_value(TOKEN, 300.0, "expires_in")}
    assert protocol_service.call("cmv-patient-view", body).status_code == 200
    assert protocol_service.recorder.last.hook == "patient-view"


@pytest.mark.parametrize("data", [b"", b"{", b"not json", b"\xff\xfe"], ids=["empty", "truncated", "text", "binary"])
def test_a_body_that_is_not_json_is_400(protocol_service, data):
    assert "JSON" in outcome_of(post_raw(protocol_service, "cmv-patient-view", data), 400)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/fhir+json", "application/json+fhir"])
def test_json_media_types_are_read(protocol_service, content_type):
    response = post_raw(protocol_service, "cmv-patient-view", json.dumps(VIEW).encode(), content_type)
    assert response.status_code == 200 and "cards" in response.json()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None])
def test_a_body_that_is_not_declared_json_is_415(protocol_service, content_type):
    # What a browser sends across origins without a CORS preflight: refused, hook and feedback alike.
    headers = {"Content-Type": content_type} if content_type else {}
    for path, body in (("/cds-services/cmv-patient-view", VIEW), ("/cds-services/cmv-patient-view/feedback", FEEDBACK)):
        response = requests.post(protocol_service.url(path), data=json.dumps(body).encode(), headers=headers, timeout=10)
        assert "send Content-Type: application/json" in outcome_of(response, 415)


def test_unknown_service_is_404(protocol_service):
    for path in ("/cds-services/no-such-service", "/cds-services/no-such-service/feedback"):
        response = requests.post(protocol_service.url(path), json=VIEW, timeout=10)
        assert "no CDS service 'no-such-service'" in outcome_of(response, 404)


def test_unknown_path_is_404_operation_outcome(protocol_service):
    outcome_of(requests.get(protocol_service.url("/fhir/metadata"), timeout=10), 404)


@pytest.mark.parametrize(
    "method,path",
    [("GET", "/cds-services/cmv-patient-view"), ("DELETE", "/cds-services"), ("PUT", "/cds-services/x/feedback")],
)
def test_wrong_method_is_405_operation_outcome(protocol_service, method, path):
    response = requests.request(method, protocol_service.url(path), timeout=10)
    outcome_of(response, 405)
    assert "Allow" in response.headers


def test_body_over_the_limit_is_413(protocol_service):
    limit = protocol_service.settings.max_body_bytes
    padding = "x" * (limit + 1)
    body = {**VIEW, "extension": {"padding": padding}}
    assert str(limit) in outcome_of(protocol_service.call("cmv-patient-view", body), 413)
    assert protocol_service.recorder.calls == []


def test_chunked_body_over_the_limit_is_413_not_cut_short(protocol_service):
    limit = protocol_service.settings.max_body_bytes
    data = json.dumps({**VIEW, "extension": {"padding": "x" * (limit + 1)}}).encode()
    pieces = (data[i:i + 65536] for i in range(0, len(data), 65536))  # no length: sent chunked
    response = requests.post(protocol_service.url("/cds-services/cmv-patient-view"), data=pieces,
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert str(limit) in outcome_of(response, 413)
    small = json.dumps(VIEW).encode()
    response = requests.post(protocol_service.url("/cds-services/cmv-patient-view"), data=iter([small[:9], small[9:]]),
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 200 and "cards" in response.json()  # read whole and answered


# ----------------------------------------------------------------------------- accepted as is


def draft_body(hook: str, draft: dict, **context_changes) -> dict:
    body = hook_body(hook, prefetch=PREFETCH)
    body["context"]["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": draft}]}
    if hook == "order-select":
        body["context"]["selections"] = [f"{draft.get('resourceType', 'MedicationRequest')}/{draft['id']}"]
    body["context"].update(context_changes)
    return body


INCOMPLETE_DRAFTS = {
    # What the sandbox sends on page load: no medication, no intent, no dose.
    "no drug no intent no dose": {"resourceType": "MedicationRequest", "id": "d1", "status": "draft",
                                  "subject": {"reference": "Patient/pt-1"}},
    "DSTU2 MedicationOrder": {"resourceType": "MedicationOrder", "id": "d1", "status": "draft",
                              "patient": {"reference": "Patient/pt-1"},
                              "medicationCodeableConcept": {"text": "valganciclovir 450 MG Oral Tablet"},
                              "dosageInstruction": [{"doseQuantity": {"value": 900, "unit": "mg"}}]},
    "unknown code and invalid dose": {"resourceType": "MedicationRequest", "id": "d1", "status": "draft",
                                      "intent": "order", "medicationCodeableConcept": {"coding": [
                                          {"system": "urn:unknown", "code": "???"}]},
                                      "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": "lots"}}]}]},
    "not even a resource": {"id": "d1", "hello": "world"},
}


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize("name", INCOMPLETE_DRAFTS)
def test_clinically_incomplete_drafts_are_answered(protocol_service, hook, name):
    body = draft_body(hook, INCOMPLETE_DRAFTS[name])
    response = protocol_service.call(SERVICE_OF_HOOK[hook], body)
    assert response.status_code == 200, response.text
    assert protocol_service.recorder.last.context["draftOrders"] == body["context"]["draftOrders"]


def test_draft_orders_bundle_without_type_and_extra_context_are_accepted(protocol_service):
    body = hook_body("order-sign", prefetch=PREFETCH)
    assert "type" not in body["context"]["draftOrders"]
    body["context"]["encounterId"] = None  # optional fields may be null
    body["context"]["somethingNew"] = {"from": "a later hook version"}
    body["extension"] = {"vendor": True}
    assert protocol_service.call("cmv-order-sign", body).status_code == 200


def test_response_is_cards_only_with_no_empty_values(protocol_service):
    response = protocol_service.call("cmv-patient-view", VIEW)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["cards"]
    assert_no_empty_values(body["cards"])


def assert_no_empty_values(value, where="cards"):
    """CDS Hooks: optional fields are left out, never null, "", [] or {}."""
    if isinstance(value, dict):
        assert value, f"{where} is an empty object"
        for key, item in value.items():
            assert_no_empty_values(item, f"{where}.{key}")
    elif isinstance(value, list):
        if where != "cards":
            assert value, f"{where} is an empty array"
        for i, item in enumerate(value):
            assert_no_empty_values(item, f"{where}[{i}]")
    else:
        assert value is not None and value != "", f"{where} is {value!r}"
