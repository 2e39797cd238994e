"""Garbage collection between requests, for served workers.

Python's collector runs when the count of new container objects passes a threshold.  Parsing a
large prefetch creates hundreds of thousands of them, so collections ran again and again in the
middle of a call, each walking the live, half-read record: about a third of a 10,000-observation
call.  The service makes little cyclic garbage (about 14 objects per call, whatever the answer),
so served workers turn automatic collection off and collect here instead: after a response has been
sent, every `every` requests, or sooner if the objects made since the last collection pass
`young_limit` (a bug that kept whole records in reference cycles could not hold more than that).
"""

from __future__ import annotations

import gc
import threading
from typing import Any, Callable, Iterable

from werkzeug.wsgi import ClosingIterator

COLLECT_EVERY = 100  # requests between collections
YOUNG_LIMIT = 2_000_000  # container objects made since the last collection: collect at once beyond it


class CollectBetweenRequests:
    """WSGI middleware: collect garbage after responses are sent, never while a request is read.

    Call `gc.disable()` (and usually `gc.freeze()`) in the process that serves it."""

    def __init__(self, app: Callable, every: int = COLLECT_EVERY, young_limit: int = YOUNG_LIMIT):
        self.app = app
        self.every = every
        self.young_limit = young_limit
        self._lock = threading.Lock()
        self._served = 0

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        # The WSGI server closes the response once it has sent it: the collection runs then.
        return ClosingIterator(self.app(environ, start_response), self._after_response)

    def _after_response(self) -> None:
        with self._lock:
            self._served += 1
            due = self._served % self.every == 0
        if due or gc.get_count()[0] > self.young_limit:
            gc.collect()


def serve_without_automatic_collection(app: Any) -> Any:
    """Freeze what exists (the app: never garbage), turn automatic collection off, and collect
    between requests instead.  Returns the WSGI app to serve (a Flask app keeps its own object)."""
    gc.collect()
    gc.freeze()
    gc.disable()
    app.wsgi_app = CollectBetweenRequests(app.wsgi_app)
    return app
