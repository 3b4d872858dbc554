"""Celery tasks: thin shells over the domain modules, safe to run twice."""

from __future__ import annotations

import logging
from functools import cache

from celery import shared_task

from expansion.db import utcnow
from expansion.settings import Settings
from workers import ingest as ingest_module
from workers import rollups, sweeper

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
    """Enqueue inbox rows still pending after INBOX_SWEEP_AFTER_SECONDS."""
    ids = sweeper.claim_stale_pending(settings(), utcnow())
    for inbox_id in ids:
        ingest.delay(inbox_id)
    if ids:
        log.info("inbox sweep", extra={"enqueued": len(ids)})
    return len(ids)


@shared_task(name="workers.tasks.prune_state")
def prune_state() -> dict[str, int]:
    """Drop account state older than STATE_RETENTION_DAYS (daily, from beat)."""
    counts = rollups.prune(settings(), utcnow().date())
    log.info("state pruned", extra={"rows": counts})
    return counts
