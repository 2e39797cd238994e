"""`cds-service serve` with timers around the stages of each call: `python -m bench.profile --served`.

Each worker times the stages bench.profile.STAGES names, Flask's handling of each request and the
freeing of a call's request once its answer is sent, and writes them, one record per request, to
$BENCH_STAGES_DIR/<pid>.json when it exits.  Made for one client at a time (a worker's requests are
then sequential).  Not part of the service: run with `python -m bench.stage_server serve ...`.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

from flask import Flask, Response

from bench.profile import install_stage_timers

HANDLING = "Flask's handling of the request (all of the above)"
FREEING = "freeing the request, after the answer is sent"
STARTED = "started"  # when the request came in (time.time()), to leave out a warm-up

_stages: dict[str, float] = defaultdict(float)  # the request being handled: label -> seconds
_requests: dict[str, list[dict[str, float]]] = {"hook": [], "discovery": []}
_last_hook: list[dict[str, float]] = []  # the record of the last request, if it was a hook call


def _timed_wsgi_app(original):
    def wsgi_app(self, environ, start_response):
        _stages.clear()
        _stages[STARTED] = time.time()
        start = time.perf_counter()
        try:
            return original(self, environ, start_response)
        finally:
            _stages[HANDLING] = time.perf_counter() - start
            record = dict(_stages)
            hook = environ.get("REQUEST_METHOD") == "POST"
            _requests["hook" if hook else "discovery"].append(record)
            _last_hook[:] = [record] if hook else []
    return wsgi_app


def _timed_close(original):
    def close(self):
        start = time.perf_counter()
        try:
            return original(self)
        finally:
            # The WSGI server closes a response once it is sent: a hook call's request is freed then.
            if _last_hook:
                _last_hook.pop()[FREEING] = time.perf_counter() - start
    return close


def _write() -> None:
    if _requests["hook"] or _requests["discovery"]:
        path = Path(os.environ["BENCH_STAGES_DIR"]) / f"{os.getpid()}.json"
        path.write_text(json.dumps(_requests))


if __name__ == "__main__":
    install_stage_timers(_stages)
    Flask.wsgi_app = _timed_wsgi_app(Flask.wsgi_app)
    Response.close = _timed_close(Response.close)
    atexit.register(_write)  # inherited by the workers gunicorn forks; each writes its own file

    from cds_service.cli import main

    sys.exit(main(sys.argv[1:]))
