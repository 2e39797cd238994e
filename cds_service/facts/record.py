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
    # Prefetch keys whose data could not be had (OperationOutcome, fetch failure): key -> reason.
    unavailable: dict[str, str] = field(default_factory=dict)

    def add(self, resources: Iterable[Any]) -> None:
        """Sort resources (or Bundles of them) into their lists; anything else is counted."""
        lists = {kind: getattr(self, name) for kind, name in _LISTS.items()}
        for resource in resources:
            kind = resource.get("resourceType") if isinstance(resource, dict) else None
            found = lists.get(kind) if isinstance(kind, str) else None  # a non-string type must not raise
            if found is not None:
                found.append(resource)
            elif kind == "Bundle":
                self.add(bundle_resources(resource))
            elif kind == "Patient":
                self.patient = self.patient or resource
            else:
                self.ignored += 1

    @classmethod
    def from_hook(
        cls,
        context: Mapping[str, Any],
        prefetch: Mapping[str, Any],
        unavailable: Mapping[str, str] | None = None,
    ) -> "PatientRecord":
        """Build from a hook's context (draftOrders, selections) and resolved prefetch values."""
        record = cls(unavailable=dict(unavailable or {}))
        record.add(v for v in prefetch.values() if v is not None)
        drafts = context.get("draftOrders")
        if isinstance(drafts, dict):
            record.drafts = [r for r in bundle_resources(drafts) if isinstance(r, dict)]
        selections = context.get("selections")
        if isinstance(selections, list):
            record.selections = [s for s in selections if isinstance(s, str)]
        return record


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
