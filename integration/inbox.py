"""The inbox table: provider events stored durably before we answer, deduplicated per source.

The write is the receiver's hot path, so an `Inbox` is built once per process and database and
runs one prepared statement on a driver connection it keeps (SQLAlchemy's statement building
and result handling cost more than the insert; a pool checkout per write an eighth as much), and
on SQLite the web processes take turns through a blocking file lock: SQLite's busy handler
sleeps 1, 2, 5, 10... ms after each collision, which under load leaves one process doing the
work of all while the others sleep (BENCHMARKS.md, "Ingest")."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Dialect

from expansion.db import get_engine
from expansion.models import inbox_events
from expansion.settings import Settings
from integration.sources.base import InboxItem

_INSERT = (
    "INSERT INTO inbox_events"
    " (source, dedup_key, event_type, occurred_at, received_at, payload, status, attempts)"
    " VALUES ({0}, {0}, {0}, {0}, {0}, {0}, 'pending', 0)"
    " ON CONFLICT (source, dedup_key) DO NOTHING RETURNING id"
)
LOCK_NAME = "inbox-write.lock"

Row = tuple[str, str, str, Any, Any, str]


class Inbox:
    """The inbox writer for one database: its engine, statement and lock, looked up once, and
    a connection per thread (see for_settings)."""

    def __init__(self, settings: Settings) -> None:
        self.engine = get_engine(settings)
        self.sqlite = self.engine.dialect.name == "sqlite"
        self.statement, self.to_db = _prepared(self.engine.dialect)
        self.lock = _LockFile(settings.var_dir / LOCK_NAME) if self.sqlite else None
        self._local = threading.local()

    def write(self, source: str, items: list[InboxItem], received_at: datetime) -> list[int]:
        """Insert new items in one committed transaction, skipping ones already stored (same
        source and dedup key); return the new ids. Raises if nothing could be committed."""
        if not items:
            return []
        to_db = self.to_db
        received = to_db(received_at)
        rows = [
            (
                source,
                item.dedup_key,
                item.event_type,
                to_db(item.occurred_at),
                received,
                item.payload_json(),
            )
            for item in _unique(items)
        ]
        if self.lock is None:
            return self._insert(rows)
        fd = self.lock.fd()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            return self._insert(rows)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _insert(self, rows: list[Row]) -> list[int]:
        reused = getattr(self._local, "connection", None) is not None
        connection = self.connection()
        try:
            return self._transaction(connection, rows)
        except Exception as exc:
            # A connection kept since an earlier write may have been closed under it (the
            # server restarted), which the pool's pre-ping would have caught: try a new one.
            # The insert skips what is already stored, so a second try stores nothing twice.
            gone = reused and self.engine.dialect.is_disconnect(
                exc, connection.dbapi_connection, None
            )
            self._drop(connection)
            if not gone:
                raise
        connection = self.connection()
        try:
            return self._transaction(connection, rows)
        except Exception:
            self._drop(connection)
            raise

    def connection(self) -> Any:
        """This thread's connection: one from the pool, kept checked out between writes."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self.engine.raw_connection()
        return connection

    def _drop(self, connection: Any) -> None:
        """Close a connection whose write failed (its state is unknown) rather than keep it."""
        self._local.connection = None
        connection.invalidate()

    def _transaction(self, connection: Any, rows: list[Row]) -> list[int]:
        cursor = connection.cursor()
        try:
            if self.sqlite:  # autocommit mode (expansion/db.py): take the write lock up front
                cursor.execute("BEGIN IMMEDIATE")
            new_ids = []
            for row in rows:
                cursor.execute(self.statement, row)
                found = cursor.fetchone()
                if found is not None:
                    new_ids.append(found[0])
            self._end(connection, cursor, "COMMIT")
        except BaseException:
            self._end(connection, cursor, "ROLLBACK")
            raise
        finally:
            cursor.close()
        return new_ids

    def _end(self, connection: Any, cursor: Any, verb: str) -> None:
        """COMMIT or ROLLBACK: as SQL on SQLite (we issued BEGIN), through the driver otherwise."""
        if self.sqlite:
            if cursor.connection.in_transaction:
                cursor.execute(verb)
        elif verb == "COMMIT":
            connection.commit()
        else:
            connection.rollback()


# One per database and lock file in a process, so that it keeps one connection per thread
# however many apps or settings objects use that database.
_inboxes: dict[tuple[str, Path], Inbox] = {}


def for_settings(settings: Settings) -> Inbox:
    """The process's Inbox for the settings' database. Call it in the process that writes
    (gunicorn builds the app in each worker): a connection must not cross a fork."""
    key = (settings.effective_database_url, settings.var_dir)
    inbox = _inboxes.get(key)
    if inbox is None:
        inbox = _inboxes[key] = Inbox(settings)
    return inbox


def write(
    settings: Settings, source: str, items: list[InboxItem], received_at: datetime
) -> list[int]:
    """Inbox.write for callers without an Inbox at hand (the receiver keeps its own)."""
    return for_settings(settings).write(source, items, received_at)


def _prepared(dialect: Dialect) -> tuple[str, Callable[[datetime | None], Any]]:
    """The INSERT in the driver's parameter style and the datetime conversion SQLAlchemy would
    apply for this dialect (SQLite stores text)."""
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    column_type = inbox_events.c.received_at.type
    process = column_type.dialect_impl(dialect).bind_processor(dialect)

    def to_db(value: datetime | None) -> Any:
        return value if process is None or value is None else process(value)

    return _INSERT.format(marker), to_db


class _LockFile:
    """One open lock file per process: flock locks belong to the open file, so a descriptor
    inherited across fork would let parent and child hold the lock at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pid = -1
        self.descriptor = -1

    def fd(self) -> int:
        if self.pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self.pid = os.getpid()
        return self.descriptor


def _unique(items: list[InboxItem]) -> list[InboxItem]:
    """A batch may repeat an event (HubSpot retries batch with fresh ones); keep the first."""
    if len(items) == 1:
        return items
    seen: set[str] = set()
    kept = []
    for item in items:
        if item.dedup_key not in seen:
            seen.add(item.dedup_key)
            kept.append(item)
    return kept
