"""Sending work to the broker without letting a broker outage fail or stall the caller: the
inbox row is already committed, and the sweeper enqueues anything that was not sent."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from celery import Celery

from workers.celery_app import INGEST_TASK

log = logging.getLogger(__name__)

# After a failed publish, skip publishing for this long: each attempt against a dead broker
# costs seconds of connection retries, which would stall every web worker during an outage.
BREAKER_SECONDS = 10.0


def ingest_enqueuer(
    app: Celery, clock: Callable[[], float] = time.monotonic
) -> Callable[[Iterable[int]], int]:
    """A function that sends one ingest task per inbox id and returns how many were sent."""
    open_until = 0.0

    def enqueue(inbox_ids: Iterable[int]) -> int:
        nonlocal open_until
        if clock() < open_until:
            return 0
        sent = 0
        for inbox_id in inbox_ids:
            try:
                app.send_task(INGEST_TASK, args=(inbox_id,), retry=False)
            except Exception as exc:
                open_until = clock() + BREAKER_SECONDS
                log.warning(
                    "enqueue failed; the inbox sweeper will send pending rows",
                    extra={"inbox_id": inbox_id, "error": str(exc), "pause_s": BREAKER_SECONDS},
                )
                return sent
            sent += 1
        return sent

    return enqueue
