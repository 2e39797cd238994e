"""Prefetch resolution over real HTTP, against the loopback FHIR server: what is sent is used, what is
missing is fetched (paged, with the token, POST _search when GET is refused), null is never
re-queried, and a Patient that cannot be had is a 412."""

from __future__ import annotations

import time

import pytest
import requests

from cds_service.hooks.prefetch import render_template

from .conftest import PATIENT_ID, bundle, hook_body, medication_request, observation, patient
from .test_protocol_validation import outcome_of

SERVICE = "cmv-patient-view"
KEYS = ("patient", "observations", "medications", "conditions", "allergies")


def full_prefetch(**overrides) -> dict:
    prefetch = {
        "patient": patient(),
        "observations": bundle(observation("o1")),
        "medications": bundle(medication_request("m1")),
        "conditions": bundle(),
        "allergies": bundle(),
    }
    prefetch.update(overrides)
    return prefetch


def test_prefetch_sent_in_full_is_used_and_the_server_is_not_queried(protocol_service, fhir_server):
    prefetch = full_prefetch()
    body = hook_body(prefetch=prefetch, fhirServer=fhir_server.base_url)
    assert protocol_service.call(SERVICE, body).status_code == 200
    call = protocol_service.recorder.last
    assert dict(call.prefetch) == prefetch
    assert dict(call.unavailable) == {}
    assert fhir_server.requests == []


def test_call_carries_policy_and_the_configured_evaluation_time(protocol_service):
    assert protocol_service.call(SERVICE, hook_body(prefetch=full_prefetch())).status_code == 200
    call = protocol_service.recorder.last
    assert call.now.isoformat() == "2026-11-26T12:00:00+00:00"
    assert call.policy == protocol_service.settings.policy
    assert (call.service_id, call.hook) == (SERVICE, "patient-view")


def test_missing_keys_are_fetched_with_the_bearer_token_and_all_pages(protocol_service, fhir_server):
    fhir_server.token = "secret-fhir-token"
    fhir_server.max_count = 50  # the service asks for 500 a page; this server gives 50
    observations = [observation(f"o{i:03d}", day=1 + i % 28) for i in range(120)]
    fhir_server.add(patient(), *observations, medication_request("m1"), medication_request("other", pid="pt-2"))

    body = hook_body(
        prefetch={"conditions": None, "allergies": bundle()},  # only patient, observations, medications missing
        fhirServer=fhir_server.base_url,
        fhirAuthorization={"access_token": "secret-fhir-token", "token_type": "Bearer", "expires_in": 300,
                           "scope": "patient/*.read", "subject": "cds-service"},
    )
    assert protocol_service.call(SERVICE, body).status_code == 200
    call = protocol_service.recorder.last

    assert call.prefetch["patient"]["id"] == PATIENT_ID
    fetched = [e["resource"]["id"] for e in call.prefetch["observations"]["entry"]]
    assert sorted(fetched) == sorted(o["id"] for o in observations)
    assert [e["resource"]["id"] for e in call.prefetch["medications"]["entry"]] == ["m1"]
    assert call.prefetch["conditions"] is None
    assert dict(call.unavailable) == {}

    assert {r.authorization for r in fhir_server.requests} == {"Bearer secret-fhir-token"}
    paths = sorted(r.path for r in fhir_server.requests)
    # conditions (null) and allergies (sent) were not queried; observations took 3 pages.
    assert paths == ["", "", "MedicationRequest", "Observation", "Patient/pt-1"]
    observation_search = fhir_server.requests_for("Observation")[0]
    assert observation_search.params["patient"] == PATIENT_ID
    assert "http://loinc.org|2160-0" in observation_search.params["code"].split(",")


def test_open_servers_get_no_authorization_header(protocol_service, fhir_server):
    fhir_server.add(patient())
    body = hook_body(prefetch={"observations": None, "medications": None, "conditions": None, "allergies": None},
                     fhirServer=fhir_server.base_url)
    assert protocol_service.call(SERVICE, body).status_code == 200
    assert [(r.path, r.authorization) for r in fhir_server.requests] == [("Patient/pt-1", None)]


def test_keys_sent_as_null_are_never_requeried(protocol_service, fhir_server):
    fhir_server.add(patient(), observation("o1"))
    prefetch = {key: None for key in KEYS if key != "patient"} | {"patient": patient()}
    body = hook_body(prefetch=prefetch, fhirServer=fhir_server.base_url)
    assert protocol_service.call(SERVICE, body).status_code == 200
    call = protocol_service.recorder.last
    assert call.prefetch["observations"] is None and dict(call.unavailable) == {}
    assert fhir_server.requests == []


def test_operation_outcome_values_count_as_no_data_and_are_not_requeried(protocol_service, fhir_server):
    failed = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    body = hook_body(prefetch=full_prefetch(observations=failed), fhirServer=fhir_server.base_url)
    assert protocol_service.call(SERVICE, body).status_code == 200
    call = protocol_service.recorder.last
    assert call.prefetch["observations"] is None
    assert "OperationOutcome" in call.unavailable["observations"]
    assert fhir_server.requests == []


@pytest.mark.parametrize(
    "key,value,words",
    [
        ("observations", patient(), "a Patient where a Bundle was expected"),
        ("medications", ["not", "a", "resource"], "not a FHIR resource"),
        ("conditions", "Condition?patient=pt-1", "not a FHIR resource"),
    ],
)
def test_values_that_do_not_fit_their_query_are_unavailable(protocol_service, key, value, words):
    assert protocol_service.call(SERVICE, hook_body(prefetch=full_prefetch(**{key: value}))).status_code == 200
    call = protocol_service.recorder.last
    assert call.prefetch[key] is None
    assert words in call.unavailable[key]


def test_keys_the_service_did_not_declare_are_ignored(protocol_service):
    # The sandbox sends keys of other services ("meds", "user"); they are not this service's queries.
    prefetch = full_prefetch(meds=bundle(medication_request("x")), user={"resourceType": "Practitioner", "id": "1"})
    assert protocol_service.call(SERVICE, hook_body(prefetch=prefetch)).status_code == 200
    assert set(protocol_service.recorder.last.prefetch) == set(KEYS)


def test_a_sent_paged_bundle_is_completed_from_the_server(protocol_service, fhir_server):
    observations = [observation(f"o{i}") for i in range(5)]
    fhir_server.add(*observations)
    first_page = requests.get(f"{fhir_server.base_url}/Observation?patient={PATIENT_ID}&_count=2", timeout=5).json()
    fhir_server.requests.clear()

    body = hook_body(prefetch=full_prefetch(observations=first_page), fhirServer=fhir_server.base_url)
    assert protocol_service.call(SERVICE, body).status_code == 200
    call = protocol_service.recorder.last
    received = sorted(e["resource"]["id"] for e in call.prefetch["observations"]["entry"])
    assert received == [o["id"] for o in observations]
    assert "link" not in call.prefetch["observations"]
    assert [r.path for r in fhir_server.requests] == ["", ""]  # the two next pages


def test_next_links_to_another_server_are_not_followed(protocol_service, fhir_server):
    fhir_server.add(patient(), *[observation(f"o{i}") for i in range(60)])
    fhir_server.max_count = 50
    fhir_server.faults.foreign_next = True
    body = hook_body(prefetch={"patient": patient(), "medications": None, "conditions": None, "allergies": None},
                     fhirServer=fhir_server.base_url)
    assert protocol_service.call(SERVICE, body).status_code == 200
    call = protocol_service.recorder.last
    assert len(call.prefetch["observations"]["entry"]) == 50  # the first page is kept
    assert "not on fhirServer" in call.unavailable["observations"]


def test_servers_that_refuse_get_searches_are_asked_with_post_search(protocol_service, fhir_server):
    fhir_server.faults.get_search_405 = True
    fhir_server.add(patient(), observation("o1"), medication_request("m1"))
    body = hook_body(prefetch={"patient": patient()}, fhirServer=fhir_server.base_url)
    assert protocol_service.call(SERVICE, body).status_code == 200
    call = protocol_service.recorder.last
    assert [e["resource"]["id"] for e in call.prefetch["observations"]["entry"]] == ["o1"]
    assert dict(call.unavailable) == {}
    post = fhir_server.requests_for("Observation/_search")
    assert len(post) == 1 and post[0].method == "POST" and post[0].params["patient"] == PATIENT_ID


def test_missing_keys_are_fetched_concurrently(protocol_service, fhir_server):
    fhir_server.add(patient())
    fhir_server.faults.delay["*"] = 0.3
    started = time.monotonic()
    body = hook_body(fhirServer=fhir_server.base_url)  # all five keys to fetch
    assert protocol_service.call(SERVICE, body).status_code == 200
    assert len(fhir_server.requests) == 5
    assert time.monotonic() - started < 1.0  # 5 x 0.3 s one after the other would be 1.5 s


# ------------------------------------------------------------------------------------------- 412


def test_no_patient_and_no_fhir_server_is_412(protocol_service):
    response = protocol_service.call(SERVICE, hook_body(prefetch={"observations": bundle()}))
    assert "no fhirServer" in outcome_of(response, 412)
    assert protocol_service.recorder.calls == []


def test_patient_sent_as_null_is_412_without_a_query(protocol_service, fhir_server):
    body = hook_body(prefetch=full_prefetch(patient=None), fhirServer=fhir_server.base_url)
    assert "null" in outcome_of(protocol_service.call(SERVICE, body), 412)
    assert fhir_server.requests == []


@pytest.mark.parametrize(
    "value,words",
    [
        ({"resourceType": "Practitioner", "id": PATIENT_ID}, "a Practitioner where a Patient was expected"),
        (patient("someone-else"), "id is not the one the context names"),
        # No id, or one that is not a string: which patient it is cannot be told.
        ({"resourceType": "Patient", "birthDate": "1960-01-01"}, "id is not the one the context names"),
        ({**patient(), "id": 12}, "id is not the one the context names"),
        ({"resourceType": "OperationOutcome", "issue": []}, "OperationOutcome"),
    ],
)
def test_a_patient_that_does_not_fit_is_412(protocol_service, value, words):
    response = protocol_service.call(SERVICE, hook_body(prefetch=full_prefetch(patient=value)))
    assert words in outcome_of(response, 412)


@pytest.mark.parametrize(
    "fault,words,code",
    [
        ({"status": 404}, "HTTP 404", "not-found"),
        ({"status": 401}, "HTTP 401", "security"),
        ({"status": 403}, "HTTP 403", "forbidden"),
        ({"status": 500}, "HTTP 500", "transient"),
        ({"status": 503}, "HTTP 503", "transient"),
        ({"delay": 3.0}, "timed out", "timeout"),
        ({"truncate": True}, "not valid JSON", "structure"),
    ],
    ids=["404", "401", "403", "500", "503", "timeout", "truncated"],
)
def test_patient_fetch_failures_are_412(protocol_service, fhir_server, fault, words, code):
    fhir_server.add(patient())
    if "status" in fault:
        fhir_server.faults.status["Patient"] = fault["status"]
    if "delay" in fault:
        fhir_server.faults.delay["Patient"] = fault["delay"]
    if "truncate" in fault:
        fhir_server.faults.truncate.add("Patient")
    started = time.monotonic()
    prefetch = full_prefetch()
    del prefetch["patient"]
    body = hook_body(prefetch=prefetch, fhirServer=fhir_server.base_url)
    response = protocol_service.call(SERVICE, body)
    assert words in outcome_of(response, 412)
    assert response.json()["issue"][0]["code"] == code
    # CDS_FHIR_TIMEOUT (1.5 s here) bounds the whole call.
    assert time.monotonic() - started < protocol_service.settings.fhir_timeout + 1.0


def test_a_missing_patient_with_a_bad_token_is_412(protocol_service, fhir_server):
    fhir_server.token = "the-right-token"
    fhir_server.add(patient())
    body = hook_body(fhirServer=fhir_server.base_url, fhirAuthorization={
        "access_token": "a-wrong-token", "token_type": "Bearer", "expires_in": 60, "scope": "patient/*.read",
        "subject": "cds-service"})
    assert "HTTP 401" in outcome_of(protocol_service.call(SERVICE, body), 412)


def test_an_unreachable_fhir_server_is_412(protocol_service):
    # Port 9 (discard) on loopback: nothing listens there.
    body = hook_body(fhirServer="http://127.0.0.1:9/fhir")
    assert "could not reach fhirServer" in outcome_of(protocol_service.call(SERVICE, body), 412)


def test_other_keys_failing_are_noted_and_the_call_answered(protocol_service, fhir_server):
    fhir_server.add(patient())
    fhir_server.faults.status["Observation"] = 500
    fhir_server.faults.truncate.add("Condition")
    body = hook_body(prefetch={"patient": patient()}, fhirServer=fhir_server.base_url)
    assert protocol_service.call(SERVICE, body).status_code == 200
    call = protocol_service.recorder.last
    assert call.prefetch["observations"] is None and call.prefetch["conditions"] is None
    assert "HTTP 500" in call.unavailable["observations"]
    assert "not valid JSON" in call.unavailable["conditions"]
    assert call.prefetch["medications"] == {**call.prefetch["medications"], "resourceType": "Bundle"}
    assert set(call.unavailable) == {"observations", "conditions"}


def test_keys_not_sent_without_a_fhir_server_are_noted(protocol_service):
    assert protocol_service.call(SERVICE, hook_body(prefetch={"patient": patient()})).status_code == 200
    unavailable = protocol_service.recorder.last.unavailable
    assert set(unavailable) == set(KEYS) - {"patient"}
    assert all("no fhirServer" in why for why in unavailable.values())


# ------------------------------------------------------------------------------------ allow-list


def test_a_fhir_server_outside_the_allow_list_is_refused_and_never_contacted(make_protocol_service, fhir_server):
    service = make_protocol_service({"CDS_ALLOWED_FHIR_SERVERS": "https://fhir.hospital.example/r4"})
    fhir_server.add(patient())
    response = service.call(SERVICE, hook_body(fhirServer=fhir_server.base_url))
    assert "fhirServer not allowed" in outcome_of(response, 400)
    assert fhir_server.requests == []
    assert service.recorder.calls == []


def test_a_fhir_server_on_the_allow_list_is_used(make_protocol_service, fhir_server):
    # Spelled differently from the setting (trailing slash, upper-case scheme): the same server.
    allowed = fhir_server.base_url + "/"
    service = make_protocol_service({"CDS_ALLOWED_FHIR_SERVERS": f"https://other.example/fhir, {allowed}"})
    fhir_server.add(patient())
    base = fhir_server.base_url.replace("http://", "HTTP://")
    assert service.call(SERVICE, hook_body(fhirServer=base, prefetch={"patient": patient()})).status_code == 200
    assert len(fhir_server.requests) == 4  # the four searches


@pytest.mark.parametrize("patient_id", ["../../internal/admin", "..", "a/../../admin"])
def test_a_patient_id_that_is_a_path_never_takes_the_token_out_of_the_base_path(protocol_service, fhir_server, patient_id):
    # The id is one path segment: "Patient/../../internal/admin" would reach /internal/admin with the token.
    fhir_server.token = "secret-fhir-token"
    body = hook_body(
        context={"userId": "Practitioner/p-1", "patientId": patient_id},
        fhirServer=fhir_server.base_url,
        fhirAuthorization={"access_token": "secret-fhir-token", "token_type": "Bearer", "expires_in": 300,
                           "scope": "patient/*.read", "subject": "cds-service"},
    )
    response = protocol_service.call(SERVICE, body)
    assert "Required prefetch 'patient'" in outcome_of(response, 412)
    # The read was refused before it was sent; the four searches went out under the base, the id one value.
    assert sorted(r.path for r in fhir_server.requests) == ["AllergyIntolerance", "Condition", "MedicationRequest",
                                                            "Observation"]
    assert {r.params["patient"] for r in fhir_server.requests} == {patient_id}


# ---------------------------------------------------------------------------- template rendering


CONTEXT = {"patientId": "pt 1/../x", "userId": "PractitionerRole/r-9", "encounterId": "e-1", "count": 3,
           "draftOrders": {"resourceType": "Bundle"}}


@pytest.mark.parametrize(
    "template,expected",
    [
        ("Patient/{{context.patientId}}", "Patient/pt%201%2F..%2Fx"),  # one id: it cannot leave the base path
        ("Encounter?_id={{ context.encounterId }}&n={{context.count}}", "Encounter?_id=e-1&n=3"),
        ("PractitionerRole/{{userPractitionerRoleId}}", "PractitionerRole/r-9"),
    ],
)
def test_templates_render_2_0_tokens(template, expected):
    assert render_template(template, CONTEXT) == expected


@pytest.mark.parametrize(
    "template",
    [
        "Practitioner/{{userPractitionerId}}",  # the user is a PractitionerRole
        "Bundle?x={{context.draftOrders}}",  # not a primitive
        "Observation?date=gt{{today() - 90 days}}",  # 3.0 token
        "Patient/{{context.missing}}",
    ],
)
def test_templates_that_cannot_be_filled_make_the_key_unavailable(template):
    from cds_service.hooks.prefetch import TemplateError

    with pytest.raises(TemplateError):
        render_template(template, CONTEXT)


@pytest.mark.parametrize("with_server", [False, True])
def test_a_sent_bundle_whose_next_link_is_not_a_url_is_incomplete_not_an_error(
    protocol_service, fhir_server, with_server
):
    page = {**bundle(observation("o1")), "link": [{"relation": "next", "url": "http://[::1"}]}
    body = hook_body(prefetch=full_prefetch(observations=page),
                     **({"fhirServer": fhir_server.base_url} if with_server else {}))
    assert protocol_service.call(SERVICE, body).status_code == 200
    call = protocol_service.recorder.last
    assert [e["resource"]["id"] for e in call.prefetch["observations"]["entry"]] == ["o1"]
    assert "incomplete" in call.unavailable["observations"]
    assert fhir_server.requests == []
