"""The service's database: clinician feedback, the cards it answers, and used JWT ids.

One schema for SQLite (a single host; several gunicorn workers share the file) and PostgreSQL
(several hosts).  Writes that may race between workers are single INSERT ... ON CONFLICT
statements, which both databases make atomic, so no worker ever needs to read before it writes.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    exc,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

log = logging.getLogger(__name__)

# How long a SQLite writer waits for another worker's write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 10_000

metadata = MetaData()

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(128), nullable=False, index=True),
    Column("card_uuid", String(255), nullable=False, index=True),
    Column("outcome", String(16), nullable=False),
    Column("accepted_suggestions", JSON, nullable=False),  # list of suggestion uuids
    Column("override_code", String(255)),
    Column("override_system", String(1024)),
    Column("override_display", String(1024)),
    Column("user_comment", Text),
    Column("outcome_timestamp", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("card_topic", String(255)),  # source.topic.code of the card we issued, when known
    # sha256 of everything the client said about the card: a re-sent item is the same row.
    Column("dedup_key", String(64), nullable=False, unique=True),
)

issued_card = Table(
    "issued_card",
    metadata,
    Column("card_uuid", String(255), primary_key=True),
    Column("service_id", String(128), nullable=False),
    Column("topic", String(255)),
    Column("issued_at", DateTime(timezone=True), nullable=False),
)

used_jti = Table(
    "used_jti",
    metadata,
    Column("jti", String(255), primary_key=True),
    Column("issuer", String(1024), primary_key=True),
    Column("expires_at", BigInteger, nullable=False, index=True),  # epoch seconds
)

# The INSERT constructs that know ON CONFLICT, per supported dialect.
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


class StorageUnavailable(Exception):
    """The database cannot be reached or written (the caller answers 503, or 401 for auth)."""


class Database:
    def __init__(self, url: str):
        parsed = make_url(url)
        dialect = parsed.get_backend_name()
        if dialect not in _INSERTS:
            raise ValueError(f"unsupported database {dialect!r}: use sqlite or postgresql")
        self.dialect = dialect
        self._tables_ready = False
        if dialect == "sqlite":
            self.engine = _sqlite_engine(parsed)
            return
        try:
            # pool_pre_ping: a connection dropped by a database restart is replaced, not failed.
            self.engine = create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
        except ImportError:
            # The [postgres] extra, which the service's own install leaves out, brings psycopg (3).
            driver = parsed.get_driver_name()
            advice = ("install the service with its [postgres] extra (pip install -e '.[postgres]')"
                      if driver == "psycopg" else "its [postgres] extra brings psycopg: write postgresql+psycopg://...")
            raise ValueError(f"the {dialect} driver ({driver}) is not installed: {advice}") from None

    def create_all(self) -> None:
        with self.begin():
            pass  # begin() creates the tables

    def insert(self, table: Table):
        """INSERT for this database, with on_conflict_do_nothing/on_conflict_do_update."""
        return _INSERTS[self.dialect](table)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction; connection and locking failures become StorageUnavailable.

        Tables are created on first use when the database was down at start, so a service started
        during a database outage begins storing feedback as soon as the database is back."""
        try:
            with self.engine.begin() as conn:
                if not self._tables_ready:
                    metadata.create_all(conn)
                    self._tables_ready = True
                yield conn
        except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
            # The driver's message names host/file, never row data.
            log.warning("database unavailable: %s", error.__class__.__name__)
            raise StorageUnavailable("the database is unavailable") from error


def _sqlite_engine(url):
    database = url.database or ""
    if database in ("", ":memory:"):
        # One shared in-memory database for all threads (tests, throwaway runs).
        return create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False}, hide_parameters=True)
    try:
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageUnavailable(f"cannot create the directory for {database}") from error
    engine = create_engine(url, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        # WAL lets readers run beside the one writer; busy_timeout makes a worker wait for another
        # worker's write lock instead of failing at once.
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    return engine
