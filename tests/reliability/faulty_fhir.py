"""A FHIR server on loopback that fails the way real ones do, below the HTTP framework.

tests/fhir_server.py answers well-formed HTTP with switchable statuses, delays and half bodies.  This
one controls the bytes and the socket, for the faults a framework hides: a body that trickles in
a byte at a time, a Content-Length that is never delivered, a connection accepted and never
answered, `next` links that loop or never end, a Bundle too big to be sensible.  It also counts TCP
connections (not just HTTP requests), so a test can prove a server was never contacted at all.

`mode[kind]` picks the behaviour per resource type ("Patient", "Observation", ...; "*" for all):
    ok            Patient read: the patient; searches: `search_entries[kind]` in one Bundle
    status:NNN    that HTTP status with an OperationOutcome body
    slow          waits `slow_seconds` before answering
    hang          accepts the request and never answers (until the server is closed)
    drip          headers at once, then one byte of the body every `drip_interval` s
    short         promises a Content-Length and closes the connection halfway
    not-json      200 with an HTML page
    loop          a searchset whose `next` link is the page itself
    endless       a searchset whose `next` link is always one more page
    huge          a searchset of `huge_entries` Observations in one page
    redirect:URL  302 to URL
    next-to:URL   a searchset whose `next` link is URL
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PATIENT_ID = "rel-pt-1"


def patient(pid: str = PATIENT_ID, **extra) -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": "male", "birthDate": "1968-03-01", **extra}


def searchset(resources, link=None) -> dict:
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
              "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources]}
    if link:
        bundle["link"] = link
    return bundle


def outcome(diagnostics: str) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing",
                                                          "diagnostics": diagnostics}]}


class FaultyFhirServer:
    def __init__(self):
        self.mode: dict[str, str] = {}
        self.patient = patient()
        self.search_entries: dict[str, list[dict]] = {}
        self.slow_seconds = 5.0
        self.drip_interval = 0.2
        self.huge_entries = 20_000
        self.connections = 0  # TCP connections accepted
        self.paths: list[str] = []  # request paths below /fhir, in order
        self.open_handlers = 0  # handlers still running (hung, dripping...)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        owner = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def process_request(self, request, client_address):
                with owner._lock:
                    owner.connections += 1
                super().process_request(request, client_address)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - http.server's naming
                owner._handle(self)

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                owner._handle(self)

            def log_message(self, *args):
                pass

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_port
        self.base_url = f"http://127.0.0.1:{self.port}/fhir"
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    def reset(self) -> None:
        self.release()
        self.mode = {}
        self.patient = patient()
        self.search_entries = {}
        with self._lock:
            self.connections = 0
            self.paths = []

    def release(self) -> None:
        """End every hung or dripping answer now (their connections are closed)."""
        self._stop.set()
        deadline = time.monotonic() + 5
        while self.open_handlers and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop = threading.Event()

    def close(self) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()

    # ------------------------------------------------------------------------------- answering

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        path = url.path.removeprefix("/fhir").strip("/")
        with self._lock:
            self.paths.append(path)
            self.open_handlers += 1
        try:
            kind = path.split("/")[0] or "*"
            mode = self.mode.get(kind, self.mode.get("*", "ok"))
            self._answer(handler, mode, kind, path, parse_qs(url.query))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the service gave up on us: that is what these tests want
        finally:
            with self._lock:
                self.open_handlers -= 1

    def _answer(self, handler, mode: str, kind: str, path: str, query: dict) -> None:
        stop = self._stop
        if mode.startswith("status:"):
            status = int(mode.split(":", 1)[1])
            return self._send(handler, status, outcome(f"fault {status}"))
        if mode.startswith("redirect:"):
            handler.send_response(302)
            handler.send_header("Location", mode.split(":", 1)[1])
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None
        if mode.startswith("next-to:"):
            return self._send(handler, 200, searchset([], [{"relation": "next", "url": mode.split(":", 1)[1]}]))
        if mode == "slow":
            stop.wait(self.slow_seconds)
            return self._send(handler, 200, self._normal(kind, path))
        if mode == "hang":
            stop.wait(60)
            handler.close_connection = True
            return None
        if mode == "drip":
            body = json.dumps(self._normal(kind, path)).encode() + b" " * 100_000
            handler.send_response(200)
            handler.send_header("Content-Type", "application/fhir+json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            for byte in body:
                if stop.wait(self.drip_interval):
                    break
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
            handler.close_connection = True
            return None
        if mode == "short":
            body = json.dumps(self._normal(kind, path)).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/fhir+json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_RDWR)
            handler.close_connection = True
            return None
        if mode == "not-json":
            return self._send_bytes(handler, 200, b"<html><body>Service Unavailable</body></html>", "text/html")
        if mode in ("loop", "endless"):
            page = int((query.get("page") or ["0"])[0])
            target = page if mode == "loop" else page + 1
            link = [{"relation": "next", "url": f"{self.base_url}/{kind}?patient={PATIENT_ID}&page={target}"}]
            entries = [_observation(f"{kind}-{page}")] if kind == "Observation" else []
            return self._send(handler, 200, searchset(entries, link))
        if mode == "huge":
            resources = [_observation(f"huge-{i}", value=1.0 + (i % 50) / 100) for i in range(self.huge_entries)]
            return self._send(handler, 200, searchset(resources))
        return self._send(handler, 200, self._normal(kind, path))

    def _normal(self, kind: str, path: str) -> dict:
        if kind == "Patient":
            wanted = path.split("/")[1] if "/" in path else ""
            if wanted != self.patient.get("id"):
                return outcome("not found")
            return self.patient
        return searchset(self.search_entries.get(kind, []))

    def _send(self, handler, status: int, body: dict) -> None:
        self._send_bytes(handler, status, json.dumps(body).encode(), "application/fhir+json")

    @staticmethod
    def _send_bytes(handler, status: int, body: bytes, content_type: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def _observation(oid: str, value: float = 1.1, code: str = "2160-0") -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": "2026-11-25T08:00:00Z",
        "valueQuantity": {"value": value, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
    }


class ConnectionRecorder:
    """A TCP listener on loopback that only counts the connections made to it (an SSRF target)."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        self.connections = 0
        self._running = True
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while self._running:
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._running = False
        self._thread.join(2)
        self._sock.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
