"""The CDS Hooks endpoints: discovery, hook calls and feedback."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable

import orjson
from flask import Blueprint, Response, current_app, g, request

from cds_service.hooks.errors import ProtocolError
from cds_service.hooks.feedback import FeedbackStore
from cds_service.hooks.registry import CdsService
from cds_service.hooks.request import hook_call, parse_json
from cds_service.settings import Settings

log = logging.getLogger(__name__)

blueprint = Blueprint("cds_hooks", __name__)


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status=status, headers=headers, mimetype="application/json")


@dataclass(frozen=True)
class Runtime:
    """What the endpoints need, built once per app (never per request)."""

    settings: Settings
    services: dict[str, CdsService]
    discovery: bytes  # the discovery response, serialised once
    feedback: FeedbackStore

    @classmethod
    def build(cls, settings: Settings, services: Iterable[CdsService], feedback: FeedbackStore) -> "Runtime":
        by_id: dict[str, CdsService] = {}
        for service in services:
            if service.id in by_id:
                raise ValueError(f"two services are declared with id {service.id!r}")
            by_id[service.id] = service
        discovery = orjson.dumps({"services": [s.discovery() for s in by_id.values()]})
        return cls(settings, by_id, discovery, feedback)

    def service(self, service_id: str) -> CdsService:
        g.service_id = service_id
        try:
            return self.services[service_id]
        except KeyError:
            diagnostics = f"There is no CDS service {service_id[:100]!r}: GET /cds-services lists them"
            raise ProtocolError(404, diagnostics, "not-found") from None


def runtime() -> Runtime:
    return current_app.extensions["cds_service"]


@blueprint.get("/cds-services")
def discovery() -> Response:
    return Response(runtime().discovery, mimetype="application/json")


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    rt = runtime()
    service = rt.service(service_id)
    call = hook_call(service, parse_json(request.get_data()), rt.settings)
    cards = service.handler(call)
    g.cards = len(cards)
    if cards:
        try:
            rt.feedback.remember_cards(service.id, cards)
        except Exception:  # bookkeeping for the feedback report must never cost the clinician the cards
            log.warning("could not record the cards issued by %s", service.id, exc_info=True)
    return json_response({"cards": cards})


@blueprint.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    rt = runtime()
    service = rt.service(service_id)
    rt.feedback.record(service.id, parse_json(request.get_data()))
    return json_response({})
