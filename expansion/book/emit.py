"""Renders an account's events as the requests its providers would send: HubSpot webhook
batches, Salesforce Outbound Messages, Stripe and Chargebee events, Segment batches. Bodies are
fixed when the book is generated (historical times inside them); headers are signed when the
request is sent, with the configured secrets, using each source module's own signing code."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from expansion.book.model import PRICE_PER_SEAT, Account
from expansion.book.timeline import Event, UserPlan
from expansion.settings import Settings
from integration.sources.chargebee import authorization_header
from integration.sources.hubspot import sign_request
from integration.sources.salesforce import SECRET_HEADER, FieldValue, outbound_message
from integration.sources.segment import sign
from integration.sources.signing import sign_standard_webhook
from integration.sources.stripe import signature_header

SEGMENT_BATCH = 100  # messages per Segment batch request
HUBSPOT_BATCH = 100  # HubSpot sends at most 100 events per webhook request
PATHS = {
    "hubspot": "/webhooks/hubspot",
    "salesforce": "/webhooks/salesforce",
    "stripe": "/webhooks/stripe",
    "chargebee": "/webhooks/chargebee",
    "segment": "/webhooks/segment",
}
CONTENT_TYPES = {
    "salesforce": "text/xml; charset=utf-8",
    "stripe": "application/json; charset=utf-8",
}
HUBSPOT_CONTACT_BASE = 50_000_000_000
HUBSPOT_TICKET_BASE = 60_000_000_000


@dataclass(frozen=True)
class Request:
    """One HTTP request of the book: its body as sent, unsigned."""

    source: str
    body: bytes
    at: datetime  # when the provider sends it (its latest event)
    account: int  # the account's index in the book
    items: int  # inbox items it carries (events in a batch)

    @property
    def path(self) -> str:
        return PATHS[self.source]


def signed_headers(request: Request, settings: Settings, url: str, now: datetime) -> dict[str, str]:
    """The headers the provider sends with `request` to `url` at `now`."""
    headers = {"Content-Type": CONTENT_TYPES.get(request.source, "application/json")}
    stamp = int(now.timestamp())
    if request.source == "hubspot":
        secret = settings.hubspot_client_secret or ""
        headers |= sign_request(request.body, secret, url, timestamp_ms=int(now.timestamp() * 1000))
    elif request.source == "salesforce":
        headers["SOAPAction"] = '""'
        if settings.salesforce_shared_secret:
            headers[SECRET_HEADER] = settings.salesforce_shared_secret
    elif request.source == "stripe":
        headers["Stripe-Signature"] = signature_header(
            settings.stripe_webhook_secret or "", request.body, stamp
        )
    elif request.source == "chargebee":
        headers["Authorization"] = authorization_header(
            settings.chargebee_webhook_username or "", settings.chargebee_webhook_password or ""
        )
    elif settings.segment_shared_secret:
        headers |= sign(request.body, settings.segment_shared_secret)
    else:
        msg_id = "msg_" + hashlib.sha256(request.body).hexdigest()[:24]
        headers |= {
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign_standard_webhook(
                settings.standard_webhooks_secret or "", msg_id, stamp, request.body
            ),
        }
    return headers


def _json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class Renderer:
    """Turns one account's events into requests; ids are unique within the book and stable."""

    def __init__(self, account: Account, settings: Settings) -> None:
        self.account = account
        self.settings = settings
        self.counter = 0
        self.sf_account: dict[str, FieldValue] = {}
        self.sf_contacts: dict[int, dict[str, FieldValue]] = {}
        self.hubspot_contacts: set[int] = set()

    def next_id(self) -> int:
        self.counter += 1
        return self.counter

    def render(self, events: list[Event]) -> list[Request]:
        by_source: dict[str, list[tuple[datetime, Any]]] = defaultdict(list)
        for event in events:
            for source, item in self._items(event):
                by_source[source].append((event.at, item))
        requests: list[Request] = []
        for source, items in by_source.items():
            requests += list(BATCHERS[source](self, items))
        return requests

    def _items(self, event: Event) -> Iterator[tuple[str, Any]]:
        crm, billing = self.account.crm, self.account.billing
        kind = event.kind
        if kind in SEGMENT_KINDS:
            yield "segment", self._segment(event)
        elif kind in ("company", "contact", "ticket_opened", "ticket_closed"):
            render = getattr(self, f"_{crm}_{kind}")
            yield from ((crm, item) for item in render(event))
        elif kind == "subscription":
            yield billing, getattr(self, f"_{billing}_subscription")(event)
        elif kind == "invoice":
            yield billing, getattr(self, f"_{billing}_invoice")(event)

    # --- Segment -----------------------------------------------------------------------------

    def _segment(self, event: Event) -> dict[str, Any]:
        account, data = self.account, event.data
        group = {"groupId": account.product_account_id}
        stamp = _iso(event.at)
        message: dict[str, Any] = {
            "messageId": f"bk-{account.tag}-{self.next_id()}",
            "timestamp": stamp,
            "originalTimestamp": stamp,
            "sentAt": stamp,
            "context": group,
            "integrations": {},
        }
        user: UserPlan | None = data.get("user")
        if user is not None:
            message["userId"] = user.user_id
        else:
            message["anonymousId"] = f"svc-{account.product_account_id}"
        return message | SEGMENT_KINDS[event.kind](self, event)

    def _group(self, event: Event) -> dict[str, Any]:
        account = self.account
        traits: dict[str, Any] = {"name": account.name, "plan": account.tier}
        if account.crm == "salesforce":
            traits["crm_account_id"] = account.salesforce_id
        return {
            "type": "group",
            "userId": event.data["user_id"],
            "groupId": account.product_account_id,
            "traits": traits,
        }

    def _identify(self, event: Event) -> dict[str, Any]:
        user: UserPlan = event.data["user"]
        traits = {"email": user.email, "department": user.department, "title": user.title}
        return {"type": "identify", "traits": traits}

    def _track(self, name: str, **properties: Any) -> dict[str, Any]:
        return {"type": "track", "event": name, "properties": properties}

    def _feature(self, event: Event) -> dict[str, Any]:
        return self._track(
            "Feature Used", feature=event.data["feature"], category=event.data["category"]
        )

    def _teaser(self, event: Event) -> dict[str, Any]:
        return self._track(
            "Upgrade Teaser Clicked", feature=event.data["feature"], tier=event.data["tier"]
        )

    def _integration(self, event: Event) -> dict[str, Any]:
        return self._track(
            "Integration Connected", integration=event.data["name"], category=event.data["category"]
        )

    def _nps(self, event: Event) -> dict[str, Any]:
        return self._track("NPS Survey Responded", score=event.data["score"])

    def _api_calls(self, event: Event) -> dict[str, Any]:
        return self._track(
            "API Calls Reported", count=event.data["count"], period=event.data["day"].isoformat()
        )

    def _segment_batches(self, items: list[tuple[datetime, Any]]) -> Iterator[Request]:
        library = {"library": {"name": "@segment/analytics-node", "version": "2.2.1"}}
        for start in range(0, len(items), SEGMENT_BATCH):
            chunk = items[start : start + SEGMENT_BATCH]
            body = _json({"batch": [message for _, message in chunk], "context": library})
            yield Request("segment", body, chunk[-1][0], self.account.index, len(chunk))

    # --- HubSpot -----------------------------------------------------------------------------

    def _hubspot_event(
        self, event: Event, subscription: str, object_id: int, **fields: Any
    ) -> dict:
        portal = self.settings.hubspot_portal_ids[0] if self.settings.hubspot_portal_ids else "1"
        return {
            "eventId": int(self.account.tag) * 100_000 + self.next_id(),
            "subscriptionId": 2_410_000 + len(subscription),
            "portalId": int(portal),
            "appId": int(self.settings.hubspot_app_id or 0),
            "occurredAt": int(event.at.timestamp() * 1000),
            "subscriptionType": subscription,
            "attemptNumber": 0,
            "changeSource": "CRM_UI",
            "sourceId": f"userId:{self.account.csm.hubspot_id}",
            **({"objectId": object_id} if object_id else {}),
            **fields,
        }

    def _property(self, event: Event, obj: str, object_id: int, name: str, value: Any) -> dict:
        return self._hubspot_event(
            event, f"{obj}.propertyChange", object_id, propertyName=name, propertyValue=str(value)
        )

    def _association(self, event: Event, kind: str, from_id: int, to_id: int) -> dict:
        return self._hubspot_event(
            event,
            f"{kind.split('_')[0].lower()}.associationChange",
            0,
            associationType=kind,
            fromObjectId=from_id,
            toObjectId=to_id,
            associationRemoved=False,
            isPrimaryAssociation=True,
        )

    def _hubspot_company(self, event: Event) -> list[dict]:
        account, data = self.account, event.data
        company = int(account.hubspot_company_id)
        values: dict[str, Any] = {}
        if "sentiment" in data:  # the first sight of the company: every field
            values |= {
                "name": account.name,
                "domain": account.domain,
                "industry": account.industry,
                "hubspot_owner_id": account.ae.hubspot_id,
                "csm_owner": account.csm.hubspot_id,
                "csm_manager_owner": account.manager.hubspot_id,
                "vp_cs_owner": account.vp.hubspot_id,
                "csm_sentiment": data["sentiment"],
                f"{account.billing}_customer_id": getattr(
                    account, f"{account.billing}_customer_id"
                ),
                "product_account_id": account.product_account_id,
            }
        if data.get("employees"):
            values["numberofemployees"] = data["employees"]
        if data.get("funding"):
            values["total_money_raised"] = data["funding"]
        if data.get("contacted"):
            values["notes_last_contacted"] = int(event.at.timestamp() * 1000)
        return [self._property(event, "company", company, k, v) for k, v in values.items()]

    def _hubspot_contact(self, event: Event) -> list[dict]:
        account, data = self.account, event.data
        contact = account.hubspot_child_id(HUBSPOT_CONTACT_BASE, data["number"])
        events = []
        if "title" in data:
            events.append(self._property(event, "contact", contact, "jobtitle", data["title"]))
        if "champion" in data or "exec_sponsor" in data:
            role = "CHAMPION" if data.get("champion") else "DECISION_MAKER"
            events.append(self._property(event, "contact", contact, "hs_buying_role", role))
        if data.get("left_company"):
            events.append(self._property(event, "contact", contact, "left_company", "true"))
        if data.get("engaged"):
            stamp = int(event.at.timestamp() * 1000)
            events.append(self._property(event, "contact", contact, "notes_last_contacted", stamp))
        if contact not in self.hubspot_contacts:
            self.hubspot_contacts.add(contact)
            company = int(account.hubspot_company_id)
            events.append(self._association(event, "CONTACT_TO_COMPANY", contact, company))
        return events

    def _hubspot_ticket_opened(self, event: Event) -> list[dict]:
        data = event.data
        ticket = self.account.hubspot_child_id(HUBSPOT_TICKET_BASE, data["number"])
        company = int(self.account.hubspot_company_id)
        return [
            self._hubspot_event(event, "ticket.creation", ticket),
            self._property(event, "ticket", ticket, "subject", data["subject"]),
            self._property(event, "ticket", ticket, "content", data["text"]),
            self._property(event, "ticket", ticket, "hs_ticket_priority", data["priority"].upper()),
            self._property(event, "ticket", ticket, "hs_pipeline_stage", "1"),
            self._association(event, "TICKET_TO_COMPANY", ticket, company),
        ]

    def _hubspot_ticket_closed(self, event: Event) -> list[dict]:
        ticket = self.account.hubspot_child_id(HUBSPOT_TICKET_BASE, event.data["number"])
        return [self._property(event, "ticket", ticket, "hs_pipeline_stage", "4")]

    def _hubspot_batches(self, items: list[tuple[datetime, Any]]) -> Iterator[Request]:
        """HubSpot batches the events of a short period: here, those of one day."""
        by_day: dict[date, list[tuple[datetime, Any]]] = defaultdict(list)
        for at, item in items:
            by_day[at.date()].append((at, item))
        for day_items in by_day.values():
            for start in range(0, len(day_items), HUBSPOT_BATCH):
                chunk = day_items[start : start + HUBSPOT_BATCH]
                body = _json([item for _, item in chunk])
                yield Request("hubspot", body, chunk[-1][0], self.account.index, len(chunk))

    # --- Salesforce ----------------------------------------------------------------------------

    def _stamped(self, fields: dict[str, FieldValue], event: Event) -> dict[str, FieldValue]:
        fields.setdefault("CreatedDate", event.at)
        fields.setdefault("CreatedById", self.account.csm.salesforce_id)
        fields |= {
            "LastModifiedDate": event.at,
            "SystemModstamp": event.at,
            "LastModifiedById": self.account.csm.salesforce_id,
        }
        return dict(fields)

    def _salesforce_company(self, event: Event) -> list[tuple[str, dict[str, FieldValue]]]:
        account, data = self.account, event.data
        fields = self.sf_account
        if not fields:
            fields |= {
                "Id": account.salesforce_id,
                "Name": account.name,
                "Industry": account.industry,
                "Type": "Customer - Direct",
                "OwnerId": account.ae.salesforce_id,
                "CSM__c": account.csm.salesforce_id,
                "CSM_Manager__c": account.manager.salesforce_id,
                "VP_CS__c": account.vp.salesforce_id,
                f"{account.billing.capitalize()}_Customer_Id__c": getattr(
                    account, f"{account.billing}_customer_id"
                ),
                "Product_Account_Id__c": account.product_account_id,
            }
        if not data.get("employees") and "sentiment" not in data:
            return []  # nothing this org's Outbound Message carries changed
        if data.get("employees"):
            fields["NumberOfEmployees"] = data["employees"]
        return [("Account", self._stamped(fields, event))]

    def _salesforce_contact(self, event: Event) -> list[tuple[str, dict[str, FieldValue]]]:
        account, data = self.account, event.data
        number = data["number"]
        fields = self.sf_contacts.setdefault(
            number,
            {
                "Id": account.salesforce_child_id("003", number),
                "AccountId": account.salesforce_id,
                "FirstName": ("Maya", "Omar", "Lena")[number - 1],
                "LastName": account.name.split()[0],
                "Email": f"contact{number}@{account.domain}",
            },
        )
        if "title" in data:
            fields["Title"] = data["title"]
        if data.get("champion"):
            fields |= {"Buying_Role__c": "Champion", "Champion__c": True}
        if data.get("exec_sponsor"):
            fields["Buying_Role__c"] = "Executive Sponsor"
        if data.get("left_company"):
            fields["Left_Company__c"] = True
        if data.get("engaged") and "title" not in data:
            return []  # engagement is not a field of this org's Contact message
        return [("Contact", self._stamped(fields, event))]

    def _case_fields(self, event: Event, closed: bool) -> dict[str, FieldValue]:
        data, account = event.data, self.account
        return {
            "Id": account.salesforce_child_id("500", data["number"]),
            "AccountId": account.salesforce_id,
            "CaseNumber": f"{account.index:05d}{data['number']:03d}",
            "Subject": data["subject"],
            "Description": data["text"],
            "Priority": data["priority"],
            "Status": "Closed" if closed else "New",
            "IsClosed": closed,
            "Origin": "Web",
        }

    def _salesforce_ticket_opened(self, event: Event) -> list[tuple[str, dict[str, FieldValue]]]:
        fields = self._case_fields(event, closed=False) | {"CreatedDate": event.at}
        return [("Case", self._stamped(fields, event))]

    def _salesforce_ticket_closed(self, event: Event) -> list[tuple[str, dict[str, FieldValue]]]:
        fields = self._case_fields(event, closed=True) | {"CSAT__c": event.data["csat"]}
        fields["CreatedDate"] = event.at - timedelta(days=2)
        return [("Case", self._stamped(fields, event))]

    def _salesforce_batches(self, items: list[tuple[datetime, Any]]) -> Iterator[Request]:
        """One Outbound Message per notification, as a workflow rule sends a record change."""
        org = self.settings.salesforce_org_id or ""
        for at, (sobject, fields) in items:
            notification = f"04lBk{self.account.tag}{self.next_id():05d}"
            body = outbound_message(org, [(notification, sobject, fields)])
            yield Request("salesforce", body, at, self.account.index, 1)

    # --- Stripe --------------------------------------------------------------------------------

    def _stripe_event(self, event: Event, event_type: str, obj: dict[str, Any]) -> dict:
        tag = self.account.tag
        return {
            "id": f"evt_1Bk{tag}{self.next_id():04d}",
            "object": "event",
            "api_version": "2024-06-20",
            "created": _epoch(event.at),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }

    def _metadata(self) -> dict[str, str]:
        if self.account.crm == "salesforce":
            return {"crm_account_id": self.account.salesforce_id}
        return {}

    def _stripe_subscription(self, event: Event) -> dict:
        account = self.account
        end = _midnight(account.renewal_on)
        start = end - timedelta(days=365)
        subscription_id = f"sub_1Bk{account.tag}"
        item = {
            "id": f"si_Bk{account.tag}",
            "object": "subscription_item",
            "current_period_start": _epoch(start),
            "current_period_end": _epoch(end),
            "price": {
                "id": f"price_Bk{account.tier.capitalize()}Annual",
                "object": "price",
                "active": True,
                "currency": "usd",
                "lookup_key": f"{account.tier}_annual",
                "metadata": {"seats": "true"},
                "product": f"prod_Bk{account.tier.capitalize()}",
                "recurring": {"interval": "year", "interval_count": 1, "usage_type": "licensed"},
                "type": "recurring",
                "unit_amount": PRICE_PER_SEAT[account.tier] * 100,
            },
            "quantity": account.seats,
            "subscription": subscription_id,
        }
        obj = {
            "id": subscription_id,
            "object": "subscription",
            "cancel_at_period_end": False,
            "collection_method": "charge_automatically",
            "created": _epoch(start),
            "currency": "usd",
            "customer": account.stripe_customer_id,
            "items": {"object": "list", "data": [item], "has_more": False},
            "livemode": False,
            "metadata": self._metadata(),
            "start_date": _epoch(start),
            "status": "active",
        }
        return self._stripe_event(event, "customer.subscription.updated", obj)

    def _stripe_invoice(self, event: Event) -> dict:
        paid, cents = event.data["paid"], event.data["amount"] * 100
        obj = {
            "id": f"in_1Bk{self.account.tag}{self.counter + 1:04d}",
            "object": "invoice",
            "amount_due": cents,
            "amount_paid": cents if paid else 0,
            "amount_remaining": 0 if paid else cents,
            "attempt_count": 1 if paid else 3,
            "billing_reason": "subscription_cycle" if paid else "subscription_update",
            "created": _epoch(event.at),
            "currency": "usd",
            "customer": self.account.stripe_customer_id,
            "livemode": False,
            "status": "paid" if paid else "open",
        }
        kind = "invoice.paid" if paid else "invoice.payment_failed"
        return self._stripe_event(event, kind, obj)

    def _single(self, source: str, items: list[tuple[datetime, Any]]) -> Iterator[Request]:
        for at, item in items:
            yield Request(source, _json(item), at, self.account.index, 1)

    # --- Chargebee -----------------------------------------------------------------------------

    def _chargebee_customer(self) -> dict[str, Any]:
        account = self.account
        customer = {
            "id": account.chargebee_customer_id,
            "first_name": "Accounts",
            "last_name": "Payable",
            "email": f"ap@{account.domain}",
            "company": account.name,
            "auto_collection": "on",
            "deleted": False,
            "object": "customer",
            "preferred_currency_code": "USD",
        }
        if account.crm == "salesforce":
            customer["cf_crm_account_id"] = account.salesforce_id
        return customer

    def _chargebee_subscription_object(self) -> dict[str, Any]:
        account = self.account
        end = _midnight(account.renewal_on)
        unit = PRICE_PER_SEAT[account.tier] * 100
        return {
            "id": f"AzBkSub{account.tag}",
            "customer_id": account.chargebee_customer_id,
            "billing_period": 1,
            "billing_period_unit": "year",
            "status": "active",
            "current_term_start": _epoch(end - timedelta(days=365)),
            "current_term_end": _epoch(end),
            "deleted": False,
            "object": "subscription",
            "currency_code": "USD",
            "subscription_items": [
                {
                    "item_price_id": f"{account.tier}-USD-Yearly",
                    "item_type": "plan",
                    "quantity": account.seats,
                    "unit_price": unit,
                    "amount": unit * account.seats,
                    "object": "subscription_item",
                }
            ],
        }

    def _chargebee_event(self, event: Event, event_type: str, content: dict) -> dict:
        return {
            "id": f"ev_AzBk{self.account.tag}{self.next_id():04d}",
            "occurred_at": _epoch(event.at),
            "source": "scheduled_job",
            "object": "event",
            "api_version": "v2",
            "content": content,
            "event_type": event_type,
            "webhook_status": "scheduled",
        }

    def _chargebee_subscription(self, event: Event) -> dict:
        content = {
            "subscription": self._chargebee_subscription_object(),
            "customer": self._chargebee_customer(),
        }
        return self._chargebee_event(event, "subscription_changed", content)

    def _chargebee_invoice(self, event: Event) -> dict:
        account, paid = self.account, event.data["paid"]
        cents = event.data["amount"] * 100
        invoice_id = f"BK-{account.tag}-{self.counter + 1}"
        content = {
            "transaction": {
                "id": f"txn_AzBk{account.tag}{self.counter + 1}",
                "customer_id": account.chargebee_customer_id,
                "subscription_id": f"AzBkSub{account.tag}",
                "type": "payment",
                "date": _epoch(event.at),
                "amount": cents,
                "status": "success" if paid else "failure",
                "object": "transaction",
                "currency_code": "USD",
            },
            "invoice": {
                "id": invoice_id,
                "customer_id": account.chargebee_customer_id,
                "subscription_id": f"AzBkSub{account.tag}",
                "recurring": True,
                "status": "paid" if paid else "payment_due",
                "date": _epoch(event.at),
                "total": cents,
                "amount_paid": cents if paid else 0,
                "amount_due": 0 if paid else cents,
                "object": "invoice",
                "currency_code": "USD",
            },
            "customer": self._chargebee_customer(),
        }
        kind = "payment_succeeded" if paid else "payment_failed"
        return self._chargebee_event(event, kind, content)


SEGMENT_KINDS = {
    "group": Renderer._group,
    "identify": Renderer._identify,
    "feature": Renderer._feature,
    "teaser": Renderer._teaser,
    "integration": Renderer._integration,
    "nps": Renderer._nps,
    "api_calls": Renderer._api_calls,
}
BATCHERS = {
    "segment": Renderer._segment_batches,
    "hubspot": Renderer._hubspot_batches,
    "salesforce": Renderer._salesforce_batches,
    "stripe": lambda self, items: self._single("stripe", items),
    "chargebee": lambda self, items: self._single("chargebee", items),
}


def render(account: Account, events: list[Event], settings: Settings) -> list[Request]:
    return Renderer(account, settings).render(events)
