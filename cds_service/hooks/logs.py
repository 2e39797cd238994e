"""Structured logs: one JSON object per line.

What is logged is chosen here, field by field: request method, path, service id, status, latency and
card count; never a body, a header, a token or an exception message (which may quote patient data).
"""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path

import orjson

LOGGER = "cds_service"
access_log = logging.getLogger(f"{LOGGER}.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            entry["traceback"] = _frames(record.exc_info[2])
        return orjson.dumps(entry, default=str).decode()


def _frames(tb) -> list[str]:
    """Where an exception passed: file, line and function only (no message, no local values)."""
    return [f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb)]


def configure(level: str) -> None:
    """Send the service's logs to stderr as JSON lines (idempotent; the root logger is left alone)."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level)
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.propagate = False


def log_request(method: str, path: str, status: int, latency_ms: float, service_id=None, cards=None) -> None:
    fields = {"method": method, "path": path[:200], "status": status, "latency_ms": round(latency_ms, 1)}
    if service_id is not None:
        fields["service"] = service_id
    if cards is not None:
        fields["cards"] = cards
    access_log.info("request", extra={"fields": fields})
