"""The expansion signals of SPEC §4.1 as pure functions of an AccountState and the rules of
mappings/signals.yaml: each returns a Signal with strength and numeric evidence, or None when its
rule is not met or the data to judge it is missing."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from operator import attrgetter
from typing import Any

from workers.account_state import (
    AccountState,
    DailySeries,
    LimitHit,
    Subscription,
    TeaserClick,
    User,
)
from workers.days import days_delta
from workers.evidence import Signal
from workers.signal_rules import CrossSellRule, Point, SignalRules, UsageNearCap
from workers.titles import Seniority, seniority

CATEGORY = {
    "seat_utilization": "product",
    "invite_velocity": "product",
    "usage_near_cap": "commercial",
    "api_volume_growth": "product",
    "usage_velocity_to_tier": "product",
    "integration_connected": "product",
    "premium_feature_interest": "product",
    "feature_breadth": "product",
    "power_user_emergence": "product",
    "secondary_team_logins": "product",
    "plan_limit_ticket": "support",
    "cross_sell_behavior": "product",
    "champion_promotion": "relationship",
    "positive_convergence": "relationship",
    "org_growth": "commercial",
}
_SEPARATORS = re.compile(r"[;,]")
_SPACES = re.compile(r"\s+")
EPSILON = 1e-9  # ratios computed from the same integers compare exactly; this absorbs float noise
MAX_LISTED = 3  # items an evidence sentence names before "and N more"


# --- shared helpers ---------------------------------------------------------------------------


def _signal(name: str, strength: float, evidence: str, **facts: float | int | str | None) -> Signal:
    bounded = round(min(max(strength, 0.0), 1.0), 3)
    return Signal(name, CATEGORY[name], bounded, evidence, facts)


def _curve(points: Sequence[Point], x: float) -> float:
    """Linear interpolation between the points, flat beyond the first and the last."""
    x0, y0 = points[0]
    if x <= x0:
        return y0
    for x1, y1 in points[1:]:
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        x0, y0 = x1, y1
    return points[-1][1]


def _since(today: date, days: int) -> date:
    """First day of the `days`-day window ending on `today`."""
    return today - days_delta(days - 1)


def _num(value: float) -> str:
    if math.isfinite(value) and abs(value - round(value)) < 1e-6:
        return f"{round(value):,}"
    return f"{value:,.1f}"


def _pct(ratio: float) -> str:
    return f"{ratio * 100 + EPSILON:.0f}%"


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown if len(items) <= MAX_LISTED else f"{shown} and {len(items) - MAX_LISTED} more"


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value.replace(",", "").strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _as_names(value: Any) -> list[str]:
    """A list field as names: a list, or a string separated by ';' or ','."""
    if isinstance(value, str):
        items: Iterable[Any] = _SEPARATORS.split(value)
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    else:
        return []
    return [str(item).strip() for item in items if str(item).strip()]


def _key(name: str) -> str:
    return name.strip().casefold()


@lru_cache(maxsize=1024)
def _matcher(phrases: tuple[str, ...], patterns: tuple[str, ...] = ()) -> re.Pattern[str] | None:
    """One regex for the phrases (from the start of a word) and the patterns, case-insensitive."""
    words = sorted({re.escape(_clean_text(p)) for p in phrases if p.strip()}, key=len, reverse=True)
    parts = [rf"(?<!\w)(?:{'|'.join(words)})"] if words else []
    parts += [f"(?:{p})" for p in patterns]
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


def _clean_text(text: str) -> str:
    """Curly quotes as straight ones and runs of whitespace as one space, lower case."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u00a0", " ")
    return _SPACES.sub(" ", text).strip().casefold()


# --- seat_utilization -------------------------------------------------------------------------


def seat_utilization(state: AccountState, rules: SignalRules) -> Signal | None:
    rule = rules.signals.seat_utilization
    licensed = _licensed_now(state)
    if not licensed or not state.users:
        return None
    active = state.active_seats(state.today, rule.active_window_days)
    utilization = active / licensed
    if utilization + EPSILON < rule.threshold:
        return None
    evidence = f"{active} of {_num(licensed)} seats active ({_pct(utilization)})"
    strength = _curve(rule.strength, utilization)
    facts: dict[str, float | int | str | None] = {
        "active_seats": active,
        "licensed_seats": licensed,
        "utilization": round(utilization, 4),
    }
    past_day = state.today - days_delta(rule.rise_window_days)
    if state.had_users_by(past_day):  # before that, "N days ago" means nothing
        past_active = state.active_seats(past_day, rule.active_window_days)
        past_utilization = past_active / _licensed_on(state, past_day, licensed)
        rise = round((utilization - past_utilization) * 100, 6)
        change = "up from" if rise > 0 else "down from" if rise < 0 else "unchanged from"
        evidence += (
            f", {change} {past_active} ({_pct(past_utilization)}) {rule.rise_window_days} days ago"
        )
        facts |= {"utilization_before": round(past_utilization, 4), "rise_points": round(rise, 1)}
        if rise >= rule.rise_points:
            strength += rule.rise_bonus
    cap_on = _seat_cap_date(state, active, licensed, rule.trend_days, rule.active_window_days)
    if active >= licensed:
        evidence += "; the cap is already reached"
    elif cap_on is not None:
        evidence += f"; at this pace the cap is reached around {cap_on.isoformat()}"
    facts["cap_reached_on"] = cap_on.isoformat() if cap_on else None
    return _signal("seat_utilization", strength, evidence, **facts)


def _licensed_now(state: AccountState) -> float | None:
    subscription = state.subscription
    if subscription is not None and subscription.seats:
        return float(subscription.seats)
    if state.licensed_seats is not None:
        return state.licensed_seats.on(state.today) or None
    return None


def _licensed_on(state: AccountState, day: date, default: float) -> float:
    value = state.licensed_seats.on(day) if state.licensed_seats is not None else None
    return value or default


def _seat_cap_date(
    state: AccountState, active: int, licensed: float, trend_days: int, window_days: int
) -> date | None:
    then = state.today - days_delta(trend_days)
    if active >= licensed:
        return state.today
    if not state.had_users_by(then):
        return None
    pace = (active - state.active_seats(then, window_days)) / trend_days
    if pace <= 0:
        return None
    return state.today + timedelta(days=math.ceil((licensed - active) / pace - EPSILON))


# --- invite_velocity --------------------------------------------------------------------------


def invite_velocity(state: AccountState, rules: SignalRules) -> Signal | None:
    rule = rules.signals.invite_velocity
    first = _since(state.today, rule.window_days)
    prior_first = first - days_delta(rule.prior_window_days)
    new = _new_active(state.users, first, state.today)
    if len(new) < rule.min_new_users:
        return None
    prior = _new_active(state.users, prior_first, first - days_delta(1))
    established = _new_active(state.users, date.min, prior_first - days_delta(1))
    if len(prior) > rule.max_prior_new_users or len(established) < rule.min_established_users:
        return None
    evidence = (
        f"{_plural(len(new), 'new active user')} in the last {rule.window_days} days "
        f"(since {first.isoformat()}), after {len(prior)} in the {rule.prior_window_days} "
        f"days before"
    )
    return _signal(
        "invite_velocity",
        _curve(rule.strength, len(new)),
        evidence,
        new_users=len(new),
        prior_new_users=len(prior),
        established_users=len(established),
    )


def _new_active(users: Iterable[User], first: date, last: date) -> list[User]:
    """Users first seen within first..last who have been active (not merely invited)."""
    return [u for u in users if first <= u.first_seen <= last and u.last_active is not None]


# --- metered usage (usage_near_cap, usage_velocity_to_tier) -----------------------------------


def _usage_series(state: AccountState, metric: str) -> DailySeries | None:
    series = state.usage.get(metric)
    if series is None and metric == "api_calls":
        return state.api_calls
    return series


def _limit_period(subscription: Subscription, metric: str) -> str:
    return subscription.limit_periods.get(metric, "month")


def _usage_on(
    series: DailySeries | None, day: date, period: str, rolling_days: int
) -> float | None:
    """Usage comparable with the limit on `day`: the last `rolling_days` days' total for a
    monthly limit (None unless every day is known), the day's value otherwise."""
    if series is None:
        return None
    if period == "month":
        return series.complete_total(day, rolling_days)
    return series.on(day)


def _scope(period: str, rolling_days: int) -> str:
    return f" in the last {rolling_days} days" if period == "month" else ""


def _limit_name(cap: float, period: str) -> str:
    kind = {"month": "monthly ", "day": "daily "}.get(period, "")
    return f"the {_num(cap)} {kind}limit"


def _month_start(day: date, months_back: int) -> date:
    number = day.year * 12 + day.month - 1 - months_back
    return date(number // 12, number % 12 + 1, 1)


def _month_usage(
    state: AccountState, metric: str, series: DailySeries | None, period: str, start: date
) -> float | None:
    """A calendar month's usage: as reported per month, else from complete daily data (the
    total for a monthly limit, the peak day for a daily or total limit)."""
    reported = state.usage_by_month.get(metric, {}).get(f"{start.year:04d}-{start.month:02d}")
    if reported is not None and (period == "month" or series is None):
        return reported
    if series is None:
        return None
    end = _month_start(start, -1) - days_delta(1)
    days = (end - start).days + 1
    values = series.window(end, days)
    if len(values) < days:
        return None
    return sum(values) if period == "month" else max(values)


@dataclass(frozen=True)
class _Candidate:
    """One way a signal can fire (per metric, per rule); the strongest one is reported."""

    strength: float
    evidence: str
    facts: dict[str, float | int | str | None]


def _strongest(name: str, candidates: Sequence[_Candidate], **facts: str) -> Signal | None:
    if not candidates:
        return None
    best = max(candidates, key=lambda c: c.strength)
    return _signal(name, best.strength, best.evidence, **best.facts, **facts)


def usage_near_cap(state: AccountState, rules: SignalRules) -> Signal | None:
    subscription = state.subscription
    candidates: list[_Candidate] = []
    if subscription is not None:
        for metric, cap in sorted(subscription.limits.items()):
            if cap and cap > 0:
                found = _near_cap(state, subscription, metric, cap, rules)
                candidates += [found] if found else []
    candidates += _limit_hits(state, rules)
    return _strongest("usage_near_cap", candidates)


def _near_cap(
    state: AccountState, subscription: Subscription, metric: str, cap: float, rules: SignalRules
) -> _Candidate | None:
    rule = rules.signals.usage_near_cap
    series = _usage_series(state, metric)
    if series is None and not state.usage_by_month.get(metric):
        return None  # no usage to compare with the cap (most accounts' seats and storage)
    period = _limit_period(subscription, metric)
    label = rules.metric_label(metric)
    now = today_usage = _usage_on(series, state.today, period, rule.rolling_days)
    scope = _scope(period, rule.rolling_days)
    if now is None and period == "month":
        now = state.usage_by_month.get(metric, {}).get(state.today.strftime("%Y-%m"))
        scope = f" in {state.today.strftime('%Y-%m')} so far"
    ratio = now / cap if now is not None else 0.0
    streak = _near_streak(series, state.today, today_usage, period, cap, rule)
    over, held = ratio > 1 + EPSILON, streak >= rule.consecutive_days
    months = None if over or held else _month_ratios(state, metric, series, period, cap, rule)
    if not over and not held and months is None:
        return None
    facts: dict[str, float | int | str | None] = {
        "metric": metric,
        "usage": now,
        "limit": cap,
        "ratio": round(ratio, 4),
        "days_near_cap": streak,
    }
    head = f"{label}: {_num(now or 0)} of {_limit_name(cap, period)}{scope} ({_pct(ratio)})"
    if over:
        return _Candidate(_curve(rule.strength, ratio), f"{head}, over the cap", facts)
    if held:
        evidence = (
            f"{head}, at or above {_pct(rule.near_ratio)} of it for {streak} consecutive days"
        )
        return _Candidate(_curve(rule.strength, ratio), evidence, facts)
    assert months is not None  # neither over nor held, so near the cap by month
    used = " and ".join(f"{_num(v)} ({_pct(v / cap)})" for _, v in months)
    labels = " and ".join(label for label, _ in months)
    evidence = f"{label}: {used} of {_limit_name(cap, period)} in {labels}"
    weakest = min(v for _, v in months) / cap
    facts |= {"ratio": round(weakest, 4), "months_near_cap": len(months)}
    return _Candidate(_curve(rule.strength, weakest), evidence, facts)


def _near_streak(
    series: DailySeries | None,
    today: date,
    today_usage: float | None,
    period: str,
    cap: float,
    rule: UsageNearCap,
) -> int:
    """Consecutive days up to today with usage at or above near_ratio of the cap;
    `today_usage` is today's _usage_on, which the caller has already worked out."""
    streak, value = 0, today_usage
    while value is not None and not value + EPSILON < rule.near_ratio * cap:
        streak += 1
        value = _usage_on(series, today - days_delta(streak), period, rule.rolling_days)
    return streak


def _month_ratios(
    state: AccountState,
    metric: str,
    series: DailySeries | None,
    period: str,
    cap: float,
    rule: UsageNearCap,
) -> list[tuple[str, float]] | None:
    """The last completed months' usage, oldest first, when each is near the cap."""
    months = []
    for back in range(rule.billing_months, 0, -1):
        start = _month_start(state.today, back)
        value = _month_usage(state, metric, series, period, start)
        if value is None or value + EPSILON < rule.near_ratio * cap:
            return None
        months.append((start.strftime("%Y-%m"), value))
    return months


def _limit_hits(state: AccountState, rules: SignalRules) -> list[_Candidate]:
    rule = rules.signals.usage_near_cap
    first = _since(state.today, rule.hit_window_days)
    by_limit: dict[str, list[LimitHit]] = {}
    for hit in state.limit_hits:
        if first <= hit.day <= state.today:
            by_limit.setdefault(hit.limit, []).append(hit)
    candidates = []
    for limit, hits in sorted(by_limit.items()):
        latest = max(hits, key=lambda h: h.day)
        ratios = [h.usage / h.cap for h in hits if h.usage is not None and h.cap]
        ratio = max([1.0, *ratios])
        measured = (
            f" ({_num(latest.usage)} of {_num(latest.cap)})"
            if latest.usage is not None and latest.cap
            else ""
        )
        evidence = (
            f"the {rules.metric_label(limit)} limit was hit on {_plural(len(hits), 'day')} in "
            f"the last {rule.hit_window_days} days, latest {latest.day.isoformat()}{measured}"
        )
        facts: dict[str, float | int | str | None] = {
            "metric": limit,
            "limit_hit_days": len(hits),
            "ratio": round(ratio, 4),
        }
        candidates.append(_Candidate(_curve(rule.strength, ratio), evidence, facts))
    return candidates


def usage_velocity_to_tier(state: AccountState, rules: SignalRules) -> Signal | None:
    subscription = state.subscription
    next_tier = rules.next_tier(subscription.tier) if subscription else None
    if subscription is None or next_tier is None:
        return None
    candidates = [
        found
        for metric, cap in sorted(subscription.limits.items())
        if cap and cap > 0 and (found := _velocity(state, subscription, metric, cap, rules))
    ]
    return _strongest("usage_velocity_to_tier", candidates, next_tier=next_tier)


def _velocity(
    state: AccountState, subscription: Subscription, metric: str, cap: float, rules: SignalRules
) -> _Candidate | None:
    """When the last trend_days' pace takes usage to the next tier's threshold, if soon."""
    rule = rules.signals.usage_velocity_to_tier
    rolling = rules.signals.usage_near_cap.rolling_days
    series = _usage_series(state, metric)
    period = _limit_period(subscription, metric)
    now = _usage_on(series, state.today, period, rolling)
    then = _usage_on(series, state.today - days_delta(rule.trend_days), period, rolling)
    threshold = cap * rule.threshold_ratio
    if now is None or then is None or now >= threshold or now <= then:
        return None
    days = (threshold - now) / ((now - then) / rule.trend_days)
    if days > rule.horizon_days + EPSILON:
        return None
    reached = state.today + timedelta(days=math.ceil(days - EPSILON))
    evidence = (
        f"{rules.metric_label(metric)}: {_num(now)} of {_limit_name(cap, period)} of "
        f"{subscription.tier}{_scope(period, rolling)} ({_pct(now / cap)}), up "
        f"{_num(now - then)} in {rule.trend_days} days; at this pace usage reaches "
        f"{_num(threshold)} around {reached.isoformat()}, in "
        f"{_plural((reached - state.today).days, 'day')} "
        f"(next tier: {rules.next_tier(subscription.tier)})"
    )
    facts: dict[str, float | int | str | None] = {
        "metric": metric,
        "usage": now,
        "limit": cap,
        "days_to_limit": round(days, 1),
        "reached_on": reached.isoformat(),
    }
    return _Candidate(_curve(rule.strength, days), evidence, facts)


# --- api_volume_growth ------------------------------------------------------------------------


def api_volume_growth(state: AccountState, rules: SignalRules) -> Signal | None:
    rule = rules.signals.api_volume_growth
    series = state.api_calls
    if series is None:
        return None
    days = rule.window_days
    base_end = state.today - days_delta(rule.baseline_ends_days_ago)
    recent_values, base_values = series.window(state.today, days), series.window(base_end, days)
    recent_days, base_days = len(recent_values), len(base_values)
    if min(recent_days, base_days) < rule.min_coverage_days:
        return None
    recent_total, base_total = sum(recent_values), sum(base_values)
    # Scaled to full windows, so a missing day is averaged over rather than counted as zero.
    recent, base = recent_total * days / recent_days, base_total * days / base_days
    if base <= 0 or base < rule.min_baseline_calls:
        return None
    ratio = (recent_total * base_days) / (base_total * recent_days)
    if ratio + EPSILON < rule.min_ratio:
        return None
    evidence = (
        f"{_num(recent)} API calls in the last {days} days, {ratio:.1f}x the {_num(base)} in "
        f"the {days} days ending {base_end.isoformat()}"
    )
    return _signal(
        "api_volume_growth",
        _curve(rule.strength, ratio),
        evidence,
        api_calls=recent,
        baseline_api_calls=base,
        ratio=round(ratio, 3),
    )


# --- integration_connected --------------------------------------------------------------------


def integration_connected(state: AccountState, rules: SignalRules) -> Signal | None:
    rule = rules.signals.integration_connected
    first = _since(state.today, rule.window_days)
    recent = sorted(
        (i for i in state.integrations if first <= i.connected_on <= state.today),
        key=lambda i: (i.connected_on, i.name),
        reverse=True,
    )
    if not recent:
        return None
    new_categories = {
        i.name
        for i in recent
        if i.category
        and not any(
            o.category == i.category and o.connected_on < i.connected_on for o in state.integrations
        )
    }
    described = [
        f"{i.name} ({i.category}, a new category for the account) on {i.connected_on.isoformat()}"
        if i.name in new_categories
        else f"{i.name}{f' ({i.category})' if i.category else ''} on {i.connected_on.isoformat()}"
        for i in recent
    ]
    base = rule.new_category_strength if new_categories else rule.strength
    evidence = (
        f"{_plural(len(recent), 'integration')} connected in the last {rule.window_days} days: "
        f"{_listed(described)}"
    )
    return _signal(
        "integration_connected",
        base + rule.per_extra_integration * (len(recent) - 1),
        evidence,
        integrations=len(recent),
        new_categories=len(new_categories),
        latest=recent[0].name,
    )


# --- premium_feature_interest -----------------------------------------------------------------


def premium_feature_interest(state: AccountState, rules: SignalRules) -> Signal | None:
    rule = rules.signals.premium_feature_interest
    current = state.subscription.tier if state.subscription else None
    own = rules.plans.rank(current)
    first = _since(state.today, rule.window_days)

    def gated(tier: str | None) -> bool:
        """A teaser is for a feature the account lacks, unless its tier is known not above."""
        rank = rules.plans.rank(tier)
        return rank is None or own is None or rank > own

    clicks = [
        c
        for c in state.teaser_clicks
        if first <= c.day <= state.today and gated(c.tier or rules.plans.tier_of_feature(c.feature))
    ]
    trials = sorted(
        (
            (f.users_since(first), f.feature, tier)
            for f in state.features
            if (tier := f.tier or rules.plans.tier_of_feature(f.feature)) is not None
            and rules.plans.is_above(tier, current)
        ),
        reverse=True,
    )
    parts, strengths = [], []
    if len(clicks) >= rule.min_teaser_clicks:
        parts.append(_teaser_evidence(clicks, rule.window_days))
        strengths.append(_curve(rule.teaser_strength, len(clicks)))
    trial_users, trial_feature, trial_tier = trials[0] if trials else (0, None, None)
    if trial_users >= rule.min_trial_users:
        parts.append(
            f"{trial_feature} ({trial_tier} tier) used by {trial_users} users in the last "
            f"{rule.window_days} days"
        )
        strengths.append(_curve(rule.trial_strength, trial_users))
    adopted, offered, next_tier = _next_tier_adoption(state, rules, first)
    adoption = len(adopted) / len(offered) if offered else 0.0
    if offered and adoption + EPSILON >= rule.min_next_tier_adoption:
        parts.append(
            f"{len(adopted)} of {len(offered)} {next_tier}-tier features used in the last "
            f"{rule.window_days} days ({_pct(adoption)}): {_listed(adopted)}"
        )
        strengths.append(_curve(rule.adoption_strength, adoption))
    if not parts:
        return None
    return _signal(
        "premium_feature_interest",
        max(strengths),
        "; ".join(parts),
        teaser_clicks=len(clicks),
        trial_users=trial_users,
        trial_feature=trial_feature,
        next_tier_adoption=round(adoption, 3),
    )


def _next_tier_adoption(
    state: AccountState, rules: SignalRules, first: date
) -> tuple[list[str], tuple[str, ...], str | None]:
    """(the next tier's features used since `first`, all its features, its name): how much of
    the next tier the account already adopted (in a trial or a preview)."""
    current = state.subscription.tier if state.subscription else None
    following = rules.plans.next_tier(current)
    if following is None:
        return [], (), None
    offered = tuple(following.features)
    used = {f.feature for f in state.features if f.feature in offered and f.last_used >= first}
    return [f for f in offered if f in used], offered, following.name


def _teaser_evidence(clicks: Sequence[TeaserClick], window_days: int) -> str:
    per_feature = Counter(c.feature for c in clicks).most_common()
    users = {c.user_id for c in clicks if c.user_id}
    by = f" by {_plural(len(users), 'user')}" if users else ""
    listed = _listed([f"{feature} {count}" for feature, count in per_feature])
    return (
        f"{_plural(len(clicks), 'click')} on higher-tier feature teasers in the last "
        f"{window_days} days"
        f"{by} ({listed})"
    )


# --- feature_breadth --------------------------------------------------------------------------


def feature_breadth(state: AccountState, rules: SignalRules) -> Signal | None:
    rule = rules.signals.feature_breadth
    first = _since(state.today, rule.window_days)
    used = {f.category for f in state.features if f.category and f.last_used >= first}
    core = list(dict.fromkeys(rule.core_categories))
    core_used = [c for c in core if c in used]
    breadth = len(core_used) / len(core)
    if not core_used or breadth + EPSILON < rule.threshold:
        return None
    missing = [c for c in core if c not in used]
    adjacent = sorted(used & set(rule.adjacent_categories))
    gaps = f", all but {', '.join(missing)}" if missing else ""
    evidence = (
        f"{len(core_used)} of {len(core)} core feature categories used in the last "
        f"{rule.window_days} days ({_pct(breadth)}{gaps}); "
        + (
            f"adjacent-product features in use too: {', '.join(adjacent)}"
            if adjacent
            else "no adjacent-product features in use"
        )
    )
    strength = _curve(rule.strength, breadth) + (0.0 if adjacent else rule.no_adjacent_bonus)
    return _signal(
        "feature_breadth",
        strength,
        evidence,
        core_used=len(core_used),
        core_total=len(core),
        breadth=round(breadth, 4),
        adjacent_used=len(adjacent),
    )


# --- power_user_emergence ---------------------------------------------------------------------


def power_user_emergence(state: AccountState, rules: SignalRules) -> Signal | None:
    rule = rules.signals.power_user_emergence
    first = _since(state.today, rule.window_days)
    power = [u.advanced_since for u in state.users if u.advanced_since is not None]
    new = sorted(day for day in power if first <= day <= state.today)
    if len(new) < rule.min_new_power_users:
        return None
    evidence = (
        f"{_plural(len(new), 'user')} took up advanced features or high-volume exports in the "
        f"last {rule.window_days} days (first on {new[0].isoformat()}); "
        f"{_plural(len(power), 'power user')} in all"
    )
    return _signal(
        "power_user_emergence",
        _curve(rule.strength, len(new)),
        evidence,
        new_power_users=len(new),
        power_users=len(power),
    )


# --- secondary_team_logins --------------------------------------------------------------------


_DEPARTMENT_AND_DOMAIN = attrgetter("department", "email_domain")
_DEPARTMENT = attrgetter("department")
_EMAIL_DOMAIN = attrgetter("email_domain")


def secondary_team_logins(state: AccountState, rules: SignalRules) -> Signal | None:
    rule = rules.signals.secondary_team_logins
    first = _since(state.today, rule.window_days)
    active = state.users_active_between(first, state.today)
    footprint = _footprint(state, rules) if len(active) >= rule.min_users else None
    if footprint is None:
        return None
    domains, departments = footprint
    ignored = _keys(rule.ignore_domains)
    groups: Counter[str] = Counter()
    # Counted as stored, then grouped by the cleaned names: an account has few distinct pairs.
    for (department, domain), count in Counter(map(_DEPARTMENT_AND_DOMAIN, active)).items():
        department, domain = (department or "").strip(), _key(domain or "")
        if department and departments and _key(department) not in departments:
            groups[f"in {department}"] += count
        elif domain and domains and domain not in domains and domain not in ignored:
            groups[f"at {domain}"] += count
    outside = groups.total()
    if outside < rule.min_users:
        return None
    listed = _listed([f"{count} {group}" for group, count in groups.most_common()])
    evidence = (
        f"{_plural(outside, 'user')} active in the last {rule.window_days} days from outside "
        f"the licensed footprint: {listed}"
    )
    return _signal(
        "secondary_team_logins",
        _curve(rule.strength, outside),
        evidence,
        outside_users=outside,
        outside_groups=len(groups),
    )


def _footprint(state: AccountState, rules: SignalRules) -> tuple[set[str], set[str]] | None:
    """Licensed email domains and departments (casefolded): from the CRM when it names them,
    otherwise the company domain and what established users brought; None when unknown."""
    fields = rules.crm_fields
    domains = _name_keys(state.crm.get(fields.licensed_domains))
    departments = _name_keys(state.crm.get(fields.licensed_departments))
    if not domains or not departments:
        footprint_days = rules.signals.secondary_team_logins.footprint_days
        established_before = state.today - days_delta(footprint_days)
        established = [u for u in state.users if u.first_seen <= established_before]
        if not domains:
            domains = {_key(d) for d in set(map(_EMAIL_DOMAIN, established)) if d}
            domains |= _name_keys(state.crm.get(fields.domain))
        if not departments:
            departments = {_key(d) for d in set(map(_DEPARTMENT, established)) if d}
    domains.discard("")
    departments.discard("")
    return (domains, departments) if domains or departments else None


def _name_keys(value: Any) -> set[str]:
    return {_key(name) for name in _as_names(value)}


@lru_cache(maxsize=64)
def _keys(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_key(name) for name in names)


# --- plan_limit_ticket ------------------------------------------------------------------------


def plan_limit_ticket(state: AccountState, rules: SignalRules) -> Signal | None:
    rule = rules.signals.plan_limit_ticket
    first = _since(state.today, rule.window_days)
    limits = _matcher(rule.phrases, rule.patterns)
    tier = state.subscription.tier if state.subscription else None
    features = _feature_matcher(rules, tier) if rule.match_next_tier_features else None
    matched: list[tuple[date, str, str]] = []
    feature_requests = 0
    for ticket in state.tickets:
        if not first <= ticket.created_on <= state.today:
            continue
        text = _clean_text(f"{ticket.subject} {ticket.text}")
        if limits and (hit := limits.search(text)):
            matched.append((ticket.created_on, ticket.ticket_id, hit.group()))
        elif features and (hit := features.search(text)):
            matched.append((ticket.created_on, ticket.ticket_id, hit.group()))
            feature_requests += 1
    if not matched:
        return None
    matched.sort(reverse=True)
    listed = _listed([f'{tid} on {day.isoformat()} ("{words}")' for day, tid, words in matched])
    verb = "points" if len(matched) == 1 else "point"
    evidence = (
        f"{_plural(len(matched), 'ticket')} in the last {rule.window_days} days {verb} at plan "
        f"limits or higher-tier features: {listed}"
    )
    return _signal(
        "plan_limit_ticket",
        _curve(rule.strength, len(matched)),
        evidence,
        tickets=len(matched),
        feature_requests=feature_requests,
        ticket_ids=", ".join(tid for _, tid, _ in matched),
    )


@lru_cache(maxsize=64)
def _feature_matcher(rules: SignalRules, tier: str | None) -> re.Pattern[str] | None:
    """Names and aliases of the features above `tier`."""
    return _matcher(tuple(rules.feature_phrases(rules.features_above(tier))))


# --- cross_sell_behavior ----------------------------------------------------------------------


def cross_sell_behavior(state: AccountState, rules: SignalRules) -> Signal | None:
    rule = rules.signals.cross_sell_behavior
    owned = {_key(p) for p in _as_names(state.crm.get(rules.crm_fields.products))}
    known = rules.crm_fields.products in state.crm
    first = _since(state.today, rule.window_days)
    # Each rule searches the same tickets: their text is cleaned once.
    texts = [
        _clean_text(f"{t.subject} {t.text}")
        for t in state.tickets
        if first <= t.created_on <= state.today
    ]
    candidates = [
        found
        for behaviour in rule.rules
        if _key(behaviour.product) not in owned
        and (found := _cross_sell(state, behaviour, first, texts, rule.window_days, known))
    ]
    products = ", ".join(str(c.facts["product"]) for c in candidates)
    return _strongest("cross_sell_behavior", candidates, products=products)


def _cross_sell(
    state: AccountState,
    behaviour: CrossSellRule,
    first: date,
    texts: list[str],
    window_days: int,
    known: bool,
) -> _Candidate | None:
    """`texts`: the cleaned text of each ticket created from `first` to today."""
    users: set[str] = set()
    used: list[str] = []
    for feature in state.features:
        if feature.feature in behaviour.features:
            recent = set(feature.user_ids_since(first))
            users |= recent
            used += [feature.feature] if recent else []
    tickets = 0
    matcher = _matcher(behaviour.phrases)
    if matcher is not None:
        tickets = sum(1 for text in texts if matcher.search(text))
    strengths, parts = [], []
    if len(users) >= behaviour.min_users:
        strengths.append(_curve(behaviour.strength, len(users)))
        parts.append(f"{', '.join(sorted(used))} used by {len(users)} users")
    if behaviour.phrases and tickets >= behaviour.min_tickets:
        strengths.append(behaviour.ticket_strength)
        parts.append(f"{_plural(tickets, 'ticket')} asking for it")
    if not parts:
        return None
    fit = "which the account does not have" if known else "not among its known products"
    evidence = (
        f"{' and '.join(parts)} in the last {window_days} days: behaviour that fits "
        f"{behaviour.product}, {fit}"
    )
    facts: dict[str, float | int | str | None] = {
        "product": behaviour.product,
        "users": len(users),
        "tickets": tickets,
    }
    return _Candidate(max(strengths), evidence, facts)


# --- champion_promotion -----------------------------------------------------------------------


def champion_promotion(state: AccountState, rules: SignalRules) -> Signal | None:
    rule = rules.signals.champion_promotion
    first = _since(state.today, rule.window_days)
    floor = Seniority.named(rule.min_new_level)
    promotions = []
    for contact in state.contacts:
        if not contact.champion or contact.left_company:
            continue
        history = sorted(contact.title_history, key=lambda entry: entry[0])
        for (_, before), (day, after) in pairwise(history):
            old, new = seniority(before), seniority(after)
            promoted = old is not None and new is not None and old < new and new >= floor
            if promoted and first <= day <= state.today:
                promotions.append((new, day, contact.contact_id, before, after, old))
    if not promotions:
        return None
    new, day, contact_id, before, after, old = max(promotions)
    evidence = (
        f'Champion {contact_id} went from "{before}" ({old.label}) to "{after}" '
        f"({new.label}) on {day.isoformat()}"
    )
    return _signal(
        "champion_promotion",
        rule.strength_by_level[new.name.lower()],  # type: ignore[index]
        evidence,
        contact_id=contact_id,
        from_level=old.label,
        to_level=new.label,
        promoted_on=day.isoformat(),
    )


# --- positive_convergence ---------------------------------------------------------------------


def positive_convergence(state: AccountState, rules: SignalRules) -> Signal | None:
    rule = rules.signals.positive_convergence
    nps_first = _since(state.today, rule.nps_window_days)
    responses = sorted(
        (r for r in state.nps if nps_first <= r.day <= state.today), key=lambda r: r.day
    )
    if not responses:
        return None
    average = sum(r.score for r in responses) / len(responses)
    usage = _usage_rise(state, rules)
    if average + EPSILON < rule.promoter_score or usage is None:
        return None
    name, rise, recent, before = usage
    if rise + EPSILON < rule.min_usage_rise:
        return None
    executive = _exec_engagement(state, rules)
    advocacy = _advocacy(state, rules)
    if executive is None and advocacy is None:
        return None
    nps = (
        f"NPS {responses[0].score} on {responses[0].day.isoformat()}"
        if len(responses) == 1
        else f"average NPS {_num(average)} from {len(responses)} responses since "
        f"{responses[0].day.isoformat()}"
    )
    parts = [
        nps,
        f"{name} up {_pct(rise)} over the last {rule.usage_window_days} days "
        f"({_num(recent)} vs {_num(before)} a day)",
        *(part for part in (executive, advocacy) if part),
    ]
    strength = (_curve(rule.nps_strength, average) + _curve(rule.usage_strength, rise)) / 2
    if executive and advocacy:
        strength += rule.both_bonus
    return _signal(
        "positive_convergence",
        strength,
        ", ".join(parts[:-1]) + " and " + parts[-1],
        nps=round(average, 2),
        usage_rise=round(rise, 4),
        exec_engaged=int(executive is not None),
        advocacy=int(advocacy is not None),
    )


def _usage_rise(state: AccountState, rules: SignalRules) -> tuple[str, float, float, float] | None:
    """(series name, rise, recent daily average, prior daily average) of the first usage
    series with enough data in both windows."""
    rule = rules.signals.positive_convergence
    days = rule.usage_window_days
    for name in rule.usage_series:
        series: DailySeries | None = getattr(state, name)
        if series is None:
            continue
        recent = series.window(state.today, days)
        before = series.window(state.today - days_delta(days), days)
        if min(len(recent), len(before)) < rule.min_usage_days or sum(before) <= 0:
            continue
        recent_avg, before_avg = sum(recent) / len(recent), sum(before) / len(before)
        return name.replace("_", " "), recent_avg / before_avg - 1, recent_avg, before_avg
    return None


def _exec_engagement(state: AccountState, rules: SignalRules) -> str | None:
    rule = rules.signals.positive_convergence
    first = _since(state.today, rule.exec_window_days)
    floor = Seniority.named(rule.exec_min_level)
    engaged = []
    for contact in state.contacts:
        day = contact.last_engaged_on
        if contact.left_company or day is None or not first <= day <= state.today:
            continue
        level = seniority(contact.title)
        if contact.exec_sponsor:
            engaged.append((day, f"executive sponsor {contact.contact_id}"))
        elif level is not None and level >= floor:
            engaged.append((day, f"{level.label}-level contact {contact.contact_id}"))
    if not engaged:
        return None
    day, who = max(engaged)
    return f"{who} engaged on {day.isoformat()}"


def _advocacy(state: AccountState, rules: SignalRules) -> str | None:
    rule = rules.signals.positive_convergence
    first = _since(state.today, rule.advocacy_window_days)
    found = [
        (day, field)
        for field in rules.crm_fields.advocacy
        if (day := _as_date(state.crm.get(field))) is not None and first <= day <= state.today
    ]
    if not found:
        return None
    day, field = max(found)
    return f"public advocacy ({field} {day.isoformat()})"


# --- org_growth -------------------------------------------------------------------------------


def org_growth(state: AccountState, rules: SignalRules) -> Signal | None:
    rule = rules.signals.org_growth
    fields = rules.crm_fields
    start = state.today - days_delta(rule.window_days)
    department = _growth(state, fields.department_headcount, start)
    company = _growth(state, fields.employees, start)
    funding = _funding_round(state, rules, start)
    new_departments = _new_departments(state, fields.departments, start)
    name = str(state.crm.get(fields.using_department) or "").strip() or "Using department"
    found: list[tuple[float, str]] = []
    if department and department[0] + EPSILON >= rule.min_department_growth:
        strength = _curve(rule.department_strength, department[0])
        found.append((strength, _growth_text(f"{name} headcount", department)))
    if company and company[0] + EPSILON >= rule.min_company_growth:
        found.append(
            (_curve(rule.company_strength, company[0]), _growth_text("company headcount", company))
        )
    if funding:
        found.append((rule.funding_strength, funding[1]))
    if new_departments:
        found.append(
            (rule.new_department_strength, f"new departments: {', '.join(new_departments)}")
        )
    if not found:
        return None
    found.sort(key=lambda f: f[0], reverse=True)
    return _signal(
        "org_growth",
        found[0][0] + rule.extra_evidence_bonus * (len(found) - 1),
        "; ".join(text for _, text in found),
        department_growth=round(department[0], 4) if department else None,
        company_growth=round(company[0], 4) if company else None,
        funding_round_on=funding[0].isoformat() if funding else None,
        new_departments=len(new_departments),
    )


def _funding_round(state: AccountState, rules: SignalRules, start: date) -> tuple[date, str] | None:
    """A funding round after `start`: the CRM's round date, else a rise of the total raised."""
    fields = rules.crm_fields
    funded_on = _as_date(state.crm.get(fields.funding_round_on))
    if funded_on and start < funded_on <= state.today:
        round_name = str(state.crm.get(fields.funding_round) or "").strip()
        label = f"{round_name} funding round" if round_name else "funding round"
        return funded_on, f"{label} on {funded_on.isoformat()}"
    entries = _numbers(state, fields.funding_total)
    base = _baseline(entries, start)
    if base is None:
        return None
    raised = next((e for e in entries if e[0] > max(base[0], start) and e[1] > base[1]), None)
    if raised is None:
        return None
    return raised[0], (
        f"total funding up from {_num(base[1])} to {_num(entries[-1][1])} on "
        f"{raised[0].isoformat()}"
    )


def _history(state: AccountState, name: str) -> list[tuple[date, Any]]:
    entries = [(day, value) for day, value in state.crm_history.get(name, ())]
    if name in state.crm and state.crm[name] is not None:
        entries.append((state.today, state.crm[name]))
    return sorted(
        ((day, value) for day, value in entries if day <= state.today), key=lambda e: e[0]
    )


def _numbers(state: AccountState, name: str) -> list[tuple[date, float]]:
    return [(d, n) for d, v in _history(state, name) if (n := _as_number(v)) is not None]


def _baseline(entries: Sequence[tuple[date, Any]], start: date) -> tuple[date, Any] | None:
    """The value as of `start` (the last entry on or before it), else the earliest one after."""
    before = [e for e in entries if e[0] <= start]
    if before:
        return before[-1]
    return entries[0] if entries else None


def _growth(state: AccountState, name: str, start: date) -> tuple[float, float, float, date] | None:
    """(growth, from, to, since) of a numeric CRM field over the window."""
    entries = _numbers(state, name)
    base = _baseline(entries, start)
    if base is None or base[1] <= 0 or base[0] >= entries[-1][0]:
        return None
    now = entries[-1][1]
    return now / base[1] - 1, base[1], now, base[0]


def _growth_text(what: str, growth: tuple[float, float, float, date]) -> str:
    rise, before, now, since = growth
    return f"{what} up {_pct(rise)} ({_num(before)} to {_num(now)}) since {since.isoformat()}"


def _new_departments(state: AccountState, name: str, start: date) -> list[str]:
    entries = _history(state, name)
    base = _baseline(entries, start)
    if base is None or base[0] >= entries[-1][0]:
        return []
    before = {_key(d) for d in _as_names(base[1])}
    return [d for d in _as_names(entries[-1][1]) if _key(d) not in before]


# --- dispatch ---------------------------------------------------------------------------------

SIGNALS: Mapping[str, Callable[[AccountState, SignalRules], Signal | None]] = {
    "seat_utilization": seat_utilization,
    "invite_velocity": invite_velocity,
    "usage_near_cap": usage_near_cap,
    "api_volume_growth": api_volume_growth,
    "usage_velocity_to_tier": usage_velocity_to_tier,
    "integration_connected": integration_connected,
    "premium_feature_interest": premium_feature_interest,
    "feature_breadth": feature_breadth,
    "power_user_emergence": power_user_emergence,
    "secondary_team_logins": secondary_team_logins,
    "plan_limit_ticket": plan_limit_ticket,
    "cross_sell_behavior": cross_sell_behavior,
    "champion_promotion": champion_promotion,
    "positive_convergence": positive_convergence,
    "org_growth": org_growth,
}


def evaluate(state: AccountState, rules: SignalRules) -> list[Signal]:
    """Every enabled signal that fires for the account, in SPEC §4.1 order."""
    enabled = rules.enabled
    return [
        found
        for name, signal in SIGNALS.items()
        if name in enabled and (found := signal(state, rules))
    ]
