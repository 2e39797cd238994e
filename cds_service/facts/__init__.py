"""Facts layer: FHIR R4 (tolerant of DSTU2 orders) to typed clinical facts.

Public API:
    build_facts(record, policy, now) -> ClinicalFacts
    PatientRecord  (the raw FHIR, sorted by type)
"""

from cds_service.facts.model import ClinicalFacts
from cds_service.facts.record import PatientRecord

__all__ = ["ClinicalFacts", "PatientRecord", "build_facts"]


def build_facts(record, policy, now):  # pragma: no cover - replaced by the facts implementation
    raise NotImplementedError
