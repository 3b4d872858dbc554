"""Where plays meet the pipeline: after a recompute or a rescore batch stored its scores, the
plays of those accounts are selected and applied in one transaction (inputs loaded in bulk, new
capped plays admitted across the accounts by readiness; an account whose play inputs are those
of its last decision is skipped); CRM task completions and closed deals from ingest move the
plays on; the beat's sweep breaches overdue steps and frees the waitlist."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import redis
from sqlalchemy import Connection, func, select, text

from expansion.bulk import copy_rows, one_of
from expansion.db import as_utc, plan_for_current_size, read_transaction, transaction
from expansion.embedded import redis_url
from expansion.models import account_attributes, account_subscriptions, accounts
from expansion.play_tables import play_decisions, play_steps
from expansion.settings import Settings
from integration.canonical import CanonicalEvent
from workers.account_state import AccountState, Subscription
from workers.evidence import Signal
from workers.outbox import crm_targets, intents_deferred, last_fields_many
from workers.plans import Plans, plans
from workers.play_engine import (
    FINISHED,
    Applied,
    EngineContext,
    Known,
    PlayInputs,
    SimilarWins,
    account_fields_deferred,
    apply_decisions,
    load_play_rows_many,
    on_deal_closed,
    on_task_completed,
    opens_deferred,
    play_inputs,
    release_waitlist,
    sla_sweep,
)
from workers.play_rules import PlayRules, play_rules
from workers.play_selection import PlayContext, PlayDecision, routed, select_plays, weekly_cap
from workers.scoring import Assessment


class Scored(Protocol):
    """What plays read of a stored score (workers.recompute.ScoreRecord is one)."""

    @property
    def account_id(self) -> int: ...
    @property
    def status(self) -> str: ...  # written | unchanged | superseded
    @property
    def assessment(self) -> Assessment: ...
    @property
    def fired(self) -> tuple[Signal, ...]: ...


log = logging.getLogger(__name__)

PLAYS_LOCK_ID = 74203  # PostgreSQL advisory lock: 74201 migrations, 74202 ingest's apply
OWNER_LOCK_SPACE = 74204  # the first key of the owners' two-key advisory locks
OWNER_LOCK_ATTEMPTS = 3  # the last one holds the plays lock alone
CHANGING = ("open", "close")
# What a rescore batch's play step writes (db.plan_for_current_size).
FILLED_TABLES = ("play_decisions", "play_instances", "play_steps", "outbox")
SWEEP_LOCK_KEY = "es:plays:sla-sweep"


@dataclass
class PlayStepSummary:
    decided: int = 0  # accounts whose plays were selected (not skipped as unchanged)
    opened: list[int] = field(default_factory=list)  # play ids, released ones included
    waitlisted: list[int] = field(default_factory=list)  # still waiting after the release
    closed: list[int] = field(default_factory=list)


def decide_plays(
    settings: Settings,
    records: Sequence[Scored],
    now: datetime,
    states: Mapping[int, AccountState] | None = None,
    bulk: bool = False,
) -> PlayStepSummary:
    """Select and apply the plays of freshly scored accounts. `states`: the accounts' loaded
    states, when the caller has them (else their CRM fields and subscription are read).
    `bulk`: a rescore batch, which may open thousands of plays (see `plan_for_current_size`)."""
    rules, catalog = play_rules(settings), plans(settings)
    scored = [r for r in records if r.status != "superseded"]  # a newer score decides
    summary = PlayStepSummary()
    if not scored:
        return summary
    # A snapshot finds the accounts to decide without the write lock: skipping one whose
    # inputs are those of its last decision is that (no-op) decision made before any
    # concurrent change, which in turn leaves inputs that differ from the fingerprint.
    with read_transaction(settings) as conn:
        due = _due(conn, scored, rules)
    if not due:
        return summary
    for attempt in range(1, OWNER_LOCK_ATTEMPTS + 1):
        try:
            with transaction(settings) as conn:
                if bulk:
                    plan_for_current_size(conn, FILLED_TABLES)
                exclusive = attempt == OWNER_LOCK_ATTEMPTS
                released = _decide(conn, due, states or {}, rules, catalog, now, summary, exclusive)
            break
        except _PlaysMoved:
            log.info("plays changed while their owners were locked; deciding again")
    summary.opened += released
    summary.waitlisted = [p for p in summary.waitlisted if p not in released]
    if summary.opened or summary.closed or summary.waitlisted:
        log.info(
            "plays decided",
            extra={
                "accounts": summary.decided,
                "opened": len(summary.opened),
                "waitlisted": len(summary.waitlisted),
                "closed": len(summary.closed),
            },
        )
    return summary


Decided = tuple[Scored, PlayContext, list[PlayDecision]]


class _PlaysMoved(Exception):
    """Another transaction changed the plays being decided before their owners were locked."""


def _decide(
    conn: Connection,
    due: Sequence[Scored],
    states: Mapping[int, AccountState],
    rules: PlayRules,
    catalog: Plans,
    now: datetime,
    summary: PlayStepSummary,
    exclusive: bool,
) -> list[int]:
    """Decide and apply in one transaction; returns the plays the waitlist released. Unless
    `exclusive`, other batches decide at the same time, and only the owners whose weekly caps
    this one fills or whose waitlisted plays it touches are locked (raises _PlaysMoved when
    those plays changed before the locks were held)."""
    lock_plays(conn, exclusive)
    rows = load_play_rows_many(conn, [r.account_id for r in due])
    inputs = {account_id: play_inputs(plays) for account_id, plays in rows.items()}
    decided = _select(conn, due, inputs, states, rules, catalog, now)
    changing = [d for d in decided if _changes_anything(d[0], d[2], inputs[d[0].account_id])]
    owners = _cap_owners(changing, rows, rules)
    if not exclusive and lock_owners(conn, owners):
        ids = [d[0].account_id for d in changing]
        if _by_id(load_play_rows_many(conn, ids)) != _by_id({i: rows[i] for i in ids}):
            raise _PlaysMoved
    summary.decided = len(decided)
    capped = _apply(conn, changing, inputs, now, rules, summary)
    released = release_waitlist(conn, now, capped) if capped else []
    moved = [r for r, _, decisions in changing if _moves_plays(decisions, inputs[r.account_id])]
    _record_decided(conn, due, rows, moved, rules, now)
    return released


def _cap_owners(
    changing: Sequence[Decided], rows: Mapping[int, Sequence[Mapping[str, Any]]], rules: PlayRules
) -> set[str]:
    """The owners whose weekly caps applying these decisions may fill or whose waitlisted
    plays it changes."""
    owners: set[str] = set()
    for record, _, decisions in changing:
        owners |= _capped_owners(decisions, rules)
        owners |= {
            p["owner_user"]
            for p in rows[record.account_id]
            if p["state"] == "waitlisted" and p["owner_user"] is not None
        }
    return owners


def _by_id(rows: Mapping[int, Sequence[Mapping[str, Any]]]) -> dict[int, list[dict[str, Any]]]:
    return {i: sorted((dict(p) for p in plays), key=lambda p: p["id"]) for i, plays in rows.items()}


def _due(conn: Connection, scored: Sequence[Scored], rules: PlayRules) -> list[Scored]:
    """The accounts whose plays need deciding: a changed score (its fields are queued), a
    waitlisted play (the waitlist is re-ranked), or inputs unlike those of the last decision.
    Plays and last fingerprints are read only for the unchanged scores (a first rescore has
    none), fingerprints only of those without a waitlisted play."""
    unchanged = [r for r in scored if r.status != "written"]
    if not unchanged:
        return list(scored)
    rows = load_play_rows_many(conn, [r.account_id for r in unchanged])
    inputs = {account_id: play_inputs(plays) for account_id, plays in rows.items()}
    compared = [
        r
        for r in unchanged
        if not inputs[r.account_id].waitlisted and _may_have_plays(r, inputs[r.account_id])
    ]
    last = _last_fingerprints(conn, [r.account_id for r in compared]) if compared else {}
    moved = {
        r.account_id
        for r in compared
        if last.get(r.account_id) != play_fingerprint(r, rows[r.account_id], rules)
    }
    return [
        r
        for r in scored
        if r.status == "written" or inputs[r.account_id].waitlisted or r.account_id in moved
    ]


def play_fingerprint(record: Scored, plays: Sequence[Mapping[str, Any]], rules: PlayRules) -> str:
    """Everything `select_plays` decides an account's plays from, hashed: the exact scores it
    compares (a score's own fingerprint rounds them), the gate and window, the signals and
    facts that triggers test, the account's plays, which play types still cool down on the
    score's day, and plays.yaml. Owners and ACV only shape a play that opens, and opening
    changes the account's plays, so the next fingerprint differs anyway."""
    assessment = record.assessment
    readiness, health = assessment.readiness, assessment.health
    tested = _tested_facts(rules)
    signals = sorted(
        (s.name, s.strength, tuple(repr(s.facts.get(fact)) for fact in tested[s.name]))
        for s in record.fired
        if s.strength > 0 and s.name in tested
    )
    shown = (
        _rules_key(rules),
        readiness.score,
        readiness.band,
        readiness.gate.action,
        readiness.window.name,
        health.score,
        health.band,
        signals,
        sorted(
            (p["id"], p["play"], p["state"], _moment(p["opened_at"]), _moment(p["closed_at"]))
            for p in plays
        ),
        _cooling(plays, assessment.as_of, rules),
    )
    return hashlib.sha256(repr(shown).encode()).hexdigest()


def _moment(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def _cooling(plays: Sequence[Mapping[str, Any]], as_of: date, rules: PlayRules) -> list[str]:
    """The play types whose last close still blocks a reopening on `as_of` (play_selection's
    cooldown): the day one expires changes the fingerprint."""
    last: dict[str, date] = {}
    for p in plays:
        if p["state"] in FINISHED and p["opened_at"] is not None:
            day = as_utc(p["closed_at"]).date()
            last[p["play"]] = max(day, last.get(p["play"], day))
    return sorted(
        name
        for name, day in last.items()
        if name in rules.plays and as_of < day + timedelta(days=rules.cooldown_days(name))
    )


_rules_keys: dict[int, tuple[PlayRules, str, dict[str, tuple[str, ...]]]] = {}


def _rules_key(rules: PlayRules) -> str:
    return _rules_entry(rules)[1]


def _tested_facts(rules: PlayRules) -> dict[str, tuple[str, ...]]:
    """Signal name -> the facts its trigger conditions test (empty: its strength only)."""
    return _rules_entry(rules)[2]


def _rules_entry(rules: PlayRules) -> tuple[PlayRules, str, dict[str, tuple[str, ...]]]:
    """Per loaded plays.yaml (cached_model hands out the same object until the file changes;
    the entry keeps it alive so its id is not reused)."""
    entry = _rules_keys.get(id(rules))
    if entry is None or entry[0] is not rules:
        tested: dict[str, set[str]] = {}
        for play in rules.plays.values():
            conditions = (*play.triggers.all_of, *play.triggers.any_of) if play.triggers else ()
            for condition in conditions:
                facts = tested.setdefault(condition.signal, set())
                if condition.fact is not None:
                    facts.add(condition.fact)
        key = hashlib.sha256(rules.model_dump_json().encode()).hexdigest()
        entry = (rules, key, {name: tuple(sorted(facts)) for name, facts in tested.items()})
        _rules_keys.clear()
        _rules_keys[id(rules)] = entry
    return entry


def _settled(conn: Connection, applied: Sequence[Scored], rules: PlayRules) -> dict[int, str]:
    """The fingerprints of the plays these accounts have now, for those whose decision on them
    is all keeps and skips."""
    if not applied:
        return {}
    rows = load_play_rows_many(conn, [r.account_id for r in applied])
    settled = {}
    for record in applied:
        inputs = play_inputs(rows[record.account_id])
        context = _bare_context(record.account_id, rules)
        decisions = _decisions(record, context, {record.account_id: inputs}, rules)
        if not inputs.waitlisted and not any(d.action in CHANGING for d in decisions):
            settled[record.account_id] = play_fingerprint(record, rows[record.account_id], rules)
    return settled


def _last_fingerprints(conn: Connection, ids: Sequence[int]) -> dict[int, str]:
    table, dialect = play_decisions.c, conn.dialect.name
    return dict(
        conn.execute(
            select(table.account_id, table.fingerprint).where(
                one_of(table.account_id, ids, dialect)
            )
        ).all()
    )


def _record_decided(
    conn: Connection,
    due: Sequence[Scored],
    rows: Mapping[int, Sequence[Mapping[str, Any]]],
    moved: Sequence[Scored],
    rules: PlayRules,
    now: datetime,
) -> None:
    """Store the fingerprint each account's plays were decided from (read under the lock). An
    account whose plays were just changed (`moved`) gets that of its new plays instead when
    deciding on them would change nothing (no open, close or waitlist): the next quiet rescore
    skips it."""
    settled = _settled(conn, moved, rules)
    values = [
        {
            "account_id": r.account_id,
            "fingerprint": settled.get(r.account_id)
            or play_fingerprint(r, rows[r.account_id], rules),
            "decided_at": now,
        }
        for r in due
    ]
    copy_rows(conn, play_decisions, values, on_conflict=_replace_decided)


def _replace_decided(insert: Any) -> Any:
    return insert.on_conflict_do_update(
        index_elements=[play_decisions.c.account_id],
        set_={"fingerprint": insert.excluded.fingerprint, "decided_at": insert.excluded.decided_at},
    )


def _select(
    conn: Connection,
    scored: Sequence[Scored],
    inputs: Mapping[int, PlayInputs],
    states: Mapping[int, AccountState],
    rules: PlayRules,
    catalog: Plans,
    now: datetime,
) -> list[Decided]:
    """Each candidate's decisions. Which plays open, stay or close does not depend on the
    account's facts (only who owns them and what the briefs say does), so the facts are read
    only for the accounts where a play opens, and the new plays routed with them."""
    candidates = [r for r in scored if _may_have_plays(r, inputs[r.account_id])]
    first = [(r, _bare_context(r.account_id, rules)) for r in candidates]
    decided = [(r, context, _decisions(r, context, inputs, rules)) for r, context in first]
    opening = [r for r, _, decisions in decided if any(d.action == "open" for d in decisions)]
    if not opening:
        return decided
    contexts = _contexts(conn, opening, states, rules, catalog, now)
    return [
        (r, contexts[r.account_id], _routed(r, decisions, contexts[r.account_id], rules))
        if r.account_id in contexts
        else (r, context, decisions)
        for r, context, decisions in decided
    ]


def _routed(
    record: Scored, decisions: list[PlayDecision], context: PlayContext, rules: PlayRules
) -> list[PlayDecision]:
    return [
        routed(d, record.assessment, context, rules) if d.action == "open" else d for d in decisions
    ]


def _decisions(
    record: Scored, context: PlayContext, inputs: Mapping[int, PlayInputs], rules: PlayRules
) -> list[PlayDecision]:
    account = inputs[record.account_id]
    running, closes = account.running, account.closes
    return select_plays(
        record.assessment, record.fired, context, running, closes, rules, route=False
    )


def _bare_context(account_id: int, rules: PlayRules) -> PlayContext:
    defaults = rules.defaults
    return PlayContext(account_id, None, {}, defaults.time_zone, defaults.holiday_country)


def _apply(
    conn: Connection,
    changing: Sequence[Decided],
    inputs: Mapping[int, PlayInputs],
    now: datetime,
    rules: PlayRules,
    summary: PlayStepSummary,
) -> set[str]:
    """Apply each account's decisions, new capped plays to the waitlist; returns their owners
    (whose waitlist is then released by readiness)."""
    ids = [record.account_id for record, _, _ in changing]
    queued, targets = last_fields_many(conn, ids), crm_targets(conn, ids)
    similar = SimilarWins(conn)
    owners: set[str] = set()
    # Each account's last queued fields were read above; the deferred writes go out at the end:
    # the new plays and their first steps, then the accounts' fields, then the outbox intents.
    applied: list[Applied] = []
    with intents_deferred(conn), account_fields_deferred(conn, now), opens_deferred(conn, now):
        for record, context, decisions in changing:
            engine = EngineContext(record.assessment, record.fired, context)
            known = Known(
                inputs[record.account_id].active,
                queued[record.account_id],
                targets[record.account_id],
                similar,
            )
            applied.append(
                apply_decisions(
                    conn, record.account_id, decisions, engine, now, rules, admit=False, known=known
                )
            )
            owners |= _capped_owners(decisions, rules)
    for account in applied:
        summary.opened += account.opened
        summary.closed += account.closed
        summary.waitlisted += account.waitlisted
    return owners


def serialize_plays(conn: Connection) -> None:
    """One transaction at a time changes plays on PostgreSQL (SQLite's BEGIN IMMEDIATE already
    does), so two workers never both take an owner's last weekly slot. Held until commit."""
    lock_plays(conn, exclusive=True)


def lock_plays(conn: Connection, exclusive: bool) -> None:
    """PostgreSQL's plays lock, until commit: ingest and the sweep hold it alone; batches of
    the plays step share it, and lock the owners whose weekly caps they fill (`lock_owners`)."""
    if conn.dialect.name == "postgresql":
        lock = func.pg_advisory_xact_lock if exclusive else func.pg_advisory_xact_lock_shared
        conn.execute(select(lock(PLAYS_LOCK_ID)))


def lock_owners(conn: Connection, owners: Iterable[str]) -> bool:
    """Lock these owners (user ids) until commit, on PostgreSQL, in one statement and in one
    order for every caller (no deadlock); True when it took any lock."""
    keys = sorted({_owner_key(owner) for owner in owners})
    if conn.dialect.name != "postgresql" or not keys:
        return False
    conn.execute(
        text("SELECT pg_advisory_xact_lock(:space, k) FROM unnest(CAST(:keys AS integer[])) k"),
        {"space": OWNER_LOCK_SPACE, "keys": keys},
    )
    return True


def _owner_key(owner: str) -> int:
    """A stable signed 32-bit key of the owner (the two-key advisory lock form)."""
    return int.from_bytes(hashlib.sha256(owner.encode()).digest()[:4], "big", signed=True)


def _may_have_plays(record: Scored, inputs: PlayInputs) -> bool:
    """False for an account that can get no decision: quiet, with no play, scores unchanged
    (most of a daily rescore), so neither its context nor its decisions are built."""
    if record.status == "written" or inputs.running or inputs.waitlisted:
        return True
    gate = record.assessment.readiness.gate.action
    active = any(s.strength > 0 for s in record.fired)
    return gate == "save_play" or (gate == "expansion" and active)


def _changes_anything(
    record: Scored, decisions: Sequence[PlayDecision], inputs: PlayInputs
) -> bool:
    """Applying is needed to change the account's plays or to queue account fields of changed
    scores."""
    return record.status == "written" or _moves_plays(decisions, inputs)


def _moves_plays(decisions: Sequence[PlayDecision], inputs: PlayInputs) -> bool:
    """Applying may change the account's plays: it opens, closes or waitlists one, or re-ranks
    or drops its waiting ones."""
    return inputs.waitlisted or any(d.action in CHANGING for d in decisions)


def _capped_owners(decisions: Iterable[PlayDecision], rules: PlayRules) -> set[str]:
    return {
        d.owner.user_id
        for d in decisions
        if d.action == "open" and d.owner is not None and d.owner.user_id is not None
        if weekly_cap(d, rules) is not None
    }


def _contexts(
    conn: Connection,
    records: Sequence[Scored],
    states: Mapping[int, AccountState],
    rules: PlayRules,
    catalog: Plans,
    now: datetime,
) -> dict[int, PlayContext]:
    missing = [r.account_id for r in records if r.account_id not in states]
    loaded = _light_states(conn, missing, now) if missing else {}
    return {
        r.account_id: PlayContext.from_state(
            states.get(r.account_id) or loaded[r.account_id], rules, catalog
        )
        for r in records
    }


def context_of(state: AccountState) -> AccountState:
    """What a play context reads of a loaded state (name, CRM fields, subscription) without the
    rest, which a rescore batch need not keep until its plays are decided."""
    return AccountState(
        state.account_id, state.today, state.name, state.subscription, crm=state.crm
    )


def _light_states(conn: Connection, ids: Sequence[int], now: datetime) -> dict[int, AccountState]:
    """What a play context reads of each account (name, CRM fields, subscription), in three
    queries for the whole batch."""
    dialect = conn.dialect.name
    names = dict(
        conn.execute(
            select(accounts.c.id, accounts.c.name).where(one_of(accounts.c.id, ids, dialect))
        ).all()
    )
    crm: dict[int, dict[str, Any]] = {account_id: {} for account_id in ids}
    attribute = account_attributes.c
    rows = conn.execute(
        select(attribute.account_id, attribute.name, attribute.value).where(
            one_of(attribute.account_id, ids, dialect), attribute.name.like("crm.%")
        )
    )
    for account_id, name, value in rows:
        crm[account_id][name.removeprefix("crm.")] = value
    subscription = account_subscriptions.c
    subscriptions = {
        account_id: Subscription(tier, seats, arr, None)
        for account_id, tier, seats, arr in conn.execute(
            select(
                subscription.account_id, subscription.tier, subscription.seats, subscription.arr
            ).where(one_of(subscription.account_id, ids, dialect))
        )
    }
    today = now.date()
    return {
        account_id: AccountState(
            account_id,
            today,
            names.get(account_id),
            subscriptions.get(account_id),
            crm=crm[account_id],
        )
        for account_id in ids
    }


# --- ingest: CRM task completions and closed deals ---------------------------------------------


def on_event(conn: Connection, account_id: int, event: CanonicalEvent, now: datetime) -> bool:
    """The play side of a canonical event applied to an account: a completed CRM task completes
    its play step (the next step is created), a closed deal closes the account's play as won or
    lost (stored as an outcome either way). True for those two event types."""
    if event.type not in ("task.changed", "deal.closed"):
        return False
    serialize_plays(conn)
    if event.type == "task.changed":
        key = _task_key(conn, event.data)
        if key is not None:
            on_task_completed(conn, key, now)
        return True
    deal = event.data.get("deal_id") or event.data.get("opportunity_id") or event.key.value
    amount = event.data.get("amount")
    won = bool(event.data.get("won"))
    on_deal_closed(conn, account_id, won, _money(amount), str(deal), now)
    return True


def _task_key(conn: Connection, data: Mapping[str, Any]) -> str | None:
    """Our external key of the task: Salesforce sends it (Expansion_Key__c); HubSpot names the
    task by its own id, recorded on the step when the writer confirmed creating it."""
    if data.get("expansion_key"):
        return str(data["expansion_key"])
    if not data.get("task_id"):
        return None
    return conn.execute(
        select(play_steps.c.task_key).where(play_steps.c.crm_task_id == str(data["task_id"]))
    ).scalar()


def _money(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --- beat ---------------------------------------------------------------------------------------


def sweep(settings: Settings, now: datetime) -> dict[str, int]:
    """Overdue steps (SLA breaches with escalation tasks, stalls), then the waitlist released
    where owners' weekly caps have room; safe to run any number of times."""
    with transaction(settings) as conn:
        serialize_plays(conn)
        swept = sla_sweep(conn, now)
    return {
        "breaches": len(swept.breaches),
        "stalled": len(swept.stalled),
        "released": len(swept.released),
    }


def sweep_single_flight(settings: Settings, now: datetime) -> dict[str, int] | None:
    """`sweep` once across every beat and worker host (a Redis lock; None when another run
    holds it). A lock that outlives a killed run expires with the task time limit."""
    client = redis.Redis.from_url(redis_url(settings), socket_timeout=5, socket_connect_timeout=5)
    token = uuid.uuid4().hex
    lease = (settings.task_time_limit_seconds + 30) * 1000
    try:
        if not client.set(SWEEP_LOCK_KEY, token, nx=True, px=lease):
            return None
        try:
            return sweep(settings, now)
        finally:
            client.register_script(_RELEASE)(keys=[SWEEP_LOCK_KEY], args=[token])
    finally:
        client.close()


# Delete the key only if it still holds the caller's token.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
