"""The raw FHIR a hook call brings, sorted by resource type, before any interpretation.

The protocol layer fills a `PatientRecord` from the resolved prefetch and the hook context; the facts
layer turns it into `ClinicalFacts`.  Resources stay plain JSON dicts: the facts layer selects what
the rules use by code and date first and type-checks each field it reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

Resource = Mapping[str, Any]  # parsed JSON: the checks below test for dict, which is also fast

# Resource types the facts layer reads, by the list they go to.
_LISTS = {
    "Observation": "observations",
    "Condition": "conditions",
    "MedicationRequest": "medications",
    "MedicationOrder": "medications",  # DSTU2
    "AllergyIntolerance": "allergies",
}


@dataclass
class PatientRecord:
    patient: Resource | None = None
    observations: list[Resource] = field(default_factory=list)
    conditions: list[Resource] = field(default_factory=list)
    medications: list[Resource] = field(default_factory=list)
    allergies: list[Resource] = field(default_factory=list)
    drafts: list[Resource] = field(default_factory=list)  # context.draftOrders entries
    selections: list[str] = field(default_factory=list)  # context.selections references
    ignored: int = 0  # entries that were not resources of a type we read
    patient_id: str | None = None  # context.patientId: resources naming another patient are left out
    # Entries left out because they name another patient, by list ("observations": 3).
    other_patient: dict[str, int] = field(default_factory=dict)
    # Prefetch keys whose data could not be had (OperationOutcome, fetch failure): key -> reason.
    unavailable: dict[str, str] = field(default_factory=dict)

    def add(self, resources: Iterable[Any]) -> None:
        """Sort resources (or Bundles of them) into their lists; anything else is counted."""
        own = f"Patient/{self.patient_id}"
        for resource in resources:
            kind = resource.get("resourceType") if isinstance(resource, dict) else None
            name = _LISTS.get(kind) if isinstance(kind, str) else None  # a non-string type must not raise
            if name is not None:
                subject = resource.get("subject") or resource.get("patient")
                # The usual reference (the context's patient, as the query asked) is told apart at once.
                if subject.__class__ is dict and subject.get("reference") != own and self._names_another(subject):
                    self.other_patient[name] = self.other_patient.get(name, 0) + 1
                else:
                    getattr(self, name).append(resource)
            elif kind == "Bundle":
                self.add(bundle_resources(resource))
            elif kind == "Patient":
                self.patient = self.patient or resource
            else:
                self.ignored += 1

    def _names_another(self, subject: Mapping[str, Any]) -> bool:
        """Whether a resource's subject (patient, in DSTU2 and AllergyIntolerance) names a patient other than the
        context's: a search Bundle may carry other patients' entries, and their labs, conditions or orders must
        never dose this one.  A reference that names no patient (none, urn:uuid:, contained) cannot be told."""
        reference = subject.get("reference")
        named = _patient_named(reference) if self.patient_id is not None and isinstance(reference, str) else None
        return named is not None and named != self.patient_id

    @classmethod
    def from_hook(
        cls,
        context: Mapping[str, Any],
        prefetch: Mapping[str, Any],
        unavailable: Mapping[str, str] | None = None,
    ) -> "PatientRecord":
        """Build from a hook's context (draftOrders, selections) and resolved prefetch values."""
        patient_id = context.get("patientId")
        record = cls(unavailable=dict(unavailable or {}), patient_id=patient_id if isinstance(patient_id, str) else None)
        record.add(v for v in prefetch.values() if v is not None)
        drafts = context.get("draftOrders")
        if isinstance(drafts, dict):
            # The orders being written in this chart: all checked (a subject naming another patient is the EHR's
            # to settle; dropping the order would leave it unchecked and unsaid).
            record.drafts = [r for r in bundle_resources(drafts) if isinstance(r, dict)]
        for name, count in record.other_patient.items():
            # What was read of that part may be another query's answer: as if not retrieved in full.
            record.unavailable.setdefault(name, f"in full: {count} of its entries name another patient than the "
                                                "context's patientId, left out")
        selections = context.get("selections")
        if isinstance(selections, list):
            record.selections = [_relative(s) for s in selections if isinstance(s, str)]
        return record


def _relative(reference: str) -> str:
    """'MedicationRequest/123' for a reference to it, absolute or not ('https://ehr/fhir/MedicationRequest/123'),
    with or without '/_history/2', as the drafts are named; anything else (urn:uuid:) as it is."""
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 and not reference.startswith("urn:") else reference


def _patient_named(reference: str) -> str | None:
    """The id of the Patient a reference names ('Patient/123', 'https://ehr/fhir/Patient/123/_history/2'), if any."""
    kind, _, rid = _relative(reference.split("?")[0]).partition("/")
    return rid or None if kind == "Patient" else None


def bundle_resources(bundle: Mapping[str, Any]) -> Iterator[Any]:
    """The resources of a Bundle's entries (tolerates a missing `type`, as the sandbox sends)."""
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return
    for entry in entries:
        if isinstance(entry, dict):
            search = entry.get("search")
            # An OperationOutcome included in a searchset is a warning, not data.
            if isinstance(search, dict) and search.get("mode") == "outcome":
                continue
            yield entry.get("resource")
