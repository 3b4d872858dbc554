"""Chargebee webhooks: HTTP Basic auth, one inbox item per event, and normalization of
customers, subscriptions (Product Catalog 2.0 items) and payments."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from flask import Response

from expansion.mappings import StrictModel, cached_model
from expansion.settings import Settings
from integration.canonical import AccountKey, CanonicalEvent, Ignored, Normalized
from integration.sources.base import (
    BadSignature,
    InboxItem,
    MalformedPayload,
    NormalizationError,
    NotConfigured,
    RawRequest,
    epoch_iso,
    json_document,
)
from integration.sources.signing import equal

PERIODS_PER_YEAR = {"day": 365, "week": 52, "month": 12, "year": 1}
MONTHS_PER_PERIOD = {"month": 1, "year": 12}
# A billing term this long is the contract term: its end is the renewal date. A shorter one
# (monthly billing) only says when the next invoice is due.
TERM_MONTHS = 12
# Statuses after which the subscription brings no more revenue.
ENDED_STATUSES = frozenset({"cancelled", "transferred"})
# Chargebee's subscription statuses in the vocabulary every billing source reports (Stripe's).
CANONICAL_STATUS = {
    "future": "incomplete",
    "in_trial": "trialing",
    "active": "active",
    "non_renewing": "active",
    "paused": "paused",
    "cancelled": "canceled",
    "transferred": "canceled",
}
# Item types billed every period; `charge` items are one-off.
RECURRING_ITEM_TYPES = frozenset({"plan", "addon"})


class AccountLink(StrictModel):
    custom_field: str
    crm: Literal["salesforce", "hubspot"]


class ChargebeeMapping(StrictModel):
    account_link: AccountLink
    seat_item_price_ids: list[str] = []
    tiers: dict[str, str] = {}
    events: dict[
        str,
        Literal["account.linked", "subscription.changed", "invoice.paid", "invoice.payment_failed"],
    ]


def mapping(settings: Settings) -> ChargebeeMapping:
    return cached_model(settings.mappings_dir / "sources" / "chargebee.yaml", ChargebeeMapping)


def authorization_header(username: str, password: str) -> str:
    """The `Authorization` header Chargebee sends (used by tests and the demo)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _credentials(header: str | None) -> tuple[str, str]:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise BadSignature("HTTP Basic credentials are required (Authorization: Basic ...)")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise BadSignature("the Authorization header is not valid Basic credentials") from None
    username, colon, password = decoded.partition(":")
    if not colon:
        raise BadSignature("the Authorization header is not valid Basic credentials")
    return username, password


class ChargebeeSource:
    name = "chargebee"
    content_types = ("application/json",)

    def check_configured(self, settings: Settings) -> None:
        missing = [
            name
            for name, value in (
                ("CHARGEBEE_WEBHOOK_USERNAME", settings.chargebee_webhook_username),
                ("CHARGEBEE_WEBHOOK_PASSWORD", settings.chargebee_webhook_password),
            )
            if not value
        ]
        if missing:
            raise NotConfigured(
                f"{' and '.join(missing)} not set; set both to the Basic auth credentials "
                "configured on the Chargebee webhook"
            )

    def verify(self, request: RawRequest, settings: Settings) -> None:
        username, password = _credentials(request.header("authorization"))
        # Both comparisons always run, so timing does not reveal which one failed.
        user_ok = equal(settings.chargebee_webhook_username or "", username)
        password_ok = equal(settings.chargebee_webhook_password or "", password)
        if not (user_ok and password_ok):
            raise BadSignature("the Basic auth username or password is wrong")

    def parse(self, request: RawRequest, settings: Settings) -> list[InboxItem]:
        event, text = json_document(request)
        if not isinstance(event, dict):
            raise MalformedPayload("a Chargebee event must be a JSON object")
        missing = [k for k in ("id", "event_type", "occurred_at", "content") if k not in event]
        if missing:
            raise MalformedPayload(f"Chargebee event is missing {', '.join(missing)}")
        if not (
            isinstance(event["id"], str)
            and event["id"]
            and isinstance(event["occurred_at"], int)
            and isinstance(event["content"], dict)
        ):
            raise MalformedPayload(
                "Chargebee event needs a string `id`, an integer `occurred_at` (epoch seconds) "
                "and an object `content`"
            )
        return [
            InboxItem(
                dedup_key=event["id"],
                event_type=str(event["event_type"]),
                occurred_at=datetime.fromtimestamp(event["occurred_at"], UTC),
                payload=event,
                raw=text,
            )
        ]

    def normalize(self, item: dict[str, Any], event_type: str, settings: Settings) -> Normalized:
        config = mapping(settings)
        canonical = config.events.get(event_type)
        if canonical is None:
            return Ignored(
                f"Chargebee event type {event_type} is not mapped in sources/chargebee.yaml"
            )
        occurred_at = datetime.fromtimestamp(item["occurred_at"], UTC)
        return [NORMALIZERS[canonical](item["content"], occurred_at, config)]

    def acknowledge(self, items: list[InboxItem]) -> Response | None:
        return None


def _content_object(content: dict[str, Any], name: str) -> dict[str, Any]:
    obj = content.get(name)
    if not isinstance(obj, dict):
        raise NormalizationError(f"Chargebee event content has no {name} object")
    return obj


def _customer_id(content: dict[str, Any], *objects: str) -> str:
    """The Chargebee customer id, from the first content object that names one."""
    for name in objects:
        obj = content.get(name)
        if isinstance(obj, dict):
            found = obj.get("id") if name == "customer" else obj.get("customer_id")
            if found:
                return str(found)
    raise NormalizationError(f"Chargebee event names no customer id in {', '.join(objects)}")


def _crm_links(content: dict[str, Any], config: ChargebeeMapping) -> tuple[AccountKey, ...]:
    crm_id = (content.get("customer") or {}).get(config.account_link.custom_field)
    return (AccountKey(config.account_link.crm, str(crm_id)),) if crm_id else ()


def _domain(email: object) -> str | None:
    return email.rsplit("@", 1)[-1].lower() if isinstance(email, str) and "@" in email else None


def _customer(
    content: dict[str, Any], occurred_at: datetime, config: ChargebeeMapping
) -> CanonicalEvent:
    customer = _content_object(content, "customer")
    return CanonicalEvent(
        "account.linked",
        AccountKey("chargebee", _customer_id(content, "customer")),
        occurred_at,
        {"company": customer.get("company"), "email_domain": _domain(customer.get("email"))},
        links=_crm_links(content, config),
    )


def _annual_cents(item: dict[str, Any], subscription: dict[str, Any]) -> float:
    if item.get("item_type") not in RECURRING_ITEM_TYPES:
        return 0
    unit = item.get("billing_period_unit") or subscription.get("billing_period_unit") or ""
    period = item.get("billing_period") or subscription.get("billing_period") or 1
    amount = item.get("amount")
    if amount is None:
        amount = (item.get("unit_price") or 0) * (item.get("quantity") or 0)
    return amount * PERIODS_PER_YEAR.get(unit, 0) / max(period, 1)


def _seats(items: list[dict[str, Any]], config: ChargebeeMapping) -> int:
    seat_items = [i for i in items if i.get("item_price_id") in config.seat_item_price_ids]
    if not seat_items:
        seat_items = [i for i in items if i.get("item_type") == "plan"]
    return sum(i.get("quantity") or 0 for i in seat_items)


def _subscription(
    content: dict[str, Any], occurred_at: datetime, config: ChargebeeMapping
) -> CanonicalEvent:
    subscription = _content_object(content, "subscription")
    items = [i for i in subscription.get("subscription_items") or [] if isinstance(i, dict)]
    plan_price = next((i.get("item_price_id") for i in items if i.get("item_type") == "plan"), None)
    status = subscription.get("status")
    annual_cents = sum(_annual_cents(i, subscription) for i in items)
    return CanonicalEvent(
        "subscription.changed",
        AccountKey("chargebee", _customer_id(content, "subscription", "customer")),
        occurred_at,
        {
            "subscription_id": subscription.get("id"),
            "status": CANONICAL_STATUS.get(status or "", status),
            "seats": _seats(items, config),
            "tier": config.tiers.get(plan_price, plan_price) if plan_price else None,
            "currency": subscription.get("currency_code"),
            "arr": 0 if status in ENDED_STATUSES else round(annual_cents / 100, 2),
            "renewal_at": _renewal_at(subscription, items),
            "cancel_at_period_end": status == "non_renewing",
        },
        links=_crm_links(content, config),
    )


def _renewal_at(subscription: dict[str, Any], items: list[dict[str, Any]]) -> str | None:
    """The term end when the subscription is billed a year (or more) at a time; None for
    monthly billing, whose term end is no renewal."""
    plan = next((i for i in items if i.get("item_type") == "plan"), {})
    unit = subscription.get("billing_period_unit") or plan.get("billing_period_unit") or ""
    period = subscription.get("billing_period") or plan.get("billing_period") or 1
    if MONTHS_PER_PERIOD.get(unit, 0) * period < TERM_MONTHS:
        return None
    return epoch_iso(subscription.get("current_term_end"))


def _billing_reason(invoice: dict[str, Any]) -> str:
    if invoice.get("first_invoice"):
        return "subscription_create"
    return "subscription_cycle" if invoice.get("recurring") else "manual"


def _payment(kind: str) -> Callable[[dict[str, Any], datetime, ChargebeeMapping], CanonicalEvent]:
    def normalize(
        content: dict[str, Any], occurred_at: datetime, config: ChargebeeMapping
    ) -> CanonicalEvent:
        invoice = content.get("invoice") or {}
        transaction = content.get("transaction") or {}
        if kind == "invoice.paid":
            cents = invoice.get("amount_paid", transaction.get("amount"))
        else:
            cents = invoice.get("amount_due", transaction.get("amount"))
        attempts = invoice.get("dunning_attempts")
        return CanonicalEvent(
            kind,
            AccountKey("chargebee", _customer_id(content, "invoice", "transaction", "customer")),
            occurred_at,
            {
                "invoice_id": invoice.get("id"),
                "amount": (cents or 0) / 100,
                "currency": invoice.get("currency_code") or transaction.get("currency_code"),
                "attempt_count": len(attempts) if isinstance(attempts, list) else None,
                "billing_reason": _billing_reason(invoice) if invoice else None,
            },
            links=_crm_links(content, config),
        )

    return normalize


NORMALIZERS: dict[str, Callable[[dict[str, Any], datetime, ChargebeeMapping], CanonicalEvent]] = {
    "account.linked": _customer,
    "subscription.changed": _subscription,
    "invoice.paid": _payment("invoice.paid"),
    "invoice.payment_failed": _payment("invoice.payment_failed"),
}

SOURCE = ChargebeeSource()
