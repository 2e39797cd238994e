"""SSRF: with CDS_ALLOWED_FHIR_SERVERS set, no request makes the service open a connection anywhere
else - not by naming another fhirServer (however spelled), not through a redirect or a `next` link
from the allowed server, not through links or references in the data the client sends.

tests/integration checks that a refused fhirServer gets no HTTP request; here the target is a bare
TCP listener that counts connections, so even a connection that never sends a request is caught.
"""

from __future__ import annotations

import orjson
import pytest
import requests
from conftest import start_live_service

from .conftest import service_environ
from .contract import assert_answer
from .faulty_fhir import PATIENT_ID, ConnectionRecorder, patient

EMPTY = {"resourceType": "Bundle", "type": "searchset", "total": 0}


@pytest.fixture(scope="module")
def target():
    recorder = ConnectionRecorder()
    yield recorder
    recorder.close()


@pytest.fixture
def recorder(target):
    target.connections = 0
    yield target
    assert target.connections == 0, f"the service opened {target.connections} connection(s) to a server it must not contact"


@pytest.fixture(scope="module")
def guarded(faulty_fhir_session, tmp_path_factory):
    """The service, allowed to contact the faulty FHIR server only."""
    environ = service_environ(tmp_path_factory.mktemp("ssrf"), CDS_ALLOWED_FHIR_SERVERS=faulty_fhir_session.base_url)
    server, live = start_live_service(environ)
    yield live
    server.shutdown()


def call(service, body: dict) -> requests.Response:
    return requests.post(service.url("/cds-services/cmv-patient-view"), data=orjson.dumps(body),
                         headers={"Content-Type": "application/json"}, timeout=30)


def view(fhir_server: str | None, prefetch: dict | None = None, pid: str = PATIENT_ID, token: bool = True) -> dict:
    body = {"hook": "patient-view", "hookInstance": "0c8c1c55-3a5b-4a43-9d41-6c8f7e5a6b21",
            "context": {"userId": "Practitioner/doc-1", "patientId": pid}}
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
        if token:
            body["fhirAuthorization"] = {"access_token": "ssrf-secret-token", "token_type": "Bearer",
                                         "expires_in": 300, "scope": "patient/*.read", "subject": "cds"}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def spellings(port: int, allowed_port: int) -> list[str]:
    """fhirServer values that lead to the listener on `port`, some dressed up as the allowed server."""
    return [
        f"http://127.0.0.1:{port}/fhir",
        f"http://localhost:{port}/fhir",
        f"HTTP://127.0.0.1:{port}/fhir/",
        f"http://127.0.0.1:{allowed_port}@127.0.0.1:{port}/fhir",
        f"http://127.0.0.1:{allowed_port}\\@127.0.0.1:{port}/fhir",
        f"http://127.0.0.1:{port}/fhir#http://127.0.0.1:{allowed_port}/fhir",
        f"http://127.0.0.1:{port}/fhir?http://127.0.0.1:{allowed_port}/fhir",
        f"http://127.0.0.1:{port}\t/fhir",
        f"http://2130706433:{port}/fhir",
        f"http://[::ffff:127.0.0.1]:{port}/fhir",
        f"http://127.1:{port}/fhir",
    ]


def test_a_fhir_server_outside_the_allow_list_is_never_contacted(guarded, faulty_fhir, recorder):
    for spelling in spellings(recorder.port, faulty_fhir.port):
        response = call(guarded, view(spelling))
        assert_answer(response, 400)
        assert "fhirServer" in response.json()["issue"][0]["diagnostics"], spelling
    assert faulty_fhir.connections == 0


def test_a_redirect_from_the_allowed_server_is_not_followed(guarded, faulty_fhir, recorder):
    faulty_fhir.mode["Patient"] = f"redirect:http://127.0.0.1:{recorder.port}/fhir/Patient/{PATIENT_ID}"
    prefetch = {"observations": EMPTY, "medications": EMPTY, "conditions": EMPTY, "allergies": EMPTY}
    assert_answer(call(guarded, view(faulty_fhir.base_url, prefetch)), 412)
    assert faulty_fhir.paths == [f"Patient/{PATIENT_ID}"]


def test_a_next_link_from_the_allowed_server_to_elsewhere_is_not_followed(guarded, faulty_fhir, recorder):
    faulty_fhir.mode["Observation"] = f"next-to:http://127.0.0.1:{recorder.port}/fhir/Observation?page=2"
    prefetch = {"patient": patient(), "medications": EMPTY, "conditions": EMPTY, "allergies": EMPTY}
    assert_answer(call(guarded, view(faulty_fhir.base_url, prefetch)), 200)
    assert [p.split("?")[0] for p in faulty_fhir.paths] == ["Observation"]


@pytest.mark.parametrize("with_fhir_server", [True, False])
def test_links_and_references_in_sent_data_are_not_followed(guarded, faulty_fhir, recorder, with_fhir_server):
    elsewhere = f"http://127.0.0.1:{recorder.port}"
    observation = {
        "resourceType": "Observation", "id": "o1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
        "subject": {"reference": f"{elsewhere}/fhir/Patient/{PATIENT_ID}"},
        "effectiveDateTime": "2026-11-25T08:00:00Z",
        "valueQuantity": {"value": 1.1, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
    }
    prefetch = {
        "patient": patient(link=[{"other": {"reference": f"{elsewhere}/fhir/Patient/2"}, "type": "seealso"}],
                           photo=[{"url": f"{elsewhere}/photo.png"}]),
        "observations": {"resourceType": "Bundle", "type": "searchset",
                         "link": [{"relation": "next", "url": f"{elsewhere}/fhir/Observation?page=2"}],
                         "entry": [{"fullUrl": f"{elsewhere}/fhir/Observation/o1", "resource": observation}]},
        "medications": {"resourceType": "Bundle", "type": "searchset",
                        "link": [{"relation": "next", "url": f"//127.0.0.1:{recorder.port}/fhir/x"}]},
        "conditions": EMPTY,
        "allergies": EMPTY,
    }
    body = view(faulty_fhir.base_url if with_fhir_server else None, prefetch)
    assert_answer(call(guarded, body), 200)
    assert faulty_fhir.connections == 0


@pytest.mark.parametrize(
    "patient_id",
    ["../../../../127.0.0.1:{port}/x", "//127.0.0.1:{port}/x", "http://127.0.0.1:{port}/x", "@127.0.0.1:{port}",
     "x?_format=json&redirect=http://127.0.0.1:{port}", "x#@127.0.0.1:{port}"],
)
def test_prefetch_queries_built_from_the_context_stay_on_the_allowed_server(guarded, faulty_fhir, recorder, patient_id):
    pid = patient_id.format(port=recorder.port)
    response = call(guarded, view(faulty_fhir.base_url, pid=pid))
    assert_answer(response, (200, 400, 412))
