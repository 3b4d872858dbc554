"""Finds inbox rows that were stored but never processed (broker down at receive time, a drain
killed while holding their claim) so that the beat job can wake a drain for them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from expansion.db import transaction
from expansion.models import inbox_events
from expansion.settings import Settings
from workers.drain import claim_expiry

BATCH = 10_000


def stale_pending(settings: Settings, now: datetime) -> list[int]:
    """Ids of rows pending for longer than INBOX_SWEEP_AFTER_SECONDS that no live drain holds
    (up to BATCH of them); they are stamped swept_at, which records that the sweeper, not an
    event, brought them to a drain."""
    cutoff = now - timedelta(seconds=settings.inbox_sweep_after_seconds)
    with transaction(settings) as conn:
        ids = list(
            conn.execute(
                select(inbox_events.c.id)
                .where(
                    inbox_events.c.status == "pending",
                    inbox_events.c.received_at < cutoff,
                    or_(
                        inbox_events.c.claimed_at.is_(None),
                        inbox_events.c.claimed_at < claim_expiry(settings, now),
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
