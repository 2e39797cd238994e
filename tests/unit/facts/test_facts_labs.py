"""Observations -> measurements: codes, unit conversion per analyte, dates, status, plausibility."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta, timezone

import pytest
from facts_testkit import NOW, SNOMED, facts, kinds, med, obs

from cds_service.facts import codes
from cds_service.facts.model import display_number


def only(f, analyte):
    series = f.labs.series(analyte)
    assert len(series) == 1, series
    return series[0]


@pytest.mark.parametrize("value, beside, shown", [
    (1.8, None, "1.8"), (175.0, None, "175"), (0.625, None, "0.62"), (123.456, None, "123"),
    # Beside a limit it is compared with, a value keeps the digits that leave it on its side of it.
    (7.99, 8, "7.99"), (1.50452, 1.5, "1.505"), (499.6, 500, "499.6"), (3.4996, 3.5, "3.4996"),
    (8.0, 8, "8"), (7.4, 8, "7.4"), (250.2, 100, "250"),
])
def test_a_value_is_shown_on_its_side_of_the_limit_it_is_compared_with(value, beside, shown):
    assert display_number(value, beside) == shown


@pytest.mark.parametrize(
    "analyte, code, value, unit, ucum, expected",
    [
        ("creatinine", "2160-0", 1.5, "mg/dL", True, 1.5),
        ("creatinine", "14682-9", 132.6, "umol/L", True, 1.5),  # / 88.4
        ("creatinine", "14682-9", 132.6, "µmol/L", False, 1.5),  # unit string, micro sign
        ("creatinine", "14682-9", 0.1326, "mmol/L", True, 1.5),
        ("creatinine", "2160-0", 15, "mg/L", True, 1.5),
        ("creatinine", "38483-4", 1.5, "mg/dL", True, 1.5),
        ("crcl_reported", "35591-7", 48, "mL/min", True, 48),
        ("egfr", "98979-8", 55, "mL/min/{1.73_m2}", True, 55),
        ("egfr", "33914-3", 55, "mL/min/1.73m2", False, 55),
        ("anc", "751-8", 1.2, "10*3/uL", True, 1200),
        ("anc", "751-8", 1.2, "10*9/L", True, 1200),
        ("anc", "26499-4", 1200, "/uL", True, 1200),
        ("anc", "751-8", 1200, "/mm3", True, 1200),
        ("anc", "751-8", 1200, "cells/uL", False, 1200),
        ("anc", "751-8", 1200, "{cells}/uL", True, 1200),
        ("anc", "751-8", 1.2, "K/uL", False, 1200),
        ("anc", "751-8", 1.2, "x10^9/L", False, 1200),
        ("wbc", "6690-2", 4.5, "10*3/uL", True, 4500),
        ("wbc", "26464-8", 4.5, "10*9/L", True, 4500),
        ("platelets", "777-3", 150, "10*3/uL", True, 150_000),
        ("platelets", "26515-7", 150, "10*9/L", True, 150_000),
        ("hemoglobin", "718-7", 12, "g/dL", True, 12),
        ("hemoglobin", "718-7", 120, "g/L", True, 12),
        ("hemoglobin", "718-7", 7.45, "mmol/L", True, 7.45 * 1.611),
        ("potassium", "2823-3", 4.1, "mmol/L", True, 4.1),
        ("potassium", "6298-4", 4.1, "meq/L", True, 4.1),
        ("magnesium", "19123-9", 2.0, "mg/dL", True, 2.0),
        ("magnesium", "2601-3", 0.8, "mmol/L", True, 0.8 * 2.431),
        ("magnesium", "2601-3", 1.6, "meq/L", True, 1.6 * 1.2155),
        ("calcium", "17861-6", 9.0, "mg/dL", True, 9.0),
        ("calcium", "2000-8", 2.25, "mmol/L", True, 2.25 * 4.008),
        ("ionized_calcium", "1994-3", 1.15, "mmol/L", True, 1.15),
        ("ionized_calcium", "1994-3", 4.6, "mg/dL", True, 4.6 / 4.008),
        ("phosphate", "2777-1", 3.1, "mg/dL", True, 3.1),
        ("phosphate", "14879-1", 1.0, "mmol/L", True, 3.097),
        ("urine_protein", "2888-6", 30, "mg/dL", True, 30),
        ("urine_protein", "2888-6", 0.3, "g/L", True, 30),
        ("urine_protein", "2888-6", 300, "mg/L", True, 30),
        ("weight", "29463-7", 70, "kg", True, 70),
        ("weight", "3141-9", 70000, "g", True, 70),
        ("weight", "29463-7", 154.32, "[lb_av]", True, 154.32 * 0.45359237),
        ("weight", "29463-7", 154.32, "lb", False, 154.32 * 0.45359237),
        ("height", "8302-2", 170, "cm", True, 170),
        ("height", "8302-2", 1.7, "m", True, 170),
        ("height", "8306-3", 67, "[in_i]", True, 67 * 2.54),
        ("height", "8302-2", 67, "in", False, 67 * 2.54),
    ],
)
def test_unit_conversion_to_canonical(analyte, code, value, unit, ucum, expected):
    f = facts(observations=[obs(code, value, unit, ucum=ucum)])
    m = only(f, analyte)
    assert m.value == pytest.approx(expected)
    assert m.unit == {"weight": "kg", "height": "cm", "creatinine": "mg/dL"}.get(analyte, m.unit)
    assert unit in m.reported  # as the source reported it


@pytest.mark.parametrize(
    "code, value, unit, ucum",
    [
        ("2160-0", 1.5, None, True),  # no unit at all
        ("2160-0", 1.5, "mg", True),  # a mass is not a concentration
        ("29463-7", 11, "stone", False),
        ("751-8", 60, "%", True),  # a percentage is not a count
        ("29463-7", 70, "{weight}", True),
        ("2160-0", 1.5, "mg/dL" + " " * 995 + "junk", False),  # too long: its first 1,000 characters read "mg/dL"
    ],
)
def test_unknown_or_missing_unit_is_never_guessed(code, value, unit, ucum):
    f = facts(observations=[obs(code, value, unit, ucum=ucum)])
    analyte = codes.observation_target(codes.LOINC[0], code)
    assert f.labs.series(analyte) == ()
    assert "unit-unknown" in kinds(f, analyte)


def test_ucum_code_and_unit_string_that_disagree_are_not_used():
    o = obs("2160-0", 1.5, "mg/dL")
    o["valueQuantity"]["unit"] = "umol/L"
    f = facts(observations=[o])
    assert f.labs.latest("creatinine") is None
    assert "unit-unknown" in kinds(f, "creatinine")


@pytest.mark.parametrize("system", [None, "http://example.org/units"])
def test_a_code_and_unit_text_that_name_different_units_conflict_whatever_the_system(system):
    q = {"value": 154, "unit": "lb", "code": "kg", **({"system": system} if system else {})}
    f = facts(observations=[obs("29463-7", valueQuantity=q)])
    assert f.labs.latest("weight") is None
    (issue,) = [q for q in f.issues_for("weight") if q.kind == "unit-unknown"]
    assert "'lb'" in issue.detail and "'kg'" in issue.detail and "disagree" in issue.detail


@pytest.mark.parametrize("code", ["[lb_av]", "LB01"])  # the same unit; a code that is not a unit
def test_a_code_outside_ucum_that_agrees_or_is_no_unit_leaves_the_unit_text(code):
    f = facts(observations=[obs("29463-7", valueQuantity={"value": 154, "unit": "lb", "code": code})])
    assert f.labs.latest("weight").value == pytest.approx(154 * 0.45359237)


def test_a_code_outside_ucum_does_not_replace_an_unknown_unit_text():
    f = facts(observations=[obs("29463-7", valueQuantity={"value": 154, "unit": "pounds", "code": "kg"})])
    assert f.labs.latest("weight") is None and "unit-unknown" in kinds(f, "weight")


def test_ucum_code_wins_over_an_unknown_unit_display():
    o = obs("2160-0", 1.5, "mg/dL")
    o["valueQuantity"]["unit"] = "milligrams per decilitre"
    assert facts(observations=[o]).labs.latest("creatinine").value == 1.5


@pytest.mark.parametrize(
    "code, value, unit",
    [
        ("29463-7", 0, "kg"),
        ("29463-7", 900, "kg"),
        ("2160-0", 0, "mg/dL"),
        ("751-8", -5, "10*3/uL"),
        ("2160-0", 1e308, "mg/dL"),
        ("8302-2", 17, "m"),
    ],
)
def test_implausible_values_are_rejected(code, value, unit):
    f = facts(observations=[obs(code, value, unit)])
    analyte = codes.observation_target(codes.LOINC[0], code)
    assert f.labs.series(analyte) == ()
    assert "implausible" in kinds(f, analyte)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "1.2", True, None, [1], {"a": 1}])
def test_non_numbers_are_not_values(value):
    o = obs("2160-0", 1.0, "mg/dL")
    o["valueQuantity"]["value"] = value
    f = facts(observations=[o])
    assert f.labs.latest("creatinine") is None


@pytest.mark.parametrize(
    "status, counts",
    [("final", True), ("amended", True), ("corrected", True),
     ("cancelled", False), ("entered-in-error", False), ("registered", False)],
)
def test_only_final_amended_corrected_results_count(status, counts):
    results = [
        obs("2160-0", 1.3, "mg/dL", status=status, when="2026-11-25T10:00:00Z"),
        obs("2160-0", 1.5, "mg/dL", status="final", when="2026-11-22T09:00:00Z"),
    ]
    f = facts(observations=results)
    assert f.labs.latest("creatinine").value == (1.3 if counts else 1.5)
    assert f.skipped_resources == (0 if counts else 1)
    assert f.issues_for("creatinine") == ()  # silently ignored


def test_a_newer_preliminary_result_is_not_used_and_hides_older_ones():
    # A preliminary creatinine of 6.0 beside a final 1.0 two days older: no value (the newest decides), said.
    results = [obs("2160-0", 6.0, "mg/dL", status="preliminary", when="2026-11-25T10:00:00Z"),
               obs("2160-0", 1.0, "mg/dL", status="final", when="2026-11-23T09:00:00Z")]
    f = facts(observations=results)
    assert f.labs.latest("creatinine") is None and f.renal is None
    (issue,) = [q for q in f.issues_for("creatinine") if q.kind == "preliminary"]
    assert "6 mg/dL is preliminary, not final; not used; older results are not used in its place" in issue.detail
    assert f.labs.preliminary_at == {"creatinine": datetime(2026, 11, 25, 10, tzinfo=timezone.utc)}
    # An old preliminary beside a newer result of unknown unit: the newest is not preliminary, no test resulting.
    unknown = obs("2160-0", 5, None, when="2026-11-25T12:00:00Z", ucum=False)
    old = obs("2160-0", 1.0, "mg/dL", status="preliminary", when="2026-08-28T09:00:00Z")
    assert facts(observations=[unknown, old]).labs.preliminary_at == {}
    # Older than the newest final result, it changes nothing.
    results[0]["effectiveDateTime"] = "2026-11-20T10:00:00Z"
    assert facts(observations=results).labs.latest("creatinine").value == 1.0


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_the_newest_result_is_used_whatever_the_input_order(order):
    results = [
        obs("2160-0", 1.0, "mg/dL", when="2026-11-01"),
        obs("2160-0", 1.2, "mg/dL", when="2026-11-20T23:00:00+05:00"),  # 18:00 UTC
        obs("2160-0", 1.1, "mg/dL", when="2026-11-20T12:00:00Z"),
    ]
    f = facts(observations=[results[i] for i in order])
    assert f.labs.latest("creatinine").value == 1.2


def test_effective_period_and_issued_dates():
    period = obs("2160-0", 1.3, "mg/dL", when=None, effectivePeriod={"start": "2026-11-20T06:00:00Z"})
    issued = obs("718-7", 12, "g/dL", when=None, issued="2026-11-21T10:00:00Z")
    f = facts(observations=[period, issued])
    assert f.labs.latest("creatinine").effective.isoformat() == "2026-11-20T06:00:00+00:00"
    assert f.labs.latest("hemoglobin").effective_date.isoformat() == "2026-11-21"
    # Dated by its report, not its sample: said wherever the result is shown.
    assert not f.labs.latest("creatinine").dated_by_report and f.labs.latest("hemoglobin").dated_by_report
    assert f.labs.latest("creatinine").describe() == "1.3 mg/dL (2026-11-20)"
    assert f.labs.latest("hemoglobin").describe() == "12 g/dL (reported 2026-11-21, collection time not given)"


def test_cmv_results_dated_by_their_report_say_so():
    pcr = obs("72493-0", 5000, "[IU]/mL", when=None, issued="2026-11-25T10:00:00Z")
    f = facts(observations=[pcr])
    (result,) = f.viral_load.results
    assert result.dated_by_report and result.describe() == "5000 [IU]/mL (reported 2026-11-25, collection time not given)"


def test_a_stale_result_dated_by_its_report_says_so():
    f = facts(observations=[obs("2160-0", 1.3, "mg/dL", when=None, issued="2026-11-10T10:00:00Z")])
    (issue,) = f.issues_for("creatinine")
    assert issue.detail == "creatinine 1.3 mg/dL (reported 2026-11-10, collection time not given) is 16 days old (limit 7 days)"


def test_undated_result_is_not_used_and_said():
    f = facts(observations=[obs("2160-0", 1.3, "mg/dL", when=None)])
    assert f.labs.latest("creatinine") is None
    assert "undated" in kinds(f, "creatinine")


def test_future_dated_result_is_implausible_but_clock_skew_is_tolerated():
    skew = obs("2160-0", 1.3, "mg/dL", when="2026-11-26T20:00:00Z")  # 8 h ahead
    future = obs("718-7", 12, "g/dL", when="2026-12-05")
    f = facts(observations=[skew, future])
    assert f.labs.latest("creatinine").value == 1.3
    assert f.labs.latest("hemoglobin") is None
    assert "implausible" in kinds(f, "hemoglobin")


def test_an_older_unusable_value_raises_no_issue_a_newer_one_hides_the_older_values():
    older_bad = obs("29463-7", 900, "kg", when="2026-11-01")
    good = obs("29463-7", 70, "kg", when="2026-11-20")
    newer_bad = obs("29463-7", 0, "kg", when="2026-11-25")
    f = facts(observations=[older_bad, good])
    assert f.labs.latest("weight").value == 70
    assert "implausible" not in kinds(f, "weight")
    f = facts(observations=[older_bad, good, newer_bad])
    # The newest weight could not be read: the older one is not taken as current in its place.
    assert f.labs.latest("weight") is None and f.dosing_weight is None
    issues = [q for q in f.issues_for("weight") if q.kind == "implausible"]
    (issue,) = issues
    assert issue.detail.startswith("newest weight 2026-11-25")
    assert issue.detail.endswith("older results are not used in its place")


def test_an_unusable_newest_creatinine_gives_no_crcl_from_an_older_one():
    older = obs("2160-0", 1.0, "mg/dL", when="2026-11-20")
    newest = obs("2160-0", when="2026-11-25", valueQuantity={"value": 3.1, "unit": "mg%"})
    f = facts(observations=[obs("29463-7", 70, "kg"), older, newest])
    assert f.labs.latest("creatinine") is None and f.renal is None
    (unusable,) = [q for q in f.issues_for("creatinine") if q.kind == "unit-unknown"]
    assert unusable.detail == (
        "newest creatinine 2026-11-25: 3.1 mg% - unit 'mg%' is not a known creatinine unit; not used; "
        "older results are not used in its place"
    )
    (missing,) = [q for q in f.issues_for("creatinine") if q.kind == "missing"]
    assert "older results are not used in its place" in missing.detail


def test_an_unusable_newest_creatinine_is_not_replaced_from_the_cidofovir_history():
    older = [obs("2160-0", 1.0 + i / 10, "mg/dL", when=f"2026-11-{i + 10:02d}") for i in range(3)]
    newest = obs("2160-0", 0, "mg/dL", when="2026-11-25")  # implausible
    f = facts(observations=[obs("29463-7", 70, "kg"), *older, newest], medications=[CIDOFOVIR])
    assert f.labs.latest("creatinine") is None and f.renal is None
    assert "implausible" in kinds(f, "creatinine")


def test_a_future_dated_newest_result_hides_the_older_values():
    f = facts(observations=[obs("718-7", 12, "g/dL", when="2026-11-20"), obs("718-7", 9, "g/dL", when="2026-12-05")])
    assert f.labs.latest("hemoglobin") is None and "implausible" in kinds(f, "hemoglobin")


def test_an_unusable_result_of_the_same_time_does_not_hide_a_usable_one():
    # The same specimen sent twice, once in a unit not known: the known one is the current value.
    usable = obs("2160-0", 1.2, "mg/dL", when="2026-11-25T08:00:00Z")
    unknown = obs("2160-0", when="2026-11-25T08:00:00Z", valueQuantity={"value": 1.2, "unit": "mg%"})
    for order in ([usable, unknown], [unknown, usable]):
        assert facts(observations=order).labs.latest("creatinine").value == 1.2


def test_newest_results_of_the_same_time_that_disagree_leave_no_current_value():
    # Two creatinines of one moment, 1.0 and 2.0 mg/dL: which is right cannot be told, so no clearance is
    # computed from the one the bundle lists first (before, CrCl 74 or 37 mL/min by the bundle's order).
    a = obs("2160-0", 1.0, "mg/dL", when="2026-11-25T08:00:00Z", id="a")
    b = obs("2160-0", 2.0, "mg/dL", when="2026-11-25T08:00:00Z", id="b")
    older = obs("2160-0", 1.1, "mg/dL", when="2026-11-20T08:00:00Z")
    for bundle in ([a, b, older], [older, b, a]):
        f = facts(observations=[obs("29463-7", 70, "kg"), *bundle])
        assert f.labs.latest("creatinine") is None and f.renal is None
        (conflict,) = [q for q in f.issues_for("creatinine") if q.kind == "conflicting"]
        assert conflict.detail.startswith("creatinine results of the same time (2026-11-25) disagree: "
                                          "2 mg/dL (Observation/b); 1 mg/dL (Observation/a)")


def test_results_of_the_same_time_that_agree_are_one_result():
    # One specimen reported in mg/dL and in umol/L (88 umol/L is 0.995 mg/dL): the first by id, in either order.
    mass = obs("2160-0", 1.0, "mg/dL", when="2026-11-25T08:00:00Z", id="mass")
    molar = obs("14682-9", 88, "umol/L", when="2026-11-25T08:00:00Z", id="molar")
    for bundle in ([mass, molar], [molar, mass]):
        f = facts(observations=[obs("29463-7", 70, "kg"), *bundle])
        assert f.labs.latest("creatinine").source_id == "Observation/molar" and f.renal is not None
        assert "conflicting" not in kinds(f, "creatinine")


def test_a_pcr_sent_twice_is_one_result_and_pcrs_of_one_time_that_disagree_are_not_used():
    # Two interfaces sending one specimen's result: one result, so not two consecutive positives.
    once = obs("72493-0", 2300, "[IU]/mL", when="2026-11-24T08:00:00Z", id="v1")
    twice = obs("72493-0", 2300, "[IU]/mL", when="2026-11-24T08:00:00Z", id="v2")
    earlier = obs("72493-0", 500, "[IU]/mL", when="2026-11-17T08:00:00Z", id="v0")
    for bundle in ([once, twice, earlier], [earlier, twice, once]):
        assert [r.source_id for r in facts(observations=bundle).viral_load.results] == ["Observation/v2", "Observation/v0"]
    # One specimen in IU/mL and in copies/mL: the IU/mL result (the scale of the pre-emptive threshold).
    copies = obs("33006-8", 4000, "{copies}/mL", when="2026-11-24T08:00:00Z", id="v9")
    assert [r.source_id for r in facts(observations=[copies, once]).viral_load.results] == ["Observation/v1"]
    # 2,300 and 9,000 IU/mL at one time: neither is used (nor a qualitative "detected" beside them); the
    # series goes on without them.
    other = obs("72493-0", 9000, "[IU]/mL", when="2026-11-24T08:00:00Z", id="v3")
    detected = obs("72493-0", when="2026-11-24T08:00:00Z", id="v4", valueString="Detected")
    f = facts(observations=[once, other, earlier])
    assert [r.source_id for r in f.viral_load.results] == ["Observation/v0"]
    assert [r.source_id for r in facts(observations=[once, other, detected, earlier]).viral_load.results] == ["Observation/v0"]
    (issue,) = f.issues_for(codes.VIRAL_LOAD)
    assert issue.kind == "conflicting" and issue.detail.startswith(
        "CMV PCR results of the same time (2026-11-24) disagree: 9000 [IU]/mL (Observation/v3); 2300 [IU]/mL (Observation/v1)")


def test_a_result_sent_thousands_of_times_is_one_result_compared_once(monkeypatch):
    # An interface loop sending one creatinine 3,000 times: one result, without 4.5 million comparisons.
    from cds_service.facts import labs

    comparisons = []
    same = labs._same_measurement
    monkeypatch.setattr(labs, "_same_measurement", lambda a, b: comparisons.append(1) or same(a, b))
    copies = [obs("2160-0", 1.2, "mg/dL", when="2026-11-25T08:00:00Z", id=f"c{i}") for i in range(3000)]
    f = facts(observations=[obs("29463-7", 70, "kg"), *copies])
    assert f.labs.latest("creatinine").value == 1.2 and f.renal is not None
    assert "conflicting" not in kinds(f, "creatinine")
    assert len(comparisons) <= 1
    pcr = [obs("72493-0", 2300, "[IU]/mL", when="2026-11-24T08:00:00Z", id=f"v{i}") for i in range(3000)]
    assert len(facts(observations=pcr).viral_load.results) == 1


def test_more_different_results_of_one_time_than_a_specimen_has_are_taken_to_disagree():
    # 21 creatinines of one moment, all within 2 % of one another: not one specimen reported a few ways.
    tied = [obs("2160-0", 1.0 + i / 1000, "mg/dL", when="2026-11-25T08:00:00Z", id=f"c{i:02d}") for i in range(21)]
    f = facts(observations=[obs("29463-7", 70, "kg"), *tied])
    assert f.labs.latest("creatinine") is None
    (conflict,) = [q for q in f.issues_for("creatinine") if q.kind == "conflicting"]
    assert conflict.detail.count("(Observation/c") == 10 and "; and 11 more;" in conflict.detail
    # Twenty agree, as before: one result.
    assert facts(observations=[obs("29463-7", 70, "kg"), *tied[:20]]).labs.latest("creatinine") is not None


def test_an_unusable_newest_pcr_leaves_the_older_series():
    # CMV results form a series: an unreadable newest result is said, the trend is still read.
    older = obs("72493-0", **{"valueQuantity": {"value": 1500, "unit": "[IU]/mL"}}, when="2026-11-20")
    newest = obs("72493-0", valueString="see comment", when="2026-11-25")
    f = facts(observations=[older, newest])
    assert [r.value for r in f.viral_load.results] == [1500]
    assert "implausible" in kinds(f, codes.VIRAL_LOAD)


def test_several_unusable_values_make_one_issue():
    bad = [obs("751-8", 5, "%", when=f"2026-11-2{i}") for i in range(3)]
    issues = [q for q in facts(observations=bad).issues_for("anc") if q.kind == "unit-unknown"]
    assert len(issues) == 1 and "(and 2 more)" in issues[0].detail


def test_reference_range_and_interpretation_are_kept_in_canonical_units():
    o = obs(
        "14682-9", 132.6, "umol/L",
        referenceRange=[{"low": {"value": 62, "unit": "umol/L", "system": "http://unitsofmeasure.org",
                                 "code": "umol/L"},
                         "high": {"value": 106, "unit": "umol/L"}}],
        interpretation=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                     "code": "H"}]}],
    )
    m = facts(observations=[o]).labs.latest("creatinine")
    assert m.reference_low == pytest.approx(62 / 88.4)
    assert m.reference_high == pytest.approx(106 / 88.4)
    assert m.interpretation == "H"
    assert m.reported == "132.6 umol/L"


@pytest.mark.parametrize(
    "interpretation, expected",
    [
        ([{"coding": [{"code": "LL"}]}], "LL"),
        ([{"coding": [{"code": "AA"}]}], "A"),
        ({"coding": [{"code": "L"}]}, "L"),  # DSTU2: a single concept
        ([{"text": "Critical low"}], "LL"),
        ([{"text": "Low"}], "L"),
        ([{"text": "whatever"}], None),
    ],
)
def test_interpretation_codes_are_normalised(interpretation, expected):
    o = obs("2823-3", 2.9, "mmol/L", interpretation=interpretation)
    assert facts(observations=[o]).labs.latest("potassium").interpretation == expected


def test_unitless_reference_range_takes_the_value_unit():
    o = obs("2823-3", 3.1, "mmol/L", referenceRange=[{"low": {"value": 3.5}, "high": {"value": 5.1}}])
    m = facts(observations=[o]).labs.latest("potassium")
    assert (m.reference_low, m.reference_high) == (3.5, 5.1)


@pytest.mark.parametrize(
    "text, value, comparator",
    [("1.8 mg/dL", 1.8, None), ("<0.2 mg/dL", 0.2, "<"), (">= 12 mg/dL", 12.0, ">=")],
)
def test_value_string_with_number_and_unit(text, value, comparator):
    m = facts(observations=[obs("2160-0", valueString=text)]).labs.latest("creatinine")
    assert (m.value, m.comparator) == (value, comparator)


@pytest.mark.parametrize("text, value", [("150,000 /uL", 150000), ("1,200 /uL", 1200), ("0,450 x10^9/L", None),
                                         ("0,45 x10^9/L", None)])
def test_a_value_string_s_comma_groups_thousands_or_is_no_number(text, value):
    # "0,450" is a decimal comma (0.45), not 450: unreadable, never a count 1,000 times too high.
    f = facts(observations=[obs("751-8", valueString=text)])
    m = f.labs.latest("anc")
    assert (m.value if m else None) == value
    if value is None:
        assert "implausible" in kinds(f, "anc")


def test_value_string_without_unit_is_unit_unknown():
    f = facts(observations=[obs("2160-0", valueString="1.8")])
    assert f.labs.latest("creatinine") is None and "unit-unknown" in kinds(f, "creatinine")


def test_quantity_comparator_is_kept():
    o = obs("751-8", 0.1, "10*3/uL")
    o["valueQuantity"]["comparator"] = "<"
    m = facts(observations=[o]).labs.latest("anc")
    assert (m.value, m.comparator) == (100, "<")
    assert m.describe() == "<100 /uL (2026-11-25)"


def test_duplicate_observation_ids_are_read_once():
    o = obs("2160-0", 1.3, "mg/dL", id="same")
    f = facts(observations=[o, dict(o)])
    assert len(f.labs.series("creatinine")) == 1 and f.skipped_resources == 1


def test_codes_without_loinc_system_are_not_read():
    o = obs("2160-0", 1.3, "mg/dL", system="http://example.org/local")
    assert facts(observations=[o]).labs.latest("creatinine") is None


def test_local_codes_only_through_the_mapping_table(monkeypatch):
    o = obs("CREA", 1.3, "mg/dL", system="http://lab.example.org/codes")
    assert facts(observations=[o]).labs.latest("creatinine") is None
    monkeypatch.setitem(codes.LOCAL_CODE_MAP, ("http://lab.example.org/codes", "CREA"), "creatinine")
    assert facts(observations=[o]).labs.latest("creatinine").value == 1.3


def test_every_analyte_read_has_a_canonical_unit_conversions_and_limits():
    from cds_service.facts import units
    from cds_service.facts.model import ANALYTE_UNITS

    for analyte in codes.ANALYTE_LOINC:
        assert analyte in ANALYTE_UNITS and analyte in units.PLAUSIBLE
        assert analyte in units.CONVERSIONS or analyte == "urine_protein_dipstick"


def test_prefetch_code_list_covers_every_code_read():
    loinc = set(codes.OBSERVATION_LOINC_CODES)
    assert len(loinc) == len(codes.OBSERVATION_LOINC_CODES)
    for expected in ("2160-0", "14682-9", "35591-7", "98979-8", "751-8", "777-3", "718-7", "2823-3",
                     "19123-9", "2601-3", "17861-6", "2000-8", "1994-3", "2777-1", "14879-1", "5804-0",
                     "2888-6", "29463-7", "8302-2", "72493-0", "100675-8", "33006-8", "29604-6"):
        assert expected in loinc


# A cidofovir course on record: the creatinine history is read for its label's rise rule.
CIDOFOVIR = med("cidofovir 75 MG/ML Injection", dose=(350, "mg"), repeat={"frequency": 1, "period": 1, "periodUnit": "wk"})


def test_old_history_is_not_read_but_the_newest_value_always_is():
    ancient = obs("2160-0", 1.1, "mg/dL", when="2020-01-01")
    f = facts(observations=[ancient])
    assert f.labs.latest("creatinine").value == 1.1  # reported as stale, not missing
    recent = [obs("2160-0", 1.0 + i / 100, "mg/dL", when=f"2026-11-{i + 1:02d}") for i in range(2)]
    f = facts(observations=recent + [ancient], medications=[CIDOFOVIR])  # which reads a history
    assert [m.value for m in f.labs.series("creatinine")] == [1.01, 1.0]  # the history, not the ancient value


def test_only_a_short_history_is_read_except_for_cmv_results():
    from cds_service.facts.labs import MAX_RESULTS_PER_ANALYTE

    days = range(1, 26)
    potassium = [obs("2823-3", 4.0 + i / 100, "mmol/L", when=f"2026-11-{i:02d}") for i in days]
    pcr = [obs("72493-0", 1000 + i, "[IU]/mL", when=f"2026-11-{i:02d}") for i in days]
    f = facts(observations=potassium + pcr)
    assert len(f.labs.series("potassium")) == MAX_RESULTS_PER_ANALYTE
    assert f.labs.latest("potassium").value == 4.25
    assert len(f.viral_load.results) == 25


def test_without_a_cidofovir_course_only_the_newest_creatinine_is_read():
    creatinine = [obs("2160-0", 1.0 + i / 100, "mg/dL", when=f"2026-11-{i + 1:02d}") for i in range(3)]
    assert [m.value for m in facts(observations=creatinine).labs.series("creatinine")] == [1.02]
    drafted = facts(observations=creatinine, drafts=[CIDOFOVIR])  # a first dose: no course to judge
    assert [m.value for m in drafted.labs.series("creatinine")] == [1.02]
    on_course = facts(observations=creatinine, medications=[CIDOFOVIR])
    assert [m.value for m in on_course.labs.series("creatinine")] == [1.02, 1.01, 1.0]


def test_creatinine_keeps_a_bounded_history_newest_first():
    # The cidofovir label judges a creatinine rise from the value before the course.
    from cds_service.facts.labs import CREATININE_HISTORY_RESULTS as limit

    days = [NOW - timedelta(days=n) for n in range(1, limit + 11)]  # daily, newest first
    creatinine = [obs("2160-0", 1.0 + n / 1000, "mg/dL", when=d.isoformat()) for n, d in enumerate(days, 1)]
    f = facts(observations=creatinine[::2] + creatinine[1::2], medications=[CIDOFOVIR])  # in any order
    series = f.labs.series("creatinine")
    assert [m.effective for m in series] == days[:limit] and limit > 1
    assert f.labs.latest("creatinine").value == 1.001  # the rules that read one value read the newest


def test_a_creatinine_history_stops_short_of_older_results_of_one_time_that_disagree():
    # Which was the value before the course cannot be told: no baseline is taken from either, nor from older.
    history = [obs("2160-0", 1.6, "mg/dL", when="2026-11-25T08:00:00Z", id="now"),
               obs("2160-0", 2.0, "mg/dL", when="2026-11-06T08:00:00Z", id="base-b"),
               obs("2160-0", 1.0, "mg/dL", when="2026-11-06T08:00:00Z", id="base-a"),
               obs("2160-0", 0.9, "mg/dL", when="2026-11-01T08:00:00Z", id="older")]
    for bundle in (history, history[::-1]):
        series = facts(observations=bundle, medications=[CIDOFOVIR]).labs.series("creatinine")
        assert [m.source_id for m in series] == ["Observation/now"]
    agreeing = [*history[:1], obs("2160-0", 1.0, "mg/dL", when="2026-11-06T08:00:00Z", id="base-b"), *history[2:]]
    series = facts(observations=agreeing, medications=[CIDOFOVIR]).labs.series("creatinine")
    assert [m.source_id for m in series] == ["Observation/now", "Observation/base-b", "Observation/older"]


# ---------------------------------------------------------------------------------------------
# Urine protein dipstick


@pytest.mark.parametrize(
    "value, grade",
    [
        ({"valueString": "Negative"}, 0),
        ({"valueString": "trace"}, 0.5),
        ({"valueString": "1+"}, 1),
        ({"valueString": "2+"}, 2),
        ({"valueString": "+++"}, 3),
        ({"valueString": "4+"}, 4),
        ({"valueString": "30 mg/dL"}, 1),
        ({"valueString": "100 mg/dL"}, 2),
        ({"valueString": "2+ (100 mg/dL)"}, 2),
        ({"valueCodeableConcept": {"text": "2+"}}, 2),
        ({"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "x", "display": "Trace"}]}}, 0.5),
        ({"valueQuantity": {"value": 300, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}, 3),
        ({"valueQuantity": {"value": 1, "unit": "g/L", "system": "http://unitsofmeasure.org", "code": "g/L"}}, 2),
    ],
)
def test_dipstick_grades(value, grade):
    m = facts(observations=[obs("5804-0", **value)]).labs.latest("urine_protein_dipstick")
    assert m.value == grade and m.unit == "{grade}"


def test_unreadable_dipstick_is_reported():
    f = facts(observations=[obs("5804-0", valueString="cloudy")])
    assert f.labs.latest("urine_protein_dipstick") is None
    assert "implausible" in kinds(f, "urine_protein_dipstick")


# ---------------------------------------------------------------------------------------------
# Viral load


def vl(code="72493-0", **value):
    return facts(observations=[obs(code, **value)]).viral_load.latest


def iu(value, unit="[IU]/mL", comparator=None, ucum=True):
    q = {"value": value, "unit": unit}
    if ucum:
        q.update(system="http://unitsofmeasure.org", code=unit)
    if comparator:
        q["comparator"] = comparator
    return {"valueQuantity": q}


AT = "2026-11-24T08:00:00Z"


@pytest.mark.parametrize("first, second, kept", [
    (iu(2300), iu(3.4, "log10 IU/mL", ucum=False), "b"),  # one value, linear and log10 to one decimal (either kept)
    ({"valueString": "Detected"}, iu(137, comparator="<"), "a"),  # detected, below the limit: the detected one
    ({"valueString": "Detected <137 IU/mL"}, iu(137, comparator="<"), "a"),
    ({"valueString": "Not detected"}, iu(137, comparator="<"), "b"),  # not detected: the bound in IU/mL
    (iu(2300), {"valueString": "Detected"}, "a"),  # the quantified one
    (iu(2300), iu(137, comparator="<"), None),  # an amount above the other's limit
    ({"valueString": "Not detected"}, iu(300), None),
    (iu(2300), iu(9000), None),
    ({**iu(137, comparator="<"), "interpretation": [{"coding": [{"code": "ND"}]}]}, {"valueString": "Detected"}, None),
    (iu(137, comparator="<"), {"valueQuantity": {"value": 50000, "unit": "{copies}/mL"}}, None),  # an amount on the other scale
])
def test_pcr_results_of_one_time_agree_as_one_specimen_s_would(first, second, kept):
    a, b = obs("72493-0", when=AT, id="a", **first), obs("72493-0", when=AT, id="b", **second)
    for bundle in ([a, b], [b, a]):
        f = facts(observations=bundle)
        if kept is None:
            assert f.viral_load.results == () and [q.kind for q in f.issues_for(codes.VIRAL_LOAD)] == ["conflicting"]
        else:
            assert [r.source_id for r in f.viral_load.results] == [f"Observation/{kept}"]


def test_the_series_says_when_pcrs_were_taken_that_could_not_be_used():
    # A rule reading results "in a row" must not count across them (ViralLoadSeries.read_through).
    newest = obs("72493-0", when="2026-11-24T08:00:00Z", **iu(800))
    again_unreadable = obs("72493-0", when="2026-11-24T08:00:00Z", valueString="see comment")  # the same specimen
    conflicting = [obs("72493-0", when="2026-11-17T08:00:00Z", **iu(v)) for v in (500, 9000)]
    unreadable = obs("72493-0", when="2026-11-10T08:00:00Z", valueString="see comment")
    oldest = obs("72493-0", when="2026-11-03T08:00:00Z", **iu(300))
    f = facts(observations=[newest, again_unreadable, *conflicting, unreadable, oldest])
    series = f.viral_load
    assert [r.reported for r in series.results] == ["800 [IU]/mL", "300 [IU]/mL"]
    assert [t.date().isoformat() for t in series.unread] == ["2026-11-17", "2026-11-10"]
    assert series.read_through(series.results[0].effective) and not series.read_through(series.results[1].effective)
    # Said, though a newer result was read (the rules stop at them); not the unreadable copy of a used result.
    assert sorted(q.kind for q in f.issues_for(codes.VIRAL_LOAD)) == ["conflicting", "implausible"]
    assert "2026-11-24" not in " ".join(q.detail for q in f.issues_for(codes.VIRAL_LOAD))
    # A date in the future is as unknown as none: no time to stop at.
    future = obs("72493-0", when="2027-11-20T08:00:00Z", **iu(300))
    assert facts(observations=[newest, future]).viral_load.unread == ()


def test_quantified_iu_result():
    r = vl(**iu(1500))
    assert (r.scale, r.value, r.detected, r.below_quantification) == ("IU/mL", 1500, True, False)
    assert r.log10 == pytest.approx(math.log10(1500))
    assert r.code == "72493-0" and r.reported == "1500 [IU]/mL"


@pytest.mark.parametrize("unit, ucum", [("log10 IU/mL", False), ("[log_10]{IU}/mL", True), ("Log IU/mL", False)])
def test_log10_reported_values_keep_log_and_linear_value(unit, ucum):
    r = vl(**iu(2.5, unit, ucum=ucum))
    assert r.scale == "IU/mL" and r.log10 == 2.5
    assert r.value == pytest.approx(10**2.5)


def test_bound_below_the_limit_is_not_quantified():
    r = vl(**iu(137, comparator="<"))
    assert (r.detected, r.below_quantification, r.value, r.limit, r.comparator) == (False, True, None, 137, "<")


@pytest.mark.parametrize(
    "text, detected, below, limit, scale",
    [
        ("Not detected", False, False, None, None),
        ("TND", False, False, None, None),
        ("Target not detected", False, False, None, None),
        ("<137 IU/mL", False, True, 137, "IU/mL"),
        ("< 2.14 log IU/mL", False, True, pytest.approx(10**2.14), "IU/mL"),
        ("detected, below LLOQ", True, True, None, None),
        ("Detected <137 IU/mL", True, True, 137, "IU/mL"),
        ("Detected, <137 IU/mL", True, True, 137, "IU/mL"),
        ("Positive <137 IU/mL", True, True, 137, "IU/mL"),
        ("<137 IU/mL detected", True, True, 137, "IU/mL"),
        ("Quant: <2.0 log IU/mL, detected", True, True, pytest.approx(100), "IU/mL"),
        ("Detected", True, False, None, None),
    ],
)
def test_text_results(text, detected, below, limit, scale):
    r = vl(valueString=text)
    assert (r.detected, r.below_quantification, r.limit, r.scale) == (detected, below, limit, scale)
    assert r.value is None and r.reported == text


@pytest.mark.parametrize("text, value, scale", [
    ("1,234 IU/mL", 1234, "IU/mL"),
    ("1.2 x 10^4 copies/mL", 12000, "copies/mL"),
    ("2.5E3 IU/mL (3.40 log)", 2500, "IU/mL"),
])
def test_quantified_text_results(text, value, scale):
    r = vl(valueString=text)
    assert (r.value, r.scale, r.detected) == (pytest.approx(value), scale, True)


@pytest.mark.parametrize("text", ["log 3.5 IU/mL", "log10 3.5 IU/mL", "Log: 3.5 IU/mL", "Detected, log 3.5"])
def test_log_before_the_number_is_log10(text):
    r = vl(valueString=text)
    assert (r.scale, r.log10, r.detected) == ("IU/mL", 3.5, True)
    assert r.value == pytest.approx(10**3.5)


def test_log_before_an_implausible_number_is_not_used():
    f = facts(observations=[obs("72493-0", valueString="log 35 IU/mL")])
    assert not f.viral_load and "implausible" in kinds(f, codes.VIRAL_LOAD)


@pytest.mark.parametrize("value", [5e-324, 0.0625, 0.999, 2e10])
def test_a_quantified_viral_load_below_one_or_above_ten_billion_per_ml_is_not_used(value):
    # A fraction of one IU per mL is no measurement: read, 5e-324 would be a fall of 327 log10.
    f = facts(observations=[obs("72493-0", **iu(value))])
    assert not f.viral_load and "implausible" in kinds(f, codes.VIRAL_LOAD)


def test_a_quantified_viral_load_of_one_per_ml_is_read():
    assert vl(**iu(1)).log10 == 0


@pytest.mark.parametrize("quantity", [
    {"value": 3.2, "unit": "log IU/mL", "system": "http://unitsofmeasure.org", "code": "[IU]/mL"},
    {"value": 5000, "unit": "copies/mL", "system": "http://unitsofmeasure.org", "code": "[IU]/mL"},
    {"value": 5000, "unit": "copies/mL", "code": "[IU]/mL"},
    {"value": 137, "comparator": "<", "unit": "copies/mL", "system": "http://unitsofmeasure.org", "code": "[IU]/mL"},
])
def test_viral_load_code_and_unit_text_that_disagree_are_not_used(quantity):
    f = facts(observations=[obs("72493-0", valueQuantity=quantity)])
    assert not f.viral_load
    (issue,) = [q for q in f.issues_for(codes.VIRAL_LOAD) if q.kind == "unit-unknown"]
    assert "disagree" in issue.detail


@pytest.mark.parametrize("code, detected", [("260415000", False), ("260373001", True), ("10828004", True)])
def test_coded_results(code, detected):
    r = vl(valueCodeableConcept={"coding": [{"system": SNOMED, "code": code}]})
    assert r.detected is detected and r.value is None and r.scale is None


def test_interpretation_alone():
    assert vl(interpretation=[{"coding": [{"code": "POS"}]}]).detected is True
    assert vl(interpretation=[{"coding": [{"code": "ND"}]}]).detected is False


def test_copies_and_iu_are_kept_apart():
    f = facts(observations=[
        obs("33006-8", **iu(5000, "{copies}/mL"), when="2026-11-20"),
        obs("72493-0", **iu(2000), when="2026-11-24"),
        obs("29604-6", **iu(8000, "/mL"), when="2026-11-10"),  # copies-based code: /mL is copies
        obs("100675-8", **iu(900), when="2026-11-01"),
    ])
    assert [r.value for r in f.viral_load.results] == [2000, 5000, 8000, 900]
    assert [r.value for r in f.viral_load.on_scale("copies/mL")] == [5000, 8000]
    assert [r.value for r in f.viral_load.on_scale("IU/mL")] == [2000, 900]


@pytest.mark.parametrize("quantity", [iu(1500, None), iu(1500, "/mL"), iu(1500, "mg")])
def test_viral_load_without_a_scale_is_unit_unknown(quantity):
    f = facts(observations=[obs("72493-0", **quantity)])
    assert not f.viral_load
    assert "unit-unknown" in kinds(f, codes.VIRAL_LOAD)


def test_unreadable_viral_load_is_reported():
    f = facts(observations=[obs("72493-0", valueString="see comment")])
    assert not f.viral_load and "implausible" in kinds(f, codes.VIRAL_LOAD)


# ---------------------------------------------------------------------------------------------
# pp65


def pp65(**value):
    o = obs("X1", system="http://lab.example.org", **value)
    o["code"]["text"] = "CMV pp65 antigenemia"
    return facts(observations=[o]).pp65


@pytest.mark.parametrize(
    "value, positive",
    [
        ({"valueString": "Positive"}, True),
        ({"valueString": "Negative"}, False),
        ({"valueString": "0 positive cells / 200,000"}, False),
        ({"valueString": "12 positive cells / 200,000"}, True),
        ({"valueQuantity": {"value": 3, "unit": "cells"}}, True),
        ({"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "260385009"}]}}, False),
        ({"valueBoolean": True}, True),
        ({"valueString": "No positive cells seen"}, False),
        ({"valueString": "None seen"}, False),
        ({"valueString": "0 positive"}, False),
        ({"valueString": "No pp65-positive cells"}, False),
        ({"valueString": "No antigen positive leukocytes seen"}, False),
        ({"valueString": "No. of positive cells: 12"}, True),  # "No." is a number, not a negation
        ({"valueString": "<1 positive cell/200,000 WBC"}, False),
        ({"valueString": ">50 positive cells/200,000 WBC"}, True),
        ({"valueQuantity": {"value": 1, "comparator": "<", "unit": "cells/200,000 WBC"}}, False),
        ({"valueQuantity": {"value": 0, "comparator": "<=", "unit": "cells"}}, False),
        ({"valueQuantity": {"value": 50, "comparator": ">", "unit": "cells"}}, True),
    ],
)
def test_pp65_results_by_text_match(value, positive):
    (result,) = pp65(**value)
    assert result.positive is positive and result.effective is not None


def test_pp65_bound_keeps_its_comparator():
    (result,) = pp65(valueQuantity={"value": 1, "comparator": "<", "unit": "cells/200,000 WBC"})
    assert result.reported == "<1 cells/200,000 WBC"


@pytest.mark.parametrize("value", [
    {"valueQuantity": {"value": 5, "comparator": "<", "unit": "cells"}},  # 0 to 4 cells: positive or not
    {"valueString": "<5 positive cells/200,000 WBC"},
    {"valueQuantity": {"value": 0, "comparator": ">=", "unit": "cells"}},
])
def test_pp65_bound_that_does_not_say_positive_or_negative_is_not_used(value):
    o = obs("X1", system="http://lab.example.org", **value)
    o["code"]["text"] = "CMV pp65 antigenemia"
    f = facts(observations=[o])
    assert f.pp65 == () and "implausible" in kinds(f, codes.PP65)


@pytest.mark.parametrize("name", [
    "CMV pp65-specific T-cell ELISpot", "CMV pp65 antibody IgG", "CMV pp65 IgM", "CMV pp65 IGRA",
    "CMV pp65 interferon-gamma release", "pp65 T cell response",
])
def test_pp65_immune_response_tests_are_not_antigenaemia(name):
    o = obs("X1", system="http://lab.example.org", valueString="Positive")
    o["code"]["text"] = name
    f = facts(observations=[o])
    assert f.pp65 == () and f.issues_for(codes.PP65) == ()
    o["code"] = {"coding": [{"system": "http://lab.example.org", "code": "X1", "display": name}], "text": "pp65"}
    assert facts(observations=[o]).pp65 == ()  # any of its names says what it is


@pytest.mark.parametrize("name", [
    "CMV pp65 Ag - blood by monoclonal antibody stain",  # the antigenaemia assay stains with an antibody
    "CMV pp65 antigenemia by anti-pp65 monoclonal antibody stain",
    "CMV antigenemia (pp65 antibody stain)",
    "CMV pp65 Ag [#/volume] in Blood",
])
def test_pp65_antigenaemia_named_with_its_staining_antibody_is_pp65(name):
    o = obs("X1", system="http://lab.example.org", valueString="Positive")
    o["code"]["text"] = name
    (result,) = facts(observations=[o]).pp65
    assert result.positive is True


@pytest.mark.parametrize("name", [
    "Antibody to CMV pp65", "Anti-pp65 antibody", "CMV pp65 antibodies", "CMV pp65 Ab", "pp65 serology",
    "CMV pp65 QuantiFERON", "CMV pp65 IFN-gamma", "Anti-pp65 IgG",
])
def test_pp65_antibody_as_the_analyte_is_not_antigenaemia(name):
    o = obs("X1", system="http://lab.example.org", valueString="Positive")
    o["code"]["text"] = name
    assert facts(observations=[o]).pp65 == ()


def test_pp65_by_local_code_map_only(monkeypatch):
    o = obs("PP65", system="http://lab.example.org", valueString="positive")
    assert facts(observations=[o]).pp65 == ()
    monkeypatch.setitem(codes.LOCAL_CODE_MAP, ("http://lab.example.org", "PP65"), codes.PP65)
    assert facts(observations=[o]).pp65[0].positive is True


def test_evaluation_time_is_timezone_aware():
    f = facts(observations=[obs("2160-0", 1.3, "mg/dL")], now=NOW.replace(tzinfo=None))
    assert f.evaluated_at.tzinfo is not None


@pytest.mark.parametrize("name", ["CMV pp65-specific antibody", "CMV antibody pp65", "CMV pp65 Ab"])
def test_an_antibody_to_pp65_is_not_antigenaemia(name):
    from cds_service.facts.labs import observation_target
    assert observation_target({"code": {"text": name}}) is None


@pytest.mark.parametrize("name", [
    "CMV pp65 antigen (immunoperoxidase, antibody C10/C11)",
    "CMV pp65 antigenemia abs count",
    "CMV pp65 Ag by monoclonal-antibody immunofluorescence",
])
def test_an_antigenaemia_name_that_mentions_an_antibody_is_still_pp65(name):
    from cds_service.facts.labs import observation_target
    assert observation_target({"code": {"text": name}}) == "cmv_pp65"


@pytest.mark.parametrize(
    "interpretation, detected, below",
    [({"coding": [{"code": "DET"}]}, True, True), ({"text": "Detected"}, True, True),
     # Said not detected: not "detected or unknown, below quantification", so no other result of its time
     # saying detected agrees with it.
     ({"coding": [{"code": "ND"}]}, False, False), ({"text": "Not detected"}, False, False),
     (None, False, True)],  # not said: below the limit, detected or not
)
@pytest.mark.parametrize("value", [{"valueQuantity": {"value": 137, "comparator": "<", "unit": "IU/mL"}},
                                   {"valueString": "<137 IU/mL"}], ids=["quantity", "text"])
def test_a_viral_load_bound_is_detected_when_its_interpretation_says_so(value, interpretation, detected, below):
    from cds_service.facts.labs import _read_viral_load
    obs = {"resourceType": "Observation", **value}
    if interpretation is not None:
        obs["interpretation"] = [interpretation]
    result = _read_viral_load("cmv_viral_load", obs, None, "Observation/1")
    assert (result.detected, result.below_quantification) == (detected, below)
