"""Builders for raw FHIR resources and records, for the facts-layer tests."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cds_service.facts import build_facts
from cds_service.facts.model import ClinicalFacts
from cds_service.facts.record import PatientRecord
from cds_service.policy import Policy

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SHARED = Path(__file__).resolve().parents[4] / "shared"
ROOT = Path(__file__).resolve().parents[3]

_counter = iter(range(1, 10**9))


def patient(gender: Any = "male", birth: Any = "1962-05-01", **extra: Any) -> dict:
    resource = {"resourceType": "Patient", "id": "p1", **extra}
    if gender is not None:
        resource["gender"] = gender
    if birth is not None:
        resource["birthDate"] = birth
    return resource


def quantity(value: Any, unit: str | None, ucum: bool = True) -> dict:
    q: dict[str, Any] = {"value": value}
    if unit is not None:
        q["unit"] = unit
        if ucum:
            q["system"] = UCUM
            q["code"] = unit
    return q


def obs(
    code: str,
    value: Any = None,
    unit: str | None = None,
    *,
    when: str | None = "2026-11-25T08:00:00Z",
    status: str = "final",
    system: str = LOINC,
    ucum: bool = True,
    id: str | None = None,
    **extra: Any,
) -> dict:
    """An Observation; `value` is a valueQuantity value unless a value[x] is given in `extra`."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": id or f"obs-{next(_counter)}",
        "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
    }
    if when is not None:
        resource["effectiveDateTime"] = when
    if value is not None:
        resource["valueQuantity"] = quantity(value, unit, ucum)
    resource.update(extra)
    return resource


def condition(
    text: str | None = None,
    codings: list[tuple[str, str, str | None]] = (),
    *,
    clinical: Any = "active",
    verification: Any = None,
    id: str | None = None,
    **extra: Any,
) -> dict:
    code: dict[str, Any] = {}
    if text is not None:
        code["text"] = text
    if codings:
        code["coding"] = [
            {"system": s, "code": c, **({"display": d} if d else {})} for s, c, d in codings
        ]
    resource: dict[str, Any] = {"resourceType": "Condition", "id": id or f"cond-{next(_counter)}", "code": code}
    if clinical is not None:
        resource["clinicalStatus"] = (
            clinical if not isinstance(clinical, str) else
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}]}
        )
    if verification is not None:
        resource["verificationStatus"] = (
            verification if not isinstance(verification, str) else
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                         "code": verification}]}
        )
    resource.update(extra)
    return resource


def med(
    text: str | None = "valganciclovir 450 MG Oral Tablet",
    *,
    code: tuple[str, str] | None = None,
    dose: tuple[Any, str | None] | None = (2, "{pill}"),
    repeat: dict | None = None,
    timing: dict | None = None,
    route: dict | None = None,
    status: str | None = "active",
    kind: str = "MedicationRequest",
    id: str | None = None,
    **extra: Any,
) -> dict:
    """A MedicationRequest (R4 shape); `repeat` defaults to twice daily."""
    resource: dict[str, Any] = {"resourceType": kind, "id": id or f"med-{next(_counter)}"}
    if status is not None:
        resource["status"] = status
    if text is not None or code is not None:
        concept: dict[str, Any] = {}
        if text is not None:
            concept["text"] = text
        if code is not None:
            concept["coding"] = [{"system": code[0], "code": code[1], **({"display": text} if text else {})}]
        resource["medicationCodeableConcept"] = concept
    dosage: dict[str, Any] = {}
    if timing is None:
        timing = {"repeat": repeat if repeat is not None else {"frequency": 2, "period": 1, "periodUnit": "d"}}
    dosage["timing"] = timing
    if dose is not None:
        dosage["doseAndRate"] = [{"doseQuantity": quantity(dose[0], dose[1])}]
    if route is not None:
        dosage["route"] = route
    resource["dosageInstruction"] = [dosage]
    resource.update(extra)
    return resource


def record(
    patient_resource: Any = "default",
    observations: list | None = None,
    conditions: list | None = None,
    medications: list | None = None,
    allergies: list | None = None,
    drafts: list | None = None,
    selections: list | None = None,
) -> PatientRecord:
    return PatientRecord(
        patient=patient() if patient_resource == "default" else patient_resource,
        observations=list(observations or []),
        conditions=list(conditions or []),
        medications=list(medications or []),
        allergies=list(allergies or []),
        drafts=list(drafts or []),
        selections=list(selections or []),
    )


def facts(policy: Policy | None = None, now: datetime = NOW, **parts: Any) -> ClinicalFacts:
    return build_facts(record(**parts), policy or Policy(), now)


def basics(weight: float = 70, creatinine: float = 1.8, height: float | None = None,
           when: str = "2026-11-24T08:00:00Z") -> list[dict]:
    """Weight and creatinine (and height) observations, current by default."""
    found = [obs("29463-7", weight, "kg", when=when), obs("2160-0", creatinine, "mg/dL", when=when)]
    if height is not None:
        found.append(obs("8302-2", height, "cm", when=when))
    return found


def kinds(facts_: ClinicalFacts, item: str) -> set[str]:
    return {q.kind for q in facts_.issues_for(item)}


def sandbox_request(name: str) -> dict:
    with open(SHARED / "examples" / name, encoding="utf-8") as fh:
        return copy.deepcopy(json.load(fh))
