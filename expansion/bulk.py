"""Many-row statements of a rescore batch. On PostgreSQL, `insert_many` sends one parsed
statement that psycopg pipelines row by row, and `copy_rows` COPYs the rows, which the server
takes in one pass (upserts go through a staging table); elsewhere both are SQLAlchemy's
executemany. JSON columns are sent as `db.json_text`. `one_of` is the IN list of
a batch's reads."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from psycopg import sql
from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Connection,
    Date,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    Table,
    any_,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.dml import Insert

from expansion.db import json_text

# What an upsert adds to an INSERT: e.g. `lambda insert: insert.on_conflict_do_nothing()`.
OnConflict = Callable[[Any], Insert]
# Fewer rows go by `insert_many`, in one round trip: a COPY takes two (an upsert's staging four),
# which a single account's recompute would wait for.
COPY_MIN_ROWS = 100


def one_of(column: ColumnElement[Any], values: Iterable[Any], dialect: str) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL `column = ANY(values)` with the values as one array
    parameter: a thousand ids are neither rendered nor parsed as a thousand placeholders, and
    the statement is the same for any number of them."""
    values = list(values)
    if dialect == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


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
    if conn.dialect.name == "sqlite":
        return _sqlite_insert_many(conn, statement, rows, ids)
    if ids:
        statement = statement.returning(_table(statement).c.id)
    keys = list(rows[0])
    compiled = statement.compile(dialect=conn.dialect, column_keys=keys).string
    encoded = _json_keys(_table(statement), keys)
    params = [{**row, **{key: json_text(row[key]) for key in encoded}} for row in rows]
    with _driver(conn).cursor() as cursor:
        cursor.executemany(compiled, params, returning=ids)
        if not ids:
            return []
        new_ids = []
        while True:
            new_ids.append(cursor.fetchone()[0])  # type: ignore[index]
            if not cursor.nextset():
                break
        return new_ids


def _sqlite_insert_many(
    conn: Connection, statement: Insert, rows: Sequence[Mapping[str, Any]], ids: bool
) -> list[int]:
    """SQLite: the statement compiled once, each row's values through its columns' bind
    processors (what SQLAlchemy's executemany applies, at a fraction of its per-row cost), then
    the driver's executemany. New ids are given explicitly: the next ones after the table's
    highest, which is what SQLite would pick for each row (every write transaction holds the
    database's write lock from its start)."""
    table, dialect = _table(statement), conn.dialect
    new_ids: list[int] = []
    if ids:
        highest = conn.execute(select(func.max(table.c.id))).scalar() or 0
        new_ids = list(range(highest + 1, highest + 1 + len(rows)))
        rows = [{"id": i, **row} for i, row in zip(new_ids, rows, strict=True)]
    compiled = statement.compile(dialect=dialect, column_keys=list(rows[0]))
    columns = [table.c[name] for name in compiled.positiontup or ()]
    left_out = {c.name: _scalar_default(c) for c in columns if c.name not in rows[0]}
    if left_out:
        rows = [{**left_out, **row} for row in rows]
    plan = [(c.name, _bind_processor(c, dialect)) for c in columns]
    params = [
        tuple(row[name] if process is None else process(row[name]) for name, process in plan)
        for row in rows
    ]
    _driver(conn).cursor().executemany(compiled.string, params)
    return new_ids


def _bind_processor(column: Column[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """The column type's bind processor; a date's or time's remembers what it made, as a batch
    stores the same few moments (its `now`, due dates) on thousands of rows."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    if process is None or not isinstance(column.type, Date | DateTime):
        return process
    made: dict[tuple[Any, Any], Any] = {}

    def remembered(value: Any) -> Any:
        # By the zone too: equal moments in two zones are equal keys but print differently.
        key = (value, getattr(value, "tzinfo", None))
        if key not in made:
            made[key] = process(value)
        return made[key]

    return remembered


def _scalar_default(column: Column[Any]) -> Any:
    default = column.default
    if default is None or not default.is_scalar:
        raise ValueError(f"no value for {column.name}, which has no scalar default")
    return default.arg  # type: ignore[attr-defined]


def copy_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    ids: bool = False,
    on_conflict: OnConflict | None = None,
) -> list[int]:
    """Insert the rows (each with the same keys) into `table`, in their order; with `ids`,
    their new ids in the order of `rows`. On PostgreSQL, from COPY_MIN_ROWS rows on, by COPY
    (the ids are taken from the table's sequence first). An upsert names its ON CONFLICT
    clause (`on_conflict`, applied to the dialect's insert of `table`): its rows are COPYed
    into a temporary table, then inserted from there in one statement (which may not meet a
    row twice: no two rows of one call may conflict)."""
    if on_conflict is not None and ids:
        raise ValueError("an upsert returns no ids (a row it updates keeps its own)")
    if not rows:
        return []
    if conn.dialect.name != "postgresql" or len(rows) < COPY_MIN_ROWS:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = on_conflict(dialect.insert(table)) if on_conflict else table.insert()
        return insert_many(conn, statement, rows, ids)
    keys = list(rows[0])
    values = _values(table, keys, rows)
    with _driver(conn).cursor() as cursor:
        if on_conflict is None:
            if not ids:
                _copy(cursor, table.name, keys, values, _wire_types(cursor, table, keys))
                return []
            new_ids = _new_ids(cursor, table, len(rows))
            _copy(
                cursor,
                table.name,
                ["id", *keys],
                ([i, *v] for i, v in zip(new_ids, values, strict=True)),
                _wire_types(cursor, table, ["id", *keys]),
            )
            return new_ids
        staging = f"es_copy_{table.name}"
        cursor.execute(
            sql.SQL(
                "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {}, 0 AS n FROM {} WITH NO DATA"
            ).format(
                sql.Identifier(staging),
                sql.SQL(", ").join(map(sql.Identifier, keys)),
                sql.Identifier(table.name),
            )
        )
        _copy(
            cursor,
            staging,
            [*keys, "n"],
            ([*v, n] for n, v in enumerate(values)),
            [*_wire_types(cursor, table, keys), INT4_OID],
        )
    staged = _staging_table(staging, table, keys)
    moved = postgresql.insert(table).from_select(
        keys, select(*(staged.c[key] for key in keys)).order_by(staged.c.n)
    )
    conn.execute(on_conflict(moved))
    conn.exec_driver_sql(f"DROP TABLE {staging}")  # another call in this transaction stages again
    return []


def _new_ids(cursor: Any, table: Table, count: int) -> list[int]:
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
        (table.name, count),
    )
    return sorted(row[0] for row in cursor.fetchall())


def _values(
    table: Table, keys: list[str], rows: Sequence[Mapping[str, Any]]
) -> Iterator[list[Any]]:
    """Each row's values in the order of `keys`, JSON columns as JSON text."""
    encoded = _json_keys(table, keys)
    for row in rows:
        yield [json_text(row[k]) if k in encoded else row[k] for k in keys]


def _copy(
    cursor: Any, into: str, columns: list[str], values: Iterable[list[Any]], types: list[int]
) -> None:
    """COPY in PostgreSQL's binary format: no escaping of text on either side (a batch sends
    hundreds of megabytes of JSON), each value as the column's own type (`types`)."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(into), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with cursor.copy(statement) as copy:
        copy.set_types(types)
        for row in values:
            copy.write_row(row)


# Type ids: what travels as text (JSON and varchar have text's binary form), and the staging
# tables' order column.
TEXT_OID, JSON_OID, VARCHAR_OID, INT4_OID = 25, 114, 1043, 23
_table_types: dict[str, dict[str, int]] = {}


def _wire_types(cursor: Any, table: Table, columns: Sequence[str]) -> list[int]:
    """The type id each column's values are sent as in a binary COPY (read from the server
    once per table and process)."""
    types = _table_types.get(table.name)
    if types is None:
        cursor.execute(
            "SELECT attname, atttypid::int FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (table.name,),
        )
        types = {
            name: TEXT_OID if oid in (JSON_OID, VARCHAR_OID) else oid
            for name, oid in cursor.fetchall()
        }
        _table_types[table.name] = types
    return [types[column] for column in columns]


def _staging_table(name: str, table: Table, keys: Sequence[str]) -> Table:
    """The staging table as SQLAlchemy sees it: `table`'s columns and types, and the order."""
    columns = [Column(key, table.c[key].type) for key in keys]
    return Table(name, MetaData(), *columns, Column("n", Integer))


def _json_keys(table: Table, keys: Sequence[str]) -> set[str]:
    """The keys of JSON columns, which are sent as JSON text."""
    return {key for key in keys if isinstance(table.c[key].type, JSON)}


def _driver(conn: Connection) -> Any:
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver


def _table(statement: Insert) -> Table:
    table = statement.table
    assert isinstance(table, Table)
    return table
