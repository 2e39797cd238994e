"""Verifying the JWT an EHR sends with every CDS Hooks call (CDS Hooks 2.0 security best practice).

The header's alg and typ and the issuer come first (the issuer looked up in the trusted list from the
unverified claims), then the claims (aud, exp, iat), then the key is taken by `kid` from that issuer's
pinned JWKS, and only then is the signature checked, with the one algorithm the key allows: a token
that fails on its claims never makes the service fetch keys.  A `jku` header is never followed: it must name the pinned JWKS.
A `jti` is accepted once per issuer, across all workers (the used_jti table).
The token itself is never logged or kept; only its jti is.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import jwt
import orjson
import requests
import urllib3
from sqlalchemy import delete

from cds_service.hooks.fhir_client import FetchError, read_within
from cds_service.hooks.storage import Database, StorageUnavailable, used_jti

log = logging.getLogger(__name__)

# CDS Hooks recommends ES384 and RS384; ES256 and RS256 are the common JOSE defaults.
# Never "none" and never HMAC (an attacker could sign with the public key as the secret).
ALLOWED_ALGORITHMS = frozenset({"ES384", "RS384", "ES256", "RS256"})
MAX_TOKEN_LENGTH = 16 * 1024
MAX_JTI_LENGTH = 255
DEFAULT_LEEWAY_SECONDS = 60
# A token lives minutes (the sandbox's live 5); remembering jtis for longer than this would only
# let a client fill the replay table.
MAX_TOKEN_LIFETIME_SECONDS = 3600
JWKS_TTL_SECONDS = 3600
# However many unknown kids arrive, an issuer's JWKS is fetched at most once per this interval.
JWKS_MIN_REFETCH_SECONDS = 30
PURGE_INTERVAL_SECONDS = 300
MAX_JWKS_BYTES = 256 * 1024

HttpGet = Callable[..., Any]  # requests.get-like: (url, timeout=..., stream=True) -> response


class Unauthorized(Exception):
    """The request is not authenticated.  The message is for the log; the client gets a bare 401."""


@dataclass
class _KeySet:
    keys: dict[str, dict] = field(default_factory=dict)  # kid -> JWK
    fetched_at: float | None = None  # monotonic time of the last successful fetch
    attempted_at: float | None = None  # monotonic time of the last attempt, successful or not
    lock: threading.Lock = field(default_factory=threading.Lock)


class JwtVerifier:
    def __init__(self, settings, database: Database, http_get: HttpGet | None = None):
        self.trusted_issuers = dict(settings.trusted_issuers)
        self.timeout = settings.fhir_timeout
        self.leeway = getattr(settings, "jwt_leeway", DEFAULT_LEEWAY_SECONDS)
        self.database = database
        self.http_get = http_get or requests.get
        self._key_sets = {issuer: _KeySet() for issuer in self.trusted_issuers}
        self._next_purge = 0.0

    def verify(self, authorization: str | None, audience: str) -> dict:
        """The verified claims of the bearer token, or Unauthorized saying why (for the log)."""
        token = _bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthorized("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:  # a list or object is no algorithm
            raise Unauthorized(f"algorithm {_shown(alg)} not allowed")
        for claim in ("exp", "iat", "nbf"):
            # RFC 7519 NumericDate is a JSON number: PyJWT would read "1795801234" as one.
            value = unverified.get(claim)
            if claim in unverified and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise Unauthorized(f"{claim} is not a number")
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer not in self.trusted_issuers:
            raise Unauthorized(f"untrusted issuer {_shown(issuer)}")
        jwks_url = self.trusted_issuers[issuer]
        if "jku" in header and header["jku"] != jwks_url:
            raise Unauthorized(f"jku is not the JWKS trusted for {issuer}")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.upper() != "JWT":  # CDS Hooks: the fixed string "JWT"
            raise Unauthorized(f"typ {_shown(typ)} is not JWT")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("no kid in the token header")
        # The spec's order: iss, aud, exp, then the signature.  The claims are checked before any key is
        # looked up, so an expired or misdirected token never makes the service fetch the issuer's keys.
        self._claims(token, None, alg, audience, issuer)
        claims = self._claims(token, self._key(issuer, kid, alg), alg, audience, issuer)
        self._use_jti(issuer, claims)
        return claims

    def _claims(self, token: str, key: jwt.PyJWK | None, alg: str, audience: str, issuer: str) -> dict:
        """The token's claims, checked (iss, aud, exp, iat, jti present); its signature too, given the key."""
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=issuer,
                leeway=self.leeway,
                options={
                    "verify_signature": key is not None,
                    "verify_aud": True,
                    "verify_iss": True,
                    "verify_exp": True,
                    "verify_iat": True,
                    "verify_nbf": True,
                    "require": ["iss", "aud", "exp", "iat", "jti"],
                    "strict_aud": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as error:
            raise Unauthorized(f"token rejected: {error.__class__.__name__}") from None

    def _key(self, issuer: str, kid: str, alg: str) -> jwt.PyJWK:
        jwk = self._jwk(issuer, kid)
        if jwk.get("alg", alg) != alg or jwk.get("use", "sig") != "sig":
            raise Unauthorized(f"key {_shown(kid)} of {issuer} is not for {alg} signatures")
        try:
            # PyJWK checks that the key type and curve fit the algorithm.
            return jwt.PyJWK(jwk, algorithm=alg)
        except jwt.PyJWTError:
            raise Unauthorized(f"key {_shown(kid)} of {issuer} does not fit {alg}") from None

    def _jwk(self, issuer: str, kid: str) -> dict:
        """The JWK for kid, fetching the JWKS when it is stale or (rate-limited) when kid is new."""
        key_set = self._key_sets[issuer]
        with key_set.lock:
            now = time.monotonic()
            stale = key_set.fetched_at is None or now - key_set.fetched_at > JWKS_TTL_SECONDS
            may_fetch = key_set.attempted_at is None or now - key_set.attempted_at >= JWKS_MIN_REFETCH_SECONDS
            if may_fetch and (stale or kid not in key_set.keys):
                key_set.attempted_at = now
                self._fetch(issuer, key_set, now)
            if kid not in key_set.keys:
                raise Unauthorized(f"unknown kid {_shown(kid)} for {issuer}")
            return key_set.keys[kid]

    def _fetch(self, issuer: str, key_set: _KeySet, now: float) -> None:
        # A failed fetch keeps the keys already known: a JWKS outage must not lock out an EHR
        # whose key has not changed.
        url = self.trusted_issuers[issuer]
        try:
            deadline = time.monotonic() + self.timeout
            with self.http_get(url, timeout=self.timeout, stream=True) as response:
                response.raise_for_status()
                keys = orjson.loads(read_within(response, deadline, MAX_JWKS_BYTES))["keys"]
            key_set.keys = {k["kid"]: k for k in keys if isinstance(k, dict) and isinstance(k.get("kid"), str)}
            key_set.fetched_at = now
        except (requests.RequestException, urllib3.exceptions.HTTPError, FetchError, ValueError, KeyError,
                TypeError) as error:
            log.warning("could not fetch the JWKS of %s from %s: %s", issuer, url, error.__class__.__name__)

    def _use_jti(self, issuer: str, claims: dict) -> None:
        """Record the jti; a jti already recorded and not yet expired is a replay."""
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
            raise Unauthorized("jti must be a non-empty string")
        now = int(time.time())
        exp = int(claims["exp"])  # PyJWT has checked that it is an integer
        if exp - now > MAX_TOKEN_LIFETIME_SECONDS:
            raise Unauthorized("token expires too far in the future")
        # Kept until the token could no longer pass the exp check anyway.
        expires_at = exp + int(self.leeway) + 1
        # A row left over from an expired token with the same jti is taken over, not a replay.
        statement = (
            self.database.insert(used_jti)
            .values(jti=jti, issuer=issuer, expires_at=expires_at)
            .on_conflict_do_update(
                index_elements=[used_jti.c.jti, used_jti.c.issuer],
                set_={"expires_at": expires_at},
                where=used_jti.c.expires_at < now,
            )
            .returning(used_jti.c.jti)  # a row back only when the jti was free
        )
        try:
            with self.database.begin() as conn:
                if conn.execute(statement).first() is None:
                    raise Unauthorized(f"replayed jti from {issuer}")
                if time.monotonic() >= self._next_purge:
                    self._next_purge = time.monotonic() + PURGE_INTERVAL_SECONDS
                    conn.execute(delete(used_jti).where(used_jti.c.expires_at < now))
        except StorageUnavailable:
            # Without the replay check the token cannot be accepted.
            raise Unauthorized("replay check unavailable (database down)") from None


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("no Authorization header")
    if len(authorization) > MAX_TOKEN_LENGTH + len("Bearer "):
        raise Unauthorized("token too long")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Authorization is not a Bearer token")
    return token


def _shown(value: Any) -> str:
    """A header or claim value for the log: the client chose it, so it is cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
