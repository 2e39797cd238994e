"""Service settings: one frozen object read from the environment at start.

Invalid values fail at start with a message naming the variable, never at the first request.
The clinical policy (CDS_POLICY_*) is read by `Policy.from_env` and carried here as `policy`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cds_service.policy import Policy

# Every variable Settings reads (besides CDS_POLICY_*), with its default as documented in the README.
# tests/test_compose.py checks docker-compose.yml against this tuple.
ENV_VARS = (
    "CDS_DATABASE_URL",
    "CDS_REQUIRE_JWT",
    "CDS_TRUSTED_ISSUERS",
    "CDS_PUBLIC_BASE_URL",
    "CDS_FHIR_TIMEOUT",
    "CDS_ALLOWED_FHIR_SERVERS",
    "CDS_MAX_BODY_BYTES",
    "CDS_CORS_ORIGINS",
    "CDS_EVALUATION_TIME",
    "CDS_LOG_LEVEL",
)

DEFAULT_DATABASE_URL = "sqlite:///data/cds.db"  # relative to the working directory
DEFAULT_FHIR_TIMEOUT = 8.0
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """A setting with an invalid value, or a combination the service refuses to start with."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    require_jwt: bool = False
    trusted_issuers: Mapping[str, str] = field(default_factory=dict)  # iss -> JWKS URL
    public_base_url: str | None = None  # as configured, without a trailing slash
    fhir_timeout: float = DEFAULT_FHIR_TIMEOUT  # seconds, total budget for a call's FHIR fetches
    allowed_fhir_servers: tuple[str, ...] = ()  # normalised base URLs; empty: any http(s) server
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    cors_origins: tuple[str, ...] = ("*",)
    evaluation_time: datetime | None = None  # timezone-aware; None: the clock
    log_level: str = "INFO"
    policy: Policy = field(default_factory=Policy)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        environ = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = environ.get(name)
            return value.strip() if value and value.strip() else None

        require_jwt = _boolean("CDS_REQUIRE_JWT", get("CDS_REQUIRE_JWT"), default=False)
        settings = cls(
            database_url=_database_url(get("CDS_DATABASE_URL") or DEFAULT_DATABASE_URL),
            require_jwt=require_jwt,
            trusted_issuers=_trusted_issuers(get("CDS_TRUSTED_ISSUERS")),
            public_base_url=_public_base_url(get("CDS_PUBLIC_BASE_URL")),
            fhir_timeout=_number("CDS_FHIR_TIMEOUT", get("CDS_FHIR_TIMEOUT"), DEFAULT_FHIR_TIMEOUT, float),
            allowed_fhir_servers=tuple(
                _url("CDS_ALLOWED_FHIR_SERVERS", item)
                for item in (get("CDS_ALLOWED_FHIR_SERVERS") or "").split(",")
                if item.strip()
            ),
            max_body_bytes=_number(
                "CDS_MAX_BODY_BYTES", get("CDS_MAX_BODY_BYTES"), DEFAULT_MAX_BODY_BYTES, int
            ),
            cors_origins=tuple(o.strip() for o in (get("CDS_CORS_ORIGINS") or "*").split(",") if o.strip()),
            evaluation_time=_datetime("CDS_EVALUATION_TIME", get("CDS_EVALUATION_TIME")),
            log_level=_log_level(get("CDS_LOG_LEVEL")),
            policy=_policy(environ),
        )
        if require_jwt:
            missing = [
                name
                for name, value in (
                    ("CDS_TRUSTED_ISSUERS", settings.trusted_issuers),
                    ("CDS_PUBLIC_BASE_URL", settings.public_base_url),
                    ("CDS_ALLOWED_FHIR_SERVERS", settings.allowed_fhir_servers),
                )
                if not value
            ]
            if missing:
                raise SettingsError(f"CDS_REQUIRE_JWT=true also requires {', '.join(missing)}")
        return settings

    def fhir_server_allowed(self, base_url: str) -> bool:
        """Whether the service may contact this fhirServer (any http(s) server when no allow-list)."""
        return not self.allowed_fhir_servers or normalise_base_url(base_url) in self.allowed_fhir_servers


def normalise_base_url(url: str) -> str:
    """Scheme and host lower-cased, default port and trailing slash dropped: one spelling per server."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{parts.path.rstrip('/')}"


def is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.username


def is_base_url(value: str) -> bool:
    """An http(s) URL that can be a base for paths: no query, fragment or path parameters, no dot
    segment (however encoded).  "https://ehr/fhir?_format=json" + "/Observation?patient=1" would
    search without the patient, and "/fhir/.." would leave the base."""
    if not is_http_url(value) or not value.isprintable() or any(c.isspace() for c in value):
        return False
    parts = urlsplit(value)
    if parts.query or parts.fragment or "?" in value or "#" in value or ";" in parts.path or "%25" in parts.path:
        return False  # an encoded "%" could decode to a dot segment on a server that decodes twice
    return not has_dot_segment(parts.path)


def has_dot_segment(path: str) -> bool:
    """Whether a URL path has a "." or ".." segment, however encoded ("%2e%2e", "%252e%252e" for a server that
    decodes twice, a backslash for "/", path parameters: "..;")."""
    segments = {segment.split(";", 1)[0] for segment in unquote(unquote(path)).replace("\\", "/").split("/")}
    return "." in segments or ".." in segments


def _url(name: str, value: str) -> str:
    if not is_http_url(value.strip()):
        raise SettingsError(f"{name}: {value.strip()!r} is not an http(s) URL")
    return normalise_base_url(value)


def _public_base_url(value: str | None) -> str | None:
    # Kept as written (not normalised): a JWT's aud must equal it, plus the path, character for character.
    if value is None:
        return None
    _url("CDS_PUBLIC_BASE_URL", value)
    return value.rstrip("/")


def _boolean(name: str, value: str | None, default: bool) -> bool:
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}: {value!r} is not a boolean (true/false)")


def _number(name: str, value: str | None, default, kind):
    if value is None:
        return default
    try:
        number = kind(value)
    except ValueError:
        raise SettingsError(f"{name}: {value!r} is not a {'whole ' if kind is int else ''}number") from None
    if not number > 0 or number != number:
        raise SettingsError(f"{name}: must be greater than 0")
    return number


def _trusted_issuers(value: str | None) -> dict[str, str]:
    if value is None:
        return {}
    try:
        issuers = json.loads(value)
    except ValueError:
        raise SettingsError("CDS_TRUSTED_ISSUERS: not JSON (expected an object issuer -> JWKS URL)") from None
    if not isinstance(issuers, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and is_http_url(v) for k, v in issuers.items()
    ):
        raise SettingsError("CDS_TRUSTED_ISSUERS: expected a JSON object mapping issuer to JWKS http(s) URL")
    return issuers


def _datetime(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(f"{name}: {value!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise SettingsError(f"{name}: {value!r} needs a time zone (e.g. 2026-11-26T12:00:00Z)")
    return moment.astimezone(timezone.utc)


def _database_url(value: str) -> str:
    try:
        make_url(value)
    except ArgumentError:
        # The value is not echoed: it may hold a password.
        raise SettingsError("CDS_DATABASE_URL: not a SQLAlchemy URL (dialect+driver://...)") from None
    return value


def _log_level(value: str | None) -> str:
    level = (value or "INFO").upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"CDS_LOG_LEVEL: {value!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def _policy(environ: Mapping[str, str]) -> Policy:
    try:
        return Policy.from_env(environ)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
