"""The zero-loss check: every event answered 2xx is in the inbox, and a real celery worker
then applies every one of them (inbox row processed, its canonical events applied)."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import case, func, select

from expansion.db import transaction
from expansion.models import canonical_events, inbox_events
from expansion.settings import Settings
from tests.support import start_worker


@dataclass(frozen=True)
class LossReport:
    acked: int
    missing_from_inbox: int
    not_applied: int
    drain_seconds: float
    worker_concurrency: int

    @property
    def lost(self) -> int:
        return self.missing_from_inbox + self.not_applied

    @property
    def drain_rate(self) -> float:
        return self.acked / self.drain_seconds if self.drain_seconds else 0.0


def check(
    settings: Settings,
    env: dict[str, str],
    acked: Collection[str],
    log_path: Path,
    stall_seconds: float,
    concurrency: int,
) -> LossReport:
    """Count acked events missing from the inbox, drain the inbox with a real worker (until
    nothing is pending, or nothing moved for `stall_seconds`), then count acked events that
    were not applied."""
    acked = set(acked)
    missing = len(acked - _stored(settings))
    started = time.monotonic()
    worker = start_worker(env, log_path, concurrency)
    try:
        _wait_until_nothing_pending(settings, stall_seconds)
    finally:
        worker.stop()
    drained = time.monotonic() - started
    applied = _applied(settings)
    not_applied = len((acked - applied) & _stored(settings))
    return LossReport(len(acked), missing, not_applied, drained, concurrency)


def _stored(settings: Settings) -> set[str]:
    with transaction(settings) as conn:
        rows = conn.execute(
            select(inbox_events.c.dedup_key).where(inbox_events.c.source == "stripe")
        )
        return set(rows.scalars())


def _pending(settings: Settings) -> int:
    with transaction(settings) as conn:
        return conn.execute(
            select(func.count()).select_from(inbox_events).where(inbox_events.c.status == "pending")
        ).scalar_one()


def _wait_until_nothing_pending(settings: Settings, stall_seconds: float) -> None:
    pending, moved_at = _pending(settings), time.monotonic()
    while pending and time.monotonic() - moved_at < stall_seconds:
        time.sleep(0.5)
        now_pending = _pending(settings)
        if now_pending != pending:
            pending, moved_at = now_pending, time.monotonic()


def _applied(settings: Settings) -> set[str]:
    """Events whose inbox row is processed and whose canonical events are all applied."""
    applied_count = func.sum(case((canonical_events.c.status == "applied", 1), else_=0))
    with transaction(settings) as conn:
        rows = conn.execute(
            select(inbox_events.c.dedup_key)
            .join(canonical_events, canonical_events.c.inbox_id == inbox_events.c.id)
            .where(inbox_events.c.source == "stripe", inbox_events.c.status == "processed")
            .group_by(inbox_events.c.id)
            .having(func.count() == applied_count)
        )
        return set(rows.scalars())
