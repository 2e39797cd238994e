"""Hook request validation: what CDS Hooks 2.0 requires of a call, checked once, without a schema library.

Only protocol violations are refused (400).  Clinical incompleteness - a draft without a drug or dose,
invalid resources, unknown codes - is for the facts layer to report in cards, never an error here.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

import orjson

from cds_service.facts.fhir import deeper_than
from cds_service.frozen import frozen
from cds_service.hooks.errors import ProtocolError
from cds_service.hooks.prefetch import resolve_prefetch
from cds_service.hooks.registry import CdsService, HookCall
from cds_service.settings import Settings, is_base_url

_JSON_TYPE_NAMES = {str: "a string", list: "an array", dict: "an object"}
# No FHIR resource nests anywhere near this deep; cards echo draft orders back, and the JSON encoder
# refuses very deep structures, so the context is bounded here.
MAX_CONTEXT_DEPTH = 64
# An order set signed at once is tens of orders.  Each anti-CMV draft is checked against every other
# order, so thousands of drafts would hold a worker for minutes (6,500 distinct drafts: 64 s).
MAX_DRAFT_ORDERS = 500


@frozen
class HookRequest:
    """The parts of a valid hook request the service uses."""

    hook: str
    hook_instance: str
    context: Mapping[str, Any]
    prefetch: Mapping[str, Any]  # as sent; empty when the client sent none
    fhir_server: str | None
    access_token: str | None  # transient: used for this call's fetches, never stored or logged


def parse_json(body: bytes) -> Any:
    if not body:
        raise ProtocolError(400, "The request body is empty: expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # The parser's message gives a position, never content: "unexpected character: line 1 column 9".
        raise ProtocolError(400, f"The request body is not valid JSON ({exc.msg})", "structure") from None


def validate_hook_request(body: Any, service: CdsService, settings: Settings) -> HookRequest:
    if not isinstance(body, dict):
        raise ProtocolError(400, "The request body must be a JSON object", code="structure")
    hook = _required_string(body, "hook")
    if hook != service.hook:
        raise ProtocolError(400, f"hook {hook[:100]!r} is not the hook of service {service.id!r} ({service.hook})")
    hook_instance = _required_string(body, "hookInstance")
    context = body.get("context")
    if not isinstance(context, dict):
        raise ProtocolError(400, "context is required and must be a JSON object", code="required")
    _check_context(context, service)
    if deeper_than(context, MAX_CONTEXT_DEPTH):
        raise ProtocolError(400, f"context is nested more than {MAX_CONTEXT_DEPTH} levels deep", "structure")

    prefetch = body.get("prefetch")
    if prefetch is None:
        prefetch = {}
    elif not isinstance(prefetch, dict):
        raise ProtocolError(400, "prefetch must be a JSON object (prefetch key -> FHIR resource or null)")

    fhir_server = body.get("fhirServer")
    if fhir_server is not None:
        if not isinstance(fhir_server, str) or not is_base_url(fhir_server):
            raise ProtocolError(400, "fhirServer must be the http(s) base URL of the client's FHIR server "
                                     "(no query, fragment or dot segment)")
        if not settings.fhir_server_allowed(fhir_server):
            raise ProtocolError(400, "fhirServer not allowed (not in CDS_ALLOWED_FHIR_SERVERS)", "forbidden")
    return HookRequest(
        hook=hook,
        hook_instance=hook_instance,
        context=context,
        prefetch=prefetch,
        fhir_server=fhir_server,
        access_token=_access_token(body.get("fhirAuthorization"), fhir_server),
    )


def hook_call(service: CdsService, body: Any, settings: Settings, now: datetime | None = None) -> HookCall:
    """Validate a parsed request body and resolve its prefetch: the HookCall a handler is given."""
    request = validate_hook_request(body, service, settings)
    prefetch, unavailable = resolve_prefetch(service, request, settings.fhir_timeout)
    return HookCall(
        service_id=service.id,
        hook=request.hook,
        hook_instance=request.hook_instance,
        context=request.context,
        prefetch=prefetch,
        unavailable=unavailable,
        policy=settings.policy,
        now=now or settings.evaluation_time or datetime.now(timezone.utc),
    )


def _required_string(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ProtocolError(400, f"{name} is required and must be a non-empty string", code="required")
    return value


def _check_context(context: Mapping[str, Any], service: CdsService) -> None:
    for name, kind in service.required_context.items():
        if name not in context or context[name] is None:
            raise ProtocolError(400, f"context.{name} is required by the {service.hook} hook", "required")
        _check_context_field(context, name, kind)
    for name, kind in service.optional_context.items():
        if context.get(name) is not None:
            _check_context_field(context, name, kind)


def _check_context_field(context: Mapping[str, Any], name: str, kind: type) -> None:
    value = context[name]
    if not isinstance(value, kind) or (kind is str and not value):
        article = _JSON_TYPE_NAMES.get(kind, kind.__name__)
        raise ProtocolError(400, f"context.{name} must be {article}{' (non-empty)' if kind is str else ''}")
    if kind is list and not all(isinstance(item, str) for item in value):
        raise ProtocolError(400, f"context.{name} must be an array of strings (FHIR references)")
    if kind is dict and name == "draftOrders":
        if value.get("resourceType") != "Bundle":
            # The Bundle's `type` is not checked: the CDS Hooks sandbox leaves it out.
            raise ProtocolError(400, "context.draftOrders must be a FHIR Bundle (resourceType 'Bundle')")
        entries = value.get("entry")
        if isinstance(entries, list) and len(entries) > MAX_DRAFT_ORDERS:
            raise ProtocolError(
                400, f"context.draftOrders holds {len(entries):,} entries: at most {MAX_DRAFT_ORDERS} are checked "
                "in one call", "too-costly",
            )


def _access_token(authorization: Any, fhir_server: str | None) -> str | None:
    """The bearer token of fhirAuthorization (all fields the 2.0 spec requires are checked)."""
    if authorization is None:
        return None
    if not isinstance(authorization, dict):
        raise ProtocolError(400, "fhirAuthorization must be a JSON object")
    if fhir_server is None:
        raise ProtocolError(400, "fhirAuthorization was sent without fhirServer", code="required")
    for name in ("access_token", "scope", "subject"):
        value = authorization.get(name)
        if not isinstance(value, str) or not value:
            raise ProtocolError(400, f"fhirAuthorization.{name} is required: a non-empty string", "required")
    token_type = authorization.get("token_type")
    # RFC 6749: the token type is case-insensitive.
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise ProtocolError(400, "fhirAuthorization.token_type is required and must be 'Bearer'", "required")
    expires_in = authorization.get("expires_in")
    # Whole seconds; a JavaScript client may write 300 as 300.0, the same number in JSON.
    whole = isinstance(expires_in, int) or (isinstance(expires_in, float) and expires_in.is_integer())
    if not whole or isinstance(expires_in, bool):
        raise ProtocolError(400, "fhirAuthorization.expires_in is required: whole seconds", "required")
    patient = authorization.get("patient")
    if patient is not None and not isinstance(patient, str):
        raise ProtocolError(400, "fhirAuthorization.patient must be a string")
    token = authorization["access_token"]
    if not (token.isascii() and token.isprintable() and " " not in token):
        # It goes into an Authorization header as it is (RFC 6750: a b64token, visible ASCII).
        raise ProtocolError(400, "fhirAuthorization.access_token must be visible ASCII (a bearer token)")
    return token
