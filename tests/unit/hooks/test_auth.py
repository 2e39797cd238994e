"""JWT client authentication: real keys, a real JWKS over loopback HTTP, a real SQLite replay table."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import pytest
from jwt_issuer import JwksServer, TestIssuer, generate_key, hs256_token, public_jwk, public_pem
from sqlalchemy import func, insert, select

from cds_service.hooks import auth
from cds_service.hooks.auth import JwtVerifier, Unauthorized
from cds_service.hooks.storage import Database, used_jti
from cds_service.settings import Settings

AUDIENCE = "https://cds.example.org/cds-services/cmv-order-select"


@pytest.fixture(scope="module")
def issuer():
    ehr = TestIssuer()
    yield ehr
    ehr.close()


@pytest.fixture
def database(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'auth.db'}")
    db.create_all()
    return db


def make_verifier(database, trusted: dict[str, str], timeout: float = 2.0) -> JwtVerifier:
    return JwtVerifier(Settings(trusted_issuers=trusted, fhir_timeout=timeout), database)


@pytest.fixture
def verifier(issuer, database):
    return make_verifier(database, {issuer.issuer: issuer.jwks_url})


def bearer(token: str) -> str:
    return f"Bearer {token}"


@pytest.mark.parametrize("alg", ["ES384", "RS384", "ES256", "RS256"])
def test_accepts_a_token_signed_with_a_trusted_key(verifier, issuer, alg):
    token = issuer.token(AUDIENCE, alg=alg)

    claims = verifier.verify(bearer(token), AUDIENCE)

    assert claims["iss"] == issuer.issuer
    assert claims["aud"] == AUDIENCE


def test_accepts_an_audience_list_containing_the_endpoint(verifier, issuer):
    token = issuer.token(AUDIENCE, aud=["https://other.example.org", AUDIENCE])
    assert verifier.verify(bearer(token), AUDIENCE)["jti"]


def test_accepts_jku_naming_the_trusted_jwks_like_the_sandbox(verifier, issuer):
    token = issuer.token(AUDIENCE, headers={"jku": issuer.jwks_url})
    assert verifier.verify(bearer(token), AUDIENCE)["iss"] == issuer.issuer


def test_accepts_an_rsa_key_published_without_alg(database):
    # Many JWKS omit "alg"; the header's RS384 is then checked against the key type only.
    ehr = TestIssuer(issuer="https://no-alg.example.org", algorithms=("RS384",))
    try:
        ehr.jwks.keys = [public_jwk(ehr.private_keys["RS384"], ehr.kid("RS384"), alg=None)]
        verifier = make_verifier(database, {ehr.issuer: ehr.jwks_url})
        assert verifier.verify(bearer(ehr.token(AUDIENCE, alg="RS384")), AUDIENCE)
    finally:
        ehr.close()


def rejected(verifier, authorization, audience=AUDIENCE) -> str:
    with pytest.raises(Unauthorized) as excinfo:
        verifier.verify(authorization, audience)
    return str(excinfo.value)


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Bearer not-a-jwt", "Bearer a.b.c"],
)
def test_rejects_a_missing_or_malformed_authorization(verifier, authorization):
    rejected(verifier, authorization)


@pytest.mark.parametrize("alg", [["ES384"], {"a": 1}, 384, None])
def test_rejects_an_alg_that_is_not_a_string_before_any_key_is_needed(verifier, alg):
    import base64
    import json

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    token = f"{part({'alg': alg, 'kid': 'k1'})}.{part({'iss': 'x'})}.AAAA"
    assert "not allowed" in rejected(verifier, bearer(token))


def test_rejects_alg_none(verifier, issuer):
    import jwt

    token = jwt.encode(issuer.claims(AUDIENCE), None, algorithm="none", headers={"kid": issuer.kid("ES384")})
    assert "not allowed" in rejected(verifier, bearer(token))


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_rejects_hmac_signed_with_the_public_key(verifier, issuer, alg):
    # The classic confusion attack: the public key (which anyone can fetch) used as an HMAC secret.
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.kid(alg)}
    token = hs256_token(header, issuer.claims(AUDIENCE), public_pem(issuer.private_keys[alg]))
    assert "not allowed" in rejected(verifier, bearer(token))


def test_rejects_a_signature_by_another_key_under_a_trusted_kid(verifier, issuer):
    token = issuer.token(AUDIENCE, key=generate_key("ES384"))
    assert "InvalidSignatureError" in rejected(verifier, bearer(token))


def test_rejects_an_algorithm_the_key_is_not_for(verifier, issuer):
    # Header says ES384 but the kid names the RS384 key.
    token = issuer.token(AUDIENCE, alg="ES384", headers={"kid": issuer.kid("RS384")})
    assert "is not for ES384" in rejected(verifier, bearer(token))


def test_rejects_an_ec_key_on_the_wrong_curve(database):
    # A P-256 key published without alg; the token claims ES384 (P-384) for it.
    ehr = TestIssuer(issuer="https://curves.example.org", algorithms=("ES256",))
    try:
        ehr.jwks.keys = [public_jwk(ehr.private_keys["ES256"], "p256", alg=None)]
        verifier = make_verifier(database, {ehr.issuer: ehr.jwks_url})
        token = ehr.token(AUDIENCE, alg="ES256", headers={"kid": "p256"})
        header = base64.urlsafe_b64encode(json.dumps({"alg": "ES384", "kid": "p256", "typ": "JWT"}).encode()).rstrip(b"=")
        forged = header.decode() + token[token.index("."):]
        assert "InvalidKeyError" in rejected(verifier, bearer(forged))
    finally:
        ehr.close()


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_rejects_a_short_rsa_key(database):
    ehr = TestIssuer(issuer="https://weak.example.org", algorithms=())
    try:
        weak = generate_key("RS384", rsa_bits=1024)
        ehr.jwks.keys = [public_jwk(weak, "weak", "RS384")]
        verifier = make_verifier(database, {ehr.issuer: ehr.jwks_url})
        token = ehr.token(AUDIENCE, alg="RS384", key=weak, headers={"kid": "weak"})
        assert "InvalidKeyError" in rejected(verifier, bearer(token))
    finally:
        ehr.close()


@pytest.mark.parametrize(
    "claims, reason",
    [
        ({"exp": int(time.time()) - 120, "iat": int(time.time()) - 420}, "ExpiredSignatureError"),
        ({"nbf": int(time.time()) + 600}, "ImmatureSignatureError"),
        ({"iat": int(time.time()) + 600, "exp": int(time.time()) + 900}, "ImmatureSignatureError"),
        ({"aud": "https://cds.example.org/cds-services/cmv-order-sign"}, "InvalidAudienceError"),
        ({"aud": AUDIENCE + "/"}, "InvalidAudienceError"),
        ({"exp": None}, "MissingRequiredClaimError"),
        ({"iat": None}, "MissingRequiredClaimError"),
        ({"aud": None}, "MissingRequiredClaimError"),
        ({"jti": None}, "MissingRequiredClaimError"),
        ({"jti": 12345}, "InvalidJTIError"),
        ({"jti": ""}, "jti must be"),
        ({"exp": int(time.time()) + 7200}, "too far in the future"),
        ({"exp": str(int(time.time()) + 200)}, "exp is not a number"),  # RFC 7519 NumericDate: a JSON number
        ({"iat": f" {int(time.time())} "}, "iat is not a number"),
        ({"nbf": True}, "nbf is not a number"),
    ],
    ids=[
        "expired", "nbf-future", "iat-future", "other-endpoint", "trailing-slash",
        "no-exp", "no-iat", "no-aud", "no-jti", "jti-not-string", "jti-empty", "lifetime-2h",
        "exp-string", "iat-string", "nbf-bool",
    ],
)
def test_rejects_invalid_claims(verifier, issuer, claims, reason):
    assert reason in rejected(verifier, bearer(issuer.token(AUDIENCE, **claims)))


def test_leeway_tolerates_small_clock_skew(verifier, issuer):
    now = int(time.time())
    token = issuer.token(AUDIENCE, iat=now + 30, exp=now - 30 + 300, nbf=now + 30)
    assert verifier.verify(bearer(token), AUDIENCE)


def test_rejects_an_untrusted_issuer_without_fetching_anything(verifier, issuer):
    before = issuer.jwks.requests
    token = issuer.token(AUDIENCE, iss="https://evil.example.org")
    assert "untrusted issuer" in rejected(verifier, bearer(token))
    assert issuer.jwks.requests == before


def test_rejects_an_oversized_token(verifier, issuer):
    token = issuer.token(AUDIENCE, padding="x" * (auth.MAX_TOKEN_LENGTH + 1))
    assert "too long" in rejected(verifier, bearer(token))


def test_never_follows_an_untrusted_jku(verifier, issuer):
    # The attacker signs with their own key and points jku at their own JWKS.
    attacker_key = generate_key("ES384")
    attacker = JwksServer([public_jwk(attacker_key, "attacker", "ES384")])
    try:
        token = issuer.token(AUDIENCE, key=attacker_key, headers={"kid": "attacker", "jku": attacker.url})
        assert "jku" in rejected(verifier, bearer(token))
        assert attacker.requests == 0
    finally:
        attacker.close()


def test_unknown_kid_refetches_once_then_is_rate_limited(issuer, database):
    verifier = make_verifier(database, {issuer.issuer: issuer.jwks_url})
    before = issuer.jwks.requests
    assert verifier.verify(bearer(issuer.token(AUDIENCE)), AUDIENCE)
    assert issuer.jwks.requests == before + 1  # first use: fetched once

    for kid in ("random-1", "random-2", "random-3"):
        assert "unknown kid" in rejected(verifier, bearer(issuer.token(AUDIENCE, headers={"kid": kid})))
    # The first unknown kid could have been a rotation, but the JWKS was fetched moments ago.
    assert issuer.jwks.requests == before + 1
    assert verifier.verify(bearer(issuer.token(AUDIENCE)), AUDIENCE)  # cached keys still serve


def test_a_rotated_key_is_found_by_one_refetch(database, monkeypatch):
    monkeypatch.setattr(auth, "JWKS_MIN_REFETCH_SECONDS", 0)
    ehr = TestIssuer(issuer="https://rotating.example.org", algorithms=("ES384",))
    try:
        verifier = make_verifier(database, {ehr.issuer: ehr.jwks_url})
        assert verifier.verify(bearer(ehr.token(AUDIENCE)), AUDIENCE)
        new_key = generate_key("ES384")
        ehr.jwks.keys = ehr.jwks.keys + [public_jwk(new_key, "rotated", "ES384")]

        token = ehr.token(AUDIENCE, key=new_key, headers={"kid": "rotated"})
        assert verifier.verify(bearer(token), AUDIENCE)
        assert ehr.jwks.requests == 2
        assert "unknown kid" in rejected(verifier, bearer(ehr.token(AUDIENCE, headers={"kid": "gone"})))
        assert ehr.jwks.requests == 3  # one refetch per unknown kid, never a loop
    finally:
        ehr.close()


def test_known_keys_survive_a_jwks_outage(database, monkeypatch):
    monkeypatch.setattr(auth, "JWKS_MIN_REFETCH_SECONDS", 0)
    monkeypatch.setattr(auth, "JWKS_TTL_SECONDS", 0)
    ehr = TestIssuer(issuer="https://flaky.example.org", algorithms=("ES384",))
    try:
        verifier = make_verifier(database, {ehr.issuer: ehr.jwks_url})
        assert verifier.verify(bearer(ehr.token(AUDIENCE)), AUDIENCE)
        ehr.jwks.down = True
        time.sleep(0.01)  # the cached JWKS is now past its (zero) TTL

        assert verifier.verify(bearer(ehr.token(AUDIENCE)), AUDIENCE)
        assert ehr.jwks.requests == 2  # it did try to refresh
    finally:
        ehr.close()


@pytest.fixture
def unresponsive_url():
    """A port that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/jwks.json"
    sock.close()


def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/jwks.json"


def test_jwks_unreachable_fails_fast(issuer, database, unresponsive_url):
    for url, timeout in ((closed_port_url(), 2.0), (unresponsive_url, 0.5)):
        verifier = make_verifier(database, {issuer.issuer: url}, timeout=timeout)
        started = time.monotonic()
        assert "unknown kid" in rejected(verifier, bearer(issuer.token(AUDIENCE)))
        assert time.monotonic() - started < timeout + 1
        # A second call within the refetch interval does not wait on the JWKS again.
        started = time.monotonic()
        rejected(verifier, bearer(issuer.token(AUDIENCE)))
        assert time.monotonic() - started < 0.2


def count_jtis(database) -> int:
    with database.begin() as conn:
        return conn.execute(select(func.count()).select_from(used_jti)).scalar_one()


def test_replayed_jti_is_rejected_across_workers(issuer, database_url):
    # Two workers: two verifiers, two engines, one database.
    trusted = {issuer.issuer: issuer.jwks_url}
    worker_1, worker_2 = make_verifier(Database(database_url), trusted), make_verifier(Database(database_url), trusted)
    token = issuer.token(AUDIENCE)

    assert worker_1.verify(bearer(token), AUDIENCE)
    assert "replayed" in rejected(worker_2, bearer(token))
    assert "replayed" in rejected(worker_1, bearer(token))
    assert worker_2.verify(bearer(issuer.token(AUDIENCE)), AUDIENCE)  # a new jti is fine
    assert count_jtis(Database(database_url)) == 2


def test_a_token_presented_to_many_workers_at_once_is_accepted_once(issuer, database_url):
    workers = [make_verifier(Database(database_url), {issuer.issuer: issuer.jwks_url}) for _ in range(6)]
    token = issuer.token(AUDIENCE)
    barrier = threading.Barrier(len(workers))
    outcomes = []

    def present(worker):
        barrier.wait()
        try:
            worker.verify(bearer(token), AUDIENCE)
            outcomes.append("accepted")
        except Unauthorized as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=present, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["accepted"] + [f"replayed jti from {issuer.issuer}"] * 5
    for worker in workers:
        worker.database.engine.dispose()


def test_same_jti_from_another_issuer_is_not_a_replay(issuer, database):
    other = TestIssuer(issuer="https://other-ehr.example.org", algorithms=("ES384",))
    try:
        verifier = make_verifier(database, {issuer.issuer: issuer.jwks_url, other.issuer: other.jwks_url})
        assert verifier.verify(bearer(issuer.token(AUDIENCE, jti="shared-jti")), AUDIENCE)
        assert verifier.verify(bearer(other.token(AUDIENCE, jti="shared-jti")), AUDIENCE)
    finally:
        other.close()


def test_a_jti_whose_earlier_token_expired_is_accepted_and_expired_rows_are_purged(verifier, issuer, database):
    long_ago = int(time.time()) - 3600
    with database.begin() as conn:
        conn.execute(insert(used_jti), [
            {"jti": "reused", "issuer": issuer.issuer, "expires_at": long_ago},
            {"jti": "stale", "issuer": issuer.issuer, "expires_at": long_ago},
        ])

    assert verifier.verify(bearer(issuer.token(AUDIENCE, jti="reused")), AUDIENCE)
    with database.begin() as conn:
        rows = dict(conn.execute(select(used_jti.c.jti, used_jti.c.expires_at)).all())
    assert set(rows) == {"reused"}  # taken over, and the stale row purged
    assert rows["reused"] > time.time()


def test_replay_store_down_means_unauthorized(issuer):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    down = Database(f"postgresql+psycopg://cds:cds@127.0.0.1:{port}/cds")
    verifier = make_verifier(down, {issuer.issuer: issuer.jwks_url})
    assert "database down" in rejected(verifier, bearer(issuer.token(AUDIENCE)))


@pytest.mark.parametrize("typ, accepted", [("JWT", True), ("jwt", True), (None, False), ("at+jwt", False), (["JWT"], False)])
def test_the_header_typ_is_the_fixed_string_jwt(verifier, issuer, typ, accepted):
    token = issuer.token(AUDIENCE, headers={"typ": typ})
    if accepted:
        assert verifier.verify(bearer(token), AUDIENCE)
    else:
        assert "is not JWT" in rejected(verifier, bearer(token))


@pytest.mark.parametrize("claims", [{"exp": int(time.time()) - 3600}, {"aud": "https://elsewhere.example.org/x"},
                                    {"iat": None}])
def test_a_token_whose_claims_fail_never_makes_the_service_fetch_keys(issuer, database, monkeypatch, claims):
    # The spec's order: iss, aud, exp before the signature; an unknown kid would otherwise fetch the JWKS.
    monkeypatch.setattr(auth, "JWKS_MIN_REFETCH_SECONDS", 0)
    verifier = make_verifier(database, {issuer.issuer: issuer.jwks_url})
    before = issuer.jwks.requests
    assert "token rejected" in rejected(verifier, bearer(issuer.token(AUDIENCE, headers={"kid": "unknown"}, **claims)))
    assert issuer.jwks.requests == before
