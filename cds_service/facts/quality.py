"""Data-quality findings, and the helpers the clinical layer uses to ask "is this value usable now?".

The facts layer reports what it could not read as `DataQualityIssue`s (kind, item, plain-words
detail).  It always assesses the inputs every dose depends on (age, sex, weight, creatinine); other
analytes get issues only for values that exist but could not be used (unit unknown, implausible,
undated) and are newer than the newest usable value.  Whether an analyte is *current* depends on
the rule asking, so rules call:

    current(facts, "anc", max_age_days(policy, "anc"))        -> Measurement | None
    unavailable(facts, "anc", max_age_days(policy, "anc"))    -> DataQualityIssue | None

`unavailable` says why there is no current value: "stale" (with the value's date and age) or
"missing" (mentioning any newer result that could not be used).
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Mapping

from cds_service.facts.fhir import aware
from cds_service.facts.model import ClinicalFacts, DataQualityIssue, LabFacts, Measurement, display_number
from cds_service.policy import Policy

# How analytes are named in the words of a card.
LABELS: Mapping[str, str] = {
    "creatinine": "creatinine",
    "crcl_reported": "reported creatinine clearance",
    "egfr": "eGFR",
    "anc": "ANC",
    "wbc": "WBC",
    "platelets": "platelet count",
    "hemoglobin": "hemoglobin",
    "potassium": "potassium",
    "magnesium": "magnesium",
    "calcium": "calcium",
    "ionized_calcium": "ionized calcium",
    "phosphate": "phosphate",
    "urine_protein": "urine protein",
    "urine_protein_dipstick": "urine protein (dipstick)",
    "weight": "weight",
    "height": "height",
    "cmv_viral_load": "CMV PCR",
    "cmv_pp65": "CMV pp65 antigen",
}

# A result dated up to this far after "now" is clock skew between systems, not an error.
FUTURE_TOLERANCE_DAYS = 1.0


def label(item: str) -> str:
    return LABELS.get(item, item)


def max_age_days(policy: Policy, analyte: str) -> int:
    """The policy's staleness window for an analyte."""
    if analyte in ("creatinine", "crcl_reported", "egfr"):
        return policy.creatinine_max_age_days
    if analyte == "weight":
        return policy.weight_max_age_days
    if analyte == "height":
        return policy.height_max_age_days
    if analyte in ("anc", "wbc", "platelets", "hemoglobin"):
        return policy.blood_count_max_age_days
    if analyte in ("urine_protein", "urine_protein_dipstick"):
        return policy.urine_protein_max_age_days
    if analyte in ("potassium", "magnesium", "calcium", "ionized_calcium", "phosphate"):
        return policy.electrolyte_max_age_days
    raise KeyError(f"no staleness window for {analyte!r}")


def _labs_and_now(source: ClinicalFacts | LabFacts, now: datetime | None) -> tuple[LabFacts, datetime]:
    if isinstance(source, ClinicalFacts):
        return source.labs, aware(now or source.evaluated_at)
    if now is None:
        raise ValueError("now is required with LabFacts")
    return source, aware(now)


def current(
    source: ClinicalFacts | LabFacts, analyte: str, max_age_days: float, now: datetime | None = None
) -> Measurement | None:
    """The newest usable value of an analyte if it is at most `max_age_days` old, else None.

    `now` defaults to the facts' evaluation time.  The value may be a bound (comparator set, e.g.
    ANC "<100"): callers that need an exact number check `comparator`.
    """
    labs, now = _labs_and_now(source, now)
    latest = labs.latest(analyte)
    if latest is None:
        return None
    age = latest.age_days(now)
    return latest if age is not None and age <= max_age_days else None


def unavailable(
    source: ClinicalFacts | LabFacts, analyte: str, max_age_days: float, now: datetime | None = None
) -> DataQualityIssue | None:
    """Why `current` returns None, as an issue a card can cite; None when a current value exists."""
    labs, now = _labs_and_now(source, now)
    known = source.quality if isinstance(source, ClinicalFacts) else ()
    return describe_unavailable(labs, analyte, max_age_days, now, known)


def describe_unavailable(
    labs: LabFacts, analyte: str, max_age_days: float, now: datetime, known: Iterable[DataQualityIssue] = ()
) -> DataQualityIssue | None:
    """`unavailable` for the facts layer's own use (`known`: issues already found for the record)."""
    latest = labs.latest(analyte)
    if latest is not None:
        age = latest.age_days(now) or 0.0
        if age <= max_age_days:
            return None
        return stale_issue(analyte, latest, age, max_age_days)
    detail = f"no usable {label(analyte)} result on record"
    unusable = [q.detail for q in known if q.item == analyte and q.kind in UNUSABLE_KINDS]
    if unusable:
        detail += f" ({'; '.join(unusable)})"
    return DataQualityIssue("missing", analyte, detail)


# Kinds that say a value exists but could not be used.
UNUSABLE_KINDS = ("implausible", "conflicting", "unit-unknown", "undated", "preliminary")


def stale_issue(item: str, measurement: Measurement, age_days: float, limit_days: float) -> DataQualityIssue:
    when = f"({measurement.date_words})" if measurement.dated_by_report else f"of {measurement.date_words}"
    return DataQualityIssue("stale", item, f"{label(item)} {value_text(measurement)} {when} is {_older(age_days, limit_days)}",
                            measurement.source_id)


def _older(age_days: float, limit_days: float) -> str:
    """'9 days old (limit 7 days)'; never a whole number that reads as within the limit ('7 days old (limit 7
    days)' for 7.2): 'more than 7 days old', and hours near a limit of hours (cidofovir's 48 h before a dose)."""
    if limit_days < 3 and age_days < 3:
        hours = int(age_days * 24)
        age = f"more than {limit_days * 24:g} hours" if hours <= limit_days * 24 else f"{hours} hours"
        return f"{age} old (limit {limit_days * 24:g} hours)"
    age = f"more than {limit_days:g} days" if int(age_days) <= limit_days else f"{int(age_days)} days"
    return f"{age} old (limit {limit_days:g} days)"


def value_text(measurement: Measurement) -> str:
    """'1.8 mg/dL', '<100 /uL'."""
    return f"{measurement.comparator or ''}{display_number(measurement.value)} {measurement.unit}"
