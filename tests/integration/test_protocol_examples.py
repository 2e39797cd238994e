"""The calls captured from the CDS Hooks sandbox are answered (../shared/examples)."""

from __future__ import annotations

import pytest
from conftest import SERVICE_OF_HOOK, SHARED, load_json

from .conftest import patient
from .test_protocol_validation import assert_no_empty_values

EXAMPLES = sorted((SHARED / "examples").glob("sandbox-*.json")) if SHARED.is_dir() else []
needs_shared = pytest.mark.skipif(not EXAMPLES, reason="../shared/examples (captured sandbox calls) is not here")


def service_for(example: dict) -> str:
    return SERVICE_OF_HOOK[example["hook"]]


@needs_shared
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_sandbox_calls_are_answered_by_the_real_services(live_service, path):
    # As captured: the fhirServer (the sandbox's local probe) is gone, so the keys the sandbox did not
    # fill cannot be fetched; the Patient was sent, so the call is answered.
    example = load_json(path)
    response = live_service.call(service_for(example), example)
    assert response.status_code == 200, response.text
    assert_no_empty_values(response.json()["cards"])


@needs_shared
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_sandbox_calls_are_resolved_against_a_live_fhir_server(protocol_service, fhir_server, path):
    example = load_json(path)
    fhir_server.add(patient(example["context"]["patientId"]))
    example["fhirServer"] = fhir_server.base_url
    response = protocol_service.call(service_for(example), example)
    assert response.status_code == 200, response.text
    call = protocol_service.recorder.last
    assert call.prefetch["patient"] == example["prefetch"]["patient"]  # sent, so not fetched
    assert dict(call.unavailable) == {}
    assert call.context["draftOrders"] == example["context"]["draftOrders"]
    # The four searches of the service's own keys; the sandbox's "meds" and "user" are not ours.
    assert sorted(r.path for r in fhir_server.requests) == ["AllergyIntolerance", "Condition", "MedicationRequest",
                                                            "Observation"]
