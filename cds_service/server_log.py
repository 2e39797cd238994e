"""gunicorn's own log lines (`cds-service serve`), as the service's JSON lines and without request data.

gunicorn quotes what a client sent when it refuses a request that is not valid HTTP ("Invalid request
from ip=...: Invalid HTTP request line: 'GET /x?patient=MRN&token=...'"), logs the URI of a request that
failed, and, at debug, exceptions whose text is the bytes a client sent before it hung up (headers and
their tokens included).  Those lines keep what happened and leave out what was sent.
"""

from __future__ import annotations

import logging

from gunicorn.glogging import Logger

from cds_service.hooks.logs import JsonFormatter

_REFUSED = "Invalid request from ip="  # gunicorn.workers.base.Worker.handle_error, with the request quoted
_FAILED = "Error handling request"  # the same, with the method and URI


def _scrubbed(msg, args: tuple) -> tuple:
    """(msg, *args) with what a client sent left out: quoted requests and URIs, and exceptions' texts
    (only their type is kept)."""
    if isinstance(msg, str) and msg.startswith(_REFUSED):
        # "Invalid request from ip=1.2.3.4: Invalid HTTP request line: 'GET ...'": the kind of error only.
        error = msg.partition(": ")[2]
        kind = error.split(":", 1)[0].split("'", 1)[0].strip()[:60]
        return (f"refused a request that is not valid HTTP: {kind} (what it sent is not logged)",)
    if isinstance(msg, str) and msg.startswith(_FAILED):
        return ("error handling a request (its URI is not logged)",)
    return (msg, *(type(a).__name__ if isinstance(a, BaseException) else a for a in args))


class _LeaveOutRequestData(logging.Filter):
    """Rewrites each of gunicorn's records with _scrubbed (records are made only at enabled levels)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.msg, *args = _scrubbed(record.msg, record.args)
            record.args = tuple(args)
        return True


_LEAVE_OUT_REQUEST_DATA = _LeaveOutRequestData()


class ServerLog(Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)  # gunicorn runs it again on a reload: the formatter goes back on too
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
        self.error_log.addFilter(_LEAVE_OUT_REQUEST_DATA)  # once: a logger keeps one of each filter
