"""The persisted play state machine over simulated weeks (explicit `now` values, Monday
2026-06-01 onward, US holidays, New York time): trigger -> first task in the outbox with its owner
and business-day due date, completion -> next task, no completion -> SLA breach and escalation,
stalls, deal outcomes, cooldown, the weekly cap's waitlist, idempotency and field deltas."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select

from expansion.db import transaction
from expansion.models import account_links, accounts
from expansion.play_tables import outbox, play_instances, play_outcomes, play_steps, sla_breaches
from expansion.settings import Settings
from tests.play_support import TODAY, assessment, context, rules, signal
from workers.evidence import Signal
from workers.play_engine import (
    SIMILAR_SPARE,
    Applied,
    EngineContext,
    SimilarWins,
    apply_decisions,
    load_play_inputs,
    on_deal_closed,
    on_task_completed,
    owner_week_counts,
    similar_wins,
    sla_sweep,
    task_key,
)
from workers.play_selection import select_plays

MONDAY = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)  # 10:00 in New York, TODAY of play_support
SEATS = [signal("seat_utilization", 0.8, "43 of 50 seats active (86%)", utilization=0.86)]
CAP_SIGNAL = [signal("usage_near_cap", 0.9, "API calls at 92% of the plan limit")]
CRM = {"csm_owner": "csm-1", "account_owner": "ae-1", "owner_manager": "mgr-1"}


def at(day: date, hour: int = 14) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def new_account(conn: Connection, name: str = "Acme Corp", hubspot_id: str = "9001") -> int:
    account_id = conn.execute(
        insert(accounts).values(name=name, created_at=MONDAY, updated_at=MONDAY)
    ).inserted_primary_key[0]
    conn.execute(
        insert(account_links).values(
            kind="hubspot", external_id=hubspot_id, account_id=account_id, created_at=MONDAY
        )
    )
    return int(account_id)


def recompute(
    conn: Connection,
    account_id: int,
    now: datetime,
    signals: list[Signal],
    crm: dict[str, Any] | None = None,
    **scores: Any,
) -> Applied:
    """What the pipeline does after a recompute: inputs from the DB, selection, then apply."""
    shipped = rules()
    scored = dataclasses.replace(
        assessment(account_id=account_id, **scores), as_of=now.date(), name=None
    )
    account = context(account_id=account_id, crm=crm or CRM)
    open_plays, closes = load_play_inputs(conn, account_id, now)
    decisions = select_plays(scored, signals, account, open_plays, closes, shipped)
    return apply_decisions(
        conn, account_id, decisions, EngineContext(scored, signals, account), now, shipped
    )


def tasks(conn: Connection, account_id: int | None = None) -> list[dict[str, Any]]:
    query = select(outbox).where(outbox.c.kind == "create_task").order_by(outbox.c.id)
    if account_id is not None:
        query = query.where(outbox.c.account_id == account_id)
    return [dict(row) for row in conn.execute(query).mappings()]


def intents(conn: Connection, kind: str, account_id: int) -> list[dict[str, Any]]:
    query = select(outbox).where(outbox.c.kind == kind, outbox.c.account_id == account_id)
    return [dict(row) for row in conn.execute(query.order_by(outbox.c.id)).mappings()]


def steps(conn: Connection, play_id: int) -> list[tuple[str, str, date, str | None]]:
    rows = conn.execute(
        select(play_steps).where(play_steps.c.play_id == play_id).order_by(play_steps.c.step_index)
    ).mappings()
    return [(r["name"], r["status"], r["due_on"], r["owner"]) for r in rows]


def instance(conn: Connection, play_id: int) -> dict[str, Any]:
    row = conn.execute(select(play_instances).where(play_instances.c.id == play_id))
    return dict(row.mappings().one())


def breaches(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(sla_breaches)).mappings()]


# --- seat expansion ----------------------------------------------------------------------------


def test_seat_expansion_runs_step_by_step_and_stalls_at_the_final_close(settings: Settings):
    with transaction(settings) as conn:
        account = new_account(conn)
        applied = recompute(conn, account, MONDAY, SEATS)
        (play_id,) = applied.opened
        (first,) = tasks(conn)
        assert first["external_key"] == task_key(play_id, 0)
        assert (first["crm"], first["crm_id"]) == ("hubspot", "9001")
        payload = first["payload"]
        assert payload["owner"] == "csm-1" and payload["owner_role"] == "csm"
        assert payload["due_date"] == "2026-06-03"  # D2 from Monday
        assert payload["subject"] == "[Seat expansion] Send the utilization report: Acme Corp"
        assert "43 of 50 seats active (86%)" in payload["body"]

        assert on_task_completed(conn, task_key(play_id, 0), at(date(2026, 6, 2)))
        assert tasks(conn)[-1]["payload"]["step"] == "seat_block_proposal"
        assert tasks(conn)[-1]["payload"]["due_date"] == "2026-06-05"  # D4

        # The proposal answered: the no-response escalation to the AE is skipped.
        on_task_completed(conn, task_key(play_id, 1), at(date(2026, 6, 4)))
        assert steps(conn, play_id) == [
            ("utilization_report", "completed", date(2026, 6, 3), "csm-1"),
            ("seat_block_proposal", "completed", date(2026, 6, 5), "csm-1"),
            ("escalate_to_ae", "skipped", date(2026, 6, 15), "ae-1"),
            ("final_close", "open", date(2026, 7, 1), "csm-1"),  # D21, Juneteenth skipped
        ]
        assert len(tasks(conn)) == 3

        assert sla_sweep(conn, at(date(2026, 7, 1), 20)).stalled == []  # 16:00 in New York
        swept = sla_sweep(conn, at(date(2026, 7, 1), 22))  # 18:00: past the due day
        assert swept.stalled == [play_id] and swept.breaches == []
        play = instance(conn, play_id)
        assert play["state"] == "stalled"
        assert play["close_reason"] == "Final close attempt was not done by 2026-07-01"
        (cancel,) = intents(conn, "update_task", account)
        assert cancel["external_key"] == task_key(play_id, 3)
        assert cancel["payload"]["status"] == "canceled"


def test_seat_expansion_without_completion_breaches_and_escalates(settings: Settings):
    with transaction(settings) as conn:
        account = new_account(conn)
        (play_id,) = recompute(conn, account, MONDAY, SEATS).opened

        assert sla_sweep(conn, at(date(2026, 6, 3))).breaches == []  # due today, 17:00 local
        swept = sla_sweep(conn, at(date(2026, 6, 4)))
        assert len(swept.breaches) == 1
        (breach,) = breaches(conn)
        assert (breach["owner"], breach["escalation_owner"]) == ("csm-1", "mgr-1")
        escalation, following = tasks(conn)[1:]
        assert escalation["external_key"] == task_key(play_id, 0) + "-escalation"
        assert escalation["payload"]["owner"] == "mgr-1"
        assert escalation["payload"]["kind"] == "escalation"
        assert escalation["payload"]["subject"].startswith("[SLA breach] [Seat expansion]")
        assert "was due on 2026-06-03" in escalation["payload"]["body"]
        assert following["payload"]["step"] == "seat_block_proposal"

        # The next week: the proposal also got no answer, so the AE escalation step is created.
        sla_sweep(conn, at(date(2026, 6, 8)))
        assert tasks(conn)[-1]["payload"]["step"] == "escalate_to_ae"
        assert tasks(conn)[-1]["payload"]["owner"] == "ae-1"
        assert tasks(conn)[-1]["payload"]["due_date"] == "2026-06-15"
        assert len(breaches(conn)) == 2
        # Sweeping again changes nothing; a late completion of the first step is recorded only.
        assert sla_sweep(conn, at(date(2026, 6, 8))).breaches == []
        before = len(tasks(conn))
        assert on_task_completed(conn, task_key(play_id, 0), at(date(2026, 6, 9)))
        assert len(tasks(conn)) == before
        assert steps(conn, play_id)[0][1] == "completed"


def test_seat_expansion_above_25k_acv_still_goes_to_the_csm_with_the_ae_assisting(
    settings: Settings,
):
    with transaction(settings) as conn:
        account = new_account(conn)
        shipped = rules()
        scored = dataclasses.replace(assessment(account_id=account), as_of=TODAY)
        big = context(account_id=account, acv=25000.01)
        decisions = select_plays(scored, SEATS, big, [], [], shipped)
        apply_decisions(
            conn, account, decisions, EngineContext(scored, SEATS, big), MONDAY, shipped
        )
        (play,) = conn.execute(select(play_instances)).mappings()
        assert play["owner"] == "csm-1"
        assert [a["assignee"] for a in play["evidence"]["assists"]] == ["ae-1"]


# --- tier upsell -------------------------------------------------------------------------------


def test_tier_upsell_hands_the_proposal_to_the_ae_and_a_won_deal_closes_it(settings: Settings):
    with transaction(settings) as conn:
        account = new_account(conn)
        crm = {**CRM}
        shipped = rules()
        scored = dataclasses.replace(assessment(account_id=account), as_of=TODAY)
        account_ctx = context(account_id=account, acv=40000.0)  # +30%: $12,000 > $10,000
        decisions = select_plays(scored, CAP_SIGNAL, account_ctx, [], [], shipped)
        ctx = EngineContext(scored, CAP_SIGNAL, account_ctx)
        (play_id,) = apply_decisions(conn, account, decisions, ctx, MONDAY, shipped).opened
        assert tasks(conn)[0]["payload"]["due_date"] == "2026-06-08"  # end of business week 1
        assert tasks(conn)[0]["payload"]["owner"] == crm["csm_owner"]

        on_task_completed(conn, task_key(play_id, 0), at(date(2026, 6, 5)))
        on_task_completed(conn, task_key(play_id, 1), at(date(2026, 6, 12)))
        proposal = tasks(conn)[-1]["payload"]
        assert (proposal["step"], proposal["owner"]) == ("proposal", "ae-1")
        assert proposal["due_date"] == "2026-06-30"  # week 4 = D20, Juneteenth skipped

        outcome_id = on_deal_closed(conn, account, True, 12000.0, "deal-7", at(date(2026, 6, 20)))
        assert on_deal_closed(conn, account, True, 12000.0, "deal-7", MONDAY) == outcome_id
        (outcome,) = conn.execute(select(play_outcomes)).mappings()
        assert (outcome["play"], outcome["won"], outcome["amount"]) == ("tier_upsell", True, 12000)
        assert outcome["signals"] == ["usage_near_cap"]
        play = instance(conn, play_id)
        assert (play["state"], play["close_reason"]) == (
            "won",
            "deal deal-7 closed won (12,000.00)",
        )
        assert intents(conn, "update_task", account)[0]["external_key"] == task_key(play_id, 2)
        assert steps(conn, play_id)[-1][1] == "skipped"
        # The account's CRM fields no longer recommend a play.
        fields = intents(conn, "set_fields", account)[-1]["payload"]["fields"]
        assert fields["recommended_play"] is None and fields["next_step_due"] is None


def test_a_small_tier_upsell_stays_with_the_csm(settings: Settings):
    with transaction(settings) as conn:
        account = new_account(conn)
        (play_id,) = recompute(conn, account, MONDAY, CAP_SIGNAL).opened  # ACV $20k: +$6,000
        on_task_completed(conn, task_key(play_id, 0), MONDAY)
        on_task_completed(conn, task_key(play_id, 1), MONDAY)
        assert tasks(conn)[-1]["payload"]["owner"] == "csm-1"


# --- save play ---------------------------------------------------------------------------------


def test_save_play_escalates_to_the_manager_and_closes_when_health_recovers(settings: Settings):
    with transaction(settings) as conn:
        account = new_account(conn)
        (play_id,) = recompute(conn, account, MONDAY, SEATS, health=55.0).opened
        (first,) = tasks(conn)
        assert first["payload"]["subject"].startswith("[Save] Re-engage the executive sponsor")
        assert (first["payload"]["owner"], first["payload"]["due_date"]) == ("csm-1", "2026-06-03")
        assert first["payload"]["priority"] == "high"

        sla_sweep(conn, at(date(2026, 6, 4)))
        escalation = tasks(conn)[1]["payload"]
        assert (escalation["owner"], escalation["kind"]) == ("mgr-1", "escalation")
        assert tasks(conn)[2]["payload"]["step"] == "escalate_open_p1s"

        # Still yellow a week later: the play is kept, nothing new is opened.
        assert recompute(conn, account, at(date(2026, 6, 8)), SEATS, health=60.0) == Applied()
        recovered = recompute(conn, account, at(date(2026, 6, 10)), SEATS, health=80.0)
        assert recovered.closed == [play_id]
        assert instance(conn, play_id)["state"] == "closed"
        assert "recovered" in instance(conn, play_id)["close_reason"]
        cancelled = [i["external_key"] for i in intents(conn, "update_task", account)]
        assert cancelled == [task_key(play_id, 0), task_key(play_id, 1)]  # overdue one too


# --- renewal expansion, cooldown ---------------------------------------------------------------


def test_renewal_expansion_lost_deal_then_cooldown_blocks_reopening(settings: Settings):
    with transaction(settings) as conn:
        account = new_account(conn)
        (play_id,) = recompute(conn, account, MONDAY, SEATS, days_to_renewal=30).opened
        assert instance(conn, play_id)["play"] == "renewal_expansion"
        first = tasks(conn)[0]["payload"]
        assert (first["owner"], first["owner_role"], first["due_date"]) == (
            "csm-1",  # no renewal_owner field: the CSM
            "renewal_owner",
            "2026-06-04",  # D3
        )
        on_deal_closed(conn, account, False, None, "opp-1", at(date(2026, 6, 10)))
        assert instance(conn, play_id)["state"] == "lost"
        (outcome,) = conn.execute(select(play_outcomes)).mappings()
        assert (outcome["play_id"], outcome["won"]) == (play_id, False)

        blocked = at(date(2026, 6, 10) + timedelta(days=59))
        assert recompute(conn, account, blocked, SEATS, days_to_renewal=20).opened == []
        _, closes = load_play_inputs(conn, account, blocked)
        assert [(c.play, c.outcome) for c in closes] == [("renewal_expansion", "lost")]
        reopened = recompute(
            conn, account, at(date(2026, 6, 10) + timedelta(days=60)), SEATS, days_to_renewal=20
        )
        assert len(reopened.opened) == 1 and reopened.opened != [play_id]


def test_a_deal_without_an_open_play_is_stored_unattributed(settings: Settings):
    with transaction(settings) as conn:
        account = new_account(conn)
        on_deal_closed(conn, account, True, 500.0, "deal-1", MONDAY)
        (outcome,) = conn.execute(select(play_outcomes)).mappings()
        assert (outcome["play_id"], outcome["play"], outcome["signals"]) == (None, None, [])


# --- usage auto-expansion ----------------------------------------------------------------------


def test_usage_auto_expansion_writes_the_prompt_field_and_sends_the_csm_an_fyi(
    settings: Settings,
):
    with transaction(settings) as conn:
        account = new_account(conn)
        velocity = [signal("usage_velocity_to_tier", 0.7, "at this pace the limit is hit soon")]
        (play_id,) = recompute(conn, account, MONDAY, velocity, readiness=20.0).opened
        fields = {}
        for row in intents(conn, "set_fields", account):
            fields.update(row["payload"]["fields"])
        assert fields["in_product_prompt"] == "scale"
        (fyi,) = tasks(conn)
        assert (fyi["payload"]["kind"], fyi["payload"]["owner"]) == ("fyi", "csm-1")
        assert [s[1] for s in steps(conn, play_id)] == ["completed", "completed"]
        assert instance(conn, play_id)["state"] == "step"  # runs until the selection closes it
        assert sla_sweep(conn, at(date(2026, 7, 1))).breaches == []


# --- weekly cap --------------------------------------------------------------------------------


def test_weekly_cap_waitlists_the_sixth_play_and_releases_it_next_week(settings: Settings):
    with transaction(settings) as conn:
        ids = [new_account(conn, f"Account {i}", f"hs-{i}") for i in range(6)]
        for i, account in enumerate(ids):
            recompute(conn, account, MONDAY + timedelta(hours=i), SEATS, readiness=50.0 + i)
        assert owner_week_counts(conn, MONDAY + timedelta(hours=6)) == {"csm-1": 5}
        (late,) = conn.execute(
            select(play_instances).where(play_instances.c.state == "waitlisted")
        ).mappings()
        assert late["account_id"] == ids[5]
        assert "weekly cap: CSM csm-1 already has 5 new plays" in late["evidence"]["reason"]
        assert tasks(conn, ids[5]) == []
        # Re-selected the same week: still the one waitlisted row, still no task.
        again = recompute(conn, ids[5], at(date(2026, 6, 3)), SEATS, readiness=56.0)
        assert again.waitlisted == [late["id"]] and tasks(conn, ids[5]) == []
        assert instance(conn, late["id"])["readiness_at_open"] == 56.0
        assert sla_sweep(conn, at(date(2026, 6, 5))).released == []

        released = sla_sweep(conn, at(date(2026, 6, 8), 13)).released
        assert released == [late["id"]]
        assert instance(conn, late["id"])["state"] == "opened"
        (first,) = tasks(conn, ids[5])
        assert first["payload"]["due_date"] == "2026-06-10"  # D2 from the release


def test_a_waitlisted_play_no_longer_selected_leaves_the_waitlist_without_cooldown(
    settings: Settings,
):
    with transaction(settings) as conn:
        ids = [new_account(conn, f"Account {i}", f"hs-{i}") for i in range(6)]
        for account in ids:
            recompute(conn, account, MONDAY, SEATS)
        (late,) = conn.execute(
            select(play_instances).where(play_instances.c.state == "waitlisted")
        ).mappings()
        recompute(conn, late["account_id"], at(date(2026, 6, 2)), [])
        dropped = instance(conn, late["id"])
        assert dropped["state"] == "closed" and dropped["opened_at"] is None
        assert dropped["close_reason"] == "left the waitlist: no longer triggered"
        assert load_play_inputs(conn, late["account_id"], MONDAY) == ([], [])


# --- idempotency and field deltas --------------------------------------------------------------


def test_applying_the_same_decisions_twice_creates_no_second_task(settings: Settings):
    with transaction(settings) as conn:
        account = new_account(conn)
        shipped = rules()
        scored = dataclasses.replace(assessment(account_id=account), as_of=TODAY)
        ctx = EngineContext(scored, SEATS, context(account_id=account))
        decisions = select_plays(scored, SEATS, ctx.account, [], [], shipped)
        assert len(apply_decisions(conn, account, decisions, ctx, MONDAY, shipped).opened) == 1
        assert apply_decisions(conn, account, decisions, ctx, MONDAY, shipped) == Applied()
        assert len(tasks(conn)) == 1
        (play_id,) = [p.instance_id for p in load_play_inputs(conn, account, MONDAY)[0]]
        on_task_completed(conn, task_key(play_id, 0), MONDAY)
        assert not on_task_completed(conn, task_key(play_id, 0), MONDAY)
        assert not on_task_completed(conn, "someone-elses-task", MONDAY)
        assert len(tasks(conn)) == 2


def test_account_fields_are_queued_only_when_they_change(settings: Settings):
    with transaction(settings) as conn:
        account = new_account(conn)
        recompute(conn, account, MONDAY, SEATS)
        fields: dict[str, Any] = {}
        for row in intents(conn, "set_fields", account):
            fields.update(row["payload"]["fields"])
        assert fields == {
            "readiness_score": 55,
            "readiness_band": fields["readiness_band"],
            "health_score": 82,
            "health_band": "green",
            "top_signals": "Seat utilization: 43 of 50 seats active (86%)",
            "window": "open",
            "recommended_play": "Seat expansion",
            "play_owner": "csm-1",
            "next_step_due": "2026-06-03",
        }
        count = len(intents(conn, "set_fields", account))
        recompute(conn, account, at(date(2026, 6, 2)), SEATS)
        assert len(intents(conn, "set_fields", account)) == count
        recompute(conn, account, at(date(2026, 6, 2)), SEATS, readiness=61.0)
        assert intents(conn, "set_fields", account)[-1]["payload"]["fields"] == {
            "readiness_score": 61
        }


def test_a_later_brief_names_accounts_that_won_the_same_play(settings: Settings):
    with transaction(settings) as conn:
        winner = new_account(conn, "Globex", "hs-g")
        recompute(conn, winner, MONDAY, SEATS)
        on_deal_closed(conn, winner, True, 15000.0, "deal-g", at(date(2026, 6, 11)))
        other = new_account(conn, "Initech", "hs-i")
        recompute(conn, other, at(date(2026, 6, 15)), SEATS)
        body = tasks(conn, other)[0]["payload"]["body"]
        assert "Similar accounts that won this play" in body
        assert "- Globex: won $15,000 on 2026-06-11, 10 days after the signal" in body


def test_a_batch_reads_similar_wins_once_and_names_the_same_ones(settings: Settings):
    """Globex holds the latest wins, more than the spare read beyond the limit: its own brief
    needs the query again; the others' come from the batch's one read."""
    with transaction(settings) as conn:
        globex, initech, acme = (
            new_account(conn, name, f"hs-{name}") for name in ("Globex", "Initech", "Acme")
        )
        wins = [(initech, 1), (acme, 2)] + [(globex, 3 + i) for i in range(SIMILAR_SPARE + 2)]
        for number, (account, day) in enumerate(wins):
            won_play(conn, account, number, at(date(2026, 5, day)))
        batch = SimilarWins(conn)
        for account in (globex, initech, acme, globex):
            for limit in (0, 1, 2, 3):
                expected = similar_wins(conn, "seat_expansion", account, limit)
                assert batch.of("seat_expansion", account, limit) == expected
        assert [w.account for w in batch.of("seat_expansion", globex, 2)] == ["Acme", "Initech"]


def won_play(conn: Connection, account: int, number: int, closed_at: datetime) -> None:
    play_id = conn.execute(
        insert(play_instances).values(
            account_id=account,
            play="seat_expansion",
            gate="expansion",
            priority="P2",
            state="won",
            readiness_at_open=70.0,
            created_at=closed_at - timedelta(days=10),
            opened_at=closed_at - timedelta(days=10),
            closed_at=closed_at,
            current_step=0,
            signals=[],
            evidence={},
            plan=[],
        )
    ).inserted_primary_key[0]
    conn.execute(
        insert(play_outcomes).values(
            account_id=account,
            play_id=play_id,
            play="seat_expansion",
            deal_id=f"deal-{number}",
            won=True,
            amount=1000.0 * (number + 1),
            closed_at=closed_at,
            signals=["seat_utilization"],
        )
    )
