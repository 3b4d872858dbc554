"""The inbox drain and its wake: the per-process throttle and the queued-drain flag, claims that
two drains never share (SKIP LOCKED on PostgreSQL), the grace re-check before a drain stops,
expired claims, and the sweeper waking one drain for stale rows."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import Counter
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select, text, update

from expansion.db import get_engine, transaction, utcnow
from expansion.embedded import redis_url
from expansion.models import inbox_events
from expansion.settings import Settings
from tests.test_ingest import store_stripe, subscription_event
from tests.test_recompute import task_env  # noqa: F401  (a fixture)
from workers import drain, tasks
from workers.celery_app import make_celery
from workers.queue import DRAIN_QUEUED_KEY, drain_waker


@pytest.fixture
def broker(settings):  # type: ignore[no-untyped-def]
    client = redis.Redis.from_url(redis_url(settings))
    client.delete("celery", DRAIN_QUEUED_KEY)
    yield client
    client.delete("celery", DRAIN_QUEUED_KEY)


def queued_tasks(broker) -> list[str]:  # type: ignore[no-untyped-def]
    return [json.loads(m)["headers"]["task"] for m in broker.lrange("celery", 0, -1)]


def store_events(settings, count: int) -> list[int]:  # type: ignore[no-untyped-def]
    return [
        store_stripe(settings, subscription_event(f"evt_drain_{n}", 1_764_000_000 + n, n + 1))
        for n in range(count)
    ]


def rows(settings):  # type: ignore[no-untyped-def]
    with transaction(settings) as conn:
        return conn.execute(select(inbox_events).order_by(inbox_events.c.id)).all()


def test_wake_publishes_at_most_once_per_interval_and_not_while_a_drain_is_queued(settings, broker):
    now = [100.0]
    wake = drain_waker(make_celery(settings), settings, clock=lambda: now[0])
    assert wake() is True
    now[0] += settings.ingest_wake_interval_seconds / 2
    assert wake() is False  # throttled: not even the flag is read
    now[0] += settings.ingest_wake_interval_seconds * 2
    assert wake() is False  # the first drain is still queued
    assert queued_tasks(broker) == ["workers.tasks.drain_inbox"]
    broker.delete(DRAIN_QUEUED_KEY)  # what the drain does as it starts
    now[0] += settings.ingest_wake_interval_seconds * 2
    assert wake() is True
    assert queued_tasks(broker) == ["workers.tasks.drain_inbox"] * 2


def test_grace_must_exceed_the_wake_interval(env):
    with pytest.raises(ValueError, match="INGEST_DRAIN_GRACE_SECONDS"):
        Settings.from_env(
            {**env, "INGEST_WAKE_INTERVAL_SECONDS": "0.5", "INGEST_DRAIN_GRACE_SECONDS": "0.5"}
        )


def test_claims_never_hand_a_row_to_two_drains(settings):
    ids = store_events(settings, 5)
    now = utcnow()
    first = drain.claim(settings, now, 3)
    second = drain.claim(settings, now, 3)
    assert first == ids[:3]
    assert second == ids[3:]
    assert drain.claim(settings, now, 3) == []


def test_an_expired_claim_counts_as_none(settings):
    (row_id,) = store_events(settings, 1)
    then = utcnow()
    assert drain.claim(settings, then, 10) == [row_id]
    just_before = then + timedelta(seconds=drain.lease_seconds(settings) - 1)
    assert drain.claim(settings, just_before, 10) == []
    expired = then + timedelta(seconds=drain.lease_seconds(settings) + 1)
    assert drain.claim(settings, expired, 10) == [row_id]


def test_the_lease_is_short_but_never_longer_than_the_task_time_limit(settings):
    assert drain.lease_seconds(settings) == drain.CLAIM_LEASE_SECONDS
    short = dataclasses.replace(settings, task_time_limit_seconds=10)
    assert drain.lease_seconds(short) == 10


def test_two_drains_at_once_process_every_row_exactly_once(settings):
    store_events(settings, 40)
    small = dataclasses.replace(settings, ingest_drain_batch=3)
    results: list[drain.Drained] = []

    def run() -> None:
        results.append(drain.drain(small, lambda _ids: None, sleep=lambda _s: None))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(result.finished for result in results)
    assert sum(result.statuses["processed"] for result in results) == 40
    assert sum(result.statuses["skipped"] for result in results) == 0
    assert {(row.status, row.attempts) for row in rows(settings)} == {("processed", 1)}


def test_a_drain_looks_again_after_the_grace_and_takes_what_arrived_meanwhile(settings):
    store_events(settings, 1)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:  # an event committed while the drain waits
            store_stripe(settings, subscription_event("evt_late", 1_764_100_000, 7))

    changed: list[set[int]] = []
    result = drain.drain(settings, changed.append, sleep=sleep)
    assert result.finished
    assert waits == [settings.ingest_drain_grace_seconds] * 2
    assert result.statuses["processed"] == 2 and result.batches == 2
    assert all(changed)  # each batch reported the account it changed, for its recompute
    assert {row.status for row in rows(settings)} == {"processed"}


def test_past_half_the_lease_a_drain_gives_the_rest_of_its_batch_back(settings):
    ids = store_events(settings, 3)
    # The clock as the batch reads it: at the claim, then before each row.
    ticks = iter([0.0, 0.0, 1.0, drain.lease_seconds(settings)])
    stamp = utcnow()
    claimed = drain.claim(settings, stamp, 10)
    statuses: Counter[str] = Counter()
    drain._process_batch(settings, claimed, stamp, lambda: next(ticks), statuses)
    assert statuses == {"processed": 2}
    by_id = {row.id: row for row in rows(settings)}
    assert [by_id[i].status for i in ids] == ["processed", "processed", "pending"]
    assert by_id[ids[2]].claimed_at is None  # free for the next claim at once
    assert drain.claim(settings, stamp, 10) == [ids[2]]


def test_a_drain_that_runs_out_of_time_says_so(settings):
    store_events(settings, 2)
    no_time = dataclasses.replace(settings, task_time_limit_seconds=0)
    assert drain.drain(no_time, lambda _ids: None).finished is False


@pytest.mark.usefixtures("task_env")
def test_the_sweeper_wakes_one_drain_for_all_stale_rows(settings, broker):
    store_events(settings, 3)
    old = utcnow() - timedelta(seconds=settings.inbox_sweep_after_seconds + 5)
    with transaction(settings) as conn:
        conn.execute(update(inbox_events).values(received_at=old))
    make_celery(settings)  # the app the task publishes through
    assert tasks.sweep_inbox() == 3
    assert queued_tasks(broker) == ["workers.tasks.drain_inbox"]


@pytest.mark.usefixtures("task_env")
def test_the_drain_task_clears_the_flag_and_processes_the_inbox(settings, broker):
    store_events(settings, 2)
    broker.set(DRAIN_QUEUED_KEY, "1")
    make_celery(settings)
    counts = tasks.drain_inbox()
    assert counts["processed"] == 2
    assert broker.get(DRAIN_QUEUED_KEY) is None


def test_on_postgresql_a_claim_skips_rows_another_drain_is_claiming(settings):
    if get_engine(settings).dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite serializes claims with BEGIN IMMEDIATE")
    ids = store_events(settings, 4)
    with get_engine(settings).connect() as other:
        other.execute(
            text("SELECT id FROM inbox_events WHERE id IN (:a, :b) FOR UPDATE").bindparams(
                a=ids[0], b=ids[1]
            )
        )
        # Not blocked by the open transaction: it takes the rows nobody is locking.
        assert drain.claim(settings, utcnow(), 10) == ids[2:]
        other.rollback()
    assert drain.claim(settings, utcnow(), 10) == ids[:2]
