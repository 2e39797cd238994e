"""Proposals -> CDS Hooks suggestions, each with one action on one FHIR resource, plus one per
proposal it carries (`also`): a switch from an order on record orders the new drug and discontinues
the old one in one suggestion; a removed cidofovir draft takes its probenecid draft with it.

An action that would need the patient (every `create`) is left out when the patient id is unknown:
an order without a subject is not an order.  The card still says what to do.
"""

from __future__ import annotations

from collections.abc import Mapping  # isinstance against it: three times faster than typing.Mapping
from typing import Any, Callable, Collection

from cds_service.cards.fhir import (
    ROUTES,
    consult,
    consult_request,
    dose_text,
    lab_request,
    new_medication_request,
    requested_test,
    stopped_order,
    updated_order,
)
from cds_service.cards.ids import new_uuid
from cds_service.clinical.findings import (
    ConsultProposal,
    DoseProposal,
    LabOrderProposal,
    Proposal,
    StopOrderProposal,
)
from cds_service.facts.fhir import deeper_than, text

Orders = Mapping[str, Mapping[str, Any]]
_ORDER_TYPES = ("MedicationRequest", "MedicationOrder")


def suggestion(
    proposal: Proposal, orders: Orders, patient_id: str | None, drafts: Collection[str] = frozenset()
) -> dict | None:
    """`drafts`: the ids of the hook's draft orders (a stop of one is a delete; of anything else, a
    discontinuation)."""
    action = _action(proposal, orders, patient_id, drafts)
    # A switch whose stop points at an order sent without an id would start the new drug beside the old one
    # (a stop that carries one stops the rest: that part alone is left out, in _carried).
    if action is None or isinstance(proposal, DoseProposal) and any(
            isinstance(part, StopOrderProposal) and _unidentified(orders, part.order_id) for part in proposal.also):
        return None
    result: dict[str, Any] = {"label": proposal.label or action["description"], "uuid": new_uuid()}
    if proposal.recommended:
        result["isRecommended"] = True
    result["actions"] = [action, *_carried(proposal, orders, patient_id, drafts)]
    return result


def _action(p: Proposal, orders: Orders, patient_id: str | None, drafts: Collection[str]) -> dict | None:
    if isinstance(p, StopOrderProposal):
        return _stop_action(p, orders, drafts)
    build = _ACTIONS.get(type(p))
    return build(p, orders, patient_id) if build else None


def _carried(proposal: Proposal, orders: Orders, patient_id: str | None, drafts: Collection[str]) -> list[dict]:
    """The actions of the proposals `proposal` carries.  A stop only of an order the request carried: an
    order not in it is not touched (the card's text says to stop it)."""
    actions = []
    for part in getattr(proposal, "also", ()):
        if isinstance(part, StopOrderProposal) and _order(orders, part.order_id) is None:
            continue
        if (action := _action(part, orders, patient_id, drafts)) is not None:
            actions.append(action)
    return actions


# No real order nests anywhere near this deep, and the JSON encoder refuses very deep structures:
# an order nested deeper is not echoed back (the suggestion creates a new order instead).
MAX_ORDER_DEPTH = 64


def _order(orders: Orders, order_id: str | None) -> Mapping[str, Any] | None:
    resource = orders.get(order_id) if order_id else None
    if (
        isinstance(resource, Mapping)
        and resource.get("resourceType") in _ORDER_TYPES
        and not deeper_than(resource, MAX_ORDER_DEPTH)
    ):
        return resource
    return None


def _unidentified(orders: Orders, order_id: str | None) -> bool:
    """An order the request sent without an id (the facts layer names it by its place in the bundle): no
    action can point at it, so none is offered; the card still says what to do with it."""
    resource = orders.get(order_id) if order_id else None
    return isinstance(resource, Mapping) and text(resource.get("id")) is None


def _order_name(order: Mapping[str, Any] | None, fallback: str) -> str:
    concept = order.get("medicationCodeableConcept") if order else None
    text = concept.get("text") if isinstance(concept, Mapping) else None
    return text if isinstance(text, str) and text.strip() else fallback


def _dose_action(p: DoseProposal, orders: Orders, patient_id: str | None) -> dict | None:
    if p.route not in ROUTES or not p.dose_mg > 0:
        return None  # not an orderable dose (render.contract_problems reports it)
    if _unidentified(orders, p.replaces):
        return None  # a new order beside it would be a second one
    original = _order(orders, p.replaces)
    if original is not None:
        return {
            "type": "update",
            "description": f"Change the {_order_name(original, p.drug)} order to {p.drug} {dose_text(p)}",
            "resource": updated_order(original, p),
        }
    if patient_id is None:
        return None
    # Without the original resource the order cannot be updated in place: propose a new one.
    instead = ", in place of the current order" if p.replaces else ""
    return {
        "type": "create",
        "description": f"Order {p.drug} {dose_text(p)}{instead}",
        "resource": new_medication_request(p, patient_id),
    }


def _lab_action(p: LabOrderProposal, orders: Orders, patient_id: str | None) -> dict | None:
    if patient_id is None:
        return None
    when = f" ({p.recurrence})" if p.recurrence else ""
    return {
        "type": "create",
        "description": f"Order {requested_test(p)}{when}",
        "resource": lab_request(p, patient_id),
    }


def _consult_action(p: ConsultProposal, orders: Orders, patient_id: str | None) -> dict | None:
    if patient_id is None:
        return None
    return {
        "type": "create",
        "description": f"Request {consult(p.specialty)[0].lower()}: {p.reason}",
        "resource": consult_request(p, patient_id),
    }


def _stop_action(p: StopOrderProposal, orders: Orders, drafts: Collection[str]) -> dict | None:
    if _unidentified(orders, p.order_id):
        return None
    original = _order(orders, p.order_id)
    name = _order_name(original, p.order_id)
    draft = p.order_id in drafts or (original is not None and original.get("status") == "draft")
    if original is not None and not draft:
        # An order already on record is discontinued, never deleted from the record (one with no
        # status too: a draft is one the hook sent as a draft, or one whose status says so).
        return {
            "type": "update",
            "description": f"Discontinue {name}: {p.reason}",
            "resource": stopped_order(original, p.reason),
        }
    return {
        "type": "delete",
        "description": f"Remove the draft order {name}: {p.reason}",
        "resourceId": p.order_id,  # a relative reference (CDS Hooks 2.0: a string)
    }


_ACTIONS: Mapping[type, Callable[[Any, Orders, str | None], dict | None]] = {
    DoseProposal: _dose_action,
    LabOrderProposal: _lab_action,
    ConsultProposal: _consult_action,
}
