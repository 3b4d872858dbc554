"""Health (SPEC §4.2), expansion readiness (§4.3), the health gate and the timing window as pure
functions of an AccountState and its signals; every score carries its evidence in numbers.

Missing data is never a zero: a metric without data says why and is left out, the weights of
what is left renormalize, and a health without any data is unknown (its gate holds expansion).

The 30-day trend evaluates the same functions `as_of` 30 days earlier over the same state.
Series, users' active days, tickets, NPS and invoices are dated, so the past view is exact for
them; flags without history (champion, executive sponsor, left company), a CRM field without
history in `crm_history`, and licensed seats without a daily series are taken as they are now,
and a feature counts as used on every day between its first and its last use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from statistics import fmean
from typing import Any

from workers.account_state import AccountState, DailySeries, Ticket
from workers.days import days_delta
from workers.evidence import Signal
from workers.score_rules import (
    ActiveUsersRule,
    AdoptionBreadthRule,
    ChampionRule,
    CsatRule,
    DauTrendRule,
    ExecSponsorRule,
    HealthBands,
    LastInteractionRule,
    NpsRule,
    OpenP1Rule,
    PaymentRule,
    ReadinessBands,
    ScoringRules,
    SentimentRule,
    TicketTrendRule,
    TrendRules,
    UtilizationRule,
    WindowRules,
)

LABELS = {
    "active_users": "active users",
    "dau_trend": "DAU trend",
    "adoption_breadth": "adoption breadth",
    "nps": "NPS",
    "csm_sentiment": "CSM sentiment",
    "exec_sponsor_activity": "exec sponsor activity",
    "champion_present": "champion",
    "last_interaction": "last meaningful interaction",
    "open_p1s": "open P1s",
    "ticket_volume_trend": "ticket volume trend",
    "csat": "CSAT",
    "payment_history": "payment history",
    "contract_utilization": "contract utilization",
}

# A metric reading: (score 0-100, evidence with numbers) or (None, why there is no data).
Reading = tuple[float | None, str]


@dataclass(frozen=True)
class Metric:
    name: str
    weight: float
    score: float | None
    evidence: str  # the numbers behind the score, or why there was no data

    @property
    def has_data(self) -> bool:
        return self.score is not None

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name.replace("_", " "))

    @property
    def counts(self) -> bool:
        return self.has_data and self.weight > 0


@dataclass(frozen=True)
class Dimension:
    name: str
    weight: float
    score: float | None  # None: no metric of the dimension had data
    metrics: tuple[Metric, ...]

    @property
    def has_data(self) -> bool:
        return self.score is not None

    @property
    def missing(self) -> tuple[Metric, ...]:
        return tuple(m for m in self.metrics if not m.has_data and m.weight > 0)

    @property
    def evidence(self) -> str:
        """E.g. "product 82/100: 41 of 50 seats active in 30 days (82%), DAU up 12% ..."."""
        if not self.has_data:
            return f"{self.name}: no data ({_reasons(self.missing)})"
        shown = ", ".join(m.evidence for m in self.metrics if m.counts)
        text = f"{self.name} {fmt_score(self.score)}/100: {shown}"
        if self.missing:
            text += f"; missing {_missing_metrics(self.missing)}"
        return text


@dataclass(frozen=True)
class Trend:
    days: int
    previous_as_of: date
    previous_score: float | None
    change: float | None
    direction: str  # rising | falling | flat | unknown

    @property
    def evidence(self) -> str:
        then = self.previous_as_of.isoformat()
        if self.change is None:
            return f"{self.days}-day trend unknown: no health score for {then} to compare with"
        if self.change == 0:
            moved = "unchanged"
        else:
            moved = f"{'up' if self.change > 0 else 'down'} {fmt_score(abs(self.change))} points"
        previous = fmt_score(self.previous_score)
        return f"{self.days}-day trend {self.direction}: {moved} from {previous} on {then}"


@dataclass(frozen=True)
class Health:
    as_of: date
    score: float | None  # None: unknown, no dimension had data
    band: str  # green | yellow | red | unknown
    dimensions: tuple[Dimension, ...]
    trend: Trend | None = None

    @property
    def effective_weights(self) -> dict[str, float]:
        """Each dimension's share of the score after renormalizing over those with data."""
        total = sum(d.weight for d in self.dimensions if d.has_data)
        return {
            d.name: (d.weight / total if d.has_data and total else 0.0) for d in self.dimensions
        }

    @property
    def missing(self) -> tuple[str, ...]:
        """What had no data: whole dimensions, then single metrics within scored dimensions."""
        lines = []
        for d in self.dimensions:
            if d.weight > 0 and not d.has_data:
                lines.append(f"{d.name} ({_reasons(d.missing)})")
            elif d.weight > 0 and d.missing:
                lines.append(f"{d.name}: {_missing_metrics(d.missing)}")
        return tuple(lines)


@dataclass(frozen=True)
class Contribution:
    signal: str
    category: str
    strength: float
    weight: float
    points: float  # weight x strength, or 0 for a weaker repeat of the same signal
    counted: bool
    evidence: str


@dataclass(frozen=True)
class Convergence:
    categories: tuple[str, ...]
    multiplier: float
    reason: str


@dataclass(frozen=True)
class Gate:
    open: bool
    action: str  # expansion | save_play | hold
    reason: str


@dataclass(frozen=True)
class Window:
    name: str  # open | closing | renewal_pressure | unknown
    days_to_renewal: int | None
    renewal_on: date | None
    reason: str


@dataclass(frozen=True)
class Readiness:
    score: float
    band: str  # hot | warm | cold
    contributions: tuple[Contribution, ...]
    points: float  # sum of the counted contributions, before the multiplier and the cap
    convergence: Convergence
    capped: bool
    gate: Gate
    window: Window


@dataclass(frozen=True)
class Assessment:
    account_id: int
    name: str | None
    as_of: date
    health: Health
    readiness: Readiness


# --- health ------------------------------------------------------------------------------------


def assess(state: AccountState, signals: Sequence[Signal], rules: ScoringRules) -> Assessment:
    """Health with its trend, then readiness gated by it, as of `state.today`."""
    health_now = assess_health(state, rules)
    return Assessment(
        account_id=state.account_id,
        name=state.name,
        as_of=state.today,
        health=health_now,
        readiness=readiness(signals, health_now, state, rules),
    )


def assess_health(state: AccountState, rules: ScoringRules) -> Health:
    """Health as of today with the trend against the same function as of `trend.days` ago."""
    plan = rules.health.dimensions.plan
    now = _health(View(state, state.today), plan, rules.health.bands)
    then = View(state, state.today - days_delta(rules.health.trend.days), explain=False)
    trend = _trend(now.score, then.as_of, _score(then, plan), rules.health.trend)
    return Health(now.as_of, now.score, now.band, now.dimensions, trend)


def health(state: AccountState, rules: ScoringRules, as_of: date | None = None) -> Health:
    """Health from what was known on `as_of` (default: `state.today`)."""
    plan = rules.health.dimensions.plan
    return _health(View(state, as_of or state.today), plan, rules.health.bands)


# Dimensions.plan: (dimension, its weight, ((metric, its rule), ...)) in scoring.yaml's order.
MetricPlan = tuple[tuple[str, float, tuple[tuple[str, Any], ...]], ...]


def _health(view: View, plan: MetricPlan, bands: HealthBands) -> Health:
    dimensions = tuple(
        [_dimension(name, weight, metric_rules, view) for name, weight, metric_rules in plan]
    )
    score = _weighted_mean([(d.weight, d.score) for d in dimensions])
    return Health(view.as_of, score, health_band(score, bands), dimensions)


def _score(view: View, plan: MetricPlan) -> float | None:
    """The score _health gives, without its evidence: all a trend compares."""
    dimensions = []
    for _, weight, metric_rules in plan:
        scores = [(rule.weight, METRICS[metric](view, rule)[0]) for metric, rule in metric_rules]
        dimensions.append((weight, _weighted_mean(scores)))
    return _weighted_mean(dimensions)


def health_band(score: float | None, bands: HealthBands) -> str:
    if score is None:
        return "unknown"
    if score >= bands.green:
        return "green"
    return "yellow" if score >= bands.yellow else "red"


def _dimension(
    name: str, weight: float, metric_rules: Iterable[tuple[str, Any]], view: View
) -> Dimension:
    metrics = tuple(
        [Metric(metric, rule.weight, *METRICS[metric](view, rule)) for metric, rule in metric_rules]
    )
    return Dimension(name, weight, _weighted_mean([(m.weight, m.score) for m in metrics]), metrics)


def _weighted_mean(pairs: Iterable[tuple[float, float | None]]) -> float | None:
    products, weights = [], []
    for weight, score in pairs:
        if score is not None and weight > 0:
            products.append(weight * score)
            weights.append(weight)
    if not weights:
        return None
    return round(math.fsum(products) / math.fsum(weights), 2)


def _trend(now: float | None, then_as_of: date, then: float | None, rules: TrendRules) -> Trend:
    if now is None or then is None:
        return Trend(rules.days, then_as_of, then, None, "unknown")
    change = round(now - then, 2)
    if abs(change) <= rules.flat_within:
        direction = "flat"
    else:
        direction = "rising" if change > 0 else "falling"
    return Trend(rules.days, then_as_of, then, change, direction)


class View:
    """The state as seen on one day, with what several metrics read worked out once. With
    `explain` off the metrics leave the evidence of a score empty (the trend compares scores)."""

    def __init__(self, state: AccountState, as_of: date, explain: bool = True) -> None:
        self.state = state
        self.as_of = as_of
        self.explain = explain
        self.licensed_seats = _licensed_seats(state, as_of)
        self.has_users = state.had_users_by(as_of)
        self.tickets = [t for t in state.tickets if t.created_on <= as_of]

    def active_seats(self, days: int) -> int:
        return self.state.active_seats(self.as_of, days)


def _licensed_seats(state: AccountState, as_of: date) -> int | None:
    on_day = state.licensed_seats.on(as_of) if state.licensed_seats else None
    if on_day is not None:
        return int(on_day)
    return state.subscription.seats if state.subscription else None


# --- product -----------------------------------------------------------------------------------


def active_users(view: View, rule: ActiveUsersRule) -> Reading:
    seats = view.licensed_seats
    if not seats:
        return None, "no licensed seat count"
    if not view.has_users:
        return None, "no product users on record"
    active = view.active_seats(rule.window_days)
    ratio = active / seats
    return curve(rule.curve, ratio), (
        f"{active} of {seats} seats active in {rule.window_days} days ({_pct(ratio)})"
        if view.explain
        else ""
    )


def dau_trend(view: View, rule: DauTrendRule) -> Reading:
    state, as_of = view.state, view.as_of
    series = state.daily_active_users
    if series is None:
        return None, "no daily active user series"
    days = rule.window_days
    recent = _window(series, as_of, days)
    before = _window(series, as_of - days_delta(days), days)
    if len(recent) < rule.min_days or len(before) < rule.min_days:
        return None, (
            f"DAU known on {len(recent)} and {len(before)} days of the last two {days}-day "
            f"windows, {rule.min_days} needed in each"
        )
    now, then = fmean(recent), fmean(before)
    change = _relative_change(now, then)
    return curve(rule.curve, change), (
        f"DAU {_change_text(change)} over {days} days (average {now:.1f} vs {then:.1f})"
        if view.explain
        else ""
    )


def adoption_breadth(view: View, rule: AdoptionBreadthRule) -> Reading:
    state, as_of = view.state, view.as_of
    known = [f for f in state.features if f.category and f.first_used <= as_of]
    if not known:
        return None, "no categorized feature usage recorded"
    first = as_of - days_delta(rule.window_days - 1)
    core = set(rule.core_categories)
    used = {f.category for f in known if f.last_used >= first and f.category in core}
    ratio = len(used) / len(core)
    return curve(rule.curve, ratio), (
        f"{len(used)} of {len(core)} core feature categories used in {rule.window_days} days"
        if view.explain
        else ""
    )


# --- relationship ------------------------------------------------------------------------------


def nps(view: View, rule: NpsRule) -> Reading:
    state, as_of = view.state, view.as_of
    first = as_of - days_delta(rule.window_days - 1)
    latest = {}
    for index, response in enumerate(sorted(state.nps, key=lambda r: r.day)):
        if first <= response.day <= as_of:
            latest[response.respondent or f"#{index}"] = response
    if not latest:
        return None, f"no NPS response in {rule.window_days} days"
    average = fmean(r.score for r in latest.values())
    if not view.explain:
        return curve(rule.curve, average), ""
    newest = max(latest.values(), key=lambda r: r.day)
    return curve(rule.curve, average), (
        f"NPS {average:.1f} average of {_count(len(latest), 'respondent')} in "
        f"{rule.window_days} days (latest {newest.score} on {newest.day.isoformat()})"
    )


def csm_sentiment(view: View, rule: SentimentRule) -> Reading:
    state, as_of = view.state, view.as_of
    raw = _crm_as_of(state, "csm_sentiment", as_of)
    if raw is None or str(raw).strip() == "":
        return None, "no CSM sentiment in the CRM"
    key = str(raw).strip().lower().replace(" ", "_").replace("-", "_")
    if key not in rule.values:
        return None, f"CSM sentiment {raw!r} is not one of the values in scoring.yaml"
    return rule.values[key], f"CSM sentiment {raw}"


def exec_sponsor_activity(view: View, rule: ExecSponsorRule) -> Reading:
    state, as_of = view.state, view.as_of
    sponsors = [c for c in state.contacts if c.exec_sponsor]
    if not sponsors:
        return None, "no executive sponsor on record"
    current = [c for c in sponsors if not c.left_company]
    if not current:
        return curve(rule.curve, math.inf), "the executive sponsor left the company"
    engaged = [c.last_engaged_on for c in current if c.last_engaged_on]
    known = [day for day in engaged if day <= as_of]
    if not known:
        when = f" before {as_of.isoformat()}" if engaged else ""
        return None, f"no executive sponsor engagement on record{when}"
    last = max(known)
    days = (as_of - last).days
    return curve(rule.curve, days), (
        f"executive sponsor last engaged {_count(days, 'day')} ago ({last.isoformat()})"
        if view.explain
        else ""
    )


def champion_present(view: View, rule: ChampionRule) -> Reading:
    contacts = view.state.contacts
    if not contacts:
        return None, "no contacts on record"
    champions = sum(1 for c in contacts if c.champion and not c.left_company)
    if champions:
        return rule.present, f"champion present ({champions} of {_count(len(contacts), 'contact')})"
    left = sum(1 for c in contacts if c.champion and c.left_company)
    why = f"champion left the company, none among {_count(len(contacts), 'contact')}"
    return rule.absent, (why if left else f"no champion among {_count(len(contacts), 'contact')}")


def last_interaction(view: View, rule: LastInteractionRule) -> Reading:
    state, as_of = view.state, view.as_of
    raw = _crm_as_of(state, "last_meaningful_interaction_on", as_of)
    if raw is None:
        raw = _crm_as_of(state, "last_meaningful_interaction_at", as_of)
    day = _as_date(raw)
    if day is None:
        return None, "no meaningful interaction on record"
    if day > as_of:
        return None, f"last meaningful interaction before {as_of.isoformat()} unknown"
    days = (as_of - day).days
    return curve(rule.curve, days), (
        f"last meaningful interaction {_count(days, 'day')} ago ({day.isoformat()})"
        if view.explain
        else ""
    )


# --- support -----------------------------------------------------------------------------------

NO_TICKETS = "no support tickets on record"


def open_p1s(view: View, rule: OpenP1Rule) -> Reading:
    as_of = view.as_of
    tickets = view.tickets
    if not tickets:
        return None, NO_TICKETS
    opened = [t.created_on for t in tickets if t.priority == "p1" and _open_on(t, as_of)]
    if not view.explain:
        return curve(rule.curve, len(opened)), ""
    oldest = f" (oldest opened {min(opened).isoformat()})" if opened else ""
    return curve(rule.curve, len(opened)), f"{_count(len(opened), 'open P1 ticket')}{oldest}"


def ticket_volume_trend(view: View, rule: TicketTrendRule) -> Reading:
    as_of = view.as_of
    tickets = view.tickets
    if not tickets:
        return None, NO_TICKETS
    split = as_of - days_delta(rule.window_days)
    start = split - days_delta(rule.baseline_days)
    recent = sum(1 for t in tickets if t.created_on > split)
    baseline = sum(1 for t in tickets if start < t.created_on <= split)
    rate = baseline * rule.window_days / rule.baseline_days
    return curve(rule.curve, (recent + 1) / (rate + 1)), (
        f"{_count(recent, 'ticket')} in the last {rule.window_days} days vs {rate:.1f} per "
        f"{rule.window_days} days in the {rule.baseline_days} days before"
        if view.explain
        else ""
    )


def csat(view: View, rule: CsatRule) -> Reading:
    as_of = view.as_of
    tickets = view.tickets
    if not tickets:
        return None, NO_TICKETS
    first = as_of - days_delta(rule.window_days - 1)
    ratings = [
        t.csat
        for t in tickets
        if t.csat is not None and first <= (t.closed_on or t.created_on) <= as_of
    ]
    if not ratings:
        return None, f"no CSAT rating in {rule.window_days} days"
    average = fmean(ratings)
    return curve(rule.curve, average), (
        f"CSAT {average:.1f}/5 from {_count(len(ratings), 'rated ticket')} "
        f"in {rule.window_days} days"
        if view.explain
        else ""
    )


def _open_on(ticket: Ticket, day: date) -> bool:
    if ticket.closed_on is not None:
        return ticket.closed_on > day
    return ticket.is_open


# --- financial ---------------------------------------------------------------------------------


def payment_history(view: View, rule: PaymentRule) -> Reading:
    state, as_of = view.state, view.as_of
    first = as_of - days_delta(rule.window_days - 1)
    invoices = [
        i for i in state.invoices if first <= i.day <= as_of and i.status in ("paid", "failed")
    ]
    if not invoices:
        return None, f"no invoices in {rule.window_days} days"
    failed = sorted(i.day for i in invoices if i.status == "failed")
    if not view.explain:
        return curve(rule.curve, len(failed)), ""
    text = (
        f"{len(invoices) - len(failed)} of {len(invoices)} invoices paid in {rule.window_days} days"
    )
    if failed:
        text += f", {len(failed)} failed (latest {failed[-1].isoformat()})"
    return curve(rule.curve, len(failed)), text


def contract_utilization(view: View, rule: UtilizationRule) -> Reading:
    subscription = view.state.subscription
    if subscription is not None and subscription.committed_usage:
        return _usage_vs_commitment(view, rule, subscription.committed_usage)
    if not rule.seats_as_commitment:
        return None, "no usage commitment on the contract"
    seats = view.licensed_seats
    if not seats or not view.has_users:
        return None, "no usage commitment and no seat usage on record"
    used = view.active_seats(rule.period_days)
    ratio = used / seats
    return curve(rule.curve, ratio), (
        f"{used} of {seats} licensed seats in use ({_pct(ratio)})" if view.explain else ""
    )


def _usage_vs_commitment(view: View, rule: UtilizationRule, committed: float) -> Reading:
    metric, series = _commitment_series(view.state, rule)
    if series is None:
        return None, metric
    values = _window(series, view.as_of, rule.period_days)
    if len(values) < rule.min_days:
        return None, (
            f"{metric} known on {_count(len(values), 'day')} of {rule.period_days}, "
            f"{rule.min_days} needed"
        )
    used = fmean(values) * rule.period_days
    ratio = used / committed
    if not view.explain:
        return curve(rule.curve, ratio), ""
    projected = "" if len(values) == rule.period_days else f" (from {len(values)} days of data)"
    return curve(rule.curve, ratio), (
        f"{_number(used)} {metric} in {rule.period_days} days{projected} vs "
        f"{_number(committed)} committed ({_pct(ratio)})"
    )


def _commitment_series(
    state: AccountState, rule: UtilizationRule
) -> tuple[str, DailySeries | None]:
    """(metric, its series), or (why there is none, None)."""
    metric = rule.usage_metric
    if metric is None:
        if len(state.usage) != 1:
            return (
                f"committed usage set but {_count(len(state.usage), 'metered metric')} on record; "
                "name one in scoring.yaml (contract_utilization.usage_metric)",
                None,
            )
        metric = next(iter(state.usage))
    series = state.usage.get(metric)
    if series is None and metric == "api_calls":
        series = state.api_calls
    return (metric, series) if series is not None else (f"no {metric} usage on record", None)


METRICS: dict[str, Callable[[View, Any], Reading]] = {
    "active_users": active_users,
    "dau_trend": dau_trend,
    "adoption_breadth": adoption_breadth,
    "nps": nps,
    "csm_sentiment": csm_sentiment,
    "exec_sponsor_activity": exec_sponsor_activity,
    "champion_present": champion_present,
    "last_interaction": last_interaction,
    "open_p1s": open_p1s,
    "ticket_volume_trend": ticket_volume_trend,
    "csat": csat,
    "payment_history": payment_history,
    "contract_utilization": contract_utilization,
}


# --- readiness, gate and window ----------------------------------------------------------------


def readiness(
    signals: Sequence[Signal], health_now: Health, state: AccountState, rules: ScoringRules
) -> Readiness:
    """Weighted strengths of the active signals (the strongest of each name counts), times the
    convergence multiplier, capped at 100; gated by health and placed in the renewal window."""
    contributions = _contributions(signals, rules.readiness.weights, rules.readiness.default_weight)
    counted = [c for c in contributions if c.counted]
    points = math.fsum(c.points for c in counted)
    # Every active signal's category counts, so strengthening a signal never drops a category.
    categories = tuple(sorted({c.category for c in contributions}))
    convergence = _convergence(categories, rules.readiness.convergence)
    raw = points * convergence.multiplier
    score = round(min(100.0, raw), 2)
    return Readiness(
        score=score,
        band=readiness_band(score, rules.readiness.bands),
        contributions=contributions,
        points=round(points, 2),
        convergence=convergence,
        capped=raw > 100.0,
        gate=health_gate(health_now, rules),
        window=timing_window(
            state.days_to_renewal(), rules.window, _renewal_on(state), _renewal_source(state)
        ),
    )


def readiness_band(score: float, bands: ReadinessBands) -> str:
    if score >= bands.hot:
        return "hot"
    return "warm" if score >= bands.warm else "cold"


def _contributions(
    signals: Sequence[Signal], weights: Mapping[str, float], default_weight: float
) -> tuple[Contribution, ...]:
    active = [s for s in signals if s.strength > 0]
    strongest: dict[str, Signal] = {}
    for signal in active:
        if signal.name not in strongest or signal.strength > strongest[signal.name].strength:
            strongest[signal.name] = signal
    contributions = []
    for signal in active:
        weight = weights.get(signal.name, default_weight)
        counted = strongest[signal.name] is signal
        points = weight * signal.strength if counted else 0.0
        contributions.append(
            Contribution(
                signal=signal.name,
                category=signal.category,
                strength=signal.strength,
                weight=weight,
                points=points,
                counted=counted,
                evidence=signal.evidence,
            )
        )
    return tuple(sorted(contributions, key=lambda c: (not c.counted, -c.points, c.signal)))


def _convergence(categories: tuple[str, ...], multipliers: Mapping[int, float]) -> Convergence:
    applicable = [count for count in multipliers if count <= len(categories)]
    listed = ", ".join(categories)
    if not categories:
        return Convergence(categories, 1.0, "no active signals")
    if not applicable:
        return Convergence(categories, 1.0, f"signals from 1 category ({listed}): no multiplier")
    multiplier = multipliers[max(applicable)]
    return Convergence(
        categories,
        multiplier,
        f"signals from {len(categories)} categories ({listed}) fire together: x{multiplier:g}",
    )


def health_gate(health_now: Health, rules: ScoringRules) -> Gate:
    """Expansion is surfaced only in the open bands (green); otherwise a save play, or a hold
    while health is unknown."""
    band = health_now.band
    shown = f"health {band}" + (
        f" ({fmt_score(health_now.score)})" if health_now.score is not None else ""
    )
    if band in rules.gate.open_bands:
        return Gate(True, "expansion", f"{shown}: expansion can be surfaced")
    if health_now.score is None:
        dims = ", ".join(d.name for d in health_now.dimensions if d.weight > 0)
        return Gate(
            False,
            "hold",
            f"health unknown: no data for {dims}; expansion waits until health can be scored",
        )
    green = fmt_score(rules.health.bands.green)
    return Gate(False, "save_play", f"{shown}, below green ({green}): save play instead")


def timing_window(
    days_to_renewal: int | None,
    rules: WindowRules,
    renewal_on: date | None = None,
    source: str | None = None,
) -> Window:
    """The window the renewal date puts the account in; `source` says where the date came from."""
    on = f" ({renewal_on.isoformat()}{f', {source}' if source else ''})" if renewal_on else ""
    if days_to_renewal is None:
        return Window("unknown", None, renewal_on, f"no renewal date: {rules.advice.unknown}")
    if days_to_renewal < 0:
        return Window(
            "unknown",
            days_to_renewal,
            renewal_on,
            f"renewal date{on} passed {_count(-days_to_renewal, 'day')} ago: "
            f"{rules.advice.unknown}",
        )
    if days_to_renewal >= rules.open_from_days:
        name, advice = "open", rules.advice.open
    elif days_to_renewal >= rules.closing_from_days:
        name, advice = "closing", rules.advice.closing
    else:
        name, advice = "renewal_pressure", rules.advice.renewal_pressure
    return Window(
        name,
        days_to_renewal,
        renewal_on,
        f"renewal in {_count(days_to_renewal, 'day')}{on}: {advice}",
    )


def _renewal_on(state: AccountState) -> date | None:
    return state.subscription.renewal_on if state.subscription else None


def _renewal_source(state: AccountState) -> str | None:
    """The CRM's contract date wins over the billing term's end (workers/rollups.py)."""
    renewal_on = _renewal_on(state)
    if renewal_on is None:
        return None
    crm_date = state.crm.get("contract_renewal_on")
    if crm_date is not None and str(crm_date)[:10] == renewal_on.isoformat():
        return "the CRM's contract renewal date"
    return "the end of the billing term"


# --- explanation -------------------------------------------------------------------------------


def render_explanation(assessment: Assessment) -> str:
    """The plain-text block `expansion explain` prints; the same assessment, the same text."""
    title = assessment.name or f"account {assessment.account_id}"
    if assessment.name:
        title += f" (account {assessment.account_id})"
    lines = [f"{title}, as of {assessment.as_of.isoformat()}", ""]
    lines += _health_lines(assessment.health)
    lines.append("")
    lines += _readiness_lines(assessment.readiness)
    return "\n".join(lines) + "\n"


def _health_lines(h: Health) -> list[str]:
    title = f"Health {fmt_score(h.score)}/100 {h.band}" if h.score is not None else "Health unknown"
    lines = [title + (f"; {h.trend.evidence}" if h.trend else "")]
    shares = h.effective_weights
    for d in h.dimensions:
        weight = f"weight {_share(d.weight)}"
        if not d.has_data:
            lines.append(f"  {d.name}: no data ({weight}, renormalized over the others)")
        else:
            counts = f"counts {_share(shares[d.name])}"
            lines.append(f"  {d.name} {fmt_score(d.score)}/100 ({weight}, {counts})")
        lines += [_metric_line(m) for m in d.metrics if m.weight > 0]
    gaps = [
        f"{d.name} (no data)"
        if not d.has_data
        else f"{d.name}: {', '.join(m.label for m in d.missing)}"
        for d in h.dimensions
        if d.weight > 0 and d.missing
    ]
    if gaps:
        lines.append("  Missing: " + "; ".join(gaps))
    return lines


def _metric_line(m: Metric) -> str:
    value = f"{fmt_score(m.score)}/100: " if m.has_data else "missing: "
    return f"    - {m.label} {value}{m.evidence}"


def _readiness_lines(r: Readiness) -> list[str]:
    lines = [f"Readiness {fmt_score(r.score)}/100 {r.band}"]
    for c in r.contributions:
        head = f"  - {c.signal} ({c.category}): strength {c.strength:.2f}"
        if c.counted:
            lines.append(f"{head} x weight {fmt_score(c.weight)} = {fmt_score(c.points)} points")
        else:
            lines.append(f"{head}, not counted: a stronger {c.signal} counts")
        lines.append(f"      {c.evidence}")
    if r.contributions:
        total = f"{fmt_score(r.points)} points x{r.convergence.multiplier:g} = {fmt_score(r.score)}"
        lines.append(f"  {total}" + (" (capped at 100)" if r.capped else ""))
    lines.append(f"  Convergence: {r.convergence.reason}")
    gate = "open" if r.gate.open else "closed"
    lines.append(f"  Gate: {gate} ({r.gate.action}): {r.gate.reason}")
    lines.append(f"  Window: {r.window.name}: {r.window.reason}")
    return lines


# --- helpers -----------------------------------------------------------------------------------


def curve(points: Sequence[tuple[float, float]], x: float) -> float:
    """Linear interpolation between [input, score] points, flat beyond both ends."""
    x0, y0 = points[0]
    if x <= x0:
        return y0
    for x1, y1 in points[1:]:
        if x < x1:
            y = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            # Keep float rounding from stepping past the segment's ends (scores stay monotonic);
            # the comparisons pick what min(max(y, min(y0, y1)), max(y0, y1)) would, ties too.
            low, high = y1 if y1 < y0 else y0, y1 if y1 > y0 else y0
            if low > y:
                return low
            return high if high < y else y
        x0, y0 = x1, y1
    return points[-1][1]


def fmt_score(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _window(series: DailySeries, end: date, days: int) -> tuple[float, ...]:
    """DailySeries.window as a slice: the hot path of a full-book rescore."""
    last = (end - series.start).days
    return series.values[max(0, last - days + 1) : max(0, last + 1)]


def _crm_as_of(state: AccountState, field: str, as_of: date) -> Any:
    history = state.crm_history.get(field)
    if as_of >= state.today or not history:
        return state.crm.get(field)
    known = [value for day, value in history if day <= as_of]
    return known[-1] if known else None


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return datetime.fromisoformat(value.strip()).date()
        except ValueError:
            return None
    return None


def _relative_change(now: float, then: float) -> float:
    if then == 0:
        return 0.0 if now == 0 else math.inf
    return (now - then) / then


def _change_text(change: float) -> str:
    if math.isinf(change):
        return "up from 0"
    if round(change * 100) == 0:
        return "flat"
    return f"{'up' if change > 0 else 'down'} {abs(change) * 100:.0f}%"


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.0f}%"


def _share(ratio: float) -> str:
    return f"{fmt_score(ratio * 100)}%"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}".rstrip("0").rstrip(".")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _reasons(metrics: Sequence[Metric]) -> str:
    return "; ".join(dict.fromkeys(m.evidence for m in metrics))


def _missing_metrics(metrics: Sequence[Metric]) -> str:
    return ", ".join(f"{m.label} ({m.evidence})" for m in metrics)
