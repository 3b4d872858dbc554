"""Engine and transactions for SQLite (WAL, embedded default) and PostgreSQL, plus schema
migration under a lock so several processes can start at once."""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, exc, text

from expansion.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
READ_ONLY_OPTION = "es_read_only"
# A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out.
PING_IDLE_SECONDS = 1.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; every time we store is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def json_text(value: Any) -> str:
    """JSON text of a JSON column's value, by orjson (a tenth of json.dumps's time): the same
    JSON but for whitespace, unescaped non-ASCII, the spelling of some floats (1e-05 as 1e-5)
    and non-finite floats, which become null (json.dumps writes NaN, which is not JSON and
    which PostgreSQL refuses). An orjson.Fragment, JSON text made earlier, is written as it is.
    What orjson cannot write (integers beyond 64 bits) goes to json.dumps."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # let BEGIN below control transactions
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    # Take the write lock up front: a deferred transaction that later upgrades fails with
    # SQLITE_BUSY without waiting, which would turn contention into spurious errors.
    # A read-only transaction (`read_transaction`) begins deferred instead: WAL readers then run
    # side by side and beside the writer.
    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        read_only = conn.get_execution_options().get(READ_ONLY_OPTION, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection on checkout only when it has been idle for PING_IDLE_SECONDS,
    and replace it when the ping fails (the server restarted, or closed it). `pool_pre_ping`
    pings on every checkout: a round trip for each of a recompute's four transactions, a
    tenth of its time, to learn about a connection that was fine a few milliseconds ago."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn, record, _proxy):  # type: ignore[no-untyped-def]
        checked_in = record.info.pop("checked_in", None)
        if checked_in is None or time.monotonic() - checked_in < PING_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error


_engines: dict[str, Engine] = {}


def _engine_for(url: str) -> Engine:
    engine = _engines.get(url)
    if engine is not None:
        return engine
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=json_text)
        _configure_sqlite(engine)
    else:
        engine = create_engine(url, pool_size=5, max_overflow=5, json_serializer=json_text)
        _ping_idle_connections(engine)
    _engines[url] = engine
    return engine


def get_engine(settings: Settings) -> Engine:
    return _engine_for(settings.effective_database_url)


def dispose_engines() -> None:
    """Drop pooled connections (after fork, or between tests)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


@contextmanager
def transaction(settings: Settings) -> Iterator[Connection]:
    with get_engine(settings).begin() as conn:
        yield conn


@contextmanager
def read_transaction(settings: Settings) -> Iterator[Connection]:
    """A transaction for reading only, one consistent snapshot throughout. On SQLite it does not
    take the write lock, so several processes read at once; do not write in it (upgrading to
    the write lock fails with SQLITE_BUSY without waiting when another writer came first)."""
    with get_engine(settings).connect() as conn:
        conn.execution_options(**{READ_ONLY_OPTION: True})
        with conn.begin():
            yield conn


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings) -> None:
    """Bring the schema to the newest migration; safe to call from many processes at once."""
    url = settings.effective_database_url
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.var_dir / "migrate.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        engine = get_engine(settings)
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(74201)"))
                try:
                    _run_upgrade(url, conn)
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(74201)"))
                    conn.commit()
        else:
            _run_upgrade(url, None)


def _run_upgrade(url: str, conn: Connection | None) -> None:
    cfg = alembic_config(url)
    if conn is not None:
        cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


STATISTICS_LOCK_ID = 74205  # PostgreSQL advisory lock: one process analyzes at a time

_TRY_STATISTICS_LOCK = text(f"SELECT pg_try_advisory_xact_lock({STATISTICS_LOCK_ID})")
# Which of the named tables have rows and no planner statistics yet.
_UNPLANNED = text(
    "SELECT t.relname FROM pg_stat_user_tables t"
    " WHERE t.schemaname = current_schema() AND t.relname = ANY(:tables) AND t.n_live_tup > 0"
    " AND NOT EXISTS (SELECT 1 FROM pg_statistic s WHERE s.starelid = t.relid)"
)


def analyze_new_tables(settings: Settings, tables: Sequence[str]) -> list[str]:
    """PostgreSQL: ANALYZE those of `tables` that have rows but no statistics, and return their
    names. A rescore fills the score and plays tables of a fresh book from empty within a
    minute, before autovacuum gets to them; until then the planner guesses each of a batch's
    thousand ids to match 0.5% of the rows (so all of them together nearly every row) and
    scans the whole table for every batch. Once analyzed, a table's estimates scale with its
    size, so this happens once per table, after its first batch. Another process analyzing
    meanwhile is left to it."""
    engine = get_engine(settings)
    if engine.dialect.name != "postgresql":
        return []
    with engine.begin() as conn:
        if not conn.execute(_TRY_STATISTICS_LOCK).scalar():
            return []
        unplanned = list(conn.execute(_UNPLANNED, {"tables": list(tables)}).scalars())
        for table in unplanned:
            conn.execute(text(f'ANALYZE "{table}"'))
    return unplanned


# Sets plan_cache_mode for this transaction when one of the named tables has no statistics.
_CUSTOM_PLANS_WHILE_UNPLANNED = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true) FROM pg_class c"
    " WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(:tables)"
    " AND NOT EXISTS (SELECT 1 FROM pg_statistic s WHERE s.starelid = c.oid) LIMIT 1"
)


def plan_for_current_size(conn: Connection, tables: Sequence[str]) -> None:
    """PostgreSQL: while one of `tables` (those this transaction fills) has no planner
    statistics, plan each statement of the transaction for its parameters and the tables'
    current size instead of reusing a generic plan. A rescore of a fresh book grows the score
    and plays tables from empty, and a plan cached while they were empty (by psycopg's prepared
    statements, or the foreign-key checks' own) scans them whole on every use: the first
    rescore went quadratic. Once they are analyzed (`analyze_new_tables`, after a batch) the
    cached plans are made again from their statistics, and planning each of a batch's
    foreign-key checks anew (a sixth of the server's time in a first rescore) stops."""
    if conn.dialect.name == "postgresql":
        conn.execute(_CUSTOM_PLANS_WHILE_UNPLANNED, {"tables": list(tables)})
