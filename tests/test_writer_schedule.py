"""When the flush runs: woken at most once per burst, one at a time per CRM org across workers
(a flush asked for meanwhile makes the running one go round again; the other CRM's flush runs
side by side), and a flush paused by a spent budget sends itself again for later, leaving its
intents pending."""

from __future__ import annotations

import json

from expansion.settings import Settings
from integration.writers import schedule
from tests.sandbox_support import sandbox_fixture
from tests.writer_support import queue_fields, seed_accounts, statuses, writer_settings
from workers.celery_app import make_celery
from workers.recompute import redis_client

crm_sandbox = sandbox_fixture()


def queued_flushes(settings: Settings) -> list[dict]:  # type: ignore[type-arg]
    """The flush_crm messages waiting in the broker, with their headers."""
    messages = [json.loads(raw) for raw in redis_client(settings).lrange("celery", 0, -1)]
    return [m["headers"] for m in messages if m["headers"]["task"] == schedule.FLUSH_TASK]


def clean(settings: Settings) -> None:
    client = redis_client(settings)
    client.delete("celery", *client.keys(f"{schedule.KEY_PREFIX}:*"))


def both_crms(settings: Settings, sandbox) -> Settings:  # type: ignore[no-untyped-def]
    return writer_settings(writer_settings(settings, sandbox, "salesforce"), sandbox, "hubspot")


def test_a_burst_of_wakes_queues_one_flush(settings: Settings, crm_sandbox):  # type: ignore[no-untyped-def]
    config = writer_settings(settings, crm_sandbox, "hubspot")
    clean(config)
    app = make_celery(config)
    assert schedule.wake(config, app)
    assert not schedule.wake(config, app)
    [headers] = queued_flushes(config)
    assert headers["eta"] is not None  # after WAKE_DELAY_SECONDS: the burst goes out together
    assert headers["kwargsrepr"] == "{'crm': 'hubspot'}"
    clean(config)


def test_each_crm_is_woken_and_swept_by_its_own_flush(settings: Settings, crm_sandbox):  # type: ignore[no-untyped-def]
    config = both_crms(settings, crm_sandbox)
    clean(config)
    app = make_celery(config)
    assert not schedule.flushing(config)
    assert schedule.wake(config, app)
    assert schedule.flushing(config)  # woken: one flush per CRM is about to run
    assert sorted(h["kwargsrepr"] for h in queued_flushes(config)) == [
        "{'crm': 'hubspot'}",
        "{'crm': 'salesforce'}",
    ]
    clean(config)
    assert schedule.run_single_flight(config, app) == {  # beat's flush, without a CRM
        "status": "sent",
        "crms": ["salesforce", "hubspot"],
    }
    assert len(queued_flushes(config)) == 2
    clean(config)


def test_a_flush_of_one_crm_runs_while_the_other_crm_is_flushing(settings: Settings, crm_sandbox):  # type: ignore[no-untyped-def]
    config = both_crms(settings, crm_sandbox)
    clean(config)
    salesforce = seed_accounts(config, crm_sandbox, "salesforce", 2)
    hubspot = seed_accounts(config, crm_sandbox, "hubspot", 2)
    queue_fields(config, salesforce + hubspot, {"readiness_score": 5})
    client = redis_client(config)
    client.set(schedule.key(config, "salesforce", "lock"), "another worker")
    assert schedule.flushing(config)
    app = make_celery(config)
    assert schedule.run_single_flight(config, app, "salesforce")["status"] == "busy"
    outcome = schedule.run_single_flight(config, app, "hubspot")
    assert outcome["status"] == "done"
    assert list(outcome) == ["status", "hubspot"]  # it claimed HubSpot's intents only
    assert outcome["hubspot"]["sent"] == 2  # type: ignore[index]
    assert statuses(config) == {"sent": 2, "pending": 2}
    client.delete(schedule.key(config, "salesforce", "lock"))
    outcome = schedule.run_single_flight(config, app, "salesforce")
    assert outcome["salesforce"]["sent"] == 2  # type: ignore[index]
    assert statuses(config) == {"sent": 4}
    clean(config)


def test_no_crm_configured_no_flush(settings: Settings):
    clean(settings)
    assert not schedule.wake(settings, make_celery(settings))
    assert queued_flushes(settings) == []


def test_a_flush_asked_for_while_one_runs_makes_it_go_round_again(settings: Settings, crm_sandbox):  # type: ignore[no-untyped-def]
    config = writer_settings(settings, crm_sandbox, "hubspot")
    clean(config)
    client = redis_client(config)
    lock, again = schedule.key(config, "hubspot", "lock"), schedule.key(config, "hubspot", "again")
    client.set(lock, "another worker")
    app = make_celery(config)
    assert schedule.run_single_flight(config, app, "hubspot") == {
        "status": "busy",
        "crm": "hubspot",
    }
    assert client.get(again) == b"1"
    client.delete(lock)
    ids = seed_accounts(config, crm_sandbox, "hubspot", 2)
    queue_fields(config, ids, {"readiness_score": 5})
    outcome = schedule.run_single_flight(config, app, "hubspot")
    assert outcome["status"] == "done"
    assert outcome["hubspot"]["sent"] == 2  # type: ignore[index]
    assert client.get(lock) is None and client.get(again) is None


def test_a_paused_flush_sends_itself_again_and_fails_nothing(settings: Settings, crm_sandbox):  # type: ignore[no-untyped-def]
    config = writer_settings(settings, crm_sandbox, "salesforce", crm_quota_pause_seconds=120)
    clean(config)
    ids = seed_accounts(config, crm_sandbox, "salesforce", 2)
    crm_sandbox.set_limits(salesforce_daily=1)
    queue_fields(config, ids, {"readiness_score": 5})
    app = make_celery(config)
    assert schedule.run_single_flight(config, app, "salesforce")["status"] == "done"
    queue_fields(config, ids, {"readiness_score": 6})  # the org's allowance is now spent
    outcome = schedule.run_single_flight(config, app, "salesforce")
    assert outcome["status"] == "paused"
    assert statuses(config) == {"sent": 2, "pending": 2}
    [headers] = queued_flushes(config)
    assert headers["eta"] is not None
    assert headers["kwargsrepr"] == "{'crm': 'salesforce'}"
    clean(config)
