"""The ingest step on its own: exactly once under repeats and concurrency, the poison-message
guard, dead-letters with their reason, and ordering by occurred time rather than arrival."""

from __future__ import annotations

import copy
import json
import threading
import time

from sqlalchemy import func, select, update

from expansion.db import transaction, utcnow
from expansion.models import account_attributes, accounts, canonical_events, inbox_events
from integration import inbox
from integration.sources.base import RawRequest
from integration.sources.stripe import SOURCE as STRIPE
from tests.support import load_json_fixture
from workers import ingest


def store_stripe(settings, event: dict) -> int:  # type: ignore[no-untyped-def]
    body = json.dumps(event).encode()
    raw = RawRequest("POST", "http://test/webhooks/stripe", {}, body, utcnow())
    items = STRIPE.parse(raw, settings)
    (new_id,) = inbox.write(settings, "stripe", items, items[0].occurred_at)
    return new_id


def subscription_event(event_id: str, created: int, seats: int) -> dict:
    event = copy.deepcopy(load_json_fixture("stripe", "customer.subscription.updated.json"))
    event["id"] = event_id
    event["created"] = created
    event["data"]["object"]["items"]["data"][0]["quantity"] = seats
    return event


def count(settings, table) -> int:  # type: ignore[no-untyped-def]
    with transaction(settings) as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def seats(settings) -> int:  # type: ignore[no-untyped-def]
    with transaction(settings) as conn:
        return conn.execute(
            select(account_attributes.c.value).where(
                account_attributes.c.name == "subscription.seats"
            )
        ).scalar_one()


def test_processing_the_same_row_again_changes_nothing(settings):
    row_id = store_stripe(settings, subscription_event("evt_a", 1_764_000_000, 40))
    assert ingest.process(settings, row_id).status == "processed"
    assert ingest.process(settings, row_id).status == "skipped"
    assert count(settings, canonical_events) == 1
    with transaction(settings) as conn:
        assert conn.execute(select(accounts.c.events_applied)).scalar_one() == 1


def test_concurrent_deliveries_of_one_row_apply_it_once(settings):
    row_id = store_stripe(settings, subscription_event("evt_b", 1_764_000_000, 40))
    outcomes: list[str] = []

    def run() -> None:
        outcomes.append(ingest.process(settings, row_id).status)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["processed", "skipped", "skipped", "skipped"]
    assert count(settings, canonical_events) == 1


def test_older_event_arriving_later_does_not_overwrite_newer_state(settings):
    newer = store_stripe(settings, subscription_event("evt_new", 1_764_100_000, 55))
    older = store_stripe(settings, subscription_event("evt_old", 1_764_000_000, 30))
    assert ingest.process(settings, newer).status == "processed"
    assert ingest.process(settings, older).status == "processed"
    assert seats(settings) == 55
    assert count(settings, canonical_events) == 2  # both kept in the event log


def test_event_that_cannot_be_normalized_goes_to_the_dead_letter_with_its_reason(settings):
    broken = subscription_event("evt_broken", 1_764_000_000, 10)
    del broken["data"]["object"]["customer"]
    row_id = store_stripe(settings, broken)
    outcome = ingest.process(settings, row_id)
    assert outcome.status == "dead"
    with transaction(settings) as conn:
        row = conn.execute(select(inbox_events).where(inbox_events.c.id == row_id)).one()
    assert row.status == "dead"
    assert "no customer id" in row.last_error
    assert count(settings, canonical_events) == 0


def test_row_that_crashed_its_worker_max_times_is_dead_lettered_not_retried(settings):
    row_id = store_stripe(settings, subscription_event("evt_poison", 1_764_000_000, 10))
    with transaction(settings) as conn:  # as if the worker died mid-way this many times
        conn.execute(
            update(inbox_events)
            .where(inbox_events.c.id == row_id)
            .values(attempts=settings.ingest_max_attempts)
        )
    outcome = ingest.process(settings, row_id)
    assert outcome.status == "dead"
    with transaction(settings) as conn:
        row = conn.execute(select(inbox_events).where(inbox_events.c.id == row_id)).one()
    assert row.last_error.startswith(f"gave up after {settings.ingest_max_attempts} attempts")
    assert count(settings, canonical_events) == 0


def test_each_attempt_is_counted_before_the_work(settings):
    row_id = store_stripe(settings, subscription_event("evt_count", int(time.time()), 10))
    ingest.process(settings, row_id)
    with transaction(settings) as conn:
        assert conn.execute(select(inbox_events.c.attempts)).scalar_one() == 1
