"""The feedback store against a real database: SQLite always, PostgreSQL when CDS_TEST_POSTGRES_URL is set
(a throwaway database: the tests empty the service's tables)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from datetime import datetime

import pytest
from sqlalchemy import func, select

from cds_service.cards.vocabulary import OVERRIDE_REASON_SYSTEM
from cds_service.hooks.errors import ProtocolError
from cds_service.hooks.feedback import FeedbackStore, format_report, report
from cds_service.hooks.storage import Database, StorageUnavailable, feedback, issued_card

SERVICE = "cmv-order-select"


@pytest.fixture
def database(database_url):
    db = Database(database_url)
    db.create_all()
    yield db
    db.engine.dispose()


@pytest.fixture
def store(database):
    return FeedbackStore(database)


def accepted(card="card-1", suggestions=("suggestion-1",), at="2026-11-26T12:00:00Z"):
    return {
        "card": card,
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": s} for s in suggestions],
        "outcomeTimestamp": at,
    }


def overridden(card="card-1", code="already-addressed", display=None, comment=None, at="2026-11-26T12:05:00Z",
               system=OVERRIDE_REASON_SYSTEM):
    reason = {"reason": {"code": code, "system": system}}
    if display:
        reason["reason"]["display"] = display
    if comment:
        reason["userComment"] = comment
    return {"card": card, "outcome": "overridden", "overrideReason": reason, "outcomeTimestamp": at}


def rows(database) -> list[dict]:
    with database.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(select(feedback).order_by(feedback.c.id))]


def card(uuid, topic):
    return {"uuid": uuid, "summary": "s", "indicator": "warning", "source": {"label": "CMV", "topic": {"code": topic}}}


def test_stores_each_item_with_its_details(store, database):
    body = {
        "feedback": [
            accepted(suggestions=["s-1", "s-2"]),
            overridden(card="card-2", display="Already addressed", comment="on hold for surgery"),
        ]
    }

    assert store.record(SERVICE, body) == 2

    first, second = rows(database)
    assert (first["service_id"], first["card_uuid"], first["outcome"]) == (SERVICE, "card-1", "accepted")
    assert first["accepted_suggestions"] == ["s-1", "s-2"]
    assert first["override_code"] is None
    assert first["outcome_timestamp"].replace(tzinfo=None) == datetime(2026, 11, 26, 12, 0)
    assert second["outcome"] == "overridden"
    assert (second["override_code"], second["override_display"]) == ("already-addressed", "Already addressed")
    assert second["override_system"] == OVERRIDE_REASON_SYSTEM
    assert second["user_comment"] == "on hold for surgery"
    assert second["accepted_suggestions"] == []
    assert first["received_at"] is not None


def test_timestamps_are_stored_in_utc(store, database):
    store.record(SERVICE, {"feedback": [accepted(at="2026-11-26T14:00:00+02:00"), accepted(card="c2", at="2026-11-26T12:00:00")]})
    assert [r["outcome_timestamp"].replace(tzinfo=None) for r in rows(database)] == [datetime(2026, 11, 26, 12, 0)] * 2


def test_the_sandbox_accept_and_override_shapes_are_accepted(store, database):
    # Override reasons arrive without display, and an accepted card may come without suggestion ids.
    body = {"feedback": [overridden(card="a"), {"card": "b", "outcome": "accepted", "outcomeTimestamp": "2026-11-26T12:00:00.123Z"}]}
    assert store.record(SERVICE, body) == 2


def test_a_resent_item_is_stored_once(store, database):
    body = {"feedback": [accepted(), overridden(card="card-2")]}
    assert store.record(SERVICE, body) == 2
    assert store.record(SERVICE, body) == 0
    # The same item within one batch, the same instant spelt differently, suggestions reordered.
    again = {"feedback": [accepted(at="2026-11-26T12:00:00+00:00"), accepted(at="2026-11-26T13:00:00+01:00")]}
    assert store.record(SERVICE, again) == 0
    two = accepted(card="card-3", suggestions=["x", "y"])
    assert store.record(SERVICE, {"feedback": [two, accepted(card="card-3", suggestions=["y", "x"])]}) == 1
    assert len(rows(database)) == 3


def test_a_different_fact_about_the_same_card_is_a_new_row(store, database):
    assert store.record(SERVICE, {"feedback": [overridden()]}) == 1
    assert store.record(SERVICE, {"feedback": [overridden(at="2026-11-26T12:06:00Z")]}) == 1  # later
    assert store.record(SERVICE, {"feedback": [overridden(code="lab-result-pending")]}) == 1  # another reason
    assert store.record(SERVICE, {"feedback": [overridden(comment="see note")]}) == 1  # with a comment
    assert store.record("cmv-order-sign", {"feedback": [overridden()]}) == 1  # another service
    assert len(rows(database)) == 5


def test_concurrent_posts_of_the_same_feedback_are_stored_once(database_url, database):
    # Eight "workers", each with its own engine, post the same batch at the same moment.
    body = {"feedback": [accepted(card=f"card-{i}") for i in range(5)] + [overridden(card="card-x")]}
    workers = [FeedbackStore(Database(database_url)) for _ in range(8)]
    barrier = threading.Barrier(len(workers))
    stored, errors = [], []

    def post(worker):
        barrier.wait()
        try:
            stored.append(worker.record(SERVICE, body))
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=post, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert errors == []
    assert sum(stored) == 6
    assert len(rows(database)) == 6
    for worker in workers:
        worker.database.engine.dispose()


@pytest.mark.parametrize(
    "body, message",
    [
        ([accepted()], "must be a JSON object"),
        ("feedback", "must be a JSON object"),
        ({}, "'feedback' is required"),
        ({"feedback": {"card": "c"}}, "'feedback' is required and must be an array"),
        ({"feedback": ["card-1"]}, "feedback[0] must be an object"),
        ({"feedback": [{**accepted(), "card": None}]}, "feedback[0].card is required"),
        ({"feedback": [{**accepted(), "card": ""}]}, "feedback[0].card is required"),
        ({"feedback": [{**accepted(), "card": 7}]}, "feedback[0].card is required"),
        ({"feedback": [{**accepted(), "card": "c" * 300}]}, "feedback[0].card is longer"),
        ({"feedback": [{k: v for k, v in accepted().items() if k != "outcome"}]}, "feedback[0].outcome is required"),
        ({"feedback": [{**accepted(), "outcome": "ignored"}]}, "feedback[0].outcome is required and must be"),
        ({"feedback": [{k: v for k, v in accepted().items() if k != "outcomeTimestamp"}]}, "feedback[0].outcomeTimestamp"),
        ({"feedback": [accepted(at="yesterday")]}, "feedback[0].outcomeTimestamp"),
        ({"feedback": [accepted(at="2026-11-26")]}, "feedback[0].outcomeTimestamp"),
        ({"feedback": [accepted(at="2026-13-45T12:00:00Z")]}, "feedback[0].outcomeTimestamp"),
        ({"feedback": [{**accepted(), "outcomeTimestamp": 1764158400}]}, "feedback[0].outcomeTimestamp"),
        # Valid ISO 8601, but outside datetime's range once in UTC.
        ({"feedback": [accepted(at="0001-01-01T00:00:00+14:00")]}, "feedback[0].outcomeTimestamp"),
        ({"feedback": [accepted(at="9999-12-31T23:59:59-14:00")]}, "feedback[0].outcomeTimestamp"),
        # NUL cannot be kept in PostgreSQL text: refused on every database alike.
        ({"feedback": [accepted(card="a\x00b")]}, "feedback[0].card contains a NUL"),
        ({"feedback": [{**overridden(), "overrideReason": {"userComment": "x\x00"}}]}, "userComment contains a NUL"),
        ({"feedback": [{**accepted(), "acceptedSuggestions": "s-1"}]}, "feedback[0].acceptedSuggestions must be"),
        ({"feedback": [{**accepted(), "acceptedSuggestions": [{"uuid": "s-1"}]}]}, "acceptedSuggestions[0].id"),
        ({"feedback": [{**overridden(), "overrideReason": "no"}]}, "feedback[0].overrideReason must be an object"),
        ({"feedback": [{**overridden(), "overrideReason": {"reason": "no"}}]}, "overrideReason.reason must be a Coding"),
        ({"feedback": [{**overridden(), "overrideReason": {"reason": {"code": "x"}}}]}, "reason.system is required"),
        ({"feedback": [{**overridden(), "overrideReason": {"userComment": 5}}]}, "userComment must be a string"),
        ({"feedback": [{**accepted(), "overrideReason": overridden()["overrideReason"]}]}, "only for 'overridden'"),
        ({"feedback": [{**overridden(), "acceptedSuggestions": [{"id": "s"}]}]}, "only for 'accepted'"),
        # One bad item rejects the whole batch: the valid first item is not stored either.
        ({"feedback": [accepted(), {**accepted(card="c2"), "outcome": "maybe"}]}, "feedback[1].outcome"),
        ({"feedback": [accepted(card=f"c{i}") for i in range(1001)]}, "at most 1000"),
    ],
)
def test_invalid_feedback_is_a_400_naming_the_field_and_stores_nothing(store, database, body, message):
    with pytest.raises(ProtocolError) as excinfo:
        store.record(SERVICE, body)
    assert excinfo.value.status == 400
    assert message in excinfo.value.diagnostics
    assert rows(database) == []


def test_feedback_on_an_issued_card_gets_its_topic(store, database):
    store.remember_cards(SERVICE, [card("card-1", "renal-dose-adjustment"), card("card-2", "hematologic-toxicity")])
    store.remember_cards(SERVICE, [card("card-1", "renal-dose-adjustment"), {"summary": "no uuid"}])  # repeats ignored
    store.remember_cards("cmv-order-sign", [card("sign-card", "nephrotoxicity")])

    store.record(SERVICE, {"feedback": [accepted(card="card-1"), overridden(card="card-2"), accepted(card="unknown")]})
    store.record(SERVICE, {"feedback": [accepted(card="sign-card")]})  # posted to the wrong service

    topics = {r["card_uuid"]: r["card_topic"] for r in rows(database)}
    assert topics == {
        "card-1": "renal-dose-adjustment",
        "card-2": "hematologic-toxicity",
        "unknown": None,
        "sign-card": None,
    }
    with database.begin() as conn:
        assert conn.execute(select(func.count()).select_from(issued_card)).scalar_one() == 3


def test_cards_remembered_in_the_background_are_written_before_feedback_is_stored(database):
    store = FeedbackStore(database, background=True)  # as the service runs it
    store.remember_cards(SERVICE, [card(f"bg-{i}", "renal-dose-adjustment") for i in range(50)])
    store.record(SERVICE, {"feedback": [accepted(card="bg-49")]})
    assert {r["card_uuid"]: r["card_topic"] for r in rows(database)} == {"bg-49": "renal-dose-adjustment"}
    store.flush()
    with database.begin() as conn:
        assert conn.execute(select(func.count()).select_from(issued_card)).scalar_one() == 50


def test_cards_remembered_in_one_moment_are_written_in_one_batch(database, monkeypatch):
    writes = []
    store = FeedbackStore(database, background=True)
    monkeypatch.setattr(store, "_write_cards", lambda batch: writes.append(len(batch)))
    for i in range(20):
        store.remember_cards(SERVICE, [card(f"c-{i}", "cmv-status")])
    store.flush()
    assert sum(writes) == 20 and len(writes) <= 2  # the writer woke once (twice if it raced the first call)


def test_a_process_that_exits_writes_the_cards_it_issued_first(database_url):
    """A gunicorn worker stopped gracefully exits at once; its pending cards are written at exit."""
    program = (
        "import sys\n"
        "from cds_service.hooks.feedback import FeedbackStore\n"
        "from cds_service.hooks.storage import Database\n"
        "store = FeedbackStore(Database(sys.argv[1]), background=True)\n"
        "store.remember_cards('cmv-order-sign', [{'uuid': f'exit-{i}', 'source': {'topic': {'code': 'x'}}}"
        " for i in range(5)])\n"
    )
    subprocess.run([sys.executable, "-c", program, database_url], check=True, timeout=60)
    database = Database(database_url)
    with database.begin() as conn:
        assert conn.execute(select(func.count()).select_from(issued_card)).scalar_one() == 5
    database.engine.dispose()


def test_report_takes_the_topic_of_a_card_recorded_after_its_feedback(store, database):
    store.record(SERVICE, {"feedback": [overridden(card="late")]})
    store.remember_cards(SERVICE, [card("late", "nephrotoxicity")])
    (row,) = [r for r in report(database) if r["feedback"]]
    assert (row["topic"], row["overridden"]) == ("nephrotoxicity", 1)


def test_report_summarises_outcomes_per_service_and_topic(store, database):
    store.remember_cards(SERVICE, [card(f"renal-{i}", "renal-dose-adjustment") for i in range(4)])
    store.remember_cards(SERVICE, [card("heme-1", "hematologic-toxicity")])
    store.remember_cards("cmv-patient-view", [card("plan-1", "monitoring-plan")])
    store.record(
        SERVICE,
        {
            "feedback": [
                accepted(card="renal-0"),
                # The sandbox sends our reasons without display; another system's reason with one.
                overridden(card="renal-1", code="dialysis-nephrology"),
                overridden(card="renal-2", code="dialysis-nephrology"),
                overridden(card="renal-3", code="hd", display="HD protocol", system="https://hospital.example.org/r"),
                {**overridden(card="heme-1"), "overrideReason": {"userComment": "aware"}},
                accepted(card="not-ours"),
            ]
        },
    )

    by_topic = {(r["service_id"], r["topic"]): r for r in report(database)}

    renal = by_topic[(SERVICE, "renal-dose-adjustment")]
    assert (renal["cards_issued"], renal["feedback"], renal["accepted"], renal["overridden"]) == (4, 4, 1, 3)
    assert renal["acceptance_rate"] == pytest.approx(0.25)
    assert renal["top_override_reasons"] == [
        {"reason": "On dialysis, dosed per nephrology", "count": 2},
        {"reason": "HD protocol", "count": 1},
    ]
    heme = by_topic[(SERVICE, "hematologic-toxicity")]
    assert (heme["cards_issued"], heme["overridden"], heme["acceptance_rate"]) == (1, 1, 0.0)
    assert heme["top_override_reasons"] == []  # a comment without a coded reason
    unknown = by_topic[(SERVICE, None)]
    assert (unknown["cards_issued"], unknown["accepted"], unknown["acceptance_rate"]) == (0, 1, 1.0)
    plan = by_topic[("cmv-patient-view", "monitoring-plan")]
    assert (plan["cards_issued"], plan["feedback"], plan["acceptance_rate"]) == (1, 0, None)
    assert list(by_topic) == [  # by service, topics alphabetically, unknown cards last
        (SERVICE, "hematologic-toxicity"),
        (SERVICE, "renal-dose-adjustment"),
        (SERVICE, None),
        ("cmv-patient-view", "monitoring-plan"),
    ]

    table = format_report(report(database)).splitlines()
    assert table[0].split()[:4] == ["Service", "Topic", "Issued", "Feedback"]
    renal_line = next(line for line in table if "renal-dose-adjustment" in line)
    assert renal_line.split()[2:7] == ["4", "4", "1", "3", "25%"]
    assert "On dialysis, dosed per nephrology (2); HD protocol (1)" in renal_line
    assert any("(unknown card)" in line for line in table)


def test_report_of_an_empty_database(database):
    assert report(database) == []
    assert format_report([]) == "No cards issued and no feedback received yet."


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_unreachable_database_raises_storage_unavailable():
    database = Database(f"postgresql+psycopg://cds:cds@127.0.0.1:{closed_port()}/cds")
    store = FeedbackStore(database)
    with pytest.raises(StorageUnavailable):
        store.record(SERVICE, {"feedback": [accepted()]})
    with pytest.raises(StorageUnavailable):
        report(database)
    store.remember_cards(SERVICE, [card("c", "cmv-status")])  # best effort: logs, does not raise


def test_unopenable_sqlite_file_raises_storage_unavailable(tmp_path):
    (tmp_path / "cds.db").mkdir()  # a directory where the database file should be
    with pytest.raises(StorageUnavailable):
        Database(f"sqlite:///{tmp_path / 'cds.db'}").create_all()
    (tmp_path / "not-a-dir").write_text("")
    with pytest.raises(StorageUnavailable):
        Database(f"sqlite:///{tmp_path / 'not-a-dir' / 'cds.db'}")


@pytest.mark.parametrize(
    "url,advice",
    [
        ("postgresql+psycopg://cds:cds@127.0.0.1:5432/cds", r"install the service with its \[postgres\] extra"),
        # Another driver than the extra's (SQLAlchemy 2.0's default for postgresql://): the URL is the fix.
        ("postgresql+psycopg2://cds:cds@127.0.0.1:5432/cds",
         r"its \[postgres\] extra brings psycopg: write postgresql\+psycopg://"),
    ],
)
def test_a_postgresql_url_without_its_driver_installed_is_a_clear_error(monkeypatch, url, advice):
    # As without the [postgres] extra: importing the driver fails.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(ValueError, match=r"the postgresql driver \(psycopg2?\) is not installed: " + advice):
        Database(url)
