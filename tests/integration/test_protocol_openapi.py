"""The OpenAPI documents against the running service (schemathesis), and the document against the code.

Two documents drive the fuzzing: the service's own (cds_service/openapi.yaml, precise: every answer
must conform to it) and the upstream CDS Hooks draft (../shared/cds-hooks/openapi-draft-upstream.yaml,
loose and incomplete: only "no 5xx" and conformance of the answers it documents are checked).
The service under test is the real one, with an allow-list of FHIR servers so that generated
fhirServer URLs are refused rather than contacted.  Bounded and derandomised: same cases every run.
"""

from __future__ import annotations

import copy
from importlib.resources import files

import pytest
import schemathesis
import yaml
from conftest import FIXTURE_NOW, SHARED, start_live_service
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from cds_service.clinical.findings import TOPICS
from cds_service.services import SERVICES

OWN = yaml.safe_load(files("cds_service").joinpath("openapi.yaml").read_text(encoding="utf-8"))
UPSTREAM_PATH = SHARED / "cds-hooks" / "openapi-draft-upstream.yaml"
SERVICE_IDS = [s.id for s in SERVICES]
FUZZ_SETTINGS = settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


def with_known_service_ids(document: dict) -> dict:
    """The document with serviceId restricted to the declared services (random ids only test 404)."""
    document = copy.deepcopy(document)
    for path_item in document["paths"].values():
        for operation in (op for op in path_item.values() if isinstance(op, dict)):
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "serviceId":
                    parameter["schema"] = {"type": "string", "enum": SERVICE_IDS}
    return document


def reaching_the_handlers(document: dict) -> dict:
    """The hook operation of the document narrowed, per service, to calls the handler must answer:
    the service's own hook, a Patient sent (without id, so any patientId fits), no fhirServer.
    Everything else (context, draftOrders, other prefetch keys) stays as random as the document
    allows, so the facts and clinical layers get fuzzed too."""
    document = copy.deepcopy(document)
    operation = document["paths"].pop("/cds-services/{serviceId}")["post"]
    del operation["parameters"]
    schemas = document["components"]["schemas"]
    schemas["FuzzPatient"] = {
        "type": "object",
        "required": ["resourceType"],
        "additionalProperties": False,
        "properties": {
            "resourceType": {"type": "string", "enum": ["Patient"]},
            "gender": {"type": "string", "enum": ["female", "male", "other", "unknown"]},
            "birthDate": {"type": "string", "pattern": r"^(19\d\d|20[0-2]\d)-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])$"},
        },
    }
    branches = {
        schemas[ref["$ref"].rsplit("/", 1)[1]]["allOf"][1]["properties"]["hook"]["enum"][0]: ref["$ref"]
        for ref in schemas["HookRequest"]["oneOf"]
    }
    for service in SERVICES:
        narrowed = copy.deepcopy(operation)
        narrowed["operationId"] = f"call-{service.id}"
        narrowed["requestBody"]["content"]["application/json"]["schema"] = {
            "allOf": [
                {"$ref": branches[service.hook]},
                {
                    "type": "object",
                    "required": ["prefetch"],
                    "properties": {
                        "fhirServer": {"not": {}},
                        "fhirAuthorization": {"not": {}},
                        "prefetch": {
                            "type": "object",
                            "required": ["patient"],
                            "properties": {"patient": {"$ref": "#/components/schemas/FuzzPatient"}},
                        },
                    },
                },
            ]
        }
        document["paths"][f"/cds-services/{service.id}"] = {"post": narrowed}
    return document


@pytest.fixture(scope="module")
def fuzz_service(tmp_path_factory):
    server, service = start_live_service(
        {
            "CDS_DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'cds.db'}",
            "CDS_EVALUATION_TIME": FIXTURE_NOW,
            "CDS_ALLOWED_FHIR_SERVERS": "https://fhir.allowed.example/r4",
            "CDS_FHIR_TIMEOUT": "2",
            "CDS_LOG_LEVEL": "ERROR",
        }
    )
    yield service
    server.shutdown()


own_schema = schemathesis.openapi.from_dict(with_known_service_ids(OWN))


@own_schema.parametrize()
@FUZZ_SETTINGS
def test_service_conforms_to_its_own_openapi_document(fuzz_service, case):
    case.call_and_validate(
        base_url=fuzz_service.base_url,
        timeout=10,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
    )


handler_schema = schemathesis.openapi.from_dict(reaching_the_handlers(OWN)).include(path_regex="^/cds-services/cmv-")


@handler_schema.parametrize()
@FUZZ_SETTINGS
def test_hook_calls_reaching_the_handlers_are_answered(fuzz_service, case):
    case.call_and_validate(
        base_url=fuzz_service.base_url,
        timeout=10,
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
    )


if UPSTREAM_PATH.is_file():
    upstream = yaml.safe_load(UPSTREAM_PATH.read_text(encoding="utf-8"))
    upstream_schema = schemathesis.openapi.from_dict(with_known_service_ids(upstream))

    @upstream_schema.parametrize()
    @FUZZ_SETTINGS
    def test_service_survives_the_upstream_cds_hooks_document(fuzz_service, case):
        # The draft documents few error answers and none of the rules, so only: no 5xx, and the
        # answers it does document conform to it.
        case.call_and_validate(
            base_url=fuzz_service.base_url, timeout=10, checks=[not_a_server_error, response_schema_conformance]
        )

else:

    @pytest.mark.skip(reason=f"{UPSTREAM_PATH} is not here (../shared is absent)")
    def test_service_survives_the_upstream_cds_hooks_document():
        pass


# ------------------------------------------------------------------------ the document vs the code


def test_topics_in_the_document_are_the_published_topics():
    topic = OWN["components"]["schemas"]["Source"]["properties"]["topic"]["allOf"][1]
    assert topic["properties"]["code"]["enum"] == list(TOPICS)


def test_hooks_and_context_rules_in_the_document_are_the_services():
    schemas = OWN["components"]["schemas"]
    documented = {}
    for ref in schemas["HookRequest"]["oneOf"]:
        request = schemas[ref["$ref"].rsplit("/", 1)[1]]["allOf"][1]["properties"]
        (hook,) = request["hook"]["enum"]
        context = schemas[request["context"]["$ref"].rsplit("/", 1)[1]]
        documented[hook] = (set(context["required"]), set(context["properties"]))
    assert set(documented) == set(schemas["Service"]["properties"]["hook"]["enum"])
    for service in SERVICES:
        required, known = documented[service.hook]
        assert required == set(service.required_context), service.id
        assert known == set(service.required_context) | set(service.optional_context), service.id
