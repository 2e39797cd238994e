"""The fixture patients, loaded into a FHIR server with `cds-service load-fixtures`, give the same
cards when the service fetches their data as when the EHR prefetches it."""

from __future__ import annotations

import copy

import pytest
from conftest import FIXTURES, SERVICE_OF_HOOK, load_json
from fhir_server import FhirTestServer

from cds_service.cli import main

REQUESTS = sorted((FIXTURES / "requests").glob("*.json"))


@pytest.fixture(scope="module")
def loaded_fhir_server():
    server = FhirTestServer()
    assert main(["load-fixtures", "--fhir-server", server.base_url, str(FIXTURES / "patients")]) == 0
    yield server
    server.close()


def advice(response) -> list[tuple[str, str, str]]:
    assert response.status_code == 200, response.text
    return [(c["source"]["topic"]["code"], c["indicator"], c["summary"]) for c in response.json()["cards"]]


@pytest.mark.parametrize("path", REQUESTS, ids=lambda p: p.stem)
def test_fetched_data_gives_the_same_cards_as_prefetched(path, live_service, loaded_fhir_server):
    request = load_json(path)
    service_id = SERVICE_OF_HOOK[request["hook"]]
    prefetched = advice(live_service.call(service_id, request))

    fetched_request = copy.deepcopy(request)
    fetched_request.pop("prefetch")
    fetched_request["fhirServer"] = loaded_fhir_server.base_url
    loaded_fhir_server.requests.clear()
    fetched = advice(live_service.call(service_id, fetched_request))

    assert loaded_fhir_server.requests, "the service did not fetch from the FHIR server"
    assert fetched == prefetched
