"""The inbox table: provider events stored durably before we answer, deduplicated per source.

The write is the receiver's hot path, so it runs one prepared statement on the driver's own
connection (SQLAlchemy's statement building and result handling cost more than the insert), and
on SQLite the web processes take turns through a blocking file lock: SQLite's busy handler
sleeps 1, 2, 5, 10... ms after each collision, which under load leaves one process doing the
work of all while the others sleep (BENCHMARKS.md, "Ingest")."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache
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


def write(
    settings: Settings, source: str, items: list[InboxItem], received_at: datetime
) -> list[int]:
    """Insert new items in one committed transaction, skipping ones already stored (same source
    and dedup key); return the new ids. Raises if nothing could be committed."""
    if not items:
        return []
    engine = get_engine(settings)
    sqlite = engine.dialect.name == "sqlite"
    statement, to_db = _prepared(engine.dialect)
    rows = [
        (
            source,
            item.dedup_key,
            item.event_type,
            to_db(item.occurred_at),
            to_db(received_at),
            item.payload_json(),
        )
        for item in _unique(items)
    ]
    connection = engine.raw_connection()
    try:
        with _writer_lock(settings) if sqlite else _no_lock():
            cursor = connection.cursor()
            try:
                if sqlite:  # autocommit mode (expansion/db.py): take the write lock up front
                    cursor.execute("BEGIN IMMEDIATE")
                new_ids = []
                for row in rows:
                    cursor.execute(statement, row)
                    found = cursor.fetchone()
                    if found is not None:
                        new_ids.append(found[0])
                _end(connection, cursor, sqlite, "COMMIT")
            except BaseException:
                _end(connection, cursor, sqlite, "ROLLBACK")
                raise
            finally:
                cursor.close()
    finally:
        connection.close()  # back to the pool
    return new_ids


def _end(connection: Any, cursor: Any, sqlite: bool, verb: str) -> None:
    """COMMIT or ROLLBACK: as SQL on SQLite (we issued BEGIN), through the driver otherwise."""
    if sqlite:
        if cursor.connection.in_transaction:
            cursor.execute(verb)
    elif verb == "COMMIT":
        connection.commit()
    else:
        connection.rollback()


@cache
def _prepared(dialect: Dialect) -> tuple[str, Callable[[datetime | None], Any]]:
    """The INSERT in the driver's parameter style and the datetime conversion SQLAlchemy would
    apply for this dialect (SQLite stores text), both built once."""
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


# By the VAR_DIR's text (cached by Path): hashing or joining Paths costs ~50 µs a request.
_lock_files: dict[str, _LockFile] = {}


@contextmanager
def _writer_lock(settings: Settings) -> Iterator[None]:
    lock_file = _lock_files.get(str(settings.var_dir))
    if lock_file is None:
        lock_file = _lock_files[str(settings.var_dir)] = _LockFile(settings.var_dir / LOCK_NAME)
    fd = lock_file.fd()
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


def _unique(items: list[InboxItem]) -> list[InboxItem]:
    """A batch may repeat an event (HubSpot retries batch with fresh ones); keep the first."""
    seen: set[str] = set()
    kept = []
    for item in items:
        if item.dedup_key not in seen:
            seen.add(item.dedup_key)
            kept.append(item)
    return kept
