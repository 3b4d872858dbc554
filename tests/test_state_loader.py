"""Loading account state: events in, the exact AccountState out; many accounts at once equal
each loaded alone, with a fixed number of statements (on PostgreSQL in one round trip), and
with the versions they were loaded at; the plan catalog and the state rules."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import Connection, select
from sqlalchemy import text as sql_text

from expansion.db import transaction
from expansion.mappings import MappingError
from expansion.models import accounts
from integration.canonical import AccountKey
from integration.sources.chargebee import mapping as chargebee_mapping
from integration.sources.stripe import mapping as stripe_mapping
from tests.state_support import DAY0, KEY, account_id, apply_all, at, event, loaded
from tests.support import ROOT
from tests.test_rollups import mixed_history, subscription
from workers.account_state import (
    AccountState,
    Contact,
    DailySeries,
    FeatureUse,
    Integration,
    Invoice,
    LimitHit,
    NpsResponse,
    Subscription,
    TeaserClick,
    Ticket,
    User,
)
from workers.days import DaySet
from workers.plans import plans
from workers.state_loader import (
    LoadConfig,
    StateRules,
    TicketRules,
    _utc_day,
    load_state,
    load_states,
    load_versioned_states,
    state_rules,
)
from workers.state_reads import PARTS, crm_value

TODAY = DAY0 + timedelta(days=20)


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def history() -> list:  # type: ignore[type-arg]
    """Three weeks of one account from every kind of source."""
    finance = {"email_domain": "acme.example", "department": "Finance", "title": "Analyst"}
    return [
        event(
            "account.changed",
            at(0),
            name="Acme",
            employees=400,
            csm_sentiment="positive",
            last_meaningful_interaction_at="2026-03-10T15:00:00+00:00",
        ),
        event("account.changed", at(10), employees=420),
        subscription(at(0), seats=10, arr=12000),
        subscription(at(12), seats=12, arr=14400),
        event("user.active", at(0), user_id="u1", **finance),
        event("user.active", at(1), user_id="u1"),
        event("user.active", at(5), user_id="u1"),
        event("user.active", at(5), user_id="u2", email_domain="partner.example", department="Ops"),
        event("user.active", at(19), user_id="u2"),
        event(
            "feature.used",
            at(5),
            feature="workflows",
            tier="growth",
            category="automation",
            user_id="u2",
        ),
        event(
            "feature.used", at(1), feature="advanced_reports", category="analytics", user_id="u1"
        ),
        event("teaser.clicked", at(3), feature="sso_saml", user_id="u1"),
        event("integration.connected", at(4), integration="slack", category="messaging"),
        event("limit.hit", at(6), limit="seats", usage=10, cap=10),
        event("usage.reported", at(18), metric="api_calls", value=1000, period="day"),
        event("usage.reported", at(19), metric="api_calls", value=1500, period="day"),
        event("usage.reported", at(1), metric="storage_gb", value=30, period="2026-02"),
        event("user.invited", at(2), invitee_role="editor", invited_by="u1"),
        event("nps.response", at(7), score=9, comment="Saves hours", user_id="u1"),
        event("invoice.payment_failed", at(8), invoice_id="in_1", amount=1200.0),
        event("invoice.paid", at(9), invoice_id="in_1", amount=1200.0),
        event(
            "ticket.created",
            at(3),
            ticket_id="t1",
            subject="Can't add another user",
            text="The invite button is grayed out",
            priority="URGENT",
        ),
        event("ticket.changed", at(6), ticket_id="t1", status="4"),
        event(
            "ticket.created",
            at(15),
            ticket_id="t2",
            subject="Export",
            priority="Low",
            status="Waiting on contact",
            csat=4,
        ),
        event("contact.changed", at(0), contact_id="c1", title="Finance Manager", champion=True),
        event(
            "contact.changed",
            at(14),
            contact_id="c1",
            title="Director of Finance",
            last_engaged_at="2026-03-18T10:00:00Z",
        ),
        event(
            "contact.changed", at(2), contact_id="c2", title="CFO", role="Economic Buyer;Champion"
        ),
        event("contact.changed", at(9), contact_id="c2", left_company=True),
    ]


def test_events_in_state_out_with_exact_values(settings):
    apply_all(settings, history())
    state = loaded(settings, TODAY)
    growth = plans(settings).tier("growth")
    assert growth is not None
    expected = AccountState(
        account_id=account_id(settings),
        today=TODAY,
        name="Acme",
        subscription=Subscription(
            tier="growth",
            seats=12,
            arr=14400.0,
            renewal_on=date(2026, 11, 16),
            status="active",
            limits={metric: limit.cap for metric, limit in growth.limits.items()},
            limit_periods={metric: limit.period for metric, limit in growth.limits.items()},
        ),
        daily_active_users=DailySeries(day(0), (1, 1, 0, 0, 0, 2, *[0] * 13, 1, 0)),
        licensed_seats=DailySeries(day(0), (10,) * 12 + (12,) * 9),
        api_calls=DailySeries(day(18), (1000.0, 1500.0)),
        usage={"api_calls": DailySeries(day(18), (1000.0, 1500.0))},
        usage_by_month={"storage_gb": {"2026-02": 30.0}},
        invites=DailySeries(day(2), (1,) + (0,) * 18),
        users=(
            User(
                "u1",
                day(0),
                day(5),
                frozenset({day(0), day(1), day(5)}),
                "acme.example",
                "Finance",
                "Analyst",
                advanced_since=day(1),
            ),
            User(
                "u2",
                day(5),
                day(19),
                frozenset({day(5), day(19)}),
                "partner.example",
                "Ops",
                advanced_since=day(5),
            ),
        ),
        features=(
            FeatureUse("advanced_reports", "scale", "analytics", day(1), day(1), {"u1": day(1)}),
            FeatureUse("workflows", "growth", "automation", day(5), day(5), {"u2": day(5)}),
        ),
        integrations=(Integration("slack", "messaging", day(4)),),
        teaser_clicks=(TeaserClick("sso_saml", "enterprise", day(3), "u1"),),
        limit_hits=(LimitHit("seats", day(6), 10.0, 10.0),),
        tickets=(
            Ticket(
                "t1",
                day(3),
                "Can't add another user",
                "The invite button is grayed out",
                "p1",
                "closed",
                None,
                day(6),
            ),
            Ticket("t2", day(15), "Export", "", "p4", "pending", 4.0, None),
        ),
        contacts=(
            Contact(
                "c1",
                "Director of Finance",
                ((day(0), "Finance Manager"), (day(14), "Director of Finance")),
                champion=True,
                last_engaged_on=day(16),
            ),
            Contact(
                "c2", "CFO", ((day(2), "CFO"),), champion=True, left_company=True, exec_sponsor=True
            ),
        ),
        nps=(NpsResponse(9, day(7), "u1"),),
        invoices=(
            Invoice("in_1", day(8), "failed", 1200.0),
            Invoice("in_1", day(9), "paid", 1200.0),
        ),
        crm={
            "name": "Acme",
            "employees": 420,
            "csm_sentiment": "positive",
            "last_meaningful_interaction_at": "2026-03-10T15:00:00+00:00",
            "last_meaningful_interaction_on": date(2026, 3, 10),
        },
        crm_history={"employees": ((day(0), 400), (day(10), 420))},
    )
    for name in (f.name for f in dataclasses.fields(AccountState)):
        assert getattr(state, name) == getattr(expected, name), name
    assert state.active_seats(TODAY, days=7) == 1
    assert state.active_seats(day(5), days=1) == 2


@contextmanager
def statements_sent(conn: Connection) -> Iterator[list[str]]:
    """The statements the loader sends through the driver; on PostgreSQL only those sent in
    pipeline mode, where all of a batch's statements take one round trip."""
    driver = conn.connection.driver_connection
    sent: list[str] = []
    if isinstance(driver, sqlite3.Connection):
        driver.set_trace_callback(sent.append)
        try:
            yield sent
        finally:
            driver.set_trace_callback(None)
        return
    assert isinstance(driver, psycopg.Connection)
    plain = driver.cursor_factory

    class Recording(plain):  # type: ignore[valid-type,misc]
        def execute(self, query, params=None, **options):  # type: ignore[no-untyped-def]
            if self.connection.pgconn.pipeline_status == pq.PipelineStatus.ON:
                sent.append(query)
            return super().execute(query, params, **options)

    driver.cursor_factory = Recording
    try:
        yield sent
    finally:
        driver.cursor_factory = plain


def many_accounts(settings) -> list[int]:  # type: ignore[no-untyped-def]
    """Five accounts: three with different histories, a quiet one, and KEY's history()."""
    keys = [AccountKey("hubspot", f"bulk-{n}") for n in range(4)]
    for n, key in enumerate(keys[:3]):
        apply_all(settings, mixed_history(key)[n * 7 :])
    apply_all(settings, [event("account.changed", at(0), keys[3], name="Quiet Co")])
    apply_all(settings, history())
    return [account_id(settings, key) for key in [*keys, KEY]]


def test_loading_many_accounts_equals_loading_each_with_a_fixed_number_of_statements(settings):
    ids = many_accounts(settings)
    config = LoadConfig.from_settings(settings)
    today = at(14).date()
    with transaction(settings) as conn:
        with statements_sent(conn) as for_many:
            bulk = load_states(conn, ids, today, config)
        with statements_sent(conn) as for_one:
            single = load_state(conn, ids[0], today, config)
        singles = [single] + [load_state(conn, one, today, config) for one in ids[1:]]
    assert bulk == singles
    assert [state.account_id for state in bulk] == ids
    assert bulk[3].name == "Quiet Co" and bulk[3].users == ()
    # The accounts' names and versions, then one statement per part of the state.
    reads = [[sql for sql in sent if "set_config" not in sql] for sent in (for_many, for_one)]
    assert len(reads[0]) == len(reads[1]) == 1 + len(PARTS)


def test_the_state_reads_plan_generically_and_leave_the_transaction_as_it_was(settings):
    if not settings.effective_database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's plan cache")
    ids = many_accounts(settings)
    config = LoadConfig.from_settings(settings)
    prepared = sql_text(
        "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements"
        " WHERE statement NOT LIKE '%set_config%'"
    )
    with transaction(settings) as conn:
        conn.execute(sql_text("SET LOCAL plan_cache_mode = force_custom_plan"))
        before = {name: (generic, custom) for name, generic, custom in conn.execute(prepared)}
        for _ in range(2):
            load_states(conn, ids, at(14).date(), config)
        assert conn.execute(sql_text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
        after = {name: (generic, custom) for name, generic, custom in conn.execute(prepared)}
    planned = {
        name: (generic - before.get(name, (0, 0))[0], custom - before.get(name, (0, 0))[1])
        for name, (generic, custom) in after.items()
        if (generic, custom) != before.get(name)
    }
    # Each read of the state planned generically on both loads, the statement's own plan mode
    # back in force afterwards.
    assert sorted(planned.values()) == [(2, 0)] * (1 + len(PARTS))


def test_versioned_states_are_the_states_with_their_current_versions(settings):
    ids = many_accounts(settings)
    config = LoadConfig.from_settings(settings)
    today = at(14).date()
    apply_all(settings, [event("account.changed", at(13), name="Acme Inc")])  # KEY, again

    def versions() -> dict[int, int]:
        with transaction(settings) as conn:
            return dict(conn.execute(select(accounts.c.id, accounts.c.state_version)).all())

    before = versions()
    with transaction(settings) as conn:
        loaded = load_versioned_states(conn, [ids[4], 999_999, *ids, ids[0]], today, config)
        plain = [load_state(conn, one, today, config) for one in [ids[4], *ids[:4]]]
    assert loaded == [(before[state.account_id], state) for state in plain]
    assert loaded[0][1].name == "Acme Inc"
    apply_all(settings, [event("account.changed", at(14), name="Acme Corp")])
    with transaction(settings) as conn:
        ((version, state),) = load_versioned_states(conn, [ids[4]], today, config)
    assert version == versions()[ids[4]] > before[ids[4]]
    assert state.name == "Acme Corp"


def test_crm_numbers_come_back_as_stored(settings):
    """CRM values are read with Python's json: an integer beyond 64 bits stays exact (SQLite's
    numeric column affinity stores it as a float itself)."""
    big = 2**70 + 1
    apply_all(settings, [event("account.changed", at(0), name="Big", employees=big, score=0.1)])
    state = loaded(settings, TODAY)
    stored = big if settings.effective_database_url.startswith("postgresql") else float(big)
    assert (state.crm["employees"], type(state.crm["employees"])) == (stored, type(stored))
    assert state.crm_history["employees"] == ((day(0), stored),)
    assert state.crm["score"] == 0.1


def test_load_states_keeps_the_order_asked_and_skips_unknown_accounts(settings):
    apply_all(settings, mixed_history(KEY))
    other = AccountKey("hubspot", "other")
    apply_all(settings, [event("user.active", at(1), other, user_id="x")])
    first, second = account_id(settings, KEY), account_id(settings, other)
    with transaction(settings) as conn:
        states = load_states(conn, [second, 999_999, first, second], TODAY)
        assert [s.account_id for s in states] == [second, first]
        with pytest.raises(LookupError, match="no account 999999"):
            load_state(conn, 999_999, TODAY)


def test_daily_series_are_bounded_by_the_history_window(settings):
    apply_all(settings, history())
    config = dataclasses.replace(LoadConfig.from_settings(settings), history_days=10)
    found = account_id(settings)
    with transaction(settings) as conn:
        state = load_state(conn, found, TODAY, config)
    assert state.daily_active_users == DailySeries(day(11), (0,) * 8 + (1, 0))
    assert state.licensed_seats == DailySeries(day(11), (10,) + (12,) * 9)
    assert state.invites == DailySeries(day(11), (0,) * 10)
    assert state.api_calls == DailySeries(day(18), (1000.0, 1500.0))


def test_tickets_and_contacts_are_read_through_the_state_rules(settings):
    apply_all(
        settings,
        [
            event("ticket.created", at(0), ticket_id="t1", priority="Sev-A", status="Triage"),
            event("ticket.created", at(1), ticket_id="t2", priority="High", status="Resolved"),
            event("contact.changed", at(0), contact_id="c1", role="Sponsor"),
        ],
    )
    base, found = LoadConfig.from_settings(settings), account_id(settings)
    with transaction(settings) as conn:
        shipped = load_state(conn, found, TODAY, base)
        custom = load_state(
            conn,
            found,
            TODAY,
            dataclasses.replace(
                base,
                rules=StateRules.model_validate(
                    {
                        "tickets": {
                            "priorities": {"p1": ["sev-a"]},
                            "pending_statuses": ["triage"],
                        },
                        "contacts": {"exec_sponsor_roles": ["sponsor"]},
                    }
                ),
            ),
        )
    assert [(t.priority, t.status) for t in shipped.tickets] == [(None, "open"), ("p2", "closed")]
    assert [(t.priority, t.status) for t in custom.tickets] == [("p1", "pending"), (None, "open")]
    assert (shipped.contacts[0].exec_sponsor, custom.contacts[0].exec_sponsor) == (False, True)


# --- Plan catalog and state rules -----------------------------------------------------------------


def test_the_plan_catalog_orders_tiers_and_knows_their_features(settings):
    catalog = plans(settings)
    assert catalog.order == ("starter", "growth", "scale", "enterprise")
    assert catalog.rank("scale") == 2 and catalog.rank("legacy") is None
    assert catalog.next_tier("growth").name == "scale"  # type: ignore[union-attr]
    assert catalog.next_tier("enterprise") is None
    assert catalog.tier_of_feature("sso_saml") == "enterprise"
    assert "dashboards" in catalog.features_included("growth")
    assert "advanced_reports" not in catalog.features_included("growth")
    assert catalog.is_above("scale", "growth") and not catalog.is_above("growth", "growth")
    limit = catalog.tier("growth").limits["api_calls"]  # type: ignore[union-attr]
    assert (limit.cap, limit.period) == (1_000_000, "month")


def test_every_tier_the_billing_sources_name_is_in_the_plan_catalog(settings):
    named = set(stripe_mapping(settings).tiers.values()) | set(
        chargebee_mapping(settings).tiers.values()
    )
    assert named <= set(plans(settings).order)


def test_a_broken_plan_catalog_is_reported_with_file_and_key_path(settings, tmp_path: Path):
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    path = tmp_path / "mappings" / "plans.yaml"
    path.write_text(
        "tiers:\n"
        "  - name: starter\n    limits: {api_calls: {cap: -1, period: week}}\n"
        "  - name: starter\n    seats: 5\n"
    )
    edited = dataclasses.replace(settings, mappings_dir=tmp_path / "mappings")
    with pytest.raises(MappingError) as caught:
        plans(edited)
    message = str(caught.value)
    assert str(path) in message
    assert "tiers[0].limits.api_calls.cap: Input should be greater than 0" in message
    assert "tiers[0].limits.api_calls.period: Input should be 'day', 'month' or 'total'" in message
    assert "tiers[1].seats: Extra inputs are not permitted" in message


def test_duplicate_tiers_or_features_are_refused(settings, tmp_path: Path):
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    path = tmp_path / "mappings" / "plans.yaml"
    edited = dataclasses.replace(settings, mappings_dir=tmp_path / "mappings")
    path.write_text(
        "tiers:\n  - {name: growth, features: [sso]}\n  - {name: scale, features: [sso]}\n"
    )
    with pytest.raises(MappingError, match=r"features \['sso'\] are listed under more than one"):
        plans(edited)


def test_the_shipped_state_rules_load_and_a_typo_is_refused(settings, tmp_path: Path):
    rules = state_rules(settings)
    assert "champion" in rules.contacts.champion_roles
    assert rules.crm.history_fields[:2] == ["employees", "department_headcount"]
    with pytest.raises(ValueError, match="Input should be 'p1', 'p2', 'p3' or 'p4'"):
        TicketRules.model_validate({"priorities": {"p0": ["blocker"]}})


# --- Day sets -------------------------------------------------------------------------------------


def test_a_day_set_behaves_like_a_set_of_dates():
    days = [day(3), day(0), day(40), day(3)]
    packed, plain = DaySet.of(days), frozenset(days)
    assert packed == plain and plain == packed and hash(packed) == hash(plain)
    assert list(packed) == sorted(plain) and len(packed) == 3
    assert day(40) in packed and day(1) not in packed and day(-1) not in packed
    assert packed.count_between(day(-5), day(3)) == 2
    assert packed.count_between(day(4), day(39)) == 0
    assert packed.count_between(day(9), day(2)) == 0
    assert packed.last == day(40) and DaySet().last is None and len(DaySet()) == 0
    for first, last in ((day(1), day(2)), (day(1), day(3)), (day(30), day(60))):
        fast = User("u", day(0), None, packed).active_between(first, last)
        assert fast == User("u", day(0), None, plain).active_between(first, last)


def test_crm_values_decode_as_json_loads_does():
    texts = ['"Acme"', '"caf\\u00e9"', "12", "1e400", "NaN", str(2**70 + 1), '{"a": [1, 2.5]}']
    for text in [*texts, " 12", "12 ", '"a" "b"', "\ufeff1"]:
        try:
            expected: object = json.loads(text)
        except json.JSONDecodeError as error:
            with pytest.raises(json.JSONDecodeError, match=re.escape(str(error))):
                crm_value(text)
        else:
            assert repr(crm_value(text)) == repr(expected)
    assert crm_value(7) == 7 and crm_value(None) is None


def test_a_title_change_is_dated_on_its_utc_day():
    midnight = 20_000 * 86_400
    for at_ in (midnight, float(midnight), midnight - 1.0, midnight - 2.5e-7, midnight + 0.5, -1.0):
        assert _utc_day(at_) == datetime.fromtimestamp(at_, UTC).date()
