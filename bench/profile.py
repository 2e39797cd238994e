"""Where a hook call's time goes: `.venv/bin/python -m bench.profile` (run it as a module).

Runs the whole application in-process (Flask test client: protocol layer, facts, clinical rules,
cards, storage; no HTTP server) on the benchmark's 10,000-observation order-sign request under
cProfile, and prints the wall time next to a json.loads of the same body, the time per component
(fhir.resources/pydantic validation, each cds_service layer, json, Flask, database) and the top
functions by own and by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
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
from bench.generate import HOOKS, NOW, hook_request, service_codes, size_for

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


@contextmanager
def stage_timers(totals: dict[str, float]) -> Iterator[list[str]]:
    """Wrap each STAGES callable with a timer adding to totals[label]; yields the stages not found."""
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
    args = parser.parse_args(argv)

    from cds_service.app import create_app
    from cds_service.collector import serve_without_automatic_collection
    from cds_service.settings import Settings

    codes, _ = service_codes()
    request = hook_request(size_for(args.observations), args.hook, codes)
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
        print(f"  {label:<40} {ms:>9.1f} ms  {ms / wall_ms:>6.1%}")
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


if __name__ == "__main__":
    raise SystemExit(main())
