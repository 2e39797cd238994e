"""JWT attacks against the running service, timed: every one is a bare 401 in well under 2 s.

What tests/unit/hooks/test_auth.py and tests/integration/test_jwt_http.py already prove (each attack
refused, jku never fetched, replay refused between two verifiers) is not repeated; this adds the clock
to every attack over HTTP, JWKS endpoints that fail in the ways a FHIR server does (error status,
garbage, a connection held open, a body that trickles), and replay across two running app instances
that share one database, as two hosts behind a load balancer do.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
import requests
from conftest import FIXTURE_NOW, LiveService, start_live_service
from jwt_issuer import TestIssuer, generate_key, hs256_token, public_pem


from .faulty_fhir import FaultyFhirServer, closed_port

PUBLIC_URL = "https://cds.example.org"  # what the EHR calls: the load balancer in front of both hosts
QUICK = 2.0  # seconds: a refusal must never take longer


@pytest.fixture(scope="module")
def jwks_faults():
    server = FaultyFhirServer()
    server.mode.update({"hang": "hang", "drip": "drip", "error": "status:500", "garbage": "not-json"})
    server.slow_seconds = 30
    yield server
    server.close()


# Issuers whose JWKS endpoint fails, each in its own way (the path picks the fault).
FAILING_JWKS = ("refused", "hang", "drip", "error", "garbage")


def failing_issuer(name: str) -> str:
    return f"https://{name}.ehr.example"


@pytest.fixture(scope="module")
def instances(issuer, jwks_faults, tmp_path_factory):
    """Two app instances (two hosts) sharing one SQLite database, both answering for PUBLIC_URL."""
    base = jwks_faults.base_url.removesuffix("/fhir")
    trusted = {issuer.issuer: issuer.jwks_url}
    for name in FAILING_JWKS:
        trusted[failing_issuer(name)] = (
            f"http://127.0.0.1:{closed_port()}/jwks.json" if name == "refused" else f"{base}/fhir/{name}/jwks.json"
        )
    environ = {
        "CDS_REQUIRE_JWT": "true",
        "CDS_TRUSTED_ISSUERS": json.dumps(trusted),
        "CDS_PUBLIC_BASE_URL": PUBLIC_URL,
        "CDS_ALLOWED_FHIR_SERVERS": "https://fhir.example.org/r4",
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('jwt') / 'shared.db'}",
        "CDS_EVALUATION_TIME": FIXTURE_NOW,
        "CDS_FHIR_TIMEOUT": "1.0",  # also the JWKS fetch timeout
    }
    started = [start_live_service(environ) for _ in range(2)]
    yield [live for _, live in started]
    for server, _ in started:
        server.shutdown()


DISCOVERY = "/cds-services"


def get(instance: LiveService, authorization: str | None) -> tuple[int, float, requests.Response]:
    headers = {"Authorization": authorization} if authorization else {}
    started = time.monotonic()
    response = requests.get(instance.url(DISCOVERY), headers=headers, timeout=QUICK + 3)
    return response.status_code, time.monotonic() - started, response


def attacks(issuer: TestIssuer, audience: str) -> dict[str, str]:
    claims = issuer.claims(audience)
    now = claims["iat"]
    return {
        "alg none": jwt.encode(claims, None, algorithm="none", headers={"kid": issuer.kid("ES384")}),
        "HS256 signed with the public key": hs256_token(
            {"alg": "HS256", "typ": "JWT", "kid": issuer.kid("RS384")}, issuer.claims(audience),
            public_pem(issuer.private_keys["RS384"]),
        ),
        "expired": issuer.token(audience, iat=now - 900, exp=now - 600),
        "not yet valid": issuer.token(audience, nbf=now + 600),
        "issued in the future": issuer.token(audience, iat=now + 3600, exp=now + 3900),
        "lives too long": issuer.token(audience, exp=now + 30 * 86400),
        "wrong aud": issuer.token("https://other-cds.example.org/cds-services"),
        "aud of the internal address": issuer.token(audience.replace(PUBLIC_URL, "http://127.0.0.1")),
        "unknown issuer": issuer.token(audience, iss="https://evil.example.org"),
        "issuer spelled with a slash": issuer.token(audience, iss=issuer.issuer + "/"),
        "unknown kid": issuer.token(audience, headers={"kid": "no-such-key"}),
        "kid with path traversal": issuer.token(audience, headers={"kid": "../../jwks.json"}),
        "jku not the trusted URL": issuer.token(audience, headers={"jku": "https://evil.example.org/jwks.json"}),
        "signed by another key": issuer.token(audience, key=generate_key("ES384")),
        "oversized (over 16 KB)": issuer.token(audience, padding="x" * 20_000),
        "no exp": issuer.token(audience, exp=None),
        "jti an object": issuer.token(audience, jti={"a": 1}),
        "jti huge": issuer.token(audience, jti="j" * 10_000),
        "truncated signature": issuer.token(audience)[:-20],
        "three dots": "a.b.c.d",
    }


def test_every_attack_is_a_quick_bare_401(instances, issuer):
    audience = PUBLIC_URL + DISCOVERY
    slow = {}
    for name, token in attacks(issuer, audience).items():
        status, elapsed, response = get(instances[0], f"Bearer {token}")
        assert status == 401, (name, response.text)
        assert response.json() == {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}
        if elapsed >= QUICK:
            slow[name] = round(elapsed, 2)
    assert slow == {}, slow
    # The service is not worn down by them: a valid token still passes.
    assert get(instances[0], f"Bearer {issuer.token(audience)}")[0] == 200


@pytest.mark.parametrize("name", FAILING_JWKS)
def test_a_failing_jwks_endpoint_is_a_quick_401(instances, issuer, name):
    token = issuer.token(PUBLIC_URL + DISCOVERY, iss=failing_issuer(name))
    try:
        status, elapsed, _ = get(instances[0], f"Bearer {token}")
    except requests.Timeout:
        pytest.fail(f"JWKS '{name}': no answer within {QUICK + 3} s")
    assert status == 401
    assert elapsed < QUICK, f"JWKS '{name}': {elapsed:.1f} s"
    # Meanwhile the trusted issuer whose JWKS works is not held up.
    assert get(instances[1], f"Bearer {issuer.token(PUBLIC_URL + DISCOVERY)}")[0] == 200


def test_a_token_replayed_to_the_other_host_is_refused(instances, issuer):
    token = f"Bearer {issuer.token(PUBLIC_URL + DISCOVERY)}"
    assert get(instances[0], token)[0] == 200
    assert get(instances[1], token)[0] == 401
    assert get(instances[0], token)[0] == 401


def test_tokens_sent_to_both_hosts_at_once_are_accepted_once_each(instances, issuer):
    tokens = [f"Bearer {issuer.token(PUBLIC_URL + DISCOVERY)}" for _ in range(10)]
    jobs = [(instance, token) for token in tokens for instance in instances for _ in range(2)]  # 4 tries each
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda job: (job[1], get(job[0], job[1])[0]), jobs))
    for token in tokens:
        assert sorted(status for sent, status in statuses if sent == token) == [200, 401, 401, 401]
