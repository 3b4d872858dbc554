"""Planning CRM writes from outbox intents: only declared fields, converted to the CRM's form,
merged per account, delta against the confirmed snapshot, tasks keyed by their external key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from expansion.db import transaction
from expansion.models import account_links, accounts
from expansion.settings import Settings
from integration.writers.mapping import FieldSpec, crm_value, outbound
from integration.writers.plan import (
    confirm_fields,
    load_records,
    load_snapshot,
    plan,
    record_state,
    targets,
)
from workers.outbox import claim_pending, enqueue_intent

NOW = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)
TASK = {
    "subject": "Send the utilization report",
    "body": "Seats at 96% of the licence.",
    "owner": "005000000000001AAA",
    "owner_is_queue": False,
    "due_date": "2026-06-03",
    "priority": "high",
}


def account(conn, kind: str = "salesforce", external_id: str = "001000000000001AAA") -> int:  # type: ignore[no-untyped-def]
    account_id = conn.execute(
        insert(accounts).values(name="Acme", created_at=NOW, updated_at=NOW)
    ).inserted_primary_key[0]
    conn.execute(
        insert(account_links).values(
            kind=kind, external_id=external_id, account_id=account_id, created_at=NOW
        )
    )
    return int(account_id)


def planned(settings: Settings, crm="salesforce"):  # type: ignore[no-untyped-def]
    with transaction(settings) as conn:
        intents = claim_pending(conn, NOW)
        where = targets(conn, intents)
        pairs = [(i, where[i.id][1]) for i in intents if where[i.id]]
        return plan(conn, crm, outbound(settings, crm), pairs, NOW), intents


def test_only_declared_fields_are_written_merged_per_account(settings: Settings):
    with transaction(settings) as conn:
        acme = account(conn)
        fields = {"readiness_score": 71.0, "readiness_band": "hot", "not_mapped": "x"}
        enqueue_intent(conn, "set_fields", f"account-{acme}", {"fields": fields}, NOW, acme)
        later = {"readiness_score": 74.4, "next_step_due": "2026-06-05"}
        enqueue_intent(conn, "set_fields", f"account-{acme}", {"fields": later}, NOW, acme)
    result, intents = planned(settings)
    [write] = result.accounts
    assert write.key == "001000000000001AAA"
    assert write.intent_ids == tuple(i.id for i in intents)
    assert write.fields == {
        "Expansion_Readiness_Score__c": 74.4,
        "Expansion_Readiness_Band__c": "hot",
        "Expansion_Next_Step_Due__c": "2026-06-05",
        "Expansion_Updated_At__c": "2026-06-01T14:00:00Z",
    }


def test_values_already_confirmed_are_not_sent_again(settings: Settings):
    with transaction(settings) as conn:
        acme = account(conn)
        confirm_fields(
            conn,
            "salesforce",
            "account",
            "001000000000001AAA",
            {"Expansion_Readiness_Score__c": 71, "Expansion_Readiness_Band__c": "hot"},
            NOW,
        )
        same = {"readiness_score": 71.0, "readiness_band": "hot"}
        enqueue_intent(conn, "set_fields", f"account-{acme}", {"fields": same}, NOW, acme)
    result, intents = planned(settings)
    assert result.accounts == []
    assert result.unchanged == [intents[0].id]


def test_only_the_changed_field_is_sent(settings: Settings):
    with transaction(settings) as conn:
        acme = account(conn)
        confirm_fields(
            conn, "salesforce", "account", "001000000000001AAA", {"Health_Score__c": 80}, NOW
        )
        values = {"health_score": 80, "health_band": "green"}
        enqueue_intent(conn, "set_fields", f"account-{acme}", {"fields": values}, NOW, acme)
    [write] = planned(settings)[0].accounts
    assert set(write.fields) == {"Health_Band__c", "Expansion_Updated_At__c"}


def test_a_task_is_created_with_every_mapped_field(settings: Settings):
    with transaction(settings) as conn:
        acme = account(conn, "hubspot", "18000000001")
        enqueue_intent(conn, "create_task", "es-play-1-step-0", TASK, NOW, acme)
    result, _ = planned(settings, "hubspot")
    [write] = result.creates
    assert (write.key, write.parent_id, write.create) == ("es-play-1-step-0", "18000000001", True)
    assert write.fields == {
        "hs_task_subject": "Send the utilization report",
        "hs_task_body": "Seats at 96% of the licence.",
        "hs_timestamp": "2026-06-03T00:00:00Z",
        "hubspot_owner_id": "005000000000001AAA",
        "hs_task_status": "NOT_STARTED",
        "hs_task_priority": "HIGH",
    }


def test_a_queue_owner_maps_to_its_user_or_is_left_out(settings: Settings):
    queued = {**TASK, "owner": "expansion-unassigned", "owner_is_queue": True}
    with transaction(settings) as conn:
        acme = account(conn)
        enqueue_intent(conn, "create_task", "es-play-1-step-0", queued, NOW, acme)
    [write] = planned(settings)[0].creates
    assert "OwnerId" not in write.fields


def test_a_task_already_created_is_not_created_again(settings: Settings):
    with transaction(settings) as conn:
        acme = account(conn)
        record_state(
            conn, "salesforce", ["es-play-1-step-0"], "created", NOW, {"es-play-1-step-0": "00T1"}
        )
        enqueue_intent(conn, "create_task", "es-play-1-step-0", TASK, NOW, acme)
    result, intents = planned(settings)
    assert result.creates == []
    assert result.unchanged == [intents[0].id]


def test_an_update_waits_for_its_task_and_an_unknown_status_is_refused(settings: Settings):
    with transaction(settings) as conn:
        acme = account(conn)
        enqueue_intent(conn, "update_task", "es-play-9-step-0", {"status": "canceled"}, NOW, acme)
        record_state(conn, "salesforce", ["es-play-2-step-0"], "created", NOW)
        enqueue_intent(conn, "update_task", "es-play-2-step-0", {"status": "lost"}, NOW, acme)
        enqueue_intent(conn, "update_task", "es-play-2-step-0", {"status": "canceled"}, NOW, acme)
    result, intents = planned(settings)
    waiting, unknown = result.rejected
    assert (waiting.intent_id, waiting.permanent) == (intents[0].id, False)
    assert "not created in salesforce yet" in waiting.reason
    assert (unknown.intent_id, unknown.permanent) == (intents[1].id, True)
    assert "status_values in the mapping has no value for 'lost'" in unknown.reason
    [update] = result.updates
    assert update.fields == {"Status": "Deferred"}


def test_an_unlinked_intent_finds_the_link_made_since(settings: Settings):
    with transaction(settings) as conn:
        acme = conn.execute(
            insert(accounts).values(name="Acme", created_at=NOW, updated_at=NOW)
        ).inserted_primary_key[0]
        enqueue_intent(conn, "set_fields", f"account-{acme}", {"fields": {}}, NOW, acme)
        conn.execute(
            insert(account_links).values(
                kind="hubspot", external_id="18000000009", account_id=acme, created_at=NOW
            )
        )
        [intent] = claim_pending(conn, NOW)
        assert intent.crm is None
        assert targets(conn, [intent]) == {intent.id: ("hubspot", "18000000009")}


def test_snapshot_and_records_round_trip(settings: Settings):
    with transaction(settings) as conn:
        confirm_fields(conn, "hubspot", "account", "1", {"a": "1", "b": ""}, NOW)
        confirm_fields(conn, "hubspot", "account", "1", {"a": "2"}, NOW)
        record_state(conn, "hubspot", ["k"], "sending", NOW)
        assert load_records(conn, "hubspot", ["k"]) == {"k": (None, "sending")}
        record_state(conn, "hubspot", ["k"], "created", NOW, {"k": "88000001"})
        assert load_snapshot(conn, "hubspot", "account", ["1"]) == {"1": {"a": "2", "b": ""}}
        assert load_records(conn, "hubspot", ["k"]) == {"k": ("88000001", "created")}


@pytest.mark.parametrize(
    ("crm", "kind", "value", "expected"),
    [
        ("salesforce", "number", 71.0, 71),
        ("hubspot", "number", 71.5, "71.5"),
        ("salesforce", "number", None, None),
        ("hubspot", "text", None, ""),
        ("salesforce", "date", "2026-06-03", "2026-06-03"),
        ("hubspot", "datetime", "2026-06-03", "2026-06-03T00:00:00Z"),
        (
            "salesforce",
            "datetime",
            datetime(2026, 6, 1, 16, 0, 5, 123, tzinfo=UTC),
            "2026-06-01T16:00:05Z",
        ),
        ("salesforce", "integer", "41.6", 42),
    ],
)
def test_values_take_the_crm_form(crm, kind, value, expected):  # type: ignore[no-untyped-def]
    assert crm_value(crm, FieldSpec(field="F", type=kind), value) == expected


def test_long_text_is_cut_to_the_field_length():
    spec = FieldSpec(field="F", type="textarea", max_length=10)
    assert crm_value("salesforce", spec, "x" * 30) == "xxxxxxx..."
