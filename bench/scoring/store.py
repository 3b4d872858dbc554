"""The benchmark's databases: a fresh embedded SQLite under a temporary VAR_DIR, or a PostgreSQL
database of its own (created and dropped here), migrated, then filled with the book's rows in
bulk (executemany on SQLite, COPY on PostgreSQL)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import DateTime, make_url, text

from bench.scoring.book import COLUMNS, Rows
from expansion import db
from expansion.models import metadata
from expansion.settings import Settings

# Its own database on the server; another name lets two runs share a server side by side.
BENCH_DATABASE = os.environ.get("ES_BENCH_DATABASE", "es_bench")
BOOK_TEMPLATE_PREFIX = "es_bench_book_"


@dataclass(frozen=True)
class Target:
    """One database to benchmark and the environment its processes get."""

    name: str  # sqlite | postgresql
    env: dict[str, str]

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)


def sqlite_target(var_dir: Path) -> Target:
    env = _base_env(var_dir)
    env.pop("DATABASE_URL", None)
    return Target("sqlite", env)


def postgresql_target(var_dir: Path, server_url: str) -> Target:
    """`server_url` names the server (any database on it); the benchmark uses its own."""
    url = make_url(server_url).set(database=BENCH_DATABASE)
    return Target("postgresql", {**_base_env(var_dir), "DATABASE_URL": url.render_as_string(False)})


def _base_env(var_dir: Path) -> dict[str, str]:
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BROKER_URL")}
    env.update(
        VAR_DIR=str(var_dir),
        MAPPINGS_DIR=str(root / "mappings"),
        PYTHONPATH=str(root),
        LOG_LEVEL="WARNING",
    )
    return env


def _admin_url(target: Target) -> str:
    url = make_url(target.env["DATABASE_URL"]).set(database="postgres", drivername="postgresql")
    return url.render_as_string(False)


def create(target: Target) -> None:
    """An empty, migrated database (a PostgreSQL one left by an earlier run is dropped)."""
    if target.name == "postgresql":
        drop(target)
        with psycopg.connect(_admin_url(target), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    db.upgrade(target.settings)


def drop(target: Target) -> None:
    db.dispose_engines()
    if target.name != "postgresql":
        return
    with psycopg.connect(_admin_url(target), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")


def fill(target: Target, chunks: Iterable[Rows]) -> dict[str, int]:
    """Write every chunk of rows; returns the row count per table."""
    counts = dict.fromkeys(COLUMNS, 0)
    engine = db.get_engine(target.settings)
    raw = engine.raw_connection()
    try:
        write = _copy if target.name == "postgresql" else _executemany
        for rows in chunks:
            for table, table_rows in rows.items():
                if table_rows:
                    write(raw.driver_connection, table, table_rows)
                    counts[table] += len(table_rows)
            raw.commit()
        _finish(raw.driver_connection, target.name)
        raw.commit()
    finally:
        raw.close()
    return counts


def _copy(conn: psycopg.Connection, table: str, rows: list[tuple]) -> None:  # type: ignore[type-arg]
    with conn.cursor() as cursor:
        columns = ", ".join(f'"{name}"' for name in COLUMNS[table])
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


_SQLITE_STATEMENTS: dict[str, tuple[str, tuple[int, ...]]] = {}


def _executemany(conn, table: str, rows: list[tuple]) -> None:  # type: ignore[no-untyped-def,type-arg]
    statement, datetimes = _sqlite_statement(table)
    if datetimes:
        rows = [_sqlite_datetimes(row, datetimes) for row in rows]
    conn.executemany(statement, rows)


def _sqlite_statement(table: str) -> tuple[str, tuple[int, ...]]:
    """The insert and the positions of its datetime columns (stored as SQLAlchemy does)."""
    if table not in _SQLITE_STATEMENTS:
        names = COLUMNS[table]
        columns = metadata.tables[table].c
        datetimes = tuple(i for i, n in enumerate(names) if isinstance(columns[n].type, DateTime))
        marks = ", ".join("?" for _ in names)
        statement = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})"
        _SQLITE_STATEMENTS[table] = (statement, datetimes)
    return _SQLITE_STATEMENTS[table]


def _sqlite_datetimes(row: tuple, positions: tuple[int, ...]) -> tuple:  # type: ignore[type-arg]
    values = list(row)
    for i in positions:
        moment: datetime | None = values[i]
        if moment is not None:
            values[i] = moment.replace(tzinfo=None).isoformat(" ", "microseconds")
    return tuple(values)


def _finish(conn, dialect: str) -> None:  # type: ignore[no-untyped-def]
    """What a database that grew over months would have: planner statistics, sequences past
    the ids given."""
    if dialect == "postgresql":
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('accounts', 'id'), max(id)) FROM accounts"
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        conn.autocommit = False
    else:
        conn.execute("ANALYZE")


def database_size(target: Target) -> int:
    """Bytes on disk."""
    if target.name == "sqlite":
        path = _sqlite_path(target)
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with db.transaction(target.settings) as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def timed_fill(target: Target, chunks: Iterable[Rows]) -> tuple[dict[str, int], float]:
    started = time.perf_counter()
    counts = fill(target, chunks)
    return counts, time.perf_counter() - started


@dataclass(frozen=True)
class BookCache:
    """A generated book kept for later runs: on SQLite a copy of the database file, on
    PostgreSQL a database `es_bench_book_<key>` on the same server that `es_bench` is created
    from (CREATE DATABASE ... TEMPLATE); beside either, a JSON file with how it was generated."""

    directory: Path
    key: str

    @classmethod
    def of(cls, directory: Path, args: argparse.Namespace, today: date) -> BookCache:
        key = f"{args.accounts}a_{args.days}d_s{args.seed}_{today:%Y%m%d}"
        return cls(directory, key)

    def _description_path(self, target: Target) -> Path:
        return self.directory / f"{self.key}.{target.name}.json"

    def _sqlite_copy(self) -> Path:
        return self.directory / f"{self.key}.sqlite"

    @property
    def _template(self) -> str:
        return f"{BOOK_TEMPLATE_PREFIX}{self.key}"

    def restore(self, target: Target) -> dict[str, Any] | None:
        """Put the kept book in place of the target's database and return how it was
        generated; None when no such book is kept."""
        described = self._description_path(target)
        if not described.exists():
            return None
        if target.name == "sqlite":
            if not self._sqlite_copy().exists():
                return None
            path = _sqlite_path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            db.dispose_engines()
            for journal in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                journal.unlink(missing_ok=True)  # an earlier rescore's, not the kept book's
            shutil.copyfile(self._sqlite_copy(), path)
        else:
            drop(target)
            with psycopg.connect(_admin_url(target), autocommit=True) as conn:
                if not conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (self._template,)
                ).fetchone():
                    return None
                conn.execute(f"CREATE DATABASE {BENCH_DATABASE} TEMPLATE {self._template}")
        db.upgrade(target.settings)  # a book kept before a newer migration
        return {**json.loads(described.read_text()), "reused": True}

    def keep(self, target: Target, description: dict[str, Any]) -> None:
        """Keep the target's freshly generated book (call before anything else writes to it)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        db.dispose_engines()
        if target.name == "sqlite":
            engine = db.get_engine(target.settings)
            raw = engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()
            db.dispose_engines()
            shutil.copyfile(_sqlite_path(target), self._sqlite_copy())
        else:
            with psycopg.connect(_admin_url(target), autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {self._template}")
                conn.execute(f"CREATE DATABASE {self._template} TEMPLATE {BENCH_DATABASE}")
        self._description_path(target).write_text(json.dumps(description))


def _sqlite_path(target: Target) -> Path:
    return Path(target.settings.effective_database_url.removeprefix("sqlite:///"))
