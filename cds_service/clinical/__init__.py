"""Clinical logic: pure functions from ClinicalFacts to Findings (no FHIR, no Flask, no I/O).

Public API:
    evaluate(facts, policy, hook, targets) -> list[Finding]  everything a hook call gets
    check_orders(facts, policy, targets) -> list[Finding]    order safety (order-select/-sign)
    guidance(facts, policy, hook, targets) -> list[Finding]  treatment guidance (all hooks)
"""

from dataclasses import replace
from typing import Iterable

from cds_service.clinical.findings import DoseProposal, Finding, discontinued, urgency
from cds_service.clinical.guidance import guidance
from cds_service.clinical.order_safety import DOSE_TOPICS, check_orders
from cds_service.facts.model import ClinicalFacts, MedicationOrder
from cds_service.policy import Policy

__all__ = ["check_orders", "evaluate", "guidance"]


def evaluate(facts: ClinicalFacts, policy: Policy, hook: str, targets: Iterable[MedicationOrder]) -> list[Finding]:
    """Order safety and guidance together.  A draft the guidance says is prophylaxis where treatment
    is needed gets no dose correction within its own kind (a prevention dose adjusted for the
    kidneys): the prophylaxis-not-treatment card gives the treatment dose instead."""
    targets = tuple(targets)
    found = check_orders(facts, policy, targets) + guidance(facts, policy, hook, targets)
    wrong_kind = {f.order_id for f in found if f.topic == "prophylaxis-not-treatment"}
    return _one_switch_per_order([f for f in found if not (f.topic in DOSE_TOPICS and f.order_id in wrong_kind)])


def _one_switch_per_order(found: list[Finding]) -> list[Finding]:
    """Two cards that each switch away from the same order on record would, both accepted, start two
    drugs in its place (critical low counts and suspected resistance both offering foscarnet): the most
    urgent card (the first among equals) keeps its switches; the others keep their text and their
    other proposals."""
    def stops(p) -> set[str]:
        return set(discontinued(p)) if isinstance(p, DoseProposal) else set()

    taken: dict[str, Finding] = {}  # order id -> the card that switches away from it
    kept: dict[int, Finding] = {}
    for i, finding in sorted(enumerate(found), key=lambda pair: urgency(pair[1])):
        clash = [taken[o] for p in finding.proposals for o in stops(p) if o in taken]
        if clash:
            note = (f"**Switches left out here:** the card \"{clash[0].summary}\" switches away from the same order; "
                    "accept the switch on one card only.")
            finding = replace(
                finding,
                proposals=tuple(p for p in finding.proposals if not stops(p) & taken.keys()),
                detail=f"{finding.detail}\n\n{note}",
            )
        taken |= {order_id: finding for p in finding.proposals for order_id in stops(p) if order_id not in taken}
        kept[i] = finding
    return [kept[i] for i in range(len(found))]
