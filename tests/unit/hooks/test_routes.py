"""A hook call's request is freed once its answer has been sent, not while the EHR waits for it."""

from __future__ import annotations

import weakref

from cds_service.app import create_app
from cds_service.hooks.registry import CdsService
from cds_service.settings import Settings

CARD = {"uuid": "5b1f0c7e-2f44-4a43-9b0e-3c8f7f1d2a10", "summary": "Probe card", "indicator": "info",
        "source": {"label": "Probe"}}
BODY = {
    "hook": "patient-view",
    "hookInstance": "0f2b9d5e-8c1a-4b7e-a3f4-6d2e1c9b8a70",
    "context": {"userId": "Practitioner/1", "patientId": "1"},
}


def test_the_call_is_held_until_the_answer_is_sent_then_freed(tmp_path):
    seen: list[weakref.ref] = []

    def handler(call):
        seen.append(weakref.ref(call))
        return [dict(CARD)]

    probe = CdsService(id="probe", hook="patient-view", title="Probe", description="One fixed card.", prefetch={},
                       handler=handler, required_context={"userId": str, "patientId": str}, required_prefetch=())
    settings = Settings.from_env({"CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cds.db'}"})
    client = create_app(settings, services=(probe,)).test_client()

    response = client.post("/cds-services/probe", json=BODY, buffered=False)
    assert response.status_code == 200
    assert response.get_json()["cards"][0]["summary"] == "Probe card"
    assert seen[0]() is not None  # the handler has returned, but the answer is not yet closed
    response.close()  # what the WSGI server does once the answer is sent
    assert seen[0]() is None
