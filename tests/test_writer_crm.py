"""The writers against the CRM sandbox over HTTPS, through the unchanged simple-salesforce and
hubspot-api-client: one suite both CRMs must pass (fields land, delta only, batches, per-record
errors, throttling, permanent errors to the dead-letter, tasks created once with their owner,
due date and account), then what is particular to each."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from expansion.crm_tables import crm_records
from expansion.db import transaction, utcnow
from expansion.models import account_subscriptions
from expansion.play_tables import outbox
from expansion.settings import Settings
from tests.play_support import Scored, assessment, signal
from tests.sandbox_support import sandbox_fixture
from tests.writer_support import (
    ACCOUNT_OBJECT,
    CRMS,
    NOW,
    READINESS_FIELD,
    TASK_OBJECT,
    api_requests,
    link_of,
    outbox_errors,
    queue_fields,
    queue_task,
    run_flush,
    seed_accounts,
    spec_errors,
    statuses,
    writer_settings,
)
from workers import play_step
from workers.outbox import enqueue_intent

crm_sandbox = sandbox_fixture()
OWNER = {"salesforce": "005000000000042AAA", "hubspot": None}
PROMPT_FIELD = {"salesforce": "Expansion_In_Product_Prompt__c", "hubspot": "es_in_product_prompt"}


def owner_id(sandbox, crm: str) -> str:  # type: ignore[no-untyped-def]
    seeded = sandbox.seed(
        {"owners": [{"key": "csm", "email": "csm@acme.test", "last_name": "Csm"}]}
    )
    return str(
        seeded["owners"]["csm"]["salesforce_user_id" if crm == "salesforce" else "hubspot_owner_id"]
    )


def values_of(sandbox, crm: str, obj: str) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {r["id"]: r["values"] for r in sandbox.records(crm, obj)}


@pytest.fixture(autouse=True)
def _hubspot_bodies_follow_the_spec(crm_sandbox):  # type: ignore[no-untyped-def]
    yield
    assert spec_errors(crm_sandbox) == []


@pytest.mark.parametrize("crm", CRMS)
def test_fields_land_and_a_second_flush_with_nothing_changed_makes_no_call(
    settings: Settings, crm_sandbox, crm: str
):
    config = writer_settings(settings, crm_sandbox, crm)
    ids = seed_accounts(config, crm_sandbox, crm, 3)
    queue_fields(
        config, ids, {"readiness_score": 71.0, "readiness_band": "hot", "health_band": "green"}
    )
    report, _ = run_flush(config)
    assert report.of(crm).sent == 3, outbox_errors(config)
    stored = values_of(crm_sandbox, crm, ACCOUNT_OBJECT[crm])
    for account_id in ids:
        record = stored[link_of(config, account_id)]
        assert record[READINESS_FIELD[crm]] in (71, 71.0, "71")
    calls = len(api_requests(crm_sandbox, crm))
    queue_fields(config, ids, {"readiness_score": 71, "readiness_band": "hot"})
    report, _ = run_flush(config)
    assert (report.of(crm).calls, report.of(crm).unchanged) == (0, 3)
    assert len(api_requests(crm_sandbox, crm)) == calls
    assert statuses(config) == {"sent": 6}


@pytest.mark.parametrize(
    ("crm", "sizes"), [("salesforce", [200, 200, 50]), ("hubspot", [100] * 4 + [50])]
)
def test_fields_go_in_full_batches(settings: Settings, crm_sandbox, crm: str, sizes: list[int]):
    config = writer_settings(settings, crm_sandbox, crm)
    ids = seed_accounts(config, crm_sandbox, crm, 450)
    queue_fields(config, ids, {"readiness_score": 50})
    report, _ = run_flush(config)
    writes = [
        r
        for r in api_requests(crm_sandbox, crm)
        if r["method"] in ("PATCH", "POST") and "token" not in r["path"]
    ]
    assert [r["records"] for r in writes] == sizes
    assert report.of(crm).sent == 450


@pytest.mark.parametrize("crm", CRMS)
def test_a_record_the_crm_refuses_is_dead_with_the_reason_and_the_others_land(
    settings: Settings, crm_sandbox, crm: str, tmp_path: Path
):
    config = writer_settings(settings, crm_sandbox, crm)
    ids = seed_accounts(config, crm_sandbox, crm, 3)
    queue_fields(config, ids, {"readiness_score": 60})
    gone = "001000000009999AAA" if crm == "salesforce" else "18000999999"
    with transaction(config) as conn:  # the third record was deleted in the CRM since
        conn.execute(update(outbox).where(outbox.c.account_id == ids[2]).values(crm_id=gone))
    report, _ = run_flush(config)
    errors = outbox_errors(config)
    assert [status for status, _ in errors] == ["sent", "sent", "dead"]
    assert errors[2][1].startswith(f"{crm}: ")
    assert (report.of(crm).sent, report.of(crm).dead) == (2, 1)
    # One call, its answer read record by record: Salesforce's 200 with per-record errors,
    # HubSpot's 207 with errors[].
    writes = [r["status"] for r in api_requests(crm_sandbox, crm) if r["method"] != "GET"]
    assert writes[-1:] == [200 if crm == "salesforce" else 207] and len(writes) <= 2


@pytest.mark.parametrize("crm", CRMS)
def test_an_unknown_field_is_dead_with_the_crms_reason(
    settings: Settings, crm_sandbox, crm: str, tmp_path: Path
):
    shutil.copytree(settings.mappings_dir, tmp_path / "mappings")
    path = tmp_path / "mappings" / f"{crm}.yaml"
    field = READINESS_FIELD[crm]
    path.write_text(path.read_text().replace(f"field: {field},", "field: Not_A_Field__c,"))
    config = writer_settings(
        dataclasses.replace(settings, mappings_dir=tmp_path / "mappings"), crm_sandbox, crm
    )
    ids = seed_accounts(config, crm_sandbox, crm, 2)
    queue_fields(config, ids, {"readiness_score": 60, "health_band": "green"})
    report, _ = run_flush(config)
    errors = outbox_errors(config)
    assert [status for status, _ in errors] == ["dead", "dead"]
    assert all("Not_A_Field__c" in error for _, error in errors), errors
    assert report.of(crm).dead == 2


@pytest.mark.parametrize("crm", CRMS)
def test_throttling_is_retried_honoring_retry_after(settings: Settings, crm_sandbox, crm: str):
    config = writer_settings(settings, crm_sandbox, crm)
    ids = seed_accounts(config, crm_sandbox, crm, 5)
    queue_fields(config, ids, {"readiness_score": 42})
    crm_sandbox.set_faults(**{crm: {"storm": 2, "retry_after_s": 1}})
    report, waits = run_flush(config)
    assert report.of(crm).sent == 5
    assert waits.count(1.0) >= 2  # Retry-After: 1, twice
    throttled = [r["status"] for r in api_requests(crm_sandbox, crm) if r["status"] in (403, 429)]
    assert len(throttled) == 2


@pytest.mark.parametrize("crm", CRMS)
def test_server_errors_are_retried_until_everything_lands(
    settings: Settings, crm_sandbox, crm: str
):
    config = writer_settings(settings, crm_sandbox, crm, crm_retry_attempts=10)
    ids = seed_accounts(config, crm_sandbox, crm, 30)
    owner = owner_id(crm_sandbox, crm)
    queue_fields(config, ids, {"readiness_score": 42})
    for n, account_id in enumerate(ids):
        queue_task(config, account_id, f"es-play-{n}-step-0", owner)
    crm_sandbox.set_faults(**{crm: {"error_rate": 0.6, "seed": 3}})
    report, _ = run_flush(config)
    assert statuses(config) == {"sent": 60}
    assert report.of(crm).retries > 0
    tasks = values_of(crm_sandbox, crm, TASK_OBJECT[crm])
    keys = [v["Expansion_Key__c" if crm == "salesforce" else "es_task_key"] for v in tasks.values()]
    assert sorted(keys) == sorted(f"es-play-{n}-step-0" for n in range(30))  # no duplicate


@pytest.mark.parametrize("crm", CRMS)
@pytest.mark.parametrize("lost", ["confirmation", "everything"])
def test_a_task_is_created_once_whatever_was_lost(
    settings: Settings, crm_sandbox, crm: str, lost: str
):
    config = writer_settings(settings, crm_sandbox, crm)
    [account_id] = seed_accounts(config, crm_sandbox, crm, 1)
    owner = owner_id(crm_sandbox, crm)
    queue_task(config, account_id, "es-play-7-step-0", owner)
    run_flush(config)
    # A writer that died after the CRM created the task, before its transaction committed:
    # the intent is pending again and our record of the create says "sending" (or nothing).
    with transaction(config) as conn:
        conn.execute(update(outbox).values(status="pending", claimed_at=None))
        if lost == "everything":
            conn.execute(delete(crm_records))
        else:
            conn.execute(update(crm_records).values(state="sending", crm_id=None))
    run_flush(config)
    assert statuses(config) == {"sent": 1}
    [task] = values_of(crm_sandbox, crm, TASK_OBJECT[crm]).items()
    task_id, values = task
    company = link_of(config, account_id)
    if crm == "salesforce":
        assert (values["OwnerId"], values["ActivityDate"], values["WhatId"]) == (
            owner,
            "2026-06-03",
            company,
        )
        assert (values["Status"], values["Priority"]) == ("Not Started", "High")
    else:
        assert values["hubspot_owner_id"] == owner
        assert values["hs_timestamp"].startswith("2026-06-03")
        assert (values["hs_task_status"], values["hs_task_priority"]) == ("NOT_STARTED", "HIGH")
        page = crm_sandbox.hubspot().crm.associations.v4.basic_api.get_page(
            "tasks", task_id, "companies"
        )
        assert [
            (str(a.to_object_id), [t.type_id for t in a.association_types]) for a in page.results
        ] == [(company, [192])]


@pytest.mark.parametrize("crm", CRMS)
def test_a_cancelled_step_updates_its_task(settings: Settings, crm_sandbox, crm: str):
    config = writer_settings(settings, crm_sandbox, crm)
    [account_id] = seed_accounts(config, crm_sandbox, crm, 1)
    queue_task(config, account_id, "es-play-8-step-0", owner_id(crm_sandbox, crm))
    with transaction(config) as conn:
        enqueue_intent(
            conn, "update_task", "es-play-8-step-0", {"status": "canceled"}, NOW, account_id
        )
    run_flush(config)
    [values] = values_of(crm_sandbox, crm, TASK_OBJECT[crm]).values()
    assert values["Status" if crm == "salesforce" else "hs_task_status"] == (
        "Deferred" if crm == "salesforce" else "DEFERRED"
    )
    assert statuses(config) == {"sent": 2}


@pytest.mark.parametrize("crm", CRMS)
def test_an_expired_session_is_refreshed_and_the_write_goes_on(
    settings: Settings, crm_sandbox, crm: str
):
    hubspot = crm_sandbox.info["hubspot"]
    oauth = {  # HubSpot: a public app's OAuth (a private app's token does not expire)
        "hubspot_access_token": None,
        "hubspot_oauth_client_id": hubspot["client_id"],
        "hubspot_client_secret": hubspot["client_secret"],
        "hubspot_refresh_token": hubspot["refresh_token"],
    }
    config = writer_settings(settings, crm_sandbox, crm, **(oauth if crm == "hubspot" else {}))
    ids = seed_accounts(config, crm_sandbox, crm, 2)
    queue_fields(config, ids, {"readiness_score": 33})
    run_flush(config)  # a session is open
    queue_fields(config, ids, {"readiness_score": 34})
    crm_sandbox.set_faults(**{crm: {"expire_session": 1}})
    before = api_requests(crm_sandbox, crm)[-1]["seq"]
    report, _ = run_flush(config)
    assert report.of(crm).sent == 2
    calls = [(r["method"], r["path"], r["status"]) for r in api_requests(crm_sandbox, crm, before)]
    assert calls[0][2] == 401
    token_path = "/services/oauth2/token" if crm == "salesforce" else "/oauth/v1/token"
    assert calls[1][:2] == ("POST", token_path)
    assert calls[-1][2] == 200


def test_refused_credentials_fail_the_writes_for_later_and_kill_none(
    settings: Settings, crm_sandbox
):
    config = writer_settings(settings, crm_sandbox, "salesforce", salesforce_client_secret="wrong")
    ids = seed_accounts(config, crm_sandbox, "salesforce", 2)
    queue_fields(config, ids, {"readiness_score": 9})
    report, _ = run_flush(config)
    assert (report.of("salesforce").failed, report.of("salesforce").dead) == (2, 0)
    for status, error in outbox_errors(config):
        assert status == "failed"
        assert "token request refused (400)" in error and "SALESFORCE_CLIENT_SECRET" in error


@pytest.mark.parametrize("flushed", [None, "salesforce"], ids=["every-crm", "salesforce-only"])
def test_writes_for_an_unconfigured_crm_or_an_unlinked_account_fail_with_the_reason(
    settings: Settings, crm_sandbox, flushed
):
    config = writer_settings(settings, crm_sandbox, "salesforce")
    [linked] = seed_accounts(config, crm_sandbox, "hubspot", 1)  # HubSpot is not configured
    queue_fields(config, [linked], {"readiness_score": 9})
    with transaction(config) as conn:
        enqueue_intent(conn, "set_fields", "account-none", {"fields": {}}, NOW, None)
    report, _ = run_flush(config, flushed)  # the only CRM's flush takes what no CRM takes
    assert report.calls == 0
    assert outbox_errors(config) == [
        ("failed", "hubspot is not configured (set HUBSPOT_ACCESS_TOKEN)"),
        ("failed", "the account is not linked to a Salesforce or HubSpot record"),
    ]


# --- Salesforce ------------------------------------------------------------------------------


def test_salesforce_records_locked_by_another_transaction_are_sent_again(
    settings: Settings, crm_sandbox
):
    config = writer_settings(settings, crm_sandbox, "salesforce", crm_retry_attempts=10)
    ids = seed_accounts(config, crm_sandbox, "salesforce", 40)
    queue_fields(config, ids, {"readiness_score": 77})
    crm_sandbox.set_faults(salesforce={"lock_error_rate": 0.3, "seed": 5})
    _, waits = run_flush(config)
    assert statuses(config) == {"sent": 40}
    updates = [r for r in api_requests(crm_sandbox, "salesforce") if r["method"] == "PATCH"]
    assert updates[0]["records"] == 40 and len(updates) > 1  # then only the locked ones
    assert all(r["records"] < 40 for r in updates[1:])
    assert waits  # backoff between the rounds


def test_salesforce_above_the_bulk_threshold_uses_one_bulk_api_2_job(
    settings: Settings, crm_sandbox, tmp_path: Path
):
    shutil.copytree(settings.mappings_dir, tmp_path / "mappings")
    path = tmp_path / "mappings" / "salesforce.yaml"
    path.write_text(path.read_text().replace("bulk_above: 2000", "bulk_above: 200"))
    config = writer_settings(
        dataclasses.replace(settings, mappings_dir=tmp_path / "mappings"), crm_sandbox, "salesforce"
    )
    ids = seed_accounts(config, crm_sandbox, "salesforce", 250)
    queue_fields(config, ids, {"readiness_score": 12, "health_band": "red"})
    with transaction(config) as conn:  # one record the org no longer has
        conn.execute(
            update(outbox).where(outbox.c.account_id == ids[0]).values(crm_id="001000000009999AAA")
        )
    report, _ = run_flush(config)
    paths = {r["path"] for r in api_requests(crm_sandbox, "salesforce")}
    assert any("/jobs/ingest" in p for p in paths)
    assert not any("/composite/sobjects" in p for p in paths)
    assert (report.of("salesforce").sent, report.of("salesforce").dead) == (249, 1)
    stored = values_of(crm_sandbox, "salesforce", "Account")
    assert {stored[link_of(config, i)]["Health_Band__c"] for i in ids[1:]} == {"red"}


def test_salesforce_daily_budget_pauses_writing_and_it_resumes(settings: Settings, crm_sandbox):
    config = writer_settings(settings, crm_sandbox, "salesforce", crm_quota_pause_seconds=1)
    ids = seed_accounts(config, crm_sandbox, "salesforce", 3)
    crm_sandbox.set_limits(salesforce_daily=10)  # 20% headroom: 8 calls are ours
    queue_fields(config, ids, {"readiness_score": 1})
    run_flush(config)  # token + 1 update; Sforce-Limit-Info says 2/10 (or so)
    for score in range(2, 12):
        queue_fields(config, ids[:1], {"readiness_score": score})
        report, _ = run_flush(config)
        if report.resume_after is not None:
            break
    assert report.resume_after == 1
    assert statuses(config).get("pending") == 1  # paused, not failed
    # Paused within our share: the org never had to refuse a call.
    assert {r["status"] for r in api_requests(crm_sandbox, "salesforce")} == {200}
    crm_sandbox.set_limits(salesforce_daily=1000)
    time.sleep(1)  # the pause
    report, _ = run_flush(config)
    assert report.resume_after is None
    assert "pending" not in statuses(config)


@pytest.mark.parametrize("crm", CRMS)
def test_the_usage_auto_expansion_prompt_reaches_the_crm_and_ends_with_the_play(
    settings: Settings, crm_sandbox, crm: str
):
    config = writer_settings(settings, crm_sandbox, crm)
    [account] = seed_accounts(config, crm_sandbox, crm, 1)
    with transaction(config) as conn:
        conn.execute(
            account_subscriptions.insert().values(
                account_id=account, tier="growth", seats=50, arr=20000.0, as_of=NOW, seat_changes=[]
            )
        )
    velocity = signal("usage_velocity_to_tier", 0.7, "API calls reach the scale tier in 21 days")
    scored = assessment(account_id=account, readiness=20.0)
    opened = play_step.decide_plays(config, [Scored(account, scored, (velocity,))], utcnow())
    assert len(opened.opened) == 1
    run_flush(config)
    record = link_of(config, account)
    assert values_of(crm_sandbox, crm, ACCOUNT_OBJECT[crm])[record][PROMPT_FIELD[crm]] == "scale"

    quiet = assessment(account_id=account, readiness=2.0)  # below the play's exit: it closes
    closed = play_step.decide_plays(config, [Scored(account, quiet, ())], utcnow())
    assert closed.closed == opened.opened
    report, _ = run_flush(config)
    assert not report.of(crm).failed and not report.of(crm).dead
    assert not values_of(crm_sandbox, crm, ACCOUNT_OBJECT[crm])[record][PROMPT_FIELD[crm]]
