"""Account-state rollups: each canonical event type lands in its table, the same day or user
never counts twice, late events never overwrite newer state, and retention prunes old rows."""

from __future__ import annotations

import dataclasses
import random
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from celery.schedules import crontab
from sqlalchemy import Table, text

from expansion.db import get_engine
from expansion.models import (
    account_contacts,
    account_crm_history,
    account_features,
    account_integrations,
    account_invoices,
    account_limit_hits,
    account_nps,
    account_series,
    account_subscriptions,
    account_teaser_clicks,
    account_tickets,
    account_users,
    metadata,
)
from expansion.settings import Settings
from integration.canonical import AccountKey, CanonicalEvent
from tests.state_support import (
    DAY0,
    KEY,
    apply,
    apply_all,
    at,
    event,
    loaded,
    normalized,
    rows,
)
from workers import rollups, tasks
from workers.celery_app import make_celery
from workers.days import day_number, pack_bits, unpack_bits

D0 = day_number(DAY0)


def series(settings, metric: str, grain: str = "day") -> tuple[int, list]:  # type: ignore[no-untyped-def]
    (row,) = [
        r
        for r in rows(settings, account_series)
        if (r["metric"], r["grain"])
        == (
            metric,
            grain,
        )
    ]
    return row["start"], row["points"]


# --- Product usage --------------------------------------------------------------------------------


def test_user_active_counts_each_user_once_per_day(settings):
    assert apply(settings, event("user.active", at(0, 10), user_id="u1"))
    assert not apply(settings, event("user.active", at(0, 15), user_id="u1"))
    assert apply(settings, event("user.active", at(0, 16), user_id="u2"))
    assert apply(settings, event("user.active", at(2), user_id="u1"))

    assert series(settings, "dau") == (D0, [2, 0, 1])
    u1, u2 = rows(settings, account_users)
    assert (u1["user_id"], u1["first_seen"], u1["last_active"]) == ("u1", D0, D0 + 2)
    assert (u1["active_from"], unpack_bits(u1["active_bits"])) == (D0, 0b101)
    assert (u2["user_id"], u2["first_seen"], u2["last_active"]) == ("u2", D0, D0)


def test_a_late_user_event_moves_first_seen_back_and_counts_its_own_day(settings):
    apply(settings, event("user.active", at(5), user_id="u1"))
    assert apply(settings, event("user.active", at(1), user_id="u1"))
    assert series(settings, "dau") == (D0 + 1, [1, 0, 0, 0, 1])
    (user,) = rows(settings, account_users)
    assert (user["first_seen"], user["last_active"], user["active_from"]) == (
        D0 + 1,
        D0 + 5,
        D0 + 1,
    )
    assert unpack_bits(user["active_bits"]) == 0b10001


def test_user_traits_newest_wins_and_an_older_event_only_fills_gaps(settings):
    apply(settings, event("user.active", at(3), user_id="u1", department="Finance", title=None))
    apply(settings, event("user.active", at(1), user_id="u1", department="Sales", title="Analyst"))
    (user,) = rows(settings, account_users)
    assert (user["department"], user["title"]) == ("Finance", "Analyst")

    # Same department again later, then a late event between the two: the later one stands.
    apply(settings, event("user.active", at(4), user_id="u1", department="Finance"))
    apply(settings, event("user.active", at(3, 18), user_id="u1", department="Operations"))
    apply(settings, event("user.active", at(5), user_id="u1", email_domain=None))
    (user,) = rows(settings, account_users)
    assert (user["department"], user["title"], user["email_domain"]) == ("Finance", "Analyst", None)


def test_text_longer_than_its_column_is_cut_rather_than_refused(settings):
    title, tier = "Senior Director " * 20, "enterprise-plus-" * 8
    assert apply(settings, event("user.active", at(0), user_id="u1", title=title))
    assert apply(settings, event("teaser.clicked", at(0), feature="sso", tier=tier, user_id="u1"))
    assert rows(settings, account_users)[0]["title"] == title[:255]
    assert rows(settings, account_teaser_clicks)[0]["tier"] == tier[:64]


def test_user_invited_counts_invitations_and_dates_a_named_invitee(settings):
    apply(settings, event("user.invited", at(0), invitee_role="editor", invited_by="u1"))
    apply(settings, event("user.invited", at(0, 13), invitee_role="editor", invited_by="u1"))
    apply(settings, event("user.invited", at(2), invitee_id="u9", invited_by="u1"))
    assert series(settings, "invites") == (D0, [2, 0, 1])
    (invitee,) = rows(settings, account_users)
    assert (invitee["user_id"], invitee["invited_on"], invitee["first_seen"]) == (
        "u9",
        D0 + 2,
        None,
    )
    apply(settings, event("user.active", at(3), user_id="u9"))
    (invitee,) = rows(settings, account_users)
    assert (invitee["invited_on"], invitee["first_seen"]) == (D0 + 2, D0 + 3)


def test_feature_used_keeps_first_and_last_use_per_user(settings):
    use = {"feature": "workflows", "tier": "growth", "category": "automation"}
    apply(settings, event("feature.used", at(4), user_id="u1", **use))
    apply(settings, event("feature.used", at(9), user_id="u2", **use))
    assert apply(settings, event("feature.used", at(2), user_id="u1", **use))
    assert not apply(settings, event("feature.used", at(3), user_id="u1", **use))
    (feature,) = rows(settings, account_features)
    assert feature == {
        "feature": "workflows",
        "tier": "growth",
        "category": "automation",
        "first_used": D0 + 2,
        "last_used": D0 + 9,
        "users": {"u1": [D0 + 2, D0 + 4], "u2": [D0 + 9, D0 + 9]},
    }


def test_teaser_clicks_count_once_per_feature_user_and_day(settings):
    click = {"feature": "sso_saml", "tier": "enterprise", "user_id": "u1"}
    assert apply(settings, event("teaser.clicked", at(1, 9), **click))
    assert not apply(settings, event("teaser.clicked", at(1, 9, 30), **click))
    assert apply(settings, event("teaser.clicked", at(2), **click))
    assert apply(settings, event("teaser.clicked", at(2), feature="sso_saml"))  # anonymous
    assert [(r["day"], r["user_id"]) for r in rows(settings, account_teaser_clicks)] == [
        (D0 + 1, "u1"),
        (D0 + 2, ""),
        (D0 + 2, "u1"),
    ]


def test_an_integration_keeps_the_day_it_was_first_connected(settings):
    apply(settings, event("integration.connected", at(5), integration="slack"))
    assert apply(
        settings, event("integration.connected", at(3), integration="slack", category="messaging")
    )
    assert not apply(settings, event("integration.connected", at(8), integration="slack"))
    assert rows(settings, account_integrations) == [
        {"name": "slack", "category": "messaging", "connected_on": D0 + 3}
    ]


def test_limit_hits_keep_the_days_highest_usage(settings):
    apply(settings, event("limit.hit", at(1, 9), limit="seats", usage=48, cap=50))
    assert apply(settings, event("limit.hit", at(1, 10), limit="seats", usage=50, cap=50))
    assert not apply(settings, event("limit.hit", at(1, 8), limit="seats", usage=49, cap=50))
    apply(settings, event("limit.hit", at(2), limit="api_calls", usage=None, cap=None))
    assert rows(settings, account_limit_hits) == [
        {"limit_name": "api_calls", "day": D0 + 2, "usage": None, "cap": None},
        {"limit_name": "seats", "day": D0 + 1, "usage": 50.0, "cap": 50.0},
    ]


def test_usage_reports_per_day_and_per_month_keep_each_periods_largest_total(settings):
    report = {"metric": "api_calls"}
    apply(settings, event("usage.reported", at(0), value=100, period="day", **report))
    apply(settings, event("usage.reported", at(2), value=300, **report))  # no period: the day
    apply(settings, event("usage.reported", at(2, 8), value=250, period="day", **report))
    apply(settings, event("usage.reported", at(9), value=7, period=DAY0.isoformat(), **report))
    assert series(settings, "usage.api_calls") == (D0, [100.0, None, 300.0])

    apply(settings, event("usage.reported", at(0), metric="storage_gb", value=40, period="2026-01"))
    apply(settings, event("usage.reported", at(1), metric="storage_gb", value=35, period="2026-01"))
    apply(settings, event("usage.reported", at(1), metric="storage_gb", value=42, period="month"))
    start, points = series(settings, "usage.storage_gb", "month")
    assert (start, points) == (2026 * 12 + 0, [40.0, None, 42.0])  # January .. March 2026


def test_nps_responses_are_kept_and_invalid_scores_ignored(settings):
    assert apply(settings, event("nps.response", at(1), score=9, comment="Great", user_id="u1"))
    assert not apply(settings, event("nps.response", at(1), score=11, user_id="u2"))
    assert rows(settings, account_nps) == [
        {"day": D0 + 1, "score": 9, "respondent": "u1", "comment": "Great"}
    ]


# --- Billing --------------------------------------------------------------------------------------


def subscription(when, seats: int, arr: float, key: AccountKey = KEY) -> CanonicalEvent:  # type: ignore[no-untyped-def]
    return event(
        "subscription.changed",
        when,
        key,
        subscription_id="sub_1",
        status="active",
        seats=seats,
        tier="growth",
        currency="usd",
        arr=arr,
        renewal_at="2026-11-16T00:00:00+00:00",
        cancel_at_period_end=False,
    )


def test_the_newest_subscription_wins_and_every_seat_change_is_kept(settings):
    apply(settings, subscription(at(10), seats=50, arr=30000))
    assert apply(settings, subscription(at(4), seats=40, arr=24000))  # late: history only
    (row,) = rows(settings, account_subscriptions)
    assert (row["seats"], row["arr"], row["tier"], row["status"]) == (
        50,
        30000.0,
        "growth",
        "active",
    )
    assert row["renewal_on"] == day_number(DAY0.replace(month=11, day=16))
    assert row["seat_changes"] == [[at(4).timestamp(), 40], [at(10).timestamp(), 50]]
    # A newer event with the same values advances the snapshot's time, so an event older than
    # it but newer than the first one cannot overwrite it.
    assert not apply(settings, subscription(at(12), seats=50, arr=30000))
    apply(settings, subscription(at(11), seats=45, arr=27000))
    (row,) = rows(settings, account_subscriptions)
    assert (row["seats"], row["arr"]) == (50, 30000.0)


def test_invoices_keep_each_outcome_with_its_first_day(settings):
    apply(settings, event("invoice.payment_failed", at(1), invoice_id="in_1", amount=300.0))
    apply(settings, event("invoice.payment_failed", at(3), invoice_id="in_1", amount=300.0))
    apply(settings, event("invoice.paid", at(4), invoice_id="in_1", amount=300.0))
    assert rows(settings, account_invoices) == [
        {"invoice_id": "in_1", "status": "failed", "day": D0 + 1, "amount": 300.0},
        {"invoice_id": "in_1", "status": "paid", "day": D0 + 4, "amount": 300.0},
    ]


# --- Support and relationship ---------------------------------------------------------------------


def test_hubspot_ticket_properties_arriving_one_by_one_build_one_ticket(settings):
    for item in normalized(settings, "hubspot", "ticket.creation.json") + normalized(
        settings, "hubspot", "ticket.propertyChange.json"
    ):
        apply(settings, item)
    (ticket,) = rows(settings, account_tickets)
    created = day_number(at(0).replace(year=2026, month=5, day=5).date())
    assert ticket["ticket_id"] == "33300001"
    assert ticket["subject"] == "Can't add another user - the invite button is grayed out"
    assert ticket["text"].startswith("We hit our seat limit.")
    assert (ticket["priority"], ticket["status"], ticket["closed"]) == ("HIGH", "2", None)
    assert (ticket["created_on"], ticket["status_on"], ticket["last_on"]) == (created,) * 3


def test_a_late_ticket_change_does_not_overwrite_a_newer_one(settings):
    apply(settings, event("ticket.created", at(0), ticket_id="t1", subject="Export limit"))
    apply(settings, event("ticket.changed", at(5), ticket_id="t1", status="Closed", closed=True))
    assert not apply(settings, event("ticket.changed", at(3), ticket_id="t1", status="Working"))
    apply(settings, event("ticket.changed", at(4), ticket_id="t1", priority="High", csat="4"))
    (ticket,) = rows(settings, account_tickets)
    assert (ticket["status"], ticket["closed"], ticket["status_on"]) == ("Closed", True, D0 + 5)
    assert (ticket["priority"], ticket["csat"], ticket["subject"]) == ("High", 4.0, "Export limit")


def test_contact_title_history_is_ordered_by_time_whatever_the_arrival(settings):
    contact = {"contact_id": "c1"}
    apply(settings, event("contact.changed", at(20), title="Director of Finance", **contact))
    apply(
        settings, event("contact.changed", at(0), title="Finance Manager", champion=True, **contact)
    )
    apply(settings, event("contact.changed", at(25), title="Director of Finance", **contact))
    apply(settings, event("contact.changed", at(10), title="Finance Manager", **contact))
    apply(settings, event("contact.changed", at(30), role="Executive Sponsor", **contact))
    (row,) = rows(settings, account_contacts)
    assert row["title"] == "Director of Finance"
    assert [title for _, title in row["title_history"]] == [
        "Finance Manager",
        "Finance Manager",
        "Director of Finance",
        "Director of Finance",
    ]
    assert (row["champion"], row["role"], row["left_company"]) == (True, "Executive Sponsor", None)

    # An older event does not take the current title back.
    assert not apply(settings, event("contact.changed", at(15), title="Finance Manager", **contact))
    (row,) = rows(settings, account_contacts)
    assert row["title"] == "Director of Finance"


def test_crm_fields_keep_the_last_value_of_each_day(settings):
    apply(settings, event("account.changed", at(0, 9), employees=400, name="Acme"))
    assert apply(settings, event("account.changed", at(0, 17), employees=410))
    assert not apply(settings, event("account.changed", at(0, 12), employees=405))
    apply(settings, event("account.changed", at(3), employees=430))
    history = [(r["name"], r["day"], r["value"]) for r in rows(settings, account_crm_history)]
    assert history == [
        ("employees", D0, 410),
        ("employees", D0 + 3, 430),
        ("name", D0, "Acme"),
    ]


# --- What each source sends -----------------------------------------------------------------------

SOURCE_FIXTURES = [
    ("segment", "identify.json", account_users),
    ("segment", "track__feature_used.json", account_features),
    ("segment", "track__upgrade_teaser_clicked.json", account_teaser_clicks),
    ("segment", "track__integration_connected.json", account_integrations),
    ("segment", "track__plan_limit_hit.json", account_limit_hits),
    ("segment", "track__api_calls_reported.json", account_series),
    ("segment", "track__usage_reported.json", account_series),
    ("segment", "track__nps_survey_responded.json", account_nps),
    ("segment", "track__user_invited.json", account_series),
    ("stripe", "customer.subscription.updated.json", account_subscriptions),
    ("stripe", "invoice.paid.json", account_invoices),
    ("stripe", "invoice.payment_failed.json", account_invoices),
    ("chargebee", "subscription_changed.json", account_subscriptions),
    ("chargebee", "payment_failed.json", account_invoices),
    ("hubspot", "ticket.propertyChange.json", account_tickets),
    ("hubspot", "contact.propertyChange.json", account_contacts),
    ("hubspot", "company.propertyChange.json", account_crm_history),
    ("salesforce", "Case.xml", account_tickets),
    ("salesforce", "Contact.xml", account_contacts),
    ("salesforce", "Account.xml", account_crm_history),
]


@pytest.mark.parametrize(("source", "fixture", "table"), SOURCE_FIXTURES)
def test_each_sources_events_land_in_their_table(settings, source, fixture, table: Table):
    items = normalized(settings, source, fixture)
    assert items, f"{source}/{fixture} yields no state event"
    assert all([apply(settings, item) for item in items])
    assert rows(settings, table), f"{source}/{fixture} left {table.name} empty"


IDEMPOTENT = [
    event("user.active", at(1), user_id="u1", department="Finance"),
    event("feature.used", at(1), feature="workflows", tier="growth", user_id="u1"),
    event("teaser.clicked", at(1), feature="sso_saml", user_id="u1"),
    event("integration.connected", at(1), integration="slack", category="messaging"),
    event("limit.hit", at(1), limit="seats", usage=50, cap=50),
    event("usage.reported", at(1), metric="api_calls", value=10, period="day"),
    subscription(at(1), seats=10, arr=1000),
    event("invoice.paid", at(1), invoice_id="in_1", amount=10.0),
    event("invoice.payment_failed", at(1), invoice_id="in_1", amount=10.0),
    event("ticket.changed", at(1), ticket_id="t1", status="New", priority="High"),
    event("contact.changed", at(1), contact_id="c1", title="VP Sales", champion=True),
    event("account.changed", at(1), employees=10),
]


@pytest.mark.parametrize("item", IDEMPOTENT, ids=lambda item: item.type)
def test_the_same_state_arriving_twice_changes_nothing(settings, item: CanonicalEvent):
    assert apply(settings, item)
    tables = [table for _, _, table in SOURCE_FIXTURES]
    before = {t.name: rows(settings, t) for t in tables}
    assert not apply(settings, dataclasses.replace(item))
    assert {t.name: rows(settings, t) for t in tables} == before


def mixed_history(key: AccountKey) -> list[CanonicalEvent]:
    """Two weeks of one account: users, features, billing, support and CRM changes."""
    items: list[CanonicalEvent] = []
    for day in range(14):
        for user in ("u1", "u2", "u3")[: 1 + day % 3]:
            items.append(event("user.active", at(day, 9 + day % 5), key, user_id=user))
        items.append(event("feature.used", at(day, 10), key, feature="workflows", user_id="u1"))
        items.append(event("usage.reported", at(day, 23), key, metric="api_calls", value=100 * day))
    items += [
        event("user.active", at(2), key, user_id="u2", department="Ops", title="Analyst"),
        event("user.active", at(6), key, user_id="u2", department="Finance"),
        event("teaser.clicked", at(3), key, feature="sso_saml", user_id="u2"),
        event("integration.connected", at(4), key, integration="slack", category="messaging"),
        event("limit.hit", at(5), key, limit="seats", usage=9, cap=10),
        event("limit.hit", at(5, 15), key, limit="seats", usage=10, cap=10),
        event("nps.response", at(6), key, score=10, user_id="u1"),
        subscription(at(0), seats=10, arr=1200, key=key),
        subscription(at(8), seats=12, arr=1440, key=key),
        event("invoice.payment_failed", at(8), key, invoice_id="in_2", amount=240.0),
        event("invoice.paid", at(9), key, invoice_id="in_2", amount=240.0),
        event("ticket.created", at(7), key, ticket_id="t1", subject="Limit", priority="High"),
        event("ticket.changed", at(9), key, ticket_id="t1", status="Closed", closed=True),
        event("contact.changed", at(1), key, contact_id="c1", title="Manager", champion=True),
        event("contact.changed", at(11), key, contact_id="c1", title="Director"),
        event("account.changed", at(1), key, employees=100, csm_sentiment="neutral"),
        event("account.changed", at(12), key, employees=120, csm_sentiment="positive"),
    ]
    return items


def test_the_order_events_arrive_in_does_not_change_the_state(settings):
    today = at(14).date()
    reference_key = AccountKey("hubspot", "in-order")
    for item in mixed_history(reference_key):
        apply(settings, item)
    reference = dataclasses.replace(loaded(settings, today, reference_key), account_id=0)
    for seed in (1, 2, 3):
        key = AccountKey("hubspot", f"shuffled-{seed}")
        items = mixed_history(key)
        random.Random(seed).shuffle(items)
        apply_all(settings, items)
        shuffled = dataclasses.replace(loaded(settings, today, key), account_id=0)
        assert shuffled == reference, f"seed {seed}"


def test_concurrent_events_of_one_account_neither_collide_nor_lose_counts(settings):
    apply(settings, event("account.changed", at(0), name="Acme"))  # the account exists
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for user in [*(f"u{n}-{i}" for i in range(4)), "shared"]:
                apply(settings, event("user.active", at(1, 9, n), user_id=user))
            apply(
                settings, event("feature.used", at(1, 10, n), feature="workflows", user_id=f"u{n}")
            )
        except BaseException as exc:  # reported below, with the thread's own traceback lost
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert series(settings, "dau") == (D0 + 1, [25])
    assert len(rows(settings, account_users)) == 25
    (feature,) = rows(settings, account_features)
    assert sorted(feature["users"]) == [f"u{n}" for n in range(6)]


def test_apply_says_whether_anything_the_scores_read_changed(settings):
    assert apply(settings, event("account.changed", at(0), csm_sentiment="positive"))
    assert not apply(settings, event("account.changed", at(1), csm_sentiment="positive"))
    assert not apply(settings, event("task.changed", at(1), task_id="t1", status="COMPLETED"))
    assert apply(settings, event("user.active", at(1), user_id="u1"))
    assert not apply(settings, event("user.active", at(1, 13), user_id="u1"))


# --- Retention ------------------------------------------------------------------------------------


def test_pruning_drops_what_is_older_than_the_retention_window(settings):
    short = dataclasses.replace(settings, state_retention_days=30)
    today = at(59).date()
    cutoff = day_number(today) - 29  # the first day kept: day 30
    for day in (0, 10, 35, 50):
        apply(settings, event("user.active", at(day), user_id="u1"))
    apply(settings, event("user.active", at(5), user_id="gone"))
    apply(settings, event("usage.reported", at(1), metric="api_calls", value=5, period="2026-01"))
    apply(settings, event("usage.reported", at(40), metric="api_calls", value=9, period="day"))
    apply(settings, event("feature.used", at(2), feature="workflows", user_id="gone"))
    apply(settings, event("feature.used", at(3), feature="alerts", user_id="gone"))
    apply(settings, event("feature.used", at(45), feature="alerts", user_id="u1"))
    for day in (1, 40):
        apply(settings, event("teaser.clicked", at(day), feature="sso_saml", user_id="u1"))
        apply(settings, event("limit.hit", at(day), limit="seats", usage=10, cap=10))
        apply(settings, event("nps.response", at(day), score=8, user_id="u1"))
        apply(settings, event("invoice.paid", at(day), invoice_id=f"in_{day}", amount=1.0))
        apply(settings, event("ticket.changed", at(day), ticket_id=f"t{day}", status="New"))
    for day, employees in ((0, 100), (10, 110), (40, 130)):
        apply(settings, event("account.changed", at(day), employees=employees))
        apply(settings, subscription(at(day), seats=employees // 10, arr=1.0))
        apply(settings, event("contact.changed", at(day), contact_id="c1", title=f"T{day}"))

    counts = rollups.prune(short, today)

    assert counts["account_users"] == 2  # "gone" deleted, u1's active days shifted
    (user,) = rows(settings, account_users)
    assert (user["user_id"], user["active_from"]) == ("u1", cutoff)
    assert unpack_bits(user["active_bits"]) == 1 << 5 | 1 << 20  # days 35 and 50
    assert user["first_seen"] == D0  # a fact, not history
    assert [(r["metric"], r["grain"], r["start"]) for r in rows(settings, account_series)] == [
        ("dau", "day", cutoff),
        ("usage.api_calls", "day", D0 + 40),
    ]
    (feature,) = rows(settings, account_features)
    assert (feature["feature"], feature["users"]) == ("alerts", {"u1": [D0 + 45, D0 + 45]})
    for table in (account_teaser_clicks, account_limit_hits, account_nps, account_invoices):
        assert [r["day"] for r in rows(settings, table)] == [D0 + 40], table.name
    assert [r["ticket_id"] for r in rows(settings, account_tickets)] == ["t40"]
    # Values from before the window keep the one in force at its start (the trend's baseline).
    assert [(r["day"], r["value"]) for r in rows(settings, account_crm_history)] == [
        (D0 + 10, 110),
        (D0 + 40, 130),
    ]
    (sub,) = rows(settings, account_subscriptions)
    assert [seats for _, seats in sub["seat_changes"]] == [11, 13]
    (contact,) = rows(settings, account_contacts)
    assert [title for _, title in contact["title_history"]] == ["T10", "T40"]

    assert rollups.prune(short, today) == {}  # nothing left to prune


def test_retention_is_configured_from_the_environment_and_pruned_daily_by_beat(settings):
    assert Settings.from_env({}).state_retention_days == 400
    assert Settings.from_env({"STATE_RETENTION_DAYS": "90"}).state_retention_days == 90
    entry = make_celery(settings).conf.beat_schedule["prune-state"]
    assert entry["task"] == tasks.prune_state.name == "workers.tasks.prune_state"
    assert entry["schedule"] == crontab(hour=3, minute=17)


def test_pruning_refuses_a_retention_below_one_day(settings):
    with pytest.raises(ValueError, match="STATE_RETENTION_DAYS must be at least 1"):
        rollups.prune(dataclasses.replace(settings, state_retention_days=0), DAY0)


def test_bitmaps_pack_and_unpack():
    assert unpack_bits(pack_bits(0)) == 0
    assert unpack_bits(pack_bits(1 << 399 | 5)) == 1 << 399 | 5
    assert unpack_bits(None) == 0


# --- Schema ---------------------------------------------------------------------------------------


def test_the_migrations_create_exactly_the_tables_of_the_models(settings):
    with get_engine(settings).connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_large_json_values_are_compressed_with_lz4_on_postgresql(settings):
    engine = get_engine(settings)
    if engine.dialect.name != "postgresql":
        pytest.skip("column compression is PostgreSQL's")
    with engine.connect() as conn:
        methods = conn.execute(
            text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
        ).scalar()
        if "lz4" not in methods:
            pytest.skip("this PostgreSQL server is built without lz4")
        compressed = conn.execute(
            text(
                "SELECT attrelid::regclass::text || '.' || attname FROM pg_attribute"
                " WHERE attcompression = 'l' AND attnum > 0 AND NOT attisdropped"
            )
        ).scalars()
        assert sorted(compressed) == [
            "account_scores.evidence",
            "outbox.payload",
            "play_instances.evidence",
            "play_instances.plan",
        ]
