"""Behaviour every source shares: unknown source, body size limit, unset secrets, storage
failure, broker outage, the drain wake after the answer, and the inbox sweeper that recovers
what no drain picked up."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import timedelta

import redis
from sqlalchemy import select

from expansion.db import transaction, utcnow
from expansion.embedded import redis_url
from expansion.models import inbox_events
from integration import inbox
from integration.app import create_app
from integration.sources.stripe import signature_header
from tests.support import TEST_SECRETS, fixture_path
from workers import drain, sweeper
from workers.celery_app import make_celery
from workers.queue import DRAIN_QUEUED_KEY, drain_waker

BODY = fixture_path("stripe", "invoice.paid.json").read_bytes()


def stripe_headers(body: bytes = BODY) -> dict[str, str]:
    secret = TEST_SECRETS["STRIPE_WEBHOOK_SECRET"]
    return {
        "Content-Type": "application/json",
        "Stripe-Signature": signature_header(secret, body, int(time.time())),
    }


def pending_ids(settings) -> list[int]:  # type: ignore[no-untyped-def]
    with transaction(settings) as conn:
        return list(
            conn.execute(
                select(inbox_events.c.id).where(inbox_events.c.status == "pending")
            ).scalars()
        )


def test_unknown_source_is_404_json(client):
    response = client.post("/webhooks/zendesk", data=b"{}", headers=stripe_headers())
    assert response.status_code == 404
    assert response.get_json()["error"] == "unknown_source"


def test_get_on_a_webhook_is_405_json(client):
    response = client.get("/webhooks/stripe")
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"


def test_body_over_the_limit_is_413_and_not_stored(settings):
    small = dataclasses.replace(settings, max_body_bytes=1024)
    client = create_app(small).test_client()
    big = BODY + b" " * 2048
    response = client.post("/webhooks/stripe", data=big, headers=stripe_headers(big))
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"
    assert pending_ids(settings) == []


def test_limit_is_configurable_and_default_is_one_mebibyte(settings):
    assert settings.max_body_bytes == 1024 * 1024


def test_unset_secret_is_503_naming_the_variable(settings):
    unset = dataclasses.replace(settings, stripe_webhook_secret=None)
    client = create_app(unset).test_client()
    response = client.post("/webhooks/stripe", data=BODY, headers=stripe_headers())
    assert response.status_code == 503
    assert "STRIPE_WEBHOOK_SECRET" in response.get_json()["detail"]


def test_storage_failure_is_5xx_so_the_provider_retries(settings, tmp_path):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    broken = dataclasses.replace(
        settings, database_url=f"sqlite:///{read_only}/missing/dir/x.db", auto_migrate=False
    )
    read_only.chmod(0o500)
    try:
        client = create_app(broken).test_client()
        response = client.post("/webhooks/stripe", data=BODY, headers=stripe_headers())
    finally:
        read_only.chmod(0o700)
    assert response.status_code == 503
    assert response.get_json()["error"] == "storage_unavailable"


def test_broker_down_still_answers_2xx_and_keeps_the_event(settings):
    no_broker = dataclasses.replace(settings, broker_url="redis://127.0.0.1:1/0")
    client = create_app(no_broker).test_client()
    for name in ("invoice.paid.json", "invoice.payment_failed.json"):
        body = fixture_path("stripe", name).read_bytes()
        response = client.post("/webhooks/stripe", data=body, headers=stripe_headers(body))
        response.close()  # runs the after-response enqueue, which fails against the dead broker
        assert response.status_code == 200
    assert len(pending_ids(settings)) == 2


def test_after_a_failed_publish_the_wake_pauses_instead_of_retrying_each_time(settings):
    dead = dataclasses.replace(settings, broker_url="redis://127.0.0.1:1/0", redis_url=None)
    now = [1000.0]
    wake = drain_waker(make_celery(dead), dead, clock=lambda: now[0])
    assert wake() is False
    now[0] += 1.0  # well past the wake interval, still inside the breaker's pause
    started = time.monotonic()
    assert wake() is False
    assert time.monotonic() - started < 0.1  # paused: no connection attempt at all


def test_sweeper_finds_rows_left_pending_that_no_live_drain_holds(client, settings):
    client.post("/webhooks/stripe", data=BODY, headers=stripe_headers())
    (row_id,) = pending_ids(settings)
    assert sweeper.stale_pending(settings, utcnow()) == []
    later = utcnow() + timedelta(seconds=settings.inbox_sweep_after_seconds + 1)
    assert sweeper.stale_pending(settings, later) == [row_id]
    assert sweeper.stale_pending(settings, later + timedelta(seconds=1)) == [row_id]
    assert drain.claim(settings, later, 10) == [row_id]  # a drain holds it now
    assert sweeper.stale_pending(settings, later + timedelta(seconds=1)) == []
    expired = later + timedelta(seconds=drain.lease_seconds(settings) + 1)
    assert sweeper.stale_pending(settings, expired) == [row_id]


def test_accepted_events_wake_one_drain_on_the_real_broker(client, settings):
    broker = redis.Redis.from_url(redis_url(settings))
    broker.delete("celery", DRAIN_QUEUED_KEY)
    for event_id in ("evt_wake_1", "evt_wake_2", "evt_wake_3"):
        body = json.dumps({**json.loads(BODY), "id": event_id}).encode()
        client.post("/webhooks/stripe", data=body, headers=stripe_headers(body)).close()
    assert len(pending_ids(settings)) == 3
    # One message: the later wakes were throttled or found that drain still queued.
    (message,) = broker.lrange("celery", 0, -1)
    assert json.loads(message)["headers"]["task"] == "workers.tasks.drain_inbox"
    broker.delete("celery", DRAIN_QUEUED_KEY)


def test_an_inbox_connection_closed_between_requests_is_replaced_and_the_event_stored(
    client, settings
):
    first = json.dumps({**json.loads(BODY), "id": "evt_before_close"}).encode()
    response = client.post("/webhooks/stripe", data=first, headers=stripe_headers(first))
    assert response.status_code == 200
    # What a database restart does to the connection the receiver keeps between requests.
    inbox.for_settings(settings).connection().dbapi_connection.close()
    second = json.dumps({**json.loads(BODY), "id": "evt_after_close"}).encode()
    response = client.post("/webhooks/stripe", data=second, headers=stripe_headers(second))
    assert response.status_code == 200
    assert response.get_json()["new"] == 1
    assert len(pending_ids(settings)) == 2
