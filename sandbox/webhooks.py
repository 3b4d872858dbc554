"""Webhooks back to the receiver, sent by a background thread so an API call never waits:
HubSpot v3-signed event batches (changeSource/sourceId name who changed the record) and
Salesforce Outbound Messages (LastModifiedById), retried with backoff until acknowledged."""

from __future__ import annotations

import itertools
import json
import threading
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import requests

from integration.salesforce_ids import id18
from integration.sources.hubspot import sign_request
from integration.sources.salesforce import FieldValue, outbound_message
from sandbox.schema import HS_OBJECTS
from sandbox.store import Change

if TYPE_CHECKING:
    from sandbox.context import Context

HUBSPOT_MAX_EVENTS = 100
SALESFORCE_MAX_NOTIFICATIONS = 100
SALESFORCE_OBJECTS = ("Account", "Contact", "Opportunity", "Case", "Task")


@dataclass
class Delivery:
    crm: str
    url: str
    events: int
    body: bytes
    attempts: int = 0
    statuses: list[int | str] = field(default_factory=list)
    delivered: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "crm": self.crm,
            "url": self.url,
            "events": self.events,
            "attempts": self.attempts,
            "statuses": self.statuses,
            "delivered": self.delivered,
            "body": self.body.decode(),
        }


class WebhookSender:
    def __init__(self, context: Context) -> None:
        self.context = context
        self._changes: list[Change] = []
        self._busy = False
        self._cond = threading.Condition()
        self._stopped = False
        self.deliveries: list[Delivery] = []
        self._ids = itertools.count(int(time.time()))
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    # --- the feed (called by the store, under its lock: never block here) -----------------

    def on_change(self, change: Change) -> None:
        hooks = self.context.config.webhooks
        url = hooks.hubspot_url if change.crm == "hubspot" else hooks.salesforce_url
        if not url:
            return
        if change.crm == "salesforce" and change.object not in SALESFORCE_OBJECTS:
            return
        with self._cond:
            self._changes.append(change)
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._changes) + (1 if self._busy else 0)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=10)

    # --- the sender thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._changes and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                self._busy = True
            time.sleep(self.context.config.webhooks.batch_window_s)
            with self._cond:
                changes, self._changes = self._changes, []
            try:
                for delivery in self._build(changes):
                    self._deliver(delivery)
            finally:
                with self._cond:
                    self._busy = False

    def _build(self, changes: list[Change]) -> list[Delivery]:
        hooks = self.context.config.webhooks
        hubspot = [e for c in changes if c.crm == "hubspot" for e in self._hubspot_events(c)]
        deliveries = [
            Delivery("hubspot", hooks.hubspot_url or "", len(chunk), json.dumps(chunk).encode())
            for chunk in _chunks(hubspot, HUBSPOT_MAX_EVENTS)
        ]
        by_object: dict[str, list[Change]] = defaultdict(list)
        for change in changes:
            if change.crm == "salesforce":
                by_object[change.object].append(change)
        for sobject, items in by_object.items():
            for chunk in _chunks(items, SALESFORCE_MAX_NOTIFICATIONS):
                deliveries.append(
                    Delivery(
                        "salesforce",
                        hooks.salesforce_url or "",
                        len(chunk),
                        self._outbound(sobject, chunk),
                        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
                    )
                )
        return deliveries

    def _deliver(self, delivery: Delivery) -> None:
        hooks = self.context.config.webhooks
        self.deliveries.append(delivery)
        for attempt in range(hooks.max_attempts):
            delivery.attempts = attempt + 1
            body, headers = delivery.body, dict(delivery.headers)
            if delivery.crm == "hubspot":
                body = _with_attempt(body, attempt)
                secret = self.context.config.hubspot_client_secret
                headers = {
                    "Content-Type": "application/json",
                    **sign_request(body, secret, delivery.url),
                }
            try:
                response = requests.post(delivery.url, data=body, headers=headers, timeout=10)
                delivery.statuses.append(response.status_code)
                acknowledged = delivery.crm == "hubspot" or b"<Ack>true</Ack>" in response.content
                if response.ok and acknowledged:
                    delivery.delivered = True
                    return
            except requests.RequestException as exc:
                delivery.statuses.append(type(exc).__name__)
            if self._stopped:
                return
            time.sleep(hooks.retry_base_s * 2**attempt)

    # --- payloads -------------------------------------------------------------------------

    def _hubspot_events(self, change: Change) -> list[dict[str, Any]]:
        config = self.context.config
        obj = HS_OBJECTS[change.object]
        generic = change.object == "tasks"
        prefix = "object" if generic else obj.singular
        if change.actor == "app":
            source = {"changeSource": "INTEGRATION", "sourceId": str(config.hubspot_app_id)}
        else:
            source = {"changeSource": "CRM_UI", "sourceId": f"userId:{change.actor}"}
        occurred = int(change.at.timestamp() * 1000)

        def event(kind: str, **extra: Any) -> dict[str, Any]:
            subscription = f"{prefix}.{kind}"
            body: dict[str, Any] = {
                "eventId": next(self._ids),
                "subscriptionId": zlib.crc32(f"{subscription}:{obj.type_id}".encode()) % 10**7,
                "portalId": config.hubspot_portal_id,
                "appId": config.hubspot_app_id,
                "occurredAt": occurred,
                "subscriptionType": subscription,
                "attemptNumber": 0,
                "objectId": int(change.id),
                **extra,
                **source,
            }
            if generic:
                body["objectTypeId"] = obj.type_id
            return body

        events = [event("creation", changeFlag="CREATED")] if change.created else []
        events += [
            event("propertyChange", propertyName=name, propertyValue=str(value or ""))
            for name, value in change.changed.items()
        ]
        return events

    def _outbound(self, sobject: str, changes: list[Change]) -> bytes:
        config = self.context.config
        notifications = []
        for change in changes:
            fields: dict[str, FieldValue] = {
                name: _om_value(value) for name, value in change.values.items()
            }
            fields.update(
                Id=change.id,
                CreatedById=change.created_by,
                CreatedDate=change.created_at,
                LastModifiedById=change.actor,
                LastModifiedDate=change.at,
                SystemModstamp=change.at,
            )
            notification_id = id18(f"04l5s{next(self._ids) % 10**10:010d}")
            notifications.append((notification_id, sobject, fields))
        action_id = id18(f"04k5s{zlib.crc32(sobject.encode()) % 10**10:010d}")
        return outbound_message(
            config.salesforce_org_id,
            notifications,
            action_id=action_id,
            instance_url=self.context.base_url,
            api_version=config.salesforce_api_version,
        )


def _om_value(value: Any) -> FieldValue:
    """Stored REST values as an Outbound Message carries them (dateTimes in UTC with Z)."""
    if isinstance(value, str) and value.endswith("+0000") and "T" in value:
        return datetime.fromisoformat(value.replace("+0000", "+00:00"))
    return value  # type: ignore[no-any-return]


def _with_attempt(body: bytes, attempt: int) -> bytes:
    if attempt == 0:
        return body
    events = json.loads(body)
    for event in events:
        event["attemptNumber"] = attempt
    return json.dumps(events).encode()


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
