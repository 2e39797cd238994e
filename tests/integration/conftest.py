"""Fixtures for the protocol tests: the loopback FHIR server, and the service with recording handlers.

The protocol tests check the protocol layer, not the clinical advice: `protocol_service` runs the
real app (real HTTP on loopback, real SQLite) with the declared services - same ids, hooks, context
rules and prefetch templates - whose handlers record the HookCall they are given and answer one
fixed card.  Tests of the real pipeline use `live_service` (tests/conftest.py).
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
from conftest import FIXTURE_NOW, LiveService, start_live_service
from fhir_server import FhirTestServer

from cds_service.hooks.registry import HookCall

PATIENT_ID = "pt-1"
USER_ID = "Practitioner/doc-1"


class Recorder:
    """Handler for every protocol-test service: keeps the calls, answers one valid card."""

    def __init__(self):
        self.calls: list[HookCall] = []
        self.error: Exception | None = None  # raised instead of answering, when set

    def __call__(self, call: HookCall) -> list[dict]:
        self.calls.append(call)
        if self.error is not None:
            raise self.error
        return [
            {
                "uuid": str(uuid.uuid4()),
                "summary": "Protocol test card",
                "indicator": "info",
                "source": {
                    "label": "Protocol test",
                    "topic": {"system": "urn:cmv-cds:card-topic", "code": "cmv-status", "display": "CMV status"},
                },
            }
        ]

    @property
    def last(self) -> HookCall:
        assert self.calls, "the handler was not called"
        return self.calls[-1]


def recording_services(recorder: Recorder):
    from cds_service.services import SERVICES

    return tuple(dataclasses.replace(service, handler=recorder) for service in SERVICES)


class ProtocolService(LiveService):
    def __init__(self, live: LiveService, app, recorder: Recorder):
        super().__init__(live.base_url, live.settings)
        self.app = app
        self.recorder = recorder


def _protocol_service(tmp_path: Path, extra_env: dict[str, str] | None = None):
    recorder = Recorder()
    environ = {
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cds.db'}",
        "CDS_EVALUATION_TIME": FIXTURE_NOW,
        "CDS_FHIR_TIMEOUT": "1.5",
        **(extra_env or {}),
    }
    server, live = start_live_service(environ, recording_services(recorder))
    return server, ProtocolService(live, server.app, recorder)


@pytest.fixture(scope="session")
def fhir_server_session():
    server = FhirTestServer()
    yield server
    server.close()


@pytest.fixture
def fhir_server(fhir_server_session) -> FhirTestServer:
    """The loopback FHIR server, emptied, healthy and open at the start of each test."""
    fhir_server_session.reset()
    return fhir_server_session


@pytest.fixture(scope="session")
def protocol_service_session(tmp_path_factory):
    server, service = _protocol_service(tmp_path_factory.mktemp("protocol"))
    yield service
    server.shutdown()


@pytest.fixture
def protocol_service(protocol_service_session) -> ProtocolService:
    protocol_service_session.recorder.calls.clear()
    return protocol_service_session


@pytest.fixture
def make_protocol_service(tmp_path):
    """Start a protocol service with extra environment (e.g. an allow-list); stopped after the test."""
    servers = []

    def make(extra_env: dict[str, str]) -> ProtocolService:
        server, service = _protocol_service(tmp_path / f"svc{len(servers)}", extra_env)
        servers.append(server)
        return service

    yield make
    for server in servers:
        server.shutdown()


# ---------------------------------------------------------------------------- request builders


def patient(pid: str = PATIENT_ID) -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1960-05-01"}


def observation(oid: str, pid: str = PATIENT_ID, code: str = "2160-0", day: int = 20) -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": f"2026-11-{day:02d}T08:00:00Z",
        "valueQuantity": {"value": 1.1, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
    }


def medication_request(mid: str, pid: str = PATIENT_ID, status: str = "active") -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": mid,
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "medicationCodeableConcept": {"text": "tacrolimus 1 MG Oral Capsule"},
    }


def bundle(*resources: dict, **extra) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources], **extra}


def hook_body(hook: str = "patient-view", prefetch=None, **extra) -> dict:
    """A valid request for `hook` about PATIENT_ID (order hooks get one draft, selected)."""
    context = {"userId": USER_ID, "patientId": PATIENT_ID}
    if hook in ("order-select", "order-sign"):
        draft = medication_request("draft-1", status="draft")
        context["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": draft}]}
    if hook == "order-select":
        context["selections"] = ["MedicationRequest/draft-1"]
    body = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context, **extra}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


