"""The service around the hooks: discovery, health, the OpenAPI document, CORS, logs, feedback wiring."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest
import requests
import yaml

from cds_service.hooks.logs import JsonFormatter
from cds_service.services import SERVICES

from .conftest import hook_body, patient
from .test_protocol_validation import outcome_of

SANDBOX = "https://sandbox.cds-hooks.org"


def test_discovery_lists_every_declared_service(live_service):
    response = requests.get(live_service.url("/cds-services"), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    services = response.json()["services"]
    assert services == [
        {"hook": s.hook, "id": s.id, "title": s.title, "description": s.description, "prefetch": dict(s.prefetch)}
        for s in SERVICES
    ]
    assert {s["hook"] for s in services} == {"patient-view", "order-select", "order-sign"}


def test_health_and_openapi_document(live_service):
    health = requests.get(live_service.url("/healthz"), timeout=10)
    assert (health.status_code, health.json()["status"]) == (200, "ok")
    as_yaml = requests.get(live_service.url("/openapi.yaml"), timeout=10)
    as_json = requests.get(live_service.url("/openapi.json"), timeout=10)
    assert as_yaml.status_code == as_json.status_code == 200
    document = yaml.safe_load(as_yaml.text)
    assert document == as_json.json()
    assert document["openapi"].startswith("3.")
    paths = {"/cds-services", "/cds-services/{serviceId}", "/cds-services/{serviceId}/feedback"}
    assert paths <= set(document["paths"])


@pytest.mark.parametrize(
    "path", ["/cds-services", "/cds-services/cmv-order-select", "/cds-services/cmv-order-select/feedback"]
)
def test_cors_preflight_allows_authorization_and_content_type(live_service, path):
    response = requests.options(
        live_service.url(path),
        headers={
            "Origin": SANDBOX,
            "Access-Control-Request-Method": "POST" if path != "/cds-services" else "GET",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=10,
    )
    assert response.status_code == 200
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert response.headers["Access-Control-Allow-Origin"] in ("*", SANDBOX)


def test_cors_headers_are_on_answers_and_errors(live_service):
    headers = {"Origin": SANDBOX}
    ok = requests.get(live_service.url("/cds-services"), headers=headers, timeout=10)
    error = requests.post(live_service.url("/cds-services/cmv-order-select"), data=b"{", headers=headers, timeout=10)
    assert ok.headers["Access-Control-Allow-Origin"] == error.headers["Access-Control-Allow-Origin"] == SANDBOX


def test_cors_origins_are_configurable(make_protocol_service):
    service = make_protocol_service({"CDS_CORS_ORIGINS": f"{SANDBOX},https://ehr.example.org"})
    allowed = requests.get(service.url("/cds-services"), headers={"Origin": SANDBOX}, timeout=10)
    other = requests.get(service.url("/cds-services"), headers={"Origin": "https://evil.example"}, timeout=10)
    assert allowed.headers["Access-Control-Allow-Origin"] == SANDBOX
    assert "Access-Control-Allow-Origin" not in other.headers
    # The answer depends on the Origin: a shared cache must not give one caller's answer to another.
    for one in (SANDBOX, "https://ehr.example.org"):
        service = make_protocol_service({"CDS_CORS_ORIGINS": one})
        for origin in (SANDBOX, "https://evil.example"):
            answer = requests.get(service.url("/cds-services"), headers={"Origin": origin}, timeout=10)
            assert "Origin" in answer.headers.get("Vary", ""), (one, origin)


@pytest.fixture
def service_log():
    """The service's log lines (JSON) while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("cds_service")
    level = logger.level
    logger.setLevel(logging.INFO)  # another app in this process may have been created with less
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_one_json_access_log_line_per_request_without_patient_data_or_tokens(
    protocol_service, fhir_server, service_log
):
    secret_token = "fhir-token-5ecret"
    named = patient() | {"name": [{"family": "Zebedee-Unique"}]}
    fhir_server.add(named)
    fhir_server.token = secret_token
    body = hook_body(
        fhirServer=fhir_server.base_url,
        fhirAuthorization={"access_token": secret_token, "token_type": "Bearer", "expires_in": 60,
                           "scope": "patient/*.read", "subject": "cds-service"},
    )
    assert protocol_service.call("cmv-patient-view", body).status_code == 200
    assert protocol_service.call("cmv-patient-view", {**body, "context": {}}).status_code == 400

    lines = [json.loads(line) for line in service_log.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "cds_service.access"]
    assert [(a["method"], a["path"], a["service"], a["status"]) for a in access] == [
        ("POST", "/cds-services/cmv-patient-view", "cmv-patient-view", 200),
        ("POST", "/cds-services/cmv-patient-view", "cmv-patient-view", 400),
    ]
    assert access[0]["cards"] == 1 and isinstance(access[0]["latency_ms"], float)
    text = service_log.getvalue()
    for secret in (secret_token, "Zebedee-Unique", "pt-1", body["hookInstance"]):
        assert secret not in text


def test_an_unexpected_error_is_a_500_operation_outcome_without_internals(make_protocol_service, service_log):
    service = make_protocol_service({})
    service.recorder.error = ValueError("patient pt-1 has a secret")
    response = service.call("cmv-patient-view", hook_body(prefetch={"patient": patient()}))
    assert "Internal error" in outcome_of(response, 500)
    assert "secret" not in response.text and "ValueError" not in response.text
    error = [json.loads(line) for line in service_log.getvalue().splitlines() if '"ERROR"' in line]
    assert error and error[0]["error"] == "ValueError" and error[0]["traceback"]
    assert "secret" not in service_log.getvalue() and "pt-1" not in service_log.getvalue()


# ----------------------------------------------------------------------------------- feedback wiring


def break_database(service) -> None:
    """Make the service's database unusable: its SQLite file becomes a directory."""
    database = service.app.extensions["cds_service"].feedback.database
    path = database.engine.url.database
    database.engine.dispose()
    os.remove(path)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    os.mkdir(path)


def test_feedback_while_the_database_is_down_is_503(make_protocol_service):
    service = make_protocol_service({})
    break_database(service)
    body = {"feedback": [{"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-11-26T12:00:00Z"}]}
    response = requests.post(service.url("/cds-services/cmv-order-select/feedback"), json=body, timeout=10)
    assert "unavailable" in outcome_of(response, 503)
    assert response.headers["Retry-After"]


def test_hook_calls_are_answered_while_the_database_is_down(make_protocol_service):
    service = make_protocol_service({})
    break_database(service)
    response = service.call("cmv-patient-view", hook_body(prefetch={"patient": patient()}))
    assert response.status_code == 200
    assert len(response.json()["cards"]) == 1


def test_cards_answered_are_remembered_for_the_feedback_report(make_protocol_service):
    from cds_service.hooks.feedback import report

    service = make_protocol_service({})
    response = service.call("cmv-patient-view", hook_body(prefetch={"patient": patient()}))
    card = response.json()["cards"][0]
    body = {"feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-26T12:00:00Z"}]}
    feedback = requests.post(service.url("/cds-services/cmv-patient-view/feedback"), json=body, timeout=10)
    assert (feedback.status_code, feedback.json()) == (200, {})
    rows = report(service.app.extensions["cds_service"].feedback.database)
    assert [(r["service_id"], r["topic"], r["cards_issued"], r["overridden"]) for r in rows] == [
        ("cmv-patient-view", "cmv-status", 1, 1)
    ]
