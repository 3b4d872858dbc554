"""Fault tests on real processes (gunicorn, a prefork Celery worker, beat, the embedded Redis):
kill -9 the worker during a replay, stop Redis during a replay; every accepted event must be
applied exactly once. Small versions of `python -m bench.faults` (numbers in BENCHMARKS.md),
plus the two bugs those runs found, reproduced directly: the worker crashing on a Redis loss
and, on PostgreSQL, an event parked for good by two applies racing."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from kombu import Connection, Consumer, Queue
from sqlalchemy import select

from bench.faults.scenarios import Plan, kill_worker_during_replay, stop_redis_during_replay
from expansion.db import get_engine, transaction, utcnow
from expansion.embedded import ensure_embedded_redis, stop_embedded_redis
from expansion.models import canonical_events, inbox_events
from integration.sources import SOURCES
from integration.sources.stripe import signature_header
from tests.support import TEST_SECRETS, fixture_path
from workers import broker_guard, ingest

SMALL = Plan(
    events=300,
    customers=30,
    senders=4,
    sweep_after=3,
    sweep_interval=1,
    concurrency=2,
    drain_timeout=60,
)


@pytest.mark.slow
def test_killing_the_worker_twice_loses_and_duplicates_nothing():
    # Unpaced: the worker has a backlog, so it holds messages whenever it is killed.
    result = kill_worker_during_replay(SMALL, kills=2)
    assert result.problems == []
    assert result.ledger.statuses == {"processed": 300}
    assert result.ledger.applied == result.ledger.counter_total == 300
    # The killed workers held a drain message, which Redis gives back only after the
    # visibility timeout (20 minutes); the new worker's drains took over. Rows a killed drain
    # had claimed come back when the claim lease expires (workers/drain.py), woken by traffic
    # or by the sweeper (tests/test_drain.py); whether a kill strands any is timing.
    assert result.measures["messages held by killed workers"] > 0


@pytest.mark.slow
def test_receiver_answers_2xx_while_redis_is_down_and_all_is_applied_after():
    paced = replace(SMALL, rate=60.0)  # traffic keeps arriving through the outage
    result = stop_redis_during_replay(paced, outage=4.0)
    assert result.problems == []
    assert result.measures["answers while down"] > 100
    assert result.measures["non-2xx while down"] == 0
    assert result.first_try_failures == 0
    assert result.ledger.applied == result.ledger.counter_total == 300
    # No wake reached the broker while it was down. Rows stored meanwhile were applied by the
    # drain already running (it claims from the database, not from Redis) or, when none was,
    # by one the sweeper woke (the kill test and tests/test_drain.py cover that path).


def test_worker_connection_closes_without_crashing_after_redis_went_away():
    """kombu 5.7 closes a channel again after its transport was detached; restoring its
    unacknowledged messages then raised AttributeError and the worker exited."""
    broker_guard.install()
    var_dir = Path(tempfile.mkdtemp(prefix="esg-"))
    sock = ensure_embedded_redis(var_dir)
    try:
        with Connection(f"redis+socket://{sock}") as conn:
            polling = conn.default_channel
            Consumer(polling, [Queue("celery")], callbacks=[lambda *_: None]).consume()
            # As in the worker's event loop: a BRPOP in flight and a message not yet acked,
            # plus a second channel (the worker's remote-control one) holding one too.
            conn.transport.cycle.add(polling)
            conn.transport.cycle._register_BRPOP(polling)
            polling.qos._delivered["in-flight"] = None
            conn.channel().qos._delivered["reserved"] = None
            stop_embedded_redis(var_dir)
            conn.collect()  # what the consumer does on a connection loss, then it closes
    finally:
        stop_embedded_redis(var_dir)
        shutil.rmtree(var_dir, ignore_errors=True)


def _stored(client, settings, fixture: str) -> int:  # type: ignore[no-untyped-def]
    body = fixture_path("stripe", fixture).read_bytes()
    secret = TEST_SECRETS["STRIPE_WEBHOOK_SECRET"]
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": signature_header(secret, body, int(time.time())),
    }
    assert client.post("/webhooks/stripe", data=body, headers=headers).status_code == 200
    with transaction(settings) as conn:
        return conn.execute(
            select(inbox_events.c.id).where(inbox_events.c.event_type == fixture[: -len(".json")])
        ).scalar_one()


def test_event_parked_while_another_worker_links_its_key_is_still_applied(client, settings):
    if get_engine(settings).dialect.name != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time; the race needs PostgreSQL")
    failed = _stored(client, settings, "invoice.payment_failed.json")
    linking = _stored(client, settings, "customer.updated.json")
    parked = threading.Event()

    def park_and_hold() -> None:
        with transaction(settings) as conn:
            row = conn.execute(select(inbox_events).where(inbox_events.c.id == failed)).one()
            events = SOURCES["stripe"].normalize(json.loads(row.payload), row.event_type, settings)
            ingest.apply_events(conn, failed, events, utcnow())
            parked.set()
            time.sleep(1)  # the other worker links the customer meanwhile

    holder = threading.Thread(target=park_and_hold)
    holder.start()
    assert parked.wait(10)
    assert ingest.process(settings, linking).status == "processed"
    holder.join()
    with transaction(settings) as conn:
        statuses = conn.execute(select(canonical_events.c.status)).scalars().all()
    assert statuses == ["applied", "applied"]
