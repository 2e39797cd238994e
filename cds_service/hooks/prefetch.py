"""Prefetch resolution: use what the client sent, fetch what is missing, know what cannot be had.

For each prefetch key a service declares:
- sent as `null`: the client has no data; never re-queried;
- sent as an OperationOutcome, or as a resource that does not fit the query (a Patient read that is
  not that Patient, a search that is not a Bundle): no data, noted in `unavailable`;
- sent as a paged search Bundle: its `next` pages are fetched from fhirServer;
- not sent: the template is rendered with the context and fetched from fhirServer (when there is one).
Missing keys are fetched concurrently within one time budget.  A required key (the Patient) that
cannot be had makes the call fail with 412; any other key is noted and the call is answered.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor, wait
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import quote, unquote

from cds_service.hooks.errors import ProtocolError
from cds_service.hooks.fhir_client import FetchError, FhirClient, next_link
from cds_service.hooks.registry import CdsService

if TYPE_CHECKING:
    from cds_service.hooks.request import HookRequest

_TOKEN = re.compile(r"\{\{\s*(.*?)\s*\}\}")
# CDS Hooks 2.0 user tokens: the id part of context.userId when it is a reference of that type.
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}
_GRACE_SECONDS = 0.05  # lets a fetch that hits the deadline report it itself

Outcome = tuple[Any, "str | None"]  # (value or None, note)


class TemplateError(ValueError):
    """A prefetch template that cannot be filled from this call's context."""


def render_template(template: str, context: Mapping[str, Any]) -> str:
    """Fill the 2.0 tokens of a prefetch template.  Values are URL-encoded whole, `/` included: a value is
    one id or one search value, never a path ("../../admin" as a patientId must not leave fhirServer's base)."""

    def fill(match: re.Match) -> str:
        token = match.group(1)
        if token.startswith("context."):
            value = context.get(token[len("context."):])
            if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value == "":
                raise TemplateError(f"{{{{{token}}}}} needs a primitive context value")
        elif token in _USER_TOKENS:
            kind, _, value = str(context.get("userId") or "").partition("/")
            if kind != _USER_TOKENS[token] or not value:
                raise TemplateError(f"{{{{{token}}}}} needs a {_USER_TOKENS[token]} user")
        else:
            raise TemplateError(f"unsupported prefetch token {{{{{token}}}}}")
        return quote(str(value), safe="")

    return _TOKEN.sub(fill, template)


@lru_cache(maxsize=256)
def expected_type(template: str) -> str:
    """The resourceType a template's query returns: `Type/id` reads a Type, anything else a Bundle."""
    path, query_sep, _ = _TOKEN.sub("x", template).partition("?")
    segments = path.strip("/").split("/")
    return segments[0] if not query_sep and len(segments) == 2 else "Bundle"


def _rendered(template: str, context: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(the template's query, None), or (None, why it cannot be filled from the context)."""
    try:
        return render_template(template, context), None
    except TemplateError as exc:
        return None, str(exc)


def resolve_prefetch(service: CdsService, request: "HookRequest", timeout: float) -> tuple[dict, dict]:
    """(prefetch, unavailable) for the service's keys; raises ProtocolError(412) for a required key."""
    deadline = time.monotonic() + timeout
    client = FhirClient(request.fhir_server, request.access_token, deadline) if request.fhir_server else None
    values: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    codes: dict[str, str] = {}  # key -> FHIR issue type of its failure
    jobs: dict[str, Callable[[], Outcome]] = {}

    for key, template in service.prefetch.items():
        kind = expected_type(template)
        values[key] = None
        if key in request.prefetch:
            value = request.prefetch[key]
            if value is None:  # the client has no data: not an error, and not re-queried
                continue
            # A sent resource is checked against its query's id; a sent Bundle's query is not needed.
            problem = misfit(value, kind, None if kind == "Bundle" else _rendered(template, request.context)[0])
            if problem:
                unavailable[key] = f"sent {problem}"
            elif kind == "Bundle" and client and next_link(value, client.base_url):
                jobs[key] = partial(client.complete, value)
            else:
                values[key] = value
                if kind == "Bundle" and next_link(value, ""):
                    unavailable[key] = "incomplete: sent paged, and no fhirServer to fetch the next pages"
        elif client is None:
            unavailable[key] = "not sent, and no fhirServer to fetch it from"
        else:
            query, template_problem = _rendered(template, request.context)
            if query is None:
                unavailable[key] = f"not sent, and cannot be fetched: {template_problem}"
            else:
                jobs[key] = partial(_fetch, client, query, kind)

    for key, result in _run(jobs, deadline).items():
        if isinstance(result, FetchError):
            unavailable[key] = f"could not be fetched from fhirServer: {result.reason}"
            codes[key] = result.code
            continue
        values[key], note = result
        if note:
            unavailable[key] = note

    for key in service.required_prefetch:
        if values.get(key) is None:
            why = unavailable.get(key, "the client sent null (no data)")
            diagnostics = f"Required prefetch '{key}' cannot be had: {why}"
            raise ProtocolError(412, diagnostics, codes.get(key, "not-found"))
    return values, unavailable


def misfit(value: Any, kind: str, query: str | None) -> str | None:
    """Why a value does not answer its query (None when it does)."""
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return "something that is not a FHIR resource"
    found = value["resourceType"]
    if found == "OperationOutcome":
        return "an OperationOutcome instead of data"
    if found != kind:
        return f"a {found[:64]} where a {kind} was expected"
    if kind != "Bundle" and query is not None:
        # A missing or non-string id is no id: which patient it is cannot be told.
        expected_id = unquote(query.split("?")[0].strip("/").split("/")[1])
        if value.get("id") != expected_id:
            return f"a {kind} whose id is not the one the context names"
    return None


def _fetch(client: FhirClient, query: str, kind: str) -> Outcome:
    if kind == "Bundle":
        return client.search(query)
    value = client.read(query)
    problem = misfit(value, kind, query)
    if problem:
        raise FetchError(f"fhirServer returned {problem}", code="processing")
    return value, None


def _run(jobs: Mapping[str, Callable[[], Outcome]], deadline: float) -> dict[str, Outcome | FetchError]:
    """Run the jobs concurrently; a job not done by the deadline is a timeout.

    Each call has its own threads: a FHIR server that never finishes holds only the threads of the
    calls that asked it, never a pool that other calls wait for.
    """
    if not jobs:
        return {}
    executor = ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="fhir-fetch")
    try:
        futures = {key: executor.submit(job) for key, job in jobs.items()}
        done, _ = wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()) + _GRACE_SECONDS)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    results: dict[str, Outcome | FetchError] = {}
    for key, future in futures.items():
        if future not in done:  # still running: it stops at its own deadline check, unwaited for
            results[key] = FetchError("timed out (CDS_FHIR_TIMEOUT)", code="timeout")
            continue
        try:
            results[key] = future.result()
        except FetchError as exc:
            results[key] = exc
    return results
