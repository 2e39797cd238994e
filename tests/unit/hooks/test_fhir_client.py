"""Which next-page links the FHIR client follows with the client's token: only pages on fhirServer."""

from __future__ import annotations

import time

import pytest

from cds_service.hooks.fhir_client import FetchError, FhirClient, next_link

BASE = "https://ehr.example.org/fhir"


@pytest.mark.parametrize(
    "url",
    [
        f"{BASE}/Observation?patient=1&page=2",
        f"{BASE}?_getpages=abc&_getpagesoffset=50",  # HAPI: the base itself, with the page in the query
        f"{BASE}/",
        "HTTPS://ehr.example.org/fhir/Observation",
    ],
)
def test_pages_under_the_base_are_followed(url):
    assert FhirClient(BASE, "token", time.monotonic() + 5)._same_server(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://ehr.example.org/fhirx/Observation",  # another path that starts with the base's
        "https://ehr.example.org/fhir/../admin/Observation",  # out of the base by a dot segment
        "https://ehr.example.org/fhir/%2e%2e/admin/Observation",  # the same, encoded
        "https://ehr.example.org/fhir/..%2Fadmin/Observation",
        "https://ehr.example.org/fhir/..\\admin/Observation",
        "https://ehr.example.org/fhir/..;/admin/Observation",  # a path parameter some servers drop
        "https://ehr.example.org/fhir/%252e%252e/admin/Observation",  # decoded twice by some servers
        "https://ehr.example.org/other/Observation",
        "https://ehr.example.org:8443/fhir/Observation",
        "http://ehr.example.org/fhir/Observation",
        "https://evil.example.org/fhir/Observation",
        "http://[::1",  # not a URL
    ],
)
def test_pages_elsewhere_are_refused(url):
    assert not FhirClient(BASE, "token", time.monotonic() + 5)._same_server(url)


def test_a_server_at_the_root_of_its_host_follows_any_path_of_that_host():
    client = FhirClient("https://ehr.example.org", None, time.monotonic() + 5)
    assert client._same_server("https://ehr.example.org/Observation?page=2")
    assert not client._same_server("https://ehr.example.org/a/../b")


def test_a_next_link_that_is_not_a_url_is_still_a_next_page():
    # Said to exist, it cannot be followed: the search is incomplete (never read as complete).
    bundle = {"resourceType": "Bundle", "link": [{"relation": "next", "url": "http://[::1"}]}
    assert next_link(bundle, "") == "http://[::1"
    assert next_link(bundle, BASE) == "http://[::1"
    assert next_link({"resourceType": "Bundle", "link": [{"relation": "next", "url": "Observation?page=2"}]}, BASE) \
        == f"{BASE}/Observation?page=2"


@pytest.mark.parametrize("query", ["Patient/../../admin", "Patient/%2e%2e/%2e%2e/admin", "../Patient/1"])
def test_a_query_that_leaves_the_base_path_is_never_sent(query):
    # Refused before any connection (the host does not exist): the token would go with it.
    client = FhirClient("https://ehr.invalid/fhir", "token", time.monotonic() + 5)
    with pytest.raises(FetchError, match="base path"):
        client.read(query)
    with pytest.raises(FetchError, match="base path"):
        client.search(query + "?patient=1")
