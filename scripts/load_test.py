"""Load test: 8 concurrent clients against the real server (`cds-service serve`, gunicorn gthread),
mixing every fixture request with bad ones and feedback posts.

Passes (exit 0) when, under load:
  - no call gets a 5xx, and every call gets the status its case expects (200, 400, 404, 412);
  - every 200 carries the same cards as the same request sent alone (topics, indicators, summaries,
    details, suggestions: everything but the uuids);
  - every feedback post is stored exactly once (rows counted in the server's SQLite database);
  - the server's memory (RSS of master and workers) grows by less than the tolerance between the
    warm-up and the end of the run.

    python scripts/load_test.py --calls 400            # from the repository root
    python scripts/load_test.py --calls 60 --json out.json
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.server import Client, Service  # noqa: E402 - the repository root is on the path only now

REQUESTS = ROOT / "fhir_fixtures" / "requests"
EVALUATION_TIME = "2026-11-26T12:00:00Z"
SERVICE_OF_HOOK = {"patient-view": "cmv-patient-view", "order-select": "cmv-order-select", "order-sign": "cmv-order-sign"}
FEEDBACK_EVERY = 3  # every third answered hook call with cards is followed by feedback on its first card
RESEND_EVERY = 4  # every fourth feedback is sent twice (a client's retry)


@dataclass
class Case:
    name: str
    path: str
    body: bytes
    status: int  # the status this case must get, alone or under load


@dataclass
class Result:
    case: str
    status: int
    seconds: float
    signature: list | None = None  # cards without uuids, for 200s
    first_card: str | None = None


@dataclass
class Tally:
    results: list[Result] = field(default_factory=list)
    feedback_sent: set[tuple[str, str]] = field(default_factory=set)  # distinct (card, timestamp)
    feedback_posts: int = 0
    feedback_failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cases() -> list[Case]:
    """Every fixture request (answered from its complete prefetch), and requests that must be refused."""
    nowhere = f"http://127.0.0.1:{closed_port()}/fhir"  # nothing is fetched; if it were, it fails fast
    found = []
    for path in sorted(REQUESTS.glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        body["fhirServer"] = nowhere
        found.append(Case(path.stem, f"/cds-services/{SERVICE_OF_HOOK[body['hook']]}", _json(body), 200))

    view = json.loads((REQUESTS / "liver-renal.patient-view.json").read_text(encoding="utf-8"))
    order = json.loads((REQUESTS / "liver-renal.order-select.json").read_text(encoding="utf-8"))
    for body in (view, order):
        body["fhirServer"] = nowhere
    no_patient = copy.deepcopy(view)
    no_patient["prefetch"]["patient"] = None
    no_context = copy.deepcopy(view)
    del no_context["context"]
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    failed_labs = copy.deepcopy(order)
    failed_labs["prefetch"]["observations"] = outcome
    zero_weight = copy.deepcopy(order)
    for entry in zero_weight["prefetch"]["observations"]["entry"]:
        if entry["resource"]["code"]["coding"][0]["code"] == "29463-7":
            entry["resource"]["valueQuantity"]["value"] = 0
    found += [
        Case("bad: not JSON", "/cds-services/cmv-patient-view", b'{"hook": "patient-view",', 400),
        Case("bad: nested 10,000 deep", "/cds-services/cmv-patient-view", b"[" * 10_000 + b"]" * 10_000, 400),
        Case("bad: wrong hook", "/cds-services/cmv-patient-view", _json(order), 400),
        Case("bad: no context", "/cds-services/cmv-patient-view", _json(no_context), 400),
        Case("bad: patient null", "/cds-services/cmv-patient-view", _json(no_patient), 412),
        Case("bad: unknown service", "/cds-services/no-such-service", _json(view), 404),
        Case("bad: labs an OperationOutcome", "/cds-services/cmv-order-select", _json(failed_labs), 200),
        Case("bad: weight 0 kg", "/cds-services/cmv-order-select", _json(zero_weight), 200),
        Case("bad: feedback without items", "/cds-services/cmv-order-select/feedback", b'{"feedback": "none"}', 400),
    ]
    return found


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def signature(cards: list[dict]) -> list:
    """The cards with every uuid removed: what must be identical between two answers."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "uuid"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(cards)


def call(client: Client, case: Case) -> Result:
    started = time.perf_counter()
    status, body = client.request("POST", case.path, [case.body])
    seconds = time.perf_counter() - started
    result = Result(case.name, status, seconds)
    if status == 200 and not case.path.endswith("/feedback"):
        cards = json.loads(body)["cards"]
        result.signature = signature(cards)
        result.first_card = cards[0]["uuid"] if cards else None
    return result


def post_feedback(client: Client, tally: Tally, service_path: str, card: str, n: int) -> None:
    at = f"2026-11-26T{12 + n // 3600 % 12:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
    item = {"card": card, "outcome": "overridden" if n % 2 else "accepted", "outcomeTimestamp": at}
    body = _json({"feedback": [item]})
    for _ in range(2 if n % RESEND_EVERY == 0 else 1):
        status, answer = client.request("POST", service_path + "/feedback", [body])
        with tally.lock:
            tally.feedback_posts += 1
            if status == 200:
                tally.feedback_sent.add((card, at))
            else:
                tally.feedback_failures.append(f"feedback HTTP {status}: {answer[:200]!r}")


def run_clients(port: int, schedule: list[Case], clients: int, tally: Tally, feedback: bool) -> float:
    """Send `schedule` from `clients` threads (each with its own keep-alive connection)."""
    jobs = iter(enumerate(schedule))
    lock = threading.Lock()
    counter = itertools.count()

    def worker() -> None:
        client = Client(port, timeout=60)
        try:
            while True:
                with lock:
                    job = next(jobs, None)
                if job is None:
                    return
                _, case = job
                result = call(client, case)
                with tally.lock:
                    tally.results.append(result)
                if feedback and result.first_card and case.status == 200:
                    n = next(counter)
                    if n % FEEDBACK_EVERY == 0:
                        post_feedback(client, tally, case.path, result.first_card, n)
        finally:
            client.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def rss_kb(service: Service) -> int:
    return sum(m.rss_kb for m in service.memory())


def stored_feedback(database: Path) -> list[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT card_uuid, outcome_timestamp FROM feedback").fetchall()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400, help="hook calls under load (default 400)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument("--rss-tolerance-mb", type=float, default=16.0,
                        help="allowed growth of the server's total RSS over the run (default 16 MB)")
    parser.add_argument("--seed", type=int, default=2026, help="order of the calls (default 2026)")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    args = parser.parse_args(argv)

    all_cases = cases()
    with tempfile.TemporaryDirectory(prefix="cds-load-") as tmp:
        database = Path(tmp) / "cds.db"
        environ = {"CDS_DATABASE_URL": f"sqlite:///{database}", "CDS_EVALUATION_TIME": EVALUATION_TIME,
                   "CDS_FHIR_TIMEOUT": "2", "CDS_LOG_LEVEL": "WARNING"}
        service = Service(environ, Path(tmp) / "serve.log")
        service.command += ["--workers", str(args.workers), "--threads", str(args.threads)]
        with service:
            # 1. Each case alone, one at a time: the answers load must reproduce.
            alone = Tally()
            run_clients(service.port, all_cases, 1, alone, feedback=False)
            expected = {r.case: r for r in alone.results}
            # 2. Warm-up under load (caches, connection threads, allocator), then the measured run.
            rng = random.Random(args.seed)
            run_clients(service.port, all_cases * 2, args.clients, Tally(), feedback=False)
            rss_before = rss_kb(service)
            schedule = [rng.choice(all_cases) for _ in range(args.calls)]
            tally = Tally()
            seconds = run_clients(service.port, schedule, args.clients, tally, feedback=True)
            rss_after = rss_kb(service)
            service.check_alive()
            log_tail = service.log_tail()
        rows = stored_feedback(database)

    status_of = {c.name: c.status for c in all_cases}
    problems = []
    for name, result in expected.items():
        if result.status != status_of[name]:
            problems.append(f"{name}: alone HTTP {result.status}, expected {status_of[name]}")
    server_errors = [r for r in tally.results if r.status >= 500]
    wrong_status = [r for r in tally.results if r.status != status_of[r.case]]
    different = [r for r in tally.results if r.status == 200 and r.signature != expected[r.case].signature]
    problems += [f"{r.case}: HTTP {r.status} under load, expected {status_of[r.case]}" for r in wrong_status[:10]]
    problems += [f"{r.case}: cards under load differ from the cards alone" for r in different[:10]]
    problems += tally.feedback_failures[:10]
    stored = sorted((card, str(at)) for card, at in rows)
    if len(rows) != len(tally.feedback_sent) or len(set(stored)) != len(stored):
        problems.append(f"feedback: {len(tally.feedback_sent)} distinct items acknowledged, {len(rows)} rows stored")
    growth_mb = (rss_after - rss_before) / 1024
    if growth_mb > args.rss_tolerance_mb:
        problems.append(f"memory grew {growth_mb:.1f} MB (tolerance {args.rss_tolerance_mb:g} MB)")

    latencies = [r.seconds * 1000 for r in tally.results]
    summary = {
        "calls": len(tally.results),
        "clients": args.clients,
        "workers": args.workers,
        "threads": args.threads,
        "cases": len(all_cases),
        "seconds": round(seconds, 2),
        "calls_per_second": round(len(tally.results) / seconds, 1) if seconds else None,
        "latency_ms": {"p50": round(statistics.median(latencies), 1) if latencies else None,
                       "p95": round(percentile(latencies, 0.95), 1), "max": round(max(latencies, default=0), 1)},
        "status_counts": {str(s): sum(r.status == s for r in tally.results) for s in sorted({r.status for r in tally.results})},
        "server_errors": len(server_errors),
        "wrong_status": len(wrong_status),
        "cards_differing": len(different),
        "feedback_posts": tally.feedback_posts,
        "feedback_distinct": len(tally.feedback_sent),
        "feedback_rows": len(rows),
        "rss_mb": {"before": round(rss_before / 1024, 1), "after": round(rss_after / 1024, 1),
                   "growth": round(growth_mb, 1), "tolerance": args.rss_tolerance_mb},
        "problems": problems,
        "ok": not problems,
    }
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "problems"}, indent=2))
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    if problems and log_tail:
        print(f"--- server log (tail)\n{log_tail}", file=sys.stderr)
    print("OK" if not problems else f"FAILED: {len(problems)} problem(s)", file=sys.stderr)
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
