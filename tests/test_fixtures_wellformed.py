"""The fixture patients and hook requests are well-formed, so tests that use them test the service.

Patient bundles are valid FHIR R4 (fhir.resources R4B models), loadable as transactions, coded as the
clinical reference says, with references that resolve; requests are valid CDS Hooks calls whose
prefetch is exactly the patient's record; requests/ is what build_requests.py generates; and each
patient's inputs give the creatinine clearance the README promises.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta

import pytest
from conftest import FIXTURE_NOW, FIXTURES, ROOT, load_json
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from cds_service.policy import Policy

PATIENT_FILES = sorted((FIXTURES / "patients").glob("*.json"))
REQUEST_FILES = sorted((FIXTURES / "requests").glob("*.json"))
NOW = datetime.fromisoformat(FIXTURE_NOW)
POLICY = Policy()

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# RxNorm codes the clinical reference marks verified, plus the sandbox's clinical drug (313566).
VERIFIED_RXNORM = {"3008", "35302", "42316", "68149", "7145", "1256", "8698", "10831", "313566"}
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ELECTROLYTES = {"2823-3", "19123-9", "17861-6", "1994-3", "2777-1"}
CREATININE_MG_DL, CREATININE_UMOL_L, WEIGHT, HEIGHT = "2160-0", "14682-9", "29463-7", "8302-2"
BLOOD_COUNTS = {"751-8", "777-3", "718-7", "6690-2"}
HOOKS = {
    "patient-view": ("userId", "patientId"),
    "order-select": ("userId", "patientId", "selections", "draftOrders"),
    "order-sign": ("userId", "patientId", "draftOrders"),
}
SEARCHES = {"observations": "Observation", "medications": "MedicationRequest", "conditions": "Condition",
            "allergies": "AllergyIntolerance"}

# Cockcroft-Gault CrCl (mL/min, actual weight) each fixture is written to give; README.md lists them.
INTENDED_CRCL = {
    "kidney-colitis": 61.3,
    "liver-renal": 29.9,
    "hsct-preemptive": 117.3,
    "hsct-pneumonitis": 77.9,
    "hiv-retinitis": 113.3,
    "uc-steroids-colitis": 103.7,
    "refractory-valganciclovir": 100.0,
    "foscarnet-low-mg": 83.6,
    "cidofovir-creatinine": 42.8,
    "letermovir-prophylaxis": 90.2,
    "no-cmv": 89.0,
    "sandbox-renal": 35.5,
    "stale-labs": 56.5,
}
# Foscarnet's unit, mL/min/kg: its renal band (> 1.0-1.4) is what foscarnet-low-mg exercises.
INTENDED_CRCL_PER_KG = {"foscarnet-low-mg": 1.19}
STALE = {"stale-labs"}  # written with out-of-date creatinine and weight on purpose
# Requests that keep the shape the CDS Hooks sandbox really sends (see fhir_fixtures/captured/).
SANDBOX_SHAPED = {"sandbox-renal.order-select", "sandbox-renal.order-sign"}


def _ids(paths):
    return [p.stem for p in paths]


def resources_of(bundle):
    return [entry["resource"] for entry in bundle.get("entry", [])]


def references(node):
    """Every Reference.reference string anywhere in a resource."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def validate_r4(resource):
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def loinc(observation):
    return next(c["code"] for c in observation["code"]["coding"] if c.get("system") == LOINC)


def when(text):
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert value.tzinfo is not None, f"{text} has no timezone"
    return value


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def service_prefetch_keys():
    """PREFETCH keys from cds_service/services.py, read without importing the whole pipeline."""
    tree = ast.parse((ROOT / "cds_service" / "services.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PREFETCH" for t in node.targets):
            return {key.value for key in node.value.keys}
    raise AssertionError("PREFETCH not found in cds_service/services.py")


def patient_bundles():
    return {p.stem: load_json(p) for p in PATIENT_FILES}


def test_fixture_set_is_complete():
    assert set(_ids(PATIENT_FILES)) == set(INTENDED_CRCL)
    for slug in INTENDED_CRCL:
        assert (FIXTURES / "requests" / f"{slug}.patient-view.json").exists()
    assert "foscarnet-low-mg.order-select" in _ids(REQUEST_FILES)
    assert "liver-renal-dstu2.order-sign" in _ids(REQUEST_FILES)


@pytest.mark.parametrize("path", PATIENT_FILES, ids=_ids(PATIENT_FILES))
def test_patient_bundle_is_a_valid_r4_transaction(path):
    bundle = load_json(path)
    Bundle.model_validate(bundle)  # the Bundle model does not check entry resources: do it per resource
    assert bundle["type"] == "transaction"
    resources = resources_of(bundle)
    patient = resources[0]
    assert patient["resourceType"] == "Patient"
    assert [r["resourceType"] for r in resources].count("Patient") == 1
    assert len({entry["fullUrl"] for entry in bundle["entry"]}) == len(resources)
    local = set()
    for entry in bundle["entry"]:
        resource = entry["resource"]
        validate_r4(resource)
        key = f"{resource['resourceType']}/{resource['id']}"
        assert entry["request"] == {"method": "PUT", "url": key}
        full_url = entry["fullUrl"]
        assert full_url == key or (full_url.startswith("urn:uuid:") and uuid.UUID(full_url[9:]))
        assert resource["id"].startswith(patient["id"]), f"{key}: ids start with the patient id"
        assert key not in local
        local.add(key)
    for resource in resources:
        for ref in references(resource):
            assert ref in local, f"{resource['id']}: {ref} does not resolve in the bundle"


def test_resource_ids_are_unique_across_fixtures():
    seen = {}
    for slug, bundle in patient_bundles().items():
        for r in resources_of(bundle):
            key = f"{r['resourceType']}/{r['id']}"
            assert key not in seen, f"{key} in both {seen.get(key)} and {slug}"
            seen[key] = slug


@pytest.mark.parametrize("path", PATIENT_FILES, ids=_ids(PATIENT_FILES))
def test_patient_record_is_coded_as_the_reference_says(path):
    for r in resources_of(load_json(path)):
        kind = r["resourceType"]
        if kind == "Observation":
            assert r["status"] == "final"
            assert r["category"][0]["coding"][0]["code"] in ("laboratory", "vital-signs")
            assert loinc(r)
            assert when(r["effectiveDateTime"]) <= NOW
            quantity = r.get("valueQuantity")
            if quantity:
                assert quantity["system"] == UCUM and quantity["code"] and quantity["unit"]
            else:
                assert r.get("valueString")
            if loinc(r) in ELECTROLYTES:
                assert r["referenceRange"] and r["interpretation"][0]["coding"][0]["system"] == INTERPRETATION
        elif kind == "Condition":
            assert r["clinicalStatus"]["coding"][0]["code"] == "active"
            assert r["verificationStatus"]["coding"][0]["code"] == "confirmed"
            assert r["code"].get("coding") or r["code"].get("text")
        elif kind == "MedicationRequest":
            assert (r["status"], r["intent"]) == ("active", "order")
            for coding in r["medicationCodeableConcept"]["coding"]:
                if coding.get("system") == RXNORM:
                    assert coding["code"] in VERIFIED_RXNORM
            dosage = r["dosageInstruction"][0]
            assert dosage["route"]["coding"][0]["system"] == SNOMED
            assert dosage["timing"]["repeat"]["boundsPeriod"]["start"] <= NOW.date().isoformat()
            assert dosage["doseAndRate"][0]["doseQuantity"]["code"] in ("mg", "mg/kg", "{pill}")


@pytest.mark.parametrize("path", PATIENT_FILES, ids=_ids(PATIENT_FILES))
def test_patient_gives_the_intended_creatinine_clearance(path):
    """Cockcroft-Gault from the latest creatinine and weight, as the README states for this fixture.

    Weights are at most obesity_ibw_ratio x ideal body weight, so the CrCl-weight policy does not
    change the result; inputs are within the policy's staleness windows except where STALE says.
    """
    resources = resources_of(load_json(path))
    patient = resources[0]
    latest = {}
    for r in sorted((r for r in resources if r["resourceType"] == "Observation"), key=lambda r: r["effectiveDateTime"]):
        latest[loinc(r)] = r
    creatinine = latest.get(CREATININE_MG_DL) or latest[CREATININE_UMOL_L]
    scr = creatinine["valueQuantity"]["value"]
    if creatinine["valueQuantity"]["code"] == "umol/L":
        scr /= 88.4
    weight = latest[WEIGHT]["valueQuantity"]["value"]
    female = patient["gender"] == "female"
    age = age_on(date.fromisoformat(patient["birthDate"]), NOW.date())
    crcl = (140 - age) * weight / (72 * scr) * (0.85 if female else 1.0)
    assert round(crcl, 1) == INTENDED_CRCL[path.stem]
    if path.stem in INTENDED_CRCL_PER_KG:
        assert round(crcl / weight, 2) == INTENDED_CRCL_PER_KG[path.stem]

    inches = latest[HEIGHT]["valueQuantity"]["value"] / 2.54
    ideal = (45.5 if female else 50.0) + 2.3 * (inches - 60)
    assert weight <= POLICY.obesity_ibw_ratio * ideal

    fresh = {
        "creatinine": NOW - when(creatinine["effectiveDateTime"]) <= timedelta(days=POLICY.creatinine_max_age_days),
        "weight": NOW - when(latest[WEIGHT]["effectiveDateTime"]) <= timedelta(days=POLICY.weight_max_age_days),
    }
    assert all(fresh.values()) != (path.stem in STALE), fresh
    if path.stem not in STALE:
        for code in BLOOD_COUNTS:
            age_days = NOW - when(latest[code]["effectiveDateTime"])
            assert age_days <= timedelta(days=POLICY.blood_count_max_age_days)


@pytest.mark.parametrize("path", REQUEST_FILES, ids=_ids(REQUEST_FILES))
def test_request_is_a_valid_cds_hooks_call(path):
    request = load_json(path)
    hook = request["hook"]
    assert path.stem.endswith("." + hook)
    assert str(uuid.UUID(request["hookInstance"])) == request["hookInstance"]
    assert re.match(r"https?://", request["fhirServer"])
    context = request["context"]
    for field in HOOKS[hook]:
        assert context[field], f"context.{field} is required for {hook}"
    assert re.fullmatch(r"(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]+", context["userId"])
    patient_id = context["patientId"]
    patient_ref = f"Patient/{patient_id}"

    # The prefetch is exactly what the service's templates return for this patient's record.
    prefetch = request["prefetch"]
    assert service_prefetch_keys() <= set(prefetch)
    record = next(b for b in patient_bundles().values() if resources_of(b)[0]["id"] == patient_id)
    record_resources = resources_of(record)
    assert prefetch["patient"] == record_resources[0]
    for key, kind in SEARCHES.items():
        searchset = prefetch[key]
        Bundle.model_validate(searchset)
        assert searchset["type"] == "searchset"
        found = resources_of(searchset)
        assert searchset["total"] == len(found)
        expected = [r for r in record_resources if r["resourceType"] == kind]
        if kind == "MedicationRequest":
            expected = [r for r in expected if r["status"] in ("active", "on-hold", "completed", "stopped")]
        assert sorted(r["id"] for r in found) == sorted(r["id"] for r in expected)
        for resource in found:
            validate_r4(resource)
            assert set(references(resource)) == {patient_ref}
        if kind == "Observation":
            dates = [r["effectiveDateTime"] for r in found]
            assert dates == sorted(dates, reverse=True), "observations newest first (_sort=-date)"

    if hook == "patient-view":
        return
    drafts = resources_of(context["draftOrders"])
    assert drafts
    for order in drafts:
        assert order["status"] == "draft"
        assert order.get("subject", order.get("patient")) == {"reference": patient_ref}
        if order["resourceType"] == "MedicationRequest":
            if isinstance(order.get("category"), dict):  # the sandbox sends one category as an object
                assert path.stem in SANDBOX_SHAPED
                order = dict(order, category=[order["category"]])
            validate_r4(order)
        else:  # DSTU2 MedicationOrder: no R4 model, check the fields the facts layer reads
            assert order["resourceType"] == "MedicationOrder"
            assert order["dateWritten"] and order["medicationCodeableConcept"]
            assert order["dosageInstruction"][0]["doseQuantity"]["code"]
    draft_refs = {f"{o['resourceType']}/{o['id']}" for o in drafts}
    for selection in context.get("selections", ()):
        assert selection in draft_refs


def test_sandbox_request_keeps_the_captured_shape():
    captured = load_json(FIXTURES / "captured" / "sandbox-order-select-valganciclovir.json")
    request = load_json(FIXTURES / "requests" / "sandbox-renal.order-select.json")
    assert request["context"] == captured["context"]
    assert "type" not in request["context"]["draftOrders"]
    for key, value in captured["prefetch"].items():
        assert request["prefetch"][key] == value


def test_requests_are_what_build_requests_generates(tmp_path):
    result = subprocess.run(
        [sys.executable, str(FIXTURES / "build_requests.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    built = {p.name: p.read_bytes() for p in tmp_path.glob("*.json")}
    committed = {p.name: p.read_bytes() for p in REQUEST_FILES}
    assert sorted(built) == sorted(committed)
    stale = [name for name in built if built[name] != committed[name]]
    assert not stale, f"requests/ out of date (run python fhir_fixtures/build_requests.py): {stale}"
