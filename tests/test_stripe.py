"""Stripe: signature scheme (t=, v1=, tolerance both ways, rotation), parse errors, and the
canonical events each fixture yields."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select

from expansion.models import account_attributes, canonical_events, inbox_events
from integration.sources.stripe import SOURCE, signature_header
from tests.support import SHARED, TEST_SECRETS, fixture_path, load_json_fixture
from workers import ingest

SECRET = TEST_SECRETS["STRIPE_WEBHOOK_SECRET"]


def post(client, body: bytes, header: str | None = None, content_type="application/json"):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": content_type}
    headers["Stripe-Signature"] = header or signature_header(SECRET, body, int(time.time()))
    return client.post("/webhooks/stripe", data=body, headers=headers)


def fixture_body(name: str) -> bytes:
    return fixture_path("stripe", name).read_bytes()


def inbox_rows(settings):  # type: ignore[no-untyped-def]
    from expansion.db import transaction

    with transaction(settings) as conn:
        return conn.execute(select(inbox_events)).all()


def test_signed_event_is_stored_before_the_answer(client, settings):
    response = post(client, fixture_body("customer.subscription.updated.json"))
    assert response.status_code == 200
    assert response.get_json() == {"received": 1, "new": 1, "duplicates": 0}
    rows = inbox_rows(settings)
    assert [(r.source, r.dedup_key, r.event_type, r.status) for r in rows] == [
        ("stripe", "evt_1QAcmeSubUpd0001", "customer.subscription.updated", "pending")
    ]


def test_second_delivery_answers_2xx_and_changes_nothing(client, settings):
    body = fixture_body("invoice.paid.json")
    assert post(client, body).status_code == 200
    again = post(client, body)
    assert again.status_code == 200
    assert again.get_json() == {"received": 1, "new": 0, "duplicates": 1}
    assert len(inbox_rows(settings)) == 1


@pytest.mark.parametrize("offset", [-301, 301])
def test_timestamp_outside_300_seconds_either_way_is_rejected(client, settings, offset):
    body = fixture_body("invoice.paid.json")
    response = post(client, body, signature_header(SECRET, body, int(time.time()) + offset))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_signature"
    assert inbox_rows(settings) == []


@pytest.mark.parametrize("offset", [-290, 290])
def test_timestamp_inside_the_window_either_way_is_accepted(client, offset):
    body = fixture_body("invoice.paid.json")
    header = signature_header(SECRET, body, int(time.time()) + offset)
    assert post(client, body, header).status_code == 200


def test_any_of_several_v1_signatures_may_match_during_secret_rotation(client):
    body = fixture_body("invoice.paid.json")
    now = int(time.time())
    good = signature_header(SECRET, body, now).split("v1=")[1]
    old = signature_header("whsec_old_secret", body, now).split("v1=")[1]
    header = f"t={now},v1={old},v1={good},v0=deadbeef"
    assert post(client, body, header).status_code == 200


@pytest.mark.parametrize(
    "header",
    ["", "t=abc,v1=00", "v1=00", f"t={int(time.time())}", f"t={int(time.time())},v1=00ff"],
)
def test_bad_or_missing_signature_is_401_and_not_stored(client, settings, header):
    body = fixture_body("invoice.paid.json")
    response = client.post(
        "/webhooks/stripe",
        data=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": header},
    )
    assert response.status_code == 401
    assert inbox_rows(settings) == []


def test_tampered_body_is_401(client):
    body = fixture_body("invoice.paid.json")
    header = signature_header(SECRET, body, int(time.time()))
    assert post(client, body.replace(b"3000000", b"9000000"), header).status_code == 401


def test_malformed_json_is_400_with_json_error(client, settings):
    response = post(client, b'{"id": "evt_1", "type": ')
    assert response.status_code == 400
    payload = response.get_json()
    assert payload["error"] == "malformed_payload" and "JSON" in payload["detail"]
    assert inbox_rows(settings) == []


def test_event_missing_required_keys_is_400_naming_them(client):
    response = post(client, json.dumps({"id": "evt_1", "object": "event"}).encode())
    assert response.status_code == 400
    assert "type" in response.get_json()["detail"]


def test_wrong_content_type_is_415(client):
    response = post(client, fixture_body("invoice.paid.json"), content_type="text/plain")
    assert response.status_code == 415
    assert response.get_json()["error"] == "unsupported_media_type"


def test_subscription_update_becomes_subscription_changed_on_the_linked_account(client, settings):
    post(client, fixture_body("customer.subscription.updated.json"))
    (row,) = inbox_rows(settings)
    outcome = ingest.process(settings, row.id)
    assert outcome.status == "processed"
    from expansion.db import transaction

    with transaction(settings) as conn:
        event = conn.execute(select(canonical_events)).one()
        attributes = dict(
            conn.execute(select(account_attributes.c.name, account_attributes.c.value)).all()
        )
    assert (event.type, event.key_kind, event.key_value, event.status) == (
        "subscription.changed",
        "stripe",
        "cus_RAcmeCorp0001",
        "applied",
    )
    assert event.data["seats"] == 50
    assert event.data["tier"] == "growth"
    assert event.data["arr"] == 30000.0
    assert event.data["renewal_at"].startswith("2026-11-16")
    assert attributes["subscription.seats"] == 50


def test_unmapped_event_type_is_acknowledged_and_ignored_with_reason(client, settings):
    assert post(client, fixture_body("plan.created.json")).status_code == 200
    (row,) = inbox_rows(settings)
    outcome = ingest.process(settings, row.id)
    assert outcome.status == "ignored"
    assert "plan.created" in outcome.detail
    (row,) = inbox_rows(settings)
    assert row.status == "ignored" and "plan.created" in row.last_error


def test_invoice_for_unlinked_customer_is_parked_then_applied_when_the_link_arrives(
    client, settings
):
    from expansion.db import transaction

    post(client, fixture_body("invoice.payment_failed.json"))
    (failed,) = inbox_rows(settings)
    assert ingest.process(settings, failed.id).status == "processed"
    with transaction(settings) as conn:
        assert conn.execute(select(canonical_events.c.status)).scalar_one() == "parked"
    post(client, fixture_body("customer.updated.json"))
    link_row = max(inbox_rows(settings), key=lambda r: r.id)
    assert ingest.process(settings, link_row.id).status == "processed"
    with transaction(settings) as conn:
        statuses = dict(
            conn.execute(select(canonical_events.c.type, canonical_events.c.status)).all()
        )
        accounts = conn.execute(
            select(func.count())
            .select_from(canonical_events)
            .where(canonical_events.c.account_id.is_not(None))
        ).scalar_one()
    assert statuses == {"invoice.payment_failed": "applied", "account.linked": "applied"}
    assert accounts == 2


@pytest.mark.skipif(
    not (SHARED / "specs/stripe/fixtures3.json").exists(), reason="../shared absent"
)
@pytest.mark.parametrize(
    "name", ["customer.subscription.updated.json", "invoice.paid.json", "customer.updated.json"]
)
def test_fixture_objects_use_only_fields_stripe_documents(name):
    resources = json.loads((SHARED / "specs/stripe/fixtures3.json").read_text())["resources"]
    event = load_json_fixture("stripe", name)
    assert set(event) <= set(resources["event"]) | {"data"}
    obj = event["data"]["object"]
    assert set(obj) <= set(resources[obj["object"]])


@pytest.mark.parametrize(
    ("interval", "count", "renewal"),
    [
        ("year", 1, "2026-11-16T00:00:00+00:00"),
        ("month", 12, "2026-11-16T00:00:00+00:00"),
        ("year", 2, "2026-11-16T00:00:00+00:00"),
        ("month", 1, None),
        ("month", 6, None),
        ("week", 52, None),
    ],
)
def test_only_a_term_of_a_year_or_more_makes_the_period_end_a_renewal(
    settings, interval, count, renewal
):
    event = load_json_fixture("stripe", "customer.subscription.updated.json")
    for item in event["data"]["object"]["items"]["data"]:
        item["price"]["recurring"].update(interval=interval, interval_count=count)
    (changed,) = SOURCE.normalize(event, event["type"], settings)
    assert changed.data["renewal_at"] == renewal
