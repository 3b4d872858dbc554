"""Play selection with the shipped rules: the health gate, the renewal window at 41/42 days,
ACV routing exactly at $25k / $10k and just above, hysteresis, cooldown edges, one open play per
type, owner fallback, deterministic order, and the weekly cap with its waitlist."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.play_support import SETTINGS, TODAY, assessment, context, rules, signal
from workers.account_state import AccountState, Subscription, Ticket
from workers.plans import Plans, Tier
from workers.play_selection import (
    ClosedPlay,
    OpenPlay,
    PlayContext,
    PlayDecision,
    apply_weekly_cap,
    select_plays,
    step_due,
)
from workers.signal_rules import signal_rules
from workers.signals import evaluate

SEATS = [signal("seat_utilization", 0.8, "43 of 50 seats active (86%)", utilization=0.86)]


def select(
    signals=SEATS,
    account: PlayContext | None = None,
    open_plays=(),
    closes=(),
    **scores,
) -> list[PlayDecision]:
    return select_plays(
        assessment(**scores), signals, account or context(), open_plays, closes, rules()
    )


def by_play(decisions: list[PlayDecision]) -> dict[str, PlayDecision]:
    return {d.play: d for d in decisions}


def actions(decisions: list[PlayDecision]) -> list[tuple[str, str]]:
    return [(d.action, d.play) for d in decisions]


# --- triggers ----------------------------------------------------------------------------------


def test_a_green_account_with_a_seat_signal_gets_a_seat_expansion():
    (decision,) = select()
    assert (decision.action, decision.play) == ("open", "seat_expansion")
    assert decision.reason == "seat_utilization fired; readiness 55 is at or above enter 40"
    assert decision.signals == tuple(SEATS)
    assert decision.owner.user_id == "csm-1"
    assert decision.readiness == 55
    assert decision.priority == "medium"


def test_no_trigger_no_decision():
    assert select(signals=[signal("org_growth")]) == []
    assert select(signals=[]) == []


def test_plan_limit_tickets_trigger_a_tier_upsell_from_three_on():
    """With the real signal: its `tickets` fact must reach 3."""

    def decisions(tickets: int) -> list[PlayDecision]:
        state = AccountState(
            account_id=1,
            today=TODAY,
            subscription=Subscription(tier="growth", seats=50, arr=20000, renewal_on=None),
            tickets=tuple(
                Ticket(f"T-{i}", TODAY - timedelta(days=i + 1), "We hit the seat limit again")
                for i in range(tickets)
            ),
        )
        return select(signals=evaluate(state, signal_rules(SETTINGS)))

    assert decisions(2) == []
    (decision,) = decisions(3)
    assert (decision.action, decision.play) == ("open", "tier_upsell")
    assert decision.signals[0].facts["tickets"] == 3


def test_strategic_expansion_needs_both_signals():
    promoter = signal("positive_convergence")
    assert select(signals=[promoter]) == []
    (decision,) = select(signals=[promoter, signal("org_growth", 0.5)])
    assert (decision.action, decision.play, decision.owner.role) == (
        "open",
        "strategic_expansion",
        "vp_cs",
    )
    assert decision.reason.startswith(
        "positive_convergence, org_growth fired (all of positive_convergence, org_growth)"
    )


def test_feature_breadth_feeds_cross_sell_only_when_deep():
    assert select(signals=[signal("feature_breadth", breadth=0.79)]) == []
    (decision,) = select(signals=[signal("feature_breadth", breadth=0.8)])
    assert (decision.play, decision.owner.role, decision.owner.user_id) == (
        "cross_sell",
        "account_owner",
        "ae-1",
    )
    assert [a.user_id for a in decision.assists] == ["csm-1"]


def test_usage_auto_expansion_has_no_human_owner():
    (decision,) = select(signals=[signal("usage_velocity_to_tier", 0.6)], readiness=20)
    assert (decision.action, decision.play) == ("open", "usage_auto_expansion")
    assert decision.owner is None
    assert decision.fyi.user_id == "csm-1"
    assert decision.step_roles == (("in_product_prompt", None), ("csm_fyi", "csm"))


# --- the health gate ---------------------------------------------------------------------------


def test_yellow_health_gets_a_save_play_never_an_upsell():
    decisions = select(health=69.9)
    assert actions(decisions) == [("open", "save_play"), ("skip", "seat_expansion")]
    save, seats = decisions
    assert save.reason == "health yellow (69.9), below green (70): save play instead"
    assert save.owner.user_id == "csm-1"
    assert save.assists == ()
    assert seats.reason == save.reason
    assert seats.owner is None


def test_red_health_adds_the_managers_help():
    save, _ = select(health=39)
    assert save.play == "save_play"
    assert [(a.role, a.user_id) for a in save.assists] == [("owner_manager", "mgr-1")]
    assert "health red: the owner's manager joins" in save.routing


def test_an_open_upsell_closes_when_health_turns_yellow():
    open_ = [OpenPlay("seat_expansion", TODAY - timedelta(days=5), 11)]
    decisions = by_play(select(open_plays=open_, health=55))
    assert decisions["seat_expansion"].action == "close"
    assert decisions["seat_expansion"].instance_id == 11
    assert decisions["seat_expansion"].reason.startswith("health yellow (55)")
    assert decisions["save_play"].action == "open"


def test_unknown_health_opens_nothing_and_holds_what_is_open():
    decisions = select(health=None, signals=[*SEATS, signal("org_growth")])
    assert actions(decisions) == [("skip", "seat_expansion")]
    assert decisions[0].reason.startswith("health unknown")
    open_ = [
        OpenPlay("seat_expansion", TODAY - timedelta(days=5)),
        OpenPlay("save_play", TODAY - timedelta(days=9)),
    ]
    held = select(health=None, open_plays=open_, readiness=0)
    assert actions(held) == [("keep", "save_play"), ("keep", "seat_expansion")]
    assert all(d.reason.endswith("the open play is held") for d in held)


def test_an_open_save_play_holds_upsells_until_health_reaches_its_exit():
    saving = [OpenPlay("save_play", TODAY - timedelta(days=20))]
    recovering = by_play(select(open_plays=saving, health=74.9))
    assert recovering["save_play"].action == "keep"
    assert recovering["save_play"].reason == "health 74.9 (green) is below exit 75"
    assert recovering["seat_expansion"].action == "skip"
    assert recovering["seat_expansion"].reason == (
        "a save play is open: expansion waits until it closes"
    )
    recovered = by_play(select(open_plays=saving, health=75))
    assert recovered["save_play"].action == "close"
    assert recovered["seat_expansion"].action == "open"


# --- the renewal window ------------------------------------------------------------------------


def test_inside_42_days_expansion_folds_into_renewal_expansion():
    (decision,) = select(days_to_renewal=41)
    assert (decision.action, decision.play) == ("open", "renewal_expansion")
    assert decision.owner.role == "renewal_owner"
    assert decision.owner.user_id == "csm-1"  # no renewal_owner field: the CSM
    assert decision.owner.source == "crm.csm_owner"
    (decision,) = select(days_to_renewal=42)
    assert (decision.action, decision.play) == ("open", "seat_expansion")


def test_an_open_expansion_play_closes_into_the_renewal_window():
    open_ = [OpenPlay("tier_upsell", TODAY - timedelta(days=30), "p-7")]
    decisions = by_play(select(open_plays=open_, days_to_renewal=41))
    assert decisions["tier_upsell"].action == "close"
    assert decisions["tier_upsell"].reason == (
        f"renewal in 41 days ({(TODAY + timedelta(days=41)).isoformat()}): expansion folds into "
        "the renewal conversation; Tier upsell runs in the open / closing / unknown window only"
    )
    assert decisions["renewal_expansion"].action == "open"
    # At 42 days the window is "closing": the play stays.
    assert by_play(select(open_plays=open_, days_to_renewal=42))["tier_upsell"].action == "keep"


def test_without_a_renewal_date_expansion_plays_run():
    assert actions(select(days_to_renewal=None)) == [("open", "seat_expansion")]


# --- ACV routing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("acv", "assisted", "note"),
    [
        (25000.0, False, "ACV $25,000 is not above $25,000: no AE assist"),
        (25000.01, True, "ACV $25,000.01 is above $25,000: the AE assists"),
        (25001.0, True, "ACV $25,001 is above $25,000: the AE assists"),
        (None, False, "ACV unknown: no AE assist"),
    ],
)
def test_the_ae_assists_a_seat_expansion_above_25k(acv, assisted, note):
    (decision,) = select(account=context(acv=acv))
    assert [a.user_id for a in decision.assists] == (["ae-1"] if assisted else [])
    assert decision.routing == (note,)
    assert dict(decision.step_roles)["escalate_to_ae"] == "account_owner"  # D10, always


@pytest.mark.parametrize(
    ("next_tier_acv", "handed_off", "increase"),
    [
        (30000.0, False, "$10,000 (scale list price for 50 seats $30,000 vs ACV $20,000) is not"),
        (30000.5, True, "$10,000.50 (scale list price for 50 seats $30,000.50 vs ACV $20,000) is"),
        (30001.0, True, "$10,001 (scale list price for 50 seats $30,001 vs ACV $20,000) is"),
    ],
)
def test_a_tier_upsell_goes_to_the_ae_at_proposal_above_a_10k_increase(
    next_tier_acv, handed_off, increase
):
    tickets = [signal("usage_near_cap", 0.9)]
    (decision,) = select(signals=tickets, account=context(next_tier_acv=next_tier_acv))
    assert decision.owner.role == "csm"
    later = "account_owner" if handed_off else "csm"
    assert decision.step_roles == (
        ("value_review", "csm"),
        ("trial", "csm"),
        ("proposal", later),
        ("procurement", later),
    )
    then = "proposal on goes to the AE" if handed_off else "no handoff to the AE"
    assert decision.routing == (f"estimated ACV increase {increase} above $10,000: {then}",)


def test_without_prices_the_increase_is_the_configured_uplift():
    base = rules()
    at_25_pct = base.model_copy(
        update={"defaults": base.defaults.model_copy(update={"acv_uplift_pct": 25})}
    )
    upsell = [signal("usage_near_cap", 0.9)]

    def roles(acv: float) -> dict[str, str]:
        (decision,) = select_plays(assessment(), upsell, context(acv=acv), (), (), at_25_pct)
        return dict(decision.step_roles), decision.routing

    roles_at, routing_at = roles(40000)
    assert roles_at["proposal"] == "csm"
    assert routing_at == (
        "estimated ACV increase $10,000 (25% uplift on ACV $40,000) is not above $10,000: "
        "no handoff to the AE",
    )
    roles_above, _ = roles(40004)
    assert roles_above["proposal"] == "account_owner"
    _, unknown = roles(None)
    assert unknown == ("ACV unknown: the ACV increase cannot be estimated, no handoff to the AE",)


def test_the_play_context_reads_prices_segment_and_locale_from_state():
    catalog = Plans(
        tiers=[
            Tier(name="growth", annual_price_per_seat=400),
            Tier(name="scale", seats_included=100, annual_price_per_seat=500),
        ]
    )
    state = AccountState(
        account_id=9,
        today=TODAY,
        name="Initech",
        subscription=Subscription(tier="growth", seats=50, arr=20000, renewal_on=None),
        crm={"segment": "Mid-Market", "time_zone": "Europe/Berlin", "holiday_country": "Mars"},
    )
    account = PlayContext.from_state(state, rules(), catalog)
    assert (account.tier, account.next_tier, account.acv) == ("growth", "scale", 20000)
    assert account.next_tier_acv == 500 * 100  # at least the seats the tier includes
    assert account.segment == "mid_market"
    assert account.time_zone == "Europe/Berlin"
    assert account.holiday_country == "US"  # not a holiday calendar: the default
    unpriced = PlayContext.from_state(state, rules(), Plans(tiers=[Tier(name="growth")]))
    assert (unpriced.next_tier, unpriced.next_tier_acv) == (None, None)


# --- owners ------------------------------------------------------------------------------------


def test_a_missing_owner_goes_to_the_queue_and_is_reported():
    (decision,) = select(account=context(crm={"account_owner": "ae-1"}, acv=30000))
    assert decision.owner.is_fallback
    assert decision.owner.assignee == "expansion-unassigned"
    assert decision.routing == (
        "ACV $30,000 is above $25,000: the AE assists",
        "no CSM on the account: CRM field(s) csm_owner, csm empty",
    )


# --- hysteresis --------------------------------------------------------------------------------


def test_readiness_hysteresis_opens_at_enter_and_closes_only_below_exit():
    assert by_play(select(readiness=39.99))["seat_expansion"].reason == (
        "readiness 39.99 is below enter 40"
    )
    assert by_play(select(readiness=39.99))["seat_expansion"].action == "skip"
    assert by_play(select(readiness=40))["seat_expansion"].action == "open"
    open_ = [OpenPlay("seat_expansion", TODAY)]
    assert by_play(select(open_plays=open_, readiness=30))["seat_expansion"].action == "keep"
    closing = by_play(select(open_plays=open_, readiness=29.99))["seat_expansion"]
    assert (closing.action, closing.reason) == ("close", "readiness 29.99 fell below exit 30")


def test_a_score_hovering_at_the_threshold_does_not_flap():
    """A week of rescoring around the enter threshold: one open, no close until below exit."""
    scores = [40, 39.5, 40.2, 39.9, 35, 31, 30, 40, 29.9, 38, 39.99]
    open_plays: list[OpenPlay] = []
    log = []
    for score in scores:
        (decision,) = select(open_plays=open_plays, readiness=score)
        log.append(decision.action)
        if decision.action == "open":
            open_plays = [OpenPlay("seat_expansion", TODAY)]
        elif decision.action == "close":
            open_plays = []
    assert log == ["open", *["keep"] * 7, "close", "skip", "skip"]


def test_trigger_signals_going_quiet_do_not_close_an_open_play():
    open_ = [OpenPlay("seat_expansion", TODAY)]
    (decision,) = select(signals=[], open_plays=open_, readiness=35)
    assert decision.action == "keep"


def test_a_band_requirement_holds_opening():
    base = rules()
    plays = dict(base.plays)
    seat = plays["seat_expansion"]
    plays["seat_expansion"] = seat.model_copy(
        update={"readiness": seat.readiness.model_copy(update={"bands": ("hot",)})}
    )
    hot_only = base.model_copy(update={"plays": plays})
    (warm,) = select_plays(assessment(readiness=69), SEATS, context(), (), (), hot_only)
    assert (warm.action, warm.reason) == ("skip", "readiness band warm is not one of hot")
    (hot,) = select_plays(assessment(readiness=70), SEATS, context(), (), (), hot_only)
    assert hot.action == "open"


# --- one play per type and cooldown ------------------------------------------------------------


def test_an_open_play_is_kept_not_opened_twice():
    (decision,) = select(open_plays=[OpenPlay("seat_expansion", TODAY - timedelta(days=3), 5)])
    assert (decision.action, decision.instance_id) == ("keep", 5)


def test_a_second_open_play_of_a_type_is_closed():
    first = OpenPlay("seat_expansion", date(2026, 5, 1), 1)
    second = OpenPlay("seat_expansion", date(2026, 5, 3), 2)
    decisions = select(open_plays=[second, first])
    assert [(d.action, d.instance_id) for d in decisions] == [("close", 2), ("keep", 1)]
    assert decisions[0].reason == (
        "one open play per account and type: seat_expansion 1 opened on 2026-05-01 stays"
    )


def test_cooldown_after_a_close_ends_after_60_days():
    closed = TODAY - timedelta(days=59)
    (decision,) = select(closes=[ClosedPlay("seat_expansion", closed, "lost")])
    assert decision.action == "skip"
    assert decision.reason == (
        f"seat_expansion closed (lost) on {closed.isoformat()}: cooldown of 60 days until "
        f"{(TODAY + timedelta(days=1)).isoformat()}"
    )
    (decision,) = select(closes=[ClosedPlay("seat_expansion", TODAY - timedelta(days=60), "won")])
    assert decision.action == "open"


def test_the_latest_close_counts_and_other_types_are_not_cooled():
    closes = [
        ClosedPlay("seat_expansion", TODAY - timedelta(days=200), "won"),
        ClosedPlay("seat_expansion", TODAY - timedelta(days=10), "stalled"),
    ]
    assert actions(select(closes=closes)) == [("skip", "seat_expansion")]
    upsell = [signal("usage_near_cap", 0.9)]
    long_ago = [closes[0], ClosedPlay("cross_sell", TODAY - timedelta(days=1), "lost")]
    assert actions(select(signals=[*SEATS, *upsell], closes=long_ago)) == [
        ("open", "seat_expansion"),
        ("open", "tier_upsell"),
    ]


def test_a_save_play_has_a_cooldown_too():
    closes = [ClosedPlay("save_play", TODAY - timedelta(days=3), "closed")]
    save, _ = select(health=50, closes=closes)
    assert (save.action, save.play) == ("skip", "save_play")


# --- disabled and unknown plays ----------------------------------------------------------------


def test_a_turned_off_or_unknown_open_play_closes():
    base = rules()
    plays = dict(base.plays)
    plays["seat_expansion"] = plays["seat_expansion"].model_copy(update={"enabled": False})
    off = base.model_copy(update={"plays": plays})
    open_ = [OpenPlay("seat_expansion", TODAY), OpenPlay("renamed_play", TODAY, 3)]
    decisions = select_plays(assessment(), SEATS, context(), open_, (), off)
    assert [(d.action, d.play, d.reason) for d in decisions] == [
        ("close", "seat_expansion", "seat_expansion is turned off in plays.yaml"),
        ("close", "renamed_play", "renamed_play is not a play of plays.yaml"),
    ]


# --- order -------------------------------------------------------------------------------------


def test_decisions_are_listed_by_priority_then_name_whatever_the_input_order():
    signals = [
        signal("usage_near_cap", 0.9),
        signal("champion_promotion", 0.7),
        signal("positive_convergence", 0.6),
        signal("org_growth", 0.5),
        *SEATS,
        signal("usage_velocity_to_tier", 0.4),
    ]
    forward = select(signals=signals)
    assert [d.play for d in forward] == [
        "strategic_expansion",
        "cross_sell",
        "seat_expansion",
        "tier_upsell",
        "usage_auto_expansion",
    ]
    assert select(signals=list(reversed(signals))) == forward


# --- weekly cap --------------------------------------------------------------------------------


def opening(account_id: int, readiness: float, play: str = "seat_expansion", csm: str = "csm-1"):
    crm = {"csm_owner": csm, "account_owner": "ae-1"}
    signals = {
        "seat_expansion": SEATS,
        "cross_sell": [signal("champion_promotion")],
        "usage_auto_expansion": [signal("usage_velocity_to_tier")],
    }[play]
    (decision,) = select_plays(
        assessment(readiness=readiness, account_id=account_id),
        signals,
        context(account_id=account_id, crm=crm),
        (),
        (),
        rules(),
    )
    assert decision.action == "open"
    return decision


def test_the_weekly_cap_fills_by_highest_readiness_and_waitlists_the_rest():
    candidates = [opening(i, score) for i, score in enumerate([50, 90, 60, 95, 70, 45, 80], 1)]
    granted, waitlisted = apply_weekly_cap(candidates, {"csm-1": 2}, rules())
    assert [d.readiness for d in granted] == [95, 90, 80]
    assert [d.readiness for d in waitlisted] == [70, 60, 50, 45]
    assert {d.action for d in waitlisted} == {"waitlist"}
    assert waitlisted[0].reason == (
        "weekly cap: CSM csm-1 already has 5 new plays this week (cap 5); waits for capacity"
    )


def test_the_cap_is_per_owner_and_ties_break_by_account():
    candidates = [opening(i, 60, csm="csm-1") for i in (3, 1, 2)] + [opening(4, 41, csm="csm-2")]
    granted, waitlisted = apply_weekly_cap(candidates, {"csm-1": 4}, rules())
    assert [(d.account_id, d.owner.user_id) for d in granted] == [(1, "csm-1"), (4, "csm-2")]
    assert [d.account_id for d in waitlisted] == [2, 3]


def test_uncapped_plays_and_fallback_queues_never_wait():
    queue = dataclasses.replace(
        opening(1, 50), owner=dataclasses.replace(opening(1, 50).owner, user_id=None)
    )
    product = opening(2, 20, play="usage_auto_expansion")
    ae_owned = opening(3, 40, play="cross_sell")
    granted, waitlisted = apply_weekly_cap([queue, product, ae_owned], {"csm-1": 99}, rules())
    assert [d.account_id for d in granted] == [1, 3, 2]
    assert waitlisted == []
    _, ae_waits = apply_weekly_cap([ae_owned], {"ae-1": 5}, rules())
    assert [d.play for d in ae_waits] == ["cross_sell"]


def test_only_new_plays_are_capped():
    kept = dataclasses.replace(opening(1, 50), action="keep")
    with pytest.raises(ValueError, match="only new plays are capped, got a keep decision"):
        apply_weekly_cap([kept], {}, rules())


# --- due dates ---------------------------------------------------------------------------------


def test_steps_are_due_in_business_days_of_the_accounts_calendar():
    thursday = datetime(2026, 7, 2, 15, 0, tzinfo=UTC)
    seat = rules().plays["seat_expansion"]
    us = context()
    # July 3rd 2026 is the observed Independence Day in the US, not a holiday in Germany.
    assert [step_due(seat, s.key, thursday, us) for s in seat.steps] == [
        date(2026, 7, 7),
        date(2026, 7, 9),
        date(2026, 7, 17),
        date(2026, 8, 3),
    ]
    german = context(time_zone="Europe/Berlin", holiday_country="DE")
    assert step_due(seat, "utilization_report", thursday, german) == date(2026, 7, 6)
    upsell = rules().plays["tier_upsell"]
    assert step_due(upsell, "procurement", thursday, context(segment="smb")) == date(2026, 8, 7)
    assert step_due(upsell, "procurement", thursday, context(segment="mid_market")) == date(
        2026, 9, 14
    )


def test_a_kept_play_carries_the_signals_that_still_fire():
    open_ = [OpenPlay("seat_expansion", TODAY)]
    (decision,) = select(signals=[*SEATS, signal("org_growth")], open_plays=open_)
    assert (decision.action, decision.signals) == ("keep", tuple(SEATS))
