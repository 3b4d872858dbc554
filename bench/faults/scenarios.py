"""The fault scenarios, each on a fresh cluster: kill -9 the worker several times during a
replay, stop Redis (or freeze it) during a replay; each ends with the exactly-once ledger."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import redis

from bench.faults.checks import (
    Ledger,
    claimed_unfinished,
    done_count,
    ledger,
    pending_count,
)
from bench.faults.cluster import Cluster
from bench.faults.events import Event, make_events
from bench.faults.replay import Answer, Replay
from expansion.embedded import socket_path
from tests.support import TEST_SECRETS, wait_for


@dataclass(frozen=True)
class Plan:
    events: int = 5000
    customers: int = 300
    senders: int = 4
    rate: float | None = None  # events per second over all senders; None: as fast as answered
    sweep_after: int = 15  # INBOX_SWEEP_AFTER_SECONDS
    sweep_interval: int = 5  # INBOX_SWEEP_INTERVAL_SECONDS
    concurrency: int = 2  # prefork children of the worker
    drain_timeout: float = 900.0
    database_url: str | None = None  # PostgreSQL to run against (emptied first); None: SQLite


@dataclass
class Result:
    name: str
    plan: Plan
    ledger: Ledger
    first_try_failures: int  # answers other than 2xx before any redelivery
    not_accepted: int  # events still without a 2xx after redelivery
    measures: dict[str, int | float | str] = field(default_factory=dict)  # seconds as float

    @property
    def problems(self) -> list[str]:
        found = self.ledger.problems()
        if self.not_accepted:
            found.append(f"{self.not_accepted} events never answered 2xx")
        return found


def _start_replay(cluster: Cluster, plan: Plan) -> tuple[list[Event], Replay]:
    events = make_events(plan.events, plan.customers, created_from=int(time.time()) - 86_400)
    secret = TEST_SECRETS["STRIPE_WEBHOOK_SECRET"]
    replay = Replay(cluster.url, events, secret, plan.senders, plan.rate)
    replay.start()
    return events, replay


def _drain(cluster: Cluster, plan: Plan) -> float:
    """Wait until no inbox row is pending; return that moment (time.monotonic())."""

    def drained() -> bool:
        if cluster.worker.popen.poll() is not None:
            raise AssertionError(f"the worker exited; see {cluster.worker.log_path}")
        return pending_count(cluster.settings) == 0

    wait_for(
        drained,
        plan.drain_timeout,
        "every inbox row processed",
        interval=0.25,
    )
    return time.monotonic()


def _unacked(cluster: Cluster) -> int:
    """Messages Redis handed to a worker that never acknowledged them."""
    client = redis.Redis(unix_socket_path=str(socket_path(cluster.var_dir)))
    with client:
        return client.hlen("unacked")


def _finish(
    name: str, cluster: Cluster, plan: Plan, events: list[Event], replay: Replay
) -> tuple[Result, float]:
    """Wait for the replay, redeliver what was not answered 2xx, wait until nothing is pending
    and take the ledger; also return when the last row was done."""
    replay.join()
    sent = time.monotonic()
    first_try: dict[int, Answer] = {}
    for answer in replay.answers:
        first_try.setdefault(answer.index, answer)
    not_accepted = replay.redeliver()
    finished = _drain(cluster, plan)
    result = Result(
        name,
        plan,
        ledger(cluster.settings, events, replay.accepted()),
        first_try_failures=sum(1 for answer in first_try.values() if not answer.ok),
        not_accepted=not_accepted,
        measures={
            "replay took (s)": sent - replay.started,
            "all applied, from first send (s)": finished - replay.started,
        },
    )
    cluster.keep = bool(result.problems)
    return result, finished


def kill_worker_during_replay(plan: Plan, kills: int = 5) -> Result:
    """SIGKILL the worker's process group each time another 1/(kills+1) of the rows is done,
    restarting it at once; the messages it held are only given back by Redis after the
    visibility timeout, so the sweeper has to re-enqueue them."""
    with Cluster(
        plan.sweep_after, plan.sweep_interval, plan.concurrency, plan.database_url
    ) as cluster:
        events, replay = _start_replay(cluster, plan)
        orphaned: set[int] = set()
        stranded = 0
        last_restart = time.monotonic()
        for kill in range(1, kills + 1):
            target = plan.events * kill // (kills + 1)
            wait_for(
                lambda target=target: done_count(cluster.settings) >= target,
                plan.drain_timeout,
                f"{target} rows done before kill {kill}",
                interval=0.05,
            )
            cluster.kill_worker()
            orphaned |= claimed_unfinished(cluster.settings)
            # Nothing gives these back within the visibility timeout, so the count adds up.
            stranded = _unacked(cluster)
            cluster.start_worker()
            last_restart = time.monotonic()
        result, finished = _finish("kill -9 worker", cluster, plan, events, replay)
        result.measures |= {
            "kills": kills,
            "rows in flight at a kill": len(orphaned),
            "messages held by killed workers": stranded,
            "rows re-enqueued by the sweeper": result.ledger.swept,
            "rows claimed twice or more": result.ledger.retried,
            "recovery after last restart (s)": finished - last_restart,
        }
        return result


def _latency(answers: list[Answer]) -> str:
    if not answers:
        return "-"
    values = sorted(answer.latency for answer in answers)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"{statistics.median(values):.3f} / {p95:.3f} / {values[-1]:.3f}"


def stop_redis_during_replay(
    plan: Plan, outage: float = 20.0, stop_at: float = 0.25, hang: bool = False
) -> Result:
    """Stop Redis once `stop_at` of the events are sent (or, with `hang`, freeze it so that
    connections stay open but nothing answers) and bring it back `outage` seconds later; the
    receiver must answer 2xx throughout and everything must be applied afterwards."""
    with Cluster(
        plan.sweep_after, plan.sweep_interval, plan.concurrency, plan.database_url
    ) as cluster:
        events, replay = _start_replay(cluster, plan)
        wait_for(lambda: replay.sent >= plan.events * stop_at, 600, "replay under way", 0.01)
        down_at = time.monotonic()
        if hang:
            cluster.pause_redis(True)
        else:
            cluster.stop_redis()
        time.sleep(max(0.0, down_at + outage - time.monotonic()))
        if hang:
            cluster.pause_redis(False)
        else:
            cluster.start_redis()
        up_at = time.monotonic()
        name = "Redis hangs" if hang else "stop Redis"
        result, finished = _finish(name, cluster, plan, events, replay)
        during = [a for a in replay.answers if down_at <= a.sent_at < up_at]
        before = [a for a in replay.answers if a.sent_at < down_at]
        result.measures |= {
            "Redis down (s)": up_at - down_at,
            "answers while down": len(during),
            "non-2xx while down": sum(1 for a in during if not a.ok),
            "latency p50 / p95 / max before (s)": _latency(before),
            "latency p50 / p95 / max while down (s)": _latency(during),
            "enqueue failures logged": cluster.log("web.log").count("enqueue failed"),
            "rows re-enqueued by the sweeper": result.ledger.swept,
            "catch-up after Redis returned (s)": finished - up_at,
        }
        return result
