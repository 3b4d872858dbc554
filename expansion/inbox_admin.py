"""Inbox operations for admins: counts per source and status, the dead-letter list, and the safe
replay of dead-lettered events (only dead rows, reset to pending with their attempts cleared)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select, update

from expansion.db import as_utc, transaction
from expansion.models import inbox_events
from expansion.settings import Settings

STATUSES = ("pending", "processed", "ignored", "dead")


@dataclass(frozen=True)
class InboxStats:
    counts: dict[str, dict[str, int]]  # source -> status -> rows
    oldest_pending_id: int | None
    oldest_pending_at: datetime | None

    def total(self, status: str) -> int:
        return sum(by_status.get(status, 0) for by_status in self.counts.values())

    def oldest_pending_age_seconds(self, now: datetime) -> float | None:
        if self.oldest_pending_at is None:
            return None
        return max((now - self.oldest_pending_at).total_seconds(), 0.0)


@dataclass(frozen=True)
class DeadLetter:
    id: int
    source: str
    event_type: str
    dedup_key: str
    attempts: int
    last_error: str | None
    received_at: datetime


class ReplayRefused(Exception):
    """The replay would touch rows that are not dead-lettered; nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def stats(settings: Settings, sources: tuple[str, ...] = ()) -> InboxStats:
    """Rows per source and status (every name in `sources` appears, even with no rows)."""
    with transaction(settings) as conn:
        grouped = conn.execute(
            select(inbox_events.c.source, inbox_events.c.status, func.count()).group_by(
                inbox_events.c.source, inbox_events.c.status
            )
        ).all()
        oldest = conn.execute(
            select(inbox_events.c.id, inbox_events.c.received_at)
            .where(inbox_events.c.status == "pending")
            .order_by(inbox_events.c.received_at, inbox_events.c.id)
            .limit(1)
        ).first()
    counts: dict[str, dict[str, int]] = {name: {} for name in sources}
    for source, status, count in grouped:
        counts.setdefault(source, {})[status] = count
    return InboxStats(
        counts=dict(sorted(counts.items())),
        oldest_pending_id=oldest.id if oldest else None,
        oldest_pending_at=as_utc(oldest.received_at) if oldest else None,
    )


def dead_letters(
    settings: Settings, source: str | None = None, limit: int | None = None
) -> tuple[list[DeadLetter], int]:
    """Dead-lettered rows, oldest first, and how many there are in all."""
    where = [inbox_events.c.status == "dead"]
    if source:
        where.append(inbox_events.c.source == source)
    with transaction(settings) as conn:
        total = conn.execute(select(func.count()).select_from(inbox_events).where(*where))
        total_count = total.scalar_one()
        query = select(inbox_events).where(*where).order_by(inbox_events.c.id)
        rows = conn.execute(query.limit(limit) if limit else query).all()
    return [_dead_letter(row) for row in rows], total_count


def _dead_letter(row) -> DeadLetter:  # type: ignore[no-untyped-def]
    return DeadLetter(
        id=row.id,
        source=row.source,
        event_type=row.event_type,
        dedup_key=row.dedup_key,
        attempts=row.attempts,
        last_error=row.last_error,
        received_at=as_utc(row.received_at),
    )


def reset_for_replay(
    settings: Settings, ids: list[int] | None = None, source: str | None = None
) -> list[DeadLetter]:
    """Put dead rows back to pending with attempts 0, in one transaction. With `ids`, every one
    must exist and be dead, else nothing changes (ReplayRefused). Without, all dead rows (of
    `source`). Returns the rows as they were, previous errors included."""
    with transaction(settings) as conn:
        rows = _rows_to_replay(conn, ids, source)
        for row in rows:
            reset = conn.execute(
                update(inbox_events)
                .where(inbox_events.c.id == row.id, inbox_events.c.status == "dead")
                .values(
                    status="pending",
                    attempts=0,
                    last_error=None,
                    last_attempt_at=None,
                    processed_at=None,
                    swept_at=None,
                    claimed_at=None,
                )
            )
            if reset.rowcount != 1:  # changed under us: roll the whole replay back
                raise ReplayRefused([f"inbox event {row.id} changed during the replay; retry"])
    return rows


def _rows_to_replay(
    conn: Connection, ids: list[int] | None, source: str | None
) -> list[DeadLetter]:
    query = select(inbox_events).order_by(inbox_events.c.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    if ids is None:
        where = [inbox_events.c.status == "dead"]
        if source:
            where.append(inbox_events.c.source == source)
        return [_dead_letter(row) for row in conn.execute(query.where(*where))]
    found = {row.id: row for row in conn.execute(query.where(inbox_events.c.id.in_(ids)))}
    problems = [
        f"inbox event {inbox_id} does not exist"
        if inbox_id not in found
        else f"inbox event {inbox_id} is {found[inbox_id].status}, not dead; "
        "only dead-lettered events can be replayed"
        for inbox_id in dict.fromkeys(ids)
        if inbox_id not in found or found[inbox_id].status != "dead"
    ]
    if problems:
        raise ReplayRefused(problems)
    return [_dead_letter(found[inbox_id]) for inbox_id in dict.fromkeys(ids)]


def age_text(seconds: float) -> str:
    """A short human age: 45s, 3m 12s, 2h 05m, 4d 03h."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"
