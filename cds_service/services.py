"""The three CMV services, declared once.  Each handler runs the pipeline
record -> facts -> findings -> cards; the protocol layer serves whatever is declared here."""

from __future__ import annotations

from cds_service.cards import render_cards
from cds_service.clinical import evaluate
from cds_service.facts import PatientRecord, build_facts
from cds_service.facts.codes import OBSERVATION_LOINC_CODES
from cds_service.hooks.registry import CdsService, HookCall

_OBSERVATION_CODES = ",".join(f"http://loinc.org|{code}" for code in OBSERVATION_LOINC_CODES)

# Prefetch templates (CDS Hooks 2.0 tokens only).  Observations are only the analytes the rules
# read, newest first; medication orders include recently ended ones (cidofovir's 7-day nephrotoxin
# rule and therapy history need them); conditions are filtered for status in the facts layer.
PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "observations": f"Observation?patient={{{{context.patientId}}}}&code={_OBSERVATION_CODES}"
    "&_sort=-date&_count=500",
    "medications": "MedicationRequest?patient={{context.patientId}}"
    "&status=active,on-hold,completed,stopped&_count=200",
    "conditions": "Condition?patient={{context.patientId}}&_count=200",
    "allergies": "AllergyIntolerance?patient={{context.patientId}}&_count=100",
}

_ORDER_CONTEXT = {"userId": str, "patientId": str, "draftOrders": dict}


def _evaluate(call: HookCall, targets_of) -> list[dict]:
    record = PatientRecord.from_hook(call.context, call.prefetch, call.unavailable)
    facts = build_facts(record, call.policy, call.now)
    targets = targets_of(facts)
    findings = evaluate(facts, call.policy, call.hook, targets)
    orders = {order.id: order.resource for order in facts.drafts + facts.medications}
    drafts = frozenset(order.id for order in facts.drafts)
    return render_cards(findings, orders, call.context.get("patientId"), drafts)


def order_select(call: HookCall) -> list[dict]:
    # Check only the drafts the clinician selected, against the whole record and all drafts.
    return _evaluate(call, lambda facts: tuple(d for d in facts.drafts if d.id in facts.selected))


def order_sign(call: HookCall) -> list[dict]:
    return _evaluate(call, lambda facts: facts.drafts)


def patient_view(call: HookCall) -> list[dict]:
    return _evaluate(call, lambda facts: ())


SERVICES = (
    CdsService(
        id="cmv-order-select",
        hook="order-select",
        title="CMV therapy check (order select)",
        description=(
            "Checks a selected anti-CMV order (ganciclovir, valganciclovir, foscarnet, cidofovir, "
            "letermovir, maribavir) against kidney function, blood counts, electrolytes, interactions "
            "and the patient's CMV disease, and suggests renally adjusted doses."
        ),
        prefetch=PREFETCH,
        handler=order_select,
        required_context={**_ORDER_CONTEXT, "selections": list},
        optional_context={"encounterId": str},
    ),
    CdsService(
        id="cmv-order-sign",
        hook="order-sign",
        title="CMV therapy check (order sign)",
        description=(
            "Checks every anti-CMV order being signed against kidney function, blood counts, "
            "electrolytes, interactions and the patient's CMV disease before it is signed."
        ),
        prefetch=PREFETCH,
        handler=order_sign,
        required_context=_ORDER_CONTEXT,
        optional_context={"encounterId": str},
    ),
    CdsService(
        id="cmv-patient-view",
        hook="patient-view",
        title="CMV treatment guidance",
        description=(
            "For immunocompromised patients with CMV infection or disease: viral-load trend, current "
            "therapy, the recommended regimen dosed for kidney function, resistance, monitoring and "
            "population-specific guidance (transplant, HSCT, HIV, IBD)."
        ),
        prefetch=PREFETCH,
        handler=patient_view,
        required_context={"userId": str, "patientId": str},
        optional_context={"encounterId": str},
    ),
)
