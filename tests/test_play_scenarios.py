"""Each of the seven plays over simulated weeks (time-machine; New York time, US holidays, from
Monday 2026-06-29 so that Friday July 3, the observed Independence Day, is skipped): the plays
step of a recompute opens the play, its first task is queued with its owner and business-day due
date, the writer confirms it, the owner completes it in HubSpot (a signed webhook, ingested) and
the next task is queued; left undone, that one breaches its SLA at the beat's sweep, recorded,
with an escalation task for the escalation owner. Then what only the plays step does: owners and
ACV from the stored account, the weekly cap across a batch by readiness, the spam controls over
weeks, and Salesforce completions and won deals."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from celery.schedules import crontab
from sqlalchemy import insert, select

from expansion.db import transaction, utcnow
from expansion.models import (
    account_attributes,
    account_links,
    account_subscriptions,
    accounts,
    canonical_events,
    inbox_events,
    key_aliases,
)
from expansion.play_tables import outbox, play_instances, play_outcomes, play_steps, sla_breaches
from expansion.settings import Settings
from integration.salesforce_ids import id18
from integration.sources.salesforce import outbound_message
from tests.play_support import Scored, assessment, signal
from tests.support import TEST_SECRETS, load_json_fixture
from tests.test_recompute import post_hubspot
from workers import ingest, play_step, tasks
from workers.celery_app import make_celery
from workers.evidence import Signal
from workers.outbox import claim_pending, mark_sent
from workers.play_engine import task_key

T0 = datetime(2026, 6, 29, 14, tzinfo=UTC)  # Monday, 10:00 in New York
CRM = {
    "csm_owner": "csm-1",
    "account_owner": "ae-1",
    "owner_manager": "mgr-1",
    "vp_cs_owner": "vp-1",
    "renewal_owner": "rn-1",
}
TASK_COMPLETED = load_json_fixture("hubspot", "object.propertyChange.json")[0]
SEATS = (signal("seat_utilization", 0.8, "43 of 50 seats active (86%)"),)
SALESFORCE_ACCOUNT = "0018c00002AcmeQAAR"
OPPORTUNITY = id18("0068c00000OppWn")


def at(day: date, hour: int = 14) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def new_account(
    settings: Settings,
    name: str = "Acme Corp",
    hubspot_id: str = "9001",
    arr: float = 20000.0,
    crm: dict[str, Any] | None = None,
    link: tuple[str, str] | None = None,
) -> int:
    """An account as ingest leaves it: its CRM link, mapped CRM fields and subscription."""
    with transaction(settings) as conn:
        account_id = conn.execute(
            insert(accounts).values(name=name, created_at=T0, updated_at=T0)
        ).inserted_primary_key[0]
        kind, external = link or ("hubspot", hubspot_id)
        conn.execute(
            insert(account_links).values(
                kind=kind, external_id=external, account_id=account_id, created_at=T0
            )
        )
        for field, value in (crm or CRM).items():
            conn.execute(
                insert(account_attributes).values(
                    account_id=account_id, name=f"crm.{field}", value=value, as_of=T0
                )
            )
        conn.execute(
            insert(account_subscriptions).values(
                account_id=account_id, tier="growth", seats=50, arr=arr, as_of=T0, seat_changes=[]
            )
        )
    return int(account_id)


def decide(
    settings: Settings,
    account_ids: list[int],
    signals: tuple[Signal, ...],
    status: str = "written",
    readiness: list[float] | None = None,
    **scores: Any,
) -> play_step.PlayStepSummary:
    """The plays step as a recompute (one account) or a rescore batch (several) runs it."""
    now = utcnow()
    records = [
        Scored(
            account_id,
            dataclasses.replace(
                assessment(
                    account_id=account_id,
                    **({"readiness": readiness[i]} if readiness else {}),
                    **scores,
                ),
                as_of=now.date(),
            ),
            signals,
            status,
        )
        for i, account_id in enumerate(account_ids)
    ]
    return play_step.decide_plays(settings, records, now)


def created_tasks(settings: Settings, account_id: int | None = None) -> list[dict[str, Any]]:
    query = select(outbox).where(outbox.c.kind == "create_task").order_by(outbox.c.id)
    if account_id is not None:
        query = query.where(outbox.c.account_id == account_id)
    with transaction(settings) as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def confirm_tasks(settings: Settings) -> dict[str, str]:
    """What a CRM writer does: claim the intents, send them, mark them sent with the id the CRM
    gave each created task. Returns external key -> CRM task id."""
    created = {}
    with transaction(settings) as conn:
        for intent in claim_pending(conn, utcnow(), limit=1000):
            crm_id = str(88_000_000 + intent.id) if intent.kind == "create_task" else None
            mark_sent(conn, intent.id, utcnow(), crm_record_id=crm_id)
            if crm_id is not None:
                created[intent.external_key] = crm_id
    return created


def complete_in_hubspot(client, task_id: str) -> None:  # type: ignore[no-untyped-def]
    """The owner ticks the task off in HubSpot: the signed webhook HubSpot sends, ingested."""
    event = {
        **TASK_COMPLETED,
        "eventId": int(task_id),
        "objectId": int(task_id),
        "occurredAt": int(time.time() * 1000),
    }
    post_hubspot(client, [event])


def ingest_pending(settings: Settings) -> list[str]:
    with transaction(settings) as conn:
        ids = conn.execute(
            select(inbox_events.c.id).where(inbox_events.c.status == "pending")
        ).scalars()
        pending = list(ids)
    return [ingest.process(settings, inbox_id).status for inbox_id in pending]


def sweep(settings: Settings) -> dict[str, int] | None:
    """The beat's SLA sweep, as the task runs it."""
    return play_step.sweep_single_flight(settings, utcnow())


def rows(settings: Settings, table: Any, **where: Any) -> list[dict[str, Any]]:
    query = select(table).order_by(table.c.id)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    with transaction(settings) as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


# --- one scenario per play ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    play: str
    signals: tuple[Signal, ...]
    scores: dict[str, Any]
    first: tuple[str, str, str]  # step, owner, due date of the first task
    second: tuple[str, str, str]  # the same for the task created when the first is completed
    escalation_owner: str


CASES = [
    Case(
        "seat_expansion",
        SEATS,
        {},
        ("utilization_report", "csm-1", "2026-07-01"),  # D2
        ("seat_block_proposal", "csm-1", "2026-07-06"),  # D4: July 3 and the weekend skipped
        "mgr-1",
    ),
    Case(
        "tier_upsell",
        (signal("usage_near_cap", 0.9, "API calls at 92% of the plan limit"),),
        {},
        ("value_review", "csm-1", "2026-07-07"),  # end of business week 1 (D5)
        ("trial", "csm-1", "2026-07-14"),  # week 2 (D10)
        "mgr-1",
    ),
    Case(
        "cross_sell",
        (signal("integration_connected", 0.7, "salesforce (crm) connected on 2026-06-20"),),
        {},
        ("ae_briefed", "ae-1", "2026-07-14"),  # AE-owned, week 2
        ("discovery", "ae-1", "2026-08-04"),  # week 5 (D25)
        "mgr-1",
    ),
    Case(
        "strategic_expansion",
        (
            signal("positive_convergence", 0.8, "NPS 10 from the sponsor, usage up 40%"),
            signal("org_growth", 0.7, "Series C on 2026-06-10"),
        ),
        {},
        ("exec_outreach", "vp-1", "2026-07-07"),  # the VP of CS, D5
        ("strategic_business_review", "vp-1", "2026-07-28"),  # D20
        "ae-1",
    ),
    Case(
        "renewal_expansion",
        SEATS,
        {"days_to_renewal": 30},
        ("expansion_case", "rn-1", "2026-07-02"),  # the renewal owner, D3
        ("renewal_proposal", "rn-1", "2026-07-14"),  # D10
        "mgr-1",
    ),
    Case(
        "save_play",
        SEATS,  # expansion signals, but health is yellow: a save play, never an upsell
        {"health": 55.0},
        ("exec_sponsor_reengagement", "csm-1", "2026-07-01"),  # D2
        ("escalate_open_p1s", "csm-1", "2026-07-02"),  # D3
        "mgr-1",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.play for c in CASES])
def test_a_play_runs_from_trigger_to_completion_to_sla_breach(client, settings, case):
    account = new_account(settings)
    with time_machine.travel(T0):
        opened = decide(settings, [account], case.signals, **case.scores).opened
    (play,) = rows(settings, play_instances)
    assert (play["play"], opened) == (case.play, [play["id"]])
    (first,) = created_tasks(settings)
    assert first["external_key"] == task_key(play["id"], 0)
    assert (first["crm"], first["crm_id"]) == ("hubspot", "9001")
    payload = first["payload"]
    assert (payload["step"], payload["owner"], payload["due_date"]) == case.first
    assert "Acme Corp" in payload["subject"] and payload["kind"] == "task"

    with time_machine.travel(T0 + timedelta(hours=1)):
        crm_ids = confirm_tasks(settings)
    with time_machine.travel(T0 + timedelta(days=1)):
        complete_in_hubspot(client, crm_ids[first["external_key"]])
        assert ingest_pending(settings) == ["processed"]
    second = created_tasks(settings)[-1]
    assert second["external_key"] == task_key(play["id"], 1)
    assert (
        second["payload"]["step"],
        second["payload"]["owner"],
        second["payload"]["due_date"],
    ) == (case.second)

    due = date.fromisoformat(case.second[2])
    with time_machine.travel(at(due)):  # 10:00 in New York on the due day: not late yet
        assert sweep(settings) == {"breaches": 0, "stalled": 0, "released": 0}
    with time_machine.travel(at(due + timedelta(days=1))):
        assert sweep(settings) == {"breaches": 1, "stalled": 0, "released": 0}
    (breach,) = rows(settings, sla_breaches)
    assert (breach["owner"], breach["escalation_owner"]) == (case.second[1], case.escalation_owner)
    escalation = next(
        t
        for t in created_tasks(settings)
        if t["external_key"] == second["external_key"] + "-escalation"
    )
    assert escalation["payload"]["owner"] == case.escalation_owner
    assert escalation["payload"]["kind"] == "escalation"
    assert f"was due on {case.second[2]}" in escalation["payload"]["body"]
    steps = rows(settings, play_steps, play_id=play["id"])
    assert [s["status"] for s in steps[:2]] == ["completed", "overdue"]


def test_usage_auto_expansion_sets_the_prompt_and_tells_the_csm(settings):
    account = new_account(settings)
    velocity = (signal("usage_velocity_to_tier", 0.7, "API calls reach the scale tier in 21 days"),)
    with time_machine.travel(T0):
        (play_id,) = decide(settings, [account], velocity, readiness=[20.0]).opened
    (fyi,) = created_tasks(settings)
    assert (fyi["payload"]["kind"], fyi["payload"]["owner"]) == ("fyi", "csm-1")
    fields: dict[str, Any] = {}
    for row in rows(settings, outbox, kind="set_fields"):
        fields.update(row["payload"]["fields"])
    assert fields["in_product_prompt"] == "scale"
    assert fields["recommended_play"] == "Usage auto-expansion"
    # Nothing for anyone to complete, so nothing to breach, however long it runs.
    with time_machine.travel(T0 + timedelta(days=30)):
        assert sweep(settings) == {"breaches": 0, "stalled": 0, "released": 0}
    assert [s["status"] for s in rows(settings, play_steps, play_id=play_id)] == [
        "completed",
        "completed",
    ]


# --- what the plays step adds: the stored account, batches, spam controls over weeks ----------


def plan_owner(play: dict[str, Any], step: str) -> str:
    return next(s["owner"]["assignee"] for s in play["plan"] if s["key"] == step)


@pytest.mark.parametrize(
    ("arr", "assists"), [(25000.0, []), (25000.01, ["ae-1"])], ids=["at-25k", "above-25k"]
)
def test_the_ae_assists_a_seat_expansion_above_25k_acv_read_from_the_subscription(
    settings, arr, assists
):
    account = new_account(settings, arr=arr)
    with time_machine.travel(T0):
        decide(settings, [account], SEATS)
    (play,) = rows(settings, play_instances)
    assert play["owner"] == "csm-1"
    assert [a["assignee"] for a in play["evidence"]["assists"]] == assists


@pytest.mark.parametrize(
    ("arr", "proposal_owner"),
    # No list price for the next tier: the increase is 30% of ACV; $33,333.34 -> $10,000.002.
    [(33333.33, "csm-1"), (33333.34, "ae-1")],
    ids=["increase-at-10k", "increase-above-10k"],
)
def test_a_tier_upsell_hands_the_proposal_to_the_ae_above_a_10k_increase(
    settings, arr, proposal_owner
):
    account = new_account(settings, arr=arr)
    with time_machine.travel(T0):
        decide(settings, [account], (signal("usage_near_cap", 0.9),))
    (play,) = rows(settings, play_instances)
    assert plan_owner(play, "value_review") == "csm-1"
    assert plan_owner(play, "proposal") == proposal_owner


def test_a_missing_owner_goes_to_the_queue_and_is_reported(settings):
    account = new_account(settings, crm={"account_owner": "ae-1"})
    with time_machine.travel(T0):
        decide(settings, [account], SEATS)
    (task,) = created_tasks(settings)
    assert task["payload"]["owner"] == "expansion-unassigned"
    assert task["payload"]["owner_is_queue"] is True
    (play,) = rows(settings, play_instances)
    assert "no CSM on the account: CRM field(s) csm_owner, csm empty" in play["evidence"]["routing"]


READINESS = [55.0, 71.0, 48.0, 90.0, 62.0, 44.0, 83.0, 59.0, 77.0, 41.0, 66.0, 50.0]


def test_the_weekly_cap_is_filled_by_the_highest_readiness_across_a_batch(settings):
    ids = [new_account(settings, f"Account {i}", f"hs-{i}") for i in range(len(READINESS))]
    by_readiness = [a for _, a in sorted(zip(READINESS, ids, strict=True), reverse=True)]
    with time_machine.travel(T0):
        summary = decide(settings, ids, SEATS, readiness=READINESS)
    plays = {p["account_id"]: p for p in rows(settings, play_instances)}
    opened = {a for a, p in plays.items() if p["state"] == "opened"}
    assert opened == set(by_readiness[:5])  # 90, 83, 77, 71, 66: the CSM's 5 for the week
    assert {plays[a]["id"] for a in opened} == set(summary.opened)
    assert {a for a, p in plays.items() if p["state"] == "waitlisted"} == set(by_readiness[5:])
    assert {t["account_id"] for t in created_tasks(settings)} == set(by_readiness[:5])

    with time_machine.travel(T0 + timedelta(days=2)):  # same week: no room
        assert sweep(settings)["released"] == 0
    with time_machine.travel(T0 + timedelta(days=7)):  # next Monday: the next 5 by readiness
        assert sweep(settings)["released"] == 5
    plays = {p["account_id"]: p for p in rows(settings, play_instances)}
    still = {a for a, p in plays.items() if p["state"] == "waitlisted"}
    assert still == set(by_readiness[10:])  # 44 and 41 wait another week
    released = {t["account_id"] for t in created_tasks(settings)} - set(by_readiness[:5])
    assert released == set(by_readiness[5:10])


def test_one_play_per_type_hysteresis_cooldown_and_the_health_gate_over_weeks(settings):
    account = new_account(settings)
    day = T0.date()

    def on(days: int, readiness: float, health: float = 82.0, status: str = "written"):  # type: ignore[no-untyped-def]
        with time_machine.travel(at(day + timedelta(days=days))):
            return decide(settings, [account], SEATS, status, [readiness], health=health)

    (first,) = on(0, 45.0).opened  # at or above enter 40
    assert on(1, 45.0, status="unchanged").opened == []  # one open play per account and type
    assert on(2, 35.0) == play_step.PlayStepSummary(decided=1)  # below enter, above exit: kept
    assert len(created_tasks(settings)) == 1
    assert on(3, 29.0).closed == [first]  # below exit 30
    (cancel,) = rows(settings, outbox, kind="update_task")
    assert (cancel["external_key"], cancel["payload"]["status"]) == (task_key(first, 0), "canceled")
    assert on(4, 50.0).opened == []  # cooldown: 60 days after the close
    assert on(62, 50.0).opened == []  # 2026-08-30 is 59 days after 2026-07-02
    assert on(63, 50.0, health=82.0, status="unchanged").opened != []  # 60 days: open again
    plays = rows(settings, play_instances)
    assert [(p["play"], p["state"]) for p in plays] == [
        ("seat_expansion", "closed"),
        ("seat_expansion", "opened"),
    ]
    turned = on(70, 50.0, health=55.0)  # yellow: the upsell closes, a save play opens
    assert turned.closed == [plays[1]["id"]]
    (save,) = turned.opened
    assert rows(settings, play_instances)[-1]["play"] == "save_play"
    recovered = on(75, 50.0, health=80.0)  # green above the save play's exit 75
    assert recovered.closed == [save]
    assert recovered.opened == []  # the seat expansion closed 5 days ago: cooling down


def test_salesforce_completion_and_a_won_opportunity_close_the_play(client, settings):
    account = new_account(settings, link=("salesforce", SALESFORCE_ACCOUNT))
    with time_machine.travel(T0):
        (play_id,) = decide(settings, [account], SEATS).opened
    (first,) = created_tasks(settings)
    assert (first["crm"], first["crm_id"]) == ("salesforce", SALESFORCE_ACCOUNT)
    stamp = {"LastModifiedById": "0058c00000CsmUsAAJ", "LastModifiedDate": "2026-06-30T14:00:00Z"}
    with time_machine.travel(T0 + timedelta(days=1)):
        confirm_tasks(settings)
        task = {
            "Id": "00T8c00000TskDnEAJ",
            "AccountId": SALESFORCE_ACCOUNT,
            "Status": "Completed",
            "Expansion_Key__c": first["external_key"],
            **stamp,
        }
        notify_salesforce(client, "04l8c00000NtfG1", "Task", task)
        assert ingest_pending(settings) == ["processed"]
    assert created_tasks(settings)[-1]["payload"]["step"] == "seat_block_proposal"
    with time_machine.travel(T0 + timedelta(days=8)):
        opportunity = {
            "Id": OPPORTUNITY,
            "AccountId": SALESFORCE_ACCOUNT,
            "IsClosed": True,
            "IsWon": True,
            "Amount": 18000.0,
            **stamp,
        }
        notify_salesforce(client, "04l8c00000NtfG2", "Opportunity", opportunity)
        assert ingest_pending(settings) == ["processed"]
    (play,) = rows(settings, play_instances)
    assert (play["state"], play["close_reason"]) == (
        "won",
        f"deal {OPPORTUNITY} closed won (18,000.00)",
    )
    (outcome,) = rows(settings, play_outcomes)
    assert (outcome["play_id"], outcome["won"], outcome["amount"]) == (play_id, True, 18000.0)
    assert outcome["signals"] == ["seat_utilization"]
    (cancel,) = rows(settings, outbox, kind="update_task")
    assert cancel["external_key"] == task_key(play_id, 1)


def notify_salesforce(client, notification: str, sobject: str, fields: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    body = outbound_message(
        TEST_SECRETS["SALESFORCE_ORG_ID"], [(id18(notification), sobject, fields)]
    )
    response = client.post(
        "/webhooks/salesforce",
        data=body,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def test_a_hubspot_task_confirmed_by_the_writer_routes_to_its_company(settings):
    account = new_account(settings)
    with time_machine.travel(T0):
        decide(settings, [account], SEATS)
        (key,) = confirm_tasks(settings)
    with transaction(settings) as conn:
        alias = conn.execute(
            select(key_aliases.c.target_kind, key_aliases.c.target_id).where(
                key_aliases.c.kind == "hubspot_task"
            )
        ).one()
        step = conn.execute(select(play_steps.c.crm_task_id, play_steps.c.task_key)).one()
    assert tuple(alias) == ("hubspot", "9001")
    assert step.task_key == key


def test_a_hubspot_completion_before_the_writer_confirmed_the_task_advances_the_play_once(
    client, settings
):
    account = new_account(settings)
    with time_machine.travel(T0):
        (play_id,) = decide(settings, [account], SEATS).opened
    (first,) = created_tasks(settings)
    task_id = str(88_000_000 + first["id"])  # the id confirm_tasks records for it
    with time_machine.travel(T0 + timedelta(minutes=5)):  # the owner was quicker than the writer
        complete_in_hubspot(client, task_id)
        assert ingest_pending(settings) == ["processed"]
    assert [e["status"] for e in rows(settings, canonical_events)] == ["parked"]
    assert len(created_tasks(settings)) == 1

    with time_machine.travel(T0 + timedelta(minutes=10)):
        assert confirm_tasks(settings) == {task_key(play_id, 0): task_id}
        confirm_tasks(settings)  # the next step's task; confirming again releases nothing twice
    assert [e["status"] for e in rows(settings, canonical_events)] == ["applied"]
    keys = [t["external_key"] for t in created_tasks(settings)]
    assert keys == [task_key(play_id, 0), task_key(play_id, 1)]
    steps = rows(settings, play_steps, play_id=play_id)
    assert [s["status"] for s in steps] == ["completed", "open"]


def test_a_task_queued_before_the_account_had_a_crm_record_still_routes_its_completion(
    client, settings
):
    account = new_account(settings, link=("stripe", "cus_acme"))
    with time_machine.travel(T0):
        (play_id,) = decide(settings, [account], SEATS).opened
    (first,) = created_tasks(settings)
    assert (first["crm"], first["crm_id"]) == (None, None)
    with transaction(settings) as conn:  # HubSpot's company arrives: the account gets its link
        conn.execute(
            insert(account_links).values(
                kind="hubspot", external_id="9001", account_id=account, created_at=T0
            )
        )
    with time_machine.travel(T0 + timedelta(hours=1)):
        crm_ids = confirm_tasks(settings)
    task_id = crm_ids[first["external_key"]]
    with transaction(settings) as conn:
        alias = conn.execute(
            select(key_aliases.c.target_kind, key_aliases.c.target_id).where(
                key_aliases.c.kind == "hubspot_task", key_aliases.c.external_id == task_id
            )
        ).one()
    assert tuple(alias) == ("hubspot", "9001")
    with time_machine.travel(T0 + timedelta(days=1)):
        complete_in_hubspot(client, task_id)
        assert ingest_pending(settings) == ["processed"]
    keys = [t["external_key"] for t in created_tasks(settings)]
    assert keys == [task_key(play_id, 0), task_key(play_id, 1)]


def test_the_beat_sweeps_every_15_minutes_once_across_hosts(settings, env, monkeypatch):
    schedule = make_celery(settings).conf.beat_schedule["sla-sweep"]
    assert schedule["task"] == "workers.tasks.sla_sweep"
    assert schedule["schedule"] == crontab(minute="*/15")
    account = new_account(settings)
    with time_machine.travel(T0):
        decide(settings, [account], SEATS)
    client = play_step.redis.Redis.from_url(play_step.redis_url(settings))
    for name, value in env.items():  # the task reads its settings from the environment
        monkeypatch.setenv(name, value)
    tasks.settings.cache_clear()
    try:
        with time_machine.travel(at(date(2026, 7, 2))):  # the first step was due on July 1
            client.set(play_step.SWEEP_LOCK_KEY, "another host", px=60_000)
            assert tasks.sla_sweep() is None
            assert rows(settings, sla_breaches) == []
            client.delete(play_step.SWEEP_LOCK_KEY)
            assert tasks.sla_sweep() == {"breaches": 1, "stalled": 0, "released": 0}
            assert tasks.sla_sweep() == {"breaches": 0, "stalled": 0, "released": 0}
    finally:
        tasks.settings.cache_clear()
        client.delete(play_step.SWEEP_LOCK_KEY)
