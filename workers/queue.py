"""Sending work to the broker without letting a broker outage fail or stall the caller: the
inbox row is already committed, and the sweeper wakes a drain for anything left pending.

The receiver does not publish a message per event: each web process wakes the inbox drain
(workers/drain.py) at most once per INGEST_WAKE_INTERVAL_SECONDS, and only when no drain message
is already waiting in the queue (a Redis flag the drain clears when it starts), so the queue
holds at most one idle drain whatever the request rate."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable

import redis
from celery import Celery

from expansion.embedded import redis_url
from expansion.settings import Settings
from workers.celery_app import DRAIN_TASK, INGEST_TASK, PUBLISH_SOCKET_TIMEOUT_SECONDS

log = logging.getLogger(__name__)

# After a failed publish, skip publishing for this long: each attempt against a dead broker
# costs seconds of connection retries, which would stall every web worker during an outage.
BREAKER_SECONDS = 10.0
# Set (NX) by the web process that publishes a drain, cleared by that drain when it starts.
# The expiry only matters when the publish or the clear failed: the flag then blocks wakes for
# at most this long, and the sweeper covers the rows meanwhile.
DRAIN_QUEUED_KEY = "expansion:ingest:drain-queued"
DRAIN_QUEUED_SECONDS = 10

_flag_clients: dict[tuple[object, ...], redis.Redis] = {}


def flag_client(settings: Settings) -> redis.Redis:
    # Keyed by what decides the URL: redis_url() pings the embedded server on every call.
    key = (settings.redis_url, settings.broker_url, settings.var_dir)
    client = _flag_clients.get(key)
    if client is None:
        timeout = PUBLISH_SOCKET_TIMEOUT_SECONDS  # a hung Redis must not hang a web worker
        client = redis.Redis.from_url(
            redis_url(settings), socket_timeout=timeout, socket_connect_timeout=timeout
        )
        _flag_clients[key] = client
    return client


def drain_waker(
    app: Celery, settings: Settings, clock: Callable[[], float] = time.monotonic
) -> Callable[[], bool]:
    """A function to call after each inbox commit; True when it published a drain. Between
    publishes it costs one clock read (see workers/drain.py for why no event is stranded)."""
    interval = settings.ingest_wake_interval_seconds
    last_attempt = -math.inf
    open_until = 0.0

    def wake() -> bool:
        nonlocal last_attempt, open_until
        now = clock()
        if now < open_until or now - last_attempt < interval:
            return False
        last_attempt = now  # before publishing: the drain can only start after this moment
        try:
            client = flag_client(settings)
            if not client.set(DRAIN_QUEUED_KEY, "1", nx=True, ex=DRAIN_QUEUED_SECONDS):
                return False  # a drain is queued and not started yet: it will see our rows
            try:
                app.send_task(DRAIN_TASK, retry=False)
            except Exception:
                client.delete(DRAIN_QUEUED_KEY)  # nothing is queued after all
                raise
        except Exception as exc:
            open_until = clock() + BREAKER_SECONDS
            log.warning(
                "enqueue failed; the inbox sweeper will wake a drain for pending rows",
                extra={"error": str(exc), "pause_s": BREAKER_SECONDS},
            )
            return False
        return True

    return wake


def clear_drain_queued(settings: Settings) -> None:
    """Called by a drain as it starts, before its first claim."""
    try:
        flag_client(settings).delete(DRAIN_QUEUED_KEY)
    except Exception as exc:  # it expires on its own; wakes are blocked until then
        log.warning("could not clear the drain flag", extra={"error": str(exc)})


def ingest_enqueuer(
    app: Celery, clock: Callable[[], float] = time.monotonic
) -> Callable[[Iterable[int]], int]:
    """A function that sends one ingest task per inbox id and returns how many were sent (the
    CLI's replay of dead-lettered rows)."""
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
