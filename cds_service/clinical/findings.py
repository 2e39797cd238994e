"""What the clinical logic concludes, in clinical terms (no FHIR, no CDS Hooks JSON).

A `Finding` is one thing worth telling the clinician: its topic (from the published vocabulary),
urgency, the words, the sources, and the actions it proposes.  The cards layer renders findings as
CDS Hooks cards and proposals as FHIR resources.
"""

from __future__ import annotations

from typing import Collection, Iterable, Literal, Mapping, Union

from cds_service.frozen import frozen

Indicator = Literal["info", "warning", "critical"]

# The published card topics (source.topic.code).  Stable: integrators filter by them.
TOPICS = (
    # order safety
    "renal-dose-adjustment",
    "label-dose",
    "hematologic-toxicity",
    "nephrotoxicity",
    "electrolyte-abnormality",
    "drug-interaction",
    "duplicate-therapy",
    "prophylaxis-not-treatment",
    "label-indication",
    "administration-route",
    "infusion-time",
    "missing-data",
    # treatment guidance
    "cmv-treatment-regimen",
    "immunosuppression-reduction",
    "alternative-therapy",
    "suspected-resistance",
    "cns-disease-combination",
    "pneumonitis-ivig",
    "hiv-retinitis",
    "ibd-cmv-colitis",
    "hsct-preemptive",
    "monitoring-plan",
    "treatment-duration",
    "cmv-status",
)


@frozen
class Citation:
    """A source a card cites (see clinical/sources.py for the table)."""

    key: str
    label: str
    url: str


@frozen
class DoseProposal:
    """Order a drug at a dose: a new order, or an update of an existing draft (`replaces`)."""

    label: str  # button text: "Change to valganciclovir 450 mg every 24 h"
    drug: str  # ingredient, e.g. "valganciclovir"
    dose_mg: float
    interval_hours: float | None  # None when the schedule is not a fixed interval (see schedule)
    route: Literal["iv", "oral"]
    schedule: str  # as words: "every 12 h", "3 times weekly after dialysis"
    replaces: str | None = None  # order id to update (same id and medication concept)
    duration_days: float | None = None
    unit_count: float | None = None  # for tablet orders: number of tablets per dose
    unit_strength_mg: float | None = None
    note: str | None = None  # patient instruction, e.g. "take with food"
    recommended: bool = False
    infusion_minutes: float | None = None  # how long each IV dose runs: the updated order's, kept, else the label's
    # Accepted with it, in the same suggestion: the order on record a switch replaces, discontinued (so
    # the new drug is never accepted alongside the old; a draft is updated through `replaces`
    # instead), or a test sent with it (the genotype with a switch for suspected resistance).
    also: tuple[StopOrderProposal | LabOrderProposal, ...] = ()


@frozen
class LabOrderProposal:
    """Order a laboratory test (ServiceRequest), e.g. a missing creatinine or weekly CMV PCR."""

    label: str
    test: str  # key into the cards layer's test table: "creatinine", "cmv-pcr", "cbc", ...
    recurrence: str | None = None  # "weekly"
    recommended: bool = False
    scope: str | None = None  # what this request covers, for the lab: "UL97/UL54/UL56/UL89/UL51"


@frozen
class ConsultProposal:
    label: str
    specialty: str  # "infectious-disease", "gastroenterology", "ophthalmology"
    reason: str
    recommended: bool = False


@frozen
class StopOrderProposal:
    """Remove a draft order (delete action) or propose discontinuing an active one."""

    label: str
    order_id: str
    reason: str
    recommended: bool = False
    also: tuple[StopOrderProposal, ...] = ()  # drafts removed with it (the probenecid drafted for cidofovir)


Proposal = Union[DoseProposal, LabOrderProposal, ConsultProposal, StopOrderProposal]


_URGENCY = {"critical": 0, "warning": 1, "info": 2}


def urgency(finding: Finding) -> int:
    """Sort key: critical first, then warning, then info."""
    return _URGENCY.get(finding.indicator, 1)


def one_per_key(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per dedup_key(), as the cards layer shows them: the most severe (the first among equals), at
    the position of the first of them."""
    unique: dict[str, Finding] = {}
    for finding in findings:
        kept = unique.get(finding.dedup_key())
        if kept is None or urgency(finding) < urgency(kept):
            unique[finding.dedup_key()] = finding
    return list(unique.values())


def discontinuation(order_id: str, replaced_by: str, reason: str | None = None) -> StopOrderProposal:
    """The stop a switch carries (DoseProposal.also) for the order it replaces."""
    return StopOrderProposal(f"Discontinue {order_id}", order_id, reason or f"replaced by {replaced_by}")


def carried_stops(order_ids: Iterable[str], reason: str, verb: str = "Discontinue") -> tuple[StopOrderProposal, ...]:
    """The stops a suggestion carries (`also`) for other orders, each for `reason`."""
    return tuple(StopOrderProposal(f"{verb} {order_id}", order_id, reason) for order_id in order_ids)


def order_acted_on(p: Proposal) -> str | None:
    """The order a proposal removes or stops, or the order it updates."""
    return p.order_id if isinstance(p, StopOrderProposal) else p.replaces if isinstance(p, DoseProposal) else None


def discontinued(proposal: DoseProposal) -> tuple[str, ...]:
    """The ids of the orders a proposal stops as it is accepted."""
    return tuple(p.order_id for p in proposal.also if isinstance(p, StopOrderProposal))


def replaced_orders(finding: Finding) -> set[str]:
    """Orders a finding's dose proposals replace: stopped by a switch, or updated in place (a draft
    changed, an order corrected)."""
    return {order_id for p in finding.proposals if isinstance(p, DoseProposal)
            for order_id in (*discontinued(p), *([p.replaces] if p.replaces else []))}


def _stopped(finding: Finding) -> set[str]:
    """Orders a finding's stop proposals stop (with what a stop carries)."""
    return {q.order_id for p in finding.proposals if isinstance(p, StopOrderProposal) for q in (p, *p.also)}


def ended_by(finding: Finding, drug_of: Mapping[str, str | None], staying: Collection[str] = ()) -> set[str]:
    """Orders a finding's proposals end: stopped (with what a stop carries), discontinued by a switch, or a
    draft changed into another drug (`drug_of`: order id -> its drug); not an order only re-dosed, nor one
    switched into a drug of `staying` (the patient stays on that kind of treatment)."""
    return _stopped(finding) | {
        order_id for p in finding.proposals if isinstance(p, DoseProposal) and p.drug not in staying
        for order_id in (*discontinued(p), *([p.replaces] if p.replaces and drug_of.get(p.replaces) != p.drug else []))}


def acted_on(finding: Finding) -> set[str]:
    """Orders a finding's proposals replace, update or stop (with what a stop carries)."""
    return replaced_orders(finding) | _stopped(finding)


def switches(finding: Finding, order_id: str, drug: str) -> bool:
    """Whether one of a finding's proposals changes the `drug` order `order_id` into another drug."""
    return any(isinstance(p, DoseProposal) and p.replaces == order_id and p.drug != drug for p in finding.proposals)


def starting(findings: Iterable[Finding | None], drug: str) -> Finding | None:
    """The first of `findings` with a proposal that orders `drug`."""
    return next((f for f in findings if f is not None and any(
        isinstance(p, DoseProposal) and p.drug == drug for p in f.proposals)), None)


@frozen
class Finding:
    topic: str  # one of TOPICS
    indicator: Indicator
    summary: str  # < 140 characters: what, and how much
    detail: str  # markdown: inputs (values, units, dates), calculation, reasoning
    sources: tuple[Citation, ...]
    # Proposals in one group are alternatives: the card's selectionBehavior is "at-most-one"
    # unless `selection` says "any" (independent actions such as "order PCR" and "order CBC").
    proposals: tuple[Proposal, ...] = ()
    selection: Literal["at-most-one", "any"] = "at-most-one"
    override_reasons: tuple[str, ...] = ()  # keys of cards.OVERRIDE_REASONS
    order_id: str | None = None  # the order this finding is about, if any
    # Two findings with the same key are the same finding: the cards layer reports it once.
    key: str = ""

    def dedup_key(self) -> str:
        return self.key or f"{self.topic}|{self.order_id or ''}|{self.summary}"
