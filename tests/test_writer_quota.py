"""The per-org CRM budget in Redis: a token bucket for the rate, the daily quota less the
headroom (pause, then resume by itself), the CRM's headers lowering it, a 429 pausing every
worker, and concurrent takers never overspending."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import time_machine

from expansion.settings import Settings
from integration.writers.quota import Budget
from workers.recompute import redis_client

START = 1_780_000_000.0


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def budget(settings: Settings, org: str, rate: float = 5, headroom: float = 20) -> Budget:
    client = redis_client(settings)
    client.delete(f"expansion:crm-quota:salesforce:{org}")
    return Budget(client, "salesforce", org, rate, headroom, pause_seconds=300)


def test_the_bucket_allows_a_burst_then_refills_at_the_rate(settings: Settings, clock):  # type: ignore[no-untyped-def]
    bucket = budget(settings, "burst")
    assert all(bucket.take().granted for _ in range(5))
    refused = bucket.take()
    assert (refused.granted, refused.reason) == (False, "rate")
    assert refused.wait_seconds == pytest.approx(0.2)
    clock.shift(0.2)
    assert bucket.take().granted
    assert not bucket.take().granted


def test_the_daily_budget_keeps_the_headroom_then_resumes(settings: Settings, clock):  # type: ignore[no-untyped-def]
    bucket = budget(settings, "daily", rate=1000)
    bucket.observe(used=795, total=1000)  # 20% headroom: 800 may be used
    assert all(bucket.take().granted for _ in range(5))
    paused = bucket.take()
    assert (paused.reason, paused.wait_seconds) == ("daily", 300)
    clock.shift(299)
    assert bucket.take().reason == "daily"  # still paused, for every worker
    clock.shift(1)
    # After the pause one call goes out and its Sforce-Limit-Info sets the count again.
    assert bucket.take().granted
    bucket.observe(used=100, total=1000)
    assert bucket.take().granted


def test_a_429_pauses_every_worker_of_the_org(settings: Settings, clock):  # type: ignore[no-untyped-def]
    first = budget(settings, "throttled")
    second = Budget(redis_client(settings), "salesforce", "throttled", 5, 20, 300)
    first.block(2.5)
    grant = second.take()
    assert (grant.reason, grant.wait_seconds) == ("throttled", 2.5)
    first.block(1)  # a shorter, later Retry-After does not shorten the pause
    assert second.take().wait_seconds == 2.5
    clock.shift(2.5)
    assert second.take().granted


def test_remaining_calls_reported_by_the_crm_lower_the_bucket(settings: Settings, clock):  # type: ignore[no-untyped-def]
    bucket = budget(settings, "observed", rate=10)
    bucket.observe(remaining=2)
    assert bucket.take().granted
    assert bucket.take().granted
    assert not bucket.take().granted


def test_concurrent_takers_never_spend_more_than_the_bucket(settings: Settings, clock):  # type: ignore[no-untyped-def]
    budget(settings, "shared", rate=50)
    granted = []

    def worker() -> None:
        mine = Budget(redis_client(settings), "salesforce", "shared", 50, 20, 300)
        granted.extend(g for g in (mine.take() for _ in range(40)) if g.granted)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 50
