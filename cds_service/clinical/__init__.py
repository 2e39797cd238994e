"""Clinical logic: pure functions from ClinicalFacts to Findings (no FHIR, no Flask, no I/O).

Public API:
    evaluate(facts, policy, hook, targets) -> list[Finding]  everything a hook call gets
    check_orders(facts, policy, targets, advice) -> list[Finding]  order safety (order-select/-sign)
    guidance(facts, policy, hook, targets) -> list[Finding]  treatment guidance (all hooks)
"""

from dataclasses import replace
from typing import Iterable

from cds_service.clinical.drugs import cmv_drug
from cds_service.clinical.findings import DoseProposal, Finding, LabOrderProposal, acted_on, one_per_key
from cds_service.clinical.guidance import guidance
from cds_service.clinical.order_safety import DOSE_TOPICS, check_orders, with_drafted_companions
from cds_service.facts.model import ClinicalFacts, MedicationOrder
from cds_service.policy import Policy

__all__ = ["check_orders", "evaluate", "guidance"]


def evaluate(facts: ClinicalFacts, policy: Policy, hook: str, targets: Iterable[MedicationOrder]) -> list[Finding]:
    """Order safety and guidance together.  A draft the guidance says is the wrong drug or the wrong
    kind gets no dose correction of it: prophylaxis where treatment is needed (the prophylaxis-not-
    treatment card gives the treatment dose instead), or a drug documented resistant or not tolerated
    that the alternative-therapy card changes into another or removes (a corrected dose, accepted after
    that, would bring the drug back).  Where that card only consults, the correction stays.  Nor a draft
    that the suspected-resistance card corrects as the course it continues (two doses of one draft; one above
    that correction keeps its dose cards, without their change).  A
    prophylaxis draft the prophylaxis-not-treatment card settles gets no duplicate-therapy card acting only on
    what that card settles.  Nor
    does a route card (an IV push) change such a draft to the infusion of its dose: it still says not to
    give it so, and the guidance card's change is the infusion to give.  A test several cards order is
    ordered on one of them (_each_test_once)."""
    targets = tuple(targets)
    advice = guidance(facts, policy, hook, targets)
    found = check_orders(facts, policy, targets, advice) + advice
    prophylaxis = {f.order_id for f in advice if f.topic == "prophylaxis-not-treatment"}
    settled = prophylaxis.union(*(acted_on(f) for f in advice if f.topic == "prophylaxis-not-treatment"))
    wrong = set(prophylaxis)
    wrong |= {f.order_id for f in advice if f.topic == "alternative-therapy" and f.order_id in acted_on(f)}
    # A draft the resistance card corrects, as the course it continues, has that card's dose, read from the course
    # (its kidneys' treatment dose), not a second one read from the draft's interval alone; a draft above that dose
    # keeps its dose cards, which say so, without their change of it (one dose for the draft).
    drafted = {d.id: d for d in facts.drafts}
    corrected = {p.replaces: p for f in advice if f.topic == "suspected-resistance" for p in f.proposals
                 if isinstance(p, DoseProposal) and p.replaces in drafted and p.drug == cmv_drug(drafted[p.replaces])}
    above = {draft_id for draft_id, p in corrected.items() if not _at_most(drafted[draft_id], p)}
    wrong |= corrected.keys() - above
    # The prophylaxis card settles its draft (the treatment in its place, stopping the prophylaxis on record, or its
    # removal): a duplicate card of that draft acting only on what it settles would say it again, or undo it (a
    # removal of the draft it changes into the treatment).  One that stops something else (letermovir) stays.
    def unchanged(f: Finding) -> bool:  # kept, without its change of the draft
        return f.topic == "administration-route" and f.order_id in wrong | above or f.topic in DOSE_TOPICS and f.order_id in above

    kept = [_without_change(f, CORRECTED_ELSEWHERE if f.order_id in above else None) if unchanged(f) else f
            for f in found if not (f.topic in DOSE_TOPICS and f.order_id in wrong)
            and not (f.topic == "duplicate-therapy" and f.order_id in prophylaxis and acted_on(f) <= settled)]
    return _each_test_once(with_drafted_companions(kept, facts))


def _at_most(draft: MedicationOrder, correction: DoseProposal) -> bool:
    """Whether a draft gives no more a day than a correction of it (unknown: not shown to, so its cards stay)."""
    if draft.dose_mg is None or not draft.interval_hours or not correction.interval_hours:
        return False
    return draft.dose_mg * 24 / draft.interval_hours <= correction.dose_mg * 24 / correction.interval_hours


CORRECTED_ELSEWHERE = ("The dose to give this draft is proposed on the suspected-resistance card, which corrects the "
                       "course it continues (one change of the draft, not two).")


def _without_change(finding: Finding, note: str | None = None) -> Finding:
    """A route or dose card without its change of the order (another card changes it into what is to be given);
    `note`: where that change is, added to the card."""
    proposals = tuple(p for p in finding.proposals if not (isinstance(p, DoseProposal) and p.replaces == finding.order_id))
    return replace(finding, proposals=proposals, detail=f"{finding.detail}\n\n{note}" if note else finding.detail)


def _each_test_once(found: list[Finding]) -> list[Finding]:
    """A test several cards order (the creatinine of each order's missing-data card, the genotype of each
    failing course's card) is ordered on one of them, the first that recommends it, else the first; the
    others name that card.  Accepting every card then orders it once, not once per card.  Only cards the
    cards layer shows count (one_per_key)."""
    ordering: dict[tuple[str, str | None], list[Finding]] = {}
    for f in one_per_key(found):
        for test in dict.fromkeys((p.test, p.scope) for p in f.proposals if isinstance(p, LabOrderProposal)):
            ordering.setdefault(test, []).append(f)
    on_card = {test: next((f for f in cards for p in f.proposals if isinstance(p, LabOrderProposal)
                           and (p.test, p.scope) == test and p.recommended), cards[0])
               for test, cards in ordering.items() if len(cards) > 1}
    if not on_card:
        return found
    out = []
    for f in found:
        elsewhere = [p for p in f.proposals if isinstance(p, LabOrderProposal)
                     and on_card.get((p.test, p.scope), f) is not f]
        if elsewhere:
            notes = [f'**{p.label}:** proposed on the card "{on_card[p.test, p.scope].summary}" (one order for the '
                     "whole answer)." for p in elsewhere]
            f = replace(f, proposals=tuple(p for p in f.proposals if p not in elsewhere),
                        detail="\n\n".join([f.detail, *notes]))
        out.append(f)
    return out
