"""Celery tasks: thin shells over the domain modules, safe to run twice."""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import cache

from celery import shared_task
from sqlalchemy import or_, select, update

from expansion.db import transaction, utcnow
from expansion.models import inbox_events
from expansion.settings import Settings
from workers import ingest as ingest_module

log = logging.getLogger(__name__)


@cache
def settings() -> Settings:
    return Settings.from_env()


@shared_task(name="workers.tasks.ingest", bind=True, max_retries=None)
def ingest(self, inbox_id: int) -> str:  # type: ignore[no-untyped-def]
    outcome = ingest_module.process(settings(), inbox_id)
    log.info("ingest", extra={"inbox_id": inbox_id, "status": outcome.status})
    if outcome.status == "retry":
        # The claim already counted this attempt; after ingest_max_attempts it dead-letters.
        raise self.retry(countdown=min(2**self.request.retries, 60))
    return outcome.status


@shared_task(name="workers.tasks.sweep_inbox")
def sweep_inbox() -> int:
    """Enqueue inbox rows still pending after INBOX_SWEEP_AFTER_SECONDS (the broker was down,
    a worker died holding the message, or the enqueue after commit never happened)."""
    current = settings()
    cutoff = utcnow() - timedelta(seconds=current.inbox_sweep_after_seconds)
    with transaction(current) as conn:
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
                .limit(10_000)
            ).scalars()
        )
        if ids:
            conn.execute(
                update(inbox_events).where(inbox_events.c.id.in_(ids)).values(swept_at=utcnow())
            )
    for inbox_id in ids:
        ingest.delay(inbox_id)
    if ids:
        log.info("inbox sweep", extra={"enqueued": len(ids)})
    return len(ids)
