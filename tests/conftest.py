"""Shared test fixtures: the real service on a loopback HTTP server, and the fixture patients."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest
import requests
from jwt_issuer import TestIssuer
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fhir_fixtures"
SHARED = ROOT.parent / "shared"
# The date the fixture patients are written for: the service under test evaluates as of this time
# (CDS_EVALUATION_TIME), so staleness and day counts do not change as the calendar moves on.
FIXTURE_NOW = "2026-11-26T12:00:00+00:00"


def _service_of_hook() -> dict[str, str]:
    from cds_service.services import SERVICES

    return {service.hook: service.id for service in SERVICES}


SERVICE_OF_HOOK = _service_of_hook()  # "order-select" -> "cmv-order-select"


class FactsErrors(logging.Handler):
    """ERROR records of the facts logger: a reader that raised is a bug, even though build_facts
    survives it (it skips the resource and carries on)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def issuer():
    """A test EHR signing with ES384 and RS384, its JWKS served on loopback."""
    ehr = TestIssuer(algorithms=("ES384", "RS384"))
    yield ehr
    ehr.close()


@pytest.fixture(scope="module")
def facts_errors():
    handler = FactsErrors()
    logger = logging.getLogger("cds_service.facts")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def load_json(path: Path | str):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


class LiveService:
    """A running service: base URL plus small helpers for calling it."""

    def __init__(self, base_url: str, settings):
        self.base_url = base_url
        self.settings = settings

    def url(self, path: str) -> str:
        return self.base_url + path

    def call(self, service_id: str, body, **kwargs) -> requests.Response:
        return requests.post(self.url(f"/cds-services/{service_id}"), json=body, timeout=30, **kwargs)


def start_live_service(environ: dict[str, str], services=None, public_base_url: bool = False):
    """create_app(Settings.from_env(environ), services) on 127.0.0.1 (random port) in a thread.

    The port is bound first, so with public_base_url=True the settings name the server's own URL as
    CDS_PUBLIC_BASE_URL (the JWT audience).  Returns (server, LiveService); server.app is the app."""
    from cds_service.app import create_app
    from cds_service.settings import Settings

    holder = {}
    server = make_server("127.0.0.1", 0, lambda env, start: holder["app"](env, start), threaded=True)
    base_url = f"http://127.0.0.1:{server.server_port}"
    if public_base_url:
        environ = {**environ, "CDS_PUBLIC_BASE_URL": base_url}
    settings = Settings.from_env(environ)
    server.app = holder["app"] = create_app(settings, services=services)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, LiveService(base_url, settings)


@pytest.fixture(scope="session")
def live_service(tmp_path_factory) -> LiveService:
    """The service with local defaults (no JWT), a fresh SQLite database and the fixture clock."""
    tmp = tmp_path_factory.mktemp("live")
    server, service = start_live_service(
        {
            "CDS_DATABASE_URL": f"sqlite:///{tmp / 'cds.db'}",
            "CDS_EVALUATION_TIME": FIXTURE_NOW,
        }
    )
    yield service
    server.shutdown()
