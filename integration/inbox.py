"""The inbox table: provider events stored durably before we answer, deduplicated per source."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from expansion.models import inbox_events
from integration.sources.base import InboxItem


def store(
    conn: Connection, source: str, items: list[InboxItem], received_at: datetime
) -> list[int]:
    """Insert new items, skip ones already stored (same source and dedup key); return new ids."""
    if not items:
        return []
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    rows = [
        {
            "source": source,
            "dedup_key": item.dedup_key,
            "event_type": item.event_type,
            "occurred_at": item.occurred_at,
            "received_at": received_at,
            "payload": item.payload_json(),
            "status": "pending",
            "attempts": 0,
        }
        for item in _unique(items)
    ]
    statement = (
        dialect.insert(inbox_events)
        .on_conflict_do_nothing(index_elements=["source", "dedup_key"])
        .returning(inbox_events.c.id)
    )
    new_ids = []
    for row in rows:
        new_id = conn.execute(statement, row).scalar_one_or_none()
        if new_id is not None:
            new_ids.append(new_id)
    return new_ids


def _unique(items: list[InboxItem]) -> list[InboxItem]:
    """A batch may repeat an event (HubSpot retries batch with fresh ones); keep the first."""
    seen: set[str] = set()
    kept = []
    for item in items:
        if item.dedup_key not in seen:
            seen.add(item.dedup_key)
            kept.append(item)
    return kept
