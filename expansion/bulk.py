"""Many-row INSERTs (and upserts) of a rescore batch: on PostgreSQL one parsed statement that
psycopg pipelines row by row, elsewhere SQLAlchemy's executemany."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Connection, Table
from sqlalchemy.sql.dml import Insert


def insert_many(
    conn: Connection, statement: Insert, rows: Sequence[Mapping[str, Any]], ids: bool = False
) -> list[int]:
    """Execute `statement` for every row (each with the same keys); with `ids`, the statement
    returns the new rows' ids and they come back in the order of `rows`.

    SQLAlchemy renders a page of a thousand rows' placeholders into one statement, which psycopg
    parses again for every page (its cache takes short statements only): on a batch of plays
    with their rendered plans that parsing cost more than the server's work."""
    if not rows:
        return []
    if conn.dialect.name != "postgresql":
        if ids:
            returning = statement.returning(_table(statement).c.id, sort_by_parameter_order=True)
            return list(conn.execute(returning, list(rows)).scalars())
        conn.execute(statement, list(rows))
        return []
    if ids:
        statement = statement.returning(_table(statement).c.id)
    keys = list(rows[0])
    sql = statement.compile(dialect=conn.dialect, column_keys=keys).string
    encoded = [key for key in keys if isinstance(_table(statement).c[key].type, JSON)]
    params = [{**row, **{key: json.dumps(row[key]) for key in encoded}} for row in rows]
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.executemany(sql, params, returning=ids)
        if not ids:
            return []
        new_ids = []
        while True:
            new_ids.append(cursor.fetchone()[0])  # type: ignore[index]
            if not cursor.nextset():
                break
        return new_ids


def _table(statement: Insert) -> Table:
    table = statement.table
    assert isinstance(table, Table)
    return table
