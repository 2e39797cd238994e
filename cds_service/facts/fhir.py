"""Small, total readers for FHIR JSON values.

Every function here accepts anything (the JSON may be wrong in any way) and returns a typed value or
None: a wrong type is "absent", never an exception.  JSON objects are dicts (what json and orjson
produce; an isinstance check against dict is also much cheaper than against typing.Mapping).  The extractors build on these, so a resource
with garbage in a field the rules read loses that field only.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache, wraps
from typing import Any, Callable, Iterator, Mapping, TypeVar

import orjson

UCUM = "http://unitsofmeasure.org"

log = logging.getLogger("cds_service.facts")


def log_unexpected(what: str, exc: Exception) -> None:
    """A reader raised on some input: a bug.  The resource is skipped; only the exception type is
    logged (messages may quote patient data)."""
    log.error("facts: skipped a %s after an unexpected %s", what[:40], type(exc).__name__)


def mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, dict) else None


def items(value: Any) -> list[Any]:
    """A FHIR list field as a list (DSTU2 sometimes has a single object where R4 has a list)."""
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []


def text(value: Any) -> str | None:
    """A non-empty string, stripped."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def deeper_than(value: Any, limit: int) -> bool:
    """Whether parsed JSON nests more than `limit` levels (stops looking at the limit)."""
    if limit < 0:
        return True
    if isinstance(value, dict):  # parsed JSON: dict and list only (and fast to check)
        value = value.values()
    elif not isinstance(value, list):
        return False
    if limit == 0:
        return len(value) > 0  # any value inside is one level too many
    # Scalars inside cannot be deeper (limit >= 1): only containers are visited, without generators
    # (this runs on every hook call's context, and on every order a card echoes back).
    for item in value:
        if isinstance(item, (dict, list)) and deeper_than(item, limit - 1):
            return True
    return False


def number(value: Any) -> float | None:
    """A finite JSON number (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        result = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return result if math.isfinite(result) else None


def codings(concept: Any) -> Iterator[tuple[str | None, str | None, str | None]]:
    """(system, code, display) for each coding of a CodeableConcept."""
    concept = mapping(concept)
    if concept is None:
        return
    for coding in items(concept.get("coding")):
        if isinstance(coding, dict):
            yield text(coding.get("system")), text(coding.get("code")), text(coding.get("display"))


def concept_texts(concept: Any) -> list[str]:
    """The human-readable words of a CodeableConcept: its text, then each coding's display."""
    concept = mapping(concept)
    if concept is None:
        return []
    found = dict.fromkeys(t for t in [text(concept.get("text"))] if t)
    # A dict, not a list, keeps them unique: thousands of codings are read in linear time.
    found.update((display, None) for _, _, display in codings(concept) if display)
    return list(found)


def concept_name(concept: Any) -> str | None:
    names = concept_texts(concept)
    return names[0] if names else None


def reference_id(resource: Mapping[str, Any]) -> str:
    """'Observation/123' (the id may be missing in a malformed resource)."""
    kind = text(resource.get("resourceType")) or "Resource"
    return f"{kind}/{text(resource.get('id')) or '?'}"


# FHIR date, dateTime and instant: YYYY, YYYY-MM, YYYY-MM-DD, or a full time with offset.
_DATETIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?\s*(Z|[+-]\d{2}:?\d{2})?)?)?)?"
)

Precision = str  # "year", "month", "day" or "time"

# Years a date on a clinical record can carry.  Outside them (0001-01-01 as "unknown", 9999-12-31 as
# "open") a date is unreadable: read as one, the date arithmetic of the rules would leave the calendar.
READABLE_YEARS = range(1800, 3000)


def parse_datetime(value: Any) -> tuple[datetime, Precision] | None:
    """A FHIR date/dateTime as a timezone-aware datetime and its precision.

    Partial dates start at the beginning of their period (1970 -> 1970-01-01), date-only values at
    00:00 UTC: the earliest moment they can mean, so a staleness check never makes a value younger
    than it may be.  A time without an offset (invalid FHIR, common in the wild) is read as UTC.
    """
    raw = text(value)
    if raw is None or len(raw) > 40:
        return None
    match = _DATETIME.fullmatch(raw)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        tz = timezone.utc
        if offset and offset != "Z":
            sign = -1 if offset[0] == "-" else 1
            digits = offset[1:].replace(":", "")
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        moment = datetime(
            int(year), int(month or 1), int(day or 1),
            int(hour or 0), int(minute or 0), int(second or 0), micro, tzinfo=tz,
        )
    except (ValueError, OverflowError):
        return None
    if moment.year not in READABLE_YEARS:
        return None
    precision = "time" if hour else "day" if day else "month" if month else "year"
    return moment, precision


def parse_moment(value: Any) -> datetime | None:
    """parse_datetime's moment; full dates and times take the C fast path (thousands per record)."""
    if isinstance(value, str) and len(value) >= 10 and value[4] == "-" and value[7] == "-":
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.year not in READABLE_YEARS:
                return None
            return moment if moment.tzinfo else aware(moment)
    parsed = parse_datetime(value)
    return parsed[0] if parsed else None


def parse_date(value: Any) -> date | None:
    # A full date (most order dates): YYYY-MM-DD only, as FHIR writes it (fromisoformat also takes
    # week dates and basic formats, which FHIR does not).
    digits = value.replace("-", "") if isinstance(value, str) and len(value) == 10 else ""
    if digits.isascii() and digits.isdigit() and value[4] == "-" == value[7]:
        try:
            day = date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return day if day.year in READABLE_YEARS else None
    moment = parse_moment(value)
    return moment.date() if moment else None


def aware(moment: datetime) -> datetime:
    """A naive moment read as UTC.  combine() rather than replace(tzinfo=): 5 times faster (3.11),
    and dates on record are read by the thousand."""
    return moment if moment.tzinfo else datetime.combine(moment.date(), moment.time(), timezone.utc)


T = TypeVar("T")
CACHED_TEXT_LENGTH = 1000  # longer texts are read each time, never held in a cache
# Free texts (condition and drug names, notes, frequency and route words) are read up to this many
# characters: the patterns that read them look back or backtrack, which only a bound keeps cheap, and
# no record needs more.
FREE_TEXT_READ = 500


def cached_by_text(function: Callable[..., T]) -> Callable[..., T]:
    """Memoise a pure function of one text (and, after it, any small hashable arguments): names from the
    EHR's vocabulary (drugs, problems) repeat across calls.  At most 4096 texts of at most
    CACHED_TEXT_LENGTH characters are held."""
    cached = lru_cache(maxsize=4096)(function)

    @wraps(function)
    def read(text: str, *more: Any) -> T:
        return cached(text, *more) if len(text) <= CACHED_TEXT_LENGTH else function(text, *more)

    return read


def cached_by_json(function: Callable[[Any], T]) -> Callable[[Any], T]:
    """Memoise a pure function of one small parsed-JSON value, by its JSON: the route and drug concepts
    of orders repeat across orders and calls.  At most 4096 values of at most CACHED_TEXT_LENGTH bytes
    of JSON are held (all are let go when it is full); `function` must return an immutable value."""
    cache: dict[bytes, T] = {}

    @wraps(function)
    def read(value: Any) -> T:
        try:
            key = orjson.dumps(value)
        except TypeError:  # not JSON (integers over 64 bits, say): read each time
            return function(value)
        found = cache.get(key, _NOT_HELD)
        if found is not _NOT_HELD:
            return found
        result = function(value)
        if len(key) <= CACHED_TEXT_LENGTH:
            if len(cache) >= 4096:
                cache.clear()  # atomic, unlike evicting one: the threads of a worker share the cache
            cache[key] = result
        return result

    read.cache_clear = cache.clear  # type: ignore[attr-defined]
    return read


_NOT_HELD = object()


_BREAKS = "-_/'’[]{}\""  # read as spaces between words
_BREAKS_AS_SPACES = str.maketrans({char: " " for char in _BREAKS})


def normalise_words(value: str) -> str:
    """Lower case with '-', '_', '/', apostrophes and brackets as spaces, same length as the input.

    Keeping the length lets a match position index the original text (for quoting it).
    """
    if value.isascii():  # lower() keeps the length of ASCII text
        return value.lower().translate(_BREAKS_AS_SPACES)
    out = []
    for char in value:
        low = char.lower()
        if len(low) != 1:
            low = char
        out.append(" " if low in _BREAKS else low)
    return "".join(out)
