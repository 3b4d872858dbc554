"""The inbox drain: claims pending inbox rows in batches and ingests each one exactly once
(workers.ingest.process), until the inbox stays empty for a grace period.

Why no accepted event is stranded. The receiver commits the row, then calls its process's wake
(workers/queue.py), which publishes a drain unless (a) it published less than W
(INGEST_WAKE_INTERVAL_SECONDS) ago, or (b) a drain message is already queued and not started.
- Published: the drain starts after the commit, so its claims see the row.
- (b): that queued drain starts after this moment, so its claims see the row.
- (a): the earlier wake at t_p (published, or found a queued drain as in (b)) guarantees a drain
  that starts after t_p. A drain only stops after a claim found nothing, a wait of G
  (INGEST_DRAIN_GRACE_SECONDS, required > W) and a second empty claim, so its last look is at
  least t_p + G > t_p + W, which is after our commit (made less than W after t_p).
A row a claim skips is claimed by another drain that is alive, which processes it; a drain that
dies (kill -9, time limit) leaves its claims, which expire after the lease below and are then
claimed again by the next drain, one the sweeper wakes if no event does. If the broker or the
flag's Redis is down, no drain is woken and the beat sweeper (workers/sweeper.py) wakes one
for rows pending longer than INBOX_SWEEP_AFTER_SECONDS.

Claims only save work and attempts: exactly-once is the claim/apply transactions of
workers/ingest.py, so a row processed twice at once (a lease expired under a stalled drain) is
still applied once; its attempt is counted twice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from expansion.db import transaction, utcnow
from expansion.models import inbox_events
from expansion.settings import Settings
from workers import ingest

# A claim older than this counts as none. Shorter than the task time limit (300 s by default,
# the only bound on a dead drain's claims otherwise) so that a killed worker's rows come back
# within seconds; a live drain keeps its claims fresh by re-claiming at half the lease.
CLAIM_LEASE_SECONDS = 30.0


def lease_seconds(settings: Settings) -> float:
    return min(CLAIM_LEASE_SECONDS, float(settings.task_time_limit_seconds))


def claim_expiry(settings: Settings, now: datetime) -> datetime:
    """Claims made before this moment have expired."""
    return now - timedelta(seconds=lease_seconds(settings))


@dataclass
class Drained:
    finished: bool = False  # False: stopped at its time budget with rows perhaps left
    batches: int = 0
    statuses: Counter[str] = field(default_factory=Counter)


def claim(settings: Settings, now: datetime, limit: int) -> list[int]:
    """Take up to `limit` pending rows, oldest first, that no live drain holds, stamping them
    with `now`. On PostgreSQL rows another drain is claiming are skipped (SKIP LOCKED); on
    SQLite the transaction's BEGIN IMMEDIATE already serializes claims."""
    query = (
        select(inbox_events.c.id)
        .where(
            inbox_events.c.status == "pending",
            or_(
                inbox_events.c.claimed_at.is_(None),
                inbox_events.c.claimed_at < claim_expiry(settings, now),
            ),
        )
        .order_by(inbox_events.c.id)
        .limit(limit)
    )
    with transaction(settings) as conn:
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(conn.execute(query).scalars())
        if ids:
            conn.execute(
                update(inbox_events).where(inbox_events.c.id.in_(ids)).values(claimed_at=now)
            )
    return ids


def release(settings: Settings, ids: Iterable[int], stamp: datetime) -> None:
    """Give back rows of a claim stamped `stamp` that are still pending and still ours."""
    with transaction(settings) as conn:
        conn.execute(
            update(inbox_events)
            .where(
                inbox_events.c.id.in_(list(ids)),
                inbox_events.c.status == "pending",
                inbox_events.c.claimed_at == stamp,
            )
            .values(claimed_at=None)
        )


def drain(
    settings: Settings,
    after_batch: Callable[[set[int]], object],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Drained:
    """Claim and process batches until two claims G apart find nothing, or half the task time
    limit is spent. `after_batch` gets the accounts a batch changed, after its commits (the
    recompute scheduling)."""
    started = clock()
    budget = settings.task_time_limit_seconds / 2
    result = Drained()
    looked_again = False
    while clock() - started < budget:
        stamp = utcnow()
        ids = claim(settings, stamp, settings.ingest_drain_batch)
        if not ids:
            if looked_again:
                result.finished = True
                return result
            sleep(settings.ingest_drain_grace_seconds)
            looked_again = True
            continue
        looked_again = False
        result.batches += 1
        after_batch(_process_batch(settings, ids, stamp, clock, result.statuses))
    return result


def _process_batch(
    settings: Settings,
    ids: list[int],
    stamp: datetime,
    clock: Callable[[], float],
    statuses: Counter[str],
) -> set[int]:
    """Process the claimed rows in order; past half the lease, give the rest back (the next
    claim takes them with a fresh stamp): a live drain's claim only expires under it when one
    row takes longer than half the lease."""
    claimed_at = clock()
    changed: set[int] = set()
    for position, inbox_id in enumerate(ids):
        if clock() - claimed_at > lease_seconds(settings) / 2:
            release(settings, ids[position:], stamp)
            break
        outcome = ingest.process(settings, inbox_id)
        statuses[outcome.status] += 1
        # A row to retry keeps its claim: the lease is its back-off before the next drain.
        changed.update(outcome.account_ids)
    return changed
