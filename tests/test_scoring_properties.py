"""Properties of health and readiness over generated accounts and signals: scores stay within
[0, 100], readiness never falls when a signal strengthens, health never falls when an input
improves, and the gate and the window switch exactly at their edges."""

from __future__ import annotations

import dataclasses
import itertools
import math
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from expansion.mappings import load_model
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
from workers.evidence import CATEGORIES, Signal
from workers.score_rules import SIGNAL_NAMES, ScoringRules
from workers.scoring import (
    Health,
    assess,
    curve,
    health,
    health_band,
    health_gate,
    readiness,
    render_explanation,
    timing_window,
)

RULES = load_model(ROOT / "mappings" / "scoring.yaml", ScoringRules)
TODAY = date(2026, 6, 1)
CORE = RULES.health.dimensions.product.adoption_breadth.core_categories
SENTIMENTS = sorted(RULES.health.dimensions.relationship.csm_sentiment.values)


def ago(n: int) -> date:
    return TODAY - timedelta(days=n)


# --- strategies --------------------------------------------------------------------------------

offsets = st.integers(min_value=0, max_value=150)


@st.composite
def users(draw: st.DrawFn) -> tuple[User, ...]:
    found = []
    for i in range(draw(st.integers(0, 25))):
        active = draw(st.frozensets(offsets, max_size=6))
        first_seen = max(active, default=0) + draw(st.integers(0, 30))
        last_active = ago(min(active)) if active else None
        found.append(User(f"u{i}", ago(first_seen), last_active, frozenset(map(ago, active))))
    return tuple(found)


def series(low: float, high: float) -> st.SearchStrategy[DailySeries | None]:
    values = st.lists(st.floats(low, high, allow_nan=False), max_size=130)
    return st.none() | st.builds(
        lambda start, v: DailySeries(ago(start), tuple(v)), offsets, values
    )


def feature(category: str, first: int, span: int) -> FeatureUse:
    return FeatureUse(category, None, category, ago(first), ago(max(0, first - span)))


features = st.lists(
    st.builds(feature, st.sampled_from((*CORE, "labs")), offsets, st.integers(0, 150)),
    max_size=12,
)

contacts = st.lists(
    st.builds(
        Contact,
        contact_id=st.text("abc", min_size=1, max_size=3),
        champion=st.booleans(),
        left_company=st.booleans(),
        exec_sponsor=st.booleans(),
        last_engaged_on=st.none() | offsets.map(ago),
    ),
    max_size=4,
)

nps = st.lists(
    st.builds(
        NpsResponse,
        st.integers(0, 10),
        st.integers(0, 400).map(ago),
        st.none() | st.sampled_from(("a", "b", "c")),
    ),
    max_size=6,
)


@st.composite
def tickets(draw: st.DrawFn) -> tuple[Ticket, ...]:
    found = []
    for i in range(draw(st.integers(0, 10))):
        created = draw(offsets)
        closed = draw(st.none() | st.integers(0, created))
        found.append(
            Ticket(
                f"t{i}",
                ago(created),
                priority=draw(st.sampled_from(("p1", "p2", "p3", None))),
                status=draw(st.sampled_from(("open", "pending", "closed"))),
                csat=draw(st.none() | st.integers(1, 5).map(float)),
                closed_on=None if closed is None else ago(closed),
            )
        )
    return tuple(found)


invoices = st.lists(
    st.builds(
        Invoice,
        st.text("xyz", min_size=1, max_size=3),
        st.integers(0, 400).map(ago),
        st.sampled_from(("paid", "failed", "void")),
    ),
    max_size=14,
)

subscriptions = st.none() | st.builds(
    Subscription,
    tier=st.just("growth"),
    seats=st.none() | st.integers(0, 60),
    arr=st.none(),
    renewal_on=st.none() | st.integers(-400, 60).map(ago),
    committed_usage=st.none() | st.floats(1, 1e6),
)


@st.composite
def states(draw: st.DrawFn) -> AccountState:
    usage = draw(series(0, 1e5))
    return AccountState(
        account_id=1,
        today=TODAY,
        subscription=draw(subscriptions),
        daily_active_users=draw(series(0, 500)),
        licensed_seats=draw(st.none() | series(1, 80)),
        usage={} if usage is None else {"api_calls": usage},
        users=draw(users()),
        features=tuple(draw(features)),
        contacts=tuple(draw(contacts)),
        nps=tuple(draw(nps)),
        tickets=draw(tickets()),
        invoices=tuple(draw(invoices)),
        crm=draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "csm_sentiment": st.sampled_from((*SENTIMENTS, "meh")),
                    "last_meaningful_interaction_on": st.integers(0, 200).map(ago),
                },
            )
        ),
    )


strengths = st.floats(0, 1, allow_nan=False)
signals = st.lists(
    st.builds(
        Signal,
        st.sampled_from([*sorted(SIGNAL_NAMES), "unlisted"]),
        st.sampled_from(CATEGORIES),
        strengths,
        st.just("evidence with 1 number"),
    ),
    max_size=8,
)


def readiness_of(found: list[Signal]) -> float:
    state = AccountState(account_id=1, today=TODAY)
    return readiness(found, health(state, RULES), state, RULES).score


def health_score(state: AccountState) -> float | None:
    return health(state, RULES).score


def not_lower(after: AccountState, before: AccountState) -> bool:
    old, new = health_score(before), health_score(after)
    return (old is None and new is None) or (old is not None and new is not None and new >= old)


# --- bounds ------------------------------------------------------------------------------------


def in_range(score: float | None) -> bool:
    return score is None or 0 <= score <= 100


@given(states(), signals)
def test_every_score_stays_within_0_and_100(state, found):
    assessment = assess(state, found, RULES)
    h = assessment.health
    assert in_range(h.score)
    assert h.trend is not None and in_range(h.trend.previous_score)
    for dimension in h.dimensions:
        assert in_range(dimension.score)
        assert all(in_range(m.score) for m in dimension.metrics)
    assert h.band == health_band(h.score, RULES.health.bands)
    assert 0 <= assessment.readiness.score <= 100
    assert render_explanation(assessment) == render_explanation(assess(state, found, RULES))


@given(states())
def test_the_trend_compares_with_the_full_health_score_of_its_day(state):
    trend = assess(state, [], RULES).health.trend
    assert trend is not None
    assert trend.previous_score == health(state, RULES, trend.previous_as_of).score


@given(states())
def test_unknown_health_is_never_green_and_never_opens_the_gate(state):
    h = health(state, RULES)
    if h.score is None:
        assert h.band == "unknown"
        assert not health_gate(h, RULES).open
        assert all(d.score is None for d in h.dimensions)
    else:
        assert any(d.score is not None for d in h.dimensions)


@given(signals)
def test_readiness_stays_within_0_and_100(found):
    assert 0 <= readiness_of(found) <= 100


# --- readiness is monotonic --------------------------------------------------------------------


@given(signals.filter(bool), st.data())
def test_readiness_never_falls_when_a_signal_strengthens(found, data):
    index = data.draw(st.integers(0, len(found) - 1))
    stronger = data.draw(st.floats(found[index].strength, 1))
    raised = list(found)
    raised[index] = dataclasses.replace(found[index], strength=stronger)
    assert readiness_of(raised) >= readiness_of(found)


@given(signals, signals)
def test_readiness_never_falls_when_signals_are_added(found, more):
    assert readiness_of(found + more) >= readiness_of(found)


@given(signals, st.permutations(range(8)))
def test_readiness_ignores_signal_order(found, order):
    shuffled = [found[i] for i in order if i < len(found)]
    assert readiness_of(shuffled) == readiness_of(found)


# --- health is monotonic in each dimension's inputs --------------------------------------------


@given(states(), st.data())
def test_health_never_falls_when_a_user_becomes_active(state, data):
    if not state.users:
        return
    index = data.draw(st.integers(0, len(state.users) - 1))
    user = state.users[index]
    active = dataclasses.replace(user, active_days=user.active_days | {TODAY})
    improved = dataclasses.replace(
        state, users=(*state.users[:index], active, *state.users[index + 1 :])
    )
    assert not_lower(improved, state)


@given(states(), st.floats(0, 100))
def test_health_never_falls_when_recent_dau_rises(state, lift):
    dau = state.daily_active_users
    if dau is None or dau.end is None:
        return
    recent_from = (ago(29) - dau.start).days
    values = tuple(v + lift if i >= recent_from else v for i, v in enumerate(dau.values))
    improved = dataclasses.replace(state, daily_active_users=DailySeries(dau.start, values))
    assert not_lower(improved, state)


@given(states(), st.data())
def test_health_never_falls_when_an_nps_score_rises(state, data):
    if not state.nps:
        return
    index = data.draw(st.integers(0, len(state.nps) - 1))
    response = state.nps[index]
    better = dataclasses.replace(response, score=data.draw(st.integers(response.score, 10)))
    improved = dataclasses.replace(state, nps=(*state.nps[:index], better, *state.nps[index + 1 :]))
    assert not_lower(improved, state)


@given(states(), st.data())
def test_health_never_falls_when_sentiment_improves(state, data):
    values = RULES.health.dimensions.relationship.csm_sentiment.values
    current = state.crm.get("csm_sentiment")
    if current not in values:
        return
    better = data.draw(st.sampled_from([v for v in SENTIMENTS if values[v] >= values[current]]))
    improved = dataclasses.replace(state, crm={**state.crm, "csm_sentiment": better})
    assert not_lower(improved, state)


@given(states())
def test_health_never_falls_when_p1s_are_closed(state):
    closed = tuple(
        dataclasses.replace(t, status="closed") if t.priority == "p1" and not t.closed_on else t
        for t in state.tickets
    )
    assert not_lower(dataclasses.replace(state, tickets=closed), state)


@given(states())
def test_health_never_falls_when_failed_invoices_are_paid(state):
    paid = tuple(
        dataclasses.replace(i, status="paid") if i.status == "failed" else i for i in state.invoices
    )
    assert not_lower(dataclasses.replace(state, invoices=paid), state)


@given(states(), st.integers(0, 200))
def test_health_never_falls_when_the_last_interaction_is_more_recent(state, days):
    last = state.crm.get("last_meaningful_interaction_on")
    if last is None:
        return
    recent = max(last, ago(days))
    improved = dataclasses.replace(
        state, crm={**state.crm, "last_meaningful_interaction_on": recent}
    )
    assert not_lower(improved, state)


# --- curves, gate and window at their edges ----------------------------------------------------


def shipped_curves() -> list[tuple[str, tuple[tuple[float, float], ...], bool]]:
    found = []
    for dimension in RULES.health.dimensions.by_name().values():
        for name, rule in dimension.metric_rules().items():
            points = getattr(rule, "curve", None)
            if points:
                rising = points[-1][1] >= points[0][1]
                found.append((name, points, rising))
    return found


@given(st.sampled_from(shipped_curves()), st.floats(-1e6, 1e6), st.floats(-1e6, 1e6))
def test_shipped_curves_are_monotonic_and_bounded(shipped, a, b):
    _, points, rising = shipped
    low, high = sorted((a, b))
    y_low, y_high = curve(points, low), curve(points, high)
    assert 0 <= y_low <= 100 and 0 <= y_high <= 100
    assert y_low <= y_high if rising else y_low >= y_high


def reference_curve(points, x):
    """curve as first written: min/max clamping over itertools.pairwise."""
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x < x1:
            y = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            return min(max(y, min(y0, y1)), max(y0, y1))
    return points[-1][1]


SCORES = st.sampled_from([0.0, -0.0, 25.0, 50.0, 100.0]) | st.floats(0, 100)


@given(
    st.lists(st.tuples(st.floats(-100, 100), SCORES), min_size=2, max_size=5),
    st.floats(-200, 200) | st.sampled_from([0.0, -0.0, math.inf]),
)
def test_curve_returns_exactly_what_min_max_clamping_returns(raw, x):
    points = tuple(sorted(dict(raw).items()))
    if len(points) < 2:
        return
    expected = reference_curve(points, x)
    got = curve(points, x)
    assert got == expected and math.copysign(1, got) == math.copysign(1, expected)


def gate_at(score: float | None):
    return health_gate(Health(TODAY, score, health_band(score, RULES.health.bands), ()), RULES)


@given(st.floats(0, 100))
def test_the_gate_opens_exactly_from_green(score):
    gate = gate_at(score)
    assert gate.open == (score >= RULES.health.bands.green)
    assert gate.action == ("expansion" if gate.open else "save_play")


def test_the_gate_at_its_edge():
    green = RULES.health.bands.green
    assert gate_at(green).open
    assert not gate_at(math.nextafter(green, 0)).open
    assert gate_at(None).action == "hold"


WINDOW_ORDER = ["renewal_pressure", "closing", "open"]


@given(st.integers(-1000, 3000) | st.none())
def test_the_window_follows_its_edges(days):
    window = timing_window(days, RULES.window).name
    if days is None or days < 0:
        assert window == "unknown"
    elif days >= RULES.window.open_from_days:
        assert window == "open"
    elif days >= RULES.window.closing_from_days:
        assert window == "closing"
    else:
        assert window == "renewal_pressure"


@given(st.integers(0, 3000), st.integers(0, 3000))
def test_more_days_to_renewal_never_give_a_worse_window(a, b):
    near, far = sorted((a, b))
    rank = WINDOW_ORDER.index
    assert rank(timing_window(near, RULES.window).name) <= rank(
        timing_window(far, RULES.window).name
    )


@given(
    offsets,
    st.lists(st.none() | st.floats(0, 1e6, allow_nan=False), max_size=40),
    st.integers(-10, 60),
    st.integers(1, 45),
)
def test_a_complete_total_is_the_total_of_a_window_with_every_day_known(start, values, end, days):
    daily = DailySeries(ago(start), tuple(values))
    last = ago(start) + timedelta(days=end)
    complete = daily.coverage(last, days) == days
    assert daily.complete_total(last, days) == (daily.total(last, days) if complete else None)
