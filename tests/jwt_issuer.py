"""A test EHR that signs CDS Hooks JWTs, with its JWKS served over loopback HTTP.

Used by the unit tests of cds_service.hooks.auth and by the HTTP tests of the running service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1}


def generate_key(alg: str, rsa_bits: int = 2048):
    if alg in CURVES:
        return ec.generate_private_key(CURVES[alg]())
    return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)


def public_jwk(private_key, kid: str, alg: str | None) -> dict:
    is_ec = isinstance(private_key, ec.EllipticCurvePrivateKey)
    algorithm = jwt.algorithms.ECAlgorithm if is_ec else jwt.algorithms.RSAAlgorithm
    jwk = algorithm.to_jwk(private_key.public_key(), as_dict=True)
    jwk.update({"kid": kid, "use": "sig"})
    if alg:
        jwk["alg"] = alg
    return jwk


def public_pem(private_key) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_token(header: dict, claims: dict, secret: bytes) -> str:
    """An HMAC-signed token built by hand (PyJWT refuses public keys as HMAC secrets, attackers don't)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


class JwksServer:
    """Serves a JWKS at /jwks.json on 127.0.0.1; counts requests; can answer 503 (`down`)."""

    def __init__(self, keys: list[dict]):
        self.keys = keys
        self.requests = 0
        self.down = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                server.requests += 1
                if server.down or self.path != "/jwks.json":
                    self.send_error(503 if server.down else 404)
                    return
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}/jwks.json"
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class TestIssuer:
    """An EHR with one signing key per algorithm (kid = "<alg>-key") and its JWKS server."""

    __test__ = False  # not a pytest test class

    def __init__(self, issuer: str = "https://ehr.example.org", algorithms=("ES384", "RS384", "ES256", "RS256")):
        self.issuer = issuer
        self.private_keys = {alg: generate_key(alg) for alg in algorithms}
        self.jwks = JwksServer([public_jwk(key, self.kid(alg), alg) for alg, key in self.private_keys.items()])

    @property
    def jwks_url(self) -> str:
        return self.jwks.url

    @staticmethod
    def kid(alg: str) -> str:
        return f"{alg}-key"

    def claims(self, audience, lifetime: int = 300, **overrides) -> dict:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": audience, "iat": now, "exp": now + lifetime, "jti": str(uuid.uuid4())}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}  # None: leave the claim out

    def token(self, audience, alg: str = "ES384", key=None, headers: dict | None = None, **claims) -> str:
        """A signed token; `claims` override the defaults (None removes one), `headers` add to kid/typ."""
        header = {"kid": self.kid(alg), "typ": "JWT", **(headers or {})}
        return jwt.encode(
            self.claims(audience, **claims), key or self.private_keys[alg], algorithm=alg, headers=header
        )

    def close(self) -> None:
        self.jwks.close()
