"""Feedback is never lost and never doubled, through HTTP against the running multi-threaded service:
concurrent and repeated posts are stored exactly once (rows counted in the real database); with the
database gone, hook calls still get their cards and feedback is a 503 OperationOutcome (nothing is
acknowledged that was not stored); when it is back, the client's retry is stored once.

SQLite always; PostgreSQL too when CDS_TEST_POSTGRES_URL names a database (see the README's
Reliability section), where the outage is a TCP proxy in front of the server being cut.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from conftest import start_live_service
from sqlalchemy import select

from cds_service.hooks.storage import Database, feedback

from .conftest import encode, seed, service_environ
from .contract import assert_answer, card_signature, outcome_problems

POSTGRES_URL = os.environ.get("CDS_TEST_POSTGRES_URL")
SERVICE = "cmv-order-select"
HOOK_BODY = "liver-renal.order-select"


def item(card: str, n: int) -> dict:
    """A distinct feedback item: accepted with a suggestion, or overridden with a reason."""
    at = f"2026-11-26T12:{n // 60 % 60:02d}:{n % 60:02d}Z"
    if n % 2:
        return {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": f"s-{n}"}], "outcomeTimestamp": at}
    return {"card": card, "outcome": "overridden", "outcomeTimestamp": at,
            "overrideReason": {"reason": {"code": "already-addressed", "system": "urn:cmv-cds:override-reason"},
                               "userComment": f"comment {n}"}}


def post_feedback(service, items: list[dict]) -> requests.Response:
    return requests.post(service.url(f"/cds-services/{SERVICE}/feedback"), data=encode({"feedback": items}),
                         headers={"Content-Type": "application/json"}, timeout=30)


def stored(database: Database, cards: set[str]) -> list[str]:
    with database.begin() as conn:
        rows = conn.execute(select(feedback.c.card_uuid).where(feedback.c.card_uuid.in_(cards)))
        return sorted(r[0] for r in rows)


def call_hook(service) -> requests.Response:
    body = seed(HOOK_BODY)
    return requests.post(service.url(f"/cds-services/{SERVICE}"), data=encode(body),
                         headers={"Content-Type": "application/json"}, timeout=30)


class TcpProxy:
    """127.0.0.1:<port> -> target, that can be cut (every connection closed, new ones refused) and
    restored: a database server going away and coming back, as the service sees it."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._listener.listen(64)
        self._up = True
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self._up = False
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._sockets.clear()

    def restore(self) -> None:
        self._up = True

    def close(self) -> None:
        self.cut()
        self._listener.close()


class Backend:
    """A database the service uses, and how to take it away and give it back."""

    def __init__(self, kind: str, tmp: Path):
        self.kind = kind
        if kind == "sqlite":
            self.directory = tmp / "db"
            self.directory.mkdir()
            self.url = f"sqlite:///{self.directory / 'cds.db'}"
            self.proxy = None
        else:
            from sqlalchemy.engine import make_url

            real = make_url(POSTGRES_URL)
            self.proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
            self.url = real.set(host="127.0.0.1", port=self.proxy.port).render_as_string(hide_password=False)
        self.database = Database(self.url)  # the test's own view, for counting rows

    def take_away(self, service) -> None:
        if self.proxy:
            self.proxy.cut()
        else:
            # The service's pooled connections go (as a restart or recycle would close them) and the
            # database's directory is gone: every new connection fails.
            service.app.extensions["cds_service"].feedback.database.engine.dispose()
            self.database.engine.dispose()
            self.directory.rename(self.directory.with_name("db-away"))

    def give_back(self) -> None:
        if self.proxy:
            self.proxy.restore()
        else:
            self.directory.with_name("db-away").rename(self.directory)

    def close(self) -> None:
        self.database.engine.dispose()
        if self.proxy:
            self.proxy.close()


@pytest.fixture(params=[
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(
        not POSTGRES_URL, reason="set CDS_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/cds_test)")),
])
def backend(request, tmp_path):
    backend = Backend(request.param, tmp_path)
    yield backend
    backend.close()


@pytest.fixture
def service(backend, tmp_path):
    server, live = start_live_service(service_environ(tmp_path, CDS_DATABASE_URL=backend.url))
    live.app = server.app
    yield live
    server.shutdown()
    live.app.extensions["cds_service"].feedback.database.engine.dispose()


def test_concurrent_and_repeated_feedback_is_stored_exactly_once(service, backend):
    run = uuid.uuid4().hex[:8]  # a PostgreSQL database outlives the test: only this run's rows count
    items = [item(f"card-{run}-{n}", n) for n in range(60)]
    # Every item twice, in batches of 1-3 in shuffled order: retries and overlapping batches.
    sent = items + items
    random.Random(7).shuffle(sent)
    batches, i = [], 0
    while i < len(sent):
        size = random.Random(i).randint(1, 3)
        batches.append(sent[i:i + size])
        i += size

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda batch: post_feedback(service, batch), batches))
    assert [r.status_code for r in responses] == [200] * len(batches), [r.text for r in responses if r.status_code != 200][:3]
    cards = {i["card"] for i in items}
    assert stored(backend.database, cards) == sorted(cards)  # each exactly once


def test_with_the_database_down_hooks_answer_and_feedback_is_503_until_it_is_back(service, backend):
    before = call_hook(service)
    cards = assert_answer(before, 200)["cards"]
    assert cards, "the hook answers cards (their uuids are what feedback refers to)"
    card = cards[0]["uuid"]
    backend.take_away(service)
    try:
        during = call_hook(service)
        assert card_signature(assert_answer(during, 200)["cards"]) == card_signature(cards)

        refused = post_feedback(service, [item(card, 1)])
        assert refused.status_code == 503
        assert outcome_problems(refused.json(), 503) == []
        assert refused.headers.get("Retry-After")
    finally:
        backend.give_back()

    # The client retries once the database is back: stored, once.
    assert post_feedback(service, [item(card, 1)]).status_code == 200
    assert post_feedback(service, [item(card, 1)]).status_code == 200
    assert stored(backend.database, {card}) == [card]


def test_a_feedback_post_is_acknowledged_only_when_all_its_items_are_stored(service, backend):
    run = uuid.uuid4().hex[:8]
    good, bad = item(f"card-{run}-good", 1), {"card": f"card-{run}-bad", "outcome": "maybe"}
    response = post_feedback(service, [good, bad])
    assert response.status_code == 400
    assert stored(backend.database, {good["card"], bad["card"]}) == []  # all or nothing
