"""Health, readiness, the gate and the window on hand-built accounts: exact scores with the
shipped rules, renormalization and named gaps when data is missing, every edge, the `explain`
text, and the rules file (the shipped one loads, a broken one names file and key path)."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest

from expansion.mappings import MappingError
from expansion.settings import Settings
from tests.support import ROOT
from workers.account_state import (
    AccountState,
    Contact,
    DailySeries,
    FeatureUse,
    Invoice,
    NpsResponse,
    Subscription,
    Ticket,
    User,
)
from workers.evidence import Signal
from workers.score_rules import GateRules, ScoringRules, score_rules
from workers.scoring import (
    Health,
    assess,
    assess_health,
    health,
    health_band,
    health_gate,
    readiness,
    readiness_band,
    render_explanation,
    timing_window,
)

TODAY = date(2026, 6, 1)


def days_ago(n: int) -> date:
    return TODAY - timedelta(days=n)


@pytest.fixture(scope="module")
def rules() -> ScoringRules:
    return score_rules(Settings.from_env({"MAPPINGS_DIR": str(ROOT / "mappings")}))


def product_users(active: int, total: int = 50) -> tuple[User, ...]:
    """`active` users active 3 and 20 days ago; the rest last active 45 days ago."""
    recent = frozenset({days_ago(3), days_ago(20)})
    lapsed = frozenset({days_ago(45)})
    return tuple(
        User(
            user_id=f"u{i}",
            first_seen=date(2026, 1, 5),
            last_active=days_ago(3) if i < active else days_ago(45),
            active_days=recent if i < active else lapsed,
            email_domain="acme.example",
        )
        for i in range(total)
    )


def acme(**changes: object) -> AccountState:
    """An account with data in every dimension. With the shipped rules:
    product 85 = 0.4 x 80 (35 of 50 seats, 70%) + 0.3 x 90 (DAU +10%) + 0.3 x 86.67 (6 of 9);
    relationship 85 = (0.25 x 80 NPS 8 + 0.25 x 60 neutral + 0.15 x 100 sponsor 30 days
    + 0.15 x 100 champion + 0.2 x 100 interaction 14 days);
    support 84 = 0.4 x 60 (one open P1) + 0.3 x 100 (flat volume) + 0.3 x 100 (CSAT 5);
    financial 100 = 0.6 x 100 (12 of 12 paid) + 0.4 x 100 (30,000 of 30,000 committed calls);
    health 87.8 = 0.35 x 85 + 0.25 x 85 + 0.2 x 84 + 0.2 x 100."""
    categories = ["dashboards", "reporting", "automation", "collaboration", "exports", "alerts"]
    state = AccountState(
        account_id=42,
        today=TODAY,
        name="Acme Corp",
        subscription=Subscription(
            tier="growth",
            seats=50,
            arr=60_000.0,
            renewal_on=TODAY + timedelta(days=120),
            status="active",
            limits={"api_calls": 40_000},
            committed_usage=30_000,
        ),
        daily_active_users=DailySeries(days_ago(59), (20.0,) * 30 + (22.0,) * 30),
        usage={"api_calls": DailySeries(days_ago(29), (1000.0,) * 30)},
        users=product_users(35),
        features=(
            *(
                FeatureUse(f"{c}_view", "growth", c, date(2026, 2, 1), days_ago(2))
                for c in categories
            ),
            FeatureUse("sso_scim", "scale", "administration", date(2026, 2, 1), days_ago(40)),
        ),
        contacts=(
            Contact("c1", "Director of Operations", champion=True, last_engaged_on=days_ago(14)),
            Contact("c2", "VP Finance", exec_sponsor=True, last_engaged_on=days_ago(30)),
        ),
        nps=(NpsResponse(6, days_ago(200), "c1"), NpsResponse(8, days_ago(20), "c1")),
        crm={"csm_sentiment": "Neutral", "last_meaningful_interaction_on": days_ago(14)},
        tickets=(
            Ticket("t1", days_ago(5), "Export fails", priority="p1", status="open"),
            *(
                Ticket(
                    f"t{n}",
                    days_ago(n * 20),
                    priority="p3",
                    status="closed",
                    csat=5,
                    closed_on=days_ago(n * 20 - 2),
                )
                for n in (2, 3, 4)
            ),
        ),
        invoices=tuple(Invoice(f"in_{m}", days_ago(30 * m), "paid", 5000.0) for m in range(12)),
    )
    return dataclasses.replace(state, **changes)


def scores(h: Health) -> dict[str, float | None]:
    return {d.name: d.score for d in h.dimensions}


# --- health ------------------------------------------------------------------------------------


def test_exact_health_with_every_dimension(rules):
    h = health(acme(), rules)
    assert scores(h) == {"product": 85.0, "relationship": 85.0, "support": 84.0, "financial": 100}
    assert h.score == 87.8
    assert h.band == "green"
    assert h.missing == ()
    assert h.effective_weights == {
        "product": 0.35,
        "relationship": 0.25,
        "support": 0.2,
        "financial": 0.2,
    }


def test_every_dimension_ships_its_evidence_in_numbers(rules):
    evidence = [d.evidence for d in health(acme(), rules).dimensions]
    assert evidence == [
        "product 85/100: 35 of 50 seats active in 30 days (70%), DAU up 10% over 30 days "
        "(average 22.0 vs 20.0), 6 of 9 core feature categories used in 30 days",
        "relationship 85/100: NPS 8.0 average of 1 respondent in 365 days (latest 8 on "
        "2026-05-12), CSM sentiment Neutral, executive sponsor last engaged 30 days ago "
        "(2026-05-02), champion present (1 of 2 contacts), last meaningful interaction "
        "14 days ago (2026-05-18)",
        "support 84/100: 1 open P1 ticket (oldest opened 2026-05-27), 1 ticket in the last 30 "
        "days vs 1.0 per 30 days in the 90 days before, CSAT 5.0/5 from 3 rated tickets in "
        "90 days",
        "financial 100/100: 12 of 12 invoices paid in 365 days, 30,000 api_calls in 30 days "
        "vs 30,000 committed (100%)",
    ]


def test_a_missing_dimension_renormalizes_the_weights_and_is_named(rules):
    h = health(acme(tickets=()), rules)
    support = h.dimensions[2]
    assert (support.has_data, support.score) == (False, None)
    assert not any(m.has_data for m in support.metrics)
    assert all(d.has_data for d in h.dimensions if d.name != "support")
    # (0.35 x 85 + 0.25 x 85 + 0.2 x 100) / 0.8
    assert h.score == 88.75
    assert h.effective_weights["support"] == 0.0
    assert h.effective_weights["product"] == pytest.approx(0.35 / 0.8)
    assert h.missing == ("support (no support tickets on record)",)
    assert support.evidence == "support: no data (no support tickets on record)"


def test_a_missing_metric_renormalizes_within_its_dimension_and_is_named(rules):
    h = health(acme(nps=()), rules)
    relationship = h.dimensions[1]
    # (0.25 x 60 + 0.15 x 100 + 0.15 x 100 + 0.2 x 100) / 0.75
    assert relationship.score == 86.67
    assert h.missing == ("relationship: NPS (no NPS response in 365 days)",)
    assert relationship.evidence.endswith("; missing NPS (no NPS response in 365 days)")


def test_two_missing_dimensions(rules):
    h = health(acme(contacts=(), nps=(), crm={}, tickets=()), rules)
    # (0.35 x 85 + 0.2 x 100) / 0.55
    assert h.score == 90.45
    assert [line.split(" ")[0] for line in h.missing] == ["relationship", "support"]
    assert "no contacts on record" in h.missing[0]
    assert "no CSM sentiment in the CRM" in h.missing[0]


def test_no_data_at_all_is_unknown_not_zero_and_not_green(rules):
    h = assess_health(AccountState(account_id=7, today=TODAY), rules)
    assert h.score is None
    assert h.band == "unknown"
    assert h.trend is not None and h.trend.direction == "unknown"
    assert [line.split(" (")[0] for line in h.missing] == [
        "product",
        "relationship",
        "support",
        "financial",
    ]


def test_users_without_a_seat_count_are_not_a_zero(rules):
    state = acme(subscription=None, usage={})
    product = health(state, rules).dimensions[0]
    active = product.metrics[0]
    assert (active.score, active.evidence) == (None, "no licensed seat count")
    # The other two product metrics still count: (0.3 x 90 + 0.3 x 86.67) / 0.6
    assert product.score == 88.33


def test_licensed_seats_come_from_the_daily_series_when_there_is_one(rules):
    state = acme(licensed_seats=DailySeries(days_ago(9), (40.0,) * 10))
    active = health(state, rules).dimensions[0].metrics[0]
    assert active.evidence == "35 of 40 seats active in 30 days (88%)"
    assert active.score == 100


def test_seats_stand_in_for_a_missing_usage_commitment(rules):
    state = acme(subscription=dataclasses.replace(acme().subscription, committed_usage=None))
    financial = health(state, rules).dimensions[3]
    utilization = financial.metrics[1]
    assert utilization.evidence == "35 of 50 licensed seats in use (70%)"
    assert utilization.score == pytest.approx(40 + 50 * 0.2 / 0.3)
    assert financial.score == 89.33


def test_several_metered_metrics_need_the_commitment_metric_named(rules):
    usage = {"api_calls": DailySeries(days_ago(29), (1.0,) * 30), "rows": DailySeries(TODAY, (1,))}
    utilization = health(acme(usage=usage), rules).dimensions[3].metrics[1]
    assert utilization.score is None
    assert "contract_utilization.usage_metric" in utilization.evidence


def test_an_unknown_sentiment_value_is_missing_not_guessed(rules):
    relationship = health(acme(crm={"csm_sentiment": "meh"}), rules).dimensions[1]
    sentiment = relationship.metrics[1]
    assert sentiment.score is None
    assert sentiment.evidence == "CSM sentiment 'meh' is not one of the values in scoring.yaml"


@pytest.mark.parametrize(
    ("failed", "score", "band"),
    [(0, 100, "green"), (1, 70, "green"), (2, 40, "yellow"), (3, 20, "red")],
)
def test_bands_on_real_states_at_the_edges(rules, failed, score, band):
    """Only payment history has data: 1 failed invoice scores exactly 70, 2 exactly 40."""
    invoices = tuple(
        Invoice(f"in_{m}", days_ago(30 * m), "failed" if m < failed else "paid") for m in range(6)
    )
    h = health(AccountState(account_id=1, today=TODAY, invoices=invoices), rules)
    assert (h.score, h.band) == (score, band)
    assert health_gate(h, rules).open == (band == "green")
    assert [line.split(" (")[0] for line in h.missing] == [
        "product",
        "relationship",
        "support",
        "financial: contract utilization",
    ]


@pytest.mark.parametrize(
    ("score", "band"),
    [(0, "red"), (39.99, "red"), (40, "yellow"), (69.99, "yellow"), (70, "green"), (100, "green")],
)
def test_health_band_edges(rules, score, band):
    assert health_band(score, rules.health.bands) == band


def test_trend_compares_with_the_same_function_thirty_days_ago(rules):
    """A P1 opened 40 days ago and closed 10 days ago: open then, closed now."""
    tickets = (
        Ticket("t1", days_ago(40), priority="p1", status="closed", closed_on=days_ago(10)),
        Ticket("t2", days_ago(70), priority="p3", status="closed", closed_on=days_ago(69)),
    )
    state = AccountState(account_id=1, today=TODAY, tickets=tickets)
    h = assess_health(state, rules)
    then = health(state, rules, as_of=days_ago(30))
    assert then.dimensions[2].metrics[0].evidence == "1 open P1 ticket (oldest opened 2026-04-22)"
    # Now: 0 open P1s (100) and 0 tickets in 30 days vs 2 in the 90 before (ratio 1/1.67: 100).
    # Then: 1 open P1 (60) and 1 ticket in 30 days vs 1 in the 90 before (2/1.33 = 1.5: 70).
    assert (h.score, then.score) == (100, round(0.4 / 0.7 * 60 + 0.3 / 0.7 * 70, 2))
    assert h.trend is not None
    assert (h.trend.previous_as_of, h.trend.previous_score) == (days_ago(30), 64.29)
    assert (h.trend.change, h.trend.direction) == (35.71, "rising")
    assert h.trend.evidence == "30-day trend rising: up 35.71 points from 64.29 on 2026-05-02"


def test_trend_falling_flat_and_unknown(rules):
    def trend_of(invoices: tuple[Invoice, ...]):
        h = assess_health(AccountState(account_id=1, today=TODAY, invoices=invoices), rules)
        return h.trend

    falling = trend_of((Invoice("a", days_ago(100), "paid"), Invoice("b", days_ago(10), "failed")))
    assert (falling.change, falling.direction) == (-30, "falling")
    flat = trend_of((Invoice("a", days_ago(100), "paid"), Invoice("b", days_ago(10), "paid")))
    assert (flat.change, flat.direction) == (0, "flat")
    assert flat.evidence == "30-day trend flat: unchanged from 100 on 2026-05-02"
    unknown = trend_of((Invoice("b", days_ago(10), "paid"),))
    assert (unknown.change, unknown.direction, unknown.previous_score) == (None, "unknown", None)
    assert unknown.evidence == (
        "30-day trend unknown: no health score for 2026-05-02 to compare with"
    )


def test_the_past_view_does_not_see_later_events(rules):
    state = acme()
    then = health(state, rules, as_of=days_ago(30))
    relationship = {m.name: m for m in then.dimensions[1].metrics}
    # The NPS of 20 days ago is not known yet; the one of 200 days ago is.
    assert relationship["nps"].evidence.startswith("NPS 6.0 average of 1 respondent")
    # The interaction 14 days ago lies after the view and the CRM keeps no history of it.
    assert relationship["last_interaction"].score is None
    assert relationship["exec_sponsor_activity"].evidence.endswith("0 days ago (2026-05-02)")


def test_crm_history_gives_the_past_value(rules):
    state = acme(crm_history={"csm_sentiment": ((days_ago(90), "negative"),)})
    now = health(state, rules).dimensions[1].metrics[1]
    then = health(state, rules, as_of=days_ago(30)).dimensions[1].metrics[1]
    assert (now.score, then.score) == (60, 15)


def test_a_departed_champion_and_sponsor_count_against_health(rules):
    contacts = (
        Contact("c1", champion=True, left_company=True),
        Contact("c2", exec_sponsor=True, left_company=True),
        Contact("c3"),
    )
    metrics = {m.name: m for m in health(acme(contacts=contacts), rules).dimensions[1].metrics}
    assert (metrics["champion_present"].score, metrics["champion_present"].evidence) == (
        0,
        "champion left the company, none among 3 contacts",
    )
    assert metrics["exec_sponsor_activity"].score == 0


# --- readiness ---------------------------------------------------------------------------------


def signal(name: str, category: str, strength: float) -> Signal:
    return Signal(name, category, strength, f"{name} evidence at {strength:.2f}")


def ready(rules: ScoringRules, *signals: Signal, state: AccountState | None = None):
    state = state or acme()
    return readiness(signals, health(state, rules), state, rules)


def test_one_category_has_no_multiplier(rules):
    r = ready(
        rules, signal("seat_utilization", "product", 0.8), signal("invite_velocity", "product", 0.5)
    )
    # 35 x 0.8 + 20 x 0.5
    assert (r.points, r.convergence.multiplier, r.score, r.band) == (38, 1.0, 38, "cold")
    assert r.convergence.reason == "signals from 1 category (product): no multiplier"
    assert [(c.signal, c.points) for c in r.contributions] == [
        ("seat_utilization", 28),
        ("invite_velocity", 10),
    ]


def test_two_categories_multiply_by_1_2(rules):
    r = ready(
        rules,
        signal("seat_utilization", "product", 0.8),
        signal("usage_near_cap", "commercial", 0.6),
    )
    # (28 + 21) x 1.2
    assert (r.points, r.convergence.multiplier, r.score, r.band) == (49, 1.2, 58.8, "warm")
    assert r.convergence.categories == ("commercial", "product")
    assert r.convergence.reason == (
        "signals from 2 categories (commercial, product) fire together: x1.2"
    )


def test_three_categories_multiply_by_1_35_and_four_keep_it(rules):
    three = ready(
        rules,
        signal("seat_utilization", "product", 0.4),
        signal("usage_near_cap", "commercial", 0.4),
        signal("plan_limit_ticket", "support", 0.4),
    )
    # (14 + 14 + 10) x 1.35
    assert (three.points, three.convergence.multiplier, three.score) == (38, 1.35, 51.3)
    four = ready(
        rules,
        signal("seat_utilization", "product", 0.4),
        signal("usage_near_cap", "commercial", 0.4),
        signal("plan_limit_ticket", "support", 0.4),
        signal("champion_promotion", "relationship", 0.25),
    )
    assert (four.points, four.convergence.multiplier, four.score) == (48, 1.35, 64.8)


def test_readiness_is_capped_at_100(rules):
    r = ready(
        rules,
        signal("seat_utilization", "product", 1.0),
        signal("usage_near_cap", "commercial", 1.0),
        signal("champion_promotion", "relationship", 1.0),
    )
    assert (r.points, r.score, r.capped, r.band) == (110, 100, True, "hot")


def test_no_signals_is_zero_and_cold(rules):
    r = ready(rules)
    assert (r.score, r.band, r.contributions, r.convergence.reason) == (
        0,
        "cold",
        (),
        "no active signals",
    )


def test_the_strongest_of_a_repeated_signal_counts_once(rules):
    r = ready(
        rules,
        signal("usage_near_cap", "commercial", 0.5),
        signal("usage_near_cap", "commercial", 0.9),
    )
    assert r.score == pytest.approx(35 * 0.9)
    assert [(c.strength, c.counted, c.points) for c in r.contributions] == [
        (0.9, True, pytest.approx(31.5)),
        (0.5, False, 0),
    ]


def test_a_weaker_repeat_still_brings_its_category_to_the_convergence(rules):
    """Strengthening one signal must never lower readiness by taking a category away."""
    r = ready(
        rules,
        signal("champion_promotion", "product", 0.25),
        signal("champion_promotion", "commercial", 0.375),
        signal("api_volume_growth", "commercial", 1.0),
    )
    assert r.convergence.categories == ("commercial", "product")
    assert r.score == pytest.approx((40 * 0.375 + 25) * 1.2)


def test_zero_strength_is_not_active_and_unlisted_signals_use_the_default_weight(rules):
    r = ready(
        rules,
        signal("seat_utilization", "product", 0.0),
        signal("usage_near_cap", "commercial", 0.0),
        signal("beta_program_interest", "product", 1.0),
    )
    assert [(c.signal, c.weight) for c in r.contributions] == [("beta_program_interest", 15)]
    assert (r.score, r.convergence.multiplier) == (15, 1.0)


@pytest.mark.parametrize(
    ("score", "band"), [(39.99, "cold"), (40, "warm"), (69.99, "warm"), (70, "hot")]
)
def test_readiness_band_edges(rules, score, band):
    assert readiness_band(score, rules.readiness.bands) == band


# --- gate and window ---------------------------------------------------------------------------


def at(score: float | None, rules: ScoringRules) -> Health:
    return Health(TODAY, score, health_band(score, rules.health.bands), ())


@pytest.mark.parametrize(
    ("score", "is_open", "action"),
    [
        (100, True, "expansion"),
        (70, True, "expansion"),
        (69.99, False, "save_play"),
        (40, False, "save_play"),
        (12, False, "save_play"),
    ],
)
def test_gate_opens_only_on_green(rules, score, is_open, action):
    gate = health_gate(at(score, rules), rules)
    assert (gate.open, gate.action) == (is_open, action)


def test_gate_reasons(rules):
    assert health_gate(at(69.99, rules), rules).reason == (
        "health yellow (69.99), below green (70): save play instead"
    )
    assert (
        health_gate(at(70, rules), rules).reason == "health green (70): expansion can be surfaced"
    )


def test_unknown_health_holds_expansion_and_says_why(rules):
    state = AccountState(account_id=7, today=TODAY)
    r = readiness([signal("seat_utilization", "product", 1.0)], health(state, rules), state, rules)
    assert r.score == 35  # readiness is still computed and shown
    assert (r.gate.open, r.gate.action) == (False, "hold")
    assert r.gate.reason == (
        "health unknown: no data for product, relationship, support, financial; "
        "expansion waits until health can be scored"
    )


def test_the_open_bands_are_configurable(rules):
    lenient = rules.model_copy(update={"gate": GateRules(open_bands=("green", "unknown"))})
    assert health_gate(at(None, rules), lenient).open
    assert not health_gate(at(69.99, rules), lenient).open


@pytest.mark.parametrize(
    ("days", "window"),
    [
        (0, "renewal_pressure"),
        (41, "renewal_pressure"),
        (42, "closing"),
        (89, "closing"),
        (90, "open"),
        (400, "open"),
        (None, "unknown"),
        (-1, "unknown"),
    ],
)
def test_window_edges(rules, days, window):
    assert timing_window(days, rules.window).name == window


def test_window_reasons(rules):
    renewal = date(2026, 9, 29)
    assert timing_window(120, rules.window, renewal).reason == (
        "renewal in 120 days (2026-09-29): the best time for an expansion conversation"
    )
    assert timing_window(41, rules.window).reason == (
        "renewal in 41 days: expansion folds into the renewal conversation"
    )
    assert timing_window(-3, rules.window, renewal).reason == (
        "renewal date (2026-09-29) passed 3 days ago: no usable renewal date on record"
    )
    assert timing_window(None, rules.window).reason == (
        "no renewal date: no usable renewal date on record"
    )


def test_the_window_says_whether_the_renewal_date_is_the_crms_or_the_billing_terms(rules):
    renewal = TODAY + timedelta(days=120)
    from_billing = assess(acme(), (), rules).readiness.window.reason
    from_crm = assess(acme(crm={"contract_renewal_on": renewal.isoformat()}), (), rules)
    assert f"({renewal.isoformat()}, the end of the billing term)" in from_billing
    assert f"({renewal.isoformat()}, the CRM's contract renewal date)" in (
        from_crm.readiness.window.reason
    )


def test_readiness_carries_the_accounts_window(rules):
    state = acme(subscription=dataclasses.replace(acme().subscription, renewal_on=days_ago(-60)))
    r = ready(rules, state=state)
    assert (r.window.name, r.window.days_to_renewal, r.window.renewal_on) == (
        "closing",
        60,
        date(2026, 7, 31),
    )


# --- explain -----------------------------------------------------------------------------------

EXPLANATION = """\
Acme Corp (account 42), as of 2026-06-01

Health 88.75/100 green; 30-day trend rising: up 16.43 points from 72.32 on 2026-05-02
  product 85/100 (weight 35%, counts 43.75%)
    - active users 80/100: 35 of 50 seats active in 30 days (70%)
    - DAU trend 90/100: DAU up 10% over 30 days (average 22.0 vs 20.0)
    - adoption breadth 86.67/100: 6 of 9 core feature categories used in 30 days
  relationship 85/100 (weight 25%, counts 31.25%)
    - NPS 80/100: NPS 8.0 average of 1 respondent in 365 days (latest 8 on 2026-05-12)
    - CSM sentiment 60/100: CSM sentiment Neutral
    - exec sponsor activity 100/100: executive sponsor last engaged 30 days ago (2026-05-02)
    - champion 100/100: champion present (1 of 2 contacts)
    - last meaningful interaction 100/100: last meaningful interaction 14 days ago (2026-05-18)
  support: no data (weight 20%, renormalized over the others)
    - open P1s missing: no support tickets on record
    - ticket volume trend missing: no support tickets on record
    - CSAT missing: no support tickets on record
  financial 100/100 (weight 20%, counts 25%)
    - payment history 100/100: 12 of 12 invoices paid in 365 days
    - contract utilization 100/100: 30,000 api_calls in 30 days vs 30,000 committed (100%)
  Missing: support (no data)

Readiness 75.6/100 hot
  - usage_near_cap (commercial): strength 1.00 x weight 35 = 35 points
      api_calls at 91% of the 40,000 cap for 16 consecutive days
  - seat_utilization (product): strength 0.80 x weight 35 = 28 points
      43 of 50 seats active (86%), up from 31 (62%) 60 days ago
  - usage_near_cap (commercial): strength 0.50, not counted: a stronger usage_near_cap counts
      seats at 86% of the cap
  63 points x1.2 = 75.6
  Convergence: signals from 2 categories (commercial, product) fire together: x1.2
  Gate: open (expansion): health green (88.75): expansion can be surfaced
  Window: open: renewal in 120 days (2026-09-29, the end of the billing term): \
the best time for an expansion conversation
"""


def explained_signals() -> list[Signal]:
    return [
        Signal("usage_near_cap", "commercial", 0.5, "seats at 86% of the cap"),
        Signal(
            "seat_utilization",
            "product",
            0.8,
            "43 of 50 seats active (86%), up from 31 (62%) 60 days ago",
        ),
        Signal(
            "usage_near_cap",
            "commercial",
            1.0,
            "api_calls at 91% of the 40,000 cap for 16 consecutive days",
        ),
    ]


def test_explanation_text(rules):
    assessment = assess(acme(tickets=()), explained_signals(), rules)
    assert render_explanation(assessment) == EXPLANATION


def test_explanation_is_deterministic_whatever_the_signal_order(rules):
    state = acme(tickets=())
    texts = {
        render_explanation(assess(state, order, rules))
        for order in (explained_signals(), list(reversed(explained_signals())))
    }
    assert len(texts) == 1


def test_explanation_of_an_account_without_data(rules):
    text = render_explanation(assess(AccountState(account_id=7, today=TODAY), [], rules))
    assert text.splitlines()[:3] == [
        "account 7, as of 2026-06-01",
        "",
        "Health unknown; 30-day trend unknown: no health score for 2026-05-02 to compare with",
    ]
    assert "  product: no data (weight 35%, renormalized over the others)" in text
    assert "  Gate: closed (hold): health unknown: no data for product" in text
    assert "  Window: unknown: no renewal date: no usable renewal date on record" in text


# --- rules file --------------------------------------------------------------------------------


def test_the_shipped_rules_load_with_the_documented_defaults(rules):
    dims = rules.health.dimensions
    assert [d.weight for d in dims.by_name().values()] == [0.35, 0.25, 0.2, 0.2]
    assert (rules.health.bands.green, rules.health.bands.yellow) == (70, 40)
    assert rules.readiness.convergence == {2: 1.2, 3: 1.35}
    assert (rules.readiness.bands.hot, rules.readiness.bands.warm) == (70, 40)
    assert rules.gate.open_bands == ("green",)
    assert (rules.window.open_from_days, rules.window.closing_from_days) == (90, 42)


def broken_rules(tmp_path: Path, old: str, new: str) -> Settings:
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    path = tmp_path / "mappings" / "scoring.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return Settings.from_env({"MAPPINGS_DIR": str(tmp_path / "mappings")})


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "curve: [[0, 0], [0.4, 40], [0.7, 80], [0.85, 100]]",
            "curve: [[0, 100], [0.85, 0]]",
            "health.dimensions.product.active_users.curve: Value error, curve scores must not "
            "fall as the input grows",
        ),
        (
            "    weight: 0.35",
            "    weight: -1",
            "health.dimensions.product.weight: Input should be greater than or equal to 0",
        ),
        (
            "    seat_utilization: 35",
            "    seat_utilisation: 35",
            "readiness.weights: Value error, unknown signal(s) seat_utilisation",
        ),
        (
            "    3: 1.35",
            "    3: 1.1",
            "readiness.convergence: Value error, multipliers must be >= 1 and must not fall",
        ),
        (
            "closing_from_days: 42",
            "closing_from_days: 120",
            "window: Value error, closing_from_days must be below open_from_days",
        ),
        (
            "open_bands: [green]",
            "open_bands: [teal]",
            "gate.open_bands[0]: Input should be 'green'",
        ),
        ("  bands:\n    green: 70", "  bands:\n    gren: 70", "health.bands.gren: Extra inputs"),
    ],
)
def test_a_broken_rules_file_names_file_and_key_path(tmp_path, old, new, problem):
    settings = broken_rules(tmp_path, old, new)
    with pytest.raises(MappingError) as caught:
        score_rules(settings)
    message = str(caught.value)
    assert str(tmp_path / "mappings" / "scoring.yaml") in message
    assert problem in message


def test_an_edited_rules_file_is_picked_up_without_restart(tmp_path):
    settings = broken_rules(tmp_path, "    green: 70", "    green: 80")
    assert score_rules(settings).health.bands.green == 80
