"""The benchmark's verdicts (bench/report.py), from made-up measurements: what passes and what does not."""

from __future__ import annotations

import pytest

from bench import report

RT = 0.5  # ms, the empty round trip


def linear_verdicts(service_ms_per_1k: tuple[float, float], parse_ms_per_mb: tuple[float, float]) -> list[dict]:
    """The 'linear' targets for one hook at 1,000 and 10,000 observations (bodies of 1 and 10 MB)."""
    rows = []
    for observations, per_1k, per_mb in zip((1_000, 10_000), service_ms_per_1k, parse_ms_per_mb):
        megabytes = observations / 1_000
        rows.append({
            "observations": observations, "hook": "order-sign", "body_bytes": int(megabytes * 1_000_000),
            "p50_ms": RT + per_1k * observations / 1_000, "round_trip_p50_ms": RT,
            "parse_p50_ms": per_mb * megabytes,
        })
    results = {"latency": rows, "round_trip": {"p50_ms": RT}}
    report.add_derived(results)
    return [t for t in report.targets(results) if t["target"].startswith("linear")]


@pytest.mark.parametrize(
    ("service", "parse", "passes"),
    [
        ((10.0, 10.0), (5.0, 5.0), True),  # both linear
        ((10.0, 15.5), (5.0, 7.8), True),  # grows with the parse's own time per byte (caches outgrown)
        ((10.0, 16.0), (5.0, 5.0), False),  # grows faster than the parse, which stayed linear
        ((10.0, 100.0), (5.0, 7.8), False),  # a quadratic scan: 10x per 1,000 for 10x the size
    ],
)
def test_linear_growth_is_judged_against_the_parse_of_the_same_bodies(service, parse, passes):
    (verdict,) = linear_verdicts(service, parse)
    assert verdict["target"] == "linear order-sign 1,000 -> 10,000 obs"
    assert verdict["pass"] is passes
    assert f"{service[1] / service[0]:.2f}x" in verdict["detail"]
