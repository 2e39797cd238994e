"""Fixtures for the reliability tests: the real service with a short FHIR budget, the faulty FHIR
server, and the fixture requests as seeds for bad data."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from conftest import FIXTURE_NOW, FIXTURES, start_live_service

from .faulty_fhir import FaultyFhirServer

# The FHIR budget of the service under test: every fault must be over in about this long.
FHIR_TIMEOUT = 1.0
REQUESTS = FIXTURES / "requests"


def fixture_request(name: str) -> dict:
    """A fresh copy of fhir_fixtures/requests/<name>.json."""
    return json.loads((REQUESTS / f"{name}.json").read_text(encoding="utf-8"))


def fixture_request_names() -> list[str]:
    return sorted(p.stem for p in REQUESTS.glob("*.json"))


_SEEDS = {name: fixture_request(name) for name in fixture_request_names()}


def seed(name: str) -> dict:
    return copy.deepcopy(_SEEDS[name])


def encode(body) -> bytes:
    """JSON as a client may send it: the standard encoder writes integers of any size."""
    return json.dumps(body, allow_nan=False).encode()


def service_environ(tmp: Path, **extra: str) -> dict[str, str]:
    return {
        "CDS_DATABASE_URL": f"sqlite:///{tmp / 'cds.db'}",
        "CDS_EVALUATION_TIME": FIXTURE_NOW,
        "CDS_FHIR_TIMEOUT": str(FHIR_TIMEOUT),
        **extra,
    }


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    """The real service (no JWT), real SQLite, the fixture clock and a 1 s FHIR budget."""
    server, live = start_live_service(service_environ(tmp_path_factory.mktemp("reliability")))
    live.app = server.app
    yield live
    server.shutdown()


@pytest.fixture(scope="session")
def faulty_fhir_session():
    server = FaultyFhirServer()
    yield server
    server.close()


@pytest.fixture
def faulty_fhir(faulty_fhir_session) -> FaultyFhirServer:
    faulty_fhir_session.reset()
    yield faulty_fhir_session
    faulty_fhir_session.release()  # no hung answer outlives its test
