"""Chargebee: HTTP Basic auth, parse errors, and the canonical events each fixture yields,
including out-of-order delivery and events parked until the customer is linked."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from expansion.db import as_utc, transaction
from expansion.mappings import MappingError
from expansion.models import account_attributes, canonical_events, inbox_events
from integration.app import create_app
from integration.canonical import AccountKey, CanonicalEvent, Ignored
from integration.sources.chargebee import SOURCE, authorization_header
from tests.support import TEST_SECRETS, fixture_path, load_json_fixture
from workers import ingest

USERNAME = TEST_SECRETS["CHARGEBEE_WEBHOOK_USERNAME"]
PASSWORD = TEST_SECRETS["CHARGEBEE_WEBHOOK_PASSWORD"]
ACME = AccountKey("chargebee", "AzZTUnUkQ3Acme01")
GLOBEX = AccountKey("chargebee", "AzZTUnUkQ3Globx1")
ACME_CRM = AccountKey("salesforce", "0015g00000AcmeQAAR")
GLOBEX_CRM = AccountKey("salesforce", "0015g00000GlbxQAAR")


def post(client, body: bytes, authorization: str | None = None, content_type="application/json"):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": content_type}
    headers["Authorization"] = authorization or authorization_header(USERNAME, PASSWORD)
    return client.post("/webhooks/chargebee", data=body, headers=headers)


def fixture_body(name: str) -> bytes:
    return fixture_path("chargebee", name).read_bytes()


def inbox_rows(settings):  # type: ignore[no-untyped-def]
    with transaction(settings) as conn:
        return conn.execute(select(inbox_events).order_by(inbox_events.c.id)).all()


def deliver(client, settings, name: str) -> ingest.Outcome:  # type: ignore[no-untyped-def]
    """Post a fixture like Chargebee would and ingest the stored row."""
    assert post(client, fixture_body(name)).status_code == 200
    row = inbox_rows(settings)[-1]
    return ingest.process(settings, row.id)


def attributes(settings) -> dict[str, object]:  # type: ignore[no-untyped-def]
    with transaction(settings) as conn:
        rows = conn.execute(select(account_attributes.c.name, account_attributes.c.value)).all()
    return dict(rows)  # type: ignore[arg-type]


def at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# --- verification -------------------------------------------------------------------------


def test_event_with_good_basic_auth_is_stored(client, settings):
    response = post(client, fixture_body("subscription_changed.json"))
    assert response.status_code == 200
    assert response.get_json() == {"received": 1, "new": 1, "duplicates": 0}
    rows = inbox_rows(settings)
    assert [(r.source, r.dedup_key, r.event_type, as_utc(r.occurred_at)) for r in rows] == [
        ("chargebee", "ev_AzZTUnUkQAcmeE02", "subscription_changed", at(1765000000))
    ]


@pytest.mark.parametrize(
    "authorization",
    [
        authorization_header(USERNAME, "wrong-password"),
        authorization_header("someone-else", PASSWORD),
        authorization_header("", ""),
        "Bearer " + PASSWORD,
        "Basic not*base64",
        "Basic " + "bm8tY29sb24=",  # "no-colon"
        "Basic",
    ],
)
def test_wrong_or_malformed_credentials_are_401_and_not_stored(client, settings, authorization):
    response = post(client, fixture_body("subscription_changed.json"), authorization)
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_signature"
    assert inbox_rows(settings) == []


def test_missing_authorization_is_401_and_not_stored(client, settings):
    response = client.post(
        "/webhooks/chargebee",
        data=fixture_body("subscription_changed.json"),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 401
    assert "Basic" in response.get_json()["detail"]
    assert inbox_rows(settings) == []


@pytest.mark.parametrize(
    ("unset", "named"),
    [
        (
            {"chargebee_webhook_username": None, "chargebee_webhook_password": None},
            ["CHARGEBEE_WEBHOOK_USERNAME", "CHARGEBEE_WEBHOOK_PASSWORD"],
        ),
        ({"chargebee_webhook_password": None}, ["CHARGEBEE_WEBHOOK_PASSWORD"]),
    ],
)
def test_unset_credentials_are_503_naming_the_variables(settings, unset, named):
    client = create_app(replace(settings, **unset)).test_client()
    response = post(client, fixture_body("subscription_changed.json"))
    assert response.status_code == 503
    payload = response.get_json()
    assert payload["error"] == "not_configured"
    assert all(name in payload["detail"] for name in named)
    assert inbox_rows(settings) == []


# --- parsing ------------------------------------------------------------------------------


def test_malformed_json_is_400(client, settings):
    response = post(client, b'{"id": "ev_1", "event_type": ')
    assert response.status_code == 400
    assert response.get_json()["error"] == "malformed_payload"
    assert "JSON" in response.get_json()["detail"]
    assert inbox_rows(settings) == []


def test_event_missing_keys_is_400_naming_them(client):
    body = json.dumps({"id": "ev_1", "object": "event", "event_type": "customer_changed"})
    response = post(client, body.encode())
    assert response.status_code == 400
    assert response.get_json()["detail"] == "Chargebee event is missing occurred_at, content"


@pytest.mark.parametrize(
    ("field", "value"), [("occurred_at", "2026-01-01T03:00:00Z"), ("id", ""), ("content", [])]
)
def test_event_with_a_wrong_typed_field_is_400_naming_it(client, settings, field, value):
    event = load_json_fixture("chargebee", "customer_changed.json")
    event[field] = value
    response = post(client, json.dumps(event).encode())
    assert response.status_code == 400
    assert f"`{field}`" in response.get_json()["detail"]
    assert inbox_rows(settings) == []


def test_wrong_content_type_is_415(client, settings):
    response = post(client, fixture_body("customer_changed.json"), content_type="text/plain")
    assert response.status_code == 415
    assert response.get_json()["error"] == "unsupported_media_type"
    assert inbox_rows(settings) == []


def test_redelivered_event_is_acknowledged_and_stored_once(client, settings):
    body = fixture_body("payment_succeeded.json")
    assert post(client, body).get_json() == {"received": 1, "new": 1, "duplicates": 0}
    assert post(client, body).get_json() == {"received": 1, "new": 0, "duplicates": 1}
    assert len(inbox_rows(settings)) == 1


# --- normalization ------------------------------------------------------------------------

ACME_SUBSCRIPTION = {
    "subscription_id": "AzZTUnUkQ9AcmeS1",
    "status": "active",
    "seats": 60,
    "tier": "growth",
    "currency": "USD",
    "arr": 28800.0,
    # Billed monthly: the term end is the next invoice, not a renewal.
    "renewal_at": None,
    "cancel_at_period_end": False,
}

EXPECTED: dict[str, list[CanonicalEvent] | Ignored] = {
    "customer_created.json": [
        CanonicalEvent(
            "account.linked",
            ACME,
            at(1763990000),
            {"company": "Acme Corp", "email_domain": "acme.example"},
            links=(ACME_CRM,),
        )
    ],
    "customer_changed.json": [
        CanonicalEvent(
            "account.linked",
            GLOBEX,
            at(1767236400),
            {"company": "Globex", "email_domain": "globex.example"},
            links=(GLOBEX_CRM,),
        )
    ],
    "subscription_created.json": [
        CanonicalEvent(
            "subscription.changed",
            ACME,
            at(1764000000),
            {**ACME_SUBSCRIPTION, "seats": 50, "arr": 24000.0},
            links=(ACME_CRM,),
        )
    ],
    # Plan (50) + seat add-on (10) count as seats; the one-off charge is not ARR.
    "subscription_changed.json": [
        CanonicalEvent(
            "subscription.changed", ACME, at(1765000000), ACME_SUBSCRIPTION, links=(ACME_CRM,)
        )
    ],
    "subscription_cancelled.json": [
        CanonicalEvent(
            "subscription.changed",
            ACME,
            at(1766000000),
            {**ACME_SUBSCRIPTION, "status": "canceled", "arr": 0, "renewal_at": None},
            links=(ACME_CRM,),
        )
    ],
    "subscription_renewed.json": [
        CanonicalEvent(
            "subscription.changed",
            GLOBEX,
            at(1767225600),
            {
                "subscription_id": "AzZTUnUkQ9GlobS1",
                "status": "active",
                "seats": 120,
                "tier": "scale",
                "currency": "USD",
                "arr": 72000.0,
                "renewal_at": "2027-01-01T00:00:00+00:00",
                "cancel_at_period_end": False,
            },
        )
    ],
    "payment_succeeded.json": [
        CanonicalEvent(
            "invoice.paid",
            ACME,
            at(1765000060),
            {
                "invoice_id": "1042",
                "amount": 2400.0,
                "currency": "USD",
                "attempt_count": None,
                "billing_reason": "subscription_cycle",
            },
            links=(ACME_CRM,),
        )
    ],
    "payment_failed.json": [
        CanonicalEvent(
            "invoice.payment_failed",
            GLOBEX,
            at(1767229200),
            {
                "invoice_id": "1057",
                "amount": 72000.0,
                "currency": "USD",
                "attempt_count": 1,
                "billing_reason": "subscription_cycle",
            },
        )
    ],
    "coupon_created.json": Ignored(
        "Chargebee event type coupon_created is not mapped in sources/chargebee.yaml"
    ),
}


def test_every_fixture_has_an_expectation():
    names = {p.name for p in fixture_path("chargebee", "x").parent.glob("*.json")}
    assert names == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_normalizes_to_exactly_these_events(settings, name):
    event = load_json_fixture("chargebee", name)
    assert SOURCE.normalize(event, event["event_type"], settings) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_is_ingested_into_exactly_these_stored_events(client, settings, name):
    outcome = deliver(client, settings, name)
    expected = EXPECTED[name]
    if isinstance(expected, Ignored):
        assert (outcome.status, outcome.detail) == ("ignored", expected.reason)
        return
    assert outcome.status == "processed"
    with transaction(settings) as conn:
        rows = conn.execute(select(canonical_events).order_by(canonical_events.c.seq)).all()
    assert [(r.type, r.key_kind, r.key_value, r.data) for r in rows] == [
        (e.type, e.key.kind, e.key.value, e.data) for e in expected
    ]
    # Events naming their CRM account are applied at once; Globex is not linked yet.
    linked = any(e.links for e in expected)
    assert {r.status for r in rows} == {"applied" if linked else "parked"}


def test_out_of_order_subscription_events_keep_the_newest_state(client, settings):
    assert deliver(client, settings, "subscription_changed.json").status == "processed"
    assert deliver(client, settings, "subscription_created.json").status == "processed"
    state = attributes(settings)
    assert (state["subscription.seats"], state["subscription.arr"]) == (60, 28800.0)


def test_a_late_event_does_not_reactivate_a_cancelled_subscription(client, settings):
    assert deliver(client, settings, "subscription_cancelled.json").status == "processed"
    assert deliver(client, settings, "subscription_changed.json").status == "processed"
    state = attributes(settings)
    assert (state["subscription.status"], state["subscription.arr"]) == ("canceled", 0)


def test_events_of_an_unlinked_customer_are_parked_until_the_link_arrives(client, settings):
    assert deliver(client, settings, "payment_failed.json").status == "processed"
    assert deliver(client, settings, "subscription_renewed.json").status == "processed"
    with transaction(settings) as conn:
        assert set(conn.execute(select(canonical_events.c.status)).scalars()) == {"parked"}
    assert deliver(client, settings, "customer_changed.json").status == "processed"
    with transaction(settings) as conn:
        rows = conn.execute(
            select(
                canonical_events.c.type, canonical_events.c.status, canonical_events.c.account_id
            )
        ).all()
    assert {(r.type, r.status) for r in rows} == {
        ("invoice.payment_failed", "applied"),
        ("subscription.changed", "applied"),
        ("account.linked", "applied"),
    }
    assert len({r.account_id for r in rows}) == 1
    assert attributes(settings)["subscription.seats"] == 120


def test_mapping_errors_name_the_file_and_key_path(settings, tmp_path):
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "chargebee.yaml").write_text(
        "account_link: {custom_field: cf_crm_account_id, crm: pipedrive}\n"
        "events: {payment_succeeded: invoice.settled}\n"
    )
    event = load_json_fixture("chargebee", "payment_succeeded.json")
    with pytest.raises(MappingError) as error:
        SOURCE.normalize(event, "payment_succeeded", replace(settings, mappings_dir=tmp_path))
    message = str(error.value)
    assert "chargebee.yaml" in message
    assert "account_link.crm" in message and "events.payment_succeeded" in message


@pytest.mark.parametrize(
    ("unit", "period", "renewal"),
    [
        ("year", 1, "2025-12-24T16:00:00+00:00"),
        ("month", 12, "2025-12-24T16:00:00+00:00"),
        ("month", 1, None),
        ("month", 3, None),
        ("week", 52, None),
    ],
)
def test_only_a_term_of_a_year_or_more_makes_the_term_end_a_renewal(
    settings, unit, period, renewal
):
    event = load_json_fixture("chargebee", "subscription_changed.json")
    subscription = event["content"]["subscription"]
    subscription.update(billing_period_unit=unit, billing_period=period)
    for item in subscription["subscription_items"]:
        item.pop("billing_period_unit", None)
        item.pop("billing_period", None)
    (changed,) = SOURCE.normalize(event, event["event_type"], settings)
    assert changed.data["renewal_at"] == renewal
