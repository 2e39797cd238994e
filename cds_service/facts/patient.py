"""Patient resource -> age and sex, with what could not be read."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from cds_service.facts import fhir
from cds_service.facts.model import DataQualityIssue, PatientFacts

SEXES = ("female", "male", "other", "unknown")
ADULT_AGE = 18
# No one has been documented past 122: an older age is a placeholder birth date (1900-01-01, common in EHRs),
# and Cockcroft-Gault would take it at its word (a 126-year-old's CrCl, one eighth of the dose).
MAX_AGE = 120


def read_patient(resource: Any, now: datetime) -> tuple[PatientFacts, list[DataQualityIssue]]:
    issues: list[DataQualityIssue] = []
    patient = resource if isinstance(resource, dict) else {}
    source = fhir.reference_id(patient) if patient else None

    gender = patient.get("gender")
    if gender in SEXES:
        sex = gender
    else:
        sex = "unknown"
        shown = f" ({str(gender)[:20]!r} is not a FHIR gender code)" if gender is not None else ""
        issues.append(DataQualityIssue("missing", "sex", f"sex not recorded{shown}", source))

    birth_date, age, age_issue = _age(patient.get("birthDate"), now.date(), source)
    if age_issue:
        issues.append(age_issue)
    if age is not None and age < ADULT_AGE:
        issues.append(DataQualityIssue(
            "out-of-scope",
            "age",
            f"patient is {age} years old (pediatric dosing follows each label's pediatric section, e.g. valganciclovir "
            "by body surface area x Schwartz CrCl); renal function not computed",
            source,
        ))
    return PatientFacts(id=fhir.text(patient.get("id")), birth_date=birth_date, age_years=age, sex=sex), issues


def _age(raw: Any, today: date, source: str | None) -> tuple[date | None, int | None, DataQualityIssue | None]:
    if raw is None:
        return None, None, DataQualityIssue("missing", "age", "birth date not recorded", source)
    parsed = fhir.parse_datetime(raw)
    if parsed is None:
        return None, None, DataQualityIssue(
            "implausible", "age", f"birth date {str(raw)[:30]!r} is not a date", source
        )
    born, precision = parsed[0].date(), parsed[1]
    age = years_between(born, today)
    if born > today or age > MAX_AGE:
        return None, None, DataQualityIssue(
            "implausible", "age", f"birth date {born.isoformat()} gives no plausible age", source
        )
    if precision in ("year", "month"):
        # The earliest possible birthday gives the oldest possible age: the lower Cockcroft-Gault
        # CrCl, so a dose is never raised by the missing precision.
        return born, age, DataQualityIssue(
            "assumption",
            "age",
            f"birth date {str(raw)[:10]} is partial: age {age} computed from {born.isoformat()} "
            "(the oldest possible age, lower CrCl)",
            source,
        )
    return born, age, None


def years_between(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))
