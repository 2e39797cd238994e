"""The Flask application: `create_app(settings)` builds everything once; requests only use it.

Run it with `cds-service serve` (gunicorn), or any WSGI server: `gunicorn 'cds_service.app:create_app()'`.
"""

from __future__ import annotations

import logging
import time
from importlib.resources import files
from typing import Iterable

import orjson
import yaml
from flask import Flask, Response, g, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException

from cds_service import __version__
from cds_service.hooks import logs
from cds_service.hooks.auth import JwtVerifier, Unauthorized
from cds_service.hooks.errors import ProtocolError, operation_outcome
from cds_service.hooks.feedback import FeedbackStore
from cds_service.hooks.registry import CdsService
from cds_service.hooks.routes import Runtime, blueprint, json_response
from cds_service.hooks.storage import Database, StorageUnavailable
from cds_service.settings import Settings

log = logging.getLogger("cds_service.app")

# Paths anyone may GET without a JWT: nothing in them is about a patient or a client.
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.yaml", "/openapi.json"})

# FHIR issue types for the HTTP errors werkzeug raises.
_HTTP_ISSUE_CODES = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}


def create_app(settings: Settings | None = None, services: Iterable[CdsService] | None = None) -> Flask:
    """The service.  `services` defaults to the declared CMV services (tests may pass their own)."""
    settings = settings or Settings.from_env()
    if services is None:
        from cds_service.services import SERVICES as services
    logs.configure(settings.log_level)
    if not settings.require_jwt:
        log.warning(
            "CDS_REQUIRE_JWT is off: calls are not authenticated. "
            "Set CDS_REQUIRE_JWT=true (with CDS_TRUSTED_ISSUERS) for anything but local testing."
        )

    database = Database(settings.database_url)
    try:
        database.create_all()
    except StorageUnavailable:
        # Hook calls do not need the database: serve them, and create the tables once it is back.
        log.error("the database is unavailable at start; feedback will answer 503 until it is back")

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["cds_service"] = Runtime.build(settings, services, FeedbackStore(database, background=True))
    app.register_blueprint(blueprint)
    CORS(
        app,
        origins=list(settings.cors_origins),
        allow_headers=["Authorization", "Content-Type"],
        methods=["GET", "POST", "OPTIONS"],
        max_age=600,
    )
    if settings.cors_origins != ("*",):
        @app.after_request
        def vary_by_origin(response: Response) -> Response:
            # The CORS headers depend on the caller's Origin (flask-cors says so only for some lists).
            response.vary.add("Origin")
            return response
    _register_access_log(app)  # first, so its clock also times requests refused by auth
    _register_auth(app, settings, database)
    _register_errors(app)
    _register_documents(app)
    return app


def close_connections(app: Flask) -> None:
    """Close the database connections `app` has opened (building it creates the tables).

    For a process about to fork (gunicorn's master with a preloaded app): no connection is then
    shared by two processes, and each worker opens its own on first use."""
    app.extensions["cds_service"].feedback.database.engine.dispose()


def _register_auth(app: Flask, settings: Settings, database: Database) -> None:
    if not settings.require_jwt:
        return
    verifier = JwtVerifier(settings, database)
    base = settings.public_base_url

    @app.before_request
    def require_jwt():
        # Preflights carry no credentials (browsers never send them); health and docs are public.
        if request.method == "OPTIONS" or request.path in PUBLIC_PATHS:
            return None
        # The audience is the exact URL the client called, as the client knows it.
        verifier.verify(request.headers.get("Authorization"), base + request.path)
        return None


def _register_errors(app: Flask) -> None:
    @app.errorhandler(ProtocolError)
    def protocol_error(error: ProtocolError):
        return json_response(error.outcome(), error.status)

    @app.errorhandler(Unauthorized)
    def unauthorized(error: Unauthorized):
        # The reason is for the log only: a client learns nothing from a 401 but that it failed.
        log.info("unauthorized: %s", error)
        return json_response(operation_outcome(None, "login"), 401, {"WWW-Authenticate": "Bearer"})

    @app.errorhandler(StorageUnavailable)
    def storage_unavailable(error: StorageUnavailable):
        outcome = operation_outcome("The feedback database is unavailable; try again later.", "transient")
        return json_response(outcome, 503, {"Retry-After": "30"})

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        description = error.description
        if status == 404:
            description = "Not found: GET /cds-services lists the services."
        elif status == 413:
            description = f"The request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes."
        outcome = operation_outcome(description, _HTTP_ISSUE_CODES.get(status, "processing"))
        return json_response(outcome, status, headers)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        # Where it failed is logged; what it was about (message, body, values) is not.
        log.error("unhandled error", exc_info=error)
        return json_response(operation_outcome("Internal error; it has been logged.", "exception"), 500)


def _register_access_log(app: Flask) -> None:
    @app.before_request
    def start_clock():
        g.started = time.perf_counter()

    @app.after_request
    def access_log(response: Response) -> Response:
        started = g.get("started")
        logs.log_request(
            request.method,
            request.path,
            response.status_code,
            (time.perf_counter() - started) * 1000 if started else 0.0,
            service_id=g.get("service_id"),
            cards=g.get("cards"),
        )
        return response


def _register_documents(app: Flask) -> None:
    text = files("cds_service").joinpath("openapi.yaml").read_text(encoding="utf-8")
    as_json = orjson.dumps(yaml.safe_load(text))
    health = orjson.dumps({"status": "ok", "version": __version__})

    @app.get("/healthz")
    def healthz():
        return Response(health, mimetype="application/json")

    @app.get("/openapi.yaml")
    def openapi_yaml():
        return Response(text, mimetype="application/yaml")

    @app.get("/openapi.json")
    def openapi_json():
        return Response(as_json, mimetype="application/json")
