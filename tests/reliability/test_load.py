"""scripts/load_test.py, short: 8 clients against the real gunicorn server, every fixture request and
bad ones mixed with feedback; no 5xx, the expected status for every call, the same cards as alone,
every acknowledged feedback stored once, bounded memory growth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CALLS = 150


def test_load_script_passes_with_a_small_call_count(tmp_path):
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "load_test.py"), "--calls", str(CALLS), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(out.read_text())
    assert summary["ok"] and summary["problems"] == []
    assert summary["calls"] == CALLS and summary["clients"] == 8
    assert summary["server_errors"] == summary["wrong_status"] == summary["cards_differing"] == 0
    # Both outcomes of the mix were exercised: answered calls and refused ones.
    assert summary["status_counts"].get("200", 0) > 0 and summary["status_counts"].get("400", 0) > 0
    assert summary["feedback_distinct"] > 0
    assert summary["feedback_rows"] == summary["feedback_distinct"]
