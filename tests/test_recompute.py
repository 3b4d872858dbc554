"""Recompute (SPEC §4.4) as plain functions on the real database and the real (embedded) Redis:
history with evidence, one debounced recompute for a burst of events and none for an echo, the
re-run when the account changed mid-run, the lock's ownership and hand-off, and the rescore of
the whole book."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import redis
from celery import Celery
from sqlalchemy import select
from sqlalchemy import text as sql_text

from expansion import db
from expansion.db import read_transaction, transaction, utcnow
from expansion.models import account_current_scores, account_scores, accounts, inbox_events
from expansion.settings import Settings
from integration.canonical import AccountKey
from integration.sources.hubspot import sign_request
from tests.state_support import DAY0, KEY, account_id, apply_all, event
from tests.support import ROOT, TEST_SECRETS, load_json_fixture
from tests.test_state_loader import history
from workers import recompute, tasks
from workers.account_state import AccountState
from workers.celery_app import make_celery
from workers.evidence import Signal
from workers.state_loader import LoadConfig, load_state

TODAY = DAY0 + timedelta(days=20)
NOW = datetime.combine(TODAY, datetime.min.time(), UTC).replace(hour=12)


@pytest.fixture
def broker(settings: Settings) -> Iterator[redis.Redis]:
    """The Redis the broker and the recompute marks live in, without leftovers of other tests
    (account ids are reused once the tables are emptied)."""
    client = recompute.redis_client(settings)
    _clean(client)
    yield client
    _clean(client)


def _clean(client: redis.Redis) -> None:
    client.delete("celery", *client.keys(f"{recompute.KEY_PREFIX}:*"))


@pytest.fixture
def celery_app(settings: Settings) -> Celery:
    return make_celery(settings)


def queued_recomputes(client: redis.Redis) -> list[dict[str, Any]]:
    """The recompute messages waiting in the broker: their args, kwargs and eta."""
    found = []
    for raw in client.lrange("celery", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] != recompute.RECOMPUTE_TASK:
            continue
        args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        found.append({"args": args, "kwargs": kwargs, "eta": message["headers"]["eta"]})
    return found


def history_rows(settings: Settings, account: int) -> list[Any]:
    with transaction(settings) as conn:
        return conn.execute(
            select(account_scores)
            .where(account_scores.c.account_id == account)
            .order_by(account_scores.c.id)
        ).all()


def current_row(settings: Settings, account: int) -> Any:
    with transaction(settings) as conn:
        return conn.execute(
            select(account_current_scores).where(account_current_scores.c.account_id == account)
        ).first()


def nps(respondent: str, score: int, key: AccountKey = KEY):  # type: ignore[no-untyped-def]
    return event("nps.response", NOW - timedelta(hours=1), key, score=score, user_id=respondent)


# --- One account -------------------------------------------------------------------------------


def test_a_recompute_stores_scores_signals_and_evidence_as_history(settings, broker):
    apply_all(settings, history())
    account = account_id(settings)

    record = recompute.recompute_account(settings, account, NOW)

    (row,) = history_rows(settings, account)
    with transaction(settings) as conn:
        state = load_state(conn, account, TODAY, LoadConfig.from_settings(settings))
        version = conn.execute(
            select(accounts.c.state_version).where(accounts.c.id == account)
        ).scalar_one()
    signals, assessment = recompute.score(state, recompute.Rules.from_settings(settings))
    assert (record.status, record.score_id, record.runs) == ("written", row.id, 1)
    assert row.state_version == version > 0
    assert (row.as_of, row.reason) == (TODAY, "recompute")
    assert row.health_score == assessment.health.score
    assert (row.health_band, row.health_trend) == (
        assessment.health.band,
        assessment.health.trend.direction,
    )
    assert (row.readiness_score, row.readiness_band) == (
        assessment.readiness.score,
        assessment.readiness.band,
    )
    assert (row.gate, row.timing_window, row.days_to_renewal) == (
        assessment.readiness.gate.action,
        assessment.readiness.window.name,
        assessment.readiness.window.days_to_renewal,
    )
    assert row.started_at <= row.finished_at
    # Every active signal with its strength and its evidence sentence, strongest first.
    assert [s["name"] for s in row.signals] == [
        s.name for s in sorted(signals, key=lambda s: (-s.strength, s.name))
    ]
    assert {s["name"]: (s["strength"], s["evidence"]) for s in row.signals} == {
        s.name: (s.strength, s.evidence) for s in signals
    }
    assert "champion_promotion" in {s["name"] for s in row.signals}
    # The full evidence: every health metric with its numbers or why it had none.
    metrics = [m for d in row.evidence["health"]["dimensions"] for m in d["metrics"]]
    assert {m["name"] for m in metrics} >= {"active_users", "nps", "open_p1s", "payment_history"}
    assert all(m["evidence"] for m in metrics)
    assert row.evidence["health"]["missing"] == list(assessment.health.missing)
    assert row.evidence["readiness"]["window"]["renewal_on"] == "2026-11-16"
    assert [s["name"] for s in row.evidence["signals"]] == [s.name for s in signals]
    # The current score points at that row.
    current = current_row(settings, account)
    assert (current.score_id, current.state_version, current.readiness_score) == (
        row.id,
        version,
        row.readiness_score,
    )


def test_the_same_result_again_writes_no_history_but_confirms_the_current_score(settings, broker):
    apply_all(settings, history())
    account = account_id(settings)
    first = recompute.recompute_account(settings, account, NOW)

    again = recompute.recompute_account(settings, account, NOW + timedelta(hours=1))

    assert (again.status, again.score_id) == ("unchanged", first.score_id)
    assert len(history_rows(settings, account)) == 1
    current = current_row(settings, account)
    assert current.computed_at.replace(tzinfo=UTC) == NOW + timedelta(hours=1)

    apply_all(settings, [nps("someone-else", 2)])  # a detractor: health drops
    changed = recompute.recompute_account(settings, account, NOW + timedelta(hours=2))

    assert changed.status == "written"
    assert changed.health_score < first.health_score
    assert [r.id for r in history_rows(settings, account)] == [first.score_id, changed.score_id]


def test_a_change_during_the_run_makes_it_run_again_on_the_new_state(settings, broker):
    apply_all(settings, history())
    account = account_id(settings)
    start_version = recompute.state_version(settings, account)
    changes = iter([nps("late-detractor", 1)])

    def an_event_arrives() -> None:  # between the load and the store of the first run only
        if (item := next(changes, None)) is not None:
            apply_all(settings, [item])

    record = recompute.recompute_account(settings, account, NOW, after_load=an_event_arrives)

    rows = history_rows(settings, account)
    assert (record.runs, record.caught_up) == (2, True)
    assert [r.state_version for r in rows] == [start_version, start_version + 1]
    assert "latest 1 on" in json.dumps(rows[-1].evidence)  # the detractor's NPS is in
    assert current_row(settings, account).state_version == start_version + 1


def test_an_account_that_keeps_changing_is_run_a_bounded_number_of_times(settings, broker):
    apply_all(settings, history())
    account = account_id(settings)
    counter = iter(range(100))

    def always_changing() -> None:
        apply_all(settings, [nps(f"respondent-{next(counter)}", 5)])

    record = recompute.recompute_account(settings, account, NOW, after_load=always_changing)

    assert (record.runs, record.caught_up) == (recompute.MAX_RUNS, False)
    assert recompute.state_version(settings, account) == record.state_version + 1


def test_a_stale_result_never_overwrites_a_newer_score(settings, broker):
    """Another process scored a newer state while this run held an older one (its lock lapsed,
    say): the older result is dropped and the re-run confirms the newer score."""
    apply_all(settings, history())
    account = account_id(settings)
    start_version = recompute.state_version(settings, account)
    interrupted = iter([True])

    def newer_score_stored_meanwhile() -> None:
        if next(interrupted, False):
            apply_all(settings, [nps("late-detractor", 1)])
            recompute.recompute_account(settings, account, NOW)

    record = recompute.recompute_account(
        settings, account, NOW, after_load=newer_score_stored_meanwhile
    )

    (row,) = history_rows(settings, account)  # only the newer state's row
    assert row.state_version == start_version + 1
    assert (record.status, record.runs, record.score_id) == ("unchanged", 2, row.id)
    current = current_row(settings, account)
    assert (current.state_version, current.score_id) == (start_version + 1, row.id)


def test_an_unknown_account_is_reported(settings, broker):
    with pytest.raises(LookupError, match="no account 424242"):
        recompute.recompute_account(settings, 424242, NOW)


# --- Debounce: a burst of events, one recompute; an echo, none ----------------------------------

HUBSPOT_URL = "http://localhost/webhooks/hubspot"
COMPANY_CHANGES = load_json_fixture("hubspot", "company.propertyChange.json")
EMPLOYEES_CHANGE = next(e for e in COMPANY_CHANGES if e["propertyName"] == "numberofemployees")


def company_change(event_id: int, employees: int, **overrides: Any) -> dict[str, Any]:
    """HubSpot's numberofemployees change of the fixture, as another event of the same company."""
    return {
        **EMPLOYEES_CHANGE,
        "eventId": event_id,
        "occurredAt": EMPLOYEES_CHANGE["occurredAt"] + event_id % 100_000,
        "propertyValue": str(employees),
        **overrides,
    }


def post_hubspot(client, events: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps(events).encode()
    headers = {
        "Content-Type": "application/json",
        **sign_request(body, TEST_SECRETS["HUBSPOT_CLIENT_SECRET"], HUBSPOT_URL),
    }
    response = client.post("/webhooks/hubspot", data=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    response.close()


def ingest_pending(settings: Settings) -> list[str]:
    """Run the real ingest task, in this process, on every pending inbox row."""
    with transaction(settings) as conn:
        ids = conn.execute(
            select(inbox_events.c.id)
            .where(inbox_events.c.status == "pending")
            .order_by(inbox_events.c.id)
        ).scalars()
        pending = list(ids)
    return [tasks.ingest(inbox_id) for inbox_id in pending]


@pytest.fixture
def task_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The environment a worker gets, for tasks called in this process."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    tasks.settings.cache_clear()
    yield
    tasks.settings.cache_clear()


def test_a_burst_of_events_schedules_one_debounced_recompute(client, settings, broker, task_env):
    for n in range(20):
        post_hubspot(client, [company_change(3816290000 + n, employees=400 + n)])
    sent_at = utcnow()

    assert ingest_pending(settings) == ["processed"] * 20

    account = account_id(settings, AccountKey("hubspot", str(EMPLOYEES_CHANGE["objectId"])))
    (message,) = queued_recomputes(broker)
    assert message["args"] == [account]
    eta = datetime.fromisoformat(message["eta"])
    assert timedelta(seconds=4) < eta - sent_at < timedelta(seconds=5 + 10)
    assert settings.recompute_debounce_seconds == 5.0
    assert broker.get(recompute.pending_key(account)).decode() == message["kwargs"]["ticket"]
    assert recompute.state_version(settings, account) == 20

    # The worker runs it when its countdown is up: one recompute, one history row.
    assert tasks.recompute(*message["args"], **message["kwargs"]) == "written"
    (row,) = history_rows(settings, account)
    assert row.state_version == 20
    assert broker.get(recompute.pending_key(account)) is None


def test_echoes_and_unchanged_values_schedule_nothing(client, settings, broker, task_env):
    post_hubspot(client, [company_change(3816290100, employees=420)])
    ingest_pending(settings)
    account = account_id(settings, AccountKey("hubspot", str(EMPLOYEES_CHANGE["objectId"])))
    (message,) = queued_recomputes(broker)
    tasks.recompute(*message["args"], **message["kwargs"])
    broker.delete("celery")

    echo = load_json_fixture("hubspot", "company.propertyChange__echo.json")[:2]  # our writes
    post_hubspot(client, echo)
    post_hubspot(client, [company_change(3816290101, employees=420)])  # the same value again

    assert sorted(ingest_pending(settings)) == ["ignored", "ignored", "processed"]
    assert queued_recomputes(broker) == []
    assert broker.get(recompute.pending_key(account)) is None
    assert recompute.state_version(settings, account) == 1
    assert len(history_rows(settings, account)) == 1


# --- Single flight -----------------------------------------------------------------------------


def test_only_the_lock_holder_can_release_it(settings, broker):
    lock = recompute.AccountLock.for_settings(settings)
    token = lock.acquire(7)

    assert token is not None
    assert lock.acquire(7) is None
    assert lock.release(7, "someone-elses-token") is False
    assert lock.acquire(7) is None  # still held
    # The lease outlives the task's hard time limit: it cannot lapse under a live holder.
    assert broker.pttl(recompute.lock_key(7)) > settings.task_time_limit_seconds * 1000
    assert lock.release(7, token) is True
    assert lock.release(7, token) is False  # already released
    assert lock.acquire(7) is not None


def test_a_batch_takes_the_free_locks_only_and_releases_its_own(settings, broker):
    lock = recompute.AccountLock.for_settings(settings)
    other = lock.acquire(2)

    tokens = lock.acquire_many([1, 2, 3, 3])

    assert sorted(tokens) == [1, 3]
    assert lock.acquire_many([1, 3]) == {}
    assert broker.pttl(recompute.lock_key(3)) > settings.task_time_limit_seconds * 1000
    lock.release_many({**tokens, 2: "not-the-holders-token"})
    assert broker.get(recompute.lock_key(2)).decode() == other  # someone else's, untouched
    assert broker.get(recompute.lock_key(1)) is None
    assert sorted(lock.acquire_many([1, 3])) == [1, 3]


def test_a_run_that_finds_the_account_locked_leaves_one_run_for_after(settings, broker, celery_app):
    apply_all(settings, history())
    account = account_id(settings)
    holder = recompute.AccountLock.for_settings(settings)
    token = holder.acquire(account)
    assert token is not None

    # Three tasks arrive while another worker holds the account (sent directly: no ticket).
    outcomes = [recompute.run(settings, account, NOW, celery_app) for _ in range(3)]

    assert outcomes == ["busy"] * 3
    (follow_up,) = queued_recomputes(broker)  # one run after the holder, not three
    assert follow_up["kwargs"]["busy"] == 1
    assert history_rows(settings, account) == []

    # Still locked when the follow-up comes: it renews its own mark and backs off further.
    broker.delete("celery")
    assert recompute.run(settings, account, NOW, celery_app, **follow_up["kwargs"]) == "busy"
    (second,) = queued_recomputes(broker)
    assert second["kwargs"]["busy"] == 2
    assert broker.get(recompute.pending_key(account)).decode() == second["kwargs"]["ticket"]

    holder.release(account, token)
    assert recompute.run(settings, account, NOW, celery_app, **second["kwargs"]) == "written"
    assert recompute.run(settings, account, NOW, celery_app) == "up_to_date"
    assert len(history_rows(settings, account)) == 1
    assert broker.get(recompute.lock_key(account)) is None


def test_a_run_for_an_account_that_does_not_exist_does_nothing(settings, broker, celery_app):
    assert recompute.run(settings, 424242, NOW, celery_app) == "missing"
    assert broker.get(recompute.lock_key(424242)) is None


# --- The whole book ----------------------------------------------------------------------------


def book(settings: Settings, size: int) -> list[int]:
    """`size` accounts with the same history but each its own NPS."""
    ids = []
    for n in range(size):
        key = AccountKey("hubspot", f"book-{n}")
        items = [item.__class__(item.type, key, item.occurred_at, item.data) for item in history()]
        apply_all(settings, [*items, nps(f"book-respondent-{n}", n % 11, key)])
        ids.append(account_id(settings, key))
    return ids


@pytest.mark.parametrize("processes", [1, 2])
def test_rescore_all_scores_every_account_in_batches_and_reports_progress(
    settings, broker, processes
):
    ids = book(settings, 5)
    progress: list[tuple[int, int]] = []

    summary = recompute.rescore_all(
        settings,
        NOW,
        progress=lambda done, total: progress.append((done, total)),
        batch_size=2,
        processes=processes,
    )

    assert progress == [(2, 5), (4, 5), (5, 5)]
    assert (summary.accounts, summary.written, summary.unchanged, summary.skipped) == (5, 5, 0, 0)
    for account in ids:
        (row,) = history_rows(settings, account)
        assert row.reason == "rescore"
        assert row.evidence["signals"]
        assert current_row(settings, account).score_id == row.id
    scores = {history_rows(settings, a)[0].health_score for a in ids}
    assert len(scores) == 5  # each scored from its own state

    # The other way (in this process, or spread over workers) finds the very same results.
    again = recompute.rescore_all(
        settings, NOW + timedelta(hours=1), batch_size=2, processes=3 - processes
    )

    assert (again.written, again.unchanged) == (0, 5)
    assert all(len(history_rows(settings, a)) == 1 for a in ids)


def test_a_table_with_rows_and_no_statistics_is_analyzed_once(settings):
    """A fresh book's score and plays tables have no planner statistics until autovacuum gets
    to them; a rescore batch analyzes those that have rows by then, once."""
    if not settings.effective_database_url.startswith("postgresql"):
        pytest.skip("planner statistics are PostgreSQL's; SQLite plans by its indexes alone")
    filled, empty = "es_probe_filled", "es_probe_empty"
    with transaction(settings) as conn:
        for table in (filled, empty):
            conn.execute(sql_text(f"CREATE TABLE {table} (id integer)"))
        conn.execute(sql_text(f"INSERT INTO {filled} SELECT generate_series(1, 500)"))
        conn.execute(sql_text("SELECT pg_stat_force_next_flush()"))
    try:
        deadline = time.monotonic() + 15
        while live_rows(settings, filled) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)  # the server's activity statistics lag the commit

        assert db.analyze_new_tables(settings, [filled, empty]) == [filled]
        assert db.analyze_new_tables(settings, [filled, empty]) == []
        with transaction(settings) as conn:
            analyzed = conn.execute(
                sql_text("SELECT count(*) FROM pg_stats WHERE tablename = :t"), {"t": filled}
            ).scalar_one()
        assert analyzed == 1  # its one column
    finally:
        with transaction(settings) as conn:
            for table in (filled, empty):
                conn.execute(sql_text(f"DROP TABLE {table}"))


def live_rows(settings: Settings, table: str) -> int:
    with transaction(settings) as conn:
        rows = conn.execute(
            sql_text("SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = :t"), {"t": table}
        ).scalar()
    return int(rows or 0)


def test_the_rescore_reads_while_a_writer_holds_the_database(settings, broker):
    """On SQLite every writer takes the write lock up front; the rescore's reads must not wait
    for it, or worker processes would load their batches one after the other."""
    ids = book(settings, 2)
    with transaction(settings) as writer:
        writer.execute(accounts.update().where(accounts.c.id == ids[0]).values(name="renamed"))
        with read_transaction(settings) as reader:
            names = reader.execute(select(accounts.c.name).order_by(accounts.c.id)).scalars()
            assert "renamed" not in list(names)  # the snapshot before the writer commits
        batches = list(recompute.account_batches(settings, size=1))

    assert batches == [[ids[0]], [ids[1]]]


def test_the_stored_evidence_is_every_field_of_the_assessment(settings, broker):
    apply_all(settings, history())
    account = account_id(settings)
    with transaction(settings) as conn:
        state = load_state(conn, account, TODAY, LoadConfig.from_settings(settings))
    signals, assessment = recompute.score(state, recompute.Rules.from_settings(settings))
    health = assessment.health

    evidence = recompute.evidence_json(assessment, signals)

    # What dataclasses.asdict gives, with dates as ISO strings.
    expected = {
        "as_of": assessment.as_of,
        "health": {
            **dataclasses.asdict(health),
            "effective_weights": health.effective_weights,
            "missing": list(health.missing),
        },
        "readiness": dataclasses.asdict(assessment.readiness),
        "signals": [dataclasses.asdict(signal) for signal in signals],
    }
    assert json.dumps(evidence) == json.dumps(expected, default=date.isoformat)


def test_rescore_leaves_an_account_locked_by_a_recompute_to_it(settings, broker):
    ids = book(settings, 3)
    lock = recompute.AccountLock.for_settings(settings)
    token = lock.acquire(ids[1])

    summary = recompute.rescore_all(settings, NOW)

    assert (summary.accounts, summary.written, summary.skipped) == (3, 2, 1)
    assert history_rows(settings, ids[1]) == []
    assert lock.release(ids[1], token)  # the rescore did not touch the recompute's lock
    assert broker.keys(f"{recompute.KEY_PREFIX}:lock:*") == []


def test_signals_move_with_time_alone_and_the_daily_rescore_records_it(settings, broker):
    apply_all(settings, history())
    account = account_id(settings)
    recompute.rescore_all(settings, NOW)

    later = NOW + timedelta(days=60)  # the integration and the limit hit age out of 30 days
    recompute.rescore_all(settings, later)

    first, second = history_rows(settings, account)
    assert first.state_version == second.state_version
    assert {"integration_connected", "usage_near_cap"} <= {s["name"] for s in first.signals}
    assert not {"integration_connected", "usage_near_cap"} & {s["name"] for s in second.signals}
    assert second.as_of == later.date()
    assert second.days_to_renewal == first.days_to_renewal - 60


def test_the_beat_job_sends_one_rescore_task_per_batch(settings, broker, celery_app):
    ids = book(settings, 3)

    assert recompute.enqueue_rescore(settings, celery_app, batch_size=2) == 2

    bodies = [
        json.loads(base64.b64decode(json.loads(raw)["body"]))
        for raw in broker.lrange("celery", 0, -1)
    ]
    assert sorted(args[0] for args, _kwargs, _embed in bodies) == [ids[:2], ids[2:]]
    assert "rescore-all" in celery_app.conf.beat_schedule
    assert celery_app.conf.beat_schedule["rescore-all"]["task"] == "workers.tasks.rescore_all"


def test_the_daily_tasks_rescore_the_book(settings, broker, celery_app, task_env):
    ids = book(settings, 3)

    assert tasks.rescore_all() == 1  # one batch of up to 1000 accounts
    ((args, _kwargs, _embed),) = [
        json.loads(base64.b64decode(json.loads(raw)["body"]))
        for raw in broker.lrange("celery", 0, -1)
    ]
    assert tasks.rescore_batch(*args) == {
        "accounts": 3,
        "written": 3,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert all(current_row(settings, account) is not None for account in ids)


def test_the_debounce_is_configured_from_the_environment():
    assert Settings.from_env({}).recompute_debounce_seconds == 5.0
    assert (
        Settings.from_env({"RECOMPUTE_DEBOUNCE_SECONDS": "0.5"}).recompute_debounce_seconds == 0.5
    )
    with pytest.raises(ValueError, match="RECOMPUTE_DEBOUNCE_SECONDS must be a number"):
        Settings.from_env({"RECOMPUTE_DEBOUNCE_SECONDS": "5s"})
    assert "RECOMPUTE_DEBOUNCE_SECONDS=" in (ROOT / ".env.example").read_text()


def test_evidence_writes_a_facts_infinity_as_text_and_keeps_a_huge_count_exact(settings):
    signal = Signal("org_growth", "commercial", 0.5, "headcount up from 0", {"change": math.inf})
    huge = Signal("org_growth", "commercial", 0.5, "headcount 10^20", {"employees": 10**20})
    rules = recompute.Rules.from_settings(settings)
    assessment = recompute.score(AccountState(1, TODAY, "Acme", None), rules)[1]

    facts = recompute.evidence_json(assessment, [signal])["signals"][0]["facts"]
    huge_facts = recompute.evidence_json(assessment, [huge])["signals"][0]["facts"]

    assert facts == {"change": "inf"}
    assert huge_facts == {"employees": 10**20}
