"""Helpers for the account-state tests: canonical events for one test account, applied through
the real identity, event log and state code, and the state tables read back."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, select

from expansion.db import transaction, utcnow
from expansion.models import canonical_events, inbox_events
from expansion.settings import Settings
from integration.canonical import AccountKey, CanonicalEvent, Normalized
from integration.sources import SOURCES
from integration.sources.base import RawRequest
from tests.support import fixture_path
from workers import identity, ingest, state
from workers.account_state import AccountState
from workers.state_loader import LoadConfig, load_state

KEY = AccountKey("hubspot", "1001")
DAY0 = date(2026, 3, 2)


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    """A moment on DAY0 + `day` (UTC)."""
    return datetime.combine(DAY0 + timedelta(days=day), datetime.min.time(), UTC).replace(
        hour=hour, minute=minute
    )


def event(kind: str, when: datetime, key: AccountKey = KEY, **data: Any) -> CanonicalEvent:
    return CanonicalEvent(kind, key, when, data)


def _inbox_row(conn: Connection) -> int:
    return conn.execute(
        inbox_events.insert()
        .values(
            source="test",
            dedup_key=str(uuid.uuid4()),
            event_type="test",
            received_at=utcnow(),
            payload="{}",
            status="processed",
            attempts=1,
        )
        .returning(inbox_events.c.id)
    ).scalar_one()


def apply(settings: Settings, item: CanonicalEvent) -> bool:
    """Store and apply one event the way ingest does; returns what state.apply returned."""
    now = utcnow()
    with transaction(settings) as conn:
        account_id, _ = identity.resolve(conn, item.key, item.links, now)
        assert account_id is not None, f"{item.key} does not create or reach an account"
        event_id = conn.execute(
            canonical_events.insert()
            .values(
                inbox_id=_inbox_row(conn),
                seq=0,
                type=item.type,
                key_kind=item.key.kind,
                key_value=item.key.value,
                account_id=account_id,
                occurred_at=item.occurred_at,
                data=item.data,
                status="applied",
                applied_at=now,
            )
            .returning(canonical_events.c.id)
        ).scalar_one()
        return state.apply(conn, account_id, item, event_id, now)


def apply_all(settings: Settings, items: list[CanonicalEvent]) -> None:
    """Apply events in one inbox row through ingest.apply_events."""
    with transaction(settings) as conn:
        ingest.apply_events(conn, _inbox_row(conn), items, utcnow())


def account_id(settings: Settings, key: AccountKey = KEY) -> int:
    with transaction(settings) as conn:
        found = identity.lookup(conn, key)
    assert found is not None
    return found


def rows(settings: Settings, table: Table) -> list[dict[str, Any]]:
    """Every row of a state table as dicts, without the account id and surrogate ids."""
    with transaction(settings) as conn:
        result = conn.execute(select(table)).mappings().all()
    hidden = {"account_id", "id"}
    order = [c.name for c in table.primary_key if c.name not in hidden]
    return sorted(
        ({k: v for k, v in row.items() if k not in hidden} for row in result),
        key=lambda row: (
            [row[name] for name in order],
            json.dumps(row, sort_keys=True, default=str),
        ),
    )


def loaded(settings: Settings, today: date, key: AccountKey = KEY) -> AccountState:
    found = account_id(settings, key)
    with transaction(settings) as conn:
        return load_state(conn, found, today, LoadConfig.from_settings(settings))


def normalized(settings: Settings, source: str, name: str) -> list[CanonicalEvent]:
    """The canonical events a source makes of one of its fixtures, re-keyed to the test account
    (routing is ingest's business; these tests are about the data each source sends)."""
    body = fixture_path(source, name).read_bytes()
    content_type = "text/xml" if name.endswith(".xml") else "application/json"
    request = RawRequest(
        "POST", f"http://test/webhooks/{source}", {"content-type": content_type}, body, utcnow()
    )
    events: list[CanonicalEvent] = []
    for item in SOURCES[source].parse(request, settings):
        result: Normalized = SOURCES[source].normalize(
            json.loads(json.dumps(item.payload)), item.event_type, settings
        )
        if isinstance(result, list):
            events.extend(
                dataclasses.replace(e, key=KEY, links=(), aliases=())
                for e in result
                if e.type != "account.linked"
            )
    return events
