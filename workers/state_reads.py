"""The reads behind workers/state_loader.py: for a batch of accounts, their names and state
versions, then one statement per part of the state. The statements are SQLAlchemy Core,
compiled once per dialect with the account ids as one list parameter, and run on the driver's
cursors: on PostgreSQL all of a batch's statements in one round trip (psycopg's pipeline mode),
on SQLite one after another. Rows come back as the driver's tuples, grouped by account, with
their JSON columns as text for the builder to decode (`loads`, `crm_value`) as it unpacks them:
through SQLAlchemy's result rows, reading took twice the CPU, and rebuilding each row around
its decoded value took a pass over the rows of its own."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import groupby
from operator import itemgetter
from typing import Any

import orjson
import psycopg
from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Dialect,
    Select,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY

from expansion.models import (
    account_attributes,
    account_contacts,
    account_crm_history,
    account_features,
    account_integrations,
    account_invoices,
    account_limit_hits,
    account_nps,
    account_series,
    account_subscriptions,
    account_teaser_clicks,
    account_tickets,
    account_users,
    accounts,
)

# What each part of the state reads: its table, its columns in the order the builders unpack
# them (after the account id each row leads with), and the order of its rows.
PARTS: dict[str, tuple[Table, str, str]] = {
    "subscription": (
        account_subscriptions,
        "tier seats arr renewal_on status cancel_at_period_end seat_changes",
        "",
    ),
    "series": (account_series, "metric grain start points", "metric grain"),
    "users": (
        account_users,
        "user_id first_seen last_active active_from active_bits email_domain department title "
        "invited_on",
        "user_id",
    ),
    "features": (
        account_features,
        "feature tier category first_used last_used users",
        "feature",
    ),
    "integrations": (account_integrations, "name category connected_on", "name"),
    "teaser_clicks": (account_teaser_clicks, "feature tier day user_id", "day feature user_id"),
    "limit_hits": (account_limit_hits, "limit_name day usage cap", "day limit_name"),
    "tickets": (
        account_tickets,
        "ticket_id created_on subject text priority status closed status_on csat",
        "created_on ticket_id",
    ),
    "contacts": (
        account_contacts,
        "contact_id title title_history role champion exec_sponsor left_company last_engaged_on",
        "contact_id",
    ),
    "nps": (account_nps, "score day respondent", "day id"),
    "invoices": (account_invoices, "invoice_id day status amount", "day invoice_id status"),
    "crm": (account_attributes, "name value", "name"),
    "crm_history": (account_crm_history, "name day value", "name day"),
}

Rows = list[tuple[Any, ...]]


def loads(text: str) -> Any:
    """A JSON column of the parts workers/rollups.py writes (numbers and day spans): orjson,
    several times faster than json; json for what only it reads (NaN, lone surrogates)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


# json.loads' own settings.
_JSON = json.JSONDecoder()


def crm_value(stored: Any) -> Any:
    """A CRM value (`crm`, `crm_history`): anyone's JSON, and orjson reads an integer beyond 64
    bits as a float, so Python's json. On SQLite the column's numeric affinity hands a number
    back as one already."""
    if isinstance(stored, str):
        # json.loads without its Python steps, for text without surrounding whitespace.
        try:
            value, end = _JSON.raw_decode(stored)
            if end == len(stored):
                return value
        except json.JSONDecodeError:
            pass
        return json.loads(stored)
    return json.loads(stored) if isinstance(stored, bytes) else stored


@dataclass(frozen=True)
class Batch:
    """One batch's rows: (id, state version, name) of each account found, and each part's rows
    of each account, in order, each leading with the account id."""

    accounts: Rows
    parts: dict[str, dict[int, Rows]]


def read_batch(conn: Connection, ids: Sequence[int], crm_history_fields: list[str]) -> Batch:
    """The accounts are read before their parts, in the same transaction: on PostgreSQL (read
    committed) a change committed meanwhile shows up in the parts, never in the version only."""
    statements = _statements(conn.dialect)
    if conn.dialect.name == "postgresql":
        # An array literal: psycopg would adapt a list item by item, again for each statement.
        listed = "{" + ",".join(str(int(id_)) for id_ in ids) + "}"
        results = _pipelined(conn, statements, {"ids": listed, "names": crm_history_fields})
    else:
        values = {"ids": json.dumps(list(ids)), "names": json.dumps(crm_history_fields)}
        results = _one_by_one(conn, statements, values)
    found, *parts = results
    return Batch(found, {part: _grouped(rows) for part, rows in zip(PARTS, parts, strict=True)})


@dataclass(frozen=True)
class _Statement:
    sql: str
    # The parameter names in the order of SQLite's `?` marks; None for named (PostgreSQL).
    positions: tuple[str, ...] | None
    # Values bound when compiled (e.g. a LIKE pattern).
    bound: dict[str, Any]


def _in_list(column: ColumnElement[Any], name: str, dialect: str) -> ColumnElement[bool]:
    """`column` is one of the list parameter `name`: one parameter however long the list, so a
    statement is compiled once and, on PostgreSQL, prepared once for any batch size."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    listed = func.json_each(bindparam(name)).table_valued("value")
    return column.in_(select(listed.c.value))


def _as_text(column: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """A JSON column as its text on PostgreSQL; SQLite hands it back as stored already (text, or
    a number where the column's numeric affinity turned the text into one)."""
    if dialect == "postgresql" and isinstance(column.type, JSON):
        return cast(column, Text)
    return column


def _part_query(part: str, dialect: str) -> Select[Any]:
    table, columns, order = PARTS[part]
    query = select(
        table.c.account_id, *(_as_text(table.c[name], dialect) for name in columns.split())
    )
    query = query.where(_in_list(table.c.account_id, "ids", dialect))
    if part == "crm":
        query = query.where(table.c.name.like("crm.%"))
    elif part == "crm_history":
        query = query.where(_in_list(table.c.name, "names", dialect))
    # Leading with account_id lets the primary key index deliver the rows already in order.
    return query.order_by(table.c.account_id, *(table.c[name] for name in order.split()))


@cache  # an entry per engine's dialect
def _statements(dialect: Dialect) -> list[_Statement]:
    """The accounts' statement, then each part's in the order of PARTS."""
    found = select(accounts.c.id, accounts.c.state_version, accounts.c.name).where(
        _in_list(accounts.c.id, "ids", dialect.name)
    )
    return [_compiled(found, dialect)] + [
        _compiled(_part_query(part, dialect.name), dialect) for part in PARTS
    ]


def _compiled(query: Select[Any], dialect: Dialect) -> _Statement:
    compiled = query.compile(dialect=dialect)
    positions = tuple(compiled.positiontup) if compiled.positiontup is not None else None
    return _Statement(compiled.string, positions, dict(compiled.params))


# Around the state reads, their transaction plans prepared statements generically, then goes
# back to its own plan_cache_mode (kept meanwhile in a setting of ours).
_GENERIC_PLANS = (
    "SELECT set_config('es.plan_cache_mode', current_setting('plan_cache_mode'), true),"
    " set_config('plan_cache_mode', 'force_generic_plan', true)"
)
_OWN_PLANS = "SELECT set_config('plan_cache_mode', current_setting('es.plan_cache_mode'), true)"


def _pipelined(
    conn: Connection, statements: list[_Statement], values: dict[str, Any]
) -> list[Rows]:
    """All statements sent at once and their results read in one round trip (leaving the
    pipeline syncs it). They are prepared and planned generically: a plan made for the ids at
    hand weighs each of the 500 ids against the column's statistics (6 ms to plan a batch's
    users on a 100,000-account book) and then overestimates the rows fourfold (a bitmap scan
    and a sort: 14 ms); the generic plan, an index scan in the rows' order, runs in 3 ms. The
    state tables are read by account, always through an index that leads with it."""
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    cursors = []
    with driver.pipeline():
        driver.execute(_GENERIC_PLANS)
        for statement in statements:
            cursor = driver.cursor()
            cursor.execute(statement.sql, {**statement.bound, **values}, prepare=True)
            cursors.append(cursor)
        driver.execute(_OWN_PLANS)
    results = []
    for cursor in cursors:
        with cursor:
            results.append(cursor.fetchall())
    return results


def _one_by_one(
    conn: Connection, statements: list[_Statement], values: dict[str, Any]
) -> list[Rows]:
    """SQLite takes the lists as JSON text (json_each)."""
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    results = []
    for statement in statements:
        parameters = {**statement.bound, **values}
        assert statement.positions is not None
        results.append(
            driver.execute(
                statement.sql, [parameters[name] for name in statement.positions]
            ).fetchall()
        )
    return results


_account_id = itemgetter(0)


def _grouped(rows: Rows) -> dict[int, Rows]:
    """Rows ordered by account id (each statement's ORDER BY leads with it) by account: groupby
    walks them in C, with no Python step per row."""
    return {account_id: list(group) for account_id, group in groupby(rows, _account_id)}
