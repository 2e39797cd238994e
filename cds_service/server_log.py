"""gunicorn's own log lines (`cds-service serve`), as the service's JSON lines and without request data.

gunicorn quotes what a client sent when it refuses a request that is not valid HTTP ("Invalid request
from ip=...: Invalid HTTP request line: 'GET /x?patient=MRN&token=...'") and the URI of a request that
failed; a query string or a header can carry a patient identifier or a token.  Those lines keep what
happened and leave out what was sent.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from cds_service.hooks.logs import JsonFormatter

_REFUSED = "Invalid request from ip="  # gunicorn.workers.base.Worker.handle_error, with the request quoted
_FAILED = "Error handling request"  # the same, with the method and URI


class ServerLog(Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())

    def warning(self, msg, *args, **kwargs) -> None:
        if isinstance(msg, str) and msg.startswith(_REFUSED):
            msg, args = "refused a request that is not valid HTTP (what it sent is not logged)", ()
        super().warning(msg, *args, **kwargs)

    def exception(self, msg, *args, **kwargs) -> None:
        if isinstance(msg, str) and msg.startswith(_FAILED):
            msg, args = "error handling a request (its URI is not logged)", ()
        super().exception(msg, *args, **kwargs)
