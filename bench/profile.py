"""Where a hook call's time goes: `.venv/bin/python -m bench.profile` (run it as a module).

Runs the whole application in-process (Flask test client: protocol layer, facts, clinical rules,
cards, storage; no HTTP server) on the benchmark's 10,000-observation order-sign request under
cProfile, and prints the wall time next to a json.loads of the same body, the time per component
(fhir.resources/pydantic validation, each cds_service layer, json, Flask, database) and the top
functions by own and by cumulative time.

With --served it times the same stages in a served worker instead (`cds-service serve` with timers
installed, bench/stage_server.py), as the benchmark calls it: one client, blocks of 10 discovery
and 10 hook calls; it prints each stage's median next to Flask's handling of the request, the
freeing of the request after the answer, and how long the client waited, for the hook and discovery.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from bench import measure
from bench.generate import HOOKS, NOW, HookRequest, hook_request, service_codes, size_for

# Component of a function, by the first path fragment its file contains (checked in order).
COMPONENTS = (
    ("/cds_service/hooks/", "cds_service.hooks (protocol)"),
    ("/cds_service/facts/", "cds_service.facts"),
    ("/cds_service/clinical/", "cds_service.clinical"),
    ("/cds_service/cards/", "cds_service.cards"),
    ("/cds_service/", "cds_service (app, services)"),
    ("/fhir/resources/", "fhir.resources + pydantic"),
    ("/fhir_core/", "fhir.resources + pydantic"),
    ("/pydantic", "fhir.resources + pydantic"),
    ("/json/", "json parse/serialise"),
    ("/flask/", "flask + werkzeug"),
    ("/werkzeug/", "flask + werkzeug"),
    ("/sqlalchemy/", "database"),
    ("/sqlite3/", "database"),
    ("/logging/", "logging"),
    ("/site-packages/", "other libraries"),
)


def component(func: tuple) -> str | None:
    """The component a profiled function belongs to, or None for code that only serves its caller
    (built-ins other than JSON codecs, and the standard library: typing, re, datetime ...)."""
    filename, _, name = func
    if filename == "~":
        return "json parse/serialise" if "json" in name else None
    filename = filename.replace("\\", "/")
    for fragment, label in COMPONENTS:
        if fragment in filename:
            return label
    return None


def by_component(stats: pstats.Stats) -> dict[str, float]:
    """Own time per component.  Time in built-ins and the standard library (isinstance on typing
    ABCs, re.sub, ...) is charged to the components that called them, in proportion to each call
    edge's cumulative time, following callers up until a component is found."""
    raw = stats.stats  # type: ignore[attr-defined]
    totals: dict[str, float] = defaultdict(float)

    def charge(func: tuple, seconds: float, path: frozenset) -> None:
        label = component(func)
        if label is not None:
            totals[label] += seconds
            return
        callers = {c: edge[3] for c, edge in raw[func][4].items() if c not in path and c in raw}
        weight = sum(callers.values())
        if not weight:
            totals["unattributed"] += seconds
            return
        for caller, share in callers.items():
            charge(caller, seconds * share / weight, path | {func})

    for func, (_, _, own, _, _) in raw.items():
        charge(func, own, frozenset())
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


# What the service's own code calls on a hook call, by module and (dotted) attribute: each is wrapped
# with a timer for the unprofiled calls, so the stage times are real (the profiler inflates Python code).
STAGES = (
    ("cds_service.hooks.routes", "request_body", "read body (request_body)"),
    ("cds_service.hooks.routes", "parse_json", "parse body (orjson)"),
    ("cds_service.hooks.routes", "hook_call", "validate request, resolve prefetch"),
    ("cds_service.services", "PatientRecord.from_hook", "sort resources (PatientRecord)"),
    ("cds_service.services", "build_facts", "facts (build_facts)"),
    ("cds_service.clinical", "check_orders", "clinical (check_orders)"),
    ("cds_service.clinical", "guidance", "clinical (guidance)"),
    ("cds_service.services", "render_cards", "cards (render_cards)"),
    ("cds_service.hooks.feedback", "FeedbackStore.remember_cards", "store issued cards (database)"),
    ("cds_service.hooks.routes", "json_response", "serialise response (orjson)"),
)


def install_stage_timers(totals: dict[str, float]) -> tuple[list[tuple], list[str]]:
    """Wrap each STAGES callable with a timer adding to totals[label]; -> (what undoes it: (owner,
    name, original) each, the stages not found)."""
    undo, missing = [], []
    for module_name, dotted, label in STAGES:
        *owner_path, name = dotted.split(".")
        owner = importlib.import_module(module_name)
        for part in owner_path:
            owner = getattr(owner, part, None)
        original = vars(owner).get(name) if owner is not None else None
        if original is None:
            missing.append(f"{module_name}.{dotted}")
            continue
        function = original.__func__ if isinstance(original, classmethod) else original

        def timed(*args, __function=function, __label=label, **kwargs):
            start = time.perf_counter()
            try:
                return __function(*args, **kwargs)
            finally:
                totals[__label] += time.perf_counter() - start

        setattr(owner, name, classmethod(timed) if isinstance(original, classmethod) else timed)
        undo.append((owner, name, original))
    return undo, missing


@contextmanager
def stage_timers(totals: dict[str, float]) -> Iterator[list[str]]:
    """install_stage_timers for the duration of the block; yields the stages not found."""
    undo, missing = install_stage_timers(totals)
    try:
        yield missing
    finally:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--observations", type=int, default=10_000)
    parser.add_argument("--hook", choices=HOOKS, default="order-sign")
    parser.add_argument("--repeat", type=int, default=3, help="timed and profiled calls (default 3)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--save", type=Path, help="also write the raw profile (for snakeviz, pstats)")
    parser.add_argument(
        "--served", action="store_true",
        help="time the same stages in a served worker instead (cds-service serve, one client), no profiler",
    )
    parser.add_argument("--calls", type=int, default=400, help="--served: timed hook calls (default 400)")
    args = parser.parse_args(argv)

    codes, _ = service_codes()
    request = hook_request(size_for(args.observations), args.hook, codes)
    if args.served:
        return served(request, args.calls)

    from cds_service.app import create_app
    from cds_service.collector import serve_without_automatic_collection
    from cds_service.settings import Settings

    body = request.body()
    with tempfile.TemporaryDirectory(prefix="cds-profile-") as tmp:
        settings = Settings.from_env({
            "CDS_DATABASE_URL": f"sqlite:///{Path(tmp) / 'profile.db'}",
            "CDS_EVALUATION_TIME": NOW.isoformat(),
            "CDS_MAX_BODY_BYTES": str(2 * len(body) + 1024),
            "CDS_LOG_LEVEL": "WARNING",
        })
        # As `cds-service serve` runs it: automatic garbage collection off, collected between requests.
        client = serve_without_automatic_collection(create_app(settings)).test_client()

        def call() -> None:
            answer = client.post(request.path, data=body, content_type="application/json")
            if answer.status_code != 200:
                raise SystemExit(f"{request.path}: HTTP {answer.status_code}: {answer.get_data(as_text=True)[:400]}")

        call()  # imports, database tables, caches
        totals: dict[str, float] = defaultdict(float)
        stages: dict[str, list[float]] = defaultdict(list)  # label -> seconds in each call
        wall = []
        with stage_timers(totals) as missing:
            for _ in range(args.repeat):
                totals.clear()
                start = time.perf_counter()
                call()
                wall.append(time.perf_counter() - start)
                totals["rest (Flask, werkzeug, logging)"] = wall[-1] - sum(totals.values())
                for label, seconds in totals.items():
                    stages[label].append(seconds)
        parse_ms = measure.json_parse(request, 5, collector=False).summary()["p50_ms"]
        parse_gc_ms = measure.json_parse(request, 5, collector=True).summary()["p50_ms"]

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.repeat):
            call()
        profiler.disable()

    if args.save:
        profiler.dump_stats(args.save)
    wall_ms = statistics.median(wall) * 1000
    print(f"{args.hook}, {args.observations:,} observations, body {len(body) / 1e6:.1f} MB, in-process "
          f"(Flask test client, no HTTP server): {wall_ms:.1f} ms per call (median of {args.repeat}) = "
          f"{wall_ms / parse_ms:.1f}x json.loads of the body ({parse_ms:.1f} ms with the collector paused, "
          f"{parse_gc_ms:.1f} ms with it on)")

    print("\nTime by stage (unprofiled; median per call, share of the median call):")
    for label, seconds in stages.items():
        ms = statistics.median(seconds) * 1000
        print(f"  {label:<40} {ms:>9.3f} ms  {ms / wall_ms:>6.1%}")
    if missing:
        print(f"  (not timed, not found: {', '.join(missing)})")

    stats = pstats.Stats(profiler, stream=sys.stdout)
    components = by_component(stats)
    total = sum(components.values())
    print("\nOwn time by component under cProfile (which inflates Python code more than C code; "
          "built-ins and stdlib charged to their callers):")
    for name, seconds in components.items():
        print(f"  {name:<40} {seconds / total:>6.1%}")
    for key, title in (("tottime", "own time"), ("cumulative", "cumulative time")):
        print(f"\nTop {args.top} functions by {title} ({args.repeat} calls, under cProfile):")
        stats.sort_stats(key).print_stats(args.top)
    return 0


def served(request: HookRequest, calls: int) -> int:
    """The stages of `request`'s hook call, timed in a served worker (bench/stage_server.py): one
    client, in blocks of 10 discovery and 10 hook calls as the benchmark times them; medians."""
    from bench.server import Client, Service
    from bench.stage_server import FREEING, HANDLING, STARTED

    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="cds-stages-") as tmp:
        environ = {
            "CDS_DATABASE_URL": f"sqlite:///{Path(tmp) / 'stages.db'}",
            "CDS_EVALUATION_TIME": NOW.isoformat(),
            "CDS_MAX_BODY_BYTES": str(2 * len(request) + 1024),
            "CDS_LOG_LEVEL": "WARNING",  # no access log line per request
            "BENCH_STAGES_DIR": tmp,
            "PYTHONPATH": str(root),  # bench.stage_server, from this checkout
        }
        waits: dict[str, list[float]] = {"discovery": [], "hook": []}
        program = [sys.executable, "-m", "bench.stage_server"]
        with Service(environ, Path(tmp) / "server.log", program=program) as service:
            client = Client(service.port)
            calls_of = {
                "discovery": lambda: client.get(measure.DISCOVERY),
                "hook": lambda: client.request("POST", request.path, request.chunks()),
            }
            for _ in range(20):  # warm-up, not counted
                for call in calls_of.values():
                    call()
            started = time.time()
            for _ in range(max(1, calls // 10)):
                for kind, call in calls_of.items():
                    for _ in range(10):
                        start = time.perf_counter()
                        status, answer = call()
                        waits[kind].append(time.perf_counter() - start)
                        if status != 200:
                            raise SystemExit(f"{kind}: HTTP {status}: {answer[:400].decode(errors='replace')}")
            client.close()
        # The server has stopped: each worker that answered wrote its requests' stages.
        records: dict[str, list[dict[str, float]]] = {"discovery": [], "hook": []}
        for path in Path(tmp).glob("*.json"):
            for kind, found in json.loads(path.read_text()).items():
                records[kind] += [r for r in found if r[STARTED] >= started]

    def median_ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.3f} ms" if values else "-"

    labels = [label for _, _, label in STAGES] + [HANDLING, FREEING]
    print(f"{request.hook}, {request.size.observations:,} observations, served (cds-service serve with stage "
          f"timers, bench/stage_server.py; one client, {len(waits['hook'])} hook calls in blocks of 10 between "
          f"10 discovery calls; medians):")
    for label in labels:
        values = [r[label] for r in records["hook"] if label in r]
        discovery = [r[label] for r in records["discovery"] if label in r] if label == HANDLING else []
        print(f"  {label:<52} {median_ms(values):>10}" + (f"   (discovery {median_ms(discovery)})" if discovery else ""))
    print(f"  {'the client waited':<52} {median_ms(waits['hook']):>10}   (discovery {median_ms(waits['discovery'])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
