"""The benchmark keeps working: `python -m bench --smoke` against a real `cds-service serve`.

No timing is asserted (machines vary): the run must complete, every measurement must be present, and
the service must have answered every hook call with cards it computed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_bench_smoke_run_completes_with_every_result(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path), "--plot", str(tmp_path / "plot.png")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    results = json.loads((tmp_path / "latest.json").read_text())
    assert {"meta", "round_trip", "latency", "throughput", "memory", "targets"} <= results.keys()
    assert results["meta"]["workers"] >= 1
    assert results["round_trip"]["n"] > 0 and results["round_trip"]["p50_ms"] > 0

    rows = results["latency"]
    assert {(r["observations"], r["hook"]) for r in rows} == {
        (n, hook) for n in (20, 60) for hook in ("patient-view", "order-sign")
    }
    for row in rows:
        assert "error" not in row, row["error"]
        assert row["n"] >= 3
        assert {"p50_ms", "p95_ms", "floor_ms", "floor_ratio", "ms_per_1k_obs", "parse_p50_ms"} <= row.keys()
        # The floor is timed with the calls: its own round trip and parse, from the same blocks.
        assert row["floor_ms"] == pytest.approx(row["round_trip_p50_ms"] + row["parse_p50_ms"])
        assert 0 < row["parse_min_ms"] <= row["parse_p50_ms"] <= row["parse_p95_ms"]
        # The generated patient (CrCl ~40 mL/min, rising CMV load) must give the service real work:
        # no cards would mean it no longer reads the generated data, and the timings mean nothing.
        assert row["answer"]["cards"] >= 1, row

    throughput = results["throughput"]
    assert "error" not in throughput, throughput["error"]
    assert set(throughput["hook_rps"]) == set(throughput["discovery_rps"]) == {"1", "2"}
    assert all(rps > 0 for rps in [*throughput["hook_rps"].values(), *throughput["discovery_rps"].values()])
    # The ceiling: a second server whose hook handlers do no clinical work, at the most clients.
    ceiling = throughput["ceiling"]
    assert "error" not in ceiling, ceiling["error"]
    assert ceiling["clients"] == 2 and ceiling["hook_rps"] > 0 and ceiling["discovery_rps"] > 0
    assert "ceiling" in done.stdout and "no clinical work at all" in done.stdout

    memory = results["memory"]
    assert "error" not in memory, memory["error"]
    assert memory["calls"] == 30 and memory["rss_after_warmup_kb"] > 0 and memory["peak_hwm_kb"] > 0

    # Every target is judged, and the printed table shows the verdicts.
    assert len(results["targets"]) == len(rows) + 2 + 2  # latency rows, linear pairs, throughput, memory
    assert all(isinstance(t["pass"], bool) for t in results["targets"])
    assert "PASS" in done.stdout or "MISS" in done.stdout
    assert (tmp_path / "plot.png").stat().st_size > 0


def _profile(*options: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bench.profile", "--observations", "20", *options],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _ms(line: str) -> float:
    return float(re.search(r"(\d+\.\d+) ms", line).group(1))


def test_profile_times_every_stage_in_process():
    out = _profile("--repeat", "2", "--top", "3")
    from bench.profile import STAGES

    for _, _, label in STAGES:
        assert any(line.strip().startswith(label) for line in out.splitlines()), label
    assert "Own time by component" in out and "cds_service.facts" in out


def test_profile_served_times_every_stage_in_the_served_worker():
    from bench.profile import STAGES
    from bench.stage_server import FREEING, HANDLING

    lines = {line.strip().split("  ")[0]: line for line in _profile("--served", "--calls", "10").splitlines()}
    # Each stage was timed in the worker that answered (its file read back), not left out ("-").
    for label in [*(label for _, _, label in STAGES), HANDLING, FREEING]:
        assert label in lines and _ms(lines[label]) >= 0, label
    assert _ms(lines["facts (build_facts)"]) > 0
    # The whole handling includes its stages, and the client waited at least that long.
    assert _ms(lines[HANDLING]) >= _ms(lines["facts (build_facts)"])
    assert _ms(lines["the client waited"]) >= _ms(lines[HANDLING])
    assert "(discovery" in lines[HANDLING] and "(discovery" in lines["the client waited"]
