"""Observations -> laboratory measurements, the CMV viral-load series and pp65 results.

One pass sorts observations by what they measure (plain dict look-ups on the code, so a record of
thousands of unrelated results costs microseconds each); each analyte's results are then sorted once,
newest first, and read.  Only final/amended/corrected results count.  A result that cannot be used
(unit unknown, implausible, undated, unreadable) is left out of the facts and reported as a
DataQualityIssue when it is newer than the newest usable value of its analyte (an older bad value
hides nothing).  When the newest dated result of a single-value analyte is such a result, the analyte
has no usable value at all: an older one is not its current value (CMV series keep their usable
results, as the series, not one value, is read).
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Mapping

from cds_service.facts import codes, fhir, quality, units
from cds_service.facts.model import (
    ANALYTE_UNITS,
    DataQualityIssue,
    LabFacts,
    Measurement,
    Pp65Result,
    ViralLoadResult,
    ViralLoadSeries,
)
from cds_service.frozen import frozen

FINAL_STATUSES = frozenset({"final", "amended", "corrected"})
# Not final, but a result all the same: read, never used, and it hides older results as any unusable newest
# one does (a preliminary creatinine of 6 may be the one showing the kidneys failing).
PRELIMINARY = "preliminary"
# Results older than this are read only while an analyte has no usable value yet (so a stale value
# can still be reported as stale).  No rule looks further back: courses and trends span weeks,
# staleness windows days, HSCT monitoring at most a year.
HISTORY_DAYS = 365
# At most this many usable results per analyte are read (newest first).  CMV results form trends
# (months of weekly or daily PCRs); the other analytes' rules use only the newest value, and
# reading only it keeps a long record fast.
MAX_SERIES_RESULTS = 200
MAX_RESULTS_PER_ANALYTE = 1
SERIES_TARGETS = frozenset({codes.VIRAL_LOAD, codes.PP65})
# Creatinine results read for a patient with a cidofovir order (build_facts): the label judges the
# rise from the value before the course (clinical/toxicity.py).  100 results reach back over a course
# of about three months even with daily creatinine in hospital; HISTORY_DAYS still bounds their age.
# Only then: reading them costs every other hook call about 10 % of its facts.
CREATININE_HISTORY_RESULTS = 100
COMPARATORS = frozenset({"<", "<=", ">=", ">"})


@dataclass
class LabReading:
    labs: LabFacts
    viral_load: ViralLoadSeries
    pp65: tuple[Pp65Result, ...]
    issues: list[DataQualityIssue] = field(default_factory=list)
    skipped: int = 0  # not final, duplicates, or not a readable resource
    pp65_unread: tuple[datetime, ...] = ()  # ViralLoadSeries.unread, for pp65
    # Each analyte's final results as found, (effective, Observation): for with_history.
    found: Mapping[str, list[tuple[datetime | None, Mapping[str, Any]]]] = field(default_factory=dict)

    def with_history(self, analyte: str, limit: int, now: datetime) -> LabFacts:
        """The facts with up to `limit` usable results of `analyte` (newest first) instead of one;
        none when its newest result could not be used (the newest of a history is its current value)."""
        reader = _READERS.get(analyte, _read_measurement)
        usable, unusable, _ = _read_bucket(analyte, self.found.get(analyte, []), reader, now, limit)
        usable, _ = _newest_decides(analyte, *_same_time(analyte, usable, unusable))
        if not usable:
            return self.labs
        return replace(self.labs, by_analyte={**self.labs.by_analyte, analyte: tuple(usable)})


@frozen
class Unusable:
    kind: str  # a DataQualityKind
    detail: str


def read_observations(observations: list[Any], now: datetime) -> LabReading:
    buckets: dict[str, list[tuple[datetime | None, Mapping[str, Any]]]] = defaultdict(list)
    seen: set[str] = set()
    skipped = 0
    for obs in observations:
        if not isinstance(obs, dict):
            skipped += 1
            continue
        target = observation_target(obs)
        if target is None:
            continue  # not something the rules read
        status = obs.get("status")
        # Nearly every status is an exact code, looked up as it is; any other is read as text (" final").
        if not (status.__class__ is str and status in FINAL_STATUSES) and fhir.text(status) not in _READ_STATUSES:
            skipped += 1
            continue
        obs_id = fhir.text(obs.get("id"))
        if obs_id is not None:
            if obs_id in seen:
                skipped += 1  # the same result twice (prefetch plus fetch)
                continue
            seen.add(obs_id)
        buckets[target].append((observation_time(obs), obs))

    by_analyte: dict[str, tuple[Measurement, ...]] = {}
    series: dict[str, tuple[tuple[Any, ...], tuple[datetime, ...]]] = {}
    horizons = _horizons(now)
    issues: list[DataQualityIssue] = []
    unusable_at: dict[str, datetime | None] = {}
    preliminary_at: dict[str, datetime] = {}
    for target, bucket in buckets.items():
        reader = _READERS.get(target, _read_measurement)
        usable, unusable, errors = _read_bucket(target, bucket, reader, now, horizons=horizons)
        usable, unusable = _newest_decides(target, *_same_time(target, usable, unusable))
        skipped += errors
        issues.extend(_issues(target, usable, unusable))
        if target in SERIES_TARGETS:
            series[target] = (tuple(usable), _unread_times(usable, unusable, now))
        elif usable:
            by_analyte[target] = tuple(usable)
        elif unusable:
            # The newest result that could not be used; none known beside an undated one (it may be the newest).
            newest = None if any(t is None for _, t in unusable) else max(unusable, key=_EFFECTIVE_OF_UNUSABLE)
            unusable_at[target] = newest[1] if newest else None
            if newest and newest[0].kind == "preliminary":
                preliminary_at[target] = newest[1]
    viral_load, viral_load_unread = series.get(codes.VIRAL_LOAD, ((), ()))
    pp65, pp65_unread = series.get(codes.PP65, ((), ()))
    return LabReading(LabFacts(by_analyte, unusable_at, preliminary_at), ViralLoadSeries(viral_load, viral_load_unread), pp65, issues, skipped,
                      pp65_unread=pp65_unread, found=buckets)


def _unread_times(usable, unusable, now: datetime) -> tuple[datetime, ...]:
    """The times of a series' dated results not used, newest first: not those a used result of the same time
    speaks for (the same specimen sent again, once unreadably), nor dates in the future (as unknown as none)."""
    used = {r.effective for r in usable}
    future = now + timedelta(days=quality.FUTURE_TOLERANCE_DAYS)
    return tuple(sorted({t for _, t in unusable if t is not None and t not in used and t <= future}, reverse=True))


_READ_STATUSES = FINAL_STATUSES | {PRELIMINARY}


def observation_target(obs: Mapping[str, Any]) -> str | None:
    """What an Observation measures, by code (or "pp65" in its names, unless they name a test of the
    immune response to pp65).  Plain dict look-ups: this runs on every observation of the record."""
    concept = obs.get("code")
    if not isinstance(concept, dict):
        return None
    codings = concept.get("coding")
    codings = codings if isinstance(codings, list) else ()
    for coding in codings:
        if isinstance(coding, dict):
            target = codes.observation_target(coding.get("system"), coding.get("code"))
            if target is not None:
                return target
    names = [concept.get("text"), *(c.get("display") for c in codings if isinstance(c, dict))]
    words = " ".join(name for name in names if isinstance(name, str)).lower()
    if "pp65" in words and not _pp65_immune_response(words):
        return codes.PP65
    return None


def _pp65_immune_response(words: str) -> bool:
    return bool(_PP65_CELLULAR.search(words) or (_PP65_HUMORAL.search(words) and not _PP65_ANTIGEN.search(words)))


_EFFECTIVE = ("effectiveDateTime", "effectiveInstant", "effectivePeriod")
_EFFECTIVE_OF = operator.itemgetter(0)  # of a bucket's (effective, Observation)
_EFFECTIVE_OF_UNUSABLE = operator.itemgetter(1)  # of an (Unusable, effective)


def observation_time(obs: Mapping[str, Any]) -> datetime | None:
    """When the result applies: effective[x] (a period's start), else, with no effective[x] at all, the
    issue time.  An effective[x] that cannot be read (malformed, or a sentinel such as 9999-12-31) leaves
    the result undated: the issue time, usually later, could make it look newer than it is."""
    moment = fhir.parse_moment(obs.get("effectiveDateTime")) or fhir.parse_moment(obs.get("effectiveInstant"))
    if moment:
        return moment
    period = fhir.mapping(obs.get("effectivePeriod"))
    if period:
        moment = fhir.parse_moment(period.get("start")) or fhir.parse_moment(period.get("end"))
        if moment:
            return moment
    if any(obs.get(key) is not None for key in _EFFECTIVE):
        return None
    return fhir.parse_moment(obs.get("issued"))


def dated_by_report(obs: Mapping[str, Any], effective: datetime | None) -> bool:
    """Whether a result's time is its issue time: it has no effective[x] (observation_time)."""
    return effective is not None and all(obs.get(key) is None for key in _EFFECTIVE)


def _horizons(now: datetime) -> tuple[datetime, datetime]:
    """(the oldest time a result is read back to once one is usable, the latest time that is not the future)."""
    return now - timedelta(days=HISTORY_DAYS), now + timedelta(days=quality.FUTURE_TOLERANCE_DAYS)


def _read_bucket(target, bucket, reader, now, limit=None, horizons=None):
    """Read one analyte's results newest first; -> (usable, [(Unusable, effective)], errors).

    Dated results are read until the history is long enough (`limit` usable ones: by default
    MAX_SERIES_RESULTS for CMV results, else MAX_RESULTS_PER_ANALYTE; or older than HISTORY_DAYS once
    one usable value is found); undated ones are all looked at, since nothing says they are old.
    `horizons`: _horizons(now), when the caller reads many buckets.
    """
    dated = [b for b in bucket if b[0] is not None]
    dated.sort(key=_EFFECTIVE_OF, reverse=True)
    usable: list[Any] = []
    unusable: list[tuple[Unusable, datetime | None]] = []
    errors = 0
    horizon, future = horizons or _horizons(now)
    if limit is None:
        limit = MAX_SERIES_RESULTS if target in SERIES_TARGETS else MAX_RESULTS_PER_ANALYTE

    def read(effective: datetime | None, obs: Mapping[str, Any]) -> None:
        nonlocal errors
        try:
            result = reader(target, obs, effective, fhir.reference_id(obs))
        except Exception as exc:  # noqa: BLE001 - defence in depth: the readers are total
            fhir.log_unexpected("Observation", exc)
            errors += 1
            return
        if result is None:
            return  # no value at all (e.g. dataAbsentReason): nothing to use, nothing to report
        if isinstance(result, Unusable):
            unusable.append((result, effective))
        elif (status := obs.get("status")) != "final" and fhir.text(status) == PRELIMINARY:
            detail = f"{_result_name(target, effective)}: {_reported(result)} is preliminary, not final; not used"
            unusable.append((Unusable("preliminary", detail), effective))
        elif effective is None:
            detail = f"{quality.label(target)} result {_reported(result)} has no date"
            unusable.append((Unusable("undated", detail), None))
        elif effective > future:
            detail = f"{quality.label(target)} result {_reported(result)} is dated in the future ({effective.date()})"
            unusable.append((Unusable("implausible", detail), effective))
        else:
            usable.append(result)

    for effective, obs in dated:
        if usable and (len(usable) >= limit or effective < horizon) and effective != usable[-1].effective:
            break  # sorted newest first: the rest is older still (results of the same time are all read)
        read(effective, obs)
    for effective, obs in bucket:
        if effective is None:
            read(None, obs)
    return usable, unusable, errors


# Results of the same time whose values differ by at most this fraction are one result reported twice
# (a specimen reported in mg/dL and in umol/L, each rounded); beyond it they contradict each other.
SAME_RESULT_TOLERANCE = 0.02


def _same_time(target, usable, unusable) -> tuple[list[Any], list[tuple[Unusable, datetime | None]]]:
    """One result per time, whatever order the record lists them in (results of one time newest first by
    id).  Results of one time that agree (_SAME_RESULT) are one result reported twice (two interfaces, two
    units): the first by _PREFERRED is kept, so a PCR sent twice is not two consecutive positives.  Ones
    that disagree cannot be told apart (never the one the bundle happens to list first): a CMV series
    leaves that time out, said; a single-value analyte has no current value when it is the newest time,
    and further back (a history, such as creatinine's before a cidofovir course) the history stops short
    of it.  -> (usable, unusable)."""
    if len(usable) < 2:  # most analytes: only the newest result is read
        return usable, unusable
    usable.sort(key=lambda r: (r.effective, r.source_id), reverse=True)  # all dated (_read_bucket)
    same, compared = _SAME_RESULT.get(target, (_same_measurement, _MEASUREMENT_COMPARED))
    kept: list[Any] = []
    for effective, group in itertools.groupby(usable, key=lambda r: r.effective):
        tied = list(group)
        # Pairs of results alike in all that `same` compares agree: only the different ones are paired
        # (a result sent thousands of times is not compared with itself millions of times).
        different = list({compared(r): r for r in tied}.values()) if len(tied) > 1 else tied
        if len(different) <= MAX_DIFFERENT_RESULTS_OF_ONE_TIME and all(
            same(a, b) for a, b in itertools.combinations(different, 2)
        ):
            kept.append(min(tied, key=_PREFERRED[target]) if target in _PREFERRED else tied[0])
            continue
        shown = "; ".join(f"{_shown(r)} ({r.source_id})" for r in tied[:_SHOWN_RESULTS])
        if len(tied) > _SHOWN_RESULTS:
            shown += f"; and {len(tied) - _SHOWN_RESULTS:,} more"
        detail = f"{quality.label(target)} results of the same time ({_when(effective)}) disagree: {shown}"
        if target in SERIES_TARGETS:
            unusable.append((Unusable("conflicting", f"{detail}; which is right cannot be told: not used"), effective))
        elif kept:
            break  # an older time: the history ends before it
        else:
            detail += "; which is right cannot be told, so none of them nor any older result is used"
            return [], [(Unusable("conflicting", detail), effective), *unusable]
    return kept, unusable


# More different results of one time than this are taken to disagree, uncompared: one specimen is
# reported twice or three times (interfaces, units), never dozens of ways.
MAX_DIFFERENT_RESULTS_OF_ONE_TIME = 20
_SHOWN_RESULTS = 10  # a conflict lists this many of its results


def _agree(a: float, b: float) -> bool:
    return abs(a - b) <= SAME_RESULT_TOLERANCE * max(abs(a), abs(b))


def _same_measurement(a: Measurement, b: Measurement) -> bool:
    return a.comparator == b.comparator and _agree(a.value, b.value)


# PCR amounts of one time agree within this many log10: a value reported in log10 to one decimal is
# rounded by up to 0.05 (2,300 IU/mL is 3.36; 3.4 reported).
SAME_PCR_LOG10_TOLERANCE = 0.05


def _same_pcr(a: ViralLoadResult, b: ViralLoadResult) -> bool:
    """One specimen's results: detected alike (a bound below the assay's limit that does not say whether it
    was detected, "<137 IU/mL", fits either); on one scale, the same amount (within the rounding of a log10
    report), both below a limit, or a quantified amount below the other's limit.  IU/mL and copies/mL, or a
    qualitative result, cannot be compared in amount."""
    if a.detected != b.detected and not (_undecided(a) or _undecided(b)):
        return False
    if a.scale is None or b.scale is None:
        return True  # a qualitative result: its detection is all there is to compare
    if a.scale != b.scale:
        # Amounts in IU/mL and copies/mL cannot be compared; nor can a bound that does not say whether it was
        # detected be squared with an amount on the other scale.
        return a.detected == b.detected
    if a.value is None and b.value is None:
        return True  # both below a limit (one assay's limit, reported two ways)
    if a.value is None or b.value is None:
        quantified, bound = (a, b) if a.value is not None else (b, a)
        return bound.limit is not None and quantified.value <= bound.limit
    if a.log10 is None or b.log10 is None:  # 0 IU/mL
        return a.value == b.value
    return a.comparator == b.comparator and abs(a.log10 - b.log10) <= SAME_PCR_LOG10_TOLERANCE + 1e-9


def _undecided(r: ViralLoadResult) -> bool:
    return r.below_quantification and not r.detected


# Per target: (whether two results of one time are one result, the fields that decides on).
_MEASUREMENT_COMPARED = operator.attrgetter("comparator", "value")
_SAME_RESULT = {
    codes.VIRAL_LOAD: (_same_pcr, operator.attrgetter(
        "detected", "below_quantification", "scale", "value", "limit", "log10", "comparator")),
    codes.PP65: (lambda a, b: a.positive == b.positive, operator.attrgetter("positive")),
}
# Of agreeing PCRs of one time, a detected one (a bound that does not say stands for either), then a
# quantified one in IU/mL (the scale of the pre-emptive threshold).
_PREFERRED = {codes.VIRAL_LOAD: lambda r: (not r.detected, r.value is None, r.scale != "IU/mL")}


def _shown(result: Any) -> str:
    return quality.value_text(result) if isinstance(result, Measurement) else _reported(result)


def _newest_decides(target, usable, unusable) -> tuple[list[Any], list[tuple[Unusable, datetime | None]]]:
    """A single-value analyte whose newest dated result could not be used has no current value: an
    older result is not used in its place (a creatinine in an unknown unit may be the one showing the
    kidneys failing).  Nor beside a result whose date cannot be read: it may be the newest.
    -> (usable, unusable), the hiding result's detail saying so.  CMV series are kept."""
    # _read_bucket reads dated results newest first, before the undated ones.
    if target in SERIES_TARGETS or not usable or not unusable:
        return usable, unusable
    (problem, effective), *rest = unusable
    if effective is None:
        # Only undated ones: any of them may be the newest result.
        hiding = Unusable(problem.kind, f"{problem.detail}, so it may be the newest; dated results are not used in its place")
        return [], [(hiding, None), *rest]
    if effective <= usable[0].effective:
        return usable, unusable  # of the same time as the usable one (the same specimen twice), or older
    hiding = Unusable(problem.kind, f"newest {problem.detail}; older results are not used in its place")
    return [], [(hiding, effective), *rest]


def _reported(result: Any) -> str:
    return result.reported or "?"


def _issues(target, usable, unusable) -> list[DataQualityIssue]:
    """One issue per kind for the unusable results newer than the newest usable one; for CMV results, for
    every one read but those a used result of the same time speaks for (the rules do not count results in a
    row across them: say why)."""
    newest = usable[0].effective if usable else None
    used = {r.effective for r in usable} if target in SERIES_TARGETS else set()
    grouped: dict[str, list[Unusable]] = {}
    for problem, effective in unusable:
        if target in SERIES_TARGETS:
            said = effective not in used
        else:
            said = newest is None or effective is None or effective > newest
        if said:
            grouped.setdefault(problem.kind, []).append(problem)
    issues = []
    for kind, problems in grouped.items():
        detail = problems[0].detail + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        issues.append(DataQualityIssue(kind, target, detail))
    return issues


def _when(effective: datetime | None) -> str:
    return effective.date().isoformat() if effective else "undated"


def _result_name(target: str, effective: datetime | None) -> str:
    """'Creatinine 2026-11-20': how a problem with one result names it."""
    return f"{quality.label(target)} {_when(effective)}"


# ---------------------------------------------------------------------------------------------
# Numeric laboratory values

# Thousands may be grouped ("150,000"); a group never leads with 0, so "0,450" (a decimal comma: 0.45) is no number.
_NUMBER = r"([1-9]\d{0,2}(?:,\d{3})+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+)"
_VALUE_STRING = re.compile(r"\s*(<=|>=|<|>)?\s*" + _NUMBER + r"\s*(.*?)\s*")


def numeric_value(obs: Mapping[str, Any]) -> tuple[float, str | None, Mapping[str, Any]] | Unusable | None:
    """(value, comparator, quantity-like units) from valueQuantity, valueString or valueInteger."""
    quantity = fhir.mapping(obs.get("valueQuantity"))
    if quantity is not None:
        value = fhir.number(quantity.get("value"))
        if value is None:
            return Unusable("implausible", "value is not a number") if "value" in quantity else None
        comparator = quantity.get("comparator")
        if comparator is not None and (not isinstance(comparator, str) or comparator not in COMPARATORS):
            return Unusable("implausible", f"comparator {str(comparator)[:10]!r} not understood")
        return value, comparator, quantity
    raw = fhir.text(obs.get("valueString"))
    if raw is not None:
        match = _VALUE_STRING.fullmatch(raw[:100])
        if match is None:
            return Unusable("implausible", f"result {raw[:40]!r} is not a number")
        comparator, digits, unit = match.groups()
        value = float(digits.replace(",", ""))
        if not math.isfinite(value) or unit[:1] in (",", "."):  # "0,45": a decimal comma, "1,2,3": no number
            return Unusable("implausible", f"result {raw[:40]!r} is not a number")
        return value, comparator, {"unit": unit} if unit else {}
    integer = fhir.number(obs.get("valueInteger"))
    if integer is not None:
        return integer, None, {}
    for key in ("valueCodeableConcept", "valueBoolean", "valueRange", "valueRatio"):
        if key in obs:
            return Unusable("implausible", "result is not a number")
    return None


def _read_measurement(analyte: str, obs, effective, source_id) -> Measurement | Unusable | None:
    read = numeric_value(obs)
    if read is None:
        return None
    if isinstance(read, Unusable):
        return Unusable(read.kind, f"{_result_name(analyte, effective)}: {read.detail}")
    value, comparator, quantity = read
    factor, unit, conflict = units.conversion_factor(analyte, quantity)
    reported = f"{comparator or ''}{value:g} {unit}".strip()
    if factor is None:
        if conflict:
            why = _unit_conflict(quantity)
        else:
            why = f"unit {unit!r} is not a known {quality.label(analyte)} unit" if unit else "no unit given"
        return Unusable("unit-unknown", f"{_result_name(analyte, effective)}: {reported} - {why}; not used")
    canonical = value * factor
    if not units.plausible(analyte, canonical):
        detail = f"{_result_name(analyte, effective)}: {reported} is not a plausible value; not used"
        return Unusable("implausible", detail)
    low, high = _reference_range(analyte, obs, factor)
    return Measurement(
        analyte=analyte,
        value=canonical,
        unit=ANALYTE_UNITS[analyte],
        effective=effective,
        source_id=source_id,
        reported=reported,
        comparator=comparator,
        interpretation=interpretation(obs),
        reference_low=low,
        reference_high=high,
        dated_by_report=dated_by_report(obs, effective),
    )


def _unit_conflict(quantity: Mapping[str, Any]) -> str:
    return f"unit {str(quantity.get('unit'))[:40]!r} and its code {str(quantity.get('code'))[:40]!r} disagree"


def _reference_range(analyte: str, obs, value_factor: float) -> tuple[float | None, float | None]:
    """The first reference range, in the canonical unit.  A bound without any unit is taken in the
    value's own unit (ranges are commonly sent without units); a bound with an unknown unit is dropped."""
    ranges = obs.get("referenceRange")
    if ranges is None:
        return None, None
    return _range_in_canonical_unit((analyte, value_factor, ranges))


@fhir.cached_by_json  # a lab sends the same few ranges with every result of an analyte
def _range_in_canonical_unit(of: tuple[str, float, Any]) -> tuple[float | None, float | None]:
    analyte, value_factor, ranges = of
    ranges = fhir.items(ranges)
    first = fhir.mapping(ranges[0]) if ranges else None
    if first is None:
        return None, None
    bounds = []
    for key in ("low", "high"):
        quantity = fhir.mapping(first.get(key))
        value = fhir.number(quantity.get("value")) if quantity else None
        if value is None:
            bounds.append(None)
            continue
        factor, shown, _ = units.conversion_factor(analyte, quantity)
        factor = value_factor if not shown else factor
        bound = value * factor if factor is not None else None
        # A bound outside what the analyte can be is a broken range, not a limit to compare with.
        bounds.append(bound if bound is not None and units.plausible(analyte, bound) else None)
    return bounds[0], bounds[1]


_INTERPRETATION_CODES = {
    "L": "L", "LL": "LL", "H": "H", "HH": "HH", "N": "N", "A": "A", "AA": "A", "LU": "L", "HU": "H",
}
_INTERPRETATION_WORDS = (
    ("critical low", "LL"), ("critically low", "LL"), ("panic low", "LL"),
    ("critical high", "HH"), ("critically high", "HH"), ("panic high", "HH"),
    ("abnormal", "A"), ("low", "L"), ("high", "H"), ("normal", "N"),
)


def interpretation(obs: Mapping[str, Any]) -> str | None:
    """The HL7 interpretation code, normalised to L, LL, H, HH, N or A (DSTU2 has a single concept)."""
    concepts = obs.get("interpretation")
    return None if concepts is None else _interpretation_code(concepts)


@fhir.cached_by_json  # a handful of flags, on every result read
def _interpretation_code(concepts: Any) -> str | None:
    for concept in fhir.items(concepts):
        for _, code, _ in fhir.codings(concept):
            if code and code.upper() in _INTERPRETATION_CODES:
                return _INTERPRETATION_CODES[code.upper()]
        for name in fhir.concept_texts(concept):
            lowered = name.lower()
            for words, code in _INTERPRETATION_WORDS:
                if words in lowered:
                    return code
    return None


def _read_dipstick(analyte: str, obs, effective, source_id) -> Measurement | Unusable | None:
    name = _result_name(analyte, effective)
    grade: float | None = None
    reported = ""
    quantity = fhir.mapping(obs.get("valueQuantity"))
    if quantity is not None:
        read = _read_measurement("urine_protein", obs, effective, source_id)
        if not isinstance(read, Measurement):
            return Unusable(read.kind, f"{name}: {read.detail.split(': ', 1)[-1]}") if read else None
        grade, reported = units.dipstick_grade_from_mg_dl(read.value), read.reported
    else:
        texts = [t for t in [fhir.text(obs.get("valueString"))] if t]
        texts += fhir.concept_texts(obs.get("valueCodeableConcept"))
        for candidate in texts:
            grade = units.dipstick_grade_from_text(candidate[:100])
            if grade is not None:
                reported = candidate[:60]
                break
        if grade is None:
            if not texts:
                return None
            return Unusable("implausible", f"{name}: result {texts[0][:40]!r} could not be read as a grade")
    return Measurement(
        analyte=analyte,
        value=grade,
        unit=ANALYTE_UNITS[analyte],
        effective=effective,
        source_id=source_id,
        reported=reported,
        interpretation=interpretation(obs),
        dated_by_report=dated_by_report(obs, effective),
    )


# ---------------------------------------------------------------------------------------------
# CMV viral load

_NOT_DETECTED = re.compile(
    r"\b(?:not detected|non detected|none detected|undetectable|undetected|target not detected|tnd|"
    r"negative|neg|not found|absent|no cmv dna detected)\b"
    r"|below (?:the )?(?:limit of )?detection|<\s*lod\b"
)
_BELOW_QUANTIFICATION = re.compile(
    r"(?:below|less than|<)\s*(?:the )?(?:lower )?(?:limit of )?(?:lloq|loq|quantification|quantitation)"
    r"|not quantifiable|unquantifiable|too low to quantify"
)
_DETECTED = re.compile(r"\b(?:detected|positive|pos|present)\b")
# A number with its comparator, "log" before it ("log 3.5 IU/mL" is log10, as "3.5 log IU/mL" is),
# "x 10^n" after it, and its unit: the text up to a bracket or a clause break.
_VL_NUMBER = re.compile(
    r"(?P<log>\blog(?:10)?\s*:?\s*)?(?P<comparator><=|>=|<|>)?\s*(?P<number>" + _NUMBER + r")"
    r"(?:\s*(?:x|\*)\s*10\s*(?:\^|\*|e)?\s*(?P<exponent>\d{1,2}))?(?P<unit>[^(;,]*)"
)
_IU = {"iu/ml"}
_COPIES = {"copies/ml", "copy/ml", "cp/ml", "cps/ml"}


@fhir.cached_by_text  # a lab's few unit spellings, read for every CMV result
def viral_load_scale(unit: str, code_scale: str | None) -> tuple[str | None, bool] | None:
    """(scale, is_log10) for a viral-load unit, or None when the unit is not one.

    '/mL' is taken as copies/mL only on a copies-based LOINC code (its property is a number
    concentration); a bare log unit ('log10') takes the scale of the LOINC code's property.
    """
    squeezed = re.sub(r"[\s\[\]{}()_]", "", unit.lower())
    is_log = "log" in squeezed
    rest = re.sub(r"log(?:10)?", "", squeezed)
    if rest in _IU:
        return "IU/mL", is_log
    if rest in _COPIES:
        return "copies/mL", is_log
    if rest == "/ml" and code_scale == "copies/mL":
        return "copies/mL", is_log
    if is_log and rest in ("", "/ml") and code_scale:
        return code_scale, True
    return None


def _read_viral_load(target, obs, effective, source_id) -> ViralLoadResult | Unusable | None:
    code, code_scale = _viral_load_code(obs.get("code"))
    name = _result_name(target, effective)
    base = dict(effective=effective, source_id=source_id, code=code, dated_by_report=dated_by_report(obs, effective))

    quantity = fhir.mapping(obs.get("valueQuantity"))
    if quantity is not None:
        value = fhir.number(quantity.get("value"))
        if value is None:
            return Unusable("implausible", f"{name}: value is not a number") if "value" in quantity else None
        comparator = quantity.get("comparator")
        if comparator is not None and (not isinstance(comparator, str) or comparator not in COMPARATORS):
            return Unusable("implausible", f"{name}: comparator {str(comparator)[:10]!r} not understood")
        scale, unit, conflict = units.quantity_unit(quantity, lambda spelling: viral_load_scale(spelling, code_scale))
        reported = f"{comparator or ''}{value:g} {unit}".strip()
        if conflict:
            return Unusable("unit-unknown", f"{name}: {reported} - {_unit_conflict(quantity)}; not used")
        # A bound ("<137") is detected below quantification only when the lab says so: here, in the
        # interpretation (HL7 DET or POS, or its words).
        return _quantified(name, base, value, comparator, scale, reported, _interpretation(obs))

    texts = [t for t in [fhir.text(obs.get("valueString"))] if t]
    concept = obs.get("valueCodeableConcept")
    coded, reported = _coded_viral_load(concept) if concept is not None else (None, "")
    if coded == "inconclusive":
        return Unusable("implausible", f"{name}: result inconclusive")
    if coded is not None:
        return ViralLoadResult(**base, scale=None, value=None, detected=coded, reported=reported)
    texts += fhir.concept_texts(concept)
    said = _interpretation(obs)
    for raw in texts:
        result = _viral_load_text(name, base, raw[:200], code_scale, said)
        if result is not None:
            return result
    if texts:
        return Unusable("implausible", f"{name}: result {texts[0][:40]!r} could not be read")
    # No value: the interpretation alone may say detected / not detected.
    if said is None:
        return None
    return ViralLoadResult(**base, scale=None, value=None, detected=said, reported="detected" if said else "not detected")


@fhir.cached_by_json  # every CMV result names its test by one of a few codes
def _viral_load_code(concept: Any) -> tuple[str, str | None]:
    """(the result's LOINC code, "" when none; the viral-load scale that code says)."""
    code = next((c for s, c, _ in fhir.codings(concept) if s in codes.LOINC and c), "") or ""
    return code, codes.VIRAL_LOAD_LOINC.get(code)


@fhir.cached_by_json
def _coded_viral_load(concept: Any) -> tuple[bool | str | None, str]:
    """What a coded CMV result says: (detected True/False, or "inconclusive", or None when its codes say
    none of these; the words it is reported in)."""
    for _, code, _ in fhir.codings(concept):
        if code in codes.SNOMED_NOT_DETECTED:
            return False, fhir.concept_name(concept) or "not detected"
        if code in codes.SNOMED_DETECTED:
            return True, fhir.concept_name(concept) or "detected"
        if code in codes.SNOMED_INCONCLUSIVE:
            return "inconclusive", ""
    return None, ""


def _interpretation(obs: Mapping[str, Any]) -> bool | None:
    """Whether the result's interpretation says detected (HL7 DET or POS, or its words) or not detected
    (ND or NEG, or its words); None when it says neither."""
    concepts = obs.get("interpretation")
    return None if concepts is None else _detected_said(concepts)


@fhir.cached_by_json
def _detected_said(concepts: Any) -> bool | None:
    for concept in fhir.items(concepts):
        said = {(code or "").upper() for _, code, _ in fhir.codings(concept)}
        if said & {"DET", "POS"}:
            return True
        if said & {"ND", "NEG"}:
            return False
        words = " ".join(fhir.concept_texts(concept)).lower()
        if _NOT_DETECTED.search(words):
            return False
        if _DETECTED.search(words):
            return True
    return None


def _quantified(name, base, value, comparator, scale_log, reported, said: bool | None = None
                ) -> ViralLoadResult | Unusable:
    """`said`: whether the lab says detected (True), not detected (False), or neither (None)."""
    scale, is_log = scale_log if scale_log else (None, False)
    if value < 0 or (is_log and value > 10):
        return Unusable("implausible", f"{name}: {reported} is not a plausible viral load")
    linear = 10 ** value if is_log else value
    log10 = value if is_log else (math.log10(value) if value > 0 else None)
    if comparator in ("<", "<="):
        # Below the assay's limit: not quantified; "detected" only if the lab says so, and below
        # quantification (detected, or not said) unless it says not detected.
        return ViralLoadResult(**base, scale=scale, value=None, detected=said is True,
                               below_quantification=said is not False, reported=reported, limit=linear,
                               comparator=comparator)
    if scale is None:
        return Unusable("unit-unknown", f"{name}: {reported} - unit is not IU/mL or copies/mL; not used")
    # Quantified results run from an assay's lower limit (tens of IU/mL) upward: a value of a fraction of
    # one IU or copy per mL is no measurement (it would read as a fall of hundreds of log10).
    if linear > 1e10 or 0 < linear < 1:
        return Unusable("implausible", f"{name}: {reported} is not a plausible viral load")
    return ViralLoadResult(**base, scale=scale, value=linear, detected=linear > 0, log10=log10,
                           reported=reported, comparator=comparator)


def _viral_load_text(name, base, raw, code_scale, interpreted: bool | None = None) -> ViralLoadResult | Unusable | None:
    """`interpreted`: what the result's interpretation says (_interpretation), when its words say neither."""
    words = raw.lower()
    if _NOT_DETECTED.search(words):
        return ViralLoadResult(**base, scale=None, value=None, detected=False, reported=raw)
    detected = bool(_DETECTED.search(words))
    said = True if detected else interpreted
    number = _VL_NUMBER.search(words)
    if _BELOW_QUANTIFICATION.search(words):
        limit, scale = _limit(number, code_scale) if number else (None, None)
        return ViralLoadResult(**base, scale=scale, value=None, detected=said is True,
                               below_quantification=said is not False, reported=raw, limit=limit)
    if number:
        value, comparator, scale_log = _text_number(number, code_scale)
        if not math.isfinite(value):
            return Unusable("implausible", f"{name}: {raw[:40]!r} is not a plausible viral load")
        return _quantified(name, base, value, comparator, scale_log, raw, said)
    if detected:
        return ViralLoadResult(**base, scale=None, value=None, detected=True, reported=raw)
    return None


def _text_number(number: re.Match, code_scale) -> tuple[float, str | None, tuple[str | None, bool] | None]:
    """(value, comparator, (scale, is_log10)) of a number found by _VL_NUMBER."""
    value = float(number["number"].replace(",", ""))
    if number["exponent"]:
        value *= 10 ** int(number["exponent"])
    # Words after the unit ("<137 IU/mL detected") are not part of it.
    unit = _DETECTED.split(number["unit"], 1)[0]
    if number["log"]:
        unit = f"log {unit}"
    return value, number["comparator"], viral_load_scale(unit, code_scale)


def _limit(number: re.Match, code_scale) -> tuple[float | None, str | None]:
    """(linear limit, scale) of a below-quantification result's number."""
    value, _, scale_log = _text_number(number, code_scale)
    if not math.isfinite(value):
        return None, None
    if scale_log and scale_log[1]:
        return (10 ** value if value <= 10 else math.inf), scale_log[0]
    return value, scale_log[0] if scale_log else None


# ---------------------------------------------------------------------------------------------
# pp65 antigenaemia


# Names with "pp65" that test the immune response to it (T cells, antibodies to pp65), not the
# antigen in blood: not antigenaemia.  The antigenaemia assay itself stains pp65 with an antibody
# ("CMV pp65 Ag - blood by monoclonal antibody stain"): only an antibody to pp65 is the analyte.
_PP65_ANTIBODY = r"(?:antibod(?:y|ies)|abs?)\b(?![\s-]+stain)"
# Names with "pp65" that test the immune response to it, not the antigen in blood: not antigenaemia.
# Cellular tests always; an antibody only as what is measured ("pp65 antibody", "antibody to pp65",
# "CMV antibody pp65") and only when the name does not say antigen (the antigenaemia assay is itself
# an antibody stain: "pp65 Ag by monoclonal-antibody immunofluorescence").
_PP65_CELLULAR = re.compile(r"\bt[\s-]*cells?\b|elispot|\bigra\b|interferon|\bifn|quantiferon")
_PP65_HUMORAL = re.compile(
    rf"serolog|\big[gm]\b|\b{_PP65_ANTIBODY}\s+(?:to|against)\s+(?:cmv\s+)?pp65"
    rf"|\bpp65(?:[\s-]+specific)?[\s-]+{_PP65_ANTIBODY}|\bcmv\s+{_PP65_ANTIBODY}\s+pp65"
)
_PP65_ANTIGEN = re.compile(r"\bantigen|\bag\b")
# Negative reports in words, beyond the viral-load ones ("negative", "not detected").
_PP65_NONE_SEEN = re.compile(
    r"\bno\s+(?:(?:cmv|pp65|antigen)[\s-]*)*positive\b"  # "no positive cells", "no pp65-positive cells"
    r"|\b(?:none|no\s+(?:positive\s+)?cells?)\s+(?:seen|found|detected|identified)\b"  # "none seen"
    r"|^\s*(?:none|nil|zero)\b"
)
# A count of positive cells at the start of the text: "12 positive cells / 200,000", "<1/200,000".
_PP65_COUNT = re.compile(r"\s*(?P<comparator><=|>=|<|>)?\s*(?P<count>\d+(?:\.\d+)?)\b")
# What a bound on the count says; cells are whole, so the lowest positive count is 1.  None: it
# does not say (e.g. "<5" is 0 to 4 cells).
_PP65_BOUNDS = {
    "<": lambda count: False if 0 < count <= 1 else None,
    "<=": lambda count: False if 0 <= count < 1 else None,
    ">": lambda count: True if count >= 0 else None,
    ">=": lambda count: True if count > 0 else None,
}


def _read_pp65(target, obs, effective, source_id) -> Pp65Result | Unusable | None:
    name = _result_name(target, effective)
    base = dict(effective=effective, source_id=source_id, dated_by_report=dated_by_report(obs, effective))
    boolean = obs.get("valueBoolean")
    if isinstance(boolean, bool):
        return Pp65Result(**base, positive=boolean, reported="positive" if boolean else "negative")
    quantity = fhir.mapping(obs.get("valueQuantity"))
    if quantity is not None:
        value = fhir.number(quantity.get("value"))
        comparator = quantity.get("comparator")
        if value is None or value < 0:
            return Unusable("implausible", f"{name}: value is not a count")
        if comparator is not None and (not isinstance(comparator, str) or comparator not in COMPARATORS):
            return Unusable("implausible", f"{name}: comparator {str(comparator)[:10]!r} not understood")
        reported = f"{comparator or ''}{value:g} {units.shown_unit(quantity)}".strip()
        return _pp65_count(name, base, value, comparator, reported)
    concept = obs.get("valueCodeableConcept")
    for _, code, _ in fhir.codings(concept):
        if code in codes.SNOMED_NOT_DETECTED or code in codes.SNOMED_DETECTED:
            return Pp65Result(**base, positive=code in codes.SNOMED_DETECTED,
                              reported=fhir.concept_name(concept) or "")
    texts = [t for t in [fhir.text(obs.get("valueString"))] if t] + fhir.concept_texts(concept)
    for raw in texts:
        words = raw[:200].lower()
        if _NOT_DETECTED.search(words) or _PP65_NONE_SEEN.search(words):
            return Pp65Result(**base, positive=False, reported=raw[:60])
        count = _PP65_COUNT.match(words)
        if count:
            return _pp65_count(name, base, float(count["count"]), count["comparator"], raw[:60])
        if _DETECTED.search(words):
            return Pp65Result(**base, positive=True, reported=raw[:60])
    if texts:
        return Unusable("implausible", f"{name}: result {texts[0][:40]!r} could not be read")
    for concept in fhir.items(obs.get("interpretation")):
        for _, code, _ in fhir.codings(concept):
            if code in ("NEG", "ND", "POS", "DET"):
                positive = code in ("POS", "DET")
                return Pp65Result(**base, positive=positive, reported="positive" if positive else "negative")
    return None


def _pp65_count(name, base, count: float, comparator: str | None, reported: str) -> Pp65Result | Unusable:
    """A count of antigen-positive cells: any positive cell is a positive test."""
    positive = count > 0 if comparator is None else _PP65_BOUNDS[comparator](count)
    if positive is None:
        return Unusable("implausible", f"{name}: {reported} does not say whether any cell was positive")
    return Pp65Result(**base, positive=positive, reported=reported)


_READERS = {
    "urine_protein_dipstick": _read_dipstick,
    codes.VIRAL_LOAD: _read_viral_load,
    codes.PP65: _read_pp65,
}
