"""Many-row statements of a rescore batch (expansion.bulk): the new ids come back in the order of
the rows, JSON columns round-trip, upserts and ON CONFLICT clauses hold, on SQLite and (in CI)
on PostgreSQL through psycopg's pipelined executemany and COPY; `one_of` lists ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite

from expansion.bulk import COPY_MIN_ROWS, copy_rows, insert_many, one_of
from expansion.db import json_text, transaction
from expansion.models import accounts
from expansion.play_tables import outbox, play_decisions
from expansion.settings import Settings

NOW = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)


def intent(key: str, payload: object, kind: str = "set_fields") -> dict[str, object]:
    return {
        "account_id": None,
        "crm": "none",
        "crm_id": None,
        "kind": kind,
        "external_key": key,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "created_at": NOW,
        "updated_at": NOW,
    }


def test_new_ids_come_back_in_the_order_of_the_rows_and_json_round_trips(settings: Settings):
    payloads = [
        {"fields": {"readiness_score": 71, "top_signals": "Seats: 43 of 50 active (86%)"}},
        {"fields": {"recommended_play": None, "note": "Zürich — 5 € / seat"}},
        {"nested": [1, 2.5, {"deep": [True, None]}]},
    ]
    with transaction(settings) as conn:
        ids = insert_many(
            conn, outbox.insert(), [intent(f"k-{n}", p) for n, p in enumerate(payloads)], ids=True
        )
        stored = dict(conn.execute(select(outbox.c.id, outbox.c.payload)).all())
        keys = dict(conn.execute(select(outbox.c.id, outbox.c.external_key)).all())
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert [stored[i] for i in ids] == payloads
    assert [keys[i] for i in ids] == ["k-0", "k-1", "k-2"]


def test_on_conflict_clauses_hold(settings: Settings):
    with transaction(settings) as conn:
        account = conn.execute(
            insert(accounts).values(name="Acme", created_at=NOW, updated_at=NOW)
        ).inserted_primary_key[0]
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(outbox).on_conflict_do_nothing()
        task = intent("es-play-1-step-0", {"subject": "Call"}, kind="create_task")
        insert_many(conn, statement, [task, task, intent("account-1", {"fields": {}})])
        kinds = sorted(conn.execute(select(outbox.c.kind)).scalars())
        assert kinds == ["create_task", "set_fields"]  # a create_task key is queued once

        decision = dialect.insert(play_decisions)
        upsert = decision.on_conflict_do_update(
            index_elements=[play_decisions.c.account_id],
            set_={"fingerprint": decision.excluded.fingerprint},
        )
        insert_many(conn, upsert, [{"account_id": account, "fingerprint": "a", "decided_at": NOW}])
        insert_many(conn, upsert, [{"account_id": account, "fingerprint": "b", "decided_at": NOW}])
        assert conn.execute(select(play_decisions.c.fingerprint)).scalars().all() == ["b"]
    with transaction(settings) as conn:
        assert insert_many(conn, outbox.insert(), [], ids=True) == []


@pytest.mark.parametrize("count", [3, COPY_MIN_ROWS])  # one INSERT, or COPY on PostgreSQL
def test_copied_rows_get_their_ids_in_order_and_json_round_trips(settings: Settings, count: int):
    payloads = [
        {"fields": {"readiness_score": 71.5, "tiny": 1e-05, "big": 1e16}},
        {"fields": {"recommended_play": None, "note": "Zürich — 5 € / seat\nnext line"}},
        {"nested": [1, 2.5, {"deep": [True, None, "tab\there"]}]},
    ]
    rows = [intent(f"k-{n}", payloads[n % 3]) for n in range(count)]
    with transaction(settings) as conn:
        ids = copy_rows(conn, outbox, rows, ids=True)
        ids += copy_rows(conn, outbox, rows[:1] * count, ids=True)
        stored = dict(conn.execute(select(outbox.c.id, outbox.c.payload)).all())
        keys = dict(conn.execute(select(outbox.c.id, outbox.c.external_key)).all())
        assert copy_rows(conn, outbox, [], ids=True) == []
    assert ids == sorted(ids) and len(set(ids)) == 2 * count
    assert [stored[i] for i in ids] == [payloads[n % 3] for n in range(count)] + [
        payloads[0]
    ] * count
    assert [keys[i] for i in ids] == [f"k-{n}" for n in range(count)] + ["k-0"] * count


@pytest.mark.parametrize("count", [3, COPY_MIN_ROWS])  # one INSERT, or a staged COPY
def test_copied_upserts_hold_their_on_conflict_clauses_in_order(settings: Settings, count: int):
    with transaction(settings) as conn:
        account_ids = [
            conn.execute(
                insert(accounts).values(name=f"A{n}", created_at=NOW, updated_at=NOW)
            ).inserted_primary_key[0]
            for n in range(count)
        ]
        task = intent("es-play-1-step-0", {"subject": "Call"}, kind="create_task")
        fields = [intent("account-1", {"fields": {"n": n}}) for n in range(count + 1)]

        def skip(insert):  # type: ignore[no-untyped-def]
            return insert.on_conflict_do_nothing()

        copy_rows(conn, outbox, [task, *fields[:-2], task, fields[-2]], on_conflict=skip)
        copy_rows(conn, outbox, [task, fields[-1]], on_conflict=skip)  # stages again
        queued = conn.execute(select(outbox.c.kind, outbox.c.payload).order_by(outbox.c.id)).all()
        assert [kind for kind, _ in queued] == ["create_task", *["set_fields"] * (count + 1)]
        assert [p["fields"]["n"] for kind, p in queued if kind == "set_fields"] == list(
            range(count + 1)
        )

        def newer(insert):  # type: ignore[no-untyped-def]
            return insert.on_conflict_do_update(
                index_elements=[play_decisions.c.account_id],
                set_={"fingerprint": insert.excluded.fingerprint},
                where=play_decisions.c.fingerprint < insert.excluded.fingerprint,
            )

        for fingerprint in ("b", "c", "a"):
            rows = [
                {"account_id": a, "fingerprint": fingerprint, "decided_at": NOW}
                for a in account_ids
            ]
            copy_rows(conn, play_decisions, rows, on_conflict=newer)
        stored = conn.execute(select(play_decisions.c.fingerprint)).scalars().all()
        assert stored == ["c"] * count


def test_one_of_lists_ids_of_any_number(settings: Settings):
    with transaction(settings) as conn:
        ids = [
            conn.execute(
                insert(accounts).values(name=f"A{n}", created_at=NOW, updated_at=NOW)
            ).inserted_primary_key[0]
            for n in range(3)
        ]
        dialect = conn.dialect.name

        def names(wanted: list[int]) -> list[str]:
            query = select(accounts.c.name).where(one_of(accounts.c.id, wanted, dialect))
            return sorted(conn.execute(query).scalars())

        assert names(ids[:2]) == ["A0", "A1"]
        assert names([ids[2], 10**12]) == ["A2"]
        assert names([]) == []


def test_json_columns_take_what_json_dumps_took_and_store_the_same_values(settings: Settings):
    payloads = [
        {"fields": {"note": "Zürich — 5 € / seat", "ratio": 1e-05}, "ids": [2**70, -(2**65)]},
        {"by_day": {1: "one", 2: "two"}},  # int keys become strings, as json.dumps makes them
    ]
    with transaction(settings) as conn:
        ids = insert_many(
            conn, outbox.insert(), [intent(f"j-{n}", p) for n, p in enumerate(payloads)], ids=True
        )
        stored = dict(conn.execute(select(outbox.c.id, outbox.c.payload)).all())
    assert stored[ids[0]] == payloads[0]  # integers beyond 64 bits kept exact
    assert stored[ids[1]] == {"by_day": {"1": "one", "2": "two"}}
    assert json_text({"a": float("nan"), "b": [float("inf")]}) == '{"a":null,"b":[null]}'
    assert json_text(orjson.Fragment(b'{"made": "before"}')) == '{"made": "before"}'


def test_sqlite_rows_get_the_ids_sqlite_would_pick_and_defaults_fill_left_out_columns(
    settings: Settings,
):
    with transaction(settings) as conn:
        if conn.dialect.name != "sqlite":
            pytest.skip("SQLite's own insert path")
        first = insert_many(conn, outbox.insert(), [intent(f"d-{n}", {}) for n in range(3)], True)
        conn.execute(outbox.delete().where(outbox.c.id == first[-1]))
        row = intent("d-3", {"n": 3})
        del row["attempts"]  # the column's default, 0
        (again,) = insert_many(conn, outbox.insert(), [row], ids=True)
        (after,) = conn.execute(outbox.insert().values(intent("d-4", {}))).inserted_primary_key
        attempts = conn.execute(select(outbox.c.attempts).where(outbox.c.id == again)).scalar()
    assert (again, after) == (first[-1], first[-1] + 1)  # max(rowid) + 1, as SQLite does
    assert attempts == 0


def test_moments_are_stored_as_sqlalchemy_stores_them_whatever_their_zone(settings: Settings):
    paris = NOW.astimezone(timezone(timedelta(hours=1)))  # the same moment, another wall clock
    rows = [{**intent(f"z-{n}", {}), "created_at": moment} for n, moment in enumerate([NOW, paris])]
    with transaction(settings) as conn:
        insert_many(conn, outbox.insert(), rows)
        for row in rows:
            conn.execute(
                outbox.insert().values({**row, "external_key": "ref-" + row["external_key"]})
            )
        stored = dict(conn.execute(select(outbox.c.external_key, outbox.c.created_at)).all())
    assert stored["z-0"] == stored["ref-z-0"]
    assert stored["z-1"] == stored["ref-z-1"]
