"""A small FHIR R4 server on loopback, for tests that need the EHR's FHIR server to be real.

It holds the resources of the Bundles it is given (fhir_fixtures/patients/*.json or a test's own) and
answers what the service asks: read (`GET Type/id`), search by patient (+ code, status, _id, _count,
_sort=-date) with `next` links, `POST Type/_search`, and transactions at the base (for
`cds-service load-fixtures`).  Every request is recorded (`requests`) so a test can assert what was
and was not asked.  Switches for faults: a required bearer token, a status per resource type, a delay,
truncated JSON, GET searches refused with 405, `next` links to another server, no transactions.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlencode

from flask import Flask, Response, request
from werkzeug.serving import make_server

FIXTURE_PATIENTS = Path(__file__).resolve().parent.parent / "fhir_fixtures" / "patients"
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str  # below the base, e.g. "Patient/p1" or "Observation/_search"
    params: dict[str, str]  # query string and form body together
    authorization: str | None


@dataclass
class Faults:
    """Switches; each `by type` mapping takes a resource type or "*" for every request."""

    status: dict[str, int] = field(default_factory=dict)  # answer this HTTP status
    delay: dict[str, float] = field(default_factory=dict)  # seconds before answering
    truncate: set[str] = field(default_factory=set)  # cut the JSON body in half
    get_search_405: bool = False  # GET searches refused: only POST Type/_search works
    foreign_next: bool = False  # `next` links point to another server
    no_transactions: bool = False  # POST to the base answers 405
    login_page: bool = False  # every request answered 200 with an HTML page (a proxy's login screen)

    def of(self, mapping, kind: str):
        return mapping.get(kind, mapping.get("*")) if isinstance(mapping, dict) else None


class FhirTestServer:
    def __init__(self, bundles: Iterable[dict] = (), token: str | None = None):
        self.token = token  # when set, requests need "Authorization: Bearer <token>"
        self.max_count: int | None = None  # page size cap, whatever _count asks (as servers have)
        self.faults = Faults()
        self.resources: dict[tuple[str, str], dict] = {}
        self.requests: list[Recorded] = []
        self._searches: dict[str, list[dict]] = {}
        self._lock = threading.Lock()
        self.add(*bundles)
        self._server = make_server("127.0.0.1", 0, self._app(), threaded=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}/fhir"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @classmethod
    def from_fixtures(cls, directory: Path = FIXTURE_PATIENTS, **kwargs) -> "FhirTestServer":
        bundles = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))]
        return cls(bundles, **kwargs)

    # ------------------------------------------------------------------ test-facing API

    def add(self, *items: dict) -> None:
        """Add resources, or the resources of Bundles."""
        for item in items:
            if item.get("resourceType") == "Bundle":
                self.add(*(e["resource"] for e in item.get("entry", []) if isinstance(e.get("resource"), dict)))
            else:
                self.resources[(item["resourceType"], item["id"])] = item

    def reset(self) -> None:
        """Back to an empty, healthy, open server (between tests)."""
        with self._lock:
            self.resources.clear()
            self.requests.clear()
            self._searches.clear()
        self.faults = Faults()
        self.token = None
        self.max_count = None

    def requests_for(self, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ the server

    def _app(self) -> Flask:
        app = Flask("fhir-test-server")

        @app.route("/fhir", methods=["GET", "POST"])
        def base():
            if request.method == "POST":
                return self._transaction()
            return self._page(request.args.get("_page", ""), int(request.args.get("_offset", "0")))

        @app.route("/fhir/<kind>", methods=["GET"])
        def search(kind):
            return self._search(kind, request.args.to_dict(), method="GET")

        @app.route("/fhir/<kind>/_search", methods=["POST"])
        def post_search(kind):
            return self._search(kind, request.form.to_dict(), method="POST")

        @app.route("/fhir/<kind>/<rid>", methods=["GET", "PUT"])
        def read(kind, rid):
            if request.method == "PUT":
                resource = request.get_json(force=True)
                self.resources[(kind, rid)] = resource
                return self._json(resource, 200)
            resource = self.resources.get((kind, rid))
            if resource is None:
                return self._outcome(404, f"{kind}/{rid} not found")
            return self._json(resource)

        @app.before_request
        def record_and_fault():
            path = request.path.removeprefix("/fhir").strip("/")
            params = {**request.args.to_dict(), **request.form.to_dict()}
            self.requests.append(Recorded(request.method, path, params, request.headers.get("Authorization")))
            if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
                return self._outcome(401, "a bearer token is required")
            kind = path.split("/")[0] if path else "*"
            if (delay := self.faults.of(self.faults.delay, kind)) is not None:
                time.sleep(delay)
            if (status := self.faults.of(self.faults.status, kind)) is not None:
                return self._outcome(status, "fault injected")
            if self.faults.login_page:
                return Response("<html><body>Sign in</body></html>", status=200, mimetype="text/html")
            return None

        @app.after_request
        def maybe_truncate(response: Response):
            path = request.path.removeprefix("/fhir").strip("/")
            kind = path.split("/")[0] if path else "*"
            if kind in self.faults.truncate or "*" in self.faults.truncate:
                body = response.get_data()
                response.set_data(body[: len(body) // 2])
            return response

        return app

    def _search(self, kind: str, params: dict[str, str], method: str):
        if method == "GET" and self.faults.get_search_405:
            return self._outcome(405, "use POST Type/_search")
        matches = [r for (k, _), r in sorted(self.resources.items()) if k == kind and _matches(r, params)]
        if params.get("_sort") == "-date":
            matches.sort(key=_date_of, reverse=True)
        with self._lock:
            search_id = str(len(self._searches) + 1)
            self._searches[search_id] = matches
        return self._page(search_id, 0, int(params.get("_count") or DEFAULT_PAGE_SIZE))

    def _page(self, search_id: str, offset: int, count: int | None = None):
        matches = self._searches.get(search_id)
        if matches is None:
            return self._outcome(404, "unknown or expired search")
        count = min(count or int(request.args.get("_count") or DEFAULT_PAGE_SIZE), self.max_count or 10**9)
        page = matches[offset : offset + count]
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "link": [{"relation": "self", "url": request.url}],
            "entry": [
                {
                    "fullUrl": f"{self.base_url}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in page
            ],
        }
        if offset + count < len(matches):
            base = "http://elsewhere.invalid/fhir" if self.faults.foreign_next else self.base_url
            query = urlencode({"_page": search_id, "_offset": offset + count, "_count": count})
            bundle["link"].append({"relation": "next", "url": f"{base}?{query}"})
        return self._json(bundle)

    def _transaction(self):
        if self.faults.no_transactions:
            return self._outcome(405, "transactions are not supported")
        bundle = request.get_json(force=True)
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") not in ("transaction", "batch"):
            return self._outcome(400, "expected a transaction Bundle")
        self.add(bundle)
        response = {"resourceType": "Bundle", "type": "transaction-response", "entry": [
            {"response": {"status": "200 OK"}} for _ in bundle.get("entry", [])
        ]}
        return self._json(response)

    @staticmethod
    def _json(body: dict, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, mimetype="application/fhir+json")

    def _outcome(self, status: int, diagnostics: str) -> Response:
        return self._json(
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing",
                                                             "diagnostics": diagnostics}]},
            status,
        )


def _matches(resource: dict, params: dict[str, str]) -> bool:
    for name, value in params.items():
        wanted = value.split(",")
        if name in ("patient", "subject"):
            ref = (resource.get("subject") or resource.get("patient") or {}).get("reference", "")
            if ref.removeprefix("Patient/") not in [w.removeprefix("Patient/") for w in wanted]:
                return False
        elif name == "code":
            codings = (resource.get("code") or {}).get("coding", [])
            found = {f"{c.get('system')}|{c.get('code')}" for c in codings} | {c.get("code") for c in codings}
            if not found & set(wanted):
                return False
        elif name == "status":
            if resource.get("status") not in wanted:
                return False
        elif name == "_id":
            if resource.get("id") not in wanted:
                return False
    return True


def _date_of(resource: dict) -> str:
    return resource.get("effectiveDateTime") or resource.get("issued") or ""
