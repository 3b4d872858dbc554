"""Every expansion signal of SPEC §4.1 at, just below and just above its threshold on realistic
120-day account histories (tests/signal_books.py), with the exact evidence sentence; strengths
stay within 0..1 and never fall as the evidence grows (hypothesis); missing data never fires or
crashes; the shipped rules load and a broken rules file names the file and the key path."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from expansion.mappings import MappingError, load_model
from tests.signal_books import (
    CORE_CATEGORIES,
    TODAY,
    ago,
    api_growth_book,
    base_account,
    breadth_book,
    champion_book,
    convergence_book,
    cross_sell_book,
    feature_use,
    integration_book,
    invite_book,
    monthly_usage_book,
    near_cap_book,
    org_book,
    power_user_book,
    seat_book,
    secondary_team_book,
    shipped_rules,
    teaser_book,
    ticket_book,
    velocity_book,
)
from tests.support import ROOT
from workers.account_state import (
    AccountState,
    Contact,
    DailySeries,
    FeatureUse,
    Integration,
    LimitHit,
    NpsResponse,
    Subscription,
    TeaserClick,
    Ticket,
    User,
)
from workers.evidence import CATEGORIES, Signal
from workers.plans import Plans
from workers.score_rules import SIGNAL_NAMES
from workers.signal_rules import SignalConfig, SignalRules, Signals, signal_rules
from workers.signals import CATEGORY, SIGNALS, evaluate

RULES = shipped_rules()


def fire(name: str, state: AccountState, rules: SignalRules = RULES) -> Signal | None:
    return SIGNALS[name](state, rules)


def strength(name: str, state: AccountState, rules: SignalRules = RULES) -> float:
    found = fire(name, state, rules)
    return found.strength if found else 0.0


def check_threshold(
    name: str,
    below: AccountState,
    at: AccountState,
    above: AccountState,
    evidence: str,
    stronger: bool = True,
) -> tuple[Signal, Signal]:
    """Not fired just below, fired at and above (stronger above), with the exact evidence at
    the threshold, and the same signal among everything `evaluate` finds."""
    assert fire(name, below) is None
    at_signal, above_signal = fire(name, at), fire(name, above)
    assert at_signal is not None and above_signal is not None
    assert at_signal.evidence == evidence
    assert at_signal.category == CATEGORY[name]
    if stronger:
        assert 0 < at_signal.strength < above_signal.strength <= 1
    else:
        assert 0 < at_signal.strength <= above_signal.strength <= 1
    assert at_signal in evaluate(at, RULES)
    return at_signal, above_signal


# --- the book, the rules, the dispatch ------------------------------------------------------


def test_a_quiet_account_fires_nothing():
    assert evaluate(base_account(), RULES) == []


def test_an_account_without_any_data_fires_nothing():
    assert evaluate(AccountState(account_id=1, today=TODAY), RULES) == []


def test_every_signal_of_the_spec_is_dispatched_configured_and_categorized():
    assert set(SIGNALS) == SIGNAL_NAMES == set(CATEGORY) == set(Signals.model_fields)
    assert set(CATEGORY.values()) <= set(CATEGORIES)
    assert CATEGORY["usage_near_cap"] == CATEGORY["org_growth"] == "commercial"
    assert CATEGORY["plan_limit_ticket"] == "support"
    assert CATEGORY["champion_promotion"] == CATEGORY["positive_convergence"] == "relationship"


def test_the_shipped_rules_load(settings):
    rules = signal_rules(settings)
    assert rules.plans.order == ("starter", "growth", "scale", "enterprise")
    assert rules.next_tier("growth") == "scale"
    assert rules.next_tier("enterprise") is None
    assert rules.next_tier("legacy") is None
    assert "sso_scim" in rules.features_above("growth")
    assert "sso_scim" not in rules.features_above("scale")
    assert "single sign-on" in rules.feature_phrases(("sso_scim",))
    assert signal_rules(settings) is rules  # joined once until a file changes


def test_the_catalog_lookup_tables_are_no_part_of_the_catalog(settings):
    catalog = signal_rules(settings).plans
    assert catalog.rank("scale") == 2 and catalog.tier_of_feature("sso_saml") == "enterprise"
    fresh = Plans.model_validate(catalog.model_dump())  # its tables not made yet
    assert catalog == fresh and set(catalog.model_dump()) == {"tiers"}


def test_active_seats_are_remembered_per_day_and_window():
    state = seat_book(active_now=40, active_60_days_ago=20, active_30_days_ago=30)
    counts = [(state.active_seats(TODAY - timedelta(days=d), 30), d) for d in (0, 30, 60, 0)]
    assert counts == [(40, 0), (30, 30), (20, 60), (40, 0)]
    assert state.active_seats(TODAY, 1) <= state.active_seats(TODAY, 7) <= 40


def test_a_broken_rules_file_names_file_and_key_paths(tmp_path: Path):
    raw = yaml.safe_load((ROOT / "mappings/signals.yaml").read_text())
    raw["signals"]["seat_utilization"]["threshold"] = 1.5
    raw["signals"]["api_volume_growth"]["strength"] = [[6, 1.0], [3, 0.5]]
    raw["signals"]["plan_limit_ticket"]["patterns"] = ["export (more"]
    raw["signals"]["champion_promotion"]["strength_by_level"] = {"director": 0.7}
    raw["signals"]["org_growth"]["typo_key"] = 1
    del raw["signals"]["invite_velocity"]["window_days"]
    path = tmp_path / "signals.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(MappingError) as caught:
        load_model(path, SignalConfig)
    message = str(caught.value)
    assert str(path) in message
    assert "6 problem(s)" in message
    assert "signals.seat_utilization.threshold: Input should be less than or equal to 1" in message
    assert "signals.api_volume_growth.strength: Value error, strength curve inputs" in message
    assert "signals.plan_limit_ticket.patterns: Value error, 'export (more' is not a valid" in (
        message
    )
    assert "signals.champion_promotion: Value error, strength_by_level needs a strength for" in (
        message
    )
    assert "signals.org_growth.typo_key: Extra inputs are not permitted" in message
    assert "signals.invite_velocity.window_days: required key is missing" in message


def test_an_alias_of_a_feature_no_tier_has_is_named(settings, tmp_path: Path):
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    path = tmp_path / "mappings/signals.yaml"
    path.write_text(path.read_text().replace("  sandbox: [", "  sandbox_plus: ["))
    edited = dataclasses.replace(settings, mappings_dir=tmp_path / "mappings")
    with pytest.raises(MappingError) as caught:
        signal_rules(edited)
    assert str(path) in str(caught.value)
    assert "feature_aliases.sandbox_plus: not a feature of any tier in mappings/plans.yaml" in (
        str(caught.value)
    )


def test_a_disabled_signal_does_not_fire():
    book = seat_book(43, 50, 31, 37)
    assert [s.name for s in evaluate(book, RULES)] == ["seat_utilization"]
    assert evaluate(book, with_rule("seat_utilization", enabled=False)) == []


def with_rule(name: str, **changes: object) -> SignalRules:
    rule = getattr(RULES.signals, name).model_copy(update=changes)
    signals = RULES.signals.model_copy(update={name: rule})
    return replace(RULES, config=RULES.config.model_copy(update={"signals": signals}))


# --- seat_utilization -------------------------------------------------------------------------


def test_seat_utilization_threshold():
    at, _ = check_threshold(
        "seat_utilization",
        below=seat_book(39, 50, 34, 37),
        at=seat_book(40, 50, 34, 37),
        above=seat_book(41, 50, 34, 37),
        evidence="40 of 50 seats active (80%), up from 34 (68%) 60 days ago; at this pace the "
        "cap is reached around 2026-08-23",
    )
    assert at.facts["cap_reached_on"] == "2026-08-23"
    assert at.facts["rise_points"] == 12.0


def test_seat_utilization_the_spec_example_with_its_rise_bonus():
    found = fire("seat_utilization", seat_book(43, 50, 31, 37))
    assert found is not None
    # 43 -> 50 at (43 - 37) / 30 = 0.2 seats a day: 35 days.
    assert found.evidence == (
        "43 of 50 seats active (86%), up from 31 (62%) 60 days ago; at this pace the cap is "
        "reached around 2026-06-19"
    )
    without_rise = fire("seat_utilization", seat_book(43, 50, 40, 41))
    assert without_rise is not None
    assert found.strength == pytest.approx(without_rise.strength + 0.1)


def test_seat_utilization_rise_bonus_starts_at_15_points():
    assert strength("seat_utilization", seat_book(86, 100, 71, 78)) == pytest.approx(0.76 + 0.1)
    assert strength("seat_utilization", seat_book(86, 100, 72, 78)) == pytest.approx(0.76)


def test_seat_utilization_at_the_cap_and_without_history():
    full = fire("seat_utilization", seat_book(50, 50, 44, 47))
    assert full is not None
    assert full.evidence == (
        "50 of 50 seats active (100%), up from 44 (88%) 60 days ago; the cap is already reached"
    )
    young = replace(
        seat_book(42, 50, 0, 0),
        users=tuple(u for u in seat_book(42, 50, 0, 0).users if not u.user_id.startswith("gone")),
    )
    found = fire("seat_utilization", young)
    assert found is not None
    assert found.evidence == "42 of 50 seats active (84%)"


def test_seat_utilization_needs_licensed_seats():
    book = seat_book(45, 50, 40, 42)
    no_seats = replace(book, subscription=None, licensed_seats=None)
    assert fire("seat_utilization", no_seats) is None
    series_only = replace(book, subscription=None)
    assert fire("seat_utilization", series_only) is not None


# --- invite_velocity --------------------------------------------------------------------------


def test_invite_velocity_threshold():
    check_threshold(
        "invite_velocity",
        below=invite_book(2, 1),
        at=invite_book(3, 1),
        above=invite_book(4, 1),
        evidence="3 new active users in the last 14 days (since 2026-05-02), after 1 in the 28 "
        "days before",
    )


def test_invite_velocity_needs_a_flat_account_before():
    assert fire("invite_velocity", invite_book(5, 2)) is None
    onboarding = replace(
        invite_book(5, 0), users=tuple(u for u in invite_book(5, 0).users if u.user_id[0] != "e")
    )
    assert fire("invite_velocity", onboarding) is None


def test_invitees_who_never_showed_up_are_not_new_active_users():
    book = invite_book(2, 0)
    assert sum(1 for u in book.users if u.first_seen >= ago(13)) == 4
    assert fire("invite_velocity", book) is None


# --- usage_near_cap ---------------------------------------------------------------------------


def test_usage_near_cap_consecutive_days_threshold():
    at, above = check_threshold(
        "usage_near_cap",
        below=near_cap_book(13),
        at=near_cap_book(14),
        above=near_cap_book(15, today_value=8_900),
        evidence="contacts: 8,760 of the 10,000 limit (88%), at or above 85% of it for 14 "
        "consecutive days",
    )
    assert at.facts["days_near_cap"] == 14
    assert above.facts["days_near_cap"] == 15


def test_usage_near_cap_two_billing_months_threshold():
    check_threshold(
        "usage_near_cap",
        below=monthly_usage_book(870_000, 849_999),
        at=monthly_usage_book(870_000, 850_000),
        above=monthly_usage_book(870_000, 860_000),
        evidence="API calls: 870,000 (87%) and 850,000 (85%) of the 1,000,000 monthly limit in "
        "2026-03 and 2026-04",
    )
    assert fire("usage_near_cap", monthly_usage_book(849_999, 900_000)) is None


def test_usage_near_cap_months_as_reported_per_month():
    book = replace(
        base_account(),
        usage_by_month={"api_calls": {"2026-03": 900_000, "2026-04": 880_000}},
    )
    found = fire("usage_near_cap", book)
    assert found is not None
    assert found.evidence == (
        "API calls: 900,000 (90%) and 880,000 (88%) of the 1,000,000 monthly limit in 2026-03 "
        "and 2026-04"
    )


def test_usage_near_cap_over_the_cap():
    over = fire("usage_near_cap", near_cap_book(3, today_value=10_400))
    assert over is not None
    assert over.evidence == "contacts: 10,400 of the 10,000 limit (104%), over the cap"
    near = fire("usage_near_cap", near_cap_book(14))
    assert near is not None and over.strength > near.strength
    monthly = replace(
        base_account(), api_calls=None, usage_by_month={"api_calls": {"2026-05": 1_020_000}}
    )
    found = fire("usage_near_cap", monthly)
    assert found is not None
    assert found.evidence == (
        "API calls: 1,020,000 of the 1,000,000 monthly limit in 2026-05 so far (102%), over the cap"
    )


def test_usage_near_cap_from_plan_limit_hits():
    hits = (
        LimitHit("export_rows", ago(31), 700, 500),
        LimitHit("export_rows", ago(29), 520, 500),
        LimitHit("export_rows", ago(4), 610, 500),
    )
    found = fire("usage_near_cap", replace(base_account(), limit_hits=hits))
    assert found is not None
    assert found.evidence == (
        "the export rows limit was hit on 2 days in the last 30 days, latest 2026-05-11 "
        "(610 of 500)"
    )
    assert found.facts["ratio"] == 1.22
    old = replace(base_account(), limit_hits=hits[:1])
    assert fire("usage_near_cap", old) is None


def test_usage_near_cap_needs_limits_and_usage():
    book = near_cap_book(20)
    assert fire("usage_near_cap", replace(book, subscription=None)) is None
    assert fire("usage_near_cap", replace(book, usage={})) is None


# --- api_volume_growth ------------------------------------------------------------------------


def test_api_volume_growth_threshold():
    check_threshold(
        "api_volume_growth",
        below=api_growth_book(120_000, 359_999),
        at=api_growth_book(120_000, 360_000),
        above=api_growth_book(120_000, 372_000),
        evidence="360,000 API calls in the last 30 days, 3.0x the 120,000 in the 30 days ending "
        "2026-03-16",
    )


def test_api_volume_growth_needs_data_in_both_windows():
    book = api_growth_book(120_000, 500_000)
    calls = book.api_calls
    assert calls is not None
    recent_only = DailySeries(ago(29), calls.values[-30:])
    assert fire("api_volume_growth", replace(book, api_calls=recent_only)) is None
    assert fire("api_volume_growth", replace(book, api_calls=None)) is None
    tiny = api_growth_book(900, 9_000)
    assert fire("api_volume_growth", tiny) is None


def test_api_volume_growth_averages_over_missing_days():
    book = api_growth_book(120_000, 420_000)
    calls = book.api_calls
    assert calls is not None
    gaps = tuple(v for i, v in enumerate(calls.values) if i != len(calls.values) - 1)
    found = fire("api_volume_growth", replace(book, api_calls=DailySeries(calls.start, gaps)))
    assert found is not None
    assert found.facts["ratio"] > 3


# --- usage_velocity_to_tier -------------------------------------------------------------------


def test_usage_velocity_to_tier_threshold():
    at, above = check_threshold(
        "usage_velocity_to_tier",
        below=velocity_book(850_000, 710_000),
        at=velocity_book(850_000, 700_000),
        above=velocity_book(850_000, 690_000),
        evidence="API calls: 850,000 of the 1,000,000 monthly limit of growth in the last 30 "
        "days (85%), up 150,000 in 30 days; at this pace usage reaches 1,000,000 around "
        "2026-06-14, in 30 days (next tier: scale)",
    )
    assert at.facts["next_tier"] == "scale"
    assert above.facts["reached_on"] == "2026-06-13"


def test_usage_velocity_to_tier_needs_a_next_tier_and_room_below_the_limit():
    book = velocity_book(850_000, 600_000)
    top = replace(book, subscription=replace(book.subscription, tier="enterprise"))  # type: ignore[arg-type]
    assert fire("usage_velocity_to_tier", top) is None
    unknown = replace(book, subscription=replace(book.subscription, tier="legacy"))  # type: ignore[arg-type]
    assert fire("usage_velocity_to_tier", unknown) is None
    assert fire("usage_velocity_to_tier", velocity_book(1_010_000, 900_000)) is None
    assert fire("usage_velocity_to_tier", velocity_book(850_000, 900_000)) is None


# --- integration_connected --------------------------------------------------------------------


def test_integration_connected_threshold():
    check_threshold(
        "integration_connected",
        below=integration_book(Integration("hubspot", "crm", ago(30))),
        at=integration_book(Integration("hubspot", "crm", ago(29))),
        above=integration_book(Integration("jira", "project_management", ago(29))),
        evidence="1 integration connected in the last 30 days: hubspot (crm) on 2026-04-16",
    )


def test_integration_connected_names_new_categories_and_counts_each_one():
    found = fire(
        "integration_connected",
        integration_book(
            Integration("jira", "project_management", ago(20)),
            Integration("zendesk", "support", ago(3)),
        ),
    )
    assert found is not None
    assert found.evidence == (
        "2 integrations connected in the last 30 days: zendesk (support, a new category for "
        "the account) on 2026-05-12, jira (project_management, a new category for the "
        "account) on 2026-04-25"
    )
    assert found.strength == pytest.approx(0.85)


# --- premium_feature_interest -----------------------------------------------------------------


def test_premium_feature_interest_teaser_threshold():
    check_threshold(
        "premium_feature_interest",
        below=teaser_book(2),
        at=teaser_book(3),
        above=teaser_book(4),
        evidence="3 clicks on higher-tier feature teasers in the last 30 days by 3 users "
        "(sso_scim 1, audit_log 1, advanced_reports 1)",
    )


def test_premium_feature_interest_trial_threshold():
    check_threshold(
        "premium_feature_interest",
        below=teaser_book(0, trial_users=2),
        at=teaser_book(0, trial_users=3),
        above=teaser_book(0, trial_users=4),
        evidence="advanced_reports (scale tier) used by 3 users in the last 30 days",
    )


def test_premium_feature_interest_next_tier_adoption_threshold():
    def adopted(count: int) -> AccountState:
        base = base_account()
        recent = {"u-1": ago(3), "u-2": ago(12)}
        scale = ("advanced_reports", "sso_scim", "audit_log", "sandbox")
        trial = tuple(feature_use(name, None, recent, tier="scale") for name in scale[:count])
        return replace(base, features=base.features + trial)

    at, _ = check_threshold(
        "premium_feature_interest",
        below=adopted(2),  # 50%
        at=adopted(3),  # 75%: at least 70% of the next tier's features
        above=adopted(4),
        evidence="3 of 4 scale-tier features used in the last 30 days (75%): advanced_reports, "
        "sso_scim, audit_log",
    )
    assert at.facts["next_tier_adoption"] == 0.75


def test_teasers_of_the_current_tier_do_not_count():
    book = teaser_book(6)
    on_scale = replace(book, subscription=replace(book.subscription, tier="scale"))  # type: ignore[arg-type]
    assert fire("premium_feature_interest", on_scale) is None
    untiered = replace(book, teaser_clicks=tuple(replace(c, tier=None) for c in book.teaser_clicks))
    assert fire("premium_feature_interest", untiered) is not None  # tier from the feature name


# --- feature_breadth --------------------------------------------------------------------------


def test_feature_breadth_threshold():
    check_threshold(
        "feature_breadth",
        below=breadth_book(7),
        at=breadth_book(8),
        above=breadth_book(9),
        evidence="8 of 9 core feature categories used in the last 30 days (89%, all but "
        "administration); no adjacent-product features in use",
    )


def test_feature_breadth_exactly_at_80_percent():
    rules = with_rule("feature_breadth", core_categories=CORE_CATEGORIES[:5])
    assert fire("feature_breadth", breadth_book(3), rules) is None
    found = fire("feature_breadth", breadth_book(4), rules)
    assert found is not None
    assert found.evidence == (
        "4 of 5 core feature categories used in the last 30 days (80%, all but data_import); "
        "no adjacent-product features in use"
    )


def test_feature_breadth_with_an_adjacent_product_is_weaker():
    deep = fire("feature_breadth", breadth_book(9))
    adjacent = fire("feature_breadth", breadth_book(9, adjacent=True))
    assert deep is not None and adjacent is not None
    assert adjacent.strength == pytest.approx(deep.strength - 0.2)
    assert adjacent.evidence.endswith("; adjacent-product features in use too: work_ops")
    assert adjacent.facts["adjacent_used"] == 1


# --- power_user_emergence ---------------------------------------------------------------------


def test_power_user_emergence_threshold():
    check_threshold(
        "power_user_emergence",
        below=power_user_book(1),
        at=power_user_book(2),
        above=power_user_book(3),
        evidence="2 users took up advanced features or high-volume exports in the last 30 days "
        "(first on 2026-04-25); 5 power users in all",
    )


# --- secondary_team_logins --------------------------------------------------------------------


def test_secondary_team_logins_threshold():
    check_threshold(
        "secondary_team_logins",
        below=secondary_team_book(2),
        at=secondary_team_book(3),
        above=secondary_team_book(4),
        evidence="3 users active in the last 30 days from outside the licensed footprint: 2 in "
        "Marketing, 1 at acme.de",
    )


def test_secondary_team_logins_uses_the_crm_footprint_when_set():
    book = secondary_team_book(4)
    licensed = replace(
        book,
        crm={**book.crm, "licensed_departments": "Operations; Marketing", "licensed_domains": []},
    )
    assert fire("secondary_team_logins", licensed) is None  # 2 at acme.de only
    wide = replace(book, crm={**book.crm, "licensed_domains": ["acme.com", "acme.de"]})
    assert fire("secondary_team_logins", wide) is None  # 2 in Marketing only


def test_secondary_team_logins_without_a_footprint_does_not_fire():
    book = secondary_team_book(6)
    newcomers_only = replace(
        book,
        users=tuple(u for u in book.users if u.first_seen > ago(60)),
        crm={k: v for k, v in book.crm.items() if k != "domain"},
    )
    assert fire("secondary_team_logins", newcomers_only) is None


# --- plan_limit_ticket ------------------------------------------------------------------------

SEAT_TICKET = Ticket(
    "T-150",
    ago(2),
    "Adding a colleague",
    "Hi, we can\u2019t add another user \u2013 the invite button is grayed out for us.",
    "p3",
    "open",
)


def test_plan_limit_ticket_threshold():
    at, above = check_threshold(
        "plan_limit_ticket",
        below=ticket_book(Ticket("T-150", ago(2), "Cannot log in", "Is it possible to reset 2FA?")),
        at=ticket_book(SEAT_TICKET),
        above=ticket_book(
            SEAT_TICKET,
            Ticket("T-140", ago(30), "SAML", "Do you support single sign-on with Okta?"),
            Ticket(
                "T-120",
                ago(60),
                "Export",
                "We get an error when we try to export more than 500 rows.",
            ),
        ),
        evidence="1 ticket in the last 90 days points at plan limits or higher-tier features: "
        'T-150 on 2026-05-13 ("can\'t add another user")',
    )
    assert at.facts["tickets"] == 1
    assert above.facts == {"tickets": 3, "feature_requests": 1, "ticket_ids": "T-150, T-140, T-120"}
    assert above.evidence == (
        "3 tickets in the last 90 days point at plan limits or higher-tier features: T-150 on "
        '2026-05-13 ("can\'t add another user"), T-140 on 2026-04-15 ("saml"), T-120 on '
        '2026-03-16 ("export more than 500 rows")'
    )


def test_plan_limit_ticket_window_edge():
    in_window = ticket_book(Ticket("T-9", ago(89), "Seats", "We hit the seat limit again."))
    out_of_window = ticket_book(Ticket("T-9", ago(90), "Seats", "We hit the seat limit again."))
    assert fire("plan_limit_ticket", in_window) is not None
    assert fire("plan_limit_ticket", out_of_window) is None


def test_plan_limit_ticket_names_only_features_above_the_current_tier():
    ticket = Ticket("T-7", ago(5), "Compliance", "Where can we see an audit trail of changes?")
    assert fire("plan_limit_ticket", ticket_book(ticket)) is not None
    book = ticket_book(ticket)
    on_scale = replace(book, subscription=replace(book.subscription, tier="scale"))  # type: ignore[arg-type]
    assert fire("plan_limit_ticket", on_scale) is None
    rules = with_rule("plan_limit_ticket", match_next_tier_features=False)
    assert fire("plan_limit_ticket", book, rules) is None


def test_plan_limit_ticket_phrases_are_configurable():
    ticket = Ticket("T-8", ago(5), "Question", "Could we get a bigger mailbox allowance?")
    assert fire("plan_limit_ticket", ticket_book(ticket)) is None
    rules = with_rule("plan_limit_ticket", phrases=("bigger mailbox",), patterns=())
    found = fire("plan_limit_ticket", ticket_book(ticket), rules)
    assert found is not None and found.facts["tickets"] == 1


def test_plan_limit_ticket_counts_reach_the_tier_upsell_level():
    tickets = [
        Ticket(f"T-{i}", ago(10 * i), "Limit", "We keep hitting the limit.") for i in range(5)
    ]
    strengths = [strength("plan_limit_ticket", ticket_book(*tickets[:n])) for n in range(1, 6)]
    assert strengths == sorted(strengths)
    assert strengths[2] == pytest.approx(0.8)
    assert strengths[4] == 1.0


# --- cross_sell_behavior ----------------------------------------------------------------------


def test_cross_sell_behavior_threshold():
    check_threshold(
        "cross_sell_behavior",
        below=cross_sell_book(4),
        at=cross_sell_book(5),
        above=cross_sell_book(6),
        evidence="project_timeline used by 5 users in the last 30 days: behaviour that fits "
        "Work Ops, which the account does not have",
    )


def test_cross_sell_behavior_skips_products_the_account_has():
    book = cross_sell_book(9)
    owns = replace(book, crm={**book.crm, "products": ["Core", "Work Ops"]})
    assert fire("cross_sell_behavior", owns) is None
    unknown = replace(book, crm={k: v for k, v in book.crm.items() if k != "products"})
    found = fire("cross_sell_behavior", unknown)
    assert found is not None
    assert found.evidence.endswith("Work Ops, not among its known products")


def test_cross_sell_behavior_from_tickets():
    book = ticket_book(
        Ticket("T-1", ago(3), "Deals", "How can we track deals from lead to close?"),
        Ticket("T-2", ago(12), "Pipeline", "Is there a sales pipeline view?"),
    )
    found = fire("cross_sell_behavior", book)
    assert found is not None
    assert found.evidence == (
        "2 tickets asking for it in the last 30 days: behaviour that fits Sales Ops, which the "
        "account does not have"
    )


# --- champion_promotion -----------------------------------------------------------------------


def test_champion_promotion_threshold():
    check_threshold(
        "champion_promotion",
        below=champion_book((400, "Senior Operations Analyst"), (40, "Operations Manager")),
        at=champion_book((400, "Operations Manager"), (40, "Director of Operations")),
        above=champion_book((400, "Operations Manager"), (40, "VP Operations")),
        evidence='Champion c-1 went from "Operations Manager" (manager) to "Director of '
        'Operations" (director) on 2026-04-05',
    )


def test_champion_promotion_window_and_who_counts():
    assert fire("champion_promotion", champion_book((400, "Ops Mgr"), (179, "VP Ops"))) is not None
    assert fire("champion_promotion", champion_book((400, "Ops Mgr"), (180, "VP Ops"))) is None
    not_champion = champion_book((400, "Ops Mgr"), (40, "VP Ops"), champion=False)
    assert fire("champion_promotion", not_champion) is None
    book = champion_book((400, "Ops Mgr"), (40, "VP Ops"))
    left = replace(book, contacts=(replace(book.contacts[0], left_company=True),))
    assert fire("champion_promotion", left) is None


def test_champion_promotion_ignores_lateral_moves_and_unreadable_titles():
    lateral = champion_book((400, "Director of Operations"), (40, "Head of Operations"))
    assert fire("champion_promotion", lateral) is None
    unreadable = champion_book((400, "エンジニア"), (40, "VP Operations"))
    assert fire("champion_promotion", unreadable) is None
    demotion = champion_book((400, "VP Operations"), (40, "Operations Manager"))
    assert fire("champion_promotion", demotion) is None


def test_champion_promotion_in_other_languages():
    found = fire("champion_promotion", champion_book((300, "Jefa de Ventas"), (20, "CEO")))
    assert found is not None
    assert found.evidence == (
        'Champion c-1 went from "Jefa de Ventas" (manager) to "CEO" (C-level) on 2026-04-25'
    )
    assert found.strength == 1.0
    german = champion_book((300, "Teamleiterin Logistik"), (20, "Leiterin Logistik"))
    assert strength("champion_promotion", german) == 0.7


# --- positive_convergence ---------------------------------------------------------------------


def test_positive_convergence_threshold():
    check_threshold(
        "positive_convergence",
        below=convergence_book([9, 8]),
        at=convergence_book([9]),
        above=convergence_book([10]),
        evidence="NPS 9 on 2026-04-10, daily active users up 10% over the last 30 days (22 vs "
        "20 a day) and VP-level contact c-2 engaged on 2026-05-01",
    )


def test_positive_convergence_needs_rising_usage_and_engagement_or_advocacy():
    assert fire("positive_convergence", convergence_book([9], dau_recent=654)) is None
    alone = convergence_book([10], exec_engaged_days_ago=None)
    assert fire("positive_convergence", alone) is None
    stale = convergence_book([10], exec_engaged_days_ago=60)
    assert fire("positive_convergence", stale) is None
    advocacy_only = convergence_book([10], exec_engaged_days_ago=None, advocacy_days_ago=20)
    found = fire("positive_convergence", advocacy_only)
    assert found is not None
    assert found.evidence.endswith("and public advocacy (g2_review_on 2026-04-25)")


def test_positive_convergence_with_both_engagement_and_advocacy_is_stronger():
    both = fire("positive_convergence", convergence_book([10, 10], advocacy_days_ago=20))
    one = fire("positive_convergence", convergence_book([10, 10]))
    assert both is not None and one is not None
    assert both.strength == pytest.approx(one.strength + 0.1)
    assert both.evidence == (
        "average NPS 10 from 2 responses since 2026-03-21, daily active users up 10% over the "
        "last 30 days (22 vs 20 a day), VP-level contact c-2 engaged on 2026-05-01 and public "
        "advocacy (g2_review_on 2026-04-25)"
    )


# --- org_growth -------------------------------------------------------------------------------


def test_org_growth_threshold():
    check_threshold(
        "org_growth",
        below=org_book(109),
        at=org_book(110),
        above=org_book(112),
        evidence="Operations headcount up 10% (100 to 110) since 2025-10-27",
    )


def test_org_growth_funding_and_new_departments():
    found = fire("org_growth", org_book(115, funding_days_ago=30, new_departments=["Legal"]))
    assert found is not None
    assert found.evidence == (
        "Series B funding round on 2026-04-15; Operations headcount up 15% (100 to 115) since "
        "2025-10-27; new departments: Legal"
    )
    assert found.strength == pytest.approx(0.7 + 0.2)
    assert fire("org_growth", org_book(funding_days_ago=179)) is not None
    assert fire("org_growth", org_book(funding_days_ago=180)) is None


def test_org_growth_sees_a_round_in_the_total_raised():
    book = base_account()
    raised = replace(
        book,
        crm={**book.crm, "funding_total": 40_000_000},
        crm_history={
            **book.crm_history,
            "funding_total": ((ago(300), 12_000_000), (ago(40), 40_000_000)),
        },
    )
    found = fire("org_growth", raised)
    assert found is not None
    assert found.evidence == "total funding up from 12,000,000 to 40,000,000 on 2026-04-05"
    assert found.facts["funding_round_on"] == "2026-04-05"
    earlier = replace(
        raised,
        crm_history={
            **book.crm_history,
            "funding_total": ((ago(300), 12_000_000), (ago(200), 40_000_000)),
        },
    )
    assert fire("org_growth", earlier) is None


def test_org_growth_reads_crm_values_as_the_crm_sends_them():
    book = org_book(100)
    as_strings = replace(
        book,
        crm={**book.crm, "department_headcount": "1,150", "funding_round_on": "2026-04-01T00:00Z"},
        crm_history={**book.crm_history, "department_headcount": ((ago(200), "1,000"),)},
    )
    found = fire("org_growth", as_strings)
    assert found is not None
    assert found.facts["department_growth"] == 0.15
    garbage = replace(
        book,
        crm={**book.crm, "department_headcount": "lots", "funding_round_on": 12},
        crm_history={**book.crm_history, "department_headcount": ((ago(200), None),)},
    )
    assert fire("org_growth", garbage) is None


def test_org_growth_from_company_headcount():
    book = base_account()
    # The value as of the window's start (180 days ago) is the one set 300 days ago.
    assert fire("org_growth", replace(book, crm={**book.crm, "employees": 450})) is None
    found = fire("org_growth", replace(book, crm={**book.crm, "employees": 451}))
    assert found is not None
    assert found.evidence == "company headcount up 10% (410 to 451) since 2025-07-19"
    assert found.strength == 0.4


# --- properties -------------------------------------------------------------------------------

PROPERTY_SETTINGS = hypothesis_settings(max_examples=40, deadline=None)


@PROPERTY_SETTINGS
@given(st.integers(20, 60), st.integers(20, 60))
def test_more_active_seats_is_never_weaker(a: int, b: int):
    low, high = sorted((a, b))
    assert strength("seat_utilization", seat_book(low, 50, 20, 20)) <= strength(
        "seat_utilization", seat_book(high, 50, 20, 20)
    )


@PROPERTY_SETTINGS
@given(st.integers(300_000, 1_000_000), st.integers(300_000, 1_000_000))
def test_more_api_growth_is_never_weaker(a: int, b: int):
    low, high = sorted((a, b))
    assert strength("api_volume_growth", api_growth_book(100_000, low)) <= strength(
        "api_volume_growth", api_growth_book(100_000, high)
    )


@PROPERTY_SETTINGS
@given(st.integers(8_500, 13_000), st.integers(8_500, 13_000))
def test_more_usage_near_the_cap_is_never_weaker(a: int, b: int):
    low, high = sorted((a, b))
    assert strength("usage_near_cap", near_cap_book(20, today_value=low)) <= strength(
        "usage_near_cap", near_cap_book(20, today_value=high)
    )


@PROPERTY_SETTINGS
@given(st.integers(600_000, 840_000), st.integers(600_000, 840_000))
def test_a_faster_climb_to_the_next_tier_is_never_weaker(a: int, b: int):
    slow, fast = sorted((a, b), reverse=True)  # less usage before = a steeper climb
    assert strength("usage_velocity_to_tier", velocity_book(850_000, slow)) <= strength(
        "usage_velocity_to_tier", velocity_book(850_000, fast)
    )


@PROPERTY_SETTINGS
@given(st.integers(0, 12), st.integers(0, 12))
def test_more_new_users_is_never_weaker(a: int, b: int):
    low, high = sorted((a, b))
    assert strength("invite_velocity", invite_book(low, 1)) <= strength(
        "invite_velocity", invite_book(high, 1)
    )


@PROPERTY_SETTINGS
@given(st.integers(90, 200), st.integers(90, 200))
def test_more_department_growth_is_never_weaker(a: int, b: int):
    low, high = sorted((a, b))
    assert strength("org_growth", org_book(low)) <= strength("org_growth", org_book(high))


@PROPERTY_SETTINGS
@given(st.integers(0, 12), st.integers(0, 12))
def test_more_outside_users_is_never_weaker(a: int, b: int):
    low, high = sorted((a, b))
    assert strength("secondary_team_logins", secondary_team_book(low)) <= strength(
        "secondary_team_logins", secondary_team_book(high)
    )


@given(
    st.integers(-200, 30).map(lambda n: TODAY + timedelta(days=n)),
    st.lists(st.none() | st.floats(0, 1e6), max_size=80).map(tuple),
    st.integers(-300, 300).map(lambda n: TODAY + timedelta(days=n)),
    st.integers(1, 120),
)
def test_a_series_window_holds_the_known_values_of_exactly_those_days(start, values, end, days):
    series = DailySeries(start, values)
    first = end - timedelta(days=days - 1)
    day_by_day = [series.on(first + timedelta(days=d)) for d in range(days)]
    assert series.window(end, days) == [v for v in day_by_day if v is not None]


# Random, sparse and odd account states: every signal either stays silent or fires with a
# strength within 0..1 and evidence; none crashes.

DAYS = st.integers(-200, 30).map(lambda n: TODAY + timedelta(days=n))
SMALL = st.floats(min_value=-10, max_value=2_000_000, allow_nan=False)
NAMES = st.sampled_from(["", "sso", "audit_log", "project_timeline", "reporting", "x y"])
TITLES = st.sampled_from(
    ["", "CEO", "VP Sales", "Sales Manager", "Leiter IT", "Engineer", "エンジニア", "Dir."]
)
CRM_VALUES = st.one_of(
    st.none(),
    st.integers(-5, 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.text(max_size=6), max_size=3),
    DAYS.map(date.isoformat),
    DAYS,
)


@st.composite
def daily_series(draw) -> DailySeries:
    return DailySeries(draw(DAYS), tuple(draw(st.lists(SMALL, max_size=150))))


@st.composite
def users(draw) -> User:
    days = draw(st.frozensets(DAYS, max_size=30))
    return User(
        user_id=draw(st.text(min_size=1, max_size=4)),
        first_seen=draw(DAYS),
        last_active=max(days) if days else draw(st.none() | DAYS),
        active_days=days,
        email_domain=draw(st.sampled_from([None, "", "acme.com", "gmail.com", "b.io"])),
        department=draw(st.sampled_from([None, "", " ", "Ops", "Sales"])),
        advanced_since=draw(st.none() | DAYS),
    )


@st.composite
def account_states(draw) -> AccountState:
    subscription = draw(
        st.none()
        | st.builds(
            Subscription,
            tier=st.sampled_from([None, "starter", "growth", "scale", "enterprise", "legacy"]),
            seats=st.none() | st.integers(-1, 100),
            arr=st.none(),
            renewal_on=st.none() | DAYS,
            limits=st.dictionaries(st.sampled_from(["api_calls", "contacts", "seats"]), SMALL),
            limit_periods=st.dictionaries(
                st.sampled_from(["api_calls", "contacts"]),
                st.sampled_from(["day", "month", "total", "week"]),
            ),
        )
    )
    return AccountState(
        account_id=1,
        today=TODAY,
        subscription=subscription,
        daily_active_users=draw(st.none() | daily_series()),
        licensed_seats=draw(st.none() | daily_series()),
        api_calls=draw(st.none() | daily_series()),
        usage=draw(st.dictionaries(st.sampled_from(["api_calls", "contacts"]), daily_series())),
        usage_by_month=draw(
            st.dictionaries(
                st.sampled_from(["api_calls", "contacts"]),
                st.dictionaries(st.sampled_from(["2026-03", "2026-04", "2026-05"]), SMALL),
            )
        ),
        users=tuple(draw(st.lists(users(), max_size=8))),
        features=tuple(
            draw(
                st.lists(
                    st.builds(
                        FeatureUse,
                        feature=NAMES,
                        tier=st.none() | st.sampled_from(["growth", "scale", "gold"]),
                        category=st.none() | st.sampled_from(["reporting", "alerts", "work_ops"]),
                        first_used=DAYS,
                        last_used=DAYS,
                        users_last_used=st.dictionaries(st.text(max_size=3), DAYS, max_size=6),
                    ),
                    max_size=6,
                )
            )
        ),
        integrations=tuple(
            draw(st.lists(st.builds(Integration, NAMES, st.none() | NAMES, DAYS), max_size=4))
        ),
        teaser_clicks=tuple(
            draw(
                st.lists(
                    st.builds(TeaserClick, NAMES, st.none() | NAMES, DAYS, st.none() | NAMES),
                    max_size=8,
                )
            )
        ),
        limit_hits=tuple(
            draw(
                st.lists(
                    st.builds(LimitHit, NAMES, DAYS, st.none() | SMALL, st.none() | SMALL),
                    max_size=4,
                )
            )
        ),
        tickets=tuple(
            draw(
                st.lists(
                    st.builds(
                        Ticket,
                        st.text(max_size=4),
                        DAYS,
                        st.text(max_size=20),
                        st.sampled_from(["", "we hit the limit", "track deals", "SSO?"]),
                    ),
                    max_size=5,
                )
            )
        ),
        contacts=tuple(
            draw(
                st.lists(
                    st.builds(
                        Contact,
                        st.text(max_size=3),
                        TITLES,
                        st.lists(st.tuples(DAYS, TITLES), max_size=4).map(tuple),
                        st.booleans(),
                        st.booleans(),
                        st.booleans(),
                        st.none() | DAYS,
                    ),
                    max_size=4,
                )
            )
        ),
        nps=tuple(draw(st.lists(st.builds(NpsResponse, st.integers(0, 10), DAYS), max_size=4))),
        crm=draw(
            st.dictionaries(
                st.sampled_from(
                    [
                        *("employees", "department_headcount", "departments", "funding_round_on"),
                        *("domain", "products", "licensed_domains", "g2_review_on"),
                    ]
                ),
                CRM_VALUES,
            )
        ),
        crm_history=draw(
            st.dictionaries(
                st.sampled_from(["employees", "department_headcount", "departments"]),
                st.lists(st.tuples(DAYS, CRM_VALUES), max_size=4).map(tuple),
            )
        ),
    )


@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(account_states())
def test_any_state_gives_bounded_signals_with_evidence(state: AccountState):
    for found in evaluate(state, RULES):
        assert 0 < found.strength <= 1
        assert found.evidence
        assert found.category == CATEGORY[found.name]
