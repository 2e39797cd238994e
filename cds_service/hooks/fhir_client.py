"""Reads from the CDS client's FHIR server: one read or one (paged) search, within a deadline.

Each call has a total time budget (CDS_FHIR_TIMEOUT) shared by all its requests; a request gets only
what is left of it.  Redirects are not followed and `next` links are followed only on the same server:
the allow-list of FHIR servers must not be escapable.  The bearer token is sent only to fhirServer.
"""

from __future__ import annotations

import threading
import time
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urljoin, urlsplit

import orjson
import requests
import urllib3

from cds_service import __version__
from cds_service.settings import has_dot_segment

MAX_PAGES = 20  # pages of one search, the first included
MAX_ENTRIES = 10_000  # entries of one search, all pages together
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_CHUNK = 64 * 1024
_ACCEPT = "application/fhir+json, application/json;q=0.9"
_USER_AGENT = f"cds-service/{__version__}"

_session_lock = threading.Lock()
_shared_session: requests.Session | None = None


class FetchError(Exception):
    """The data could not be had; `reason` is safe to log and to show (no token, no patient data)."""

    def __init__(self, reason: str, code: str = "exception"):
        super().__init__(reason)
        self.reason = reason
        self.code = code  # FHIR issue type for an OperationOutcome


def _session() -> requests.Session:
    """One session per process, shared by the fetch threads (its connection pools are thread-safe).

    No cookies, and no .netrc or environment credentials sent to arbitrary servers (proxies from the
    environment are still used, per request).
    """
    global _shared_session
    if _shared_session is None:
        with _session_lock:
            if _shared_session is None:
                session = requests.Session()
                session.trust_env = False
                session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=()))
                session.headers.update({"Accept": _ACCEPT, "User-Agent": _USER_AGENT})
                adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=64)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                _shared_session = session
    return _shared_session


class FhirClient:
    def __init__(self, base_url: str, access_token: str | None, deadline: float):
        self.base_url = base_url.rstrip("/")
        self.deadline = deadline  # time.monotonic() value
        self._auth = {"Authorization": f"Bearer {access_token}"} if access_token else {}
        base = urlsplit(self.base_url)
        self._origin = (base.scheme.lower(), base.hostname, base.port)
        self._path = base.path.rstrip("/")

    def read(self, query: str) -> dict:
        """GET `Type/id` (a query relative to the base)."""
        return self._request("GET", f"{self.base_url}/{query}")

    def search(self, query: str) -> tuple[dict, str | None]:
        """Run `Type?params` and gather its pages into one searchset Bundle.

        Returns the Bundle and a note when it is incomplete (page limits, a failed or foreign page).
        Servers that refuse GET searches (405) are asked again with POST `Type/_search`.
        """
        path, _, params = query.partition("?")
        try:
            first = self._request("GET", f"{self.base_url}/{query}")
        except FetchError as exc:
            if exc.code != "not-supported":
                raise
            first = self._request(
                "POST",
                f"{self.base_url}/{path.rstrip('/')}/_search",
                data=params,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        return self.complete(first)

    def complete(self, bundle: dict) -> tuple[dict, str | None]:
        """Follow a search Bundle's `next` links; the first page's metadata stays."""
        if bundle.get("resourceType") != "Bundle":
            raise FetchError(f"expected a Bundle, got {_kind(bundle)}", code="structure")
        entries = list(_entries(bundle))
        page, pages, note, seen = bundle, 1, None, set()
        while (link := next_link(page, self.base_url)) is not None:
            if pages >= MAX_PAGES or len(entries) >= MAX_ENTRIES:
                note = f"incomplete: only the first {len(entries)} entries were read (paging limit)"
                break
            if link in seen or not self._same_server(link):
                note = f"incomplete: {len(entries)} entries read; the next page repeats or is not on fhirServer"
                break
            seen.add(link)
            try:
                page = self._request("GET", link)
            except FetchError as exc:
                note = f"incomplete: {len(entries)} entries read; the next page failed ({exc.reason})"
                break
            if page.get("resourceType") != "Bundle":
                note = f"incomplete: {len(entries)} entries read; the next page is not a Bundle"
                break
            entries.extend(_entries(page))
            pages += 1
        if len(entries) > MAX_ENTRIES:
            entries = entries[:MAX_ENTRIES]
            note = note or f"incomplete: only the first {MAX_ENTRIES} entries were read (paging limit)"
        if pages == 1 and note is None:
            return bundle, None
        merged = {k: v for k, v in bundle.items() if k not in ("entry", "link")}
        merged["entry"] = entries
        return merged, note

    def _same_server(self, url: str) -> bool:
        """Whether `url` is on fhirServer: its origin, and a path under its base path ("/fhir/x", not
        "/fhirx") with no dot segment ("/fhir/../x"), however encoded: the token goes with the request."""
        try:
            parts = urlsplit(url)
            origin = (parts.scheme.lower(), parts.hostname, parts.port)
        except ValueError:
            return False
        if has_dot_segment(parts.path):
            return False
        path = parts.path.rstrip("/")
        return origin == self._origin and (path == self._path or path.startswith(self._path + "/"))

    def _request(self, method: str, url: str, **kwargs: Any) -> dict:
        # Every request, not only next pages: the token goes only under fhirServer's base path.
        if not self._same_server(url):
            raise FetchError("the query would leave fhirServer's base path; not sent", code="processing")
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError("timed out (CDS_FHIR_TIMEOUT)", code="timeout")
        headers = {**self._auth, **kwargs.pop("headers", {})}
        try:
            response = _session().request(
                method,
                url,
                headers=headers,
                timeout=(remaining, remaining),
                allow_redirects=False,
                stream=True,
                proxies=requests.utils.get_environ_proxies(url),
                **kwargs,
            )
            with response:
                _check_status(response)
                body = read_within(response, self.deadline)
        except (requests.Timeout, urllib3.exceptions.TimeoutError):
            raise FetchError("timed out (CDS_FHIR_TIMEOUT)", code="timeout") from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            # urllib3's own errors come from reading the body (read1 is not wrapped by requests).
            raise FetchError(f"could not reach fhirServer ({type(exc).__name__})", code="transient") from None
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise FetchError("the response is not valid JSON (truncated?)", "structure") from None
        if not isinstance(value, dict):
            raise FetchError("the response is not a FHIR resource", code="structure")
        if value.get("resourceType") == "OperationOutcome":
            raise FetchError("the server answered with an OperationOutcome", code="processing")
        return value

def read_within(response: requests.Response, deadline: float, max_bytes: int = MAX_RESPONSE_BYTES) -> bytes:
    """The body of a streamed response, read as it arrives so that a server sending it byte by byte
    still meets the deadline (a socket timeout alone restarts with every byte)."""
    chunks, size = [], 0
    while chunk := response.raw.read1(_CHUNK, decode_content=True):
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(f"the response exceeds {max_bytes} bytes", code="too-costly")
        if time.monotonic() > deadline:
            raise FetchError("timed out (CDS_FHIR_TIMEOUT)", code="timeout")
        chunks.append(chunk)
    return b"".join(chunks)


_STATUS_CODES = {401: "security", 403: "forbidden", 404: "not-found", 405: "not-supported", 410: "not-found"}


def _check_status(response: requests.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        raise FetchError(f"HTTP {status}: fhirServer redirected (redirects are not followed)", "processing")
    code = _STATUS_CODES.get(status, "transient" if status >= 500 else "processing")
    raise FetchError(f"HTTP {status} from fhirServer", code=code)


def _entries(bundle: dict):
    entries = bundle.get("entry")
    return entries if isinstance(entries, list) else ()


def next_link(bundle: dict, base_url: str) -> str | None:
    links = bundle.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            try:
                return urljoin(base_url + "/", link["url"])
            except ValueError:  # not a URL ("http://[::1"): still a next page, one _same_server refuses
                return link["url"]
    return None


def _kind(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        return value["resourceType"][:64]
    return "something that is not a FHIR resource"
