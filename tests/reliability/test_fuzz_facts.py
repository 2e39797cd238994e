"""Property tests of the pipeline behind the protocol layer, in-process: for any FHIR a client could
send, build_facts reads it without a reader failing, every fact is finite and plausible, and the
clinical rules and cards keep their contracts.  Seeded (derandomize): no random seed decides the
cases, but they change with the tests' code, and a whole-suite run has drawn other cases than a run
of this file alone.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from conftest import FactsErrors

from cds_service.cards import contract_problems, render_cards
from cds_service.clinical import evaluate
from cds_service.facts import PatientRecord, build_facts
from cds_service.facts.model import ANALYTE_UNITS, ClinicalFacts, MedicationOrder
from cds_service.facts.units import PLAUSIBLE
from cds_service.policy import Policy

from .conftest import encode, fixture_request_names, seed
from .contract import acceptance_conflicts, card_problems
from .strategies import near_valid_request, spoiled

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
POLICY = Policy()
EXAMPLES = 200
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TARGETS = {
    "patient-view": lambda facts: (),
    "order-select": lambda facts: tuple(d for d in facts.drafts if d.id in facts.selected),
    "order-sign": lambda facts: facts.drafts,
}


def finite(value, low=-math.inf, high=math.inf) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and low <= value <= high


def fact_problems(facts: ClinicalFacts) -> list[str]:
    problems = []
    patient = facts.patient
    if patient.age_years is not None and not 0 <= patient.age_years <= 120:
        problems.append(f"age {patient.age_years}")
    if patient.birth_date is not None and patient.birth_date > NOW.date():
        problems.append(f"birth date {patient.birth_date} in the future")
    for analyte, series in facts.labs.by_analyte.items():
        low, high = PLAUSIBLE.get(analyte, (-math.inf, math.inf))
        for m in series:
            if not finite(m.value, low, high):
                problems.append(f"{analyte} {m.value!r} outside {low}..{high}")
            if m.unit != ANALYTE_UNITS.get(analyte):
                problems.append(f"{analyte} in {m.unit!r}, not the canonical unit")
            for bound in (m.reference_low, m.reference_high):
                if bound is not None and not finite(bound):
                    problems.append(f"{analyte} reference bound {bound!r}")
            if m.effective is not None and m.effective.tzinfo is None:
                problems.append(f"{analyte} date without a time zone")
    for result in facts.viral_load.results:
        if result.value is not None and not finite(result.value, 0):
            problems.append(f"viral load {result.value!r}")
        if result.log10 is not None and not finite(result.log10, -1, 12):
            problems.append(f"viral load log10 {result.log10!r}")
    renal = facts.renal
    if renal is not None:
        # Plausible inputs bound Cockcroft-Gault: (140 - 18) x 650 kg / (72 x 0.1 mg/dL).
        if renal.crcl_ml_min is None:  # no current weight: the clearance per kg alone, which needs none
            if renal.weight is not None or renal.crcl_ml_min_per_kg is None:
                problems.append(f"CrCl None beside weight {renal.weight!r}, per kg {renal.crcl_ml_min_per_kg!r}")
        elif not finite(renal.crcl_ml_min, 0, 12_000):
            problems.append(f"CrCl {renal.crcl_ml_min!r}")
        if renal.crcl_ml_min_per_kg is not None and not finite(renal.crcl_ml_min_per_kg, 0, 400):
            problems.append(f"CrCl per kg {renal.crcl_ml_min_per_kg!r}")
        if renal.weight_kg_used is not None and not finite(renal.weight_kg_used, 1, 650):
            problems.append(f"CrCl weight {renal.weight_kg_used!r}")
    if facts.dosing_weight is not None and not finite(facts.dosing_weight.kg, 1, 650):
        problems.append(f"dosing weight {facts.dosing_weight.kg!r}")
    for order in facts.medications + facts.drafts:
        problems += order_problems(order)
    problems += [q.detail for q in facts.quality if "internal error" in q.detail]
    return problems


def order_problems(order: MedicationOrder) -> list[str]:
    problems = []
    for name in ("dose_mg", "mg_per_kg", "unit_count", "unit_strength_mg"):
        value = getattr(order, name)
        if value is not None and not (finite(value) and value > 0):
            problems.append(f"{order.id} {name} {value!r}")
    # From a minute to a year between doses; anything else is not a schedule.
    if order.interval_hours is not None and not finite(order.interval_hours, 1 / 60, 24 * 366):
        problems.append(f"{order.id} interval_hours {order.interval_hours!r}")
    if order.duration_days is not None and not finite(order.duration_days, 0):
        problems.append(f"{order.id} duration {order.duration_days!r}")
    if order.start is not None and order.end is not None and order.end < order.start:
        problems.append(f"{order.id} ends {order.end} before it starts {order.start}")
    return problems


def run_pipeline(body: dict, facts_errors: FactsErrors) -> None:
    # What the endpoint would hold: the body as a client sends it, parsed as the service parses it
    # (orjson makes integers beyond 64 bits floats, which the strategies draw as Python ints).
    body = orjson.loads(encode(body))
    context = body.get("context") if isinstance(body.get("context"), dict) else {}
    prefetch = body.get("prefetch") if isinstance(body.get("prefetch"), dict) else {}
    hook = body.get("hook") if isinstance(body.get("hook"), str) and body.get("hook") in TARGETS else "patient-view"
    facts_errors.records.clear()

    record = PatientRecord.from_hook(context, prefetch, {})
    facts = build_facts(record, POLICY, NOW)
    messages = [r.getMessage() for r in facts_errors.records]
    assert messages == [], messages
    assert fact_problems(facts) == []

    findings = evaluate(facts, POLICY, hook, TARGETS[hook](facts))
    for finding in findings:
        assert contract_problems(finding) == [], (finding.topic, contract_problems(finding))
    assert acceptance_conflicts(findings, facts, hook) == []
    orders = {order.id: order.resource for order in facts.drafts + facts.medications}
    patient_id = context.get("patientId") if isinstance(context.get("patientId"), str) else None
    cards = render_cards(findings, orders, patient_id, frozenset(order.id for order in facts.drafts))
    for card in cards:
        assert card_problems(card) == [], card_problems(card)
    orjson.dumps({"cards": cards})  # what the endpoint does next


SEEDS = fixture_request_names()


@pytest.mark.parametrize("name", SEEDS)
def test_fixture_requests(facts_errors, name):
    run_pipeline(seed(name), facts_errors)


@FUZZ
@given(data=st.data())
def test_spoiled_fixture_requests(facts_errors, data):
    body = data.draw(spoiled(seed(data.draw(st.sampled_from(SEEDS)))))
    run_pipeline(body, facts_errors)


@FUZZ
@given(body=st.sampled_from(["patient-view", "order-select", "order-sign"]).flatmap(near_valid_request))
def test_near_valid_requests(facts_errors, body):
    run_pipeline(body, facts_errors)


def answer(body: dict) -> list[tuple]:
    """The findings of a body, in-process, as everything a card says and proposes."""
    context = body.get("context") if isinstance(body.get("context"), dict) else {}
    prefetch = body.get("prefetch") if isinstance(body.get("prefetch"), dict) else {}
    hook = body.get("hook") if isinstance(body.get("hook"), str) and body.get("hook") in TARGETS else "patient-view"
    facts = build_facts(PatientRecord.from_hook(context, prefetch, {}), POLICY, NOW)
    return [(f.topic, f.indicator, f.summary, f.detail, repr(f.proposals))
            for f in evaluate(facts, POLICY, hook, TARGETS[hook](facts))]


def entries_with_distinct_ids(bundle: Any) -> list | None:
    """A Bundle's entries when each holds a resource with its own id (else None: an order with no id is
    named by its place in the bundle, and of two with one id the first is read, by design)."""
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    if not isinstance(entries, list):
        return None
    ids = [(e.get("resource") or {}).get("id") if isinstance(e, dict) and isinstance(e.get("resource"), dict) else None
           for e in entries]
    return entries if all(isinstance(i, str) for i in ids) and len(set(ids)) == len(ids) else None


@FUZZ
@given(data=st.data())
def test_the_answer_does_not_depend_on_the_order_of_the_prefetched_bundles(data):
    body = orjson.loads(encode(data.draw(spoiled(seed(data.draw(st.sampled_from(SEEDS)))))))
    prefetch = body.get("prefetch")
    if not isinstance(prefetch, dict):
        return
    shuffled = dict(prefetch)
    for key, bundle in prefetch.items():
        entries = entries_with_distinct_ids(bundle)
        if entries is None:
            if isinstance(bundle, dict) and isinstance(bundle.get("entry"), list) and len(bundle["entry"]) > 1:
                return  # the order decides by design (see entries_with_distinct_ids)
            continue
        shuffled[key] = {**bundle, "entry": data.draw(st.permutations(entries))}
    assert answer({**body, "prefetch": shuffled}) == answer(body)


# CMV PCR and creatinine results as labs send them, for results of one time (one specimen sent twice, two
# units, or results that disagree).
PCR_VALUES = [{"valueQuantity": {"value": v, "unit": "[IU]/mL", "system": "http://unitsofmeasure.org", "code": "[IU]/mL"}}
              for v in (137, 2300, 2400, 9000)] + [
    {"valueQuantity": {"value": 137, "comparator": "<", "unit": "[IU]/mL"}},
    {"valueQuantity": {"value": 3.4, "unit": "log10 IU/mL"}},
    {"valueQuantity": {"value": 4000, "unit": "copies/mL"}},
    {"valueString": "Detected"}, {"valueString": "Not detected"}, {"valueString": "see comment"}]
CREATININE_VALUES = [{"valueQuantity": {"value": v, "unit": u}} for v, u in ((1.0, "mg/dL"), (88, "umol/L"), (2.0, "mg/dL"))]


@FUZZ
@given(data=st.data())
def test_results_of_one_time_are_read_the_same_in_any_order(data):
    def results(code, values, prefix):
        times = ["2026-11-24T08:00:00Z", "2026-11-17T08:00:00Z", "2026-11-10T08:00:00Z"]
        drawn = data.draw(st.lists(st.tuples(st.sampled_from(times), st.sampled_from(values)), min_size=1, max_size=6))
        return [{"resourceType": "Observation", "id": f"{prefix}{i}", "status": "final", "effectiveDateTime": when,
                 "code": {"coding": [{"system": "http://loinc.org", "code": code}]}, **value}
                for i, (when, value) in enumerate(drawn)]

    observations = results("72493-0", PCR_VALUES, "pcr") + results("2160-0", CREATININE_VALUES, "scr")

    def read(bundle):
        f = build_facts(PatientRecord(patient=None, observations=bundle), POLICY, NOW)
        return f.viral_load, f.labs.by_analyte.get("creatinine"), sorted((q.kind, q.item, q.detail) for q in f.quality)

    assert read(data.draw(st.permutations(observations))) == read(observations)


@pytest.mark.parametrize("detail, flagged", [
    ("Dose: nan mg every 12 h", True),
    ("Give qinfh", True),
    ("The dose unit 'nan' is not a mass", False),  # the client's text, quoted as sent
    ("Dose unit 'NaN' and nan mg", True),
    ("The label's band: nan mg q0h (the patient's CrCl)", True),  # apostrophes, not a quotation
])
def test_the_card_check_tells_an_uncomputed_number_from_quoted_client_text(detail, flagged):
    card = {"uuid": "u", "summary": "Ganciclovir dose not checked", "indicator": "warning", "detail": detail,
            "source": {"label": "clinical brief", "topic": {"code": "missing-data"}}}
    assert any("uncomputed" in p for p in card_problems(card)) is flagged
