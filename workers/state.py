"""Applies canonical events to account state: the latest value of each attribute guarded by
when it was true (a late event never overwrites newer state), and the rollups the scores are
computed from (workers/rollups.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_, update
from sqlalchemy.dialects import postgresql, sqlite

from expansion.db import as_utc
from expansion.models import account_attributes, accounts
from integration.canonical import CanonicalEvent
from workers import rollups


def _attributes(event: CanonicalEvent) -> dict[str, Any]:
    """Current-state attributes an event sets; log-only events (usage, features...) set none."""
    if event.type == "account.changed":
        return {f"crm.{name}": value for name, value in event.data.items()}
    if event.type == "subscription.changed":
        return {f"subscription.{name}": value for name, value in event.data.items()}
    if event.type == "contact.changed":
        contact = event.data.get("contact_id", "unknown")
        return {
            f"contact.{contact}.{name}": value
            for name, value in event.data.items()
            if name != "contact_id"
        }
    return {}


def apply(
    conn: Connection, account_id: int, event: CanonicalEvent, event_id: int, now: datetime
) -> bool:
    """Apply one event to its account; True when anything the scores read changed."""
    conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(events_applied=accounts.c.events_applied + 1, updated_at=now)
    )
    conn.execute(
        update(accounts)
        .where(
            accounts.c.id == account_id,
            or_(accounts.c.last_event_at.is_(None), accounts.c.last_event_at < event.occurred_at),
        )
        .values(last_event_at=event.occurred_at)
    )
    changed = [
        name
        for name, value in _attributes(event).items()
        if _set_attribute(conn, account_id, name, value, event.occurred_at, event_id)
    ]
    if "crm.name" in changed:
        conn.execute(
            update(accounts).where(accounts.c.id == account_id).values(name=event.data["name"])
        )
    rolled_up = rollups.apply(conn, account_id, event)
    return bool(changed) or rolled_up


def _set_attribute(
    conn: Connection,
    account_id: int,
    name: str,
    value: Any,
    as_of: datetime,
    event_id: int,
) -> bool:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    current = conn.execute(
        account_attributes.select().where(
            account_attributes.c.account_id == account_id, account_attributes.c.name == name
        )
    ).first()
    if current is not None and as_utc(current.as_of) > as_of:
        return False  # stale: newer state already applied
    statement = dialect.insert(account_attributes).values(
        account_id=account_id, name=name, value=value, as_of=as_of, event_id=event_id
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["account_id", "name"],
            set_={"value": value, "as_of": as_of, "event_id": event_id},
        )
    )
    return current is None or current.value != value
