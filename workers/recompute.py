"""Recompute (SPEC §4.4): an account's signals, health and readiness from its stored state, kept
as score history with evidence; debounced after ingest, single-flight per account across worker
processes, re-run when the account changed during the run, and the rescore of the whole book.

How the pieces fit:
- Ingest bumps `accounts.state_version` in the transaction that changed an account's state, and
  after the commit `schedule` sends one recompute `debounce` seconds later unless one is already
  pending (a Redis mark set with NX), so a burst of events costs one recompute.
- The task takes the account's lock (`AccountLock`); a task that finds it taken hands the work
  to one pending run after it (`run`), so nothing runs twice at once and nothing is dropped.
- A run reads the state version before the state, and runs again (at most MAX_RUNS in all)
  when the version moved while it ran.
- The whole book: `rescore_all` in one process (`expansion rescore --all`) or `enqueue_rescore`
  (the daily beat job: a task per batch, shared by the workers); each batch takes its accounts'
  locks, loads them in bulk and writes once, and a result never replaces one computed from a
  newer state version.
- History: a row only when the result changed: the health or readiness score by a whole point,
  a band, the trend direction, the gate, the window or the active signals (name, strength,
  evidence sentence). Numbers that move every day alone (days to renewal, "N days since" in a
  metric's evidence) are stored in every row but do not make one, so the daily rescore of a
  quiet book writes no history, only the current scores' `computed_at`. A chart of an account's
  history is a step function: each row holds until the next.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from itertools import repeat
from typing import Any

import orjson
import redis
from celery import Celery
from sqlalchemy import Connection, func, select

from expansion.bulk import copy_rows, one_of
from expansion.db import (
    analyze_new_tables,
    dispose_engines,
    plan_for_current_size,
    read_transaction,
    transaction,
    utcnow,
)
from expansion.embedded import redis_url
from expansion.logs import configure_logging
from expansion.models import account_current_scores, account_scores, accounts
from expansion.settings import Settings
from workers import play_step
from workers.account_state import AccountState
from workers.evidence import Signal
from workers.score_rules import ScoringRules, score_rules
from workers.scoring import Assessment, assess
from workers.signal_rules import SignalRules, signal_rules
from workers.signals import evaluate
from workers.state_loader import LoadConfig, cyclic_gc_paused, load_versioned_states

log = logging.getLogger(__name__)

RECOMPUTE_TASK = "workers.tasks.recompute"
RESCORE_BATCH_TASK = "workers.tasks.rescore_batch"
KEY_PREFIX = "es:recompute"
MAX_RUNS = 3  # a run and at most two re-runs; an account still changing gets a debounced run
BUSY_RETRY_SECONDS = 1.0  # a run that found its account locked retries after 1, 2, 4... s
BUSY_RETRY_MAX_SECONDS = 60.0
PENDING_MARGIN_SECONDS = 60  # a pending mark outlives its task's countdown by this much
LOCK_MARGIN_SECONDS = 30
RESCORE_BATCH = 1000
# What a rescore batch's store writes (db.plan_for_current_size); with what its play step
# writes, the tables whose statistics a batch keeps up with (db.analyze_new_tables).
STORED_TABLES = ("account_scores", "account_current_scores")
FILLED_TABLES = STORED_TABLES + play_step.FILLED_TABLES


# --- Rules and results -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    load: LoadConfig
    signals: SignalRules
    scoring: ScoringRules

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        return cls(
            LoadConfig.from_settings(settings), signal_rules(settings), score_rules(settings)
        )


@dataclass(frozen=True)
class ScoreRecord:
    """One account's computed result and what became of it."""

    account_id: int
    # written: a new history row | unchanged: the same as the latest row (its computed_at is
    # refreshed) | superseded: a newer state was already scored, nothing stored
    status: str
    score_id: int | None  # the history row holding this result
    state_version: int
    as_of: date
    computed_at: datetime
    reason: str
    started_at: datetime
    finished_at: datetime
    health_score: float | None
    health_band: str
    health_trend: str
    health_change: float | None
    readiness_score: float
    readiness_band: str
    gate: str
    timing_window: str
    days_to_renewal: int | None
    signals: tuple[Mapping[str, Any], ...]  # as stored: name, category, strength, evidence
    assessment: Assessment = field(repr=False, compare=False)
    fired: tuple[Signal, ...] = field(repr=False, compare=False)
    runs: int = 1
    caught_up: bool = True  # False: the account changed again after the last allowed run

    @property
    def evidence(self) -> dict[str, Any]:
        return evidence_json(self.assessment, self.fired)

    @classmethod
    def of(cls, computed: Computed, status: str, score_id: int | None) -> ScoreRecord:
        row = computed.row
        return cls(
            status=status,
            score_id=score_id,
            assessment=computed.assessment,
            fired=computed.signals,
            **{n: row[n] for n in _field_names(cls) or () if n in row and n != "signals"},
            signals=tuple(row["signals"]),
        )


@dataclass(frozen=True)
class Computed:
    """A result on its way to the store: its history row but the evidence, which is built
    only when the row is written (it costs half as much as the scoring itself)."""

    row: dict[str, Any]
    assessment: Assessment
    signals: tuple[Signal, ...]


@dataclass
class RescoreSummary:
    accounts: int = 0
    written: int = 0
    unchanged: int = 0
    # Locked by a recompute in progress (which scores them itself) or already scored from a
    # newer state.
    skipped: int = 0
    failed: int = 0  # the scoring code raised; logged with the account id
    seconds: float = 0.0

    def add(self, other: RescoreSummary) -> None:
        self.accounts += other.accounts
        self.written += other.written
        self.unchanged += other.unchanged
        self.skipped += other.skipped
        self.failed += other.failed


def score(state: AccountState, rules: Rules) -> tuple[tuple[Signal, ...], Assessment]:
    """The pure part: signals, then health and readiness."""
    signals = tuple(evaluate(state, rules.signals))
    return signals, assess(state, signals, rules.scoring)


def today_of(now: datetime) -> date:
    """The day an account is scored for: `now`'s date in UTC."""
    return now.astimezone(UTC).date()


# --- One account -------------------------------------------------------------------------------


def recompute_account(
    settings: Settings,
    account_id: int,
    now: datetime,
    *,
    reason: str = "recompute",
    after_load: Callable[[], None] | None = None,
) -> ScoreRecord:
    """Load the state, score it and store the result; again while the account's state version
    moved during the run (at most MAX_RUNS runs). `after_load` runs between loading and storing
    (tests change the account there). Raises LookupError when there is no such account."""
    rules = Rules.from_settings(settings)
    for run_number in range(1, MAX_RUNS + 1):
        record = _run_once(settings, account_id, now, rules, reason, after_load)
        if state_version(settings, account_id) == record.state_version:
            return dataclasses.replace(record, runs=run_number)
        log.info(
            "account changed while it was recomputed",
            extra={"account_id": account_id, "state_version": record.state_version},
        )
    return dataclasses.replace(record, runs=MAX_RUNS, caught_up=False)


def _run_once(
    settings: Settings,
    account_id: int,
    now: datetime,
    rules: Rules,
    reason: str,
    after_load: Callable[[], None] | None,
) -> ScoreRecord:
    started = utcnow()
    with transaction(settings) as conn:
        loaded = load_versioned_states(conn, [account_id], today_of(now), rules.load)
    if not loaded:
        raise LookupError(f"there is no account {account_id}")
    if after_load is not None:
        after_load()
    version, state = loaded[0]
    signals, assessment = score(state, rules)
    computed = compute(version, signals, assessment, now=now, reason=reason, started_at=started)
    with transaction(settings) as conn:
        (record,) = _store(conn, [computed])
    play_step.decide_plays(settings, [record], now, {account_id: state})
    log.info(
        "recompute run",
        extra={
            "account_id": account_id,
            "status": record.status,
            "state_version": version,
            "started_at": record.started_at.isoformat(),
            "finished_at": record.finished_at.isoformat(),
            "ms": round((record.finished_at - started).total_seconds() * 1000, 1),
        },
    )
    return record


def state_version(settings: Settings, account_id: int) -> int | None:
    with transaction(settings) as conn:
        return conn.execute(
            select(accounts.c.state_version).where(accounts.c.id == account_id)
        ).scalar()


def freshness(settings: Settings, account_id: int, today: date) -> str:
    """missing (no such account) | scored (its current state is scored for `today`) | stale."""
    query = (
        select(
            accounts.c.state_version,
            account_current_scores.c.state_version.label("scored_version"),
            account_current_scores.c.as_of,
        )
        .select_from(accounts.outerjoin(account_current_scores))
        .where(accounts.c.id == account_id)
    )
    with transaction(settings) as conn:
        row = conn.execute(query).first()
    if row is None:
        return "missing"
    scored = row.scored_version == row.state_version and row.as_of == today
    return "scored" if scored else "stale"


# --- Rows and storing --------------------------------------------------------------------------


def compute(
    version: int,
    signals: tuple[Signal, ...],
    assessment: Assessment,
    *,
    now: datetime,
    reason: str,
    started_at: datetime,
) -> Computed:
    """A result with its history row (finished_at is set, and the evidence built, on store)."""
    health, readiness = assessment.health, assessment.readiness
    trend = health.trend
    active = sorted((s for s in signals if s.strength > 0), key=lambda s: (-s.strength, s.name))
    row: dict[str, Any] = {
        "account_id": assessment.account_id,
        "computed_at": now,
        "as_of": assessment.as_of,
        "state_version": version,
        "reason": reason,
        "started_at": started_at,
        "health_score": health.score,
        "health_band": health.band,
        "health_trend": trend.direction if trend else "unknown",
        "health_change": trend.change if trend else None,
        "readiness_score": readiness.score,
        "readiness_band": readiness.band,
        "gate": readiness.gate.action,
        "timing_window": readiness.window.name,
        "days_to_renewal": readiness.window.days_to_renewal,
        "signals": [
            {"name": s.name, "category": s.category, "strength": s.strength, "evidence": s.evidence}
            for s in active
        ],
    }
    row["fingerprint"] = fingerprint(row)
    return Computed(row, assessment, signals)


def evidence_json(assessment: Assessment, signals: Sequence[Signal]) -> dict[str, Any]:
    """Everything behind the scores, JSON-ready: health by dimension and metric with what was
    missing, readiness with each contribution, the gate, the window, and each signal's facts.
    Dataclasses become dicts of their fields (as dataclasses.asdict makes them), dates ISO
    strings, and a fact's inf or nan a string (JSON has neither; scores, weights and strengths
    are finite: curves clamp them and the rules validate them)."""
    stored = _stored_evidence(assessment, signals)
    return orjson.loads(stored) if isinstance(stored, bytes) else stored


def _stored_evidence(assessment: Assessment, signals: Sequence[Signal]) -> bytes | dict[str, Any]:
    """`evidence_json` as orjson's JSON text, which the store writes as it is; as values only
    where orjson cannot write it (an integer beyond 64 bits)."""
    health = assessment.health
    evidence = {
        "as_of": assessment.as_of,
        "health": {
            **_field_values(health),
            "effective_weights": health.effective_weights,
            "missing": list(health.missing),
        },
        "readiness": assessment.readiness,
        "signals": [_signal_json(signal) for signal in signals],
    }
    try:
        return orjson.dumps(evidence, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return _jsonable(evidence)


def _signal_json(signal: Signal) -> dict[str, Any]:
    facts = {
        str(name): str(value) if type(value) is float and not math.isfinite(value) else value
        for name, value in signal.facts.items()
    }
    return {**_field_values(signal), "facts": facts}


def _field_values(instance: Any) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in _field_names(type(instance)) or ()}


@cache
def _field_names(kind: type) -> tuple[str, ...] | None:
    """A dataclass's field names in order; None for any other type."""
    if not dataclasses.is_dataclass(kind):
        return None
    return tuple(f.name for f in dataclasses.fields(kind))


def _jsonable(value: Any) -> Any:
    """The value as JSON types, in one pass of Python (a dataclass becomes a dict of its fields,
    as dataclasses.asdict makes it, without its deep copy): evidence that orjson cannot write."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else str(value)  # JSON has no inf or nan
    if kind is list or kind is tuple:
        return [_jsonable(v) for v in value]
    names = _field_names(kind)
    if names is not None:
        return {name: _jsonable(getattr(value, name)) for name in names}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # PostgreSQL refuses inf and nan in JSON
    return value


def fingerprint(row: Mapping[str, Any]) -> str:
    """What makes a history row: see the module docstring."""
    health = row["health_score"]
    shown = [
        None if health is None else round(health),
        row["health_band"],
        row["health_trend"],
        round(row["readiness_score"]),
        row["readiness_band"],
        row["gate"],
        row["timing_window"],
        [(s["name"], round(s["strength"], 2), s["evidence"]) for s in row["signals"]],
    ]
    return hashlib.sha256(json.dumps(shown).encode()).hexdigest()


CURRENT_COLUMNS = tuple(c.name for c in account_current_scores.columns if c.name != "score_id")


def _store(conn: Connection, results: Sequence[Computed]) -> list[ScoreRecord]:
    """A history row for each changed result, and the current score of every account, unless
    a newer state version was already scored (never overwrite a newer score)."""
    if not results:
        return []
    with cyclic_gc_paused():  # the evidence of a batch is a heap of fresh acyclic dicts
        return _store_results(conn, results)


def _store_results(conn: Connection, results: Sequence[Computed]) -> list[ScoreRecord]:
    ids = [result.row["account_id"] for result in results]
    table = account_current_scores.c
    query = select(account_current_scores).where(one_of(table.account_id, ids, conn.dialect.name))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    current = {r.account_id: r for r in conn.execute(query).all()}
    finished = utcnow()
    outcomes: list[tuple[Computed, str, int | None]] = []
    for result in results:
        row = result.row
        row["finished_at"] = finished
        latest = current.get(row["account_id"])
        if latest is not None and latest.state_version > row["state_version"]:
            outcomes.append((result, "superseded", None))
        elif latest is not None and latest.fingerprint == row["fingerprint"]:
            outcomes.append((result, "unchanged", latest.score_id))
        else:
            outcomes.append((result, "written", None))
    fresh = [
        {
            **result.row,
            "evidence": _column_value(_stored_evidence(result.assessment, result.signals)),
        }
        for result, status, _ in outcomes
        if status == "written"
    ]
    if fresh:
        new_ids = iter(copy_rows(conn, account_scores, fresh, ids=True))
        outcomes = [
            (result, status, next(new_ids) if status == "written" else score_id)
            for result, status, score_id in outcomes
        ]
    kept = [
        {**{name: result.row[name] for name in CURRENT_COLUMNS}, "score_id": score_id}
        for result, status, score_id in outcomes
        if status != "superseded"
    ]
    copy_rows(conn, account_current_scores, kept, on_conflict=_newer_replaces)
    return [ScoreRecord.of(result, status, score_id) for result, status, score_id in outcomes]


def _column_value(evidence: bytes | dict[str, Any]) -> Any:
    """JSON text goes into the column as it is (db.json_text writes a Fragment unchanged)."""
    return orjson.Fragment(evidence) if isinstance(evidence, bytes) else evidence


def _newer_replaces(insert: Any) -> Any:
    """The upsert of current scores: a result replaces one of an older or the same state."""
    table = account_current_scores.c
    return insert.on_conflict_do_update(
        index_elements=[table.account_id],
        set_={name: insert.excluded[name] for name in (*CURRENT_COLUMNS, "score_id")},
        where=table.state_version <= insert.excluded.state_version,
    )


# --- Redis: the pending mark and the lock ------------------------------------------------------

_clients: dict[str, redis.Redis] = {}


def redis_client(settings: Settings) -> redis.Redis:
    url = redis_url(settings)
    client = _clients.get(url)
    if client is None:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        _clients[url] = client
    return client


def pending_key(account_id: int) -> str:
    return f"{KEY_PREFIX}:scheduled:{account_id}"


def lock_key(account_id: int) -> str:
    return f"{KEY_PREFIX}:lock:{account_id}"


# Take each key that is free (KEYS), all with one token (ARGV[1]) for ARGV[2] ms; returns the
# 1-based positions of the keys taken.
_ACQUIRE = """
local taken = {}
for i, key in ipairs(KEYS) do
  if redis.call('set', key, ARGV[1], 'NX', 'PX', ARGV[2]) then
    taken[#taken + 1] = i
  end
end
return taken
"""

# Delete each key that still holds the caller's token (ARGV[1]); returns how many were.
_RELEASE = """
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[1] then
    released = released + redis.call('del', key)
  end
end
return released
"""

# Set the key to ARGV[2] for ARGV[3] ms if it is free or still holds ARGV[1] (the caller's own
# ticket; "" for none).
_CLAIM = """
local held = redis.call('get', KEYS[1])
if held and held ~= ARGV[1] then
  return 0
end
redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


class AccountLock:
    """Single-flight per account across processes and hosts: SET NX PX with a random token,
    released only by the token's owner (compare-and-delete in Lua). The lease outlives the
    task's hard time limit, so it cannot lapse under a live holder and needs no extending; a
    holder killed outright leaves it to expire."""

    def __init__(self, client: redis.Redis, lease_ms: int) -> None:
        self.client = client
        self.lease_ms = lease_ms
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def for_settings(cls, settings: Settings) -> AccountLock:
        lease = (settings.task_time_limit_seconds + LOCK_MARGIN_SECONDS) * 1000
        return cls(redis_client(settings), lease)

    def acquire(self, account_id: int) -> str | None:
        """The token that releases the lock, or None when another holder has it."""
        return self.acquire_many([account_id]).get(account_id)

    def acquire_many(self, account_ids: Iterable[int]) -> dict[int, str]:
        """The locks that were free, taken in one script call: account id -> token (one token
        for all of them: it only has to tell this holder's locks from everyone else's)."""
        wanted = list(dict.fromkeys(account_ids))
        if not wanted:
            return {}
        token = uuid.uuid4().hex
        taken = self._acquire(keys=[lock_key(a) for a in wanted], args=[token, self.lease_ms])
        return {wanted[i - 1]: token for i in taken}

    def release(self, account_id: int, token: str) -> bool:
        """False when the lock is not (or no longer) held with this token."""
        return bool(self._release(keys=[lock_key(account_id)], args=[token]))

    def release_many(self, tokens: Mapping[int, str]) -> None:
        """Release each lock still held with its token, one script call per distinct token."""
        by_token: dict[str, list[str]] = {}
        for account_id, token in tokens.items():
            by_token.setdefault(token, []).append(lock_key(account_id))
        for token, keys in by_token.items():
            self._release(keys=keys, args=[token])


# --- Scheduling and the task body --------------------------------------------------------------


def schedule(settings: Settings, account_ids: Iterable[int], app: Celery) -> list[int]:
    """After the transaction that changed these accounts committed: a recompute of each in
    RECOMPUTE_DEBOUNCE_SECONDS unless one is already pending. Returns those scheduled. A failure
    is logged, not raised: the events are stored, and the daily rescore catches the account up
    if no later event schedules it."""
    client = redis_client(settings)
    countdown = max(settings.recompute_debounce_seconds, 0.0)
    scheduled = []
    for account_id in account_ids:
        try:
            if _claim_and_send(client, app, account_id, countdown):
                scheduled.append(account_id)
        except Exception as exc:
            log.warning(
                "could not schedule a recompute",
                extra={"account_id": account_id, "error": f"{type(exc).__name__}: {exc}"},
            )
    return scheduled


def _claim_and_send(
    client: redis.Redis,
    app: Celery,
    account_id: int,
    countdown: float,
    replacing: str = "",
    busy: int = 0,
) -> bool:
    """Mark the account as having a pending run and send it, unless another run is pending.
    `replacing`: the ticket of the calling task, whose own mark it may renew."""
    ticket = uuid.uuid4().hex
    ttl_ms = int((countdown + PENDING_MARGIN_SECONDS) * 1000)
    key = pending_key(account_id)
    if not client.eval(_CLAIM, 1, key, replacing, ticket, ttl_ms):
        return False
    try:
        app.send_task(
            RECOMPUTE_TASK,
            args=(account_id,),
            kwargs={"ticket": ticket, "busy": busy},
            countdown=countdown,
        )
    except Exception:
        client.eval(_RELEASE, 1, key, ticket)
        raise
    return True


def run(
    settings: Settings,
    account_id: int,
    now: datetime,
    app: Celery,
    ticket: str | None = None,
    busy: int = 0,
) -> str:
    """The recompute task: single-flight, skipping work already done. Returns the outcome:
    a ScoreRecord status, up_to_date, busy (handed to a run after the holder's) or missing."""
    lock = AccountLock.for_settings(settings)
    token = lock.acquire(account_id)
    if token is None:
        # The holder may have read the state before the change that sent this task: make
        # sure one run follows it (one pending run is enough for any number of such tasks).
        delay = min(BUSY_RETRY_SECONDS * 2**busy, BUSY_RETRY_MAX_SECONDS)
        _claim_and_send(lock.client, app, account_id, delay, ticket or "", busy + 1)
        return "busy"
    try:
        # From now on, a change schedules a run of its own: this one may read the state first.
        lock.client.delete(pending_key(account_id))
        fresh = freshness(settings, account_id, today_of(now))
        if fresh != "stale":
            return "up_to_date" if fresh == "scored" else "missing"
        record = recompute_account(settings, account_id, now)
    finally:
        lock.release(account_id, token)
    if not record.caught_up:
        schedule(settings, [account_id], app)
    return record.status


# --- The whole book ----------------------------------------------------------------------------


def rescore_batch(
    settings: Settings, account_ids: Sequence[int], now: datetime, rules: Rules | None = None
) -> RescoreSummary:
    """Score these accounts with one bulk load and one write; accounts locked by a recompute in
    progress are left to it."""
    started = time.monotonic()
    rules = rules or Rules.from_settings(settings)
    lock = AccountLock.for_settings(settings)
    tokens = lock.acquire_many(account_ids)
    summary = RescoreSummary(accounts=len(account_ids), skipped=len(account_ids) - len(tokens))
    try:
        # The cyclic GC stays off for the whole batch: its states, rows and new plays are
        # acyclic and freed by reference counting before it is back on, while a collection
        # in between would scan every one of them.
        with cyclic_gc_paused():
            statuses = _score_store_and_decide(settings, list(tokens), now, rules, summary)
    finally:
        lock.release_many(tokens)
    analyze_new_tables(settings, FILLED_TABLES)
    for status in statuses:
        if status == "written":
            summary.written += 1
        elif status == "unchanged":
            summary.unchanged += 1
        else:
            summary.skipped += 1
    summary.seconds = time.monotonic() - started
    return summary


def _score_store_and_decide(
    settings: Settings, ids: list[int], now: datetime, rules: Rules, summary: RescoreSummary
) -> list[str]:
    """A batch's work between its locks: each stored record's status."""
    results, contexts = _score_loaded(settings, ids, now, rules, summary)
    with transaction(settings) as conn:
        plan_for_current_size(conn, STORED_TABLES)
        records = _store(conn, results)
    play_step.decide_plays(settings, records, now, contexts, bulk=True)
    return [record.status for record in records]


def _score_loaded(
    settings: Settings, ids: list[int], now: datetime, rules: Rules, summary: RescoreSummary
) -> tuple[list[Computed], dict[int, AccountState]]:
    """The batch's results, and what the play step reads of each state
    (`play_step.context_of`), so it need not read it again."""
    started = utcnow()
    with read_transaction(settings) as conn:
        loaded = load_versioned_states(conn, ids, today_of(now), rules.load)
    summary.skipped += len(ids) - len(loaded)  # gone since the batch was listed
    results = []
    contexts = {}
    for version, state in loaded:
        try:
            signals, assessment = score(state, rules)
        except Exception:
            # One account's bad data must not stop the book; the error is logged with its id.
            log.exception("scoring failed", extra={"account_id": state.account_id})
            summary.failed += 1
            continue
        results.append(
            compute(version, signals, assessment, now=now, reason="rescore", started_at=started)
        )
        contexts[state.account_id] = play_step.context_of(state)
    return results, contexts


def account_batches(settings: Settings, size: int = RESCORE_BATCH) -> Iterator[list[int]]:
    """Every account id, `size` at a time, in id order."""
    last = 0
    while True:
        with read_transaction(settings) as conn:
            ids = list(
                conn.execute(
                    select(accounts.c.id)
                    .where(accounts.c.id > last)
                    .order_by(accounts.c.id)
                    .limit(size)
                ).scalars()
            )
        if not ids:
            return
        yield ids
        last = ids[-1]


def rescore_all(
    settings: Settings,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = RESCORE_BATCH,
    processes: int = 1,
) -> RescoreSummary:
    """Rescore every account, a batch per transaction, in this process or spread over
    `processes` worker processes (as the daily beat spreads its batches over the workers);
    `progress(done, total)` after each batch, in id order (what `expansion rescore --all` draws
    its bar from)."""
    started = time.monotonic()
    with read_transaction(settings) as conn:
        total = conn.execute(select(func.count()).select_from(accounts)).scalar_one()
    summary = RescoreSummary()
    for part in _rescored_batches(settings, now, batch_size, processes):
        summary.add(part)
        if progress is not None:
            progress(summary.accounts, max(total, summary.accounts))
    summary.seconds = time.monotonic() - started
    return summary


def _rescored_batches(
    settings: Settings, now: datetime, batch_size: int, processes: int
) -> Iterator[RescoreSummary]:
    if processes <= 1:
        rules = Rules.from_settings(settings)
        for ids in account_batches(settings, batch_size):
            yield rescore_batch(settings, ids, now, rules)
        return
    batches = list(account_batches(settings, batch_size))
    _worker_rules(settings)
    # Forked, so each worker starts with this process's modules and rules instead of
    # importing and reading them again (about two CPU seconds each). They must not share this
    # process's database connections: it closes its pooled ones first and holds none open
    # meanwhile.
    dispose_engines()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(processes, context, configure_logging) as pool:
        yield from pool.map(_rescore_batch_in_worker, repeat(settings), batches, repeat(now))


@cache
def _worker_rules(settings: Settings) -> Rules:
    return Rules.from_settings(settings)


def _rescore_batch_in_worker(
    settings: Settings, account_ids: list[int], now: datetime
) -> RescoreSummary:
    return rescore_batch(settings, account_ids, now, _worker_rules(settings))


def enqueue_rescore(settings: Settings, app: Celery, batch_size: int = RESCORE_BATCH) -> int:
    """The daily beat job: one rescore task per batch, so workers share the book and no task
    comes near the task time limit. Returns the number of batches sent."""
    sent = 0
    for ids in account_batches(settings, batch_size):
        app.send_task(RESCORE_BATCH_TASK, args=(ids,))
        sent += 1
    return sent
