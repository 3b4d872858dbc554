"""Sample webhooks for the demo: one fictional customer seen from every source, each request
shaped and signed the way that provider sends it, using the source module's own signing or
rendering function. Ids are unique per run, so a re-run stores new events."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from expansion.settings import Settings
from integration.salesforce_ids import id18
from integration.sources.chargebee import authorization_header
from integration.sources.hubspot import sign_request
from integration.sources.salesforce import SECRET_HEADER, outbound_message
from integration.sources.segment import sign
from integration.sources.signing import sign_standard_webhook
from integration.sources.stripe import signature_header


@dataclass(frozen=True)
class DemoAccount:
    """Northwind Robotics, known by a different id in each system (ids unique to this run)."""

    run: str
    name: str = "Northwind Robotics"
    domain: str = "northwind-robotics.example"

    @classmethod
    def new(cls) -> DemoAccount:
        return cls(run=secrets.token_hex(4).upper())

    def salesforce_id(self, prefix: str, tag: str = "") -> str:
        return id18(f"{prefix}Dm{self.run}{tag:0>2}"[:15])

    @property
    def account_id(self) -> str:
        return self.salesforce_id("001", "AC")

    @property
    def hubspot_company_id(self) -> str:
        return str(int(self.run, 16) + 10_000_000_000)

    @property
    def stripe_customer_id(self) -> str:
        return f"cus_Dm{self.run}NWR"

    @property
    def chargebee_customer_id(self) -> str:
        return f"AzDm{self.run}Nwr"

    @property
    def product_account_id(self) -> str:
        return f"org_{self.run.lower()}"

    def unique(self, prefix: str, label: str) -> str:
        return f"{prefix}{self.run}{label}"


@dataclass(frozen=True)
class Delivery:
    """One HTTP request as the provider would send it."""

    source: str
    description: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Context:
    account: DemoAccount
    settings: Settings
    base_url: str  # where the demo reaches the web process
    now: datetime

    def ago(self, **delta: float) -> datetime:
        return self.now - timedelta(**delta)

    def signed_url(self, path: str) -> str:
        """The URL the receiver sees the request addressed to (what HubSpot signs)."""
        return (self.settings.public_base_url or self.base_url) + path


def _json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


# --- Stripe ----------------------------------------------------------------------------------


def _stripe_event(ctx: Context, label: str, event_type: str, at: datetime, obj: dict) -> bytes:
    return _json(
        {
            "id": ctx.account.unique("evt_1Dm", label),
            "object": "event",
            "api_version": "2024-06-20",
            "created": _epoch(at),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": ctx.account.unique("req_Dm", label), "idempotency_key": None},
            "type": event_type,
        }
    )


def _stripe_customer(ctx: Context) -> dict[str, Any]:
    account = ctx.account
    return {
        "id": account.stripe_customer_id,
        "object": "customer",
        "created": _epoch(ctx.ago(days=400)),
        "currency": "usd",
        "delinquent": False,
        "email": f"billing@{account.domain}",
        "livemode": False,
        "metadata": {"crm_account_id": account.account_id},
        "name": account.name,
    }


def _stripe_subscription(ctx: Context, seats: int) -> dict[str, Any]:
    account = ctx.account
    subscription_id = account.unique("sub_1Dm", "Growth")
    period_end = _epoch(ctx.now + timedelta(days=150))
    return {
        "id": subscription_id,
        "object": "subscription",
        "cancel_at_period_end": False,
        "collection_method": "charge_automatically",
        "created": _epoch(ctx.ago(days=215)),
        "currency": "usd",
        "customer": account.stripe_customer_id,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": account.unique("si_Dm", "Seats"),
                    "object": "subscription_item",
                    "current_period_end": period_end,
                    "current_period_start": _epoch(ctx.ago(days=215)),
                    "metadata": {},
                    "price": {
                        "id": "price_1DmGrowthAnnual",
                        "object": "price",
                        "active": True,
                        "currency": "usd",
                        "lookup_key": "growth_annual",
                        "metadata": {"seats": "true"},
                        "product": "prod_DmGrowth",
                        "recurring": {
                            "interval": "year",
                            "interval_count": 1,
                            "usage_type": "licensed",
                        },
                        "type": "recurring",
                        "unit_amount": 60000,
                    },
                    "quantity": seats,
                    "subscription": subscription_id,
                }
            ],
            "has_more": False,
        },
        "livemode": False,
        "metadata": {"crm_account_id": account.account_id},
        "start_date": _epoch(ctx.ago(days=215)),
        "status": "active",
    }


def _stripe_invoice(ctx: Context) -> dict[str, Any]:
    return {
        "id": ctx.account.unique("in_1Dm", "Seats"),
        "object": "invoice",
        "amount_due": 600000,
        "amount_paid": 600000,
        "amount_remaining": 0,
        "attempt_count": 1,
        "billing_reason": "subscription_update",
        "created": _epoch(ctx.ago(minutes=9)),
        "currency": "usd",
        "customer": ctx.account.stripe_customer_id,
        "livemode": False,
        "status": "paid",
    }


def stripe(ctx: Context) -> list[Delivery]:
    bodies = [
        ("customer.updated", "Cust", ctx.ago(days=2), _stripe_customer(ctx)),
        (
            "customer.subscription.updated",
            "Sub",
            ctx.ago(minutes=10),
            _stripe_subscription(ctx, 60),
        ),
        ("invoice.paid", "Inv", ctx.ago(minutes=9), _stripe_invoice(ctx)),
    ]
    secret = ctx.settings.stripe_webhook_secret or ""
    deliveries = []
    for event_type, label, at, obj in bodies:
        body = _stripe_event(ctx, label, event_type, at, obj)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": signature_header(secret, body, _epoch(ctx.now)),
        }
        deliveries.append(Delivery("stripe", event_type, "/webhooks/stripe", body, headers))
    return deliveries


# --- Chargebee (the adjacent Work Ops product is billed there) -------------------------------


def _chargebee_customer(ctx: Context) -> dict[str, Any]:
    account = ctx.account
    return {
        "id": account.chargebee_customer_id,
        "first_name": "Grace",
        "last_name": "Hopper",
        "email": f"ap@{account.domain}",
        "company": account.name,
        "auto_collection": "on",
        "net_term_days": 0,
        "created_at": _epoch(ctx.ago(days=90)),
        "updated_at": _epoch(ctx.ago(days=90)),
        "deleted": False,
        "object": "customer",
        "card_status": "valid",
        "preferred_currency_code": "USD",
        "cf_crm_account_id": account.account_id,
    }


def _chargebee_subscription(ctx: Context) -> dict[str, Any]:
    account = ctx.account
    return {
        "id": account.unique("AzDmSub", "Ops"),
        "customer_id": account.chargebee_customer_id,
        "billing_period": 1,
        "billing_period_unit": "month",
        "status": "active",
        "current_term_start": _epoch(ctx.ago(days=20)),
        "current_term_end": _epoch(ctx.now + timedelta(days=10)),
        "created_at": _epoch(ctx.ago(days=90)),
        "started_at": _epoch(ctx.ago(days=90)),
        "activated_at": _epoch(ctx.ago(days=90)),
        "updated_at": _epoch(ctx.ago(minutes=8)),
        "deleted": False,
        "object": "subscription",
        "currency_code": "USD",
        "subscription_items": [
            {
                "item_price_id": "growth-USD-Monthly",
                "item_type": "plan",
                "quantity": 12,
                "unit_price": 4000,
                "amount": 48000,
                "free_quantity": 0,
                "object": "subscription_item",
            }
        ],
        "due_invoices_count": 0,
        "mrr": 48000,
    }


def _chargebee_payment(ctx: Context) -> dict[str, Any]:
    account = ctx.account
    invoice_id = account.unique("DM-", "")
    paid_at = _epoch(ctx.ago(minutes=7))
    return {
        "transaction": {
            "id": account.unique("txn_AzDm", ""),
            "customer_id": account.chargebee_customer_id,
            "subscription_id": account.unique("AzDmSub", "Ops"),
            "payment_method": "card",
            "gateway": "chargebee",
            "type": "payment",
            "date": paid_at,
            "amount": 48000,
            "status": "success",
            "object": "transaction",
            "currency_code": "USD",
        },
        "invoice": {
            "id": invoice_id,
            "customer_id": account.chargebee_customer_id,
            "subscription_id": account.unique("AzDmSub", "Ops"),
            "recurring": True,
            "status": "paid",
            "date": paid_at,
            "total": 48000,
            "amount_paid": 48000,
            "amount_due": 0,
            "paid_at": paid_at,
            "object": "invoice",
            "first_invoice": False,
            "currency_code": "USD",
        },
        "customer": _chargebee_customer(ctx),
        "subscription": _chargebee_subscription(ctx),
    }


def chargebee(ctx: Context) -> list[Delivery]:
    settings = ctx.settings
    auth = authorization_header(
        settings.chargebee_webhook_username or "", settings.chargebee_webhook_password or ""
    )
    events = [
        ("customer_changed", ctx.ago(minutes=8), {"customer": _chargebee_customer(ctx)}),
        ("payment_succeeded", ctx.ago(minutes=7), _chargebee_payment(ctx)),
    ]
    deliveries = []
    for event_type, at, content in events:
        body = _json(
            {
                "id": ctx.account.unique("ev_AzDm", event_type[:4]),
                "occurred_at": _epoch(at),
                "source": "admin_console" if event_type.startswith("customer") else "scheduled_job",
                "object": "event",
                "api_version": "v2",
                "content": content,
                "event_type": event_type,
                "webhook_status": "scheduled",
            }
        )
        headers = {"Content-Type": "application/json", "Authorization": auth}
        deliveries.append(Delivery("chargebee", event_type, "/webhooks/chargebee", body, headers))
    return deliveries


# --- Segment (product telemetry: the product knows its own account id, not the CRM's) --------


def _segment_message(ctx: Context, kind: str, label: str, at: datetime, **fields: Any) -> dict:
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "type": kind,
        "messageId": ctx.account.unique("node-dm-", f"-{label}").lower(),
        "userId": fields.pop("user_id"),
        "originalTimestamp": stamp,
        "sentAt": stamp,
        "timestamp": stamp,
        "integrations": {},
        **fields,
    }


def _segment_tracks(ctx: Context, admin: str, analyst: str) -> list[dict[str, Any]]:
    group = {"groupId": ctx.account.product_account_id}
    calls = [
        (admin, "User Invited", {"invitee_role": "editor"}, 40),
        (admin, "User Invited", {"invitee_role": "editor"}, 39),
        (
            analyst,
            "Feature Used",
            {"feature": "scheduled_exports", "tier": "growth", "category": "reporting"},
            30,
        ),
        (analyst, "Upgrade Teaser Clicked", {"feature": "sso_scim", "tier": "scale"}, 25),
        (
            analyst,
            "Integration Connected",
            {"integration": "snowflake", "category": "data_warehouse"},
            20,
        ),
        (admin, "API Calls Reported", {"count": 182_400, "period": "day"}, 15),
    ]
    return [
        _segment_message(
            ctx,
            "track",
            f"t{index}",
            ctx.ago(minutes=minutes),
            user_id=user,
            event=event,
            properties=properties,
            context=group,
        )
        for index, (user, event, properties, minutes) in enumerate(calls)
    ]


def _segment_calls(ctx: Context) -> list[dict[str, Any]]:
    """A user joins the product account (group), another is identified, then they work."""
    account = ctx.account
    admin, analyst = f"usr_{account.run.lower()}_maya", f"usr_{account.run.lower()}_omar"
    group = _segment_message(
        ctx,
        "group",
        "group",
        ctx.ago(minutes=45),
        user_id=admin,
        groupId=account.product_account_id,
        traits={"name": account.name, "plan": "growth", "employees": 240},
    )
    identify = _segment_message(
        ctx,
        "identify",
        "identify",
        ctx.ago(minutes=44),
        user_id=analyst,
        traits={
            "email": f"omar@{account.domain}",
            "title": "Analytics Lead",
            "department": "Finance",
        },
        context={"groupId": account.product_account_id},
    )
    return [group, identify, *_segment_tracks(ctx, admin, analyst)]


def _segment_signed(ctx: Context, body: bytes, description: str) -> Delivery:
    """Standard Webhooks for batches when that secret is set, else Segment's X-Signature."""
    settings = ctx.settings
    headers = {"Content-Type": "application/json", "User-Agent": "Segment.io/1.0"}
    if description.startswith("batch") and settings.standard_webhooks_secret:
        msg_id = f"msg_{ctx.account.run.lower()}batch"
        timestamp = _epoch(ctx.now)
        headers["webhook-id"] = msg_id
        headers["webhook-timestamp"] = str(timestamp)
        headers["webhook-signature"] = sign_standard_webhook(
            settings.standard_webhooks_secret, msg_id, timestamp, body
        )
        description += " (Standard Webhooks)"
    else:
        headers.update(sign(body, settings.segment_shared_secret or ""))
        description += " (X-Signature)"
    return Delivery("segment", description, "/webhooks/segment", body, headers)


def segment(ctx: Context) -> list[Delivery]:
    calls = _segment_calls(ctx)
    # Single calls need Segment's own secret; with only a Standard Webhooks one, batch them all.
    single = calls[:2] if ctx.settings.segment_shared_secret else []
    batch = calls[len(single) :]
    library = {"library": {"name": "@segment/analytics-node", "version": "2.2.1"}}
    return [
        *(_segment_signed(ctx, _json(call), call["type"]) for call in single),
        _segment_signed(ctx, _json({"batch": batch, "context": library}), f"batch of {len(batch)}"),
    ]


# --- Salesforce (Outbound Messages: the Account names the customer's other ids) --------------


def salesforce(ctx: Context) -> list[Delivery]:
    account = ctx.account
    csm = account.salesforce_id("005", "CS")
    changed = ctx.ago(minutes=5)
    account_fields = {
        "Id": account.account_id,
        "Name": account.name,
        "Industry": "Manufacturing",
        "Type": "Customer - Direct",
        "NumberOfEmployees": 240,
        "AnnualRevenue": 48_000_000.0,
        "OwnerId": csm,
        "Stripe_Customer_Id__c": account.stripe_customer_id,
        "Chargebee_Customer_Id__c": account.chargebee_customer_id,
        "Product_Account_Id__c": account.product_account_id,
        "CreatedById": csm,
        "CreatedDate": ctx.ago(days=420),
        "LastModifiedById": csm,
        "LastModifiedDate": changed,
        "SystemModstamp": changed,
    }
    contact_fields = {
        "Id": account.salesforce_id("003", "CH"),
        "AccountId": account.account_id,
        "FirstName": "Maya",
        "LastName": "Okafor",
        "Email": f"maya@{account.domain}",
        "Title": "VP of Operations",
        "Buying_Role__c": "Champion",
        "Champion__c": True,
        "Left_Company__c": False,
        "LastModifiedById": csm,
        "LastModifiedDate": ctx.ago(minutes=4),
        "SystemModstamp": ctx.ago(minutes=4),
    }
    org_id = ctx.settings.salesforce_org_id or ""
    deliveries = []
    for sobject, fields, description in (
        ("Account", account_fields, "Account (links Stripe, Chargebee, product)"),
        ("Contact", contact_fields, "Contact (champion promoted to VP)"),
    ):
        body = outbound_message(
            org_id, [(account.salesforce_id("04l", sobject[:2].upper()), sobject, fields)]
        )
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": '""',
            "User-Agent": "Jakarta Commons-HttpClient/3.1",
        }
        if ctx.settings.salesforce_shared_secret:
            headers[SECRET_HEADER] = ctx.settings.salesforce_shared_secret
        deliveries.append(
            Delivery("salesforce", description, "/webhooks/salesforce", body, headers)
        )
    return deliveries


# --- HubSpot (webhook batches of property changes, signed v3) ---------------------------------


def _hubspot_change(ctx: Context, index: int, prop: str, value: str, at: datetime) -> dict:
    settings = ctx.settings
    portal = settings.hubspot_portal_ids[0] if settings.hubspot_portal_ids else "20000001"
    return {
        "eventId": int(ctx.account.run, 16) % 1_000_000_000 * 10 + index,
        "subscriptionId": 2_410_020,
        "portalId": int(portal),
        "appId": int(settings.hubspot_app_id or 0),
        "occurredAt": int(at.timestamp() * 1000),
        "subscriptionType": "company.propertyChange",
        "attemptNumber": 0,
        "objectId": int(ctx.account.hubspot_company_id),
        "propertyName": prop,
        "propertyValue": value,
        "changeSource": "CRM_UI",
        "sourceId": "userId:8675309",
    }


def _hubspot_delivery(ctx: Context, events: list[dict], description: str) -> Delivery:
    path = "/webhooks/hubspot"
    body = _json(events)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/)",
        **sign_request(body, ctx.settings.hubspot_client_secret or "", ctx.signed_url(path)),
    }
    return Delivery("hubspot", description, path, body, headers)


def hubspot_link(ctx: Context) -> list[Delivery]:
    event = _hubspot_change(
        ctx, 0, "stripe_customer_id", ctx.account.stripe_customer_id, ctx.ago(minutes=3)
    )
    return [_hubspot_delivery(ctx, [event], "company stripe_customer_id (joins the account)")]


def hubspot_changes(ctx: Context) -> list[Delivery]:
    changes = [
        ("numberofemployees", "310"),
        ("csm_sentiment", "positive"),
        ("total_money_raised", "42000000"),
    ]
    events = [
        _hubspot_change(ctx, index, prop, value, ctx.ago(minutes=2))
        for index, (prop, value) in enumerate(changes, start=1)
    ]
    return [_hubspot_delivery(ctx, events, f"batch of {len(events)} company property changes")]


@dataclass(frozen=True)
class Step:
    """Requests sent together; the demo waits until they are processed before the next step."""

    title: str
    build: tuple[Callable[[Context], list[Delivery]], ...]


# Billing and product first: the product does not know the CRM account, so its events wait
# (parked) until the Salesforce Account names the product account id. HubSpot's link comes in a
# step of its own: a company seen before its link would start an account of its own.
STEPS = (
    Step(
        "billing and product events (the product does not know the CRM account)",
        (stripe, chargebee, segment),
    ),
    Step("Salesforce: the Account names the Stripe, Chargebee and product ids", (salesforce,)),
    Step("HubSpot: the company's stripe_customer_id joins it to the same account", (hubspot_link,)),
    Step("HubSpot: company property changes", (hubspot_changes,)),
)
