"""Which plays an account should have (SPEC §5), as pure decisions: open, keep, close or skip
each play with its reason, from the assessment, the active signals and the plays already open;
then the weekly cap per owner, filled by the highest readiness first.

Rules, in order: the health gate (yellow or red: a save play, never an upsell; unknown health:
nothing opens and nothing closes, open plays are held), the renewal window (inside it the
expansion plays fold into renewal_expansion), one open play per account and type, the cooldown
after a close, and readiness hysteresis (open at or above `enter`, close only below `exit`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from workers.account_state import AccountState
from workers.business_days import add_business_days, calendar, zone
from workers.evidence import Signal
from workers.owners import Owner, resolve_owner
from workers.plans import Plans, Tier
from workers.play_rules import (
    PRIORITIES,
    OwnerRules,
    PlayRule,
    PlayRules,
    SignalCondition,
    Triggers,
    priority_rank,
)
from workers.scoring import Assessment, fmt_score


@dataclass(frozen=True)
class PlayContext:
    """What plays need to know about the account besides its scores."""

    account_id: int
    name: str | None
    crm: Mapping[str, Any]
    time_zone: str
    holiday_country: str
    acv: float | None = None  # the subscription's annual value
    seats: int | None = None  # licensed seats
    tier: str | None = None
    next_tier: str | None = None
    # The next tier's list ACV for the account's seats (plans.yaml prices), when priced.
    next_tier_acv: float | None = None
    segment: str | None = None  # normalized: "Mid-Market" -> mid_market
    # Role -> its owner on this account: a play's routing and each of its steps ask.
    _owners: dict[str, Owner] = field(default_factory=dict, init=False, repr=False, compare=False)

    def owner(self, role: str, rules: OwnerRules) -> Owner:
        """`resolve_owner` of the role from the account's CRM fields, once per role (`rules`:
        those of the plays.yaml the context's plays are decided by)."""
        owner = self._owners.get(role)
        if owner is None:
            owner = self._owners[role] = resolve_owner(role, self.crm, rules)
        return owner

    @classmethod
    def from_state(cls, state: AccountState, rules: PlayRules, plans: Plans) -> PlayContext:
        """From the account's state; a time zone or holiday country the CRM field holds is used
        when it is a valid one, else the defaults of plays.yaml."""
        subscription = state.subscription
        tier = subscription.tier if subscription else None
        seats = subscription.seats if subscription else None
        following = plans.next_tier(tier)
        fields = rules.account_fields
        time_zone = _valid(zone, _crm_text(state.crm, fields.time_zone))
        country = _valid(calendar, _crm_text(state.crm, fields.holiday_country))
        return cls(
            account_id=state.account_id,
            name=state.name,
            crm=state.crm,
            time_zone=time_zone or rules.defaults.time_zone,
            holiday_country=country or rules.defaults.holiday_country,
            acv=subscription.arr if subscription else None,
            seats=seats,
            tier=tier,
            next_tier=following.name if following else None,
            next_tier_acv=_list_acv(following, seats),
            segment=normalize_segment(_crm_text(state.crm, fields.segment)),
        )


@dataclass(frozen=True)
class OpenPlay:
    play: str
    opened_on: date
    instance_id: int | str | None = None


@dataclass(frozen=True)
class ClosedPlay:
    play: str
    closed_on: date
    outcome: str  # won | lost | stalled | closed


@dataclass(frozen=True)
class PlayDecision:
    action: str  # open | keep | close | skip | waitlist
    play: str
    account_id: int
    reason: str
    readiness: float
    priority: str
    signals: tuple[Signal, ...] = ()  # the trigger signals that fired, strongest first
    owner: Owner | None = None  # None: a product play without a human owner
    assists: tuple[Owner, ...] = ()
    fyi: Owner | None = None
    # Step key -> the role that owns it (None: a field write, nobody's task).
    step_roles: tuple[tuple[str, str | None], ...] = ()
    routing: tuple[str, ...] = ()  # why the owners are who they are (ACV, fallbacks)
    instance_id: int | str | None = None  # the open play a keep or close is about


@dataclass(frozen=True)
class _Context:
    assessment: Assessment
    signals: Sequence[Signal]
    account: PlayContext
    rules: PlayRules
    closes: Sequence[ClosedPlay]
    save_open: bool = False
    route: bool = True  # False: new plays without owners, for `routed` to add

    @property
    def score(self) -> float:
        return self.assessment.readiness.score

    def decision(self, action: str, play: str, reason: str, **more: Any) -> PlayDecision:
        rule = self.rules.plays.get(play)  # type: ignore[call-overload]
        return PlayDecision(
            action=action,
            play=play,
            account_id=self.account.account_id,
            reason=reason,
            readiness=self.score,
            priority=rule.priority if rule else PRIORITIES[-1],
            **more,
        )


def select_plays(
    assessment: Assessment,
    signals: Sequence[Signal],
    account: PlayContext,
    open_plays: Sequence[OpenPlay],
    recent_closes: Sequence[ClosedPlay],
    rules: PlayRules,
    route: bool = True,
) -> list[PlayDecision]:
    """One decision per play that is open or whose triggers fire, listed by priority then name.
    A triggered play that the window rules out is left out (the window's own play reports).
    `route=False`: new plays come without owners and routing (see `routed`)."""
    active = [s for s in signals if s.strength > 0]  # no other signal meets a trigger
    if not open_plays and not _may_open(assessment, active, rules):
        return []  # nothing to review and nothing can open (a sixth of a first rescore)
    ctx = _Context(assessment, active, account, rules, recent_closes, route=route)
    known = [p for p in open_plays if p.play in rules.plays]
    current, extra = _one_per_type(known)
    decisions = [
        ctx.decision(
            "close", p.play, f"{p.play} is not a play of plays.yaml", instance_id=p.instance_id
        )
        for p in open_plays
        if p.play not in rules.plays
    ]
    decisions += [_duplicate(ctx, p, current[p.play]) for p in extra]
    for name, play in rules.save_first:
        decision = (
            _review(ctx, name, play, current[name])
            if name in current
            else _consider(ctx, name, play)
        )
        if decision is None:
            continue
        if play.gate == "save_play" and decision.action in ("open", "keep"):
            ctx = replace(ctx, save_open=True)
        decisions.append(decision)
    ranks = rules.listing_ranks
    return sorted(decisions, key=lambda d: ranks.get(d.play, (len(ranks), d.play)))


def _may_open(assessment: Assessment, active: Sequence[Signal], rules: PlayRules) -> bool:
    """Whether a play may open: a save play on the save gate, else a trigger's signal fired
    (expansion plays open on triggers alone, save plays have none)."""
    if assessment.readiness.gate.action == "save_play":
        return True
    named = rules.trigger_signals
    return any(s.name in named for s in active)


def apply_weekly_cap(
    candidates: Iterable[PlayDecision], owner_counts: Mapping[str, int], rules: PlayRules
) -> tuple[list[PlayDecision], list[PlayDecision]]:
    """(granted, waitlisted) of new plays across accounts, highest readiness first, with each
    owner's plays already opened this week in `owner_counts` (by user id). The cap is the
    owner's role's `weekly_cap`; uncapped roles and plays, and fallback queues, never wait."""
    counts = dict(owner_counts)
    granted: list[PlayDecision] = []
    waitlisted: list[PlayDecision] = []
    for decision in sorted(candidates, key=lambda d: _cap_order(d, rules)):
        if decision.action != "open":
            raise ValueError(f"only new plays are capped, got a {decision.action} decision")
        cap = weekly_cap(decision, rules)
        owner = decision.owner
        if cap is None or owner is None or owner.user_id is None:
            granted.append(decision)
            continue
        used = counts.get(owner.user_id, 0)
        if used < cap:
            counts[owner.user_id] = used + 1
            granted.append(decision)
            continue
        label = rules.owners.label(owner.role)
        waitlisted.append(
            replace(
                decision,
                action="waitlist",
                reason=f"weekly cap: {label} {owner.user_id} already has {used} new plays this "
                f"week (cap {cap}); waits for capacity",
            )
        )
    return granted, waitlisted


def fired(triggers: Triggers, signals: Sequence[Signal]) -> tuple[Signal, ...] | None:
    """The signals meeting the trigger's conditions (strongest first), or None when it does not
    fire: every `all_of` condition and, when given, one `any_of` condition must hold."""
    every = [_matching(c, signals) for c in triggers.all_of]
    some = [_matching(c, signals) for c in triggers.any_of]
    if not all(every) or (some and not any(some)):
        return None
    hits = {id(s): s for group in every + some for s in group}
    return tuple(sorted(hits.values(), key=lambda s: (-s.strength, s.name, s.evidence)))


def step_due(play: PlayRule, step: str, triggered_at: datetime, account: PlayContext) -> date:
    """The business day a step is due: its offset for the account's segment, counted from the
    trigger in the account's time zone, skipping its country's weekends and holidays."""
    days = play.step(step).due_days(account.segment)
    return add_business_days(triggered_at, days, account.time_zone, account.holiday_country)


def estimated_acv_increase(account: PlayContext, rules: PlayRules) -> tuple[float | None, str]:
    """(ACV increase of moving to the next tier, how it was estimated)."""
    if account.acv is None:
        return None, "ACV unknown"
    if account.next_tier_acv is not None:
        increase = max(0.0, account.next_tier_acv - account.acv)
        listed = money(account.next_tier_acv, rules)
        return increase, (
            f"{account.next_tier} list price for {account.seats} seats {listed} "
            f"vs ACV {money(account.acv, rules)}"
        )
    pct = rules.defaults.acv_uplift_pct
    return account.acv * pct / 100, f"{pct:g}% uplift on ACV {money(account.acv, rules)}"


def normalize_segment(value: str | None) -> str | None:
    if not value:
        return None
    return "_".join(value.casefold().replace("-", " ").split()) or None


# --- an open play: keep or close ---------------------------------------------------------------


def _review(ctx: _Context, name: str, play: PlayRule, current: OpenPlay) -> PlayDecision:
    gate, window = ctx.assessment.readiness.gate, ctx.assessment.readiness.window
    hits = fired(play.triggers, ctx.signals) if play.triggers else None
    about = {"instance_id": current.instance_id, "signals": hits or ()}
    if not play.enabled:
        return ctx.decision("close", name, f"{name} is turned off in plays.yaml", **about)
    if gate.action == "hold":
        return ctx.decision("keep", name, f"{gate.reason}; the open play is held", **about)
    if play.gate == "save_play":
        return _review_save(ctx, name, play, about)
    if gate.action != "expansion":
        return ctx.decision("close", name, gate.reason, **about)
    if window.name not in play.windows:
        return ctx.decision("close", name, _window_reason(window.reason, play), **about)
    assert play.readiness is not None  # validated: expansion plays have hysteresis
    score, exit_ = fmt_score(ctx.score), fmt_score(play.readiness.exit)
    if ctx.score < play.readiness.exit:
        return ctx.decision("close", name, f"readiness {score} fell below exit {exit_}", **about)
    return ctx.decision("keep", name, f"readiness {score} is at or above exit {exit_}", **about)


def _review_save(ctx: _Context, name: str, play: PlayRule, about: dict[str, Any]) -> PlayDecision:
    health = ctx.assessment.health
    assert play.health_exit is not None and health.score is not None
    shown = f"health {fmt_score(health.score)} ({health.band})"
    exit_ = fmt_score(play.health_exit)
    if ctx.assessment.readiness.gate.action == "expansion" and health.score >= play.health_exit:
        return ctx.decision("close", name, f"{shown} recovered to exit {exit_} or above", **about)
    return ctx.decision("keep", name, f"{shown} is below exit {exit_}", **about)


def _duplicate(ctx: _Context, extra: OpenPlay, kept: OpenPlay) -> PlayDecision:
    reason = (
        f"one open play per account and type: {kept.play} {kept.instance_id} opened on "
        f"{kept.opened_on.isoformat()} stays"
    )
    return ctx.decision("close", extra.play, reason, instance_id=extra.instance_id)


def _one_per_type(
    open_plays: Sequence[OpenPlay],
) -> tuple[dict[str, OpenPlay], list[OpenPlay]]:
    """The oldest open play of each type, and any others (to close)."""
    current: dict[str, OpenPlay] = {}
    extra: list[OpenPlay] = []
    for p in sorted(open_plays, key=lambda p: (p.opened_on, str(p.instance_id))):
        if p.play in current:
            extra.append(p)
        else:
            current[p.play] = p
    return current, extra


# --- a play not open: open, skip or nothing ----------------------------------------------------


def _consider(ctx: _Context, name: str, play: PlayRule) -> PlayDecision | None:
    gate, window = ctx.assessment.readiness.gate, ctx.assessment.readiness.window
    if not play.enabled or window.name not in play.windows:
        return None
    if play.gate == "save_play":
        if gate.action != "save_play":
            return None
        signals: tuple[Signal, ...] = ()
        why = gate.reason
    else:
        assert play.triggers is not None
        hits = fired(play.triggers, ctx.signals)
        if hits is None:
            return None
        if gate.action != "expansion":
            return ctx.decision("skip", name, gate.reason, signals=hits)
        if ctx.save_open:
            reason = "a save play is open: expansion waits until it closes"
            return ctx.decision("skip", name, reason, signals=hits)
        signals, why = hits, _fired_text(play.triggers, hits)
    blocked = _cooldown(ctx, name) or _below_enter(ctx, play)
    if blocked:
        return ctx.decision("skip", name, blocked, signals=signals)
    return _open(ctx, name, play, signals, why)


def _cooldown(ctx: _Context, name: str) -> str | None:
    closes = [c for c in ctx.closes if c.play == name]
    if not closes:
        return None
    last = max(closes, key=lambda c: c.closed_on)
    days = ctx.rules.cooldown_days(name)
    until = last.closed_on + timedelta(days=days)
    if ctx.assessment.as_of >= until:
        return None
    return (
        f"{name} closed ({last.outcome}) on {last.closed_on.isoformat()}: cooldown of {days} days "
        f"until {until.isoformat()}"
    )


def _below_enter(ctx: _Context, play: PlayRule) -> str | None:
    if play.readiness is None:
        return None
    score, enter = fmt_score(ctx.score), fmt_score(play.readiness.enter)
    if ctx.score < play.readiness.enter:
        return f"readiness {score} is below enter {enter}"
    band = ctx.assessment.readiness.band
    if play.readiness.bands and band not in play.readiness.bands:
        return f"readiness band {band} is not one of {', '.join(play.readiness.bands)}"
    return None


def _open(
    ctx: _Context, name: str, play: PlayRule, signals: tuple[Signal, ...], why: str
) -> PlayDecision:
    if play.readiness is not None:
        score, enter = fmt_score(ctx.score), fmt_score(play.readiness.enter)
        why += f"; readiness {score} is at or above enter {enter}"
    routing = _routing(ctx, play) if ctx.route else {}
    return ctx.decision("open", name, why, signals=signals, **routing)


def routed(
    decision: PlayDecision, assessment: Assessment, account: PlayContext, rules: PlayRules
) -> PlayDecision:
    """An open decision with its owners and routing from `account`'s facts. Which plays open,
    stay or close depends on the account's id alone, not on its facts: a batch selects plays
    with bare contexts, then routes the few that open (as `select_plays` with `account` would
    have)."""
    ctx = _Context(assessment, (), account, rules, ())
    return replace(decision, **_routing(ctx, rules.plays[decision.play]))  # type: ignore[index]


def _routing(ctx: _Context, play: PlayRule) -> dict[str, Any]:
    """Who owns, assists and hears of a new play, step by step, and why."""
    owners, account = ctx.rules.owners, ctx.account
    owner = account.owner(play.owner, owners) if play.owner else None
    assists, notes = _assists(ctx, play)
    handoff, handoff_note = _handoff(ctx, play)
    fallbacks = [o.reason for o in (owner, *assists) if o is not None and o.reason]
    return {
        "owner": owner,
        "assists": assists,
        "fyi": account.owner(play.fyi, owners) if play.fyi else None,
        "step_roles": _step_roles(play, handoff),
        "routing": tuple(notes + handoff_note + fallbacks),
    }


def _assists(ctx: _Context, play: PlayRule) -> tuple[tuple[Owner, ...], list[str]]:
    rules, acv = ctx.rules, ctx.account.acv
    band = ctx.assessment.health.band
    owners: list[Owner] = []
    notes: list[str] = []
    for assist in play.assists:
        label = ctx.rules.owners.label(assist.role)
        applies = True
        if assist.when_acv_above is not None:
            limit = money(assist.when_acv_above, rules)
            applies = acv is not None and acv > assist.when_acv_above
            if acv is None:
                notes.append(f"ACV unknown: no {label} assist")
            else:
                verb = "is above" if applies else "is not above"
                then = f"the {label} assists" if applies else f"no {label} assist"
                notes.append(f"ACV {money(acv, rules)} {verb} {limit}: {then}")
        if assist.when_health:
            applies = applies and band in assist.when_health
            if band in assist.when_health:
                notes.append(f"health {band}: the {label} joins")
        if applies:
            owners.append(ctx.account.owner(assist.role, ctx.rules.owners))
    return tuple(owners), notes


def _handoff(ctx: _Context, play: PlayRule) -> tuple[str | None, list[str]]:
    """(the step the handoff starts at, or None; the note saying why)."""
    if play.handoff is None:
        return None, []
    rule, rules = play.handoff, ctx.rules
    label = ctx.rules.owners.label(rule.role)
    increase, how = estimated_acv_increase(ctx.account, ctx.rules)
    limit = money(rule.when_acv_increase_above, rules)
    if increase is None:
        return None, [f"{how}: the ACV increase cannot be estimated, no handoff to the {label}"]
    head = f"estimated ACV increase {money(increase, rules)} ({how})"
    if increase > rule.when_acv_increase_above:
        return rule.at_step, [f"{head} is above {limit}: {rule.at_step} on goes to the {label}"]
    return None, [f"{head} is not above {limit}: no handoff to the {label}"]


def _step_roles(play: PlayRule, handoff_at: str | None) -> tuple[tuple[str, str | None], ...]:
    roles: list[tuple[str, str | None]] = []
    owner = play.owner
    for step in play.steps:
        if play.handoff and step.key == handoff_at:
            owner = play.handoff.role
        role = None if step.kind == "field" else step.owner or owner
        roles.append((step.key, role))
    return tuple(roles)


# --- helpers -----------------------------------------------------------------------------------


def _matching(condition: SignalCondition, signals: Sequence[Signal]) -> list[Signal]:
    return [
        s
        for s in signals
        if s.name == condition.signal
        and s.strength > 0
        and s.strength >= condition.min_strength
        and _fact_holds(condition, s)
    ]


def _fact_holds(condition: SignalCondition, signal: Signal) -> bool:
    if condition.fact is None:
        return True
    value = signal.facts.get(condition.fact)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    if condition.at_least is not None and value < condition.at_least:
        return False
    return condition.at_most is None or value <= condition.at_most


def _fired_text(triggers: Triggers, hits: tuple[Signal, ...]) -> str:
    names = ", ".join(dict.fromkeys(s.name for s in hits))
    needed = [c.describe() for c in triggers.all_of]
    return f"{names} fired" + (f" (all of {', '.join(needed)})" if needed else "")


def _window_reason(reason: str, play: PlayRule) -> str:
    return f"{reason}; {play.title} runs in the {' / '.join(play.windows)} window only"


def weekly_cap(decision: PlayDecision, rules: PlayRules) -> int | None:
    """The weekly cap a new play counts toward: None for uncapped plays and roles, product
    plays and plays that went to a fallback queue."""
    if decision.owner is not None and decision.owner.user_id is None:
        return None
    if not rules.plays[decision.play].capped or decision.owner is None:  # type: ignore[index]
        return None
    return rules.weekly_cap.get(decision.owner.role)  # type: ignore[call-overload]


def _cap_order(decision: PlayDecision, rules: PlayRules) -> tuple[float, int, int, str]:
    rank = priority_rank(rules.plays[decision.play])  # type: ignore[index]
    return (-decision.readiness, rank, decision.account_id, decision.play)


def money(value: float, rules: PlayRules) -> str:
    """Money as "$25,000", or "$25,000.01": an amount at an ACV edge must not look equal to it."""
    cents = round(value * 100)
    shown = f"{cents // 100:,}" if cents % 100 == 0 else f"{cents / 100:,.2f}"
    return f"{rules.brief.currency}{shown}"


def _list_acv(tier: Tier | None, seats: int | None) -> float | None:
    """The tier's list ACV for `seats` (at least the seats it includes), when it is priced."""
    if tier is None or tier.annual_price_per_seat is None or seats is None:
        return None
    return tier.annual_price_per_seat * max(seats, tier.seats_included or 0)


def _crm_text(crm: Mapping[str, Any], name: str | None) -> str | None:
    value = crm.get(name) if name else None
    return str(value).strip() if value not in (None, "") else None


def _valid(check: Any, value: str | None) -> str | None:
    """`value` when `check` accepts it (a CRM field can hold anything), else None."""
    if value is None:
        return None
    try:
        check(value)
    except ValueError:
        return None
    return value
