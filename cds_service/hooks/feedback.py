"""CDS Hooks 2.0 feedback: validate, store each item once, and report what clinicians did with cards.

Clients re-send feedback (retries, batches that overlap), several workers may receive the same
item at once, and the sandbox posts on every click: an item is identified by everything the
client said about it (a hash, UNIQUE in the table) and inserted with ON CONFLICT DO NOTHING.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import threading
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select

from cds_service.cards.vocabulary import OVERRIDE_REASON_SYSTEM, OVERRIDE_REASONS
from cds_service.hooks.errors import ProtocolError
from cds_service.hooks.storage import Database, StorageUnavailable, feedback, issued_card

log = logging.getLogger(__name__)

OUTCOMES = ("accepted", "overridden")
MAX_ITEMS = 1000  # per POST; a real client sends one or a few
MAX_SUGGESTIONS = 100
MAX_ID_LENGTH = 255  # card and suggestion ids, reason codes (the column sizes)
MAX_TEXT_LENGTH = 1024  # code system, display
MAX_COMMENT_LENGTH = 4000
TOP_OVERRIDE_REASONS = 3
MAX_PENDING_CARDS = 10_000  # issued cards waiting to be written; beyond it they are dropped
WRITE_DELAY_SECONDS = 0.5  # issued cards are written at most this long after the call


class FeedbackStore:
    """Feedback items and the topics of issued cards.

    With `background=True` (the service), issued cards are written by a thread of this process, in
    one batch per WRITE_DELAY_SECONDS: a hook call never waits for a commit, and the writer takes
    the interpreter from the hook calls of this process once per batch, not once per call.
    `record` writes this process's pending cards first, and so does the process's exit.
    """

    def __init__(self, database: Database, background: bool = False):
        self.database = database
        self.background = background
        self._state = threading.Condition()
        # Rows of issued cards waiting to be written: small tuples, so the cards themselves are
        # freed with their response rather than half a second later in the writer.
        self._pending: list[tuple[str, str, str | None]] = []
        self._writing = False
        self._flushes = 0  # callers of flush() waiting: the writer then writes without delay
        self._writer: threading.Thread | None = None
        if background:
            atexit.register(self.flush)  # a gunicorn worker's graceful exit writes what it issued

    def record(self, service_id: str, body: Any) -> int:
        """Store the items of a feedback body; return how many were new.

        Raises ProtocolError(400) if any item is invalid (nothing is stored then) and
        StorageUnavailable if the database cannot be written.
        """
        rows = [_row(service_id, item, f"feedback[{i}]") for i, item in enumerate(_items(body))]
        self.flush()
        stored = 0
        with self.database.begin() as conn:
            for row in rows:
                topic = (
                    select(issued_card.c.topic)
                    .where(issued_card.c.card_uuid == row["card_uuid"])
                    .where(issued_card.c.service_id == service_id)
                    .scalar_subquery()
                )
                statement = (
                    self.database.insert(feedback)
                    .values(**row, card_topic=topic)
                    .on_conflict_do_nothing(index_elements=[feedback.c.dedup_key])
                    .returning(feedback.c.id)  # a row back only when inserted (rowcount is not portable)
                )
                stored += len(conn.execute(statement).all())
        return stored

    def remember_cards(self, service_id: str, cards: list[dict]) -> None:
        """Note the topic of each card sent, so feedback on it can be reported by topic.

        Best effort: a database outage is logged and the cards still go to the clinician.
        """
        rows = _issued_rows(service_id, cards)
        if not rows:
            return
        if not self.background:
            self._write_cards(rows)
            return
        with self._state:
            if len(self._pending) >= MAX_PENDING_CARDS:
                log.warning("issued-card log is full; %d cards of %s not recorded", len(rows), service_id)
                return
            self._pending += rows
            if len(self._pending) == len(rows):
                self._state.notify_all()  # only the first call of a batch wakes the writer
        self._start_writer()

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until the cards remembered so far are written (or given up on)."""
        with self._state:
            if not (self._pending or self._writing):
                return
            self._flushes += 1
            self._state.notify_all()
            try:
                self._state.wait_for(lambda: not (self._pending or self._writing), timeout)
            finally:
                self._flushes -= 1

    def _start_writer(self) -> None:
        # Started on first use, in the process that uses it (gunicorn forks its workers after the
        # app, and this store, are built).
        with self._state:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._drain, name="issued-card-writer", daemon=True)
                self._writer.start()

    def _drain(self) -> None:
        while True:
            with self._state:
                self._state.wait_for(lambda: self._pending)
                # Let the calls of the next moment join this batch, unless someone waits for it.
                self._state.wait_for(lambda: self._flushes, WRITE_DELAY_SECONDS)
                batch, self._pending = self._pending, []
                self._writing = True
            try:
                self._write_cards(batch)
            finally:
                with self._state:
                    self._writing = False
                    self._state.notify_all()

    def _write_cards(self, rows: list[tuple[str, str, str | None]]) -> None:
        now = datetime.now(timezone.utc)
        values = [
            {"card_uuid": card_uuid, "service_id": service_id, "topic": topic, "issued_at": now}
            for card_uuid, service_id, topic in rows
        ]
        statement = self.database.insert(issued_card).on_conflict_do_nothing(
            index_elements=[issued_card.c.card_uuid]
        )
        try:
            with self.database.begin() as conn:
                conn.execute(statement, values)
        except StorageUnavailable:
            log.warning("could not record %d issued cards", len(rows))
        except Exception:  # the writer thread must outlive any one bad batch
            log.exception("could not record %d issued cards", len(rows))


def _issued_rows(service_id: str, cards: list[dict]) -> list[tuple[str, str, str | None]]:
    """(card uuid, service, topic code) of each card sent."""
    return [
        (card["uuid"], service_id, ((card.get("source") or {}).get("topic") or {}).get("code"))
        for card in cards
        if isinstance(card, dict) and isinstance(card.get("uuid"), str)
    ]


def _items(body: Any) -> list:
    if not isinstance(body, dict):
        raise ProtocolError(400, "The feedback body must be a JSON object with a 'feedback' array.")
    items = body.get("feedback")
    if not isinstance(items, list):
        raise ProtocolError(400, "'feedback' is required and must be an array of feedback items.")
    if len(items) > MAX_ITEMS:
        raise ProtocolError(400, f"'feedback' has {len(items)} items; at most {MAX_ITEMS} per request.")
    return items


def _row(service_id: str, item: Any, where: str) -> dict:
    """One validated feedback item as a feedback-table row (without card_topic)."""
    if not isinstance(item, dict):
        raise ProtocolError(400, f"{where} must be an object.")
    card = _string(item.get("card"), f"{where}.card", MAX_ID_LENGTH)
    outcome = item.get("outcome")
    if outcome not in OUTCOMES:
        raise ProtocolError(400, f"{where}.outcome is required and must be 'accepted' or 'overridden'.")
    timestamp = _timestamp(item.get("outcomeTimestamp"), f"{where}.outcomeTimestamp")
    suggestions = _accepted_suggestions(item.get("acceptedSuggestions"), where)
    reason, comment = _override_reason(item.get("overrideReason"), where)
    if outcome == "accepted" and (reason or comment is not None):
        raise ProtocolError(400, f"{where}: overrideReason is only for 'overridden' outcomes.")
    if outcome == "overridden" and suggestions:
        raise ProtocolError(400, f"{where}: acceptedSuggestions is only for 'accepted' outcomes.")
    row = {
        "service_id": service_id,
        "card_uuid": card,
        "outcome": outcome,
        "accepted_suggestions": suggestions,
        "override_code": reason.get("code"),
        "override_system": reason.get("system"),
        "override_display": reason.get("display"),
        "user_comment": comment,
        "outcome_timestamp": timestamp,
    }
    identity = {**row, "outcome_timestamp": timestamp.isoformat(), "accepted_suggestions": sorted(suggestions)}
    row["dedup_key"] = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    row["received_at"] = datetime.now(timezone.utc)
    return row


def _string(value: Any, where: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProtocolError(400, f"{where} is required and must be a non-empty string.")
    return _storable(value, where, max_length)


def _storable(value: str, where: str, max_length: int) -> str:
    """A text the database can keep as sent: PostgreSQL text cannot hold NUL, so it is refused on
    every database (the same body must not be kept on one and refused on another)."""
    if len(value) > max_length:
        raise ProtocolError(400, f"{where} is longer than {max_length} characters.")
    if "\x00" in value:
        raise ProtocolError(400, f"{where} contains a NUL character (\\u0000).")
    return value


def _timestamp(value: Any, where: str) -> datetime:
    """An ISO 8601 date-time, as UTC (CDS Hooks says UTC, so one without an offset is taken as UTC)."""
    try:
        if not isinstance(value, str) or "T" not in value:
            raise ValueError
        parsed = datetime.fromisoformat(value)
        # Year 1 or 9999 with an offset can fall outside datetime's range in UTC.
        return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise ProtocolError(
            400, f"{where} is required and must be an ISO 8601 date-time, e.g. 2026-11-26T12:00:00Z."
        ) from None


def _accepted_suggestions(value: Any, where: str) -> list[str]:
    # Tolerated when absent: a client may accept a card whose suggestion had no uuid.
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_SUGGESTIONS:
        raise ProtocolError(
            400, f"{where}.acceptedSuggestions must be an array of at most {MAX_SUGGESTIONS} objects."
        )
    ids = []
    for i, suggestion in enumerate(value):
        path = f"{where}.acceptedSuggestions[{i}]"
        if not isinstance(suggestion, dict):
            raise ProtocolError(400, f"{path} must be an object with an 'id'.")
        ids.append(_string(suggestion.get("id"), f"{path}.id", MAX_ID_LENGTH))
    return ids


def _override_reason(value: Any, where: str) -> tuple[dict, str | None]:
    """The override reason's Coding (code, system, display) and the user's comment."""
    if value is None:
        return {}, None
    path = f"{where}.overrideReason"
    if not isinstance(value, dict):
        raise ProtocolError(400, f"{path} must be an object.")
    comment = value.get("userComment")
    if comment is not None:
        if not isinstance(comment, str):
            raise ProtocolError(400, f"{path}.userComment must be a string.")
        _storable(comment, f"{path}.userComment", MAX_COMMENT_LENGTH)
    coding = value.get("reason")
    if coding is None:
        return {}, comment
    if not isinstance(coding, dict):
        raise ProtocolError(400, f"{path}.reason must be a Coding object with 'code' and 'system'.")
    reason = {
        "code": _string(coding.get("code"), f"{path}.reason.code", MAX_ID_LENGTH),
        "system": _string(coding.get("system"), f"{path}.reason.system", MAX_TEXT_LENGTH),
    }
    display = coding.get("display")
    if display is not None:
        reason["display"] = _string(display, f"{path}.reason.display", MAX_TEXT_LENGTH)
    return reason, comment


def report(database: Database) -> list[dict]:
    """Per service and card topic: cards issued, feedback, accepted, overridden, acceptance rate
    (accepted / feedback), and the most frequent coded override reasons (display, else code).
    Topic is None for feedback on cards the service has no record of."""
    rows: dict[tuple, dict] = {}

    def row(service_id: str, topic: str | None) -> dict:
        return rows.setdefault(
            (service_id, topic),
            {
                "service_id": service_id,
                "topic": topic,
                "cards_issued": 0,
                "feedback": 0,
                "accepted": 0,
                "overridden": 0,
                "acceptance_rate": None,
                "top_override_reasons": [],
            },
        )

    issued = select(issued_card.c.service_id, issued_card.c.topic, func.count()).group_by(
        issued_card.c.service_id, issued_card.c.topic
    )
    # The topic stored with the feedback, else the issued card's (written after the feedback came).
    topic = func.coalesce(feedback.c.card_topic, issued_card.c.topic).label("topic")
    with_cards = feedback.outerjoin(
        issued_card,
        (issued_card.c.card_uuid == feedback.c.card_uuid) & (issued_card.c.service_id == feedback.c.service_id),
    )
    outcomes = (
        select(feedback.c.service_id, topic, feedback.c.outcome, func.count())
        .select_from(with_cards)
        .group_by(feedback.c.service_id, topic, feedback.c.outcome)
    )
    reasons = (
        select(
            feedback.c.service_id,
            topic,
            feedback.c.override_system,
            feedback.c.override_code,
            func.max(feedback.c.override_display),
            func.count().label("n"),
        )
        .select_from(with_cards)
        .where(feedback.c.outcome == "overridden", feedback.c.override_code.is_not(None))
        .group_by(feedback.c.service_id, topic, feedback.c.override_system, feedback.c.override_code)
        .order_by(func.count().desc(), feedback.c.override_code)
    )
    with database.begin() as conn:
        for service_id, topic, count in conn.execute(issued):
            row(service_id, topic)["cards_issued"] = count
        for service_id, topic, outcome, count in conn.execute(outcomes):
            entry = row(service_id, topic)
            entry[outcome] = count
            entry["feedback"] += count
        for service_id, topic, system, code, display, count in conn.execute(reasons):
            top = row(service_id, topic)["top_override_reasons"]
            if len(top) < TOP_OVERRIDE_REASONS:
                top.append({"reason": display or _our_display(system, code) or code, "count": count})
    for entry in rows.values():
        if entry["feedback"]:
            entry["acceptance_rate"] = entry["accepted"] / entry["feedback"]
    return sorted(rows.values(), key=lambda r: (r["service_id"], r["topic"] is None, r["topic"] or ""))


def _our_display(system: str, code: str) -> str | None:
    # The sandbox sends our override reasons back without their display.
    return OVERRIDE_REASONS.get(code) if system == OVERRIDE_REASON_SYSTEM else None


def format_report(rows: list[dict]) -> str:
    """The report as a plain-text table for the command line."""
    if not rows:
        return "No cards issued and no feedback received yet."
    header = ("Service", "Topic", "Issued", "Feedback", "Accepted", "Overridden", "Acceptance", "Top override reasons")
    lines = [
        (
            r["service_id"],
            r["topic"] or "(unknown card)",
            str(r["cards_issued"]),
            str(r["feedback"]),
            str(r["accepted"]),
            str(r["overridden"]),
            "-" if r["acceptance_rate"] is None else f"{r['acceptance_rate']:.0%}",
            "; ".join(f"{reason['reason']} ({reason['count']})" for reason in r["top_override_reasons"]) or "-",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    numeric = range(2, 7)

    def render(cells) -> str:
        return "  ".join(
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([render(header), render("-" * w for w in widths), *map(render, lines)])
