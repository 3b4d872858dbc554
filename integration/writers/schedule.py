"""When the flush runs: one at a time per CRM org (a Redis lock with a lease; a flush asked for
while one runs makes that one go round again), so Salesforce and HubSpot flush side by side;
woken after scoring and by beat, and rescheduled by itself when a CRM budget is spent."""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict
from typing import Any

from celery import Celery

from expansion.settings import Settings
from integration.writers.mapping import Crm, configured, crm_org

log = logging.getLogger(__name__)
FLUSH_TASK = "workers.tasks.flush_crm"
KEY_PREFIX = "expansion:crm-flush"
WAKE_DELAY_SECONDS = 2  # writes of a burst of recomputes go out together

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def _redis(settings: Settings):  # type: ignore[no-untyped-def]
    from workers.recompute import redis_client

    return redis_client(settings)


def key(settings: Settings, crm: Crm, name: str) -> str:
    """The Redis key `name` (lock | again | woken) of the flush of `crm`'s org."""
    return f"{KEY_PREFIX}:{crm}:{crm_org(settings, crm)}:{name}"


def wake(settings: Settings, app: Celery) -> bool:
    """Ask for a flush of each configured CRM soon; at most one per CRM waits in the queue.
    False when none is needed."""
    client = _redis(settings)
    woken = False
    for crm in configured(settings):
        if client.set(key(settings, crm, "woken"), "1", nx=True, ex=WAKE_DELAY_SECONDS):
            app.send_task(FLUSH_TASK, kwargs={"crm": crm}, countdown=WAKE_DELAY_SECONDS)
            woken = True
    return woken


def flushing(settings: Settings) -> bool:
    """True while a flush of a configured CRM runs or is woken to run soon."""
    names = [key(settings, crm, name) for crm in configured(settings) for name in ("lock", "woken")]
    return bool(names) and bool(_redis(settings).exists(*names))


def run_single_flight(settings: Settings, app: Celery, crm: Crm | None = None) -> dict[str, object]:
    """Flush `crm` unless another worker is flushing it (that one goes round again for us).
    Without `crm` (beat), a flush of each configured CRM is sent, to run side by side."""
    if crm is None:
        crms = configured(settings)
        for each in crms:
            app.send_task(FLUSH_TASK, kwargs={"crm": each})
        return {"status": "sent", "crms": crms}
    # Imported before the lock is taken: a failing import must not leave the lock held for
    # its whole lease. Imported here because it loads the CRM client libraries.
    from integration.writers.flush import flush

    client = _redis(settings)
    token = uuid.uuid4().hex
    lease = settings.task_time_limit_seconds + 30
    lock, again = key(settings, crm, "lock"), key(settings, crm, "again")
    if not client.set(lock, token, nx=True, ex=lease):
        client.set(again, "1", ex=lease)
        return {"status": "busy", "crm": crm}
    try:
        while True:
            client.delete(again)
            report = flush(settings, crm=crm)
            log.info("crm flush", extra={"crm": crm, "calls": report.calls, **_counts(report)})
            if report.resume_after is not None or not client.get(again):
                break
    finally:
        client.register_script(_RELEASE)(keys=[lock], args=[token])
    if report.resume_after is not None:
        app.send_task(FLUSH_TASK, kwargs={"crm": crm}, countdown=report.resume_after)
    return {"status": "paused" if report.resume_after else "done", **_counts(report)}


def _counts(report: Any) -> dict[str, object]:
    return {crm: asdict(counts) for crm, counts in report.crms.items()}
