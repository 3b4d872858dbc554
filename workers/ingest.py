"""Turns one inbox row into canonical events applied to account state, exactly once: a claim
transaction counts the attempt (the poison-message guard), the apply transaction inserts the
events, applies them and marks the row processed together."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select, update

from expansion.db import as_utc, transaction, utcnow
from expansion.mappings import MappingError
from expansion.models import accounts, canonical_events, inbox_events
from expansion.settings import Settings
from integration.canonical import AccountKey, CanonicalEvent, Ignored
from integration.sources import SOURCES
from integration.sources.base import NormalizationError
from workers import identity, play_step, state

log = logging.getLogger(__name__)

# Errors that no retry can fix: the row goes to the dead-letter at once, with the reason.
PERMANENT_ERRORS = (NormalizationError, MappingError, ValueError, KeyError, TypeError)
APPLY_LOCK_ID = 74202  # PostgreSQL advisory lock; 74201 guards migrations (expansion/db.py)


@dataclass(frozen=True)
class Outcome:
    status: str  # processed | ignored | dead | skipped | retry
    detail: str = ""
    account_ids: tuple[int, ...] = ()  # accounts whose state changed: each needs a recompute


def _locked_row(conn: Connection, inbox_id: int):  # type: ignore[no-untyped-def]
    query = select(inbox_events).where(inbox_events.c.id == inbox_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def _finish(conn: Connection, inbox_id: int, status: str, error: str | None = None) -> None:
    conn.execute(
        update(inbox_events)
        .where(inbox_events.c.id == inbox_id)
        .values(status=status, processed_at=utcnow(), last_error=error)
    )


def claim(settings: Settings, inbox_id: int) -> Outcome | None:
    """Count this attempt before doing the work, so a row that kills its worker every time
    reaches the dead-letter instead of looping forever. None means: go ahead."""
    with transaction(settings) as conn:
        row = _locked_row(conn, inbox_id)
        if row is None:
            return Outcome("skipped", "no such inbox row")
        if row.status != "pending":
            return Outcome("skipped", f"already {row.status}")
        if row.attempts >= settings.ingest_max_attempts:
            reason = row.last_error or "the worker died or timed out while processing it"
            _finish(conn, inbox_id, "dead", f"gave up after {row.attempts} attempts: {reason}")
            return Outcome("dead", reason)
        conn.execute(
            update(inbox_events)
            .where(inbox_events.c.id == inbox_id)
            .values(attempts=inbox_events.c.attempts + 1, last_attempt_at=utcnow())
        )
    return None


def process(settings: Settings, inbox_id: int) -> Outcome:
    """Ingest one inbox row. Safe to call any number of times for the same id."""
    blocked = claim(settings, inbox_id)
    if blocked is not None:
        return blocked
    try:
        with transaction(settings) as conn:
            row = _locked_row(conn, inbox_id)
            if row is None or row.status != "pending":
                return Outcome("skipped", "processed concurrently")
            source = SOURCES[row.source]
            normalized = source.normalize(json.loads(row.payload), row.event_type, settings)
            if isinstance(normalized, Ignored):
                _finish(conn, inbox_id, "ignored", normalized.reason)
                return Outcome("ignored", normalized.reason)
            changed = apply_events(conn, inbox_id, normalized, utcnow())
            _finish(conn, inbox_id, "processed")
            return Outcome("processed", account_ids=tuple(sorted(changed)))
    except PERMANENT_ERRORS as exc:
        reason = f"{type(exc).__name__}: {exc}"
        with transaction(settings) as conn:
            _finish(conn, inbox_id, "dead", reason)
        log.warning("inbox event dead-lettered", extra={"inbox_id": inbox_id, "error": reason})
        return Outcome("dead", reason)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        with transaction(settings) as conn:
            conn.execute(
                update(inbox_events).where(inbox_events.c.id == inbox_id).values(last_error=reason)
            )
        return Outcome("retry", reason)


def apply_events(
    conn: Connection, inbox_id: int, events: list[CanonicalEvent], now: datetime
) -> set[int]:
    """Resolve each event's account, store and apply it (or park it), then release events that
    were parked under keys this row linked. Returns the accounts whose state the scores read
    changed; their state_version goes up by one in this transaction (workers/recompute.py)."""
    _serialize_identity_changes(conn)
    changed: set[int] = set()
    released: list[AccountKey] = []
    for seq, event in enumerate(events):
        for alias in event.aliases:
            if identity.add_alias(conn, alias, now):
                released.append(alias.key)
        account_id, newly_linked = identity.resolve(conn, event.key, event.links, now)
        released.extend(newly_linked)
        event_id = conn.execute(
            canonical_events.insert()
            .values(
                inbox_id=inbox_id,
                seq=seq,
                type=event.type,
                key_kind=event.key.kind,
                key_value=event.key.value,
                account_id=account_id,
                occurred_at=event.occurred_at,
                data=event.data,
                status="applied" if account_id is not None else "parked",
                applied_at=now if account_id is not None else None,
            )
            .returning(canonical_events.c.id)
        ).scalar_one()
        if account_id is not None and state.apply(conn, account_id, event, event_id, now):
            changed.add(account_id)
        if account_id is not None:
            play_step.on_event(conn, account_id, event, now)
    if released:
        changed |= release_parked(conn, released, now)
    _bump_state_versions(conn, changed)
    return changed


def release_routed(conn: Connection, keys: list[AccountKey], now: datetime) -> set[int]:
    """`release_parked` for keys routed outside an ingest (the CRM writer confirming a HubSpot
    task adds its alias), under the same lock as an apply, so that an event parked meanwhile
    is not missed; returns the accounts whose state changed (their state_version went up)."""
    _serialize_identity_changes(conn)
    changed = release_parked(conn, keys, now)
    _bump_state_versions(conn, changed)
    return changed


def _bump_state_versions(conn: Connection, changed: set[int]) -> None:
    if changed:
        conn.execute(
            update(accounts)
            .where(accounts.c.id.in_(changed))
            .values(state_version=accounts.c.state_version + 1)
        )


def _serialize_identity_changes(conn: Connection) -> None:
    """On PostgreSQL, one apply at a time, as SQLite's BEGIN IMMEDIATE already does. Two
    applies side by side lose an event: one parks it under a key while the other links that
    key, each blind to the other's uncommitted row, so nothing ever releases it (found by
    `python -m bench.faults --database-url ...`). Held until the transaction ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(APPLY_LOCK_ID)))


def release_parked(conn: Connection, keys: list[AccountKey], now: datetime) -> set[int]:
    """Apply, oldest first, the parked events whose key now reaches an account; returns the
    accounts whose state changed."""
    changed: set[int] = set()
    for key in identity.keys_routed_to(conn, keys):
        account_id = identity.lookup(conn, key)
        if account_id is None:
            continue
        parked = conn.execute(
            select(canonical_events)
            .where(
                canonical_events.c.status == "parked",
                canonical_events.c.key_kind == key.kind,
                canonical_events.c.key_value == key.value,
            )
            .order_by(canonical_events.c.occurred_at, canonical_events.c.id)
        ).all()
        for row in parked:
            event = CanonicalEvent(row.type, key, as_utc(row.occurred_at), row.data)
            conn.execute(
                update(canonical_events)
                .where(canonical_events.c.id == row.id)
                .values(account_id=account_id, status="applied", applied_at=now)
            )
            if state.apply(conn, account_id, event, row.id, now):
                changed.add(account_id)
            play_step.on_event(conn, account_id, event, now)
    return changed
