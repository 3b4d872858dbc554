"""The canonical events every source is normalized into (SPEC §3.3) and the account keys they
carry (§3.4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from integration.salesforce_ids import id18, is_id

CANONICAL_TYPES = frozenset(
    {
        "account.changed",
        "contact.changed",
        "subscription.changed",
        "invoice.paid",
        "invoice.payment_failed",
        "usage.reported",
        "user.active",
        "user.invited",
        "feature.used",
        "teaser.clicked",
        "integration.connected",
        "limit.hit",
        "ticket.created",
        "ticket.changed",
        "nps.response",
        "task.changed",
        "deal.closed",
        # Identity only (§3.4): proves that keys belong together, changes no state.
        "account.linked",
    }
)

# Key kinds that name an account record in the CRM: an event carrying one creates the account.
CRM_ACCOUNT_KINDS = frozenset({"salesforce", "hubspot"})
# Key kinds that identify an account outside the CRM and must be linked to one.
ACCOUNT_KINDS = CRM_ACCOUNT_KINDS | {"stripe", "chargebee", "product"}


@dataclass(frozen=True)
class AccountKey:
    """One identity of an account (or of something that belongs to one: a contact, a user)."""

    kind: str
    value: str

    def __post_init__(self) -> None:
        # One Salesforce record may arrive as a 15- or an 18-character id; keep one form.
        if self.kind.startswith("salesforce") and is_id(self.value):
            object.__setattr__(self, "value", id18(self.value))
        if not self.kind or not self.value:
            raise ValueError(
                f"account key needs a kind and a value, got {self.kind!r}/{self.value!r}"
            )

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class Alias:
    """`key` belongs to the account known as `target` (a contact to its company, a user to its
    product account). Aliases let events about the smaller thing reach the account."""

    key: AccountKey
    target: AccountKey


@dataclass(frozen=True)
class CanonicalEvent:
    type: str
    key: AccountKey
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    # Other keys of the same account that this event proves (e.g. a CRM field holding the
    # Stripe customer id): linking them releases events parked under those keys.
    links: tuple[AccountKey, ...] = ()
    aliases: tuple[Alias, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in CANONICAL_TYPES:
            raise ValueError(f"unknown canonical event type {self.type!r}")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))


@dataclass(frozen=True)
class Ignored:
    """A verified event we deliberately do not act on, with the reason (kept in the inbox)."""

    reason: str


Normalized = list[CanonicalEvent] | Ignored
