"""POST {base}/cds-services/{id}/feedback on the running service, rows checked in its SQLite database."""

from __future__ import annotations

import pytest
import requests
from conftest import FIXTURE_NOW, start_live_service
from sqlalchemy import select

from cds_service.hooks.storage import Database, feedback

SERVICE = "cmv-order-select"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    database_url = f"sqlite:///{tmp_path_factory.mktemp('feedback') / 'cds.db'}"
    server, live = start_live_service({"CDS_DATABASE_URL": database_url, "CDS_EVALUATION_TIME": FIXTURE_NOW})
    live.database = Database(database_url)
    yield live
    server.shutdown()
    live.database.engine.dispose()


def post(service, body, service_id=SERVICE, **kwargs) -> requests.Response:
    return requests.post(service.url(f"/cds-services/{service_id}/feedback"), timeout=10, json=body, **kwargs)


def rows(service) -> list[dict]:
    with service.database.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(select(feedback).order_by(feedback.c.id))]


def test_feedback_is_stored_once(service):
    body = {
        "feedback": [
            {
                "card": "0b6f6a2e-4f0e-4a53-9a5e-6d3c9f1f5e01",
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
                "outcomeTimestamp": "2026-11-26T12:00:00Z",
            },
            {
                "card": "0b6f6a2e-4f0e-4a53-9a5e-6d3c9f1f5e02",
                "outcome": "overridden",
                "overrideReason": {"reason": {"code": "already-addressed", "system": "urn:cmv-cds:override-reason"}},
                "outcomeTimestamp": "2026-11-26T12:01:00Z",
            },
        ]
    }
    before = len(rows(service))

    first = post(service, body)
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "application/json"
    assert post(service, body).status_code == 200  # a retry

    stored = rows(service)[before:]
    assert [(r["service_id"], r["outcome"]) for r in stored] == [(SERVICE, "accepted"), (SERVICE, "overridden")]
    assert stored[0]["accepted_suggestions"] == ["e56e1945-20b3-4393-8503-a1a20fd73152"]
    assert stored[1]["override_code"] == "already-addressed"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"feedback": [{"outcome": "accepted", "outcomeTimestamp": "2026-11-26T12:00:00Z"}]}, "feedback[0].card"),
        ({"feedback": [{"card": "c", "outcome": "ok", "outcomeTimestamp": "2026-11-26T12:00:00Z"}]}, "feedback[0].outcome"),
        ({"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "today"}]}, "feedback[0].outcomeTimestamp"),
        ({"feedback": "c"}, "'feedback'"),
        ([], "JSON object"),
    ],
)
def test_invalid_feedback_is_a_400_operation_outcome(service, body, field):
    before = len(rows(service))
    response = post(service, body)
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert field in outcome["issue"][0]["diagnostics"]
    assert len(rows(service)) == before


def test_a_body_that_is_not_json_is_a_400(service):
    response = post(service, None, data=b"{feedback:", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_feedback_for_an_unknown_service_is_a_404(service):
    body = {"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-11-26T12:00:00Z"}]}
    before = len(rows(service))
    response = post(service, body, service_id="no-such-service")
    assert response.status_code == 404
    assert response.json()["issue"][0]["code"] == "not-found"
    assert len(rows(service)) == before
