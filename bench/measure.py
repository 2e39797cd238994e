"""What the benchmark measures: hook latency, the floors it is compared with, throughput under
concurrent clients, and the server's memory across many calls."""

from __future__ import annotations

import gc
import json
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from bench.generate import HookRequest
from bench.server import Client, Service

DISCOVERY = "/cds-services"
PARSES_PER_BLOCK = 3


class BadAnswer(RuntimeError):
    """The service answered something other than 200 to a call the benchmark needs answered."""


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Timings:
    """Milliseconds of repeated calls."""

    ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | int]:
        return {
            "n": len(self.ms),
            "p50_ms": statistics.median(self.ms),
            "p95_ms": percentile(self.ms, 95),
            "mean_ms": statistics.fmean(self.ms),
            "min_ms": min(self.ms),
            "max_ms": max(self.ms),
        }


def _expect_ok(status: int, answer: bytes, what: str) -> None:
    if status != 200:
        raise BadAnswer(f"{what}: HTTP {status}: {answer[:400].decode(errors='replace')}")


def timed_calls(call: Callable[[], tuple[int, bytes]], what: str, warmup: int, calls: int, max_seconds: float) -> Timings:
    """`warmup` untimed calls, then up to `calls` timed ones within `max_seconds` (at least 3)."""
    for _ in range(warmup):
        _expect_ok(*call(), what)
    timings = Timings()
    deadline = time.perf_counter() + max_seconds
    while len(timings.ms) < calls and (len(timings.ms) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter()
        status, answer = call()
        elapsed = time.perf_counter() - start
        _expect_ok(status, answer, what)
        timings.ms.append(elapsed * 1000)
    return timings


def round_trip(service: Service, warmup: int, calls: int) -> Timings:
    """The empty round trip: GET /cds-services on the same server, one kept-alive client."""
    client = Client(service.port)
    try:
        return timed_calls(lambda: client.get(DISCOVERY), "discovery", warmup, calls, max_seconds=30)
    finally:
        client.close()


def json_parse(request: HookRequest, calls: int, collector: bool, max_seconds: float = 5) -> Timings:
    """Parsing the request body once with the standard json module, in this process (`calls` times)."""
    body = request.body()
    timings = Timings()
    deadline = time.perf_counter() + max_seconds
    while len(timings.ms) < calls and (len(timings.ms) < 3 or time.perf_counter() < deadline):
        timings.ms.append(parse_once(body, collector))
    return timings


def parse_once(body: bytes, collector: bool) -> float:
    """Milliseconds of one json.loads of `body`.

    It starts from the same state each time: a collected heap, and caches warmed by an untimed
    parse.  With `collector` False the garbage collector is paused during the timed parse: the
    parse alone, which no service can avoid; with it on, the parse plus the collections its
    allocations trigger under the default thresholds (which a service can tune away)."""
    gc.collect()
    json.loads(body)
    if not collector:
        gc.disable()
    try:
        start = time.perf_counter()
        json.loads(body)
        return (time.perf_counter() - start) * 1000
    finally:
        gc.enable()


@dataclass
class Latency:
    """A hook request's latency and its floor's parts, timed in the same blocks."""

    hook: Timings = field(default_factory=Timings)
    round_trip: Timings = field(default_factory=Timings)
    parse: Timings = field(default_factory=Timings)  # json.loads of the body, collector paused
    answer: dict = field(default_factory=dict)  # what the service answered (answer_summary)
    seconds: float = 0.0  # spent in this request's blocks
    error: str | None = None  # why it could not be measured (the others still are)


def latencies_with_floor(
    service: Service, requests: list[HookRequest], warmup: int, calls: int, max_seconds: float, block: int = 10
) -> list[Latency]:
    """Each request's hook latency (fresh hookInstance each call) and its floor, measured together.

    A block is `block` empty round trips, PARSES_PER_BLOCK parses of the body and `block` hook calls,
    back to back on one kept-alive connection, so the floor is measured under the same conditions
    as the calls it is compared with.  Blocks run in rounds, one block of every request per round,
    so all requests share the same minutes: on a shared machine the CPU's speed drifts within a run.
    A request is done after `calls` hook calls or `max_seconds` in its blocks (at least 3 calls).
    What the server does after answering one call (freeing its request) is paid by the next hook
    call of the block, not by the round trips.
    """
    client = Client(service.port)
    results = [Latency() for _ in requests]

    def timed(request: HookRequest, call: Callable[[], tuple[int, bytes]], into: Timings | None) -> bytes:
        start = time.perf_counter()
        status, answer = call()
        elapsed = time.perf_counter() - start
        _expect_ok(status, answer, f"{request.hook} {request.size.label}")
        if into is not None:
            into.ms.append(elapsed * 1000)
        return answer

    def hook_call(request: HookRequest) -> Callable[[], tuple[int, bytes]]:
        return lambda: client.request("POST", request.path, request.chunks())

    def discovery() -> tuple[int, bytes]:
        return client.get(DISCOVERY)

    def run_block(request: HookRequest, result: Latency) -> None:
        started = time.perf_counter()
        if not result.answer:  # first block: warm up, and keep what the service answered
            result.answer = answer_summary(timed(request, hook_call(request), None))
            for _ in range(warmup - 1):
                timed(request, hook_call(request), None)
            started = time.perf_counter()
        body = request.body()
        result.parse.ms += [parse_once(body, collector=False) for _ in range(PARSES_PER_BLOCK)]
        for _ in range(block):
            timed(request, discovery, result.round_trip)
        for _ in range(block):
            timed(request, hook_call(request), result.hook)
        result.seconds += time.perf_counter() - started

    def pending(result: Latency) -> bool:
        n = len(result.hook.ms)
        return result.error is None and n < calls and (n < 3 or result.seconds < max_seconds)

    try:
        while any(pending(r) for r in results):
            for request, result in zip(requests, results):
                if not pending(result):
                    continue
                try:
                    run_block(request, result)
                except (BadAnswer, OSError) as exc:
                    service.check_alive()
                    result.error = str(exc)
                    client.close()  # the connection may be mid-response: start the next request afresh
                    client = Client(service.port)
    finally:
        client.close()
    return results


def answer_summary(answer: bytes) -> dict:
    """Cards by indicator and their summaries: shows the service did real work for this request."""
    try:
        parsed = json.loads(answer)
    except ValueError:
        parsed = None
    cards = parsed.get("cards") if isinstance(parsed, dict) else None
    if not isinstance(cards, list) or not all(isinstance(c, dict) for c in cards):
        raise BadAnswer(f"the answer is not a JSON object with a list of cards: {answer[:200]!r}")
    return {
        "cards": len(cards),
        "indicators": sorted(c.get("indicator", "?") for c in cards),
        "summaries": [c.get("summary", "") for c in cards],
    }


def throughput(service: Service, clients: int, seconds: float, make_call: Callable[[Client], Callable[[], tuple[int, bytes]]]) -> dict:
    """Requests per second with `clients` threads, each with its own connection, for `seconds`."""
    done = [0] * clients
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)
    stop = threading.Event()

    def worker(index: int) -> None:
        client = Client(service.port)
        call = make_call(client)
        barrier.wait()
        try:
            while not stop.is_set():
                status, answer = call()
                if status != 200:
                    errors.append(f"HTTP {status}: {answer[:200].decode(errors='replace')}")
                    return
                done[index] += 1
        except OSError as exc:
            errors.append(repr(exc))
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start  # includes the calls in flight at `stop`: all are counted
    if errors:
        raise BadAnswer(f"throughput with {clients} clients: {errors[0]}")
    return {"clients": clients, "requests": sum(done), "seconds": elapsed, "rps": sum(done) / elapsed}


def memory_growth(service: Service, request: HookRequest, warmup: int, calls: int, samples: int = 10) -> dict:
    """RSS of master + workers after `warmup` calls and every calls/samples calls after, and peak."""

    def snapshot(after: int) -> dict:
        processes = service.memory()
        return {
            "calls": after,
            "rss_kb": sum(p.rss_kb for p in processes),
            "hwm_kb": sum(p.hwm_kb for p in processes),
            "processes": [vars(p) for p in processes],
        }

    client = Client(service.port)
    what = f"memory {request.hook} {request.size.label}"
    try:
        for _ in range(warmup):
            _expect_ok(*client.request("POST", request.path, request.chunks()), what)
        series = [snapshot(0)]
        every = max(1, calls // samples)
        for i in range(1, calls + 1):
            _expect_ok(*client.request("POST", request.path, request.chunks()), what)
            if i % every == 0 or i == calls:
                series.append(snapshot(i))
    finally:
        client.close()
    first, last = series[0], series[-1]
    return {
        "request": {"hook": request.hook, "observations": request.size.observations},
        "warmup_calls": warmup,
        "calls": calls,
        "rss_after_warmup_kb": first["rss_kb"],
        "rss_after_calls_kb": last["rss_kb"],
        "growth_kb": last["rss_kb"] - first["rss_kb"],
        "growth_per_call_kb": (last["rss_kb"] - first["rss_kb"]) / calls,
        "peak_hwm_kb": max(s["hwm_kb"] for s in series),
        "processes": last["processes"],
        "series": [{k: s[k] for k in ("calls", "rss_kb", "hwm_kb")} for s in series],
    }
