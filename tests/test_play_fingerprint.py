"""The plays step skips an account whose play inputs are those of its last decision (a quiet
daily rescore), and decides again as soon as one of them moves: a signal, the health band, the
readiness, the timing window, a cooldown running out, a waitlisted play's owner."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import time_machine
from sqlalchemy import event, update

from expansion.db import get_engine, transaction
from expansion.models import account_attributes
from expansion.play_tables import play_instances
from expansion.settings import Settings
from tests.play_support import Scored, assessment, signal
from tests.test_play_scenarios import (
    READINESS,
    SEATS,
    T0,
    at,
    created_tasks,
    decide,
    new_account,
    rows,
)
from workers import play_step

DAY = T0.date()


def on(
    settings: Settings, account: int, days: int, status: str = "unchanged", **scores: Any
) -> play_step.PlayStepSummary:
    """The plays step `days` after T0 for one account scored with `scores` (readiness 50,
    green health, the seat signal unless `signals` is given)."""
    signals = scores.pop("signals", SEATS)
    readiness = scores.pop("readiness", 50.0)
    with time_machine.travel(at(DAY + timedelta(days=days))):
        return decide(settings, [account], signals, status, [readiness], **scores)


def running_play(settings: Settings) -> int:
    """An account with a seat expansion open: the state a quiet daily rescore finds."""
    account = new_account(settings)
    assert on(settings, account, 0, "written").opened != []
    return account


@contextmanager
def statements(settings: Settings) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split()))

    engine = get_engine(settings)
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_an_unchanged_account_makes_no_play_writes_and_no_decision(settings):
    account = running_play(settings)
    before = rows(settings, play_instances)
    with statements(settings) as seen:
        summary = on(settings, account, 2)
    assert summary == play_step.PlayStepSummary(decided=0)
    assert rows(settings, play_instances) == before
    reads = [s for s in seen if s != "BEGIN"]  # SQLite's plain BEGIN: no write lock taken
    assert len(reads) == 2, seen  # the account's plays and their last decision's fingerprint
    assert all(s.startswith("SELECT") for s in reads), seen
    assert "FROM play_instances" in reads[0] and "FROM play_decisions" in reads[1], seen


def test_an_account_whose_plays_just_opened_is_settled_at_once(settings):
    account = new_account(settings)
    assert on(settings, account, 0, "written").opened != []
    assert on(settings, account, 1) == play_step.PlayStepSummary(decided=0)


def test_an_account_left_with_a_decision_to_make_is_decided_again(settings):
    ids = [new_account(settings, f"Account {i}", f"hs-{i}") for i in range(len(READINESS))]
    with time_machine.travel(T0):
        decide(settings, ids, SEATS, readiness=READINESS)
    with time_machine.travel(T0 + timedelta(days=1)):
        again = decide(settings, ids, SEATS, "unchanged", READINESS)
    waiting = [p for p in rows(settings, play_instances) if p["state"] == "waitlisted"]
    assert again.decided == len(waiting) == 7  # the waitlist is re-ranked; the 5 opened are not


def test_a_changed_score_is_always_decided(settings):
    account = running_play(settings)
    assert on(settings, account, 2, "written").decided == 1  # its fields are queued


def test_a_signal_change_is_decided(settings):
    account = running_play(settings)
    stronger = (signal("seat_utilization", 0.85, "43 of 50 seats active (86%)"),)
    assert on(settings, account, 2, signals=stronger).decided == 1
    assert on(settings, account, 3, signals=stronger).decided == 0


def test_a_health_band_change_is_decided_and_closes_the_upsell(settings):
    account = running_play(settings)
    (upsell,) = rows(settings, play_instances)
    turned = on(settings, account, 2, health=55.0)  # yellow
    assert turned.decided == 1
    assert turned.closed == [upsell["id"]]
    assert len(turned.opened) == 1  # the save play


def test_a_readiness_move_below_exit_is_decided_and_closes_the_play(settings):
    account = running_play(settings)
    assert on(settings, account, 2, readiness=35.0).decided == 1  # above exit 30: kept
    assert on(settings, account, 3, readiness=35.0).decided == 0
    (play,) = rows(settings, play_instances)
    assert on(settings, account, 4, readiness=29.6).closed == [play["id"]]


def test_a_timing_window_change_is_decided(settings):
    account = running_play(settings)
    assert on(settings, account, 2, days_to_renewal=200).decided == 0
    assert on(settings, account, 3, days_to_renewal=60).decided == 1  # closing: kept
    assert on(settings, account, 4, days_to_renewal=60).decided == 0
    (play,) = rows(settings, play_instances)
    pressure = on(settings, account, 5, days_to_renewal=30)
    assert pressure.closed == [play["id"]]  # renewal pressure folds expansion into renewal


def test_a_cooldown_running_out_is_decided_and_reopens_the_play(settings):
    account = new_account(settings)
    (first,) = on(settings, account, 0, "written").opened
    assert on(settings, account, 3, "written", readiness=29.0).closed == [first]
    assert on(settings, account, 4).decided == 1  # readiness back to 50: skipped, cooling down
    assert on(settings, account, 5).decided == 0
    assert on(settings, account, 62).decided == 0  # 2026-08-30: 59 days after the close
    reopened = on(settings, account, 63)  # 60 days: the cooldown is over
    assert reopened.decided == 1
    assert reopened.opened != []


def test_a_new_owner_of_a_waitlisted_play_is_decided_and_gets_it(settings):
    ids = [new_account(settings, f"Account {i}", f"hs-{i}") for i in range(len(READINESS))]
    with time_machine.travel(T0):
        decide(settings, ids, SEATS, readiness=READINESS)
    waiting = [p for p in rows(settings, play_instances) if p["state"] == "waitlisted"]
    account = waiting[0]["account_id"]
    with transaction(settings) as conn:
        conn.execute(
            update(account_attributes)
            .where(
                account_attributes.c.account_id == account,
                account_attributes.c.name == "crm.csm_owner",
            )
            .values(value="csm-2")
        )
    index = ids.index(account)
    with time_machine.travel(at(DAY + timedelta(days=1))):
        summary = decide(settings, [account], SEATS, "unchanged", [READINESS[index]])
    assert summary.decided == 1
    (play,) = [p for p in rows(settings, play_instances) if p["account_id"] == account]
    assert (play["state"], play["owner"]) == ("opened", "csm-2")
    assert [t["payload"]["owner"] for t in created_tasks(settings, account)] == ["csm-2"]


def test_the_fingerprint_changes_with_the_plays_rules(settings):
    account = running_play(settings)
    rules = play_step.play_rules(settings)
    changed = rules.model_copy(update={"weekly_cap": {**rules.weekly_cap, "csm": 1}})
    record = Scored(account, assessment(account_id=account), SEATS, "unchanged")
    plays = rows(settings, play_instances)
    assert play_step.play_fingerprint(record, plays, rules) != play_step.play_fingerprint(
        record, plays, changed
    )


def test_batches_deciding_at_once_never_pass_an_owners_weekly_cap(settings):
    """Two batches of one CSM's accounts decided at the same time (on PostgreSQL each batch
    locks only the owners it fills): 5 plays open this week, whatever the interleaving."""
    ids = [new_account(settings, f"Account {i}", f"hs-{i}") for i in range(len(READINESS))]
    halves = [ids[: len(ids) // 2], ids[len(ids) // 2 :]]
    start = threading.Barrier(len(halves))
    failures: list[BaseException] = []

    def batch(accounts: list[int]) -> None:
        try:
            start.wait()
            decide(settings, accounts, SEATS, readiness=[READINESS[ids.index(a)] for a in accounts])
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    with time_machine.travel(T0):
        threads = [threading.Thread(target=batch, args=(half,)) for half in halves]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    states = [p["state"] for p in rows(settings, play_instances)]
    assert sorted(states) == ["opened"] * 5 + ["waitlisted"] * 7
