"""Property tests over HTTP against the running service: whatever is POSTed, the answer is a 200
with cards that keep the contract, or a 4xx OperationOutcome - never a 5xx, never a hang.

Complements the schemathesis run in tests/integration (which fuzzes from the OpenAPI documents):
these bodies are FHIR-shaped, built from the fixture requests and from the codes and units the
service reads, so they get past validation and into the facts and clinical layers.
"""

from __future__ import annotations

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SERVICE_OF_HOOK

from .conftest import encode, fixture_request_names, seed
from .contract import answer_problems
from .faulty_fhir import closed_port
from .strategies import junk, near_valid_request, spoiled

EXAMPLES = 120
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
# Keys a spoiled request no longer carries are fetched from here: refused at once, never a wait.
NOWHERE = f"http://127.0.0.1:{closed_port()}/fhir"
SEEDS = fixture_request_names()
SERVICE_IDS = sorted(SERVICE_OF_HOOK.values())


def answer(service, service_id: str, body) -> tuple[int, object]:
    response = requests.post(service.url(f"/cds-services/{service_id}"), data=encode(body),
                             headers={"Content-Type": "application/json"}, timeout=30)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def assert_sound(status: int, body) -> None:
    problems = answer_problems(status, body)
    assert not problems, problems


def seeded(name: str) -> dict:
    body = seed(name)
    body["fhirServer"] = NOWHERE
    return body


@FUZZ
@given(data=st.data())
def test_spoiled_fixture_requests_over_http(service, data):
    name = data.draw(st.sampled_from(SEEDS))
    body = data.draw(spoiled(seeded(name)))
    hook = seed(name)["hook"]
    # Mostly the right service; sometimes another (a hook mismatch must be a clean 400).
    service_id = data.draw(st.sampled_from([SERVICE_OF_HOOK[hook]] * 4 + SERVICE_IDS))
    assert_sound(*answer(service, service_id, body))


@FUZZ
@given(body=st.sampled_from(["patient-view", "order-select", "order-sign"]).flatmap(near_valid_request))
def test_near_valid_requests_over_http(service, body):
    status, answered = answer(service, SERVICE_OF_HOOK[body["hook"]], body)
    assert_sound(status, answered)
    assert status == 200, answered  # well-formed requests with a Patient are always answered


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=junk, service_id=st.sampled_from(SERVICE_IDS), feedback=st.booleans())
def test_arbitrary_json_is_a_clean_4xx(service, body, service_id, feedback):
    path = f"/cds-services/{service_id}" + ("/feedback" if feedback else "")
    response = requests.post(service.url(path), data=encode(body),
                             headers={"Content-Type": "application/json"}, timeout=30)
    if feedback and response.status_code == 200:  # an empty feedback array is valid
        assert response.json() == {}
        return
    assert 400 <= response.status_code < 500
    assert_sound(response.status_code, response.json())
