"""Celery tasks: thin shells over the domain modules, safe to run twice."""

from __future__ import annotations

import logging
from functools import cache

from celery import shared_task

from expansion.db import utcnow
from expansion.settings import Settings
from integration.writers import schedule as crm_schedule
from workers import drain as drain_module
from workers import ingest as ingest_module
from workers import play_step, queue, rollups, sweeper
from workers import recompute as recompute_module
from workers.celery_app import DRAIN_TASK

log = logging.getLogger(__name__)


@cache
def settings() -> Settings:
    return Settings.from_env()


@shared_task(name="workers.tasks.drain_inbox", bind=True)
def drain_inbox(self) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Ingest pending inbox rows until the inbox stays empty (workers/drain.py); woken by the
    receiver and by the sweeper."""
    queue.clear_drain_queued(settings())
    result = drain_module.drain(
        settings(), lambda account_ids: recompute_module.schedule(settings(), account_ids, self.app)
    )
    if not result.finished:  # its time budget ran out first: the next drain goes on
        self.app.send_task(DRAIN_TASK)
    if result.statuses["retry"]:
        # Those rows keep their claim until the lease expires: that is their back-off.
        self.app.send_task(DRAIN_TASK, countdown=drain_module.lease_seconds(settings()) + 1)
    counts = {"batches": result.batches, **result.statuses}
    log.info("inbox drained", extra=counts)
    crm_schedule.wake(settings(), self.app)  # a completed CRM task queues the next one
    return counts


@shared_task(name="workers.tasks.ingest", bind=True, max_retries=None)
def ingest(self, inbox_id: int) -> str:  # type: ignore[no-untyped-def]
    """One inbox row (the CLI's replay of dead-lettered rows)."""
    outcome = ingest_module.process(settings(), inbox_id)
    log.info("ingest", extra={"inbox_id": inbox_id, "status": outcome.status})
    if outcome.status == "retry":
        # The claim already counted this attempt; after ingest_max_attempts it dead-letters.
        raise self.retry(countdown=min(2**self.request.retries, 60))
    # Only now, with the events committed: a debounced recompute of each changed account.
    recompute_module.schedule(settings(), outcome.account_ids, self.app)
    return outcome.status


@shared_task(name="workers.tasks.recompute", bind=True)
def recompute(self, account_id: int, ticket: str | None = None, busy: int = 0) -> str:  # type: ignore[no-untyped-def]
    """Score one account (single-flight; see workers/recompute.py). `ticket` is the pending
    mark this task was sent with, `busy` how many times it found the account locked."""
    status = recompute_module.run(settings(), account_id, utcnow(), self.app, ticket, busy)
    log.info("recompute", extra={"account_id": account_id, "status": status})
    crm_schedule.wake(settings(), self.app)  # the scores' CRM writes, if any, go out together
    return status


@shared_task(name="workers.tasks.rescore_all", bind=True)
def rescore_all(self) -> int:  # type: ignore[no-untyped-def]
    """Daily, from beat: signals move with time alone, so every account is scored again, one
    rescore_batch task per batch of accounts."""
    batches = recompute_module.enqueue_rescore(settings(), self.app)
    log.info("rescore enqueued", extra={"batches": batches})
    return batches


@shared_task(name="workers.tasks.rescore_batch")
def rescore_batch(account_ids: list[int]) -> dict[str, int]:
    summary = recompute_module.rescore_batch(settings(), account_ids, utcnow())
    counts = {
        "accounts": summary.accounts,
        "written": summary.written,
        "unchanged": summary.unchanged,
        "skipped": summary.skipped,
        "failed": summary.failed,
    }
    log.info("rescore batch", extra=counts)
    return counts


@shared_task(name="workers.tasks.sweep_inbox", bind=True)
def sweep_inbox(self) -> int:  # type: ignore[no-untyped-def]
    """Wake one drain when rows are still pending, unclaimed, after INBOX_SWEEP_AFTER_SECONDS."""
    ids = sweeper.stale_pending(settings(), utcnow())
    if ids:
        self.app.send_task(DRAIN_TASK)
        log.info("inbox sweep woke a drain", extra={"stale": len(ids)})
    return len(ids)


@shared_task(name="workers.tasks.prune_state")
def prune_state() -> dict[str, int]:
    """Drop account state older than STATE_RETENTION_DAYS (daily, from beat)."""
    counts = rollups.prune(settings(), utcnow().date())
    log.info("state pruned", extra={"rows": counts})
    return counts


@shared_task(name="workers.tasks.sla_sweep", bind=True)
def sla_sweep(self) -> dict[str, int] | None:  # type: ignore[no-untyped-def]
    """Every 15 minutes, from beat: overdue play steps breach (escalation tasks) or stall, then
    the weekly-cap waitlist is released by readiness; None when another host's run holds it."""
    counts = play_step.sweep_single_flight(settings(), utcnow())
    log.info("sla sweep", extra=counts or {"skipped": "another sweep is running"})
    if counts and any(counts.values()):
        crm_schedule.wake(settings(), self.app)  # escalation and released tasks go out now
    return counts


@shared_task(name="workers.tasks.flush_crm", bind=True)
def flush_crm(self, crm: str | None = None) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Send the outbox to a CRM (integration/writers/flush.py), one flush at a time per CRM org;
    woken after scoring and every CRM_FLUSH_INTERVAL_SECONDS by beat (without `crm`: one flush
    per configured CRM is sent); a spent budget reschedules it."""
    return crm_schedule.run_single_flight(settings(), self.app, crm)  # type: ignore[arg-type]
