"""The whole loop on one machine (SPEC §2, issue 5 item 4): signed HubSpot webhooks -> the
receiver -> a real Celery worker (ingest, scores, play) -> the writer -> the CRM sandbox, which
then shows the fields and the task with its owner and due date; the sandbox's webhooks about our
own writes come back and are dropped as echoes (no recompute, no loop); completing the task in
the sandbox creates the next step's task."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from expansion.db import transaction
from expansion.models import account_scores, canonical_events, inbox_events
from expansion.play_tables import outbox, play_steps
from tests.sandbox_support import SandboxHandle, sandbox_fixture, serving
from tests.support import start_worker, wait_for
from tests.test_recompute import company_change, post_hubspot
from tests.writer_support import spec_errors, writer_env
from workers import recompute

pytestmark = pytest.mark.slow
crm_sandbox = sandbox_fixture()
# Longer than the recompute debounce (0.2 s) plus the flush's wake delay (2 s).
QUIET_SECONDS = 3


def tasks(sandbox: SandboxHandle) -> list[dict]:  # type: ignore[type-arg]
    return sorted(sandbox.records("hubspot", "tasks"), key=lambda r: r["values"]["es_task_key"])


def company_fields(sandbox: SandboxHandle, company: str) -> dict:  # type: ignore[type-arg]
    return next(r["values"] for r in sandbox.records("hubspot", "companies") if r["id"] == company)


def _activity(settings, sandbox: SandboxHandle) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """Score history rows, outbox intents and HubSpot API writes so far."""
    with transaction(settings) as conn:
        scores = conn.execute(select(func.count()).select_from(account_scores)).scalar_one()
        intents = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
    writes = [r for r in sandbox.requests("hubspot") if r["method"] != "GET"]
    return scores, intents, len(writes)


def test_signed_events_end_as_fields_and_a_task_in_the_crm_and_echoes_are_dropped(
    app, env, settings, crm_sandbox: SandboxHandle, tmp_path
):
    company = str(company_change(0, 0)["objectId"])
    owner = crm_sandbox.seed(
        {
            "owners": [{"key": "csm", "email": "csm@acme.test", "last_name": "Csm"}],
            "accounts": [{"key": "acme", "name": "Acme", "hubspot_id": company}],
        }
    )["owners"]["csm"]["hubspot_owner_id"]
    broker = recompute.redis_client(settings)
    broker.delete("celery", *broker.keys(f"{recompute.KEY_PREFIX}:*"))
    worker_env = {**writer_env(env, crm_sandbox, "hubspot"), "RECOMPUTE_DEBOUNCE_SECONDS": "0.2"}
    worker = start_worker(worker_env, tmp_path / "worker.log")
    try:
        with serving(app) as receiver:
            crm_sandbox.set_webhooks(hubspot_url=f"{receiver}/webhooks/hubspot")
            client = app.test_client()
            post_hubspot(
                client,
                [
                    company_change(3816292001, 0, propertyName="csm_owner", propertyValue=owner),
                    company_change(
                        3816292002, 0, propertyName="csm_sentiment", propertyValue="at_risk"
                    ),
                ],
            )
            wait_for(lambda: len(tasks(crm_sandbox)) == 1, 60, "the play's task in HubSpot")
            [task] = tasks(crm_sandbox)
            company_values = {
                r["id"]: r["values"] for r in crm_sandbox.records("hubspot", "companies")
            }
            wait_for(
                lambda: (
                    {r["id"]: r["values"] for r in crm_sandbox.records("hubspot", "companies")}[
                        company
                    ].get("es_recommended_play")
                    == "Save play"
                ),
                30,
                "the account fields in HubSpot",
            )
            company_values = {
                r["id"]: r["values"] for r in crm_sandbox.records("hubspot", "companies")
            }
            assert company_values[company]["es_health_band"] in ("yellow", "red")
            with transaction(settings) as conn:
                due = conn.execute(select(play_steps.c.due_on)).scalar_one()
            assert task["values"]["hubspot_owner_id"] == owner
            assert task["values"]["hs_timestamp"].startswith(due.isoformat())
            assert task["values"]["es_task_key"].endswith("-step-0")

            # Our writes come back as webhooks: dropped as echoes, nothing recomputed.
            crm_sandbox.wait_webhooks()
            wait_for(lambda: _pending(settings) == 0, 30, "the echoes ingested")
            quiet = _activity(settings, crm_sandbox)
            time.sleep(QUIET_SECONDS)  # a loop would write again within this
            assert _activity(settings, crm_sandbox) == quiet
            with transaction(settings) as conn:
                echo = inbox_events.c.payload.contains('"sourceId":"4242"')
                statuses = conn.execute(select(inbox_events.c.status).where(echo)).scalars()
                assert set(statuses) == {"ignored"}
                from_echoes = select(canonical_events.c.id).join(
                    inbox_events, inbox_events.c.id == canonical_events.c.inbox_id
                )
                assert conn.execute(from_echoes.where(echo)).first() is None

            # Completing the task in the CRM creates the next step's task.
            done = crm_sandbox.raw(
                "POST", f"/_sandbox/tasks/hubspot/{task['id']}/complete", allow_redirects=False
            )
            assert done.status_code == 303
            wait_for(lambda: len(tasks(crm_sandbox)) == 2, 60, "the next step's task")
            crm_sandbox.wait_webhooks()
            wait_for(lambda: _pending(settings) == 0, 30, "the last webhooks ingested")
    finally:
        worker.stop()
    keys = [t["values"]["es_task_key"] for t in tasks(crm_sandbox)]
    assert keys[0].endswith("-step-0") and keys[1].endswith("-step-1")
    assert spec_errors(crm_sandbox) == []


def _pending(settings) -> int:  # type: ignore[no-untyped-def]
    with transaction(settings) as conn:
        return conn.execute(
            select(func.count()).select_from(inbox_events).where(inbox_events.c.status == "pending")
        ).scalar_one()
