"""The outbox of CRM write intents (SPEC §6): set account fields, create or update a task. Plays
enqueue them in their own transaction; the CRM writers claim, send and mark them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from expansion.models import account_links
from expansion.play_tables import outbox

KINDS = ("set_fields", "create_task", "update_task")
STATUSES = ("pending", "sent", "failed", "dead")
MAX_ATTEMPTS = 8  # a failed intent is retried until this many attempts, then dead
CLAIM_LEASE = timedelta(minutes=5)  # a claim older than this is taken again (a writer died)
CRM_KINDS = ("salesforce", "hubspot")


@dataclass(frozen=True)
class Intent:
    id: int
    kind: str
    external_key: str
    account_id: int | None
    crm: str | None
    crm_id: str | None
    payload: dict[str, Any]
    attempts: int


def enqueue_intent(
    conn: Connection,
    kind: str,
    external_key: str,
    payload: Mapping[str, Any],
    now: datetime,
    account_id: int | None = None,
) -> int | None:
    """Add an intent; returns its id, or None when a create_task with this external key is
    already queued (a retry never makes a second task). The target CRM record is the account's
    CRM link at enqueue time, when it has one."""
    if kind not in KINDS:
        raise ValueError(f"unknown intent kind {kind!r}; known: {', '.join(KINDS)}")
    crm, crm_id = _crm_target(conn, account_id)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(outbox)
        .values(
            account_id=account_id,
            crm=crm,
            crm_id=crm_id,
            kind=kind,
            external_key=external_key,
            payload=dict(payload),
            status="pending",
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
        .returning(outbox.c.id)
    )
    return conn.execute(statement).scalar()


def claim_pending(conn: Connection, now: datetime, limit: int = 100) -> list[Intent]:
    """Up to `limit` intents to send, oldest first: pending ones, failed ones to retry, and
    claims older than the lease. Each is marked claimed in the caller's transaction."""
    stale = now - CLAIM_LEASE
    ready = and_(
        outbox.c.status.in_(("pending", "failed")),
        or_(outbox.c.claimed_at.is_(None), outbox.c.claimed_at < stale),
    )
    query = select(outbox).where(ready).order_by(outbox.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = conn.execute(query).mappings().all()
    if rows:
        ids = [row["id"] for row in rows]
        conn.execute(update(outbox).where(outbox.c.id.in_(ids)).values(claimed_at=now))
    return [_intent(row) for row in rows]


def mark_sent(conn: Connection, intent_id: int, now: datetime) -> None:
    conn.execute(
        update(outbox)
        .where(outbox.c.id == intent_id)
        .values(
            status="sent",
            attempts=outbox.c.attempts + 1,
            last_error=None,
            claimed_at=None,
            updated_at=now,
        )
    )


def mark_failed(
    conn: Connection,
    intent_id: int,
    error: str,
    now: datetime,
    permanent: bool = False,
    max_attempts: int = MAX_ATTEMPTS,
) -> str:
    """Record a failed send; returns the new status: failed (retried later) or dead (a
    permanent error, or the last attempt)."""
    attempts = conn.execute(select(outbox.c.attempts).where(outbox.c.id == intent_id)).scalar_one()
    attempts += 1
    status = "dead" if permanent or attempts >= max_attempts else "failed"
    conn.execute(
        update(outbox)
        .where(outbox.c.id == intent_id)
        .values(status=status, attempts=attempts, last_error=error, claimed_at=None, updated_at=now)
    )
    return status


def summary(conn: Connection) -> dict[str, dict[str, int]]:
    """Counts by kind and status, every kind and status listed (zero when none): for the CLI."""
    counts = {kind: dict.fromkeys(STATUSES, 0) for kind in KINDS}
    rows = conn.execute(
        select(outbox.c.kind, outbox.c.status, func.count()).group_by(
            outbox.c.kind, outbox.c.status
        )
    )
    for kind, status, count in rows:
        counts.setdefault(kind, dict.fromkeys(STATUSES, 0))[status] = count
    return counts


def summary_lines(conn: Connection) -> list[str]:
    """The summary as aligned text lines, one per kind."""
    lines = [f"{'kind':<12} " + " ".join(f"{s:>8}" for s in STATUSES)]
    for kind, counts in summary(conn).items():
        lines.append(f"{kind:<12} " + " ".join(f"{counts[s]:>8}" for s in STATUSES))
    return lines


def last_fields(conn: Connection, account_id: int) -> dict[str, Any]:
    """The latest value of each account field across the account's set_fields intents."""
    rows = conn.execute(
        select(outbox.c.payload)
        .where(outbox.c.account_id == account_id, outbox.c.kind == "set_fields")
        .order_by(outbox.c.id)
    ).scalars()
    values: dict[str, Any] = {}
    for payload in rows:
        values.update(payload.get("fields", {}))
    return values


def _crm_target(conn: Connection, account_id: int | None) -> tuple[str | None, str | None]:
    if account_id is None:
        return None, None
    row = conn.execute(
        select(account_links.c.kind, account_links.c.external_id)
        .where(account_links.c.account_id == account_id, account_links.c.kind.in_(CRM_KINDS))
        .order_by(account_links.c.kind.desc())  # salesforce before hubspot
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else (None, None)


def _intent(row: Mapping[str, Any]) -> Intent:
    return Intent(
        id=row["id"],
        kind=row["kind"],
        external_key=row["external_key"],
        account_id=row["account_id"],
        crm=row["crm"],
        crm_id=row["crm_id"],
        payload=row["payload"],
        attempts=row["attempts"],
    )
