"""What every answer of the service must look like, whatever it was sent: the checks shared by the
fuzz, bad-data, fault and load tests.

An answer is either 200 with {"cards": [...]} where every card keeps the CDS Hooks 2.0 card contract
(and this service's: a published topic, a cited source), or a 4xx whose body is an OperationOutcome.
Never a 5xx.
"""

from __future__ import annotations

import re
from typing import Any

from cds_service.cards.render import utf16_length
from cds_service.clinical.drugs import cmv_drug
from cds_service.clinical.findings import TOPICS, DoseProposal, Finding, LabOrderProposal, StopOrderProposal
from cds_service.facts.model import ClinicalFacts

INDICATORS = ("info", "warning", "critical")
GANCICLOVIR = {"ganciclovir", "valganciclovir"}  # valganciclovir is its prodrug
SELECTION_BEHAVIORS = ("at-most-one", "any")
ACTION_TYPES = ("create", "update", "delete")
LINK_TYPES = ("absolute", "smart")
# A delete's resourceId: one relative reference (CDS Hooks 2.0: a string), never the facts layer's name for
# an order sent without an id (no action can point at one).
RELATIVE_REFERENCE = re.compile(r"[A-Z][A-Za-z]+/(?!\(unidentified [^)]*\)$)\S(?:.*\S)?")
# A number the service could not compute, printed anyway: "qinfh", "infx the dose", "nan mg", "q0h"; or a
# count of days, doses or weeks below zero ("-9 days", "day -3": dates read the wrong way round).
UNCOMPUTED = re.compile(r"(?<![A-Za-z])q?-?(?:inf|nan)(?:h|x|%)?(?![A-Za-z])|\bq0h\b"
                        r"|(?<![\w.+\-\u2212])[-\u2212]\d+(?:\.\d+)? ?(?i:days?|doses?|weeks?)\b|\b(?i:day) ?[-\u2212]\d")
# Text the client sent, quoted as sent ("dose unit 'nan' is not a mass"): not a number of ours.
QUOTED = re.compile(r"(?<![A-Za-z])'[^'\n]{0,60}'(?![A-Za-z])")  # not the apostrophes of "label's ... patient's"


def empty_values(value: Any, where: str = "") -> list[str]:
    """Paths holding null, "", [] or {} (CDS Hooks: optional fields are omitted, never empty)."""
    if value is None or value == "" or value == [] or value == {}:
        return [where or "(root)"]
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += empty_values(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += empty_values(item, f"{where}[{i}]")
    return found


def card_problems(card: Any) -> list[str]:
    """What in one rendered card breaks the contract (empty when it is sound)."""
    if not isinstance(card, dict):
        return [f"card is {type(card).__name__}, not an object"]
    problems = [f"empty value at {path}" for path in empty_values(card)]
    summary = card.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        problems.append("summary missing")
    elif utf16_length(summary) >= 140:
        problems.append(f"summary has {utf16_length(summary)} characters (must be < 140)")
    if card.get("indicator") not in INDICATORS:
        problems.append(f"indicator {card.get('indicator')!r}")
    if not isinstance(card.get("uuid"), str):
        problems.append("no uuid (feedback impossible)")
    if "detail" in card and not isinstance(card["detail"], str):
        problems.append("detail is not a string")
    for part in ("summary", "detail"):
        found = UNCOMPUTED.search(QUOTED.sub("''", card.get(part) or "")) if isinstance(card.get(part), str) else None
        if found:
            problems.append(f"{part} shows an uncomputed number {found.group(0)!r}: {card[part][:160]!r}")
    source = card.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("label"), str) or not source["label"].strip():
        problems.append("source.label missing")
    else:
        topic = source.get("topic")
        if not isinstance(topic, dict) or topic.get("code") not in TOPICS:
            problems.append(f"source.topic {topic!r} is not a published topic")
    suggestions = card.get("suggestions")
    if suggestions is not None:
        if card.get("selectionBehavior") not in SELECTION_BEHAVIORS:
            problems.append(f"selectionBehavior {card.get('selectionBehavior')!r} with suggestions")
        for i, suggestion in enumerate(suggestions if isinstance(suggestions, list) else [suggestions]):
            problems += [f"suggestions[{i}]: {p}" for p in _suggestion_problems(suggestion)]
    for i, reason in enumerate(card.get("overrideReasons") or []):
        if not isinstance(reason, dict) or not reason.get("code") or not reason.get("display"):
            problems.append(f"overrideReasons[{i}] is not a Coding with code and display")
    for i, link in enumerate(card.get("links") or []):
        if not isinstance(link, dict) or not link.get("label") or not link.get("url") or link.get("type") not in LINK_TYPES:
            problems.append(f"links[{i}] lacks label, url or type absolute|smart")
    return problems


def _suggestion_problems(suggestion: Any) -> list[str]:
    if not isinstance(suggestion, dict):
        return ["not an object"]
    problems = []
    if not isinstance(suggestion.get("label"), str) or not suggestion["label"].strip():
        problems.append("no label")
    for j, action in enumerate(suggestion.get("actions") or []):
        where = f"actions[{j}]"
        if not isinstance(action, dict):
            problems.append(f"{where} is not an object")
            continue
        if action.get("type") not in ACTION_TYPES:
            problems.append(f"{where}.type {action.get('type')!r}")
        if not isinstance(action.get("description"), str) or not action["description"]:
            problems.append(f"{where} has no description")
        if action.get("type") in ("create", "update") and not isinstance(action.get("resource"), dict):
            problems.append(f"{where} ({action.get('type')}) has no resource")
        if action.get("type") == "delete" and not (
                isinstance(action.get("resourceId"), str) and RELATIVE_REFERENCE.fullmatch(action["resourceId"])):
            problems.append(f"{where} (delete) has no resourceId naming one resource (Type/id): {action.get('resourceId')!r}")
        if action.get("type") == "update" and isinstance(action.get("resource"), dict) and not action["resource"].get("id"):
            problems.append(f"{where} (update) has a resource without an id")
    return problems


def answer_problems(status: int, body: Any) -> list[str]:
    """What is wrong with an answer to a hook call (empty when it keeps the contract)."""
    if status >= 500:
        return [f"HTTP {status}: {str(body)[:300]}"]
    if status == 200:
        if not isinstance(body, dict) or not isinstance(body.get("cards"), list):
            return [f"200 without a cards array: {str(body)[:300]}"]
        unexpected = set(body) - {"cards", "systemActions"}
        problems = [f"unexpected top-level keys {sorted(unexpected)}"] if unexpected else []
        for i, card in enumerate(body["cards"]):
            problems += [f"cards[{i}]: {p}" for p in card_problems(card)]
        return problems
    if 400 <= status < 500:
        return outcome_problems(body, status)
    return [f"unexpected HTTP {status}"]


def outcome_problems(body: Any, status: int) -> list[str]:
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return [f"HTTP {status} without an OperationOutcome body: {str(body)[:300]}"]
    issues = body.get("issue")
    if not isinstance(issues, list) or not issues:
        return [f"HTTP {status}: OperationOutcome without issues"]
    problems = []
    for issue in issues:
        if not isinstance(issue, dict) or issue.get("severity") not in ("fatal", "error", "warning", "information"):
            problems.append(f"HTTP {status}: issue without severity")
        elif not issue.get("code"):
            problems.append(f"HTTP {status}: issue without code")
        elif status != 401 and not issue.get("diagnostics"):
            problems.append(f"HTTP {status}: issue says nothing (no diagnostics)")
    return problems


def assert_answer(response, expected_status: int | tuple[int, ...] | None = None) -> Any:
    """Assert a `requests` response keeps the contract (and has the expected status); return its JSON."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    problems = answer_problems(response.status_code, body)
    assert not problems, problems
    if expected_status is not None:
        allowed = expected_status if isinstance(expected_status, tuple) else (expected_status,)
        assert response.status_code in allowed, (response.status_code, str(body)[:500])
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    return body


def topics(cards: list[dict]) -> list[str]:
    return [((c.get("source") or {}).get("topic") or {}).get("code") for c in cards]


def card_signature(cards: list[dict]) -> list[tuple]:
    """What must not change between two answers to the same call: everything but the uuids."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "uuid"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return [repr(strip(card)) for card in cards]


def acceptance_conflicts(findings: list[Finding], facts: ClinicalFacts, hook: str) -> list[str]:
    """Suggestions of one answer that cannot all be accepted (a clinician may accept one from each
    card, and an EHR applies them one by one):
    - two cards each putting a new drug in place of the same order (a draft changed into another drug,
      or an order stopped by a switch): both would be ordered;
    - a card removing or re-dosing a draft another card changes into another drug: accepted after the
      change, it would undo it;
    - a card re-dosing an order on record another card stops or switches from (accepted after the stop,
      the update would bring it back), or two cards re-dosing it, or a draft, to different doses;
    - two cards each starting a foscarnet course, or each ordering the same test;
    - a card starting a course of a drug already ordered (on record, or another draft) that it does not
      stop as it orders (on patient-view, which carries no drafts, a stray draft is not an order);
    - a suggestion switching from a drug (a draft changed into another drug, or an order on record
      stopped for one) that leaves an order on record of that drug (or, for the ganciclovir family, of
      the family) running: accepted alone, both would be given;
    - a suggestion removing a cidofovir draft, or changing it into another drug, that leaves a
      probenecid draft (given only with cidofovir) to be signed while no cidofovir order stays, or
      that removes the probenecid while one does;
    - a critical card (blood counts below the label rule the ganciclovir family out; the kidneys rule out
      the cidofovir or foscarnet of a critical nephrotoxicity card) while a current order on record of a
      drug it rules out has no suggestion of its own that stops it (a stop carried by a switch is not
      chosen when another option of that card is).
    Written apart from the rules' own helpers (only the drug of an order is read with the service's
    cmv_drug), so that a bug there does not blind this check.
    Findings with the same key are one card (as the cards layer renders them)."""
    findings = list({f.dedup_key(): f for f in reversed(findings)}.values())[::-1]
    drug_of = {o.id: cmv_drug(o) for o in (*facts.drafts, *facts.medications)}
    drafts = {o.id for o in facts.drafts}
    replacing: dict[str, list[int]] = {}  # order id -> the cards (indexes) that put a new drug in its place
    starting_foscarnet: list[str] = []
    for i, f in enumerate(findings):
        doses = [p for p in f.proposals if isinstance(p, DoseProposal)]
        replaced = {p.replaces for p in doses if p.replaces and p.drug != drug_of.get(p.replaces)}
        replaced |= {s.order_id for p in doses for s in p.also if isinstance(s, StopOrderProposal)}
        for order_id in replaced:
            replacing.setdefault(order_id, []).append(i)
        if any(p.drug == "foscarnet" and (p.replaces is None or drug_of.get(p.replaces) != "foscarnet") for p in doses):
            starting_foscarnet.append(f.topic)
    topics = lambda cards: [findings[i].topic for i in cards]  # noqa: E731
    problems = [f"{order_id} replaced by {topics(cards)}" for order_id, cards in replacing.items() if len(cards) > 1]
    for i, f in enumerate(findings):
        for p in f.proposals:
            acted_on = p.order_id if isinstance(p, StopOrderProposal) else p.replaces if isinstance(p, DoseProposal) else None
            if acted_on in drafts and set(replacing.get(acted_on, [i])) != {i}:
                problems.append(f"{acted_on} removed or re-dosed by {f.topic} and changed by {topics(replacing[acted_on])}")
    # An order on record re-dosed by one card and stopped (or switched from) by another: accepted after the
    # stop, the update would bring it back.  Or re-dosed by two cards to different doses.
    record_ids = {o.id for o in facts.medications}

    def stops_of(f: Finding) -> set[str]:
        stops = [q for p in f.proposals for q in (p, *getattr(p, "also", ())) if isinstance(q, StopOrderProposal)]
        stops += [a for q in stops for a in q.also]
        switched = {p.replaces for p in f.proposals if isinstance(p, DoseProposal) and p.drug != drug_of.get(p.replaces)}
        return {q.order_id for q in stops} | switched

    stopping = [stops_of(f) for f in findings]
    redosed: dict[str, set[tuple]] = {}
    for i, f in enumerate(findings):
        for p in f.proposals:
            if isinstance(p, DoseProposal) and p.replaces in record_ids | drafts and p.drug == drug_of.get(p.replaces):
                redosed.setdefault(p.replaces, set()).add((i, p.dose_mg, p.interval_hours))
                if p.replaces in record_ids:  # a draft's "remove it, or if kept, this dose" is two choices, not a clash
                    problems += [f"{p.replaces} re-dosed by {f.topic} and stopped by {g.topic}"
                                 for j, g in enumerate(findings) if j != i and p.replaces in stopping[j]]
    problems += [f"{order_id} re-dosed to different doses by {sorted({findings[i].topic for i, _, _ in doses})}"
                 for order_id, doses in redosed.items()
                 if len({i for i, _, _ in doses}) > 1 and len({(mg, hours) for _, mg, hours in doses}) > 1]
    drafted = facts.drafts if hook != "patient-view" else ()
    current = [o for o in (*drafted, *facts.medications) if o.status in ("active", "on-hold", "draft", None)]
    for f in findings:
        for p in f.proposals:
            if not isinstance(p, DoseProposal) or (p.replaces and drug_of.get(p.replaces) == p.drug):
                continue  # not a new course: a dose change of the order itself
            stopped = {p.replaces, *(s.order_id for s in p.also if isinstance(s, StopOrderProposal))}
            if any(drug_of[o.id] == p.drug and o.id not in stopped for o in current):
                problems.append(f"{f.topic} starts {p.drug}, already ordered")
    # A test ordered as a suggestion of its own on two cards: accepting both orders it twice.
    ordering: dict[tuple[str, str | None], list[str]] = {}
    for f in findings:
        for test in {(p.test, p.scope) for p in f.proposals if isinstance(p, LabOrderProposal)}:
            ordering.setdefault(test, []).append(f.topic)
    problems += [f"{test} ordered by {cards}" for (test, _), cards in ordering.items() if len(cards) > 1]
    if len(starting_foscarnet) > 1:
        problems.append(f"{len(starting_foscarnet)} cards start foscarnet: {starting_foscarnet}")
    on_record = [o for o in facts.medications if o.status in ("active", "on-hold", None) and drug_of[o.id]]
    family = lambda drug: GANCICLOVIR if drug in GANCICLOVIR else {drug}  # noqa: E731
    for f in findings:
        for p in (p for p in f.proposals if isinstance(p, DoseProposal)):
            stopped = {s.order_id for s in p.also if isinstance(s, StopOrderProposal)}
            # The drugs it switches from: the draft it changes, the orders on record it stops; all of the
            # ganciclovir family when it leaves the family, else the drug alone (valganciclovir tablets to IV
            # ganciclovir).
            left = {drug_of.get(o) for o in ({p.replaces} & drafts) | stopped} - {None, p.drug}
            leaving = {g for d in left for g in (family(d) if p.drug not in family(d) else {d})}
            problems += [f"{f.topic} switches from {'/'.join(sorted(left))} to {p.drug} and leaves {o.id} "
                         f"({drug_of[o.id]}) running"
                         for o in on_record if drug_of[o.id] in leaving and o.id not in stopped | {p.replaces}]
    probenecid = {d.id for d in facts.drafts if "probenecid" in f"{d.ingredient} {d.drug_text}".lower()}
    cidofovir = {o.id for o in (*facts.drafts, *on_record) if drug_of[o.id] == "cidofovir"}
    for f in findings:
        for p in f.proposals:
            draft = (p.order_id if isinstance(p, StopOrderProposal)
                     else p.replaces if isinstance(p, DoseProposal) and p.drug != drug_of.get(p.replaces) else None)
            removed = {s.order_id for s in getattr(p, "also", ()) if isinstance(s, StopOrderProposal)}
            if draft not in drafts or drug_of[draft] != "cidofovir":
                continue
            staying = cidofovir - {draft} - removed
            if not staying and probenecid - removed:
                problems.append(f"{f.topic} removes or changes {draft}, the last cidofovir order, and leaves its probenecid")
            if staying and probenecid & removed:
                problems.append(f"{f.topic} removes the probenecid with {draft} while another cidofovir order stays")
    # Drugs a critical card rules out: the ganciclovir family (counts), the drug of a kidney card's order.
    ruled_out = {d for f in findings if f.indicator == "critical" for d in (
        GANCICLOVIR if f.topic == "hematologic-toxicity" else {drug_of.get(f.order_id)} if f.topic == "nephrotoxicity" else ())}
    if ruled_out:
        # A stop of its own: one carried by a switch is not chosen when another option of its card is.
        stopped = {s.order_id for f in findings for p in f.proposals if isinstance(p, StopOrderProposal)
                   for s in (p, *p.also)}
        problems += [f"{drug_of[o.id]} ruled out by a critical card, and {o.id} is stopped by no card"
                     for o in on_record if drug_of[o.id] in ruled_out and o.id not in stopped]
    return problems
