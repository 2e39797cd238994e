"""Hypothesis strategies for FHIR nobody cleaned: arbitrary JSON, near-valid resources built from the
codes and units the service reads, and fixture requests with a few fields spoiled.

Everything drawn is JSON as a client could send it (finite numbers, any strings): what the service
must cope with, not what it could never receive.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any, Iterator

from hypothesis import strategies as st

from cds_service.facts.codes import ANALYTE_LOINC, VIRAL_LOAD_LOINC
from cds_service.facts.drugs import DRUGS
from cds_service.facts.units import CONVERSIONS

# ------------------------------------------------------------------------------------- scalars

ODD_NUMBERS = [0, -0.0, -1, 1e308, -1e308, 5e-324, 1e-12, 2**53 + 1, 10**20, 2**63, -(2**63) - 1, 0.1 + 0.2]
ODD_STRINGS = [
    "", " ", "\u0000", "\u202e", "\x1b[2J", "NaN", "Infinity", "1e999", "-1", "0", "null", "true", "<0.1", ">=5",
    "2026-13-45", "2026-11-26T25:00:00Z", "9999-12-31", "0001-01-01", "2026", "2026-02", "2026-11-26T12:00:00",
    "mg/dL", "umol/L", "kg", "[lb_av]", "{pill}", "%", "10*3/uL", "Patient/", "MedicationRequest/x", "x" * 300,
]
numbers = st.one_of(
    st.integers(-1000, 1000),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(ODD_NUMBERS),
)
texts = st.one_of(st.text(max_size=24), st.sampled_from(ODD_STRINGS))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
FHIR_KEYS = ["resourceType", "id", "value", "unit", "code", "system", "coding", "text", "entry", "resource",
             "valueQuantity", "effectiveDateTime", "status", "subject", "reference", "dosageInstruction",
             "doseAndRate", "doseQuantity", "timing", "repeat", "frequency", "period", "periodUnit"]
junk = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FHIR_KEYS), st.text(max_size=8)), children, max_size=4),
    ),
    max_leaves=12,
)

# ----------------------------------------------------------------------- near-valid resources

PATIENT_ID = "fuzz-pt"
NUMERIC_WORDS = st.sampled_from(["1.2", "70", "-3", "1,2", "1.2 mg/dL", "", "lots"])
values = st.one_of(numbers, numbers, NUMERIC_WORDS, st.none(), st.booleans(), junk)
DATES = st.one_of(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2035, 1, 1)).map(date.isoformat),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(["2026-11-25T08:00:00Z", "2026-11-26T11:59:59+00:00", "2026-11-26", "2026-11", "2026",
                     "2027-06-01T00:00:00Z", "2026-11-25T08:00:00-14:00"]),
    texts,
)
ALL_UNITS = sorted({u for table in CONVERSIONS.values() for u in table} | {"[IU]/mL", "copies/mL", "log10 IU/mL",
                                                                           "mL/min", "furlongs", "%"})
LOINC_CODES = [c for codes in ANALYTE_LOINC.values() for c in codes] + list(VIRAL_LOAD_LOINC)


@st.composite
def quantity(draw) -> dict:
    q: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        q["value"] = draw(values)
    unit = draw(st.sampled_from(ALL_UNITS) | texts)
    if draw(st.booleans()):
        q["unit"] = unit
    if draw(st.booleans()):
        q["code"] = draw(st.just(unit) | st.sampled_from(ALL_UNITS))
        q["system"] = draw(st.sampled_from(["http://unitsofmeasure.org", "urn:other"]) | texts)
    if draw(st.integers(0, 5)) == 0:
        q["comparator"] = draw(st.sampled_from(["<", "<=", ">", ">=", "~", "ad"]) | texts)
    return q


@st.composite
def observation(draw, oid: str) -> dict:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": draw(st.sampled_from(["final", "amended", "preliminary", "entered-in-error", "cancelled"]) | texts),
        "code": {"coding": [{"system": draw(st.sampled_from(["http://loinc.org", "urn:oid:2.16.840.1.113883.6.1"]) | texts),
                             "code": draw(st.sampled_from(LOINC_CODES) | texts)}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }
    when = draw(st.sampled_from(["effectiveDateTime", "issued", "effectiveInstant", None]))
    if when:
        obs[when] = draw(DATES)
    kind = draw(st.sampled_from(["valueQuantity"] * 6 + ["valueString", "valueCodeableConcept", "valueInteger", "junk"]))
    if kind == "valueQuantity":
        obs["valueQuantity"] = draw(quantity())
    elif kind == "valueString":
        obs["valueString"] = draw(st.sampled_from(["Not detected", "<137 IU/mL", "detected", "12,500 IU/mL",
                                                  "1+", "trace", "positive 3 cells"]) | texts)
    elif kind == "valueCodeableConcept":
        obs["valueCodeableConcept"] = {"coding": [{"system": "http://snomed.info/sct",
                                                   "code": draw(st.sampled_from(["260415000", "260373001", "419984006"]) | texts)}]}
    elif kind == "valueInteger":
        obs["valueInteger"] = draw(values)
    else:
        obs[draw(st.sampled_from(["value", "valueQuantity", "valueRange"]))] = draw(junk)
    if draw(st.integers(0, 3)) == 0:
        obs["referenceRange"] = [{"low": draw(quantity()), "high": draw(quantity())}]
    if draw(st.integers(0, 3)) == 0:
        obs["interpretation"] = [{"coding": [{"code": draw(st.sampled_from(["L", "H", "N", "ND", "LL", "HH"]) | texts)}]}]
    return obs


@st.composite
def patient(draw) -> dict:
    resource: dict[str, Any] = {"resourceType": "Patient", "id": PATIENT_ID}
    if draw(st.integers(0, 4)):
        resource["birthDate"] = draw(DATES | values)
    if draw(st.integers(0, 4)):
        resource["gender"] = draw(st.sampled_from(["male", "female", "other", "unknown"]) | texts)
    return resource


DRUG_NAMES = [d.ingredient for d in DRUGS]


@st.composite
def medication_request(draw, mid: str, status: str) -> dict:
    name = draw(st.sampled_from(DRUG_NAMES) | texts)
    order: dict[str, Any] = {
        "resourceType": draw(st.sampled_from(["MedicationRequest"] * 4 + ["MedicationOrder"])),
        "id": mid,
        "status": status,
        "intent": draw(st.sampled_from(["order", "plan", "proposal"]) | texts),
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "medicationCodeableConcept": {"text": draw(st.sampled_from([name, f"{name} 450 MG Oral Tablet",
                                                                   f"{name} 500 MG Injection"]))},
    }
    dosage: dict[str, Any] = {}
    if draw(st.integers(0, 4)):
        dosage["doseAndRate"] = [{"doseQuantity": draw(quantity())}]
    if draw(st.integers(0, 4)):
        dosage["timing"] = {"repeat": {
            "frequency": draw(values), "period": draw(values),
            "periodUnit": draw(st.sampled_from(["h", "d", "wk", "mo", "min", "a"]) | texts),
        }}
    if draw(st.booleans()):
        dosage["route"] = {"coding": [{"system": "http://snomed.info/sct",
                                       "code": draw(st.sampled_from(["47625008", "26643006", "54485002"]) | texts)}]}
    if draw(st.integers(0, 3)) == 0:  # the course's dates, in any order
        bounds = {key: draw(DATES) for key in ("start", "end") if draw(st.booleans())}
        dosage.setdefault("timing", {}).setdefault("repeat", {})["boundsPeriod"] = bounds
    if dosage:
        order["dosageInstruction"] = [dosage]
    if draw(st.integers(0, 3)) == 0:
        order["authoredOn"] = draw(DATES)
    if draw(st.integers(0, 5)) == 0:
        order["dateEnded"] = draw(DATES)  # DSTU2
    return order


def searchset(resources: list) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


@st.composite
def near_valid_request(draw, hook: str) -> dict:
    """A well-formed hook request whose FHIR is drawn: every field the rules read, at any value."""
    observations = draw(st.lists(st.integers(0, 10**6), max_size=12, unique=True))
    drafts = [draw(medication_request(f"draft-{i}", "draft")) for i in range(draw(st.integers(0 if hook == "patient-view" else 1, 3)))]
    context: dict[str, Any] = {"userId": "Practitioner/fuzz", "patientId": PATIENT_ID}
    if hook != "patient-view":
        context["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": d} for d in drafts]}
    if hook == "order-select":
        context["selections"] = [f"{d['resourceType']}/{d['id']}" for d in drafts[: draw(st.integers(0, len(drafts)))]]
    return {
        "hook": hook,
        "hookInstance": "fuzz",
        "context": context,
        "prefetch": {
            "patient": draw(patient()),
            "observations": searchset([draw(observation(f"o{n}")) for n in observations]),
            "medications": searchset([draw(medication_request(f"m{i}", draw(st.sampled_from(["active", "completed", "stopped"]))))
                                      for i in range(draw(st.integers(0, 3)))]),
            "conditions": searchset([]),
            "allergies": searchset([]),
        },
    }


# --------------------------------------------------------------------- spoiled fixture requests


def paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """The path (keys and indexes) of every value in a JSON document, the root excluded."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield prefix + (key,)
            yield from paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield prefix + (i,)
            yield from paths(item, prefix + (i,))


# Where bad data does the most harm: the inputs of a dose, dates, codes, the hook's own fields.
HOT = {"valueQuantity", "doseQuantity", "doseAndRate", "value", "unit", "code", "birthDate", "gender",
       "effectiveDateTime", "timing", "repeat", "frequency", "period", "periodUnit", "dosageInstruction",
       "medicationCodeableConcept", "status", "context", "selections", "draftOrders", "prefetch", "resourceType",
       "entry", "resource", "hook", "hookInstance", "fhirServer"}


def _get(document: Any, path: tuple) -> Any:
    for step in path:
        document = document[step]
    return document


def _mutate(draw, document: Any, path: tuple) -> None:
    parent, last = _get(document, path[:-1]), path[-1]
    current = parent[last]
    op = draw(st.sampled_from(["delete", "junk", "scalar", "number-as-string", "string-as-number", "extreme",
                               "wrap", "unwrap", "null", "empty", "duplicate"]))
    if op == "delete":
        del parent[last]
        return
    if op == "junk":
        new = draw(junk)
    elif op == "scalar":
        new = draw(scalars)
    elif op == "number-as-string":
        new = str(current) if isinstance(current, (int, float)) and not isinstance(current, bool) else draw(NUMERIC_WORDS)
    elif op == "string-as-number":
        new = draw(numbers)
    elif op == "extreme":
        new = draw(st.sampled_from(ODD_NUMBERS))
    elif op == "wrap":
        new = [current]
    elif op == "unwrap":
        new = (current[0] if current else None) if isinstance(current, list) else current
    elif op == "null":
        new = None
    elif op == "empty":
        new = draw(st.sampled_from(["", [], {}]))
    else:  # duplicate: a list gets its item twice (same ids), anything else becomes a pair
        if isinstance(parent, list):
            parent.insert(last, copy.deepcopy(current))
            return
        new = [current, copy.deepcopy(current)]
    parent[last] = new


@st.composite
def spoiled(draw, document: dict, max_mutations: int = 4) -> dict:
    """`document` (not changed) with 1..max_mutations values deleted, replaced or retyped; most
    mutations land on HOT fields."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, max_mutations))):
        every = list(paths(document))
        if not every:
            break
        hot = [p for p in every if p[-1] in HOT]
        path = draw(st.sampled_from(hot if hot and draw(st.integers(0, 3)) else every))
        _mutate(draw, document, path)
    return document
