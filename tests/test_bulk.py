"""Many-row inserts of a rescore batch (expansion.bulk): the new ids come back in the order of
the rows, JSON columns round-trip, upserts and ON CONFLICT clauses hold, on SQLite and (in CI)
on PostgreSQL through psycopg's pipelined executemany."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite

from expansion.bulk import insert_many
from expansion.db import transaction
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
