"""Single-flight with real processes: two Celery workers take recompute tasks for one large
account at the same time, sent both by ingest (CRM changes posted to the receiver) and directly;
the runs never overlap, a task that finds the account busy hands off, and the last score is
computed from the last state."""

from __future__ import annotations

import json
import random
import time
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from expansion.db import transaction, utcnow
from expansion.models import account_current_scores, account_scores, account_users, inbox_events
from expansion.settings import Settings
from integration.canonical import AccountKey
from tests.state_support import account_id
from tests.support import start_worker, wait_for
from tests.test_recompute import EMPLOYEES_CHANGE, company_change, post_hubspot
from workers import recompute
from workers.celery_app import make_celery
from workers.days import day_number, pack_bits

pytestmark = pytest.mark.slow

USERS = 50_000  # a recompute of this account takes a few hundred milliseconds
ROUNDS = 6
DIRECT_TASKS = 3  # recompute tasks sent at once with each change, as redeliveries would be
COMPANY = AccountKey("hubspot", str(EMPLOYEES_CHANGE["objectId"]))


def sentiment_change(event_id: int, value: str) -> dict[str, Any]:
    return company_change(event_id, 0, propertyName="csm_sentiment", propertyValue=value)


def add_users(settings: Settings, account: int) -> None:
    """A large account's users, stored the way the user.active rollup stores them: applying
    50,000 users' activity event by event would take longer than this whole test."""
    first = day_number(utcnow().date()) - 119
    rng = random.Random(7)
    rows = [
        {
            "account_id": account,
            "user_id": f"user-{n}",
            "first_seen": first,
            "last_active": first + 119,
            "active_from": first,
            "active_bits": pack_bits(rng.getrandbits(120) | 1 << 119),
            "email_domain": "acme.example",
            "department": f"Team {n % 9}",
        }
        for n in range(USERS)
    ]
    with transaction(settings) as conn:
        conn.execute(account_users.insert(), rows)


def runs_logged(logs: list[Path], account: int) -> tuple[list[tuple[datetime, datetime]], int]:
    """Every recompute run of the account the workers logged, and how many tasks found it
    busy."""
    runs, busy = [], 0
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            if entry.get("account_id") != account:
                continue
            if entry["message"] == "recompute run":
                runs.append(
                    (
                        datetime.fromisoformat(entry["started_at"]),
                        datetime.fromisoformat(entry["finished_at"]),
                    )
                )
            elif entry["message"] == "recompute" and entry["status"] == "busy":
                busy += 1
    return sorted(runs), busy


def overlapping(intervals: list[tuple[datetime, datetime]]) -> list[Any]:
    return [(a, b) for a, b in pairwise(sorted(intervals)) if b[0] < a[1]]


def test_two_workers_never_recompute_one_account_at_once(client, env, settings, tmp_path):
    broker = recompute.redis_client(settings)
    broker.delete("celery", *broker.keys(f"{recompute.KEY_PREFIX}:*"))
    worker_env = {**env, "RECOMPUTE_DEBOUNCE_SECONDS": "0.2"}
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    workers = [start_worker(worker_env, path, concurrency=1) for path in logs]
    app = make_celery(settings)
    try:
        post_hubspot(client, [sentiment_change(3816291000, "neutral")])
        wait_for(lambda: _exists(settings), 30, "the company account")
        account = account_id(settings, COMPANY)
        add_users(settings, account)
        for n in range(ROUNDS):
            value = "positive" if n % 2 == 0 else "at_risk"
            post_hubspot(client, [sentiment_change(3816291001 + n, value)])
            # Once the change is stored the account is stale, so the direct tasks, taken by
            # both idle workers at once, each need the lock for a full run: they contend.
            wait_for(lambda: _all_ingested(settings), 30, "the change ingested")
            for _ in range(DIRECT_TASKS):
                app.send_task(recompute.RECOMPUTE_TASK, args=(account,))
            time.sleep(0.3)

        def settled() -> bool:
            return (
                _all_ingested(settings)
                and recompute.freshness(settings, account, utcnow().date()) == "scored"
                and not broker.exists(recompute.pending_key(account))
                and not broker.exists(recompute.lock_key(account))
            )

        wait_for(settled, 40, "the last state scored and nothing pending")
    finally:
        for worker in workers:
            worker.stop()

    runs, busy = runs_logged(logs, account)
    assert len(runs) >= 2
    assert overlapping(runs) == []
    assert busy >= 1, "the workers never contended: the test proved nothing"
    with transaction(settings) as conn:
        rows = conn.execute(
            select(account_scores)
            .where(account_scores.c.account_id == account)
            .order_by(account_scores.c.id)
        ).all()
    assert len(rows) >= 2  # the sentiment swings change the health score
    assert overlapping([(r.started_at, r.finished_at) for r in rows]) == []
    assert [r.state_version for r in rows] == sorted({r.state_version for r in rows})
    # The current score is of the last state: the newest sentiment. (A run may load a change
    # committed after it read the version; its re-run then finds the same result and writes
    # no history row, so the current score names the newest version and an older row.)
    with transaction(settings) as conn:
        current = conn.execute(
            select(account_current_scores).where(account_current_scores.c.account_id == account)
        ).one()
    assert current.state_version == recompute.state_version(settings, account)
    last = next(r for r in rows if r.id == current.score_id)
    assert "CSM sentiment at_risk" in json.dumps(last.evidence)


def _exists(settings: Settings) -> bool:
    with transaction(settings) as conn:
        return bool(
            conn.execute(
                select(func.count())
                .select_from(inbox_events)
                .where(inbox_events.c.status == "processed")
            ).scalar_one()
        )


def _all_ingested(settings: Settings) -> bool:
    with transaction(settings) as conn:
        return not conn.execute(
            select(func.count()).select_from(inbox_events).where(inbox_events.c.status == "pending")
        ).scalar_one()
