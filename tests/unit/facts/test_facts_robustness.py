"""build_facts never raises, whatever the JSON; it stays fast on large records; the fixture patients
build as their scenarios say."""

from __future__ import annotations

import copy
import json
import logging
import time
from datetime import date, timedelta

import pytest
from facts_testkit import NOW, ROOT, basics, condition, facts, med, obs, patient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.facts import build_facts, fhir
from cds_service.facts.model import ClinicalFacts
from cds_service.facts.record import PatientRecord
from cds_service.policy import Policy


INTERESTING_TEXT = st.sampled_from([
    "", " ", "mg/dL", "umol/L", "10*3/uL", "[IU]/mL", "log10 IU/mL", "{pill}", "mg/kg", "kg", "cm",
    "<137 IU/mL", "Not detected", "detected, below LLOQ", "2+", "trace", "1e308", "NaN", "-1",
    "2026-11-25", "2026-11-25T08:00:00Z", "2026-13-45", "2026", "9999-12-31T23:59:59+14:00", "0000-00-00",
    "CMV colitis", "no CMV", "kidney transplant", "HSCT", "AIDS", "valganciclovir 450 MG Oral Tablet",
    "Q12H", "BID", "final", "active", "draft", "İ", "\u0000", "x" * 300,
    "http://loinc.org", "http://unitsofmeasure.org", "http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm",
])
SCALARS = (
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30) | INTERESTING_TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12) | INTERESTING_TEXT,
                                                                      children, max_size=5),
    max_leaves=12,
)

TEMPLATES = [
    obs("2160-0", 1.2, "mg/dL", referenceRange=[{"low": {"value": 0.7, "unit": "mg/dL"}}],
        interpretation=[{"coding": [{"code": "H"}]}]),
    obs("72493-0", 1500, "[IU]/mL"),
    obs("5804-0", valueString="2+"),
    obs("29463-7", 70, "kg", effectivePeriod={"start": "2026-11-20"}),
    condition("CMV colitis", [("http://hl7.org/fhir/sid/icd-10-cm", "B25.8", "Other CMV")], onsetDateTime="2026-01-01"),
    {"resourceType": "AllergyIntolerance", "id": "a", "code": {"text": "ganciclovir"},
     "clinicalStatus": {"coding": [{"code": "active"}]}},
    med("valganciclovir 450 MG Oral Tablet", route={"coding": [{"system": "http://snomed.info/sct",
                                                                "code": "26643006"}]},
        dispenseRequest={"expectedSupplyDuration": {"value": 21, "unit": "days"}}),
    med("ganciclovir 500 MG Injection", dose=(5, "mg/kg"), timing={"code": {"coding": [{"code": "Q12H"}]}}),
]


@st.composite
def mutated(draw):
    """A valid template with arbitrary JSON put somewhere along one of its paths."""
    resource = copy.deepcopy(draw(st.sampled_from(TEMPLATES)))
    node = resource
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys + ["(new)"]))
        if key == "(new)":
            if isinstance(node, dict):
                node[draw(st.text(max_size=12) | INTERESTING_TEXT)] = draw(JSON)
            else:
                node.append(draw(JSON))
            return resource
        child = node[key]
        if isinstance(child, (dict, list)) and child and draw(st.booleans()):
            node = child
            continue
        node[key] = draw(JSON)
        return resource


def _record(resources, patient_resource) -> PatientRecord:
    record = PatientRecord(patient=patient_resource)
    record.add(resources)
    record.drafts = [r for r in resources if isinstance(r, dict) and r.get("resourceType") == "MedicationRequest"]
    record.selections = [f"MedicationRequest/{r.get('id')}" for r in record.drafts]
    return record


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(resources=st.lists(mutated(), max_size=6), patient_resource=st.one_of(st.just(patient()), JSON))
def test_arbitrary_json_inside_resources_never_raises(resources, patient_resource, facts_errors):
    before = len(facts_errors.records)
    result = build_facts(_record(resources, patient_resource), Policy(), NOW)
    assert isinstance(result, ClinicalFacts)
    assert len(facts_errors.records) == before, [r.getMessage() for r in facts_errors.records[before:]]


RESOURCE_TYPES = st.sampled_from(["Observation", "Condition", "MedicationRequest", "MedicationOrder",
                                  "AllergyIntolerance", "Patient", "Bundle", "Practitioner"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(resources=st.lists(st.one_of(JSON, st.builds(
    lambda t, body: {**body, "resourceType": t} if isinstance(body, dict) else {"resourceType": t}, RESOURCE_TYPES, JSON
)), max_size=8))
def test_arbitrary_resource_lists_never_raise(resources, facts_errors):
    before = len(facts_errors.records)
    record = PatientRecord()
    record.add(resources)
    record.drafts = [r for r in resources if isinstance(r, dict)]
    result = build_facts(record, Policy(), NOW)
    assert isinstance(result, ClinicalFacts)
    assert len(facts_errors.records) == before, [r.getMessage() for r in facts_errors.records[before:]]


def test_a_failing_part_is_left_out_and_reported(monkeypatch, caplog):
    import cds_service.facts as facts_module

    def broken(*args, **kwargs):
        raise RuntimeError("patient data in a message must not be logged")

    monkeypatch.setattr(facts_module, "read_observations", broken)
    with caplog.at_level(logging.ERROR, logger="cds_service.facts"):
        f = facts(observations=basics(), conditions=[condition("CMV colitis")])
    assert f.labs.by_analyte == {} and f.conditions.cmv_disease_sites == {"gi"}
    assert any(q.item == "observations" and q.kind == "missing" for q in f.quality)
    assert "RuntimeError" in caplog.text and "patient data" not in caplog.text


def test_record_parts_that_could_not_be_retrieved_are_said():
    record = PatientRecord(patient=patient(), unavailable={"observations": "FHIR server returned 503"})
    f = build_facts(record, Policy(), NOW)
    (issue,) = f.issues_for("observations")
    assert issue.kind == "missing" and "laboratory results" in issue.detail and "503" in issue.detail


# ---------------------------------------------------------------------------------------------
# Performance: a 10,000-observation record


def test_ten_thousand_observations_build_fast():
    analytes = [("2160-0", 1.2, "mg/dL"), ("751-8", 3.1, "10*3/uL"), ("777-3", 200, "10*3/uL"),
                ("2823-3", 4.1, "mmol/L"), ("72493-0", 1500, "[IU]/mL"), ("29463-7", 70, "kg"),
                ("8302-2", 170, "cm")] + [(f"9999-{i}", 1, "mg") for i in range(7)]
    observations = []
    for i in range(10_000):
        code, value, unit = analytes[i % len(analytes)]
        when = (NOW - timedelta(hours=i * 2)).isoformat()
        observations.append(obs(code, value, unit, when=when, id=f"o{i}"))
    record = PatientRecord(patient=patient(), observations=observations)
    build_facts(record, Policy(), NOW)  # warm caches
    started = time.perf_counter()
    result = build_facts(record, Policy(), NOW)
    elapsed = time.perf_counter() - started
    assert result.renal is not None and len(result.viral_load.results) == 200
    # Typically 30-40 ms; the bound leaves room for a loaded CI machine.
    assert elapsed < 0.5, f"{elapsed * 1000:.0f} ms"


# ---------------------------------------------------------------------------------------------
# The fixture patients


def _fixture(name: str) -> ClinicalFacts:
    with open(ROOT / "fhir_fixtures" / "requests" / name, encoding="utf-8") as fh:
        body = json.load(fh)
    return build_facts(PatientRecord.from_hook(body["context"], body.get("prefetch") or {}), Policy(), NOW)


def test_every_fixture_request_builds_without_unexpected_errors(facts_errors):
    before = len(facts_errors.records)
    names = sorted(p.name for p in (ROOT / "fhir_fixtures" / "requests").glob("*.json"))
    assert names
    for name in names:
        assert isinstance(_fixture(name), ClinicalFacts), name
    assert len(facts_errors.records) == before


def test_fixture_sandbox_renal():
    f = _fixture("sandbox-renal.order-select.json")
    (order,) = f.drafts
    assert order.describe() == "valganciclovir 900 mg every 12 h (oral)"
    assert f.renal.crcl_ml_min == round((140 - 56) * 70 / (72 * 2.3), 1)


def test_fixture_stale_labs():
    f = _fixture("stale-labs.order-select.json")
    assert f.renal is None
    assert {q.kind for q in f.issues_for("creatinine")} == {"stale"}
    assert {q.kind for q in f.issues_for("weight")} == {"stale"}


def test_fixture_dstu2_order():
    f = _fixture("liver-renal-dstu2.order-sign.json")
    (order,) = f.drafts
    assert order.id.startswith("MedicationOrder/") and order.dose_mg == 900 and order.interval_hours == 12


def test_name_readers_cache_short_texts_only():
    """Drug and problem names repeat across calls and are read once; a text too long to be a name
    is read each time and never held (a request must not be able to fill the memory)."""
    reads = []

    @fhir.cached_by_text
    def words(text: str) -> int:
        reads.append(len(text))
        return len(text.split())

    short, long = "valganciclovir 450 MG Oral Tablet", "x " * fhir.CACHED_TEXT_LENGTH
    assert [words(short), words(short), words(long), words(long)] == [5, 5, 1000, 1000]
    assert reads == [len(short), len(long), len(long)]


def test_concept_readers_cache_small_json_values_only():
    """Route and drug concepts repeat across orders and calls and are read once per distinct JSON; a
    value too large to be a concept, or not JSON at all, is read each time and never held."""
    reads = []

    @fhir.cached_by_json
    def codes_of(concept) -> tuple:
        reads.append(concept)
        return tuple(c.get("code") for c in concept.get("coding", []))

    oral = {"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]}
    large = {"coding": [{"code": "x" * fhir.CACHED_TEXT_LENGTH}]}
    odd = {"coding": [{"code": 2**70}]}  # json reads integers of any size; orjson writes 64 bits at most
    assert [codes_of(oral), codes_of(dict(oral)), codes_of(large), codes_of(large), codes_of(odd)] == [
        ("26643006",), ("26643006",), ("x" * fhir.CACHED_TEXT_LENGTH,), ("x" * fhir.CACHED_TEXT_LENGTH,), (2**70,)]
    assert reads == [oral, large, large, odd]
    codes_of.cache_clear()
    codes_of(oral)
    assert len(reads) == 5


def test_orders_of_one_drug_concept_read_alike_however_often():
    # The drug and route read from a cached concept are the same as from a fresh one, problems included.
    from cds_service.facts.medications import read_order
    resource = {"resourceType": "MedicationRequest", "id": "a", "status": "active",
                "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                          "code": "42316"}], "text": "valganciclovir 450 MG Oral Tablet"},
                "dosageInstruction": [{"route": {"text": "per rectum weekly"}, "doseAndRate": [
                    {"doseQuantity": {"value": 900, "unit": "mg"}}], "timing": {"code": {"text": "BID"}}}]}
    first, second = (read_order(resource, is_draft=False, dosing_weight=None) for _ in range(2))
    assert first == second and first.problems == second.problems
    assert any("coded as tacrolimus but named valganciclovir" in p for p in first.problems)
    assert any("neither IV nor oral" in p for p in first.problems) and first.ingredient is None


def nested_value(levels: int, leaf: object) -> object:
    """`leaf` inside `levels` alternating objects and arrays."""
    for level in range(levels):
        leaf = {"x": leaf} if level % 2 else [leaf]
    return leaf


@pytest.mark.parametrize("leaf", [1, "a", None, [], {}])
def test_deeper_than_counts_the_levels_of_values(leaf):
    # A value inside n containers is n levels deep (an empty container holds no value: no level).
    value = nested_value(6, leaf)
    assert fhir.deeper_than(value, 5)
    assert not fhir.deeper_than(value, 6)
    assert fhir.deeper_than([1, value], 6)  # the deepest branch counts
    assert not fhir.deeper_than([1, value], 7)
    assert not fhir.deeper_than(leaf, 0)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-11-20", date(2026, 11, 20)),
        ("2026-11-20T23:30:00-05:00", date(2026, 11, 20)),  # the date as written, in its own offset
        ("2026-11", date(2026, 11, 1)),  # a partial date: its first day
        ("2026-W47-1", None),  # ISO week dates and basic formats are not FHIR dates
        ("20261120xx", None),
        ("2026-13-01", None),
        ("", None),
        (20261120, None),
        # Sentinels, not dates on a clinical record ("unknown", "open"): unreadable, so no rule's date
        # arithmetic leaves the calendar.
        ("0001-01-02", None),
        ("0001-01-02T00:00:00Z", None),
        ("9999-12-31", None),
        ("1800-01-01", date(1800, 1, 1)),
    ],
)
def test_dates_are_read_as_fhir_writes_them(value, expected):
    assert fhir.parse_date(value) == expected


@pytest.mark.parametrize("effective", ["9999-12-31", "0001-01-01", "2026-13-45"])
def test_a_result_whose_effective_date_cannot_be_read_is_undated_not_dated_by_its_issue(effective):
    # The issue time, usually later, could make the result look newer than it is: the 4.0 is undated,
    # said as such, and not the current creatinine; and since it may be the newest, the dated 1.8 is not
    # taken as current in its place (no clearance, so no dose: the missing-data card says why).
    from cds_service.clinical import evaluate
    unreadable = obs("2160-0", 4.0, "mg/dL", when=effective, issued="2026-11-26T08:00:00Z")
    read = facts(observations=[obs("29463-7", 70, "kg"), unreadable, obs("2160-0", 1.8, "mg/dL", when="2026-11-24T08:00:00Z")],
                 drafts=[med("valganciclovir 450 MG Oral Tablet", status="draft")])
    assert read.labs.series("creatinine") == () and read.renal is None
    (undated,) = [q for q in read.quality if (q.item, q.kind) == ("creatinine", "undated")]
    assert undated.detail.endswith("may be the newest; dated results are not used in its place")
    missing = [f for f in evaluate(read, Policy(), "order-sign", read.drafts) if f.topic == "missing-data"]
    assert missing and "may be the newest" in missing[0].detail


def test_an_order_dated_at_the_calendars_edge_is_an_order_without_that_date():
    # An active IV ganciclovir order written "0001-01-02": its start is unknown (before, the resistance
    # and course rules' date arithmetic raised OverflowError).
    from cds_service.clinical import evaluate
    order = med("ganciclovir 350 MG Injection", dose=(350, "mg"), authoredOn="0001-01-02")
    viral_load = obs("72493-0", 3000, "[IU]/mL")
    read = facts(observations=[*basics(), viral_load], medications=[order])
    assert [m.start for m in read.medications] == [None] and read.viral_load.results
    assert "cmv-status" in {f.topic for f in evaluate(read, Policy(), "patient-view", ())}


@pytest.mark.parametrize("reference, other", [
    ("Patient/p1", False), ("https://ehr.example/fhir/Patient/p1/_history/3", False), ("urn:uuid:0c1f", False),
    ("#contained", False), ("Patient/p2", True), ("http://ehr.example/fhir/Patient/p2", True),
])
def test_entries_naming_another_patient_are_left_out_and_said(reference, other):
    obs = {"resourceType": "Observation", "id": "o1", "subject": {"reference": reference}}
    allergy = {"resourceType": "AllergyIntolerance", "id": "a1", "patient": {"reference": reference}}
    draft = {"resourceType": "MedicationRequest", "id": "d1", "subject": {"reference": reference}}
    context = {"patientId": "p1", "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": draft}]}}
    prefetch = {"observations": {"resourceType": "Bundle", "entry": [{"resource": obs}]},
                "allergies": {"resourceType": "Bundle", "entry": [{"resource": allergy}]}}
    record = PatientRecord.from_hook(context, prefetch)
    assert (record.observations, record.allergies) == (([], []) if other else ([obs], [allergy]))
    assert set(record.unavailable) == ({"observations", "allergies"} if other else set())
    assert record.drafts == [draft]  # the orders being written in this chart are all checked


@pytest.mark.parametrize("selection", [
    "MedicationRequest/d1", "https://ehr.example/fhir/MedicationRequest/d1", "http://ehr/fhir/MedicationRequest/d1/_history/2",
    "MedicationRequest/d1/_history/2"])
def test_a_selection_given_as_an_absolute_reference_names_its_draft(selection):
    record = PatientRecord.from_hook({"patientId": "p1", "selections": [selection, "urn:uuid:0c1f"]}, {})
    assert record.selections == ["MedicationRequest/d1", "urn:uuid:0c1f"]
