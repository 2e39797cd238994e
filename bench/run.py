"""Benchmark of the running service: `.venv/bin/python -m bench` (see README, "Performance").

Starts `cds-service serve` on loopback with a temporary SQLite database, then measures in one run:
hook latency per history size against its floor, throughput with concurrent clients against
discovery's, and the server's memory across many calls; then, on a second server whose hook handlers
do no clinical work (bench/ceiling_server.py), the throughput ceiling.  Prints a table with PASS/MISS
per target, writes bench/results/latest.json and the plot bench/latency.png.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import measure, report
from bench.generate import HOOKS, NOW, Size, hook_request, service_codes, size_for
from bench.server import CEILING_SERVER, HOST, Client, Service, ServiceFailed, machine_busy_seconds, process_cpu_seconds

BENCH = Path(__file__).resolve().parent
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024  # the service's default CDS_MAX_BODY_BYTES


@dataclass(frozen=True)
class Plan:
    """How much to measure.  The full plan runs in a few minutes on 2 cores; smoke in seconds."""

    sizes: tuple[int, ...]
    warmup: int  # untimed calls per size and hook
    calls: int  # timed calls per size and hook ...
    max_seconds: float  # ... or fewer when they take longer than this (at least 3)
    round_trip_calls: int  # timed discovery calls, half before and half after the hook calls
    parse_calls: int
    clients: tuple[int, ...]
    throughput_seconds: float
    memory_warmup: int
    memory_calls: int


FULL = Plan(sizes=(100, 1_000, 10_000), warmup=5, calls=200, max_seconds=15, round_trip_calls=200,
            parse_calls=10, clients=(1, 4, 8), throughput_seconds=5, memory_warmup=100, memory_calls=1_000)
SMOKE = Plan(sizes=(20, 60), warmup=1, calls=5, max_seconds=5, round_trip_calls=20, parse_calls=3,
             clients=(1, 2), throughput_seconds=0.3, memory_warmup=5, memory_calls=30)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH, capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


class OtherLoad:
    """Share of the machine's CPU used by processes other than this benchmark and its server while
    it ran: other work (a test suite, a noisy neighbour's steal time) makes every number worse."""

    def __init__(self, service: Service):
        self.service = service
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        own = process_cpu_seconds(os.getpid()) + self.service.cpu_seconds()
        return time.monotonic(), machine_busy_seconds(), own

    def share(self) -> float:
        (t0, busy0, own0), (t1, busy1, own1) = self.start, self._sample()
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / ((t1 - t0) * (os.cpu_count() or 1))


def service_environ(database: Path, largest_body: int) -> dict[str, str]:
    """Defaults of `cds-service serve`, except: a fresh SQLite file, the patients' evaluation time,
    and a body limit that admits the largest request (the default 5 MiB would refuse 10,000 obs)."""
    return {
        "CDS_DATABASE_URL": f"sqlite:///{database}",
        "CDS_EVALUATION_TIME": NOW.isoformat(),
        "CDS_MAX_BODY_BYTES": str(max(DEFAULT_MAX_BODY_BYTES, 2 * largest_body)),
    }


def run(plan: Plan, workdir: Path, shuffle: bool) -> dict:
    codes, unknown = service_codes()
    if unknown:
        progress(f"note: LOINC codes the service reads that the generator does not use: {', '.join(unknown)}")
    sizes: list[Size] = [size_for(n) for n in plan.sizes]
    progress("generating requests ...")
    requests = [hook_request(size, hook, codes, shuffle) for size in sizes for hook in HOOKS]
    largest = max(len(r) for r in requests)

    rows = [
        {
            "observations": request.size.observations,
            "medications": request.size.medications,
            "conditions": request.size.conditions,
            "hook": request.hook,
            "body_bytes": len(request),
        }
        for request in requests
    ]
    environ = service_environ(workdir / "bench.db", largest)
    results: dict = {}
    with Service(environ, workdir / "service.log") as service:
        other_load = OtherLoad(service)
        processes = service.memory()
        results["meta"] = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "server": f"cds-service serve --host {HOST} --port <free port>",
            "port": service.port,
            "workers": sum(p.role == "worker" for p in processes),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "commit": commit(),
            "environ": environ,
            "observation_codes": list(codes),
            "shuffled": shuffle,
            "plan": vars(plan),
            "load_average_before": os.getloadavg()[0],
        }
        half = plan.round_trip_calls // 2
        progress("round trip ...")
        before = measure.round_trip(service, warmup=20, calls=half)
        # Each size's hooks share rounds (same body size, same minutes); sizes follow one another, so
        # a size is measured in its own steady state, not just after a call ten times its size.
        latencies: list[measure.Latency] = []
        for size in sizes:
            progress(f"latency {size.label} ({', '.join(HOOKS)}) ...")
            latencies += measure.latencies_with_floor(
                service, [r for r in requests if r.size == size], plan.warmup, plan.calls, plan.max_seconds
            )
        paired: list[float] = []  # the round trips timed next to the hook calls
        for row, request, latency in zip(rows, requests, latencies):
            # The floor's parse is timed with the calls; this one, with the collector on, is shown.
            row["parse_gc_p50_ms"] = measure.json_parse(request, plan.parse_calls, collector=True).summary()["p50_ms"]
            if latency.error is not None or not latency.hook.ms:
                row["error"] = latency.error or "no call was timed"
                row["parse_p50_ms"] = measure.json_parse(request, plan.parse_calls, collector=False).summary()["p50_ms"]
                continue
            parse = latency.parse.summary()
            row.update(
                latency.hook.summary(),
                round_trip_p50_ms=latency.round_trip.summary()["p50_ms"],
                parse_p50_ms=parse["p50_ms"],
                parse_p95_ms=parse["p95_ms"],
                parse_min_ms=parse["min_ms"],
                answer=latency.answer,
            )
            paired += latency.round_trip.ms
        after = measure.round_trip(service, warmup=0, calls=plan.round_trip_calls - half)
        results["round_trip"] = measure.Timings(before.ms + paired + after.ms).summary()
        results["latency"] = rows

        # The smallest history's order-sign: the call that is most nearly service overhead alone.
        small = next(r for r in requests if r.size == sizes[0] and r.hook == "order-sign")
        progress("throughput ...")
        try:
            results["throughput"] = {
                "hook": small.hook, "observations": small.size.observations, "seconds": plan.throughput_seconds,
                "clients": list(plan.clients),
                **rates(service, small, plan.clients, plan.throughput_seconds),
            }
        except (measure.BadAnswer, OSError) as exc:
            service.check_alive()
            results["throughput"] = {"error": str(exc)}

        progress(f"memory over {plan.memory_calls:,} calls ...")
        try:
            results["memory"] = measure.memory_growth(service, small, plan.memory_warmup, plan.memory_calls)
        except (measure.BadAnswer, OSError) as exc:
            service.check_alive()
            results["memory"] = {"error": str(exc)}
        results["meta"]["other_cpu_share"] = other_load.share()
        if failed(results):
            results["service_log_tail"] = service.log_tail(60)
    if "error" not in results["throughput"]:
        results["throughput"]["ceiling"] = ceiling(environ, workdir, small, plan)
    report.add_derived(results)
    results["targets"] = report.targets(results)
    return results


def rates(service: Service, request, clients: tuple[int, ...], seconds: float) -> dict:
    """Requests/s of discovery and of `request` with each number of clients, discovery first."""
    return {
        "discovery_rps": {str(c): measure.throughput(
            service, c, seconds, lambda client: lambda: client.get(measure.DISCOVERY))["rps"] for c in clients},
        "hook_rps": {str(c): measure.throughput(
            service, c, seconds, lambda client: lambda: client.request("POST", request.path, request.chunks()))["rps"]
            for c in clients},
    }


def ceiling(environ: dict[str, str], workdir: Path, request, plan: Plan) -> dict:
    """Throughput with the most clients on a server whose hook handlers do no clinical work (the
    request still read, parsed and validated, and answered with no cards), against its discovery:
    the share of discovery's rate that no implementation of the rules could exceed on this machine."""
    progress("throughput ceiling (hook handlers doing no clinical work) ...")
    most = max(plan.clients)
    try:
        with Service(environ, workdir / "ceiling.log", program=CEILING_SERVER) as service:
            client = Client(service.port)
            status, answer = client.request("POST", request.path, request.chunks())
            client.close()
            if status != 200 or measure.answer_summary(answer)["cards"]:
                raise measure.BadAnswer(f"the ceiling server answered HTTP {status} with cards: {answer[:200]!r}")
            found = rates(service, request, (most,), plan.throughput_seconds)
    except (measure.BadAnswer, OSError, ServiceFailed, ValueError, http.client.HTTPException) as exc:
        return {"error": str(exc)}
    return {"clients": most, "discovery_rps": found["discovery_rps"][str(most)], "hook_rps": found["hook_rps"][str(most)]}


def failed(results: dict) -> bool:
    """Whether any measurement could not be made (as opposed to a target missed)."""
    throughput = results.get("throughput", {})
    parts = [*results.get("latency", ()), throughput, throughput.get("ceiling", {}), results.get("memory", {})]
    return any("error" in part for part in parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and few calls (the test suite's run)")
    parser.add_argument("--out", type=Path, help="results directory (default bench/results; smoke: a temp dir)")
    parser.add_argument("--plot", type=Path, help="plot path (default bench/latency.png; smoke: in --out)")
    parser.add_argument("--sizes", help="observation counts, comma-separated (default 100,1000,10000)")
    parser.add_argument("--shuffle", action="store_true", help="send observations shuffled, not newest first")
    args = parser.parse_args(argv)

    plan = SMOKE if args.smoke else FULL
    if args.sizes:
        plan = Plan(**{**vars(plan), "sizes": tuple(int(s) for s in args.sizes.split(","))})
    with tempfile.TemporaryDirectory(prefix="cds-bench-") as tmp:
        out = args.out or (Path(tmp) if args.smoke else BENCH / "results")
        plot_path = args.plot or (out / "latency.png" if args.smoke else BENCH / "latency.png")
        try:
            results = run(plan, Path(tmp), args.shuffle)
        except (ServiceFailed, measure.BadAnswer) as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 2
        out.mkdir(parents=True, exist_ok=True)
        (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
        (out / "latest.md").write_text(report.markdown(results))
        report.plot(results, plot_path)
        print(report.table(results))
        print(f"\nwrote {out / 'latest.json'}, {out / 'latest.md'} (README tables) and {plot_path}")
    if failed(results):
        tail = results.get("service_log_tail")
        print("some measurements failed" + (f"; the service's log ends with:\n{tail}" if tail else ""), file=sys.stderr)
        return 1
    return 0
