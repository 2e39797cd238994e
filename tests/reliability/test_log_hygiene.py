"""No PHI and no token in any log line: a record with a known name, MRN and access token goes through
the service on every path (200, 400, 412, 500, feedback), with every logger at DEBUG - in-process
(the service's handlers, werkzeug, urllib3, SQLAlchemy, the root) and as deployed (`cds-service serve`,
gunicorn at debug, stderr and stdout captured) - and none of them appears anywhere.
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import FIXTURE_NOW
from fhir_server import FhirTestServer
from werkzeug.serving import make_server

from cds_service.app import create_app
from cds_service.hooks.logs import JsonFormatter
from cds_service.services import SERVICES
from cds_service.settings import Settings

from .conftest import encode, seed

FAMILY, GIVEN = "Quixote-Marchetti", "Zebulon"
MRN = "MRN-7Q4K9-XZ"
TOKEN = "tok-5f9c2e1a-bearer-secret"
SECRETS = (FAMILY, GIVEN, MRN, TOKEN)
PATIENT_ID = "cmv-kidney-colitis"  # the fixture patient, renamed
LOGGERS = ("", "cds_service", "werkzeug", "urllib3", "sqlalchemy", "gunicorn", "gunicorn.error", "gunicorn.access")


def marked_patient() -> dict:
    patient = copy.deepcopy(seed("kidney-colitis.order-select")["prefetch"]["patient"])
    patient["name"] = [{"use": "official", "family": FAMILY, "given": [GIVEN]}]
    patient["identifier"] = [{"system": "http://hospital.example.org/mrn", "value": MRN}]
    return patient


def marked(body: dict) -> dict:
    """A fixture request carrying the secrets in the patient, the draft's note and the token."""
    body["prefetch"]["patient"] = marked_patient()
    for entry in body["context"].get("draftOrders", {}).get("entry", []):
        entry["resource"]["note"] = [{"text": f"for {GIVEN} {FAMILY} ({MRN})"}]
    return body


def calls(fhir: FhirTestServer) -> list[tuple[str, dict | bytes, int]]:
    """(service id, body, expected status): every path through the service, each carrying secrets."""
    authorization = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read",
                     "subject": "cds-service"}
    order = marked(seed("kidney-colitis.order-select"))
    fetched = marked(seed("kidney-colitis.patient-view"))
    fetched["fhirServer"], fetched["fhirAuthorization"] = fhir.base_url, authorization
    del fetched["prefetch"]["patient"]  # fetched with the bearer token
    failing = copy.deepcopy(fetched)
    failing["context"]["patientId"] = "not-on-the-server"  # 404 from the FHIR server: 412
    bad_token = copy.deepcopy(fetched)
    bad_token["fhirAuthorization"] = {**authorization, "access_token": TOKEN + "-wrong"}
    bad_authorization = copy.deepcopy(fetched)
    bad_authorization["fhirAuthorization"] = {**authorization, "token_type": f"MAC {TOKEN}"}
    bad_context = copy.deepcopy(order)
    bad_context["context"]["patientId"] = {"mrn": MRN, "name": FAMILY}
    bad_hook = copy.deepcopy(order)
    bad_hook["hook"] = f"{GIVEN} {FAMILY} {MRN}"
    feedback = {"feedback": [{"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-11-26T12:00:00Z",
                              "overrideReason": {"userComment": f"{GIVEN} {FAMILY} {MRN} refused"}}]}
    bad_feedback = {"feedback": [{"card": MRN, "outcome": f"{FAMILY}", "outcomeTimestamp": TOKEN}]}
    return [
        ("cmv-order-select", order, 200),
        ("cmv-patient-view", fetched, 200),
        ("cmv-patient-view", failing, 412),
        ("cmv-patient-view", bad_token, 412),
        ("cmv-patient-view", bad_authorization, 400),
        ("cmv-order-select", bad_context, 400),
        ("cmv-order-select", bad_hook, 400),
        ("cmv-order-select", f'{{"hook": "{FAMILY}", "x": "{MRN}", "t": "{TOKEN}"'.encode(), 400),
        ("cmv-order-select/feedback", feedback, 200),
        ("cmv-order-select/feedback", bad_feedback, 400),
    ]


def send(base_url: str, service_id: str, body, expected: int) -> None:
    data = body if isinstance(body, bytes) else encode(body)
    response = requests.post(f"{base_url}/cds-services/{service_id}", data=data,
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == expected, (service_id, response.text[:300])


@pytest.fixture
def fhir():
    server = FhirTestServer(token=TOKEN)
    patient = marked_patient()
    server.add(patient)
    server.add(*(e["resource"] for e in seed("kidney-colitis.patient-view")["prefetch"]["observations"]["entry"]))
    yield server
    server.close()


class Capture(logging.Handler):
    """Every record, formatted as it would be written: the service's JSON for its own loggers, the
    standard format (message and traceback text) for everyone else's."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._json, self._plain = JsonFormatter(), logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record):
        own = record.name == "cds_service" or record.name.startswith("cds_service.")
        self.lines.append((self._json if own else self._plain).format(record))


@pytest.fixture
def captured():
    handler = Capture()
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    yield handler
    for logger, level in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)


def leaks(lines) -> list[str]:
    return [f"{secret!r} in: {line[:300]}" for line in lines for secret in SECRETS if secret in line]


def test_no_secret_in_any_log_line_in_process(fhir, captured, tmp_path):
    def broken(call):
        # An unexpected error whose message quotes the record: the 500 path.
        raise ValueError(f"failed for {GIVEN} {FAMILY} {MRN} with {TOKEN}")

    broken_service = SERVICES[2].__class__(**{**SERVICES[2].__dict__, "id": "broken-view", "handler": broken})
    settings = Settings.from_env({
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cds.db'}", "CDS_EVALUATION_TIME": FIXTURE_NOW,
        "CDS_FHIR_TIMEOUT": "2", "CDS_LOG_LEVEL": "DEBUG",
    })
    app = create_app(settings, services=(*SERVICES, broken_service))
    logging.getLogger("cds_service").addHandler(captured)  # create_app configured it (no propagation)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_port}"
    try:
        for service_id, body, expected in calls(fhir):
            send(base_url, service_id, body, expected)
        send(base_url, "broken-view", marked(seed("kidney-colitis.patient-view")), 500)
    finally:
        server.shutdown()

    text = "\n".join(captured.lines)
    # The capture works: every request and the 500 were logged, and the token did reach the FHIR server.
    assert text.count("cds_service.access") >= len(calls(fhir)) + 1
    assert '"error":"ValueError"' in text
    assert any(r.authorization == f"Bearer {TOKEN}" for r in fhir.requests)
    assert leaks(captured.lines) == []


# Requests that are not valid HTTP, carrying the secrets where a client could put them.
INVALID_HTTP = (
    f"GET /cds-services?patient={MRN}&access_token={TOKEN}\r\nHost: x\r\n\r\n".encode(),  # no HTTP version
    f"GET /cds-services HTTP/1.1\r\nHost: x\r\nX {FAMILY} {TOKEN}: y\r\n\r\n".encode(),  # an invalid header name
)


def cds_service_command() -> list[str]:
    script = Path(sys.executable).with_name("cds-service")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cds_service"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_secret_in_the_deployed_servers_output(fhir, tmp_path):
    port = free_port()
    log_path = tmp_path / "serve.log"
    environ = {**os.environ, "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cds.db'}", "CDS_EVALUATION_TIME": FIXTURE_NOW,
               "CDS_FHIR_TIMEOUT": "2", "CDS_LOG_LEVEL": "DEBUG", "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*cds_service_command(), "serve", "--port", str(port), "--workers", "2", "--threads", "2"],
            stdout=log, stderr=subprocess.STDOUT, env=environ, start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.1)
        for service_id, body, expected in calls(fhir):
            send(base_url, service_id, body, expected)
        for raw in INVALID_HTTP:  # refused by gunicorn itself, which quotes what it refuses
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(raw)
                assert sock.recv(100).startswith(b"HTTP/1.1 400")
        # A request cut short: at debug, gunicorn logs the exception whose text is the bytes it had read.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"GET /cds-services?patient={MRN} HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n".encode())
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    lines = log_path.read_text(errors="replace").splitlines()
    assert sum('"logger":"cds_service.access"' in line for line in lines) >= len(calls(fhir))  # the capture works
    assert any(r.authorization == f"Bearer {TOKEN}" for r in fhir.requests)
    assert leaks(lines) == []
    assert sum("not valid HTTP" in line for line in lines) == len(INVALID_HTTP)
    assert any("Invalid HTTP request line" in line for line in lines)  # the kind of error is kept
    assert any("premature client disconnection. NoMoreData" in line for line in lines)
