"""Findings -> CDS Hooks 2.0 cards: one card per distinct finding, most urgent first."""

from __future__ import annotations

import logging
from typing import Any, Collection, Iterable, Mapping

from cds_service.cards.fhir import CONSULTS, RECURRENCES, ROUTES, TESTS
from cds_service.cards.ids import new_uuid
from cds_service.cards.suggestions import Orders, suggestion
from cds_service.cards.vocabulary import (
    DEFAULT_OVERRIDE_REASONS,
    OVERRIDE_REASON_SYSTEM,
    OVERRIDE_REASONS,
    SEVERITY,
    TOPIC_DISPLAYS,
    TOPIC_SYSTEM,
)
from cds_service.clinical.findings import (
    TOPICS,
    ConsultProposal,
    DoseProposal,
    Finding,
    LabOrderProposal,
    StopOrderProposal,
    discontinued,
    one_per_key,
    urgency,
)

log = logging.getLogger(__name__)

SUMMARY_LIMIT = 140  # summary must be shorter than this (CDS Hooks), counted as a browser counts
ELLIPSIS = "…"
SERVICE_LABEL = "CMV therapy decision support"  # source label of a card that cites nothing


def render_cards(
    findings: Iterable[Finding],
    orders: Mapping[str, Mapping[str, Any]] | None = None,
    patient_id: str | None = None,
    drafts: Collection[str] = frozenset(),
) -> list[dict]:
    """CDS Hooks cards for `findings`.

    orders: order id ("MedicationRequest/123") -> the resource as received, so a dose proposal can
        update that order in place and a stop proposal can tell a draft from an active order.
        Without it, dose proposals become new orders and stop proposals delete actions.
    patient_id: the patient ("123" or "Patient/123") new orders are for; without it, suggestions
        that create resources are left out.
    drafts: the ids of the hook's draft orders: stopping one deletes it, even without a status.
    Findings with the same dedup_key() give one card (the most severe; the first among equals),
    at the position of the first of them; cards are ordered critical, warning, info (stable).
    """
    findings = list(findings)
    for finding in findings:
        for problem in contract_problems(finding):
            log.warning("finding %s: %s", finding.topic, problem)  # rule codes only, no patient data
    ordered = sorted(one_per_key(findings), key=urgency)
    return [_card(finding, orders or {}, patient_id, drafts) for finding in ordered]


def _card(finding: Finding, orders: Orders, patient_id: str | None, drafts: Collection[str]) -> dict:
    indicator = finding.indicator if finding.indicator in SEVERITY else "warning"
    card: dict[str, Any] = {
        "uuid": new_uuid(),
        "summary": fit_summary(finding.summary.strip() or _topic_display(finding.topic)),
        "detail": _detail(finding),
        "indicator": indicator,
        "source": _source(finding),
    }
    suggestions = [s for p in finding.proposals if (s := suggestion(p, orders, patient_id, drafts)) is not None]
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = finding.selection if finding.selection == "any" else "at-most-one"
    card["overrideReasons"] = _override_reasons(finding.override_reasons, indicator)
    return prune(card)


# ---------------------------------------------------------------------------------------------
# Card parts


def utf16_length(text: str) -> int:
    """Length as JavaScript counts it (the sandbox and most EHR front ends)."""
    return len(text.encode("utf-16-le")) // 2


def fit_summary(summary: str) -> str:
    """The summary, shortened at a word boundary with an ellipsis if it is not < 140 characters.

    Cutting only at whitespace never splits a number ("1.25 mg/kg" stays whole or goes whole)."""
    summary = " ".join(summary.split())
    if utf16_length(summary) < SUMMARY_LIMIT:
        return summary
    budget = SUMMARY_LIMIT - 1 - utf16_length(ELLIPSIS)
    words, kept = summary.split(" "), ""
    for word in words:
        candidate = f"{kept} {word}" if kept else word
        if utf16_length(candidate) > budget:
            break
        kept = candidate
    if not kept:  # a single enormous word: nothing to keep whole
        kept = summary[:budget]
        while utf16_length(kept) > budget:
            kept = kept[:-1]
    return kept.rstrip(" ,;:-–(") + ELLIPSIS


def _markdown_link(label: str, url: str) -> str:
    label = label.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    url = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    return f"[{label}]({url})"


def _detail(finding: Finding) -> str:
    citations = list({c.key: c for c in finding.sources}.values())
    parts = [finding.detail.strip()]
    if citations:
        parts.append("**Sources:** " + "; ".join(_markdown_link(c.label, c.url) for c in citations))
    return "\n\n".join(p for p in parts if p)


def _topic_display(topic: str) -> str:
    return TOPIC_DISPLAYS.get(topic) or topic.replace("-", " ").capitalize()


def _source(finding: Finding) -> dict:
    first = finding.sources[0] if finding.sources else None
    return {
        "label": first.label if first else SERVICE_LABEL,
        "url": first.url if first else None,
        "topic": {"system": TOPIC_SYSTEM, "code": finding.topic, "display": _topic_display(finding.topic)},
    }


def _override_reasons(keys: Iterable[str], indicator: str) -> list[dict]:
    known = [k for k in dict.fromkeys(keys) if k in OVERRIDE_REASONS]
    return [
        {"system": OVERRIDE_REASON_SYSTEM, "code": key, "display": OVERRIDE_REASONS[key]}
        for key in known or DEFAULT_OVERRIDE_REASONS[indicator]
    ]


def prune(value: Any) -> Any:
    """Drop null, "", [] and {} wherever they occur (CDS Hooks: omit, never send empty).

    Resources copied from the EHR may carry them; anything emptied by pruning goes too.  Cards are
    built of dicts and lists (copied resources included: fhir.plain), so only those are walked."""
    if isinstance(value, dict):
        pruned = {}
        for key, item in value.items():
            if isinstance(item, (dict, list)):
                item = prune(item)
            if item or not (item is None or isinstance(item, _EMPTIABLE)):  # inline: per leaf
                pruned[key] = item
        return pruned
    if isinstance(value, list):
        return [
            item for item in map(prune, value) if item or not (item is None or isinstance(item, _EMPTIABLE))
        ]
    return value


_EMPTIABLE = (str, dict, list)  # empty ones are dropped; 0 and false are values


# ---------------------------------------------------------------------------------------------
# The contract, checked


def contract_problems(finding: Finding) -> list[str]:
    """What in `finding` breaks the clinical->cards contract, in words (empty when it is sound).

    Rendering copes with every problem listed here (and logs it); rule tests should assert that
    their findings have none, so the problem is fixed where it starts."""
    problems = []
    if finding.topic not in TOPICS:
        problems.append(f"topic {finding.topic!r} is not in findings.TOPICS")
    if finding.indicator not in SEVERITY:
        problems.append(f"indicator {finding.indicator!r} is not info, warning or critical")
    if not finding.summary.strip():
        problems.append("summary is empty")
    elif utf16_length(finding.summary) >= SUMMARY_LIMIT:
        problems.append(f"summary has {utf16_length(finding.summary)} characters (must be < {SUMMARY_LIMIT})")
    if not finding.sources:
        problems.append("no source cited")
    if finding.selection not in ("at-most-one", "any"):
        problems.append(f"selection {finding.selection!r} is not at-most-one or any")
    unknown = [k for k in finding.override_reasons if k not in OVERRIDE_REASONS]
    problems += [f"override reason {k!r} is not in OVERRIDE_REASONS" for k in unknown]
    for proposal in finding.proposals:
        if not proposal.label.strip():
            problems.append(f"{type(proposal).__name__} has no label")
        if isinstance(proposal, DoseProposal):
            if proposal.route not in ROUTES:
                problems.append(f"route {proposal.route!r} is not one of {sorted(ROUTES)}")
            if not proposal.dose_mg > 0:
                problems.append(f"dose {proposal.dose_mg!r} mg is not positive")
            if proposal.replaces and proposal.replaces in discontinued(proposal):
                problems.append("a dose proposal both updates an order and discontinues it")
        elif isinstance(proposal, LabOrderProposal):
            if proposal.test not in TESTS:
                problems.append(f"test {proposal.test!r} is not in cards TESTS (ordered by text only)")
            if proposal.recurrence and proposal.recurrence.lower() not in RECURRENCES:
                problems.append(f"recurrence {proposal.recurrence!r} is not in RECURRENCES (text only)")
        elif isinstance(proposal, ConsultProposal):
            if proposal.specialty not in CONSULTS:
                problems.append(f"specialty {proposal.specialty!r} is not in CONSULTS")
        elif not isinstance(proposal, StopOrderProposal):
            problems.append(f"unknown proposal type {type(proposal).__name__}")
    return problems
