"""Which drug an order is, in the groups the labels' interaction lists name.

The facts layer identifies drugs (facts/drugs.py: generic and brand names, codes) and reports an
order's ingredients ("a/b" for combinations), drug classes and whether it is systemic.  The rules
here only group those ingredients: a group is the set of facts-layer ingredients a label means.
Local orders (eye gel, intravitreal injection, ointment) belong to no group and are no anti-CMV
therapy: the facts layer marks them `systemic=False`.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Collection, Iterable, Mapping

from cds_service.facts.drugs import ingredients_named
from cds_service.facts.model import ClinicalFacts, MedicationOrder

ANTI_CMV = ("ganciclovir", "valganciclovir", "foscarnet", "cidofovir", "letermovir", "maribavir")
# Agents that treat CMV infection or disease (letermovir is prophylaxis only).
TREATMENT_AGENTS = ("ganciclovir", "valganciclovir", "foscarnet", "cidofovir", "maribavir")
GANCICLOVIR_FAMILY = frozenset({"ganciclovir", "valganciclovir"})  # valganciclovir is its prodrug

# Group -> the facts layer's ingredient names it covers.
DRUG_GROUPS: Mapping[str, frozenset[str]] = {
    **{drug: frozenset({drug}) for drug in ANTI_CMV},
    # calcineurin and mTOR inhibitors
    "cyclosporine": frozenset({"cyclosporine"}),
    "tacrolimus": frozenset({"tacrolimus"}),
    "sirolimus": frozenset({"sirolimus"}),
    "everolimus": frozenset({"everolimus"}),
    # additive marrow toxicity with ganciclovir/valganciclovir (label)
    "mycophenolate": frozenset({"mycophenolate"}),
    "zidovudine": frozenset({"zidovudine"}),
    "trimethoprim-sulfamethoxazole": frozenset({"trimethoprim-sulfamethoxazole"}),
    "dapsone": frozenset({"dapsone"}),
    "pentamidine": frozenset({"pentamidine"}),
    "flucytosine": frozenset({"flucytosine"}),
    # seizures with ganciclovir/valganciclovir (label)
    "imipenem": frozenset({"imipenem-cilastatin"}),
    # maribavir's inducers (label).  Fosphenytoin is converted entirely to phenytoin.
    "carbamazepine": frozenset({"carbamazepine"}),
    "phenytoin": frozenset({"phenytoin", "fosphenytoin"}),
    "phenobarbital": frozenset({"phenobarbital"}),
    "rifampin": frozenset({"rifampin"}),
    "rifabutin": frozenset({"rifabutin"}),
    "st-johns-wort": frozenset({"st john's wort"}),
    # raises ganciclovir exposure (ganciclovir label)
    "probenecid": frozenset({"probenecid"}),
    # lowered by letermovir (label)
    "voriconazole": frozenset({"voriconazole"}),
}

GROUP_NAMES = {"imipenem": "imipenem-cilastatin", "st-johns-wort": "St John's wort"}


@lru_cache(maxsize=4096)  # every order is compared with every other: read each name once
def _ingredients(ingredient: str | None, drug_text: str | None) -> frozenset[str]:
    parts = ingredient.split("/") if ingredient else []
    texts = [t for t in (ingredient, drug_text) if t]
    return frozenset(parts) | frozenset(ingredients_named(texts))


def all_groups(order: MedicationOrder) -> frozenset[str]:
    """Every group a systemic order belongs to (none for a local order)."""
    return _groups(order.ingredient, order.drug_text) if order.systemic else frozenset()


@lru_cache(maxsize=4096)
def _groups(ingredient: str | None, drug_text: str | None) -> frozenset[str]:
    ingredients = _ingredients(ingredient, drug_text)
    return frozenset(group for group, members in DRUG_GROUPS.items() if ingredients & members)


def in_group(order: MedicationOrder, group: str) -> bool:
    return group in all_groups(order)


def groups_of(order: MedicationOrder, groups: Iterable[str]) -> tuple[str, ...]:
    mine = all_groups(order)
    return tuple(g for g in groups if g in mine)


def cmv_drug(order: MedicationOrder) -> str | None:
    """The systemic anti-CMV agent an order is for, or None."""
    return _cmv_drug(order.ingredient, order.drug_text) if order.systemic else None


@lru_cache(maxsize=4096)
def _cmv_drug(ingredient: str | None, drug_text: str | None) -> str | None:
    mine = _groups(ingredient, drug_text)
    return next((d for d in ANTI_CMV if d in mine), None)


def is_nephrotoxin(order: MedicationOrder) -> bool:
    """Nephrotoxic by the facts layer's class (which leaves out oral vancomycin and aminoglycosides)."""
    return order.is_("nephrotoxin")


def is_nephrotoxic_immunosuppressant(order: MedicationOrder) -> bool:
    """A calcineurin inhibitor: nephrotoxic, but not one of the agents the labels name."""
    return order.is_("nephrotoxin") and order.is_("calcineurin-inhibitor")


def display_name(group: str) -> str:
    return GROUP_NAMES.get(group, group)


def drug_name(order: MedicationOrder) -> str:
    return order.ingredient or order.drug_text or "unidentified drug"


def other_orders(facts: ClinicalFacts, target: MedicationOrder) -> tuple[MedicationOrder, ...]:
    """What a target is checked against: the other drafts, then the active orders on record."""
    seen = {target.id}
    result = []
    for order in (*facts.drafts, *facts.active_medications):
        if order.id not in seen:
            seen.add(order.id)
            result.append(order)
    return tuple(result)


COMPANION_REASON = "given only with cidofovir"  # why a draft's companion (drafted_with) goes with it


def drafted_with(
    order: MedicationOrder, facts: ClinicalFacts, leaving: Collection[str] = ()
) -> tuple[MedicationOrder, ...]:
    """The drafts that stand or fall with a draft: the probenecid drafted with cidofovir (given only
    with it, so never signed without it), when no other cidofovir order stays (but those in `leaving`,
    stopped together with it)."""
    if not order.is_draft or cmv_drug(order) != "cidofovir":
        return ()
    if any(o.id not in leaving for o in current_orders(facts, "cidofovir", but=order.id)):
        return ()
    return tuple(d for d in facts.drafts if d.id != order.id and in_group(d, "probenecid"))


def cidofovir_course(order: MedicationOrder, facts: ClinicalFacts, gap_days: int) -> tuple[MedicationOrder, ...]:
    """The cidofovir orders on record (active or recently ended) of the course `order` gives a dose of:
    an order on record is one of them; back from it, each earlier order that ended no more than
    `gap_days` (Policy.cidofovir_course_gap_days) before the course's start so far, or whose end or start
    is not on record (it may be).  One that ended longer ago was another course; a draft with none is a
    first dose."""
    gap = timedelta(days=gap_days)
    course = [] if order.is_draft else [order]
    front = order.start or facts.evaluated_at.date()
    earlier = sorted((o for o in facts.medications if cmv_drug(o) == "cidofovir" and o.id != order.id),
                     key=lambda o: o.start or date.max, reverse=True)
    for o in earlier:
        if o.start is None or o.end is None or o.end >= front - gap:
            course.append(o)
            front = min(front, o.start or front)
    return tuple(course)


def running_on_record(order: MedicationOrder, facts: ClinicalFacts) -> bool:
    """Whether an order is active on record, so a card can stop it (not a course between doses, whose
    last order has ended: regimens.TherapyState.between_doses)."""
    return order.id in {m.id for m in facts.active_medications}


def co_medications(facts: ClinicalFacts) -> tuple[MedicationOrder, ...]:
    """Active orders and all drafts (for fixed doses that depend on co-medication)."""
    return tuple({o.id: o for o in (*facts.active_medications, *facts.drafts)}.values())


SHOWN_ORDERS = 5  # orders a card lists (and offers to stop); the rest are counted


def current_orders(facts: ClinicalFacts, drug: str, but: str | None = None) -> tuple[MedicationOrder, ...]:
    """The active orders on record and the drafts of `drug` (an anti-CMV drug), except the order `but`."""
    return tuple(o for o in (*facts.active_medications, *facts.drafts) if o.id != but and cmv_drug(o) == drug)


def alternatives_ordered(
    facts: ClinicalFacts, but: str | None = None, ordered: str | None = None
) -> dict[str, tuple[MedicationOrder, ...]]:
    """The alternatives to ganciclovir (foscarnet, maribavir) already ordered, on record or drafted, other
    than `ordered` (the drug of the order being replaced) and the order `but`: no card orders a second.
    One documented resistant is no alternative (its own card switches away from it)."""
    return {drug: orders for drug in ("foscarnet", "maribavir")
            if drug != ordered and not facts.conditions.resistant_to(drug) and (orders := current_orders(facts, drug, but))}


def already_ordered_lines(already: Mapping[str, tuple[MedicationOrder, ...]]) -> list[str]:
    """A card's lines for the alternatives already ordered (alternatives_ordered)."""
    return [f"**{drug.capitalize()} is already ordered:** {list_orders(orders)}: no other alternative is ordered."
            for drug, orders in already.items()]


def list_orders(orders: Iterable[MedicationOrder]) -> str:
    """'a; b; and 7 more' - a card never lists hundreds of orders."""
    orders = list(orders)
    shown = "; ".join(describe_order(o) for o in orders[:SHOWN_ORDERS])
    more = len(orders) - SHOWN_ORDERS
    return shown + (f"; and {more} more" if more > 0 else "")


def also_on_record(orders: Iterable[MedicationOrder], why: str, what: str, shown: str | None = None) -> str:
    """The line naming other orders on record that a card's suggestion (`what`) discontinues as well, and
    `why` ("the same limits apply").  `shown`: the orders as the card lists them (default list_orders)."""
    return f"**Also on record:** {shown or list_orders(orders)}: {why}, so {what} discontinues it too."


def describe_order(order: MedicationOrder) -> str:
    """'valganciclovir 900 mg every 12 h (oral) [2 x 450 mg tablet], draft'."""
    text = order.describe()
    if order.dose_basis and order.dose_basis not in text:
        text += f" [{order.dose_basis}]"
    return text + (", draft" if order.is_draft else f", {order.status or 'status unknown'}")


def order_identity(order: MedicationOrder) -> tuple:
    """What makes two orders the same order, whatever their ids."""
    return (
        order.ingredient, order.drug_text, order.dose_mg, order.mg_per_kg, order.unit_count, order.interval_hours,
        order.route, order.route_text, order.bolus_text, order.infusion_minutes, order.start, order.end,
        order.duration_days, order.is_draft, order.status,
    )
