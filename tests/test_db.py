"""The database layer's pool: a PostgreSQL connection the server dropped while it sat idle in
the pool is replaced on its next checkout instead of failing the caller's transaction."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import make_url, text

from expansion import db
from expansion.settings import Settings


def backend_pid(settings: Settings) -> int:
    with db.transaction(settings) as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_pooled_connection_dropped_while_idle_is_replaced_on_checkout(settings):
    url = settings.effective_database_url
    if not url.startswith("postgresql"):
        pytest.skip("SQLite has no server to drop a connection")
    db.dispose_engines()
    dropped = backend_pid(settings)  # the pool's one connection, now idle in it
    raw_url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(raw_url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (dropped,)).fetchone() == (True,)
    time.sleep(db.PING_IDLE_SECONDS + 0.1)

    replacement = backend_pid(settings)

    assert replacement != dropped
    assert backend_pid(settings) == replacement  # checked in again within the idle time
