"""The persisted play state machine (SPEC §5): applies play decisions, creates one step's task at
a time through the outbox, advances on completion or when a due date passes (an SLA breach with
an escalation task), stalls, attributes closed deals, and releases the weekly-cap waitlist.

Wiring, one call each: after a recompute `apply_decisions` (with `load_play_inputs` and
`owner_week_counts` feeding select_plays); on `task.changed` completed `on_task_completed`; on
`deal.closed` `on_deal_closed`; from the beat `sla_sweep`. Every step is rendered when the play
opens (texts, owners, business-day offsets) and kept in `play_instances.plan`, so the later
transitions need neither the scores nor the rules."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, case, func, insert, select, update

from expansion.bulk import copy_rows, one_of
from expansion.db import as_utc
from expansion.models import accounts
from expansion.play_tables import play_instances, play_outcomes, play_steps, sla_breaches
from workers.briefs import PlayTexts, SimilarWin
from workers.business_days import END_OF_DAY, add_business_days, local_day, next_business_day, zone
from workers.evidence import Signal
from workers.outbox import CrmTarget, last_fields, queue_intent
from workers.owners import Owner
from workers.play_rules import PRIORITIES, PlayRules
from workers.play_selection import (
    ClosedPlay,
    OpenPlay,
    PlayContext,
    PlayDecision,
    apply_weekly_cap,
    weekly_cap,
)
from workers.scoring import Assessment

RUNNING = ("opened", "step")
FINISHED = ("won", "lost", "stalled", "closed")
TOP_SIGNALS = 3


@dataclass(frozen=True)
class EngineContext:
    """What opening a play renders from: the account's scores, its active signals, its facts."""

    assessment: Assessment
    signals: Sequence[Signal]
    account: PlayContext


@dataclass(frozen=True)
class Known:
    """What a batch caller already read of an account for apply_decisions."""

    active: Mapping[str, Mapping[str, Any]]  # PlayInputs.active
    queued_fields: Mapping[str, Any]  # outbox.last_fields
    crm_target: CrmTarget  # outbox.crm_targets
    similar: SimilarWins | None = None  # the batch's similar wins, read once per play


@dataclass
class Applied:
    opened: list[int] = field(default_factory=list)
    waitlisted: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)


@dataclass
class Swept:
    breaches: list[int] = field(default_factory=list)  # step ids
    stalled: list[int] = field(default_factory=list)  # play ids
    released: list[int] = field(default_factory=list)  # play ids


# --- inputs for select_plays -------------------------------------------------------------------


@dataclass(frozen=True)
class PlayInputs:
    """An account's plays as select_plays reads them, and whether one waits on the cap."""

    running: list[OpenPlay]
    closes: list[ClosedPlay]
    waitlisted: bool
    active: dict[str, Mapping[str, Any]]  # running and waiting plays by type: id, play, state


def load_play_inputs(
    conn: Connection, account_id: int, now: datetime
) -> tuple[list[OpenPlay], list[ClosedPlay]]:
    """(the running plays, the last close of each play type that ran) of the account."""
    inputs = load_play_inputs_many(conn, [account_id], now)[account_id]
    return inputs.running, inputs.closes


def load_play_inputs_many(
    conn: Connection, account_ids: Sequence[int], now: datetime
) -> dict[int, PlayInputs]:
    """The play inputs of each account, in one query (a rescore batch's accounts)."""
    grouped = load_play_rows_many(conn, account_ids)
    return {account_id: play_inputs(rows) for account_id, rows in grouped.items()}


def load_play_rows_many(
    conn: Connection, account_ids: Sequence[int]
) -> dict[int, list[Mapping[str, Any]]]:
    """Each account's plays as `play_inputs` reads them (id, play, state, opened_at,
    closed_at, and owner_user: whose weekly cap a waitlisted one waits on), in one query."""
    columns = play_instances.c
    rows = conn.execute(
        select(
            columns.id,
            columns.account_id,
            columns.play,
            columns.state,
            columns.opened_at,
            columns.closed_at,
            columns.owner_user,
        ).where(one_of(columns.account_id, account_ids, conn.dialect.name))
    ).mappings()
    grouped: dict[int, list[Mapping[str, Any]]] = {account_id: [] for account_id in account_ids}
    for row in rows:
        grouped[row["account_id"]].append(row)
    return grouped


def play_inputs(rows: Sequence[Mapping[str, Any]]) -> PlayInputs:
    if not rows:  # most accounts of a book
        return PlayInputs([], [], False, {})
    running: list[OpenPlay] = []
    last: dict[str, ClosedPlay] = {}
    for row in rows:
        if row["state"] in RUNNING:
            running.append(OpenPlay(row["play"], _day(row["opened_at"]), row["id"]))
        elif row["state"] in FINISHED and row["opened_at"] is not None:
            closed = ClosedPlay(row["play"], _day(row["closed_at"]), row["state"])
            if row["play"] not in last or closed.closed_on > last[row["play"]].closed_on:
                last[row["play"]] = closed
    waiting = any(row["state"] == "waitlisted" for row in rows)
    active = {row["play"]: row for row in rows if row["closed_at"] is None}
    return PlayInputs(running, sorted(last.values(), key=lambda c: c.play), waiting, active)


def owner_week_counts(conn: Connection, now: datetime) -> dict[str, int]:
    """Capped plays opened per owner (user id) since Monday 00:00 UTC of `now`'s week."""
    day = as_utc(now).date()
    monday = datetime.combine(day - timedelta(days=day.weekday()), datetime.min.time(), UTC)
    rows = conn.execute(
        select(play_instances.c.owner_user, func.count())
        .where(
            play_instances.c.opened_at >= monday,
            play_instances.c.weekly_cap.is_not(None),
            play_instances.c.owner_user.is_not(None),
        )
        .group_by(play_instances.c.owner_user)
    )
    return {user: count for user, count in rows}


# --- decisions ---------------------------------------------------------------------------------


def apply_decisions(
    conn: Connection,
    account_id: int,
    decisions: Sequence[PlayDecision],
    context: EngineContext,
    now: datetime,
    rules: PlayRules,
    admit: bool = True,
    known: Known | None = None,
) -> Applied:
    """Open, waitlist and close plays as decided (idempotent: a play already running is left
    alone), drop waitlisted plays no longer selected, then queue the account's changed fields.
    `admit=False`: new plays under a weekly cap join the waitlist, for `release_waitlist` to
    open across accounts by readiness (uncapped ones open at once); else the cap is applied to
    this account's plays alone. `known`: what the caller already read of the account (a batch
    reads it in one query each)."""
    now = as_utc(now)
    active = known.active if known else _active(conn, account_id)
    similar = known.similar if known else None
    last, target = (known.queued_fields, known.crm_target) if known else (None, None)
    with _fields_queued_once(conn, account_id, now, last, target):
        applied = _apply(conn, account_id, decisions, context, now, rules, admit, active, similar)
        _sync_fields(conn, account_id, now, _score_fields(context, rules))
    return applied


def _apply(
    conn: Connection,
    account_id: int,
    decisions: Sequence[PlayDecision],
    context: EngineContext,
    now: datetime,
    rules: PlayRules,
    admit: bool,
    active: Mapping[str, Mapping[str, Any]],
    similar: SimilarWins | None = None,
) -> Applied:
    applied = Applied()
    wanted = [
        d for d in decisions if d.action == "open" and _state(active.get(d.play)) not in RUNNING
    ]
    closes = [d for d in decisions if d.action == "close" and d.instance_id is not None]
    for decision in closes:
        if _finish(conn, int(decision.instance_id), "closed", decision.reason, now):  # type: ignore[arg-type]
            applied.closed.append(int(decision.instance_id))  # type: ignore[arg-type]
    if admit:
        granted, waiting = apply_weekly_cap(wanted, owner_week_counts(conn, now), rules)
    else:
        granted = [d for d in wanted if weekly_cap(d, rules) is None]
        waiting = [d for d in wanted if weekly_cap(d, rules) is not None]
    for decision in granted:
        row = active.get(decision.play)
        if row is None:
            play_id = _insert_open(conn, decision, context, now, rules, applied, similar)
        else:
            play_id = _upsert_waiting(conn, row, decision, context, now, rules, similar)
            _open(conn, play_id, now)
        if play_id is not None:
            applied.opened.append(play_id)
    for decision in waiting:
        play_id = _upsert_waiting(
            conn, active.get(decision.play), decision, context, now, rules, similar
        )
        applied.waitlisted.append(play_id)
    selected = {d.play for d in granted + waiting}
    for play, row in active.items():
        if row["state"] == "waitlisted" and play not in selected:
            _drop_waiting(conn, row["id"], decisions, now)
    return applied


def _active(conn: Connection, account_id: int) -> dict[str, Mapping[str, Any]]:
    """The account's running and waiting plays by type: id, play and state."""
    return {row["play"]: row for row in conn.execute(_ACTIVE, {"account": account_id}).mappings()}


_ACTIVE = select(play_instances.c.id, play_instances.c.play, play_instances.c.state).where(
    play_instances.c.account_id == bindparam("account"), play_instances.c.closed_at.is_(None)
)


def _state(row: Mapping[str, Any] | None) -> str | None:
    return row["state"] if row is not None else None


def _upsert_waiting(
    conn: Connection,
    row: Mapping[str, Any] | None,
    decision: PlayDecision,
    context: EngineContext,
    now: datetime,
    rules: PlayRules,
    similar: SimilarWins | None = None,
) -> int:
    """A waitlisted instance for the decision, its plan rendered from the latest scores."""
    values = _instance_values(conn, decision, context, rules, similar)
    if row is not None:
        conn.execute(update(play_instances).where(play_instances.c.id == row["id"]).values(values))
        return int(row["id"])
    values |= {
        "account_id": decision.account_id,
        "play": decision.play,
        "state": "waitlisted",
        "created_at": now,
        "current_step": 0,
    }
    return int(conn.execute(play_instances.insert(), values).inserted_primary_key[0])


def _insert_open(
    conn: Connection,
    decision: PlayDecision,
    context: EngineContext,
    now: datetime,
    rules: PlayRules,
    applied: Applied,
    similar: SimilarWins | None = None,
) -> int | None:
    """A new play opened at once: inserted running, its first step created from the values
    in hand (no update and re-read, which a rescore batch opening thousands would pay for).
    Returns its id, or None within `opens_deferred` (which adds it to `applied` later)."""
    values = _instance_values(conn, decision, context, rules, similar) | {
        "account_id": decision.account_id,
        "play": decision.play,
        "state": "opened",
        "created_at": now,
        "opened_at": now,
        "closed_at": None,
        "current_step": 0,
    }
    deferred = conn.info.get(_OPENS_DEFERRED)
    if deferred is not None and values["plan"][0]["kind"] == "task":
        deferred.append((values, applied, _target(conn, values)))
        _sync_play_fields(conn, decision.account_id, now)
        return None
    play_id = int(conn.execute(play_instances.insert(), values).inserted_primary_key[0])
    _create_step(conn, {**values, "id": play_id}, 0, now)
    return play_id


_OPENS_DEFERRED = "es.plays.opens.deferred"  # conn.info key: plays to insert at the block's end


@contextmanager
def opens_deferred(conn: Connection, now: datetime) -> Iterator[None]:
    """Within it, new plays whose first step is a task are inserted when the block ends: the
    plays in one statement, then their first steps in another, their tasks queued (an opening
    adds their ids to its `Applied.opened` then). A rescore batch opens hundreds of plays;
    nothing in it reads a play it opened before the block ends."""
    deferred: list[tuple[dict[str, Any], Applied, CrmTarget | None]] = []
    conn.info[_OPENS_DEFERRED] = deferred
    try:
        yield
    finally:
        conn.info.pop(_OPENS_DEFERRED, None)
    if not deferred:
        return
    ids = copy_rows(conn, play_instances, [values for values, _, _ in deferred], ids=True)
    steps = []
    for (values, applied, target), play_id in zip(deferred, ids, strict=True):
        play = {**values, "id": play_id}
        row, due_on = _step_row(play, 0, now, skipped=False)
        steps.append(row)
        step = play["plan"][0]
        _enqueue_task(conn, play, step, row["task_key"], due_on, now, step["kind"], target)
        applied.opened.append(play_id)
    copy_rows(conn, play_steps, steps)


def _instance_values(
    conn: Connection,
    decision: PlayDecision,
    context: EngineContext,
    rules: PlayRules,
    similar: SimilarWins | None = None,
) -> dict[str, Any]:
    rule = rules.plays[decision.play]  # type: ignore[index]
    account, owners = context.account, rules.owners
    owner = decision.owner
    escalation = account.owner(rule.escalation_owner, owners) if rule.escalation_owner else None
    limit = rules.brief.max_similar_wins
    wins = (
        similar.of(decision.play, decision.account_id, limit)
        if similar is not None
        else similar_wins(conn, decision.play, decision.account_id, limit)
    )
    roles = dict(decision.step_roles)
    texts = PlayTexts(decision.play, decision.signals, context.assessment, account, rules, wins)
    plan = []
    for step in rule.steps:
        role = roles.get(step.key)
        step_owner = account.owner(role, owners) if role else None
        if step.kind == "fyi" and decision.fyi is not None:
            step_owner = decision.fyi
        plan.append(
            {
                "key": step.key,
                "title": step.title,
                "kind": step.kind,
                "condition": step.condition,
                "overdue": step.overdue,
                "days": step.due_days(account.segment),
                "owner": _owner_json(step_owner),
                "subject": texts.subject(step.key),
                "body": texts.brief(step.key) if step.kind != "field" else "",
                "field": step.field,
                "value": texts.value(step.key) if step.kind == "field" else None,
            }
        )
    capped = owner is not None and rule.capped
    cap = rules.weekly_cap.get(owner.role) if capped else None  # type: ignore[union-attr, call-overload]
    return {
        "gate": rule.gate,
        "priority": rule.priority,
        "owner_role": owner.role if owner else None,
        "owner": owner.assignee if owner else None,
        "owner_user": owner.user_id if owner else None,
        "weekly_cap": cap,
        "readiness_at_open": decision.readiness,
        "signals": [_signal_json(s) for s in decision.signals],
        "evidence": {
            "account": account.name or f"account {account.account_id}",
            "play_title": rule.title,
            "reason": decision.reason,
            "routing": list(decision.routing),
            "assists": [_owner_json(a) for a in decision.assists],
            "escalation": _owner_json(escalation),
            "time_zone": account.time_zone,
            "holiday_country": account.holiday_country,
        },
        "plan": plan,
    }


def _open(conn: Connection, play_id: int, now: datetime) -> None:
    conn.execute(
        update(play_instances)
        .where(play_instances.c.id == play_id)
        .values(state="opened", opened_at=now, current_step=0)
    )
    _create_step(conn, _instance(conn, play_id), 0, now)


def _drop_waiting(
    conn: Connection, play_id: int, decisions: Sequence[PlayDecision], now: datetime
) -> None:
    """A waitlisted play the latest selection no longer opens leaves the waitlist (no
    cooldown: it never ran)."""
    row = _instance(conn, play_id)
    why = next((d.reason for d in decisions if d.play == row["play"]), "no longer triggered")
    conn.execute(
        update(play_instances)
        .where(play_instances.c.id == play_id)
        .values(state="closed", closed_at=now, close_reason=f"left the waitlist: {why}")
    )


# --- steps -------------------------------------------------------------------------------------


def task_key(play_id: int, step_index: int) -> str:
    """The deterministic external key of a play step's CRM task."""
    return f"es-play-{play_id}-step-{step_index}"


def _create_step(
    conn: Connection, play: Mapping[str, Any], index: int, now: datetime, skipped: bool = False
) -> None:
    """Insert step `index` and queue its work: a task, an FYI (done once sent) or a field
    write (done at once); a done step moves the play on."""
    step = play["plan"][index]
    row, due_on = _step_row(play, index, now, skipped)
    key, done = row["task_key"], step["kind"] != "task"
    conn.execute(play_steps.insert(), row)
    if index > 0:  # step 0 is created by the opening, which set both
        conn.execute(
            update(play_instances)
            .where(play_instances.c.id == play["id"])
            .values(current_step=index, state="step")
        )
    if skipped:
        _advance(conn, play["id"], index, completed=False, now=now)
        return
    if step["kind"] == "field":
        _sync_fields(conn, play["account_id"], now, {step["field"]: step["value"]})
    else:
        _enqueue_task(conn, play, step, key, due_on, now, kind=step["kind"])
    if done:
        _advance(conn, play["id"], index, completed=True, now=now)
    # After the advance: a play of done steps only (usage auto-expansion) is recommended too.
    _sync_play_fields(conn, play["account_id"], now)


def _step_row(
    play: Mapping[str, Any], index: int, now: datetime, skipped: bool
) -> tuple[dict[str, Any], date]:
    """The play_steps row of step `index` (a task is open; an FYI or a field write is done at
    once), and its due day."""
    step = play["plan"][index]
    due_on, due_at = _due(play, step, now, play["evidence"])
    done = step["kind"] != "task"
    status = "skipped" if skipped else ("completed" if done else "open")
    row = {
        "play_id": play["id"],
        "step_index": index,
        "name": step["key"],
        "kind": step["kind"],
        "owner": (step["owner"] or {}).get("assignee"),
        "due_on": due_on,
        "due_at": due_at,
        "task_key": task_key(play["id"], index),
        "status": status,
        "created_at": now,
        "completed_at": now if status == "completed" else None,
    }
    return row, due_on


def _due(
    play: Mapping[str, Any], step: Mapping[str, Any], now: datetime, evidence: Mapping[str, Any]
) -> tuple[date, datetime]:
    """D<days> counted from the play's opening; never before the step is created."""
    tz, country = evidence["time_zone"], evidence["holiday_country"]
    opened = as_utc(play["opened_at"] or now)
    due_on = add_business_days(opened, step["days"], tz, country)
    due_on = max(due_on, next_business_day(local_day(now, tz), country))
    due_at = datetime.combine(due_on, END_OF_DAY, tzinfo=zone(tz)).astimezone(UTC)
    return due_on, due_at


def _advance(conn: Connection, play_id: int, index: int, completed: bool, now: datetime) -> None:
    """After step `index` is done (or overdue): the next step, or the play's end. A
    `no_response` step is skipped when the step before it was completed."""
    play = _instance(conn, play_id)
    if play["state"] not in RUNNING:
        return
    following = index + 1
    if following >= len(play["plan"]):
        if completed and play["owner"] is not None:
            _finish(conn, play_id, "closed", "every step completed", now)
        return
    skip = completed and play["plan"][following]["condition"] == "no_response"
    _create_step(conn, play, following, now, skipped=skip)


def on_task_completed(conn: Connection, external_key: str, now: datetime) -> bool:
    """A CRM task was completed: the step is done and, when it is the play's current step,
    the next one is created. Returns False for keys that are not an open play step."""
    step = (
        conn.execute(select(play_steps).where(play_steps.c.task_key == external_key))
        .mappings()
        .first()
    )
    if step is None or step["status"] not in ("open", "overdue"):
        return False
    now = as_utc(now)
    conn.execute(
        update(play_steps)
        .where(play_steps.c.id == step["id"])
        .values(status="completed", completed_at=now)
    )
    play = _instance(conn, step["play_id"])
    if play["state"] in RUNNING and play["current_step"] == step["step_index"]:
        _advance(conn, play["id"], step["step_index"], completed=True, now=now)
    return True


def sla_sweep(conn: Connection, now: datetime) -> Swept:
    """Steps past their due time: a `stalled` step stalls its play; any other is an SLA breach
    (recorded, an escalation task for the escalation owner) and the next step is created. Then
    waitlisted plays are released where the owners' weekly caps have room."""
    now = as_utc(now)
    swept = Swept()
    overdue = conn.execute(
        select(play_steps)
        .join(play_instances, play_instances.c.id == play_steps.c.play_id)
        .where(
            play_steps.c.status == "open",
            play_steps.c.due_at < now,
            play_instances.c.state.in_(RUNNING),
        )
        .order_by(play_steps.c.due_at, play_steps.c.id)
    ).mappings()
    for step in list(overdue):
        play = _instance(conn, step["play_id"])
        if play["state"] not in RUNNING:
            continue
        conn.execute(
            update(play_steps).where(play_steps.c.id == step["id"]).values(status="overdue")
        )
        planned = play["plan"][step["step_index"]]
        if planned["overdue"] == "stalled":
            reason = f"{planned['title']} was not done by {step['due_on'].isoformat()}"
            _finish(conn, play["id"], "stalled", reason, now)
            swept.stalled.append(play["id"])
            continue
        _breach(conn, play, step, planned, now)
        swept.breaches.append(step["id"])
        if play["current_step"] == step["step_index"]:
            _advance(conn, play["id"], step["step_index"], completed=False, now=now)
    swept.released = release_waitlist(conn, now)
    return swept


def _breach(
    conn: Connection,
    play: Mapping[str, Any],
    step: Mapping[str, Any],
    planned: Mapping[str, Any],
    now: datetime,
) -> None:
    escalation = play["evidence"]["escalation"] or {}
    conn.execute(
        insert(sla_breaches).values(
            play_id=play["id"],
            step_id=step["id"],
            owner=step["owner"],
            escalation_owner=escalation.get("assignee"),
            breached_at=now,
        )
    )
    if not escalation:
        return
    evidence = play["evidence"]
    due = step["due_on"].isoformat()
    body = (
        f'SLA breach: "{planned["title"]}" ({evidence["play_title"]} for {evidence["account"]}) '
        f"was due on {due} and is not completed. Owner: {step['owner']}. Follow up with them "
        f"or take the step over.\n\n{planned['body']}"
    )
    esc_step = {
        "key": f"{planned['key']}_escalation",
        "kind": "escalation",
        "owner": escalation,
        "subject": f"[SLA breach] {planned['subject']}",
        "body": body,
    }
    tz, country = evidence["time_zone"], evidence["holiday_country"]
    due_on = add_business_days(now, 1, tz, country)
    key = f"{step['task_key']}-escalation"
    _enqueue_task(conn, play, esc_step, key, due_on, now, kind="escalation")


def release_waitlist(
    conn: Connection, now: datetime, owners: Collection[str] | None = None
) -> list[int]:
    """Open waitlisted plays (of these owners' user ids, or all), highest readiness first,
    while their owners' caps have room."""
    counts = owner_week_counts(conn, now)
    rank = {p: i for i, p in enumerate(PRIORITIES)}
    query = select(play_instances).where(play_instances.c.state == "waitlisted")
    if owners is not None:
        query = query.where(play_instances.c.owner_user.in_(sorted(owners)))
    rows = conn.execute(query).mappings()
    ordered = sorted(
        rows,
        key=lambda r: (-r["readiness_at_open"], rank.get(r["priority"], 9), r["id"]),
    )
    released = []
    for row in ordered:
        user, cap = row["owner_user"], row["weekly_cap"]
        if cap is not None and user is not None:
            if counts.get(user, 0) >= cap:
                continue
            counts[user] = counts.get(user, 0) + 1
        _open(conn, row["id"], now)
        released.append(row["id"])
    return released


# --- endings -----------------------------------------------------------------------------------


def on_deal_closed(
    conn: Connection,
    account_id: int,
    won: bool,
    amount: float | None,
    deal_id: str,
    now: datetime,
) -> int:
    """Store the closed deal, attributed to the account's running expansion play (the highest
    priority, then the oldest) which it closes as won or lost. Idempotent per deal; returns the
    outcome id."""
    existing = conn.execute(
        select(play_outcomes.c.id).where(
            play_outcomes.c.account_id == account_id, play_outcomes.c.deal_id == deal_id
        )
    ).scalar()
    if existing is not None:
        return int(existing)
    now = as_utc(now)
    rank = {p: i for i, p in enumerate(PRIORITIES)}
    running = conn.execute(
        select(play_instances).where(
            play_instances.c.account_id == account_id,
            play_instances.c.state.in_(RUNNING),
            play_instances.c.gate == "expansion",
        )
    ).mappings()
    play = min(running, key=lambda r: (rank.get(r["priority"], 9), r["id"]), default=None)
    outcome = conn.execute(
        insert(play_outcomes).values(
            account_id=account_id,
            play_id=play["id"] if play else None,
            play=play["play"] if play else None,
            deal_id=deal_id,
            won=won,
            amount=amount,
            closed_at=now,
            signals=[s["name"] for s in play["signals"]] if play else [],
        )
    ).inserted_primary_key[0]
    if play is not None:
        shown = f" ({amount:,.2f})" if amount is not None else ""
        verb = "won" if won else "lost"
        _finish(conn, play["id"], verb, f"deal {deal_id} closed {verb}{shown}", now)
    return int(outcome)


def _finish(conn: Connection, play_id: int, state: str, reason: str, now: datetime) -> bool:
    """End a running (or waiting) play; its unfinished tasks are skipped and cancelled in the
    CRM. False when it had already ended."""
    play = _instance(conn, play_id)
    if play["closed_at"] is not None:
        return False
    if play["state"] == "waitlisted":
        state, reason = "closed", f"left the waitlist: {reason}"
    else:  # what its field steps set (the in-product prompt) ends with the play
        cleared = {step["field"]: None for step in play["plan"] if step["kind"] == "field"}
        _sync_fields(conn, play["account_id"], now, cleared)
    conn.execute(
        update(play_instances)
        .where(play_instances.c.id == play_id)
        .values(state=state, closed_at=now, close_reason=reason)
    )
    unfinished = conn.execute(
        select(play_steps).where(
            play_steps.c.play_id == play_id, play_steps.c.status.in_(("open", "overdue"))
        )
    ).mappings()
    for step in list(unfinished):
        conn.execute(
            update(play_steps).where(play_steps.c.id == step["id"]).values(status="skipped")
        )
        payload = {"status": "canceled", "reason": reason, "play_id": play_id}
        queue_intent(conn, "update_task", step["task_key"], payload, now, play["account_id"])
    _sync_play_fields(conn, play["account_id"], now)
    return True


# --- outbox writes -----------------------------------------------------------------------------


def _enqueue_task(
    conn: Connection,
    play: Mapping[str, Any],
    step: Mapping[str, Any],
    key: str,
    due_on: date,
    now: datetime,
    kind: str,
    target: CrmTarget | None = None,
) -> None:
    owner = step["owner"] or {}
    payload = {
        "subject": step["subject"],
        "body": step["body"],
        "owner": owner.get("assignee"),
        "owner_role": owner.get("role"),
        "owner_is_queue": owner.get("user_id") is None,
        "due_date": due_on.isoformat(),
        "priority": play["priority"],
        "kind": kind,  # task | fyi | escalation
        "play": play["play"],
        "play_id": play["id"],
        "step": step["key"],
    }
    target = target or _target(conn, play)
    queue_intent(conn, "create_task", key, payload, now, play["account_id"], target)


_FIELD_BUFFER = "es.plays.fields"  # conn.info key: the account whose field writes are merged


@contextmanager
def _fields_queued_once(
    conn: Connection,
    account_id: int,
    now: datetime,
    last: Mapping[str, Any] | None = None,
    target: CrmTarget | None = None,
) -> Iterator[None]:
    """Within it, the account's field writes (scores, a step's field, the recommended play)
    merge into one set_fields intent queued at the end: a rescore batch opening thousands of
    plays queues one intent per account, not one per change."""
    buffer = _FieldBuffer(target=target)
    conn.info[_FIELD_BUFFER] = (account_id, buffer)
    try:
        yield
    finally:
        conn.info.pop(_FIELD_BUFFER, None)
    deferred = conn.info.get(_FIELDS_DEFERRED)
    if deferred is not None:
        deferred.append((account_id, buffer, last))
        return
    if buffer.play_fields:
        buffer.values.update(_play_fields_many(conn, [account_id])[account_id])
    _sync_fields(conn, account_id, now, buffer.values, last, target)


_FIELDS_DEFERRED = "es.plays.fields.deferred"  # conn.info key: accounts whose fields wait


@contextmanager
def account_fields_deferred(conn: Connection, now: datetime) -> Iterator[None]:
    """Within it, each account's merged field writes wait for the end of the block, where the
    recommended play of every account that needs it is read in two queries: a rescore batch
    applies the decisions of a thousand accounts, two queries each otherwise."""
    deferred: list[tuple[int, _FieldBuffer, Mapping[str, Any] | None]] = []
    conn.info[_FIELDS_DEFERRED] = deferred
    try:
        yield
    finally:
        conn.info.pop(_FIELDS_DEFERRED, None)
    plays = _play_fields_many(conn, [a for a, buffer, _ in deferred if buffer.play_fields])
    for account_id, buffer, last in deferred:
        if buffer.play_fields:
            buffer.values.update(plays[account_id])
        _sync_fields(conn, account_id, now, buffer.values, last, buffer.target)


@dataclass
class _FieldBuffer:
    values: dict[str, Any] = field(default_factory=dict)
    play_fields: bool = False  # the recommended play may have changed
    target: CrmTarget | None = None  # the account's CRM record, when known


def _target(conn: Connection, play: Mapping[str, Any]) -> CrmTarget | None:
    buffer = _buffer(conn, play["account_id"])
    return buffer.target if buffer is not None else None


def _buffer(conn: Connection, account_id: int) -> _FieldBuffer | None:
    held = conn.info.get(_FIELD_BUFFER)
    return held[1] if held is not None and held[0] == account_id else None


def _sync_play_fields(conn: Connection, account_id: int, now: datetime) -> None:
    buffer = _buffer(conn, account_id)
    if buffer is not None:
        buffer.play_fields = True
        return
    _sync_fields(conn, account_id, now, _play_fields_many(conn, [account_id])[account_id])


def _sync_fields(
    conn: Connection,
    account_id: int,
    now: datetime,
    values: Mapping[str, Any],
    last: Mapping[str, Any] | None = None,
    target: CrmTarget | None = None,
) -> None:
    """Queue the account fields whose value differs from the last one queued (delta only)."""
    buffer = _buffer(conn, account_id)
    if buffer is not None:
        buffer.values.update(values)
        return
    if not values:
        return
    if last is None:
        last = last_fields(conn, account_id)
    missing = object()
    changed = {k: v for k, v in values.items() if last.get(k, missing) != v}
    if changed:
        payload = {"fields": changed}
        key = f"account-{account_id}"
        queue_intent(conn, "set_fields", key, payload, now, account_id, target)


def _score_fields(context: EngineContext, rules: PlayRules) -> dict[str, Any]:
    readiness, health = context.assessment.readiness, context.assessment.health
    strongest = sorted(
        (s for s in context.signals if s.strength > 0), key=lambda s: (-s.strength, s.name)
    )
    top = [f"{rules.brief.label(s.name)}: {s.evidence}" for s in strongest[:TOP_SIGNALS]]
    return {
        "readiness_score": round(readiness.score),
        "readiness_band": readiness.band,
        "health_score": round(health.score) if health.score is not None else None,
        "health_band": health.band,
        "top_signals": "\n".join(top),
        "window": readiness.window.name,
    }


def _play_fields_many(conn: Connection, account_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Per account: the recommended play (the highest-priority running one), its owner and
    next due date."""
    fields: dict[int, dict[str, Any]] = {
        account_id: {"recommended_play": None, "play_owner": None, "next_step_due": None}
        for account_id in account_ids
    }
    if not account_ids:
        return fields
    rank = {p: i for i, p in enumerate(PRIORITIES)}
    chosen: dict[int, Mapping[str, Any]] = {}
    dialect = conn.dialect.name
    plays = _ACCOUNT_PLAYS.where(one_of(play_instances.c.account_id, account_ids, dialect))
    for play in conn.execute(plays).mappings():
        if play["state"] not in RUNNING:
            continue
        best = chosen.get(play["account_id"])
        if best is None or (rank.get(play["priority"], 9), play["id"]) < (
            rank.get(best["priority"], 9),
            best["id"],
        ):
            chosen[play["account_id"]] = play
    ids = [p["id"] for p in chosen.values()]
    due = dict(conn.execute(_NEXT_DUE.where(one_of(play_steps.c.play_id, ids, dialect))).all())
    for account_id, play in chosen.items():
        next_due = due.get(play["id"])
        fields[account_id] = {
            "recommended_play": play["play_title"],
            "play_owner": play["owner"],
            "next_step_due": next_due.isoformat() if next_due else None,
        }
    return fields


# The accounts' or plays' ids are added by the caller, and are all they filter by: a state or
# status filter too led SQLite to the state's or the status's index, every running play or
# open step of the book read for each batch.
_ACCOUNT_PLAYS = select(
    play_instances.c.id,
    play_instances.c.account_id,
    play_instances.c.state,
    play_instances.c.priority,
    play_instances.c.owner,
    # The title alone, not the whole evidence decoded for it.
    play_instances.c.evidence["play_title"].as_string().label("play_title"),
)
_NEXT_DUE = select(
    play_steps.c.play_id,
    func.min(case((play_steps.c.status == "open", play_steps.c.due_on))),
).group_by(play_steps.c.play_id)


# --- stored outcomes as briefs' similar wins ---------------------------------------------------


def similar_wins(conn: Connection, play: str, account_id: int, limit: int) -> list[SimilarWin]:
    """Other accounts' latest won deals on `play`, with the signal that opened the play."""
    rows = conn.execute(_SIMILAR_WINS, {"play": play, "account": account_id, "limit": limit})
    return _wins(rows)


class SimilarWins:
    """`similar_wins` for the accounts of a batch: each play's latest wins are read once (no
    deal closes while plays are decided: ingest holds the plays lock alone), and read again
    for one account only when it holds so many of them that too few are left."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._latest: dict[tuple[str, int], list[Row[Any]]] = {}

    def of(self, play: str, account_id: int, limit: int) -> list[SimilarWin]:
        fetch = limit + SIMILAR_SPARE
        latest = self._latest.get((play, fetch))
        if latest is None:
            latest = list(self._conn.execute(_LATEST_WINS, {"play": play, "limit": fetch}))
            self._latest[play, fetch] = latest
        others = [row for row in latest if row[1] != account_id]
        if len(others) >= limit or len(latest) < fetch:
            return _wins(others[:limit])
        return similar_wins(self._conn, play, account_id, limit)


SIMILAR_SPARE = 5  # wins read beyond the limit, for accounts that hold some of them


def _wins(rows: Iterable[Row[Any]]) -> list[SimilarWin]:
    return [
        SimilarWin(
            account=name or f"account {other}",
            closed_on=_day(closed_at),
            amount=amount,
            signal=signals[0] if signals else None,
            days_from_signal=(as_utc(closed_at) - as_utc(opened_at)).days,
        )
        for name, other, amount, closed_at, signals, opened_at in rows
    ]


_LATEST_WINS = (
    select(
        # Looked up, not joined: a join led SQLite without statistics to scan every account
        # for each play's wins.
        select(accounts.c.name)
        .where(accounts.c.id == play_outcomes.c.account_id)
        .scalar_subquery(),
        play_outcomes.c.account_id,
        play_outcomes.c.amount,
        play_outcomes.c.closed_at,
        play_outcomes.c.signals,
        play_instances.c.opened_at,
    )
    .select_from(play_outcomes)
    .join(play_instances, play_instances.c.id == play_outcomes.c.play_id)
    .where(play_outcomes.c.play == bindparam("play"), play_outcomes.c.won.is_(True))
    .order_by(play_outcomes.c.closed_at.desc(), play_outcomes.c.id.desc())
    .limit(bindparam("limit"))
)
_SIMILAR_WINS = _LATEST_WINS.where(play_outcomes.c.account_id != bindparam("account"))


# --- helpers -----------------------------------------------------------------------------------


def _instance(conn: Connection, play_id: int) -> Mapping[str, Any]:
    return conn.execute(_INSTANCE, {"play": play_id}).mappings().one()


_INSTANCE = select(play_instances).where(play_instances.c.id == bindparam("play"))


def _day(moment: datetime) -> date:
    return as_utc(moment).date()


def _owner_json(owner: Owner | None) -> dict[str, Any] | None:
    if owner is None:
        return None
    return {
        "role": owner.role,
        "user_id": owner.user_id,
        "assignee": owner.assignee,
        "queue": owner.queue,
        "reason": owner.reason,
    }


def _signal_json(signal: Signal) -> dict[str, Any]:
    return {
        "name": signal.name,
        "category": signal.category,
        "strength": signal.strength,
        "evidence": signal.evidence,
    }
