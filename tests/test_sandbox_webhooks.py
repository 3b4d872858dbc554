"""The sandbox's webhooks reach the real receiver: HubSpot v3-signed events naming our app as
the source of its own writes, Salesforce Outbound Messages naming the integration user; both are
echoes the sources drop. Completing a task on the sandbox's page comes back as the owner's
change. Deliveries run on a sender thread and retry."""

from __future__ import annotations

import json
import threading
from typing import Any

from sqlalchemy import select

from expansion.db import transaction
from expansion.models import inbox_events
from expansion.settings import Settings
from integration.canonical import CanonicalEvent, Ignored
from integration.sources import hubspot as hubspot_source
from integration.sources import salesforce as salesforce_source
from tests.sandbox_support import ANA, SandboxHandle, sandbox_fixture, serving
from tests.support import free_port, wait_for

crm_sandbox = sandbox_fixture()
TASK_TO_COMPANY = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}]


def inbox(settings: Settings, source: str) -> list[dict[str, Any]]:
    with transaction(settings) as conn:
        rows = conn.execute(
            select(inbox_events.c.event_type, inbox_events.c.payload)
            .where(inbox_events.c.source == source)
            .order_by(inbox_events.c.id)
        ).all()
    return [{"event_type": r.event_type, "payload": json.loads(r.payload)} for r in rows]


def normalized(source: Any, item: dict[str, Any], settings: Settings) -> Any:
    return source.SOURCE.normalize(item["payload"], item["event_type"], settings)


def test_our_writes_come_back_as_signed_echoes(crm_sandbox: SandboxHandle, app, settings):
    with serving(app) as receiver:
        crm_sandbox.set_webhooks(
            hubspot_url=f"{receiver}/webhooks/hubspot",
            salesforce_url=f"{receiver}/webhooks/salesforce",
        )
        crm_sandbox.hubspot().crm.companies.basic_api.create(
            {"properties": {"name": "Acme", "es_readiness_score": "82"}, "associations": []}
        )
        crm_sandbox.salesforce().Account.create({"Name": "Acme", "Health_Score__c": 71})
        deliveries = crm_sandbox.wait_webhooks()
    assert sorted((d["crm"], d["delivered"], d["statuses"]) for d in deliveries) == [
        ("hubspot", True, [200]),
        ("salesforce", True, [200]),
    ]

    events = inbox(settings, "hubspot")
    assert sorted(e["event_type"] for e in events) == [
        "company.creation",
        "company.propertyChange",
        "company.propertyChange",
    ]
    for event in events:
        assert (event["payload"]["changeSource"], event["payload"]["sourceId"]) == (
            "INTEGRATION",
            "4242",
        )
        assert isinstance(normalized(hubspot_source, event, settings), Ignored)
    [notification] = inbox(settings, "salesforce")
    fields = notification["payload"]["fields"]
    assert fields["LastModifiedById"] == "005000000000042AAA"
    assert (fields["Name"], fields["Health_Score__c"]) == ("Acme", "71.0")
    reason = normalized(salesforce_source, notification, settings)
    assert isinstance(reason, Ignored) and "integration user" in reason.reason


def test_completing_a_task_on_the_page_comes_back_as_the_owners_change(
    crm_sandbox: SandboxHandle, app, settings
):
    ids = crm_sandbox.seed(
        {
            "owners": [ANA],
            "accounts": [{"key": "acme", "name": "Acme", "owner": "ana"}],
        }
    )
    ana, acme = ids["owners"]["ana"], ids["accounts"]["acme"]
    hs_task = crm_sandbox.hubspot().crm.objects.tasks.basic_api.create(
        {
            "properties": {
                "hs_task_subject": "Expand seats at Acme",
                "es_task_key": "acme:1",
                "hubspot_owner_id": ana["hubspot_owner_id"],
            },
            "associations": [{"to": {"id": acme["hubspot_id"]}, "types": TASK_TO_COMPANY}],
        }
    )
    sf_task = crm_sandbox.salesforce().Task.create(
        {
            "Subject": "Call Acme about seats",
            "OwnerId": ana["salesforce_user_id"],
            "WhatId": acme["salesforce_id"],
            "Expansion_Key__c": "acme:1",
        }
    )
    page = crm_sandbox.raw("GET", "/_sandbox/tasks").text
    assert "Ana Lopez" in page
    assert "Expand seats at Acme" in page and "Call Acme about seats" in page

    with serving(app) as receiver:
        crm_sandbox.set_webhooks(
            hubspot_url=f"{receiver}/webhooks/hubspot",
            salesforce_url=f"{receiver}/webhooks/salesforce",
        )
        for crm, task_id in (("hubspot", hs_task.id), ("salesforce", sf_task["id"])):
            done = crm_sandbox.raw(
                "POST", f"/_sandbox/tasks/{crm}/{task_id}/complete", allow_redirects=False
            )
            assert done.status_code == 303
        crm_sandbox.wait_webhooks()

    assert (
        crm_sandbox.hubspot()
        .crm.objects.tasks.basic_api.get_by_id(hs_task.id, properties=["hs_task_status"])
        .properties["hs_task_status"]
        == "COMPLETED"
    )
    [completion] = [
        e
        for e in inbox(settings, "hubspot")
        if e["payload"].get("propertyName") == "hs_task_status"
    ]
    assert completion["payload"]["changeSource"] == "CRM_UI"
    assert completion["payload"]["sourceId"] == f"userId:{ana['hubspot_user_id']}"
    [event] = normalized(hubspot_source, completion, settings)
    assert isinstance(event, CanonicalEvent) and event.type == "task.changed"

    [notification] = inbox(settings, "salesforce")
    assert notification["payload"]["fields"]["LastModifiedById"] == ana["salesforce_user_id"]
    [event] = normalized(salesforce_source, notification, settings)
    assert event.type == "task.changed"
    assert (event.data["status"], event.data["expansion_key"]) == ("Completed", "acme:1")
    assert "done" in crm_sandbox.raw("GET", "/_sandbox/tasks").text


def test_undeliverable_webhooks_are_retried_then_given_up(crm_sandbox: SandboxHandle):
    nobody = f"http://127.0.0.1:{free_port()}/webhooks/hubspot"
    crm_sandbox.set_webhooks(hubspot_url=nobody, max_attempts=3, retry_base_s=0)
    crm_sandbox.hubspot().crm.companies.basic_api.create(
        {"properties": {"name": "Acme"}, "associations": []}
    )
    [delivery] = crm_sandbox.wait_webhooks()
    assert (delivery["attempts"], delivery["delivered"]) == (3, False)
    assert delivery["statuses"] == ["ConnectionError"] * 3
    attempts = [e["attemptNumber"] for e in json.loads(delivery["body"])]
    assert attempts == [0, 0]


def test_a_slow_receiver_never_holds_up_the_api_call(crm_sandbox: SandboxHandle):
    release, received = threading.Event(), []

    def receiver(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        received.append(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        release.wait(30)
        start_response("204 No Content", [])
        return []

    with serving(receiver) as url:
        crm_sandbox.set_webhooks(hubspot_url=f"{url}/hook", batch_window_s=0)
        crm_sandbox.hubspot().crm.companies.basic_api.create(
            {"properties": {"name": "Acme"}, "associations": []}
        )
        wait_for(lambda: bool(received), 10, "the delivery to start")
        assert crm_sandbox.webhooks()["pending"] == 1  # the write returned; the POST hangs
        release.set()
        [delivery] = crm_sandbox.wait_webhooks()
    assert (delivery["delivered"], delivery["statuses"]) == (True, [204])
