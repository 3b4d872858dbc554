"""Sending work to the broker without letting a broker outage fail the caller: the inbox row is
already committed, and the sweeper enqueues anything that was not sent."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from celery import Celery

from workers.celery_app import INGEST_TASK

log = logging.getLogger(__name__)


def ingest_enqueuer(app: Celery) -> Callable[[Iterable[int]], int]:
    """A function that sends one ingest task per inbox id and returns how many were sent."""

    def enqueue(inbox_ids: Iterable[int]) -> int:
        sent = 0
        for inbox_id in inbox_ids:
            try:
                app.send_task(INGEST_TASK, args=(inbox_id,), retry=False)
            except Exception as exc:  # broker down: the sweeper will pick the row up
                log.warning("enqueue failed", extra={"inbox_id": inbox_id, "error": str(exc)})
                return sent
            sent += 1
        return sent

    return enqueue
