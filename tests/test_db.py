"""The database layer on PostgreSQL: a connection the server dropped while it sat idle in the
pool is replaced on its next checkout instead of failing the caller's transaction; a
transaction that fills tables without planner statistics plans each statement anew."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import Connection, make_url, text

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


def plan_cache_mode(conn: Connection) -> str:
    return conn.execute(text("SHOW plan_cache_mode")).scalar_one()


def test_statements_are_planned_anew_only_while_a_filled_table_has_no_statistics(settings):
    if not settings.effective_database_url.startswith("postgresql"):
        pytest.skip("plan caching is PostgreSQL's")
    with db.transaction(settings) as conn:
        default = plan_cache_mode(conn)
        conn.execute(text("CREATE TABLE es_probe_plays (id integer)"))
    try:
        with db.transaction(settings) as conn:
            db.plan_for_current_size(conn, ["account_scores", "es_probe_plays"])
            assert plan_cache_mode(conn) == "force_custom_plan"
        with db.transaction(settings) as conn:
            assert plan_cache_mode(conn) == default  # for that transaction only
            conn.execute(text("INSERT INTO es_probe_plays SELECT generate_series(1, 100)"))
            conn.execute(text("ANALYZE es_probe_plays"))
        with db.transaction(settings) as conn:
            db.plan_for_current_size(conn, ["es_probe_plays"])
            assert plan_cache_mode(conn) == default
    finally:
        with db.transaction(settings) as conn:
            conn.execute(text("DROP TABLE es_probe_plays"))
