"""The running service with CDS_REQUIRE_JWT=true: every endpoint needs a valid token, over real HTTP."""

from __future__ import annotations

import json

import jwt
import pytest
import requests
from conftest import FIXTURE_NOW, start_live_service
from jwt_issuer import JwksServer, generate_key, hs256_token, public_jwk, public_pem
from sqlalchemy import select

from cds_service.hooks.registry import CdsService
from cds_service.hooks.storage import Database, feedback
from cds_service.services import SERVICES

PROBE_CARD = {
    "uuid": "8c0d9a52-6a7e-4e55-9d1b-2d0f5b7f3a11",
    "summary": "Probe card",
    "indicator": "info",
    "source": {"label": "Probe", "topic": {"code": "cmv-status"}},
}
# A service with a fixed answer, so these tests are about authentication, not clinical logic.
PROBE = CdsService(
    id="auth-probe",
    hook="patient-view",
    title="Auth probe",
    description="Answers one fixed card.",
    prefetch={},
    handler=lambda call: [dict(PROBE_CARD)],
    required_context={"userId": str, "patientId": str},
    required_prefetch=(),
)
HOOK_BODY = {
    "hook": "patient-view",
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "context": {"userId": "Practitioner/1", "patientId": "1"},
}
FEEDBACK_BODY = {
    "feedback": [{"card": PROBE_CARD["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-26T12:00:00Z"}]
}


@pytest.fixture(scope="module")
def service(issuer, tmp_path_factory):
    database_url = f"sqlite:///{tmp_path_factory.mktemp('jwt') / 'cds.db'}"
    server, live = start_live_service(
        {
            "CDS_REQUIRE_JWT": "true",
            "CDS_TRUSTED_ISSUERS": json.dumps({issuer.issuer: issuer.jwks_url}),
            "CDS_ALLOWED_FHIR_SERVERS": "https://fhir.example.org/r4",
            "CDS_DATABASE_URL": database_url,
            "CDS_EVALUATION_TIME": FIXTURE_NOW,
            "CDS_LOG_LEVEL": "WARNING",
        },
        services=(*SERVICES, PROBE),
        public_base_url=True,
    )
    live.database = Database(database_url)
    yield live
    server.shutdown()
    live.database.engine.dispose()


# (method, path, body): the three kinds of endpoint.
ENDPOINTS = {
    "discovery": ("GET", "/cds-services", None),
    "hook": ("POST", f"/cds-services/{PROBE.id}", HOOK_BODY),
    "feedback": ("POST", f"/cds-services/{PROBE.id}/feedback", FEEDBACK_BODY),
}


def send(service, endpoint: str, authorization: str | None = None) -> requests.Response:
    method, path, body = ENDPOINTS[endpoint]
    headers = {"Authorization": authorization} if authorization else {}
    return requests.request(method, service.url(path), json=body, headers=headers, timeout=10)


def assert_bare_401(response: requests.Response) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    # Nothing about why: the reason is in the service's log only.
    assert response.json() == {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}


def stored_feedback(service) -> list[dict]:
    with service.database.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(select(feedback).order_by(feedback.c.id))]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_endpoint_refuses_a_call_without_a_token(service, endpoint):
    before = len(stored_feedback(service))
    assert_bare_401(send(service, endpoint))
    assert len(stored_feedback(service)) == before


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_a_valid_token_for_the_exact_url_is_accepted_everywhere(service, issuer, alg):
    def token_for(endpoint):
        return f"Bearer {issuer.token(service.url(ENDPOINTS[endpoint][1]), alg=alg)}"

    discovery = send(service, "discovery", token_for("discovery"))
    assert discovery.status_code == 200
    assert PROBE.id in [s["id"] for s in discovery.json()["services"]]

    hook = send(service, "hook", token_for("hook"))
    assert hook.status_code == 200
    assert hook.json()["cards"][0]["uuid"] == PROBE_CARD["uuid"]

    before = len(stored_feedback(service))
    at = {"ES384": "2026-11-26T12:01:00Z", "RS384": "2026-11-26T12:02:00Z"}[alg]  # a new item per test
    body = {"feedback": [{**FEEDBACK_BODY["feedback"][0], "outcomeTimestamp": at}]}
    response = requests.post(
        service.url(ENDPOINTS["feedback"][1]), json=body, headers={"Authorization": token_for("feedback")}, timeout=10
    )
    assert response.status_code == 200
    rows = stored_feedback(service)
    assert len(rows) == before + 1
    # The card was issued by the hook call above, so its topic is known.
    assert (rows[-1]["card_uuid"], rows[-1]["card_topic"]) == (PROBE_CARD["uuid"], "cmv-status")


def test_a_token_is_accepted_once(service, issuer):
    authorization = f"Bearer {issuer.token(service.url('/cds-services'))}"
    assert send(service, "discovery", authorization).status_code == 200
    assert_bare_401(send(service, "discovery", authorization))


def test_cors_preflight_and_health_need_no_token(service):
    preflight = requests.options(
        service.url(f"/cds-services/{PROBE.id}"),
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=10,
    )
    assert preflight.status_code == 200
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert requests.get(service.url("/healthz"), timeout=10).status_code == 200


def bad_tokens(issuer, url: str) -> dict[str, str]:
    """Authorization headers that must all be refused for a call to `url`."""
    attacker_key = generate_key("ES384")
    claims = issuer.claims(url)
    return {
        "basic-auth": "Basic dXNlcjpwYXNz",
        "garbage": "Bearer not.a.jwt",
        "alg-none": f"Bearer {jwt.encode(claims, None, algorithm='none', headers={'kid': issuer.kid('ES384')})}",
        "hs256-with-public-key": "Bearer "
        + hs256_token({"alg": "HS256", "kid": issuer.kid("RS384")}, issuer.claims(url), public_pem(issuer.private_keys["RS384"])),
        "other-endpoint-aud": f"Bearer {issuer.token(url + '/feedback')}",
        "base-url-aud": f"Bearer {issuer.token(url.rsplit('/cds-services', 1)[0])}",
        "expired": f"Bearer {issuer.token(url, iat=claims['iat'] - 900, exp=claims['iat'] - 600)}",
        "not-yet-valid": f"Bearer {issuer.token(url, nbf=claims['iat'] + 600)}",
        "no-jti": f"Bearer {issuer.token(url, jti=None)}",
        "untrusted-issuer": f"Bearer {issuer.token(url, iss='https://evil.example.org')}",
        "unknown-kid": f"Bearer {issuer.token(url, headers={'kid': 'unknown'})}",
        "foreign-key": f"Bearer {issuer.token(url, key=attacker_key)}",
        "oversized": f"Bearer {issuer.token(url, padding='x' * 20000)}",
    }


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_invalid_token_is_a_bare_401(service, issuer, endpoint):
    url = service.url(ENDPOINTS[endpoint][1])
    before = len(stored_feedback(service))
    for name, authorization in bad_tokens(issuer, url).items():
        response = send(service, endpoint, authorization)
        assert response.status_code == 401, name
        assert_bare_401(response)
    assert len(stored_feedback(service)) == before


def test_a_jku_other_than_the_trusted_jwks_is_refused_and_never_fetched(service, issuer):
    attacker_key = generate_key("ES384")
    attacker = JwksServer([public_jwk(attacker_key, "attacker", "ES384")])
    try:
        url = service.url("/cds-services")
        token = issuer.token(url, key=attacker_key, headers={"kid": "attacker", "jku": attacker.url})
        assert_bare_401(send(service, "discovery", f"Bearer {token}"))
        assert attacker.requests == 0
    finally:
        attacker.close()
