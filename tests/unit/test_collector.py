"""Served workers collect garbage between requests (cds_service.collector), not while one is read."""

from __future__ import annotations

import gc
import weakref

import pytest
from flask import Flask
from werkzeug.test import Client

from cds_service.collector import CollectBetweenRequests, serve_without_automatic_collection


class Node:
    """An object that can sit in a reference cycle and be watched with a weak reference."""

    def __init__(self):
        self.other = self


@pytest.fixture
def automatic_collection_off():
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()


def cyclic_garbage_app(watch: list, containers: int = 0):
    """A WSGI app that leaves a reference cycle behind on each call (and `containers` more objects in it)."""

    def app(environ, start_response):
        node = Node()
        node.load = [[] for _ in range(containers)]
        watch.append(weakref.ref(node))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def call(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    response.close()  # what the WSGI server does once the response is sent


def test_cycles_are_collected_after_every_nth_response(automatic_collection_off):
    watch: list = []
    client = Client(CollectBetweenRequests(cyclic_garbage_app(watch), every=5))
    for _ in range(4):
        call(client)
    assert all(ref() is not None for ref in watch)  # nothing collects while automatic collection is off
    call(client)
    assert all(ref() is None for ref in watch)


def test_too_many_new_objects_are_collected_at_once(automatic_collection_off):
    watch: list = []
    client = Client(CollectBetweenRequests(cyclic_garbage_app(watch, containers=5000), every=1000, young_limit=2000))
    call(client)
    assert watch[0]() is None


def test_a_served_app_has_automatic_collection_off_and_collects_between_requests(automatic_collection_off):
    gc.enable()
    app = Flask(__name__)
    watch: list = []

    @app.get("/")
    def leave_a_cycle():
        watch.append(weakref.ref(Node()))
        return "ok"

    served = serve_without_automatic_collection(app)
    assert served is app and not gc.isenabled()
    client = app.test_client()
    for _ in range(100):
        call(client)
    assert sum(ref() is not None for ref in watch) == 0  # the 100th response collected them all
