"""The outbox of CRM write intents: a create_task is queued once per external key, writers
claim pending work under a lease, failures count attempts and go dead, and the summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from expansion.db import transaction
from expansion.models import account_links, accounts
from expansion.play_tables import outbox
from expansion.settings import Settings
from workers.outbox import (
    CLAIM_LEASE,
    MAX_ATTEMPTS,
    NO_CRM,
    claim_pending,
    enqueue_intent,
    intents_deferred,
    last_fields,
    mark_failed,
    mark_sent,
    queue_intent,
    summary,
    summary_lines,
)

NOW = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)
TASK = {"subject": "Send the utilization report", "owner": "csm-1", "due_date": "2026-06-03"}


def account(conn, salesforce_id: str | None = "001A") -> int:  # type: ignore[no-untyped-def]
    account_id = conn.execute(
        insert(accounts).values(name="Acme", created_at=NOW, updated_at=NOW)
    ).inserted_primary_key[0]
    if salesforce_id:
        conn.execute(
            insert(account_links).values(
                kind="salesforce", external_id=salesforce_id, account_id=account_id, created_at=NOW
            )
        )
    return int(account_id)


def test_a_create_task_is_queued_once_per_external_key(settings: Settings):
    with transaction(settings) as conn:
        acme = account(conn)
        first = enqueue_intent(conn, "create_task", "es-play-1-step-0", TASK, NOW, acme)
        assert first is not None
        assert enqueue_intent(conn, "create_task", "es-play-1-step-0", TASK, NOW, acme) is None
        # Other kinds repeat freely: each field change and task update is its own intent.
        for _ in range(2):
            enqueue_intent(conn, "update_task", "es-play-1-step-0", {"status": "x"}, NOW, acme)
            enqueue_intent(conn, "set_fields", f"account-{acme}", {"fields": {}}, NOW, acme)
        rows = conn.execute(select(outbox.c.kind, outbox.c.crm, outbox.c.crm_id)).all()
        assert len(rows) == 5
        assert {(crm, crm_id) for _, crm, crm_id in rows} == {("salesforce", "001A")}


def test_deferred_intents_are_inserted_together_in_the_order_queued(settings: Settings):
    with transaction(settings) as conn:
        acme = account(conn)
        enqueue_intent(conn, "create_task", "es-play-1-step-0", TASK, NOW, acme)
        with intents_deferred(conn):
            queue_intent(conn, "set_fields", f"account-{acme}", {"fields": {"x": 1}}, NOW, acme)
            queue_intent(conn, "create_task", "es-play-1-step-0", TASK, NOW, acme)  # queued
            queue_intent(conn, "create_task", "es-play-2-step-0", TASK, NOW, acme)
            queue_intent(conn, "create_task", "es-play-2-step-0", TASK, NOW, acme)  # twice
            queue_intent(conn, "set_fields", f"account-{acme}", {"fields": {"x": 2}}, NOW, acme)
            assert len(conn.execute(select(outbox.c.id)).all()) == 1  # nothing inserted yet
        rows = conn.execute(
            select(outbox.c.kind, outbox.c.external_key, outbox.c.crm_id).order_by(outbox.c.id)
        ).all()
        assert [(kind, key) for kind, key, _ in rows] == [
            ("create_task", "es-play-1-step-0"),
            ("set_fields", f"account-{acme}"),
            ("create_task", "es-play-2-step-0"),
            ("set_fields", f"account-{acme}"),
        ]
        assert {crm_id for _, _, crm_id in rows} == {"001A"}
        assert last_fields(conn, acme) == {"x": 2}
        # Outside the block, queue_intent inserts at once.
        queue_intent(conn, "update_task", "es-play-2-step-0", {"status": "x"}, NOW, acme)
        assert len(conn.execute(select(outbox.c.id)).all()) == 5


def test_deferred_intents_of_a_failed_block_are_not_inserted(settings: Settings):
    with transaction(settings) as conn:
        acme = account(conn)
        with pytest.raises(RuntimeError), intents_deferred(conn):
            queue_intent(conn, "set_fields", f"account-{acme}", {"fields": {"x": 1}}, NOW, acme)
            raise RuntimeError("the play step failed")
        assert conn.execute(select(outbox.c.id)).all() == []
        queue_intent(conn, "set_fields", f"account-{acme}", {"fields": {"x": 1}}, NOW, acme)
        assert len(conn.execute(select(outbox.c.id)).all()) == 1


def test_an_unknown_kind_is_refused(settings: Settings):
    with transaction(settings) as conn, pytest.raises(ValueError, match="unknown intent kind"):
        enqueue_intent(conn, "delete_account", "k", {}, NOW)


def test_a_claim_for_one_crm_takes_only_the_intents_bound_for_it(settings: Settings):
    with transaction(settings) as conn:
        salesforce, later, unlinked = account(conn), account(conn, None), account(conn, None)
        to_salesforce = enqueue_intent(conn, "set_fields", "a", {"fields": {}}, NOW, salesforce)
        to_hubspot = enqueue_intent(conn, "set_fields", "b", {"fields": {}}, NOW, later)
        nowhere = enqueue_intent(conn, "set_fields", "c", {"fields": {}}, NOW, unlinked)
        conn.execute(  # linked after its intent was queued: the claim follows the link now
            insert(account_links).values(
                kind="hubspot", external_id="9001", account_id=later, created_at=NOW
            )
        )
        assert [i.id for i in claim_pending(conn, NOW, crm="hubspot")] == [to_hubspot]
        assert claim_pending(conn, NOW, crm="hubspot") == []
        assert [i.id for i in claim_pending(conn, NOW, crm=("salesforce", NO_CRM))] == [
            to_salesforce,
            nowhere,
        ]


def test_writers_claim_pending_intents_under_a_lease(settings: Settings):
    with transaction(settings) as conn:
        acme = account(conn, salesforce_id=None)
        ids = [enqueue_intent(conn, "create_task", f"k-{i}", TASK, NOW, acme) for i in range(3)]
    with transaction(settings) as conn:
        claimed = claim_pending(conn, NOW, limit=2)
        assert [i.id for i in claimed] == ids[:2]
        assert claimed[0].payload == TASK and claimed[0].crm is None
        assert [i.id for i in claim_pending(conn, NOW)] == ids[2:]
        assert claim_pending(conn, NOW + timedelta(minutes=1)) == []
        # A writer that died: its claims are taken again after the lease.
        later = NOW + CLAIM_LEASE + timedelta(seconds=1)
        assert [i.id for i in claim_pending(conn, later)] == ids
        mark_sent(conn, ids[0], later)
        assert [i.id for i in claim_pending(conn, later + CLAIM_LEASE * 2)] == ids[1:]


def test_failures_are_retried_until_dead(settings: Settings):
    with transaction(settings) as conn:
        intent = enqueue_intent(conn, "create_task", "k", TASK, NOW)
        other = enqueue_intent(conn, "create_task", "k2", TASK, NOW)
        for attempt in range(1, MAX_ATTEMPTS):
            assert mark_failed(conn, intent, f"HTTP 503 try {attempt}", NOW) == "failed"
            assert [i.id for i in claim_pending(conn, NOW)][:1] == [intent]
        assert mark_failed(conn, intent, "HTTP 503 again", NOW) == "dead"
        assert mark_failed(conn, other, "INVALID_FIELD: Next_Step__c", NOW, permanent=True) == (
            "dead"
        )
        row = conn.execute(select(outbox).where(outbox.c.id == intent)).mappings().one()
        assert (row["status"], row["attempts"], row["last_error"]) == (
            "dead",
            MAX_ATTEMPTS,
            "HTTP 503 again",
        )
        assert claim_pending(conn, NOW + timedelta(days=1)) == []


def test_summary_counts_every_kind_and_status(settings: Settings):
    with transaction(settings) as conn:
        sent = enqueue_intent(conn, "create_task", "a", TASK, NOW)
        enqueue_intent(conn, "create_task", "b", TASK, NOW)
        enqueue_intent(conn, "set_fields", "account-1", {"fields": {"x": 1}}, NOW)
        mark_sent(conn, sent, NOW)
        counts = summary(conn)
        assert counts["create_task"] == {"pending": 1, "sent": 1, "failed": 0, "dead": 0}
        assert counts["set_fields"]["pending"] == 1
        assert counts["update_task"] == {"pending": 0, "sent": 0, "failed": 0, "dead": 0}
        lines = summary_lines(conn)
        assert lines[0].split() == ["kind", "pending", "sent", "failed", "dead"]
        assert lines[1].split() == ["set_fields", "1", "0", "0", "0"]


def test_last_fields_merges_the_accounts_set_fields_intents(settings: Settings):
    with transaction(settings) as conn:
        acme = account(conn)
        enqueue_intent(
            conn, "set_fields", "a", {"fields": {"band": "warm", "score": 50}}, NOW, acme
        )
        enqueue_intent(conn, "set_fields", "a", {"fields": {"score": 61}}, NOW, acme)
        assert last_fields(conn, acme) == {"band": "warm", "score": 61}
