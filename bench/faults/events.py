"""Signed Stripe events for a replay: unique ids, spread over customers whose metadata carries
crm_account_id, a mix of subscription updates (varying seats) and paid invoices."""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from typing import Any

from integration.salesforce_ids import id18
from integration.sources.stripe import signature_header
from tests.support import load_json_fixture

SUBSCRIPTION = "customer.subscription.updated.json"
INVOICE = "invoice.paid.json"


@dataclass(frozen=True)
class Event:
    event_id: str
    customer: str
    crm_account_id: str
    created: int
    seats: int | None  # None for an invoice
    body: bytes

    def headers(self, secret: str, now: int) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Stripe-Signature": signature_header(secret, self.body, now),
        }


def customer_ids(number: int) -> tuple[str, str]:
    """The Stripe customer id and its CRM (Salesforce) account id, in the 18-character form."""
    return f"cus_Fault{number:06d}", id18(f"001Fault{number:07d}")


def _subscription(
    template: dict[str, Any], customer: str, crm_id: str, seats: int
) -> dict[str, Any]:
    event = copy.deepcopy(template)
    obj = event["data"]["object"]
    obj["id"] = f"sub_{customer.removeprefix('cus_')}"
    obj["customer"] = customer
    obj["metadata"] = {"crm_account_id": crm_id}
    for item in obj["items"]["data"]:
        item["quantity"] = seats
        item["subscription"] = obj["id"]
    return event


def _invoice(template: dict[str, Any], customer: str, cents: int) -> dict[str, Any]:
    event = copy.deepcopy(template)
    obj = event["data"]["object"]
    obj["customer"] = customer
    obj["amount_paid"] = obj["amount_due"] = obj["total"] = cents
    return event


def make_events(count: int, customers: int, created_from: int, seed: int = 7) -> list[Event]:
    """`count` events in a shuffled (provider-like, unordered) sequence; every customer gets at
    least one subscription update, which links it to its CRM account, so none stays parked."""
    if count < customers:
        raise ValueError("need at least one event per customer")
    rng = random.Random(seed)
    templates = {name: load_json_fixture("stripe", name) for name in (SUBSCRIPTION, INVOICE)}
    owners = list(range(customers)) + [rng.randrange(customers) for _ in range(count - customers)]
    rng.shuffle(owners)
    last_index = {owner: index for index, owner in enumerate(owners)}
    linked: set[int] = set()
    events = []
    for index, owner in enumerate(owners):
        customer, crm_id = customer_ids(owner)
        needs_link = owner not in linked and last_index[owner] == index
        if needs_link or rng.random() < 0.6:
            linked.add(owner)
            seats = rng.randint(5, 500)
            event = _subscription(templates[SUBSCRIPTION], customer, crm_id, seats)
        else:
            seats = None
            event = _invoice(templates[INVOICE], customer, rng.randint(1, 5000) * 100)
        event_id = f"evt_Fault{index:07d}"
        event.update(id=event_id, created=created_from + index)
        body = json.dumps(event).encode()
        events.append(Event(event_id, customer, crm_id, created_from + index, seats, body))
    return events
