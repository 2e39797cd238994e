"""Facts layer: FHIR R4 (tolerant of DSTU2 orders) to typed clinical facts.

Public API:
    build_facts(record, policy, now) -> ClinicalFacts
    PatientRecord  (the raw FHIR, sorted by type)
    quality.current / quality.unavailable / quality.max_age_days  (is a value usable now, and why not)

Resources are read as plain JSON with total readers (facts/fhir.py) rather than validated with
fhir.resources models: whole-resource validation rejects a resource for a fault in a field the rules
never read (turning a usable creatinine into "missing"), rejects what real clients send (the CDS
Hooks sandbox's draft orders carry `category` as an object; DSTU2 MedicationOrder has no R4 model),
and checks none of what matters here (units, plausible ranges, dates).  Every field the rules read is
type-checked where it is read, and a resource that cannot be read is skipped and counted.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Callable, TypeVar

from cds_service.facts import drugs, fhir
from cds_service.facts.conditions import read_conditions
from cds_service.facts.labs import CREATININE_HISTORY_RESULTS, read_observations
from cds_service.facts.medications import MAX_ORDERS_ON_RECORD, read_orders
from cds_service.facts.model import (
    ClinicalFacts,
    ConditionFacts,
    DataQualityIssue,
    LabFacts,
    MedicationOrder,
    PatientFacts,
    ViralLoadSeries,
)
from cds_service.facts.patient import read_patient
from cds_service.facts.record import PatientRecord
from cds_service.facts.renal import assess_renal
from cds_service.policy import Policy

__all__ = ["ClinicalFacts", "PatientRecord", "build_facts"]

log = logging.getLogger("cds_service.facts")

T = TypeVar("T")

ANTI_CMV_INGREDIENTS = frozenset(d.ingredient for d in drugs.DRUGS if drugs.ANTI_CMV in d.classes)

# What each prefetch key's data is, for "could not be retrieved" issues.
RECORD_PARTS = {
    "patient": "the patient's demographics",
    "observations": "laboratory results and vital signs",
    "medications": "medication orders on record",
    "conditions": "the problem list",
    "allergies": "allergies and intolerances",
}


def build_facts(record: PatientRecord, policy: Policy, now: datetime) -> ClinicalFacts:
    """Read a hook call's FHIR into ClinicalFacts as of `now`.  Never raises on bad FHIR: an
    unreadable resource is skipped and counted, and a part that fails is left out and reported."""
    now = fhir.aware(now)
    issues: list[DataQualityIssue] = []
    skipped = 0

    for key, reason in _mapping_items(getattr(record, "unavailable", None)):
        what = RECORD_PARTS.get(key, f"prefetch {key!r}")
        issues.append(DataQualityIssue("missing", key, f"{what} could not be retrieved ({str(reason)[:120]})"))

    patient, patient_issues = _stage(
        "patient", issues, lambda: read_patient(getattr(record, "patient", None), now),
        (PatientFacts(None, None, None, "unknown"), []),
    )
    issues += patient_issues

    reading = _stage("observations", issues, lambda: read_observations(_list(record, "observations"), now), None)
    labs = reading.labs if reading else LabFacts()
    if reading:
        issues += reading.issues
        skipped += reading.skipped

    assessment = _stage("renal function", issues, lambda: assess_renal(patient, labs, policy, now, issues), None)
    if assessment:
        issues += assessment.issues

    conditions, condition_skips = _stage(
        "conditions", issues,
        lambda: read_conditions(_list(record, "conditions"), _list(record, "allergies")),
        (ConditionFacts(), 0),
    )
    skipped += condition_skips

    dosing_weight = assessment.dosing_weight if assessment else None
    orders: dict[bool, list[MedicationOrder]] = {}
    for is_draft, key in ((False, "medications"), (True, "drafts")):
        found, order_skips = _stage(
            key, issues,
            lambda key=key, is_draft=is_draft: read_orders(
                _list(record, key), drafts=is_draft, dosing_weight=dosing_weight, now=now
            ),
            ([], 0),
        )
        if not is_draft and len(found) > MAX_ORDERS_ON_RECORD:
            # What the record leaves unread is unknown, as if not retrieved: an absence proves nothing.
            issues.append(DataQualityIssue("missing", "medications", (
                f"medication orders on record: {len(found):,} current or recently ended, only the newest "
                f"{MAX_ORDERS_ON_RECORD} read")))
            order_skips += len(found) - MAX_ORDERS_ON_RECORD
            found = found[:MAX_ORDERS_ON_RECORD]
        orders[is_draft] = found
        skipped += order_skips
        issues += _order_issues(found)
    # A cidofovir course on record: its label judges the creatinine rise since the course began.
    if reading and any("cidofovir" in (o.ingredient or "").split("/") for o in orders[False]):
        labs = reading.with_history("creatinine", CREATININE_HISTORY_RESULTS, now)

    selections = getattr(record, "selections", None)
    return ClinicalFacts(
        evaluated_at=now,
        patient=patient,
        labs=labs,
        viral_load=reading.viral_load if reading else ViralLoadSeries(),
        pp65=reading.pp65 if reading else (),
        renal=assessment.renal if assessment else None,
        dosing_weight=dosing_weight,
        conditions=conditions,
        medications=tuple(orders[False]),
        drafts=tuple(orders[True]),
        selected=frozenset(s for s in selections if isinstance(s, str)) if isinstance(selections, list) else frozenset(),
        quality=tuple(dict.fromkeys(issues)),
        skipped_resources=skipped,
        pp65_unread=reading.pp65_unread if reading else (),
    )


def _order_issues(orders: list[MedicationOrder]) -> list[DataQualityIssue]:
    """Anti-CMV orders whose dose, timing or drug could not be read."""
    issues = []
    for order in orders:
        if not order.problems:
            continue
        named = drugs.ingredients_named([order.ingredient or "", order.drug_text or ""])
        if ANTI_CMV_INGREDIENTS & set(named):
            name = order.ingredient or order.drug_text
            issues.append(DataQualityIssue(
                "unparseable-order", order.id, f"{name} order: {'; '.join(order.problems)}", order.id
            ))
    return issues


def _stage(name: str, issues: list[DataQualityIssue], read: Callable[[], T], fallback: T) -> T:
    """Run one part of the facts build; if it fails (a bug, not bad data: readers are total), leave
    its facts out, say so, and carry on with the rest."""
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - one part must not take the whole hook call down
        # Only the exception type: messages may quote patient data.
        log.error("facts: reading %s failed unexpectedly (%s)", name, type(exc).__name__)
        issues.append(DataQualityIssue("missing", name, f"{name} could not be read (internal error)"))
        return fallback


def _list(record: Any, name: str) -> list[Any]:
    value = getattr(record, name, None)
    return value if isinstance(value, list) else []


def _mapping_items(value: Any) -> list[tuple[Any, Any]]:
    return list(value.items()) if isinstance(value, dict) else []
