"""Stripe webhooks: `Stripe-Signature` (t=, v1=) verification, one inbox item per event, and
normalization of customers, subscriptions and invoices."""

from __future__ import annotations

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
from integration.sources.signing import check_window, equal, hmac_digest

TOLERANCE_SECONDS = 300
INTERVALS_PER_YEAR = {"day": 365, "week": 52, "month": 12, "year": 1}
MONTHS_PER_INTERVAL = {"month": 1, "year": 12}
# A billing period this long is the contract term: its end is the renewal date. A shorter one
# (monthly billing) only says when the next invoice is due.
TERM_MONTHS = 12


class AccountLink(StrictModel):
    metadata_key: str
    crm: Literal["salesforce", "hubspot"]


class StripeMapping(StrictModel):
    account_link: AccountLink
    seat_price_metadata_key: str = "seats"
    tiers: dict[str, str] = {}
    events: dict[
        str,
        Literal["account.linked", "subscription.changed", "invoice.paid", "invoice.payment_failed"],
    ]


def mapping(settings: Settings) -> StripeMapping:
    return cached_model(settings.mappings_dir / "sources" / "stripe.yaml", StripeMapping)


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """The header Stripe would send for `body` at `timestamp` (used by tests and the demo)."""
    digest = hmac_digest(secret.encode(), f"{timestamp}.".encode() + body).hex()
    return f"t={timestamp},v1={digest}"


def _parse_signature_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise BadSignature("Stripe-Signature timestamp is not an integer") from None
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise BadSignature("Stripe-Signature needs a t= timestamp and at least one v1= signature")
    return timestamp, signatures


class StripeSource:
    name = "stripe"
    content_types = ("application/json",)

    def check_configured(self, settings: Settings) -> None:
        if not settings.stripe_webhook_secret:
            raise NotConfigured(
                "STRIPE_WEBHOOK_SECRET is not set; set it to the endpoint's whsec_ secret"
            )

    def verify(self, request: RawRequest, settings: Settings) -> None:
        header = request.header("stripe-signature")
        if not header:
            raise BadSignature("the Stripe-Signature header is missing")
        timestamp, signatures = _parse_signature_header(header)
        check_window(timestamp, TOLERANCE_SECONDS)
        secret = (settings.stripe_webhook_secret or "").encode()
        expected = hmac_digest(secret, f"{timestamp}.".encode() + request.body).hex()
        # Several v1 values arrive while a secret is being rolled; any one may match.
        if not any(equal(expected, given) for given in signatures):
            raise BadSignature("no v1 signature in Stripe-Signature matches the body")

    def parse(self, request: RawRequest, settings: Settings) -> list[InboxItem]:
        event, text = json_document(request)
        if not isinstance(event, dict):
            raise MalformedPayload("a Stripe event must be a JSON object")
        missing = [k for k in ("id", "type", "created", "data") if k not in event]
        if missing:
            raise MalformedPayload(f"Stripe event is missing {', '.join(missing)}")
        if not isinstance(event["created"], int) or not isinstance(event["data"], dict):
            raise MalformedPayload("Stripe event needs an integer `created` and an object `data`")
        return [
            InboxItem(
                dedup_key=str(event["id"]),
                event_type=str(event["type"]),
                occurred_at=datetime.fromtimestamp(event["created"], UTC),
                payload=event,
                raw=text,
            )
        ]

    def normalize(self, item: dict[str, Any], event_type: str, settings: Settings) -> Normalized:
        config = mapping(settings)
        canonical = config.events.get(event_type)
        if canonical is None:
            return Ignored(f"Stripe event type {event_type} is not mapped in sources/stripe.yaml")
        obj = item["data"].get("object")
        if not isinstance(obj, dict):
            raise NormalizationError("Stripe event data.object is not an object")
        occurred_at = datetime.fromtimestamp(item["created"], UTC)
        return [NORMALIZERS[canonical](obj, occurred_at, config)]

    def acknowledge(self, items: list[InboxItem]) -> Response | None:
        return None


def _customer_id(obj: dict[str, Any]) -> str:
    customer = obj.get("customer") if obj.get("object") != "customer" else obj.get("id")
    if isinstance(customer, dict):
        customer = customer.get("id")
    if not customer:
        raise NormalizationError(f"Stripe {obj.get('object', 'object')} has no customer id")
    return str(customer)


def _crm_links(obj: dict[str, Any], config: StripeMapping) -> tuple[AccountKey, ...]:
    crm_id = (obj.get("metadata") or {}).get(config.account_link.metadata_key)
    return (AccountKey(config.account_link.crm, str(crm_id)),) if crm_id else ()


def _customer(obj: dict[str, Any], occurred_at: datetime, config: StripeMapping) -> CanonicalEvent:
    return CanonicalEvent(
        "account.linked",
        AccountKey("stripe", _customer_id(obj)),
        occurred_at,
        {"email_domain": _domain(obj.get("email"))},
        links=_crm_links(obj, config),
    )


def _domain(email: object) -> str | None:
    return email.rsplit("@", 1)[-1].lower() if isinstance(email, str) and "@" in email else None


def _tier(price: dict[str, Any], config: StripeMapping) -> str | None:
    lookup = price.get("lookup_key")
    if lookup and lookup in config.tiers:
        return config.tiers[lookup]
    return (price.get("metadata") or {}).get("tier") or lookup


def _subscription(
    obj: dict[str, Any], occurred_at: datetime, config: StripeMapping
) -> CanonicalEvent:
    items = [i for i in (obj.get("items") or {}).get("data", []) if isinstance(i, dict)]
    seat_items = [
        i
        for i in items
        if config.seat_price_metadata_key in ((i.get("price") or {}).get("metadata") or {})
    ] or [
        i
        for i in items
        if ((i.get("price") or {}).get("recurring") or {}).get("usage_type") == "licensed"
    ]
    annual_cents = 0
    for item in items:
        price = item.get("price") or {}
        recurring = price.get("recurring") or {}
        per_year = INTERVALS_PER_YEAR.get(recurring.get("interval", ""), 0) / max(
            recurring.get("interval_count") or 1, 1
        )
        if recurring.get("usage_type", "licensed") == "licensed":
            annual_cents += (price.get("unit_amount") or 0) * (item.get("quantity") or 0) * per_year
    main_price = (seat_items or items or [{}])[0].get("price") or {}
    status = obj.get("status")
    return CanonicalEvent(
        "subscription.changed",
        AccountKey("stripe", _customer_id(obj)),
        occurred_at,
        {
            "subscription_id": obj.get("id"),
            "status": status,
            "seats": sum(i.get("quantity") or 0 for i in seat_items),
            "tier": _tier(main_price, config),
            "currency": obj.get("currency"),
            "arr": round(annual_cents / 100, 2)
            if status not in ("canceled", "incomplete_expired")
            else 0,
            "renewal_at": _renewal_at(obj, items),
            "cancel_at_period_end": bool(obj.get("cancel_at_period_end")),
        },
        links=_crm_links(obj, config),
    )


def _renewal_at(obj: dict[str, Any], items: list[dict[str, Any]]) -> str | None:
    """The period end when the subscription is billed a year (or more) at a time; None for
    monthly billing, whose period end is no renewal. (Stripe bills all items of a subscription
    on one interval.)"""
    recurring = next(
        (r for i in items if (r := (i.get("price") or {}).get("recurring")) is not None), {}
    )
    months = MONTHS_PER_INTERVAL.get(recurring.get("interval", ""), 0) * (
        recurring.get("interval_count") or 1
    )
    if months < TERM_MONTHS:
        return None
    period_end = obj.get("current_period_end") or max(
        (i.get("current_period_end") or 0 for i in items), default=0
    )
    return epoch_iso(period_end)


def _invoice(kind: str) -> Callable[[dict[str, Any], datetime, StripeMapping], CanonicalEvent]:
    def normalize(
        obj: dict[str, Any], occurred_at: datetime, config: StripeMapping
    ) -> CanonicalEvent:
        return CanonicalEvent(
            kind,
            AccountKey("stripe", _customer_id(obj)),
            occurred_at,
            {
                "invoice_id": obj.get("id"),
                "amount": (
                    (obj.get("amount_paid") if kind == "invoice.paid" else obj.get("amount_due"))
                    or 0
                )
                / 100,
                "currency": obj.get("currency"),
                "attempt_count": obj.get("attempt_count"),
                "billing_reason": obj.get("billing_reason"),
            },
        )

    return normalize


NORMALIZERS: dict[str, Callable[[dict[str, Any], datetime, StripeMapping], CanonicalEvent]] = {
    "account.linked": _customer,
    "subscription.changed": _subscription,
    "invoice.paid": _invoice("invoice.paid"),
    "invoice.payment_failed": _invoice("invoice.payment_failed"),
}

SOURCE = StripeSource()
