"""One signed HTTP request to a running app (gunicorn) ends, through a real Celery worker
process and a real Redis, as canonical events applied to account state."""

from __future__ import annotations

import time

import pytest
import requests
from sqlalchemy import select

from expansion.db import transaction
from expansion.models import account_attributes, account_links, canonical_events, inbox_events
from integration.sources.stripe import signature_header
from tests.support import TEST_SECRETS, fixture_path, start_gunicorn, start_worker, wait_for

pytestmark = pytest.mark.slow


def send(url: str, name: str) -> requests.Response:
    body = fixture_path("stripe", name).read_bytes()
    secret = TEST_SECRETS["STRIPE_WEBHOOK_SECRET"]
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": signature_header(secret, body, int(time.time())),
    }
    return requests.post(f"{url}/webhooks/stripe", data=body, headers=headers, timeout=10)


def test_signed_request_ends_as_applied_account_state(env, settings, tmp_path):
    web, url = start_gunicorn(env, tmp_path / "web.log")
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        # Delivered out of order: the subscription arrives before the customer that links it.
        assert send(url, "customer.subscription.updated.json").status_code == 200
        assert send(url, "customer.updated.json").status_code == 200
        assert send(url, "customer.updated.json").status_code == 200  # provider retry

        def applied() -> bool:
            with transaction(settings) as conn:
                statuses = conn.execute(select(canonical_events.c.status)).scalars().all()
            return len(statuses) == 2 and set(statuses) == {"applied"}

        wait_for(applied, 60, "both events applied")
        with transaction(settings) as conn:
            inbox = conn.execute(select(inbox_events.c.status)).scalars().all()
            links = set(conn.execute(select(account_links.c.kind, account_links.c.external_id)))
            seats = conn.execute(
                select(account_attributes.c.value).where(
                    account_attributes.c.name == "subscription.seats"
                )
            ).scalar_one()
        assert inbox == ["processed", "processed"]
        assert links == {("stripe", "cus_RAcmeCorp0001"), ("salesforce", "0018c00002AcmeQAAR")}
        assert seats == 50
    finally:
        worker.stop()
        web.stop()
