"""Clinical logic: pure functions from ClinicalFacts to Findings (no FHIR, no Flask, no I/O).

Public API:
    check_orders(facts, policy, targets) -> list[Finding]    order safety (order-select/-sign)
    guidance(facts, policy, hook, targets) -> list[Finding]  treatment guidance (all hooks)
"""

from cds_service.clinical.guidance import guidance
from cds_service.clinical.order_safety import check_orders

__all__ = ["check_orders", "guidance"]
