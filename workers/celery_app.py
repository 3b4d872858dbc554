"""The Celery application: broker from the environment or the embedded Redis, and the settings
that make tasks safe to redeliver (late acks, prefetch 1, time limits, visibility timeout)."""

from __future__ import annotations

from celery import Celery
from celery.schedules import crontab
from celery.signals import setup_logging, worker_process_init

from expansion.db import dispose_engines
from expansion.embedded import broker_url
from expansion.logs import configure_logging
from expansion.settings import Settings
from workers import broker_guard

INGEST_TASK = "workers.tasks.ingest"
DRAIN_TASK = "workers.tasks.drain_inbox"
PUBLISH_SOCKET_TIMEOUT_SECONDS = 5.0


def make_celery(settings: Settings | None = None, publisher: bool = False) -> Celery:
    """`publisher`: for a process that only sends tasks (the web), never waiting on a Redis
    that hangs."""
    broker_guard.install()
    settings = settings or Settings.from_env()
    app = Celery("expansion", broker=broker_url(settings), include=["workers.tasks"])
    app.set_default()
    hard_limit = settings.task_time_limit_seconds
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=hard_limit,
        task_soft_time_limit=max(hard_limit - 30, 1),
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={
            # Redis re-delivers an unacknowledged message after this; it must exceed the
            # longest task, or a slow task would run twice at once.
            "visibility_timeout": hard_limit * 4,
            **(_PUBLISHER_TIMEOUTS if publisher else {}),
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_schedule={
            "sweep-inbox": {
                "task": "workers.tasks.sweep_inbox",
                "schedule": float(settings.inbox_sweep_interval_seconds),
            },
            "prune-state": {
                "task": "workers.tasks.prune_state",
                "schedule": crontab(hour=3, minute=17),  # daily, off the hour
            },
            # Days to renewal and sliding windows move at midnight UTC (the scored day).
            "rescore-all": {
                "task": "workers.tasks.rescore_all",
                "schedule": crontab(hour=0, minute=7),
            },
            # CRM writes left behind (a failed send, a paused budget, a lost wake-up).
            "flush-crm": {
                "task": "workers.tasks.flush_crm",
                "schedule": float(settings.crm_flush_interval_seconds),
            },
            # SLA breaches and the weekly-cap waitlist (workers/play_step.py).
            "sla-sweep": {
                "task": "workers.tasks.sla_sweep",
                "schedule": crontab(minute="*/15"),
            },
        },
    )
    return app


# Without these, a publish to a Redis that hangs (or behind a network that drops packets)
# waits forever: the web worker never answers again and the enqueue breaker never trips.
# Workers keep the default: a timed-out ack is only logged, and the unacked message then
# holds its prefetch slot for good, so a worker with timeouts stops consuming after a hang.
_PUBLISHER_TIMEOUTS = {
    "socket_timeout": PUBLISH_SOCKET_TIMEOUT_SECONDS,
    "socket_connect_timeout": PUBLISH_SOCKET_TIMEOUT_SECONDS,
}


@worker_process_init.connect
def _fresh_connections_after_fork(**_kwargs: object) -> None:
    dispose_engines()


@setup_logging.connect
def _json_logs(**_kwargs: object) -> None:
    configure_logging()


_default_app: Celery | None = None


def __getattr__(name: str) -> Celery:
    # `celery -A workers.celery_app:celery_app` resolves this lazily, so importing the module
    # neither reads the environment nor starts the embedded Redis.
    global _default_app
    if name != "celery_app":
        raise AttributeError(name)
    if _default_app is None:
        _default_app = make_celery()
    return _default_app
