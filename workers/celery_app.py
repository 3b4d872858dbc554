"""The Celery application: broker from the environment or the embedded Redis, and the settings
that make tasks safe to redeliver (late acks, prefetch 1, time limits, visibility timeout)."""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging, worker_process_init

from expansion.db import dispose_engines
from expansion.embedded import broker_url
from expansion.logs import configure_logging
from expansion.settings import Settings

INGEST_TASK = "workers.tasks.ingest"


def make_celery(settings: Settings | None = None) -> Celery:
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
        # Redis re-delivers an unacknowledged message after this; it must exceed the longest
        # task, or a slow task would run twice at once.
        broker_transport_options={"visibility_timeout": hard_limit * 4},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_schedule={
            "sweep-inbox": {
                "task": "workers.tasks.sweep_inbox",
                "schedule": float(settings.inbox_sweep_interval_seconds),
            },
        },
    )
    return app


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
