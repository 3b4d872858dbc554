"""Shared by the writer tests: settings pointing the writers at a running CRM sandbox, accounts
seeded in the sandbox and linked locally, intents queued through the real outbox, and a flush
whose waits are recorded (they still happen)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select

from expansion.db import transaction
from expansion.demo.crm import writer_env as crm_writer_env
from expansion.models import account_links, accounts
from expansion.play_tables import outbox
from expansion.settings import Settings
from integration.writers.flush import FlushReport, flush
from integration.writers.mapping import Crm
from integration.writers.quota import KEY_PREFIX
from tests.sandbox_support import SandboxHandle
from workers.outbox import enqueue_intent
from workers.recompute import redis_client

NOW = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)
CRMS = ("salesforce", "hubspot")
ACCOUNT_OBJECT = {"salesforce": "Account", "hubspot": "companies"}
TASK_OBJECT = {"salesforce": "Task", "hubspot": "tasks"}
READINESS_FIELD = {"salesforce": "Expansion_Readiness_Score__c", "hubspot": "es_readiness_score"}


def writer_settings(settings: Settings, sandbox: SandboxHandle, crm: str, **extra: Any) -> Settings:
    """Only `crm` configured, on the sandbox; quick retries; the org's budget starts fresh."""
    client = redis_client(settings)
    for key in client.scan_iter(f"{KEY_PREFIX}:*"):
        client.delete(key)
    info = sandbox.info
    values: dict[str, Any] = {
        "crm_ca_bundle": sandbox.ca_path,
        "crm_retry_max_seconds": 5.0,
        "salesforce_calls_per_second": 1000.0,
        "hubspot_calls_per_second": 1000.0,
    }
    if crm == "salesforce":
        values |= {
            "salesforce_instance_url": info["salesforce"]["instance_url"],
            "salesforce_token_url": info["salesforce"]["token_url"],
            "salesforce_client_id": info["salesforce"]["client_id"],
            "salesforce_client_secret": info["salesforce"]["client_secret"],
        }
    else:
        values |= {
            "hubspot_access_token": info["hubspot"]["access_token"],
            "hubspot_api_host": info["hubspot"]["host"],
        }
    return dataclasses.replace(settings, **(values | extra))


def seed_accounts(settings: Settings, sandbox: SandboxHandle, crm: str, count: int) -> list[int]:
    """`count` accounts in the sandbox, each linked to a local account; the local ids."""
    seeded = sandbox.seed(
        {"accounts": [{"key": f"acct-{n}", "name": f"Account {n}"} for n in range(count)]}
    )["accounts"]
    ids = []
    with transaction(settings) as conn:
        for n in range(count):
            account_id = conn.execute(
                insert(accounts).values(name=f"Account {n}", created_at=NOW, updated_at=NOW)
            ).inserted_primary_key[0]
            external = seeded[f"acct-{n}"][f"{crm}_id"]
            conn.execute(
                insert(account_links).values(
                    kind=crm, external_id=external, account_id=account_id, created_at=NOW
                )
            )
            ids.append(int(account_id))
    return ids


def link_of(settings: Settings, account_id: int) -> str:
    with transaction(settings) as conn:
        return str(
            conn.execute(
                select(account_links.c.external_id).where(account_links.c.account_id == account_id)
            ).scalar_one()
        )


def queue_fields(settings: Settings, account_ids: Sequence[int], fields: dict[str, Any]) -> None:
    with transaction(settings) as conn:
        for account_id in account_ids:
            payload = {"fields": fields}
            enqueue_intent(conn, "set_fields", f"account-{account_id}", payload, NOW, account_id)


def queue_task(settings: Settings, account_id: int, key: str, owner: str, **extra: Any) -> None:
    payload = {
        "subject": "Send the utilization report",
        "body": "Seats at 96% of the licence; projected cap on 2026-07-01.",
        "owner": owner,
        "owner_is_queue": False,
        "due_date": "2026-06-03",
        "priority": "high",
        "kind": "task",
        **extra,
    }
    with transaction(settings) as conn:
        enqueue_intent(conn, "create_task", key, payload, NOW, account_id)


def run_flush(settings: Settings, crm: Crm | None = None) -> tuple[FlushReport, list[float]]:
    """A flush (of every CRM, or of `crm`) whose sleeps (backoff, Retry-After, budget waits)
    are recorded."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    return flush(settings, sleep=sleep, crm=crm), waits


def statuses(settings: Settings) -> dict[str, int]:
    with transaction(settings) as conn:
        rows = conn.execute(select(outbox.c.status)).scalars().all()
    return {status: rows.count(status) for status in set(rows)}


def outbox_errors(settings: Settings) -> list[tuple[str, str | None]]:
    with transaction(settings) as conn:
        rows = conn.execute(select(outbox.c.status, outbox.c.last_error).order_by(outbox.c.id))
        return [(status, error) for status, error in rows]


def api_requests(sandbox: SandboxHandle, crm: str, since: int = 0) -> list[dict[str, Any]]:
    """The sandbox's log of `crm` API calls (the admin calls are not in it)."""
    return sandbox.requests(crm, since)


def spec_errors(sandbox: SandboxHandle) -> list[str]:
    """What the HubSpot request bodies we sent break in ../shared/specs/hubspot (checked by the
    sandbox when the specs are present; nothing to check otherwise)."""
    return [
        error
        for r in sandbox.requests("hubspot")
        for error in r.get("spec_errors") or []
        if error.startswith("request")
    ]


def writer_env(env: dict[str, str], sandbox: SandboxHandle, *crms: str) -> dict[str, str]:
    """The environment a process gets to write to `crms` on the sandbox (as .env.example)."""
    return {**env, **crm_writer_env(sandbox.info, crms), "CRM_RETRY_MAX_SECONDS": "5"}
