"""Builders of realistic account histories for the signal tests: 120 days of daily data with a
weekday rhythm, noise and growth curves, tuned so that the quantity a signal measures lands
exactly where a test needs it (at, just below or just above a threshold)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import date, timedelta
from functools import cache
from random import Random

from expansion.mappings import load_model
from tests.support import ROOT
from workers.account_state import (
    AccountState,
    Contact,
    DailySeries,
    FeatureUse,
    Integration,
    NpsResponse,
    Subscription,
    TeaserClick,
    Ticket,
    User,
)
from workers.plans import Plans
from workers.signal_rules import SignalConfig, SignalRules, combine

TODAY = date(2026, 5, 15)  # a Friday
HISTORY_DAYS = 120
START = TODAY - timedelta(days=HISTORY_DAYS - 1)
WEEKEND_FACTOR = 0.3  # weekend traffic vs a weekday


@cache
def shipped_rules() -> SignalRules:
    path = ROOT / "mappings" / "signals.yaml"
    return combine(
        load_model(path, SignalConfig), load_model(ROOT / "mappings/plans.yaml", Plans), path
    )


def ago(days: int) -> date:
    return TODAY - timedelta(days=days)


def index(day: date) -> int:
    """Position of `day` in a series that starts on START."""
    return (day - START).days


# --- users and their activity -------------------------------------------------------------


def active_days(
    rng: Random, first: date, last: date = TODAY, weekday_rate: float = 0.7
) -> frozenset[date]:
    """Most weekdays, the odd weekend day, always the first day and at least one day a week."""
    days = {first}
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        rate = weekday_rate if day.weekday() < 5 else weekday_rate * 0.1
        if rng.random() < rate:
            days.add(day)
    for offset in range(0, (last - first).days + 1, 7):
        block = [first + timedelta(days=offset + i) for i in range(7)]
        block = [d for d in block if d <= last]
        if not days.intersection(block):
            days.add(rng.choice(block))
    return frozenset(days)


def make_user(
    rng: Random,
    user_id: str,
    first_seen: date,
    last: date = TODAY,
    *,
    domain: str = "acme.com",
    department: str = "Operations",
    advanced_since: date | None = None,
) -> User:
    days = active_days(rng, first_seen, last)
    return User(
        user_id=user_id,
        first_seen=first_seen,
        last_active=max(days),
        active_days=days,
        email_domain=domain,
        department=department,
        advanced_since=advanced_since,
    )


def invited_user(user_id: str, invited_on: date) -> User:
    """Invited, never active."""
    return User(user_id=user_id, first_seen=invited_on, last_active=None, invited_on=invited_on)


def team(rng: Random, count: int, prefix: str, first_days_ago: tuple[int, int], **kw) -> list[User]:
    """`count` users first seen between the two day offsets (inclusive), active until today."""
    low, high = first_days_ago
    return [
        make_user(rng, f"{prefix}-{i}", ago(rng.randint(low, high)), **kw) for i in range(count)
    ]


def dau_series(users: Iterable[User]) -> DailySeries:
    counts = [0.0] * HISTORY_DAYS
    for user in users:
        for day in user.active_days:
            if START <= day <= TODAY:
                counts[index(day)] += 1
    return DailySeries(START, tuple(counts))


# --- daily flows (API calls, metered usage) -----------------------------------------------


def flow(rng: Random, level: Callable[[int], float], noise: float = 0.1) -> list[float]:
    """Daily values for the 120 days: `level(i)` on weekdays, less at weekends, with noise."""
    values = []
    for i in range(HISTORY_DAYS):
        weekday = (START + timedelta(days=i)).weekday() < 5
        factor = 1.0 if weekday else WEEKEND_FACTOR
        values.append(max(level(i) * factor * (1 + rng.uniform(-noise, noise)), 0.0))
    return values


def fit_total(values: list[float], last_day: date, days: int, total: int) -> None:
    """Rescale the `days` values ending on `last_day` to whole numbers summing to `total`,
    keeping their shape (largest remainders get the rounding)."""
    first = index(last_day) - days + 1
    window = values[first : index(last_day) + 1]
    scaled = [v * total / sum(window) for v in window]
    whole = [math.floor(v) for v in scaled]
    by_remainder = sorted(range(days), key=lambda i: scaled[i] - whole[i], reverse=True)
    for i in by_remainder[: total - sum(whole)]:
        whole[i] += 1
    values[first : first + days] = [float(v) for v in whole]


def growth_curve(start: float, end: float) -> Callable[[int], float]:
    """Exponential growth from `start` on START to `end` on TODAY."""
    rate = math.log(end / start) / (HISTORY_DAYS - 1)
    return lambda i: start * math.exp(rate * i)


def series(values: Sequence[float]) -> DailySeries:
    return DailySeries(START, tuple(values))


# --- the quiet account every book starts from ---------------------------------------------


def base_account(seed: int = 1) -> AccountState:
    """A healthy, steady mid-size account on which no signal fires: 30 of 50 seats active, flat
    API traffic, usage well under its limits, nothing new lately."""
    rng = Random(seed)
    users = team(rng, 28, "u", (100, 119)) + team(rng, 2, "v", (70, 90))
    api = flow(rng, lambda i: 4_000)
    contacts = [5_000 + 2 * i + rng.randint(-5, 5) for i in range(HISTORY_DAYS)]
    return AccountState(
        account_id=1,
        today=TODAY,
        name="Acme Logistics",
        subscription=Subscription(
            tier="growth",
            seats=50,
            arr=30_000.0,
            renewal_on=TODAY + timedelta(days=200),
            status="active",
            limits={"api_calls": 1_000_000, "contacts": 10_000},
            limit_periods={"api_calls": "month", "contacts": "total"},
        ),
        daily_active_users=dau_series(users),
        licensed_seats=series([50.0] * HISTORY_DAYS),
        api_calls=series(api),
        usage={"contacts": series(contacts)},
        users=tuple(users),
        features=tuple(_base_features(users)),
        integrations=(
            Integration("slack", "messaging", ago(100)),
            Integration("salesforce", "crm", ago(80)),
        ),
        teaser_clicks=(
            TeaserClick("sso_scim", "scale", ago(75), "u-1"),
            TeaserClick("audit_log", "scale", ago(12), "u-2"),
        ),
        tickets=(
            Ticket("T-101", ago(95), "Password reset email not arriving", "", "p3", "closed", 5),
            Ticket("T-117", ago(41), "Dashboard colours", "How do I change the theme?", "p4"),
            Ticket("T-130", ago(9), "CSV import fails", "Encoding error on upload.", "p3"),
        ),
        contacts=(
            Contact(
                "c-1",
                "Operations Manager",
                ((ago(400), "Operations Manager"),),
                champion=True,
                last_engaged_on=ago(20),
            ),
            Contact(
                "c-2",
                "VP Operations",
                ((ago(500), "VP Operations"),),
                exec_sponsor=True,
                last_engaged_on=ago(100),
            ),
        ),
        nps=(NpsResponse(7, ago(40), "c-1"),),
        crm={
            "employees": 420,
            "department_headcount": 60,
            "using_department": "Operations",
            "domain": "acme.com",
            "products": "Core",
            "departments": ["Operations", "Sales", "Finance"],
        },
        crm_history={
            "employees": ((ago(300), 410), (ago(150), 418)),
            "department_headcount": ((ago(300), 60),),
            "departments": ((ago(300), ["Operations", "Sales", "Finance"]),),
        },
    )


def _base_features(users: Sequence[User]) -> list[FeatureUse]:
    used = {
        "dashboard_view": "dashboards",
        "report_builder": "reporting",
        "comments": "collaboration",
        "csv_export": "exports",
        "threshold_alerts": "alerts",
    }
    return [
        feature_use(name, category, {u.user_id: ago(i % 7) for i, u in enumerate(users[:12])})
        for name, category in used.items()
    ]


def feature_use(
    feature: str,
    category: str | None,
    users_last_used: dict[str, date],
    tier: str | None = None,
    first_used: date | None = None,
) -> FeatureUse:
    return FeatureUse(
        feature=feature,
        tier=tier,
        category=category,
        first_used=first_used or ago(110),
        last_used=max(users_last_used.values()),
        users_last_used=users_last_used,
    )


# --- books, one per signal ----------------------------------------------------------------


def seat_book(
    active_now: int,
    licensed: int = 50,
    active_60_days_ago: int | None = None,
    active_30_days_ago: int | None = None,
    seed: int = 7,
) -> AccountState:
    """Monthly active seats of exactly `active_60_days_ago` 60 days ago, `active_30_days_ago`
    30 days ago and `active_now` today (new users join over time; two churned long ago)."""
    then = active_now if active_60_days_ago is None else active_60_days_ago
    middle = (then + active_now) // 2 if active_30_days_ago is None else active_30_days_ago
    rng = Random(seed)
    users = (
        team(rng, then, "a", (61, 119))
        + team(rng, middle - then, "b", (30, 59))
        + team(rng, active_now - middle, "c", (0, 29))
        + [make_user(rng, f"gone-{i}", ago(119), ago(95)) for i in range(2)]
    )
    base = base_account(seed)
    return replace(
        base,
        users=tuple(users),
        daily_active_users=dau_series(users),
        licensed_seats=series([float(licensed)] * HISTORY_DAYS),
        subscription=replace(base.subscription, seats=licensed),  # type: ignore[arg-type]
    )


def invite_book(new_recently: int, new_before: int, seed: int = 11) -> AccountState:
    """20 established users, `new_before` first active in the 28 days before the last 14, and
    `new_recently` first active in the last 14 days (plus invitees who never showed up)."""
    rng = Random(seed)
    users = (
        team(rng, 20, "e", (43, 119))
        + team(rng, new_before, "p", (14, 41))
        + team(rng, new_recently, "n", (0, 13))
        + [invited_user("i-1", ago(5)), invited_user("i-2", ago(3))]
    )
    return replace(base_account(seed), users=tuple(users), daily_active_users=dau_series(users))


def near_cap_book(days_near: int, today_value: int = 8_760, seed: int = 13) -> AccountState:
    """Contacts stored (a total limit of 10,000) growing 20 a day with noise, at or above 8,500
    (85%) on exactly the last `days_near` days and below it before."""
    rng = Random(seed)
    crossing = index(TODAY) - days_near + 1
    values = []
    for i in range(HISTORY_DAYS):
        trend = today_value - 20 * (index(TODAY) - i)
        jitter = rng.randint(0, 15)
        values.append(float(max(trend, 8_500) + jitter if i >= crossing else min(trend, 8_499)))
    values[-1] = float(today_value)
    base = base_account(seed)
    return replace(base, usage={**base.usage, "contacts": series(values)})


def monthly_usage_book(
    march: int, april: int, may_pace: float = 0.6, seed: int = 17
) -> AccountState:
    """API calls (a monthly limit of 1,000,000) totalling exactly `march` and `april` in those
    calendar months, and running at `may_pace` of the limit since."""
    rng = Random(seed)
    values = flow(rng, growth_curve(20_000, 40_000))
    fit_total(values, date(2026, 3, 31), 31, march)
    fit_total(values, date(2026, 4, 30), 30, april)
    may_days = TODAY.day
    fit_total(values, TODAY, may_days, round(1_000_000 * may_pace * may_days / 31))
    return replace(base_account(seed), api_calls=series(values))


def api_growth_book(baseline: int, recent: int, seed: int = 19) -> AccountState:
    """API calls growing from about `baseline`/30 a day to `recent`/30 a day, with exactly
    `baseline` in the 30 days ending 60 days ago and `recent` in the last 30 days."""
    rng = Random(seed)
    values = flow(rng, growth_curve(baseline / 30 / 0.8, recent / 30 / 0.8))
    fit_total(values, ago(60), 30, baseline)
    fit_total(values, TODAY, 30, recent)
    return replace(base_account(seed), api_calls=series(values))


def velocity_book(last_30_days: int, before: int, seed: int = 23) -> AccountState:
    """API calls against the growth tier's 1,000,000 monthly limit: exactly `last_30_days` in
    the last 30 days and `before` in the 30 days before them."""
    rng = Random(seed)
    values = flow(rng, growth_curve(before / 30 / 0.8 * 0.7, last_30_days / 30 / 0.8))
    fit_total(values, ago(30), 30, before)
    fit_total(values, TODAY, 30, last_30_days)
    return replace(base_account(seed), api_calls=series(values))


def integration_book(*connected: Integration) -> AccountState:
    base = base_account()
    return replace(base, integrations=base.integrations + connected)


def teaser_book(clicks_in_window: int, trial_users: int = 0, seed: int = 29) -> AccountState:
    """Teaser clicks on scale-tier features: a steady trickle before the last 30 days and
    `clicks_in_window` within them; `trial_users` users on a scale-tier feature lately."""
    rng = Random(seed)
    features = ("sso_scim", "audit_log", "advanced_reports")
    older = [TeaserClick("sso_scim", "scale", ago(rng.randint(31, 119)), "u-3") for _ in range(6)]
    recent = [
        TeaserClick(features[i % 3], "scale", ago(rng.randint(0, 29)), f"u-{i % 4}")
        for i in range(clicks_in_window)
    ]
    base = base_account(seed)
    extra = ()
    if trial_users:
        users = {f"u-{i}": ago(rng.randint(0, 29)) for i in range(trial_users)}
        extra = (feature_use("advanced_reports", "reporting", users, tier="scale"),)
    return replace(base, teaser_clicks=tuple(older + recent), features=base.features + extra)


CORE_CATEGORIES = (
    "dashboards",
    "reporting",
    "automation",
    "collaboration",
    "data_import",
    "exports",
    "alerts",
    "integrations",
    "administration",
)


def breadth_book(core_used: int, adjacent: bool = False, seed: int = 31) -> AccountState:
    """Features of the first `core_used` core categories used in the last 30 days, the others
    last used before that; with `adjacent`, a Work Ops feature in use too."""
    rng = Random(seed)
    features = []
    for n, category in enumerate(CORE_CATEGORIES):
        last_day = rng.randint(0, 29) if n < core_used else rng.randint(31, 100)
        users = {f"u-{i}": ago(last_day + i) for i in range(4)}
        features.append(feature_use(f"{category}_feature", category, users))
    if adjacent:
        features.append(feature_use("project_timeline", "work_ops", {"u-1": ago(3)}))
    return replace(base_account(seed), features=tuple(features))


def power_user_book(new_power_users: int, seed: int = 37) -> AccountState:
    """Three long-standing power users and `new_power_users` who took up advanced features in
    the last 30 days."""
    rng = Random(seed)
    base = base_account(seed)
    users = list(base.users)
    for i in range(3):
        users[i] = replace(users[i], advanced_since=ago(rng.randint(40, 110)))
    for i in range(3, 3 + new_power_users):
        users[i] = replace(users[i], advanced_since=ago(rng.randint(0, 29)))
    return replace(base, users=tuple(users))


def secondary_team_book(outside: int, seed: int = 41) -> AccountState:
    """The Operations team at acme.com, plus `outside` users active lately from Marketing or
    from the subsidiary's domain acme.de, and one from a personal mailbox."""
    rng = Random(seed)
    base = base_account(seed)
    newcomers = [
        make_user(rng, f"m-{i}", ago(rng.randint(3, 25)), department="Marketing")
        if i % 2 == 0
        else make_user(rng, f"d-{i}", ago(rng.randint(3, 25)), domain="acme.de", department="")
        for i in range(outside)
    ]
    newcomers.append(make_user(rng, "g-1", ago(8), domain="gmail.com", department=""))
    users = base.users + tuple(newcomers)
    return replace(base, users=users, daily_active_users=dau_series(users))


def ticket_book(*tickets: Ticket) -> AccountState:
    base = base_account()
    return replace(base, tickets=base.tickets + tickets)


def cross_sell_book(timeline_users: int, seed: int = 43) -> AccountState:
    """`timeline_users` users building project timelines in the last 30 days, two more before."""
    rng = Random(seed)
    users = {f"u-{i}": ago(rng.randint(0, 29)) for i in range(timeline_users)}
    users |= {"u-20": ago(45), "u-21": ago(70)}
    base = base_account(seed)
    timeline = feature_use("project_timeline", "work_ops", users)
    return replace(base, features=(*base.features, timeline))


def champion_book(*history: tuple[int, str], champion: bool = True) -> AccountState:
    """The champion's title history as (days ago, title) pairs, oldest first."""
    titles = tuple((ago(days), title) for days, title in history)
    base = base_account()
    contact = replace(
        base.contacts[0], title=titles[-1][1], title_history=titles, champion=champion
    )
    return replace(base, contacts=(contact, *base.contacts[1:]))


def convergence_book(
    nps: Sequence[int],
    dau_before: int = 600,
    dau_recent: int = 660,
    exec_engaged_days_ago: int | None = 14,
    advocacy_days_ago: int | None = None,
    seed: int = 47,
) -> AccountState:
    """NPS responses in the last months, daily active users totalling `dau_before` in the 30
    days before the last 30 and `dau_recent` in the last 30, an exec engaged some days ago and
    a G2 review."""
    rng = Random(seed)
    values = flow(rng, growth_curve(dau_before / 30 / 0.8 * 0.9, dau_recent / 30 / 0.8))
    fit_total(values, ago(30), 30, dau_before)
    fit_total(values, TODAY, 30, dau_recent)
    base = base_account(seed)
    responses = tuple(NpsResponse(score, ago(35 + 20 * i), f"c-{i}") for i, score in enumerate(nps))
    contacts = list(base.contacts)
    if exec_engaged_days_ago is not None:
        contacts[1] = replace(
            contacts[1], exec_sponsor=False, last_engaged_on=ago(exec_engaged_days_ago)
        )
    crm = dict(base.crm)
    if advocacy_days_ago is not None:
        crm["g2_review_on"] = ago(advocacy_days_ago).isoformat()
    return replace(
        base, daily_active_users=series(values), nps=responses, contacts=tuple(contacts), crm=crm
    )


def org_book(
    department_now: int | None = None,
    funding_days_ago: int | None = None,
    new_departments: Sequence[str] = (),
) -> AccountState:
    """The Operations department at 100 people 200 days ago, 104 120 days ago and
    `department_now` now; an optional funding round and new departments."""
    base = base_account()
    crm = dict(base.crm)
    history = dict(base.crm_history)
    if department_now is not None:
        history["department_headcount"] = ((ago(200), 100), (ago(120), 104))
        crm["department_headcount"] = department_now
    if funding_days_ago is not None:
        crm["funding_round_on"] = ago(funding_days_ago).isoformat()
        crm["funding_round"] = "Series B"
    if new_departments:
        crm["departments"] = [*crm["departments"], *new_departments]  # type: ignore[misc]
    return replace(base, crm=crm, crm_history=history)
