"""Finds inbox rows that were stored but never processed (broker down at receive time, a worker
killed while holding the message) so the beat job can enqueue them again."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from expansion.db import transaction
from expansion.models import inbox_events
from expansion.settings import Settings

BATCH = 10_000


def claim_stale_pending(settings: Settings, now: datetime) -> list[int]:
    """Ids of rows pending for longer than INBOX_SWEEP_AFTER_SECONDS and not swept or tried
    since; they are stamped so the next sweep leaves them alone for as long again."""
    cutoff = now - timedelta(seconds=settings.inbox_sweep_after_seconds)
    with transaction(settings) as conn:
        ids = list(
            conn.execute(
                select(inbox_events.c.id)
                .where(
                    inbox_events.c.status == "pending",
                    inbox_events.c.received_at < cutoff,
                    or_(inbox_events.c.swept_at.is_(None), inbox_events.c.swept_at < cutoff),
                    or_(
                        inbox_events.c.last_attempt_at.is_(None),
                        inbox_events.c.last_attempt_at < cutoff,
                    ),
                )
                .order_by(inbox_events.c.id)
                .limit(BATCH)
            ).scalars()
        )
        if ids:
            conn.execute(
                update(inbox_events).where(inbox_events.c.id.in_(ids)).values(swept_at=now)
            )
    return ids
