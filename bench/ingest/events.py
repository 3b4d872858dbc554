"""Signed Stripe events for the load: real-shaped fixtures with unique event ids, spread over a
set of customers whose CRM link is sent first, so that every event can be applied."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import cycle
from typing import Any

from integration.sources.stripe import signature_header
from tests.support import TEST_SECRETS, load_json_fixture

SECRET = TEST_SECRETS["STRIPE_WEBHOOK_SECRET"]
PATH = "/webhooks/stripe"
# The mix a billing source sends: mostly subscription changes and invoices.
MIX = (
    "customer.subscription.updated",
    "invoice.paid",
    "customer.subscription.updated",
    "invoice.payment_failed",
    "invoice.paid",
    "customer.updated",
)
# Placeholders substituted per event; rendering the JSON once per type keeps the pool fast.
ID, CREATED, CUSTOMER, CRM_ID = "@@id@@", "@@created@@", "@@customer@@", "@@crm@@"


@dataclass(frozen=True)
class SignedEvent:
    event_id: str
    body: bytes
    signature: str


class EventFactory:
    """Builds events numbered from 0; numbers never repeat within one factory."""

    def __init__(self, customers: int) -> None:
        self.customers = customers
        self.templates = {name: _template(name) for name in set(MIX)}
        self.next_number = 0

    def links(self, now: int) -> list[SignedEvent]:
        """One customer.updated per customer carrying its CRM account id."""
        return [self._event("customer.updated", c, now) for c in range(self.customers)]

    def batch(self, count: int, now: int) -> list[SignedEvent]:
        types = cycle(MIX)
        return [self._event(next(types), n % self.customers, now) for n in range(count)]

    def _event(self, event_type: str, customer: int, now: int) -> SignedEvent:
        event_id = f"evt_bench{self.next_number:010d}"
        self.next_number += 1
        body = (
            self.templates[event_type]
            .replace(ID, event_id)
            .replace(f'"{CREATED}"', str(now))
            .replace(CUSTOMER, f"cus_bench{customer:06d}")
            .replace(CRM_ID, f"001BENCH{customer:09d}")
            .encode()
        )
        return SignedEvent(event_id, body, signature_header(SECRET, body, now))


def _template(event_type: str) -> str:
    event = load_json_fixture("stripe", f"{event_type}.json")
    event["id"] = ID
    event["created"] = CREATED
    _set_customer(event["data"]["object"])
    # Stripe sends pretty-printed JSON; keep its size and shape.
    return json.dumps(event, indent=2)


def _set_customer(obj: dict[str, Any]) -> None:
    if obj.get("object") == "customer":
        obj["id"] = CUSTOMER
        obj["metadata"] = {"crm_account_id": CRM_ID}
    else:
        obj["customer"] = CUSTOMER
