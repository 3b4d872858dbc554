"""Shared fixtures: a test environment on embedded defaults (or DATABASE_URL / REDIS_URL when
CI points the suite at PostgreSQL and a real Redis), the Flask app and client, and clean tables."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, text

from expansion import db
from expansion.embedded import stop_embedded_redis
from expansion.models import metadata
from expansion.settings import Settings
from integration.app import create_app
from tests.support import ROOT, TEST_SECRETS
from workers import queue
from workers.celery_app import make_celery


@pytest.fixture(scope="session")
def var_dir() -> Iterator[Path]:
    # Short path: unix socket paths are limited to ~100 characters.
    path = Path(tempfile.mkdtemp(prefix="es-"))
    yield path
    stop_embedded_redis(path)


@pytest.fixture(scope="session")
def env(var_dir: Path) -> dict[str, str]:
    """The environment a process of the product gets in tests (also handed to subprocesses)."""
    base = {k: v for k, v in os.environ.items() if k not in TEST_SECRETS}
    base.update(TEST_SECRETS)
    base.update(
        {
            "VAR_DIR": str(var_dir),
            "MAPPINGS_DIR": str(ROOT / "mappings"),
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": "WARNING",
        }
    )
    return base


@pytest.fixture(scope="session")
def session_settings(env: dict[str, str]) -> Settings:
    settings = Settings.from_env(env)
    if settings.database_url:
        # A shared server (CI's PostgreSQL): start from an empty schema, so the migrations
        # themselves are exercised and no earlier run's rows leak in.
        with db.transaction(settings) as conn:
            metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    db.upgrade(settings)
    make_celery(settings).control.purge()
    return settings


@pytest.fixture
def settings(session_settings: Settings) -> Iterator[Settings]:
    yield session_settings
    with db.transaction(session_settings) as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))
    # A test that posted an event left a drain queued (or deleted its message): the next
    # test's events must wake their own.
    queue.flag_client(session_settings).delete(queue.DRAIN_QUEUED_KEY)


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()
