"""The `cds-service` command: serve (real gunicorn), evaluate, load-fixtures, feedback-report."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest
import requests
from conftest import FIXTURE_NOW, FIXTURES, ROOT, load_json

from cds_service.cli import main
from cds_service.hooks.feedback import FeedbackStore
from cds_service.hooks.storage import Database

REQUESTS = FIXTURES / "requests"
PATIENTS = FIXTURES / "patients"


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean CDS_* environment with a fresh SQLite database and the fixture clock."""
    for name in list(os.environ):
        if name.startswith("CDS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CDS_DATABASE_URL", f"sqlite:///{tmp_path / 'cds.db'}")
    monkeypatch.setenv("CDS_EVALUATION_TIME", FIXTURE_NOW)
    monkeypatch.setenv("CDS_LOG_LEVEL", "ERROR")
    return monkeypatch


def run_module(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cds_service", *args], capture_output=True, text=True, timeout=60, cwd=ROOT, **kwargs
    )


def test_help_names_every_command():
    result = run_module("--help")
    assert result.returncode == 0
    for command in ("serve", "evaluate", "load-fixtures", "feedback-report"):
        assert command in result.stdout
    for command, words in (
        ("serve", ["--host", "--port", "--workers", "gunicorn"]),
        ("evaluate", ["--hook", "--json", "--at", "patient-view"]),
        ("load-fixtures", ["--fhir-server", "DIR"]),
        ("feedback-report", ["--json"]),
    ):
        help_text = run_module(command, "--help").stdout
        assert all(word in help_text for word in words), command


# ------------------------------------------------------------------------------------------ serve


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def served(tmp_path, **settings: str) -> Iterator[tuple[str, list[str]]]:
    """`cds-service serve` (2 workers, 2 threads) on a free port: yields (base URL, [its stderr, filled
    once it has stopped]); stops it with SIGTERM and checks it exits cleanly."""
    port = free_port()
    environ = {**os.environ, "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cds.db'}", **settings}
    process = subprocess.Popen(
        [sys.executable, "-m", "cds_service", "serve", "--port", str(port), "--workers", "2", "--threads", "2"],
        cwd=tmp_path, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    log: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        yield base, log
    finally:
        process.send_signal(signal.SIGTERM)
        # gunicorn gives workers its graceful timeout (30 s) to finish; wait past it, so that a worker
        # slow to stop on a loaded machine ends as gunicorn ends it, not as a test timeout.
        _, stderr = process.communicate(timeout=60)
        log.append(stderr)
    assert process.returncode == 0


PATIENT_VIEW = {"hook": "patient-view", "hookInstance": "1", "context": {"userId": "Practitioner/1", "patientId": "x"}}


def test_serve_runs_gunicorn_workers_that_answer(tmp_path):
    with served(tmp_path) as (base, log):
        health = requests.get(f"{base}/healthz", timeout=2)
        assert health.status_code == 200
        assert health.headers["Server"].startswith("gunicorn")
        discovery = requests.get(f"{base}/cds-services", timeout=5)
        assert len(discovery.json()["services"]) == 3
        assert requests.post(f"{base}/cds-services/cmv-patient-view", json=PATIENT_VIEW, timeout=5).status_code == 412
    assert "Using worker: cds_service.worker.WarmThreadWorker" in log[0] and "CDS_REQUIRE_JWT is off" in log[0]


def test_serve_builds_the_app_once_and_each_worker_stores_with_its_own_connection(tmp_path):
    """The app is built before gunicorn forks its workers (they start at once and share its memory);
    the database connection the build opened stays the master's, and each worker opens its own."""
    url = "/cds-services/cmv-patient-view/feedback"

    def post(i: int) -> int:
        item = {"card": f"card-{i}", "outcome": "accepted", "outcomeTimestamp": "2026-11-26T12:00:00Z"}
        return requests.post(base + url, json={"feedback": [item]}, timeout=10).status_code

    with served(tmp_path) as (base, log):
        with ThreadPoolExecutor(8) as pool:  # new connections at once: both workers take some
            assert list(pool.map(post, range(40))) == [200] * 40
    assert log[0].count("CDS_REQUIRE_JWT is off") == 1  # one build, not one per worker
    with contextlib.closing(sqlite3.connect(tmp_path / "cds.db")) as db:
        assert db.execute("SELECT count(*) FROM feedback").fetchone()[0] == 40


def test_served_bodies_are_read_whole_or_refused(tmp_path):
    """Under gunicorn: a body with a length, a chunked body, bodies over the limit, a body cut short."""
    url_path = "/cds-services/cmv-patient-view"
    body = json.dumps({**PATIENT_VIEW, "pad": "x" * 1000}).encode()
    big = json.dumps({**PATIENT_VIEW, "pad": "x" * 5000}).encode()
    with served(tmp_path, CDS_MAX_BODY_BYTES="4096") as (base, _):
        def post(data) -> requests.Response:
            return requests.post(base + url_path, data=data, headers={"Content-Type": "application/json"}, timeout=10)

        assert post(body).status_code == 412  # read and understood: the record holds no patient
        assert post(iter([body[:500], body[500:]])).status_code == 412  # chunked
        for refused in (post(big), post(iter([big[:3000], big[3000:]]))):
            assert refused.status_code == 413
            assert refused.json()["resourceType"] == "OperationOutcome"

        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(f"POST {url_path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:300])
            sock.shutdown(socket.SHUT_WR)  # the client stops sending: the body ends early
            answer = b"".join(iter(lambda: sock.recv(65536), b""))
        assert answer.split(b"\r\n", 1)[0] in (b"HTTP/1.1 400 BAD REQUEST", b"")  # 400, or closed unanswered

        # Malformed chunked bodies: a chunk size that is not hex, a chunk cut short before the client stops.
        head = (f"POST {url_path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
        for chunks, half_close in ((b"zz\r\n{}\r\n0\r\n\r\n", False), (b"ff\r\n" + body[:100], True)):
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(head + chunks)
                if half_close:
                    sock.shutdown(socket.SHUT_WR)
                answer = b"".join(iter(lambda: sock.recv(65536), b""))
            status, _, rest = answer.partition(b"\r\n")
            assert status == b"HTTP/1.1 400 BAD REQUEST", answer[:300]
            assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["resourceType"] == "OperationOutcome"


def test_serve_refuses_to_start_with_invalid_settings(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    environ.update({"CDS_REQUIRE_JWT": "true", "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    result = run_module("serve", "--port", str(free_port()), env=environ)
    assert result.returncode == 2
    assert "configuration error" in result.stderr
    # Everything JWT needs is named at once.
    for name in ("CDS_TRUSTED_ISSUERS", "CDS_PUBLIC_BASE_URL", "CDS_ALLOWED_FHIR_SERVERS"):
        assert name in result.stderr


@pytest.mark.parametrize(
    "database_url,words",
    [
        ("mysql://cds@db.example.org/cds", "unsupported database 'mysql'"),
        ("sqlite:///{tmp}/a-file/cds.db", "cannot create the directory"),  # its parent is a file
    ],
)
def test_serve_refuses_a_database_it_cannot_use_without_a_traceback(tmp_path, database_url, words):
    (tmp_path / "a-file").write_text("not a directory")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    environ["CDS_DATABASE_URL"] = database_url.format(tmp=tmp_path)
    result = run_module("serve", "--port", str(free_port()), env=environ)
    assert result.returncode == 1
    assert f"cds-service: database: {words}" in result.stderr
    assert "Traceback" not in result.stderr


def test_feedback_report_on_a_postgresql_url_without_its_driver_is_a_clear_error(env, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as without the [postgres] extra
    env.setenv("CDS_DATABASE_URL", "postgresql+psycopg://cds:secret@127.0.0.1:5432/cds")
    assert main(["feedback-report"]) == 1
    err = capsys.readouterr().err
    assert "cds-service: database: the postgresql driver (psycopg) is not installed" in err
    assert "secret" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    "name,value,words",
    [
        ("CDS_FHIR_TIMEOUT", "soon", "CDS_FHIR_TIMEOUT"),
        ("CDS_MAX_BODY_BYTES", "-1", "greater than 0"),
        ("CDS_TRUSTED_ISSUERS", "[1]", "JSON object"),
        ("CDS_EVALUATION_TIME", "2026-11-26T12:00:00", "time zone"),
        ("CDS_ALLOWED_FHIR_SERVERS", "fhir.example.org", "not an http(s) URL"),
        ("CDS_POLICY_CRCL_WEIGHT", "heaviest", "CDS_POLICY_CRCL_WEIGHT"),
        ("CDS_POLICY_ADJUSTED_WEIGHT_FACTOR", "1.5", "between 0 and 1"),
        ("CDS_POLICY_FOSCARNET_ROUNDING_MG", "0", "CDS_POLICY_FOSCARNET_ROUNDING_MG must be more than 0"),
        ("CDS_DATABASE_URL", "not a url", "CDS_DATABASE_URL"),
    ],
)
def test_invalid_settings_are_clear_errors(env, capsys, name, value, words):
    env.setenv(name, value)
    assert main(["feedback-report"]) == 2
    assert words in capsys.readouterr().err


# --------------------------------------------------------------------------------------- evaluate


def test_evaluate_a_hook_request_prints_facts_and_cards(env, capsys):
    assert main(["evaluate", str(REQUESTS / "kidney-colitis.patient-view.json")]) == 0
    out = capsys.readouterr().out
    assert "cmv-patient-view (patient-view), evaluated at 2026-11-26T12:00:00+00:00" in out
    for section in ("FACTS", "Patient:", "Renal function:", "Labs (latest of each):", "CMV viral load", "CARDS"):
        assert section in out


def test_the_readme_worked_example_is_what_evaluate_prints(env, capsys):
    # README shows this output with each card's **Sources:** line left out (it says so).
    command = "$ CDS_EVALUATION_TIME=2026-11-26T12:00:00Z cds-service evaluate fhir_fixtures/requests/kidney-colitis.patient-view.json\n"
    readme = (ROOT / "README.md").read_text()
    shown = readme.split(command, 1)[1].split("```", 1)[0]
    assert main(["evaluate", str(REQUESTS / "kidney-colitis.patient-view.json")]) == 0
    printed = "\n".join(line for line in capsys.readouterr().out.split("\n") if not line.startswith("**Sources:**"))
    while "\n\n\n" in printed:
        printed = printed.replace("\n\n\n", "\n\n")
    assert shown == printed.rstrip("\n") + "\n"


def test_evaluate_prints_what_each_suggestion_does(env, capsys):
    assert main(["evaluate", str(REQUESTS / "refractory-valganciclovir.patient-view.json")]) == 0
    out = capsys.readouterr().out
    switch = out.split("Suggestion: Send the genotype and switch to IV foscarnet")[1].split("Suggestion:")[0]
    assert "  - create: Order foscarnet" in switch
    assert "  - update: Discontinue valganciclovir 450 MG Oral Tablet: replaced by foscarnet" in switch
    assert "  - create: Order CMV antiviral resistance genotype (UL97/UL54)" in switch


def test_evaluate_prints_documented_resistance(env, capsys):
    assert main(["evaluate", str(REQUESTS / "foscarnet-low-mg.patient-view.json")]) == 0
    conditions = capsys.readouterr().out.split("Conditions:")[1].split("Medications on record:")[0]
    assert "  resistance mutations in: UL97\n" in conditions and "  documented resistant: ganciclovir\n" in conditions


@pytest.mark.parametrize(
    "path", sorted(REQUESTS.glob("*.json")) + sorted(PATIENTS.glob("*.json")), ids=lambda p: p.name
)
def test_evaluate_works_on_every_fixture(env, capsys, path):
    assert main(["evaluate", "--json", str(path)]) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["facts"]["patient"]["id"]
    assert isinstance(output["cards"], list)


def test_evaluate_json_has_the_facts_and_the_cards_the_service_answers(env, capsys, live_service):
    path = REQUESTS / "kidney-colitis.order-select.json"
    assert main(["evaluate", "--json", str(path)]) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["facts"]["patient"]["age_years"] >= 18
    assert output["facts"]["evaluated_at"] == FIXTURE_NOW
    # The same cards as over HTTP (uuids are new on every call).
    over_http = live_service.call("cmv-order-select", load_json(path)).json()["cards"]
    assert [(c["indicator"], c["summary"]) for c in output["cards"]] == [
        (c["indicator"], c["summary"]) for c in over_http
    ]


def test_evaluate_a_patient_bundle_as_order_select_with_its_draft(env, capsys, tmp_path):
    bundle = load_json(PATIENTS / "kidney-colitis.json")
    patient_id = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    draft = {
        "resourceType": "MedicationRequest", "id": "draft-valgan", "status": "draft", "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "medicationCodeableConcept": {"text": "valganciclovir 450 MG Oral Tablet", "coding": [
            {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "313566"}]},
    }
    bundle["entry"].append({"resource": draft})
    path = tmp_path / "with-draft.json"
    path.write_text(json.dumps(bundle))
    assert main(["evaluate", "--hook", "order-select", "--json", str(path)]) == 0
    facts = json.loads(capsys.readouterr().out)["facts"]
    assert [d["id"] for d in facts["drafts"]] == ["MedicationRequest/draft-valgan"]
    assert facts["selected"] == ["MedicationRequest/draft-valgan"]
    assert facts["patient"]["id"] == patient_id


def test_evaluate_at_another_time(env, capsys):
    path = REQUESTS / "kidney-colitis.patient-view.json"
    assert main(["evaluate", "--json", "--at", "2027-01-01T00:00:00Z", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["facts"]["evaluated_at"] == "2027-01-01T00:00:00+00:00"


def test_evaluate_explains_what_it_cannot_run(env, capsys, tmp_path):
    not_json = tmp_path / "x.json"
    not_json.write_text("{")
    assert main(["evaluate", str(not_json)]) == 1
    assert "not valid JSON" in capsys.readouterr().err

    refused = tmp_path / "refused.json"
    refused.write_text(json.dumps({"hook": "patient-view", "hookInstance": "1", "context": {"userId": "P/1"}}))
    assert main(["evaluate", str(refused)]) == 1
    err = capsys.readouterr().err
    assert "HTTP 400" in err and "context.patientId" in err

    request = str(REQUESTS / "kidney-colitis.patient-view.json")
    assert main(["evaluate", "--hook", "order-sign", request]) == 1
    assert "does not match" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- load-fixtures


def test_load_fixtures_posts_each_transaction(fhir_server, capsys):
    assert main(["load-fixtures", "--fhir-server", fhir_server.base_url, str(PATIENTS)]) == 0
    bundles = sorted(PATIENTS.glob("*.json"))
    assert [r.method for r in fhir_server.requests] == ["POST"] * len(bundles)
    expected = {(e["resource"]["resourceType"], e["resource"]["id"]) for p in bundles for e in load_json(p)["entry"]}
    assert set(fhir_server.resources) == expected
    assert f"{len(bundles)} of {len(bundles)} bundles loaded" in capsys.readouterr().out


def test_load_fixtures_falls_back_to_one_put_per_resource(fhir_server, capsys):
    fhir_server.faults.no_transactions = True
    path = PATIENTS / "kidney-colitis.json"
    bundle = load_json(path)
    assert main(["load-fixtures", "--fhir-server", fhir_server.base_url, str(path.parent)]) == 0
    puts = [r for r in fhir_server.requests if r.method == "PUT"]
    assert puts and puts[0].path.startswith("Patient/")  # Patients first
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert fhir_server.resources[(resource["resourceType"], resource["id"])] == resource
    assert "transaction refused (HTTP 405)" in capsys.readouterr().out


def test_load_fixtures_reports_failures(fhir_server, capsys, tmp_path):
    fhir_server.faults.status["*"] = 500
    (tmp_path / "one.json").write_text(json.dumps(load_json(PATIENTS / "kidney-colitis.json")))
    assert main(["load-fixtures", "--fhir-server", fhir_server.base_url, str(tmp_path)]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert main(["load-fixtures", "--fhir-server", fhir_server.base_url, str(tmp_path / "none")]) == 1


@pytest.mark.parametrize("fault", ["login-page", "redirect"])
def test_load_fixtures_never_calls_a_page_or_a_redirect_a_write(fhir_server, capsys, tmp_path, fault):
    # A proxy's login page (200, HTML) or a redirect to one: nothing was loaded, and the command says so.
    if fault == "login-page":
        fhir_server.faults.login_page = True
    else:
        fhir_server.faults.status["*"] = 302
    (tmp_path / "one.json").write_text(json.dumps(load_json(PATIENTS / "kidney-colitis.json")))
    assert main(["load-fixtures", "--fhir-server", fhir_server.base_url, str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "0 of 1 bundles loaded" in out
    assert fhir_server.resources == {}


# -------------------------------------------------------------------------------- feedback-report


def test_feedback_report_prints_rows_by_topic(env, capsys, tmp_path):
    database = Database(os.environ["CDS_DATABASE_URL"])
    database.create_all()
    store = FeedbackStore(database)
    card = {"uuid": "3f1c2b7a-0000-4000-8000-000000000001", "summary": "s", "indicator": "warning",
            "source": {"label": "l", "topic": {"code": "renal-dose-adjustment"}}}
    store.remember_cards("cmv-order-select", [card])
    store.record("cmv-order-select", {"feedback": [
        {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-26T12:00:00Z"}]})
    database.engine.dispose()

    assert main(["feedback-report", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["service_id"], row["topic"], row["cards_issued"], row["accepted"]) == (
        "cmv-order-select", "renal-dose-adjustment", 1, 1)
    assert main(["feedback-report"]) == 0
    table = capsys.readouterr().out
    assert "renal-dose-adjustment" in table and "100%" in table


def test_feedback_report_on_a_sqlite_file_that_is_not_there_is_an_error_not_an_empty_report(env, capsys, tmp_path):
    # A typo in CDS_DATABASE_URL must not create an empty database and report "nothing yet".
    missing = tmp_path / "typo" / "cds.db"
    env.setenv("CDS_DATABASE_URL", f"sqlite:///{missing}")
    assert main(["feedback-report"]) == 1
    assert f"no database at {missing}" in capsys.readouterr().err
    assert not missing.parent.exists()
