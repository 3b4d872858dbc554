"""The outbox of CRM write intents (SPEC §6): set account fields, create or update a task. Plays
enqueue them in their own transaction; the CRM writers claim, send and mark them."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from expansion.bulk import copy_rows, one_of
from expansion.models import account_links
from expansion.play_tables import outbox, play_steps
from integration.canonical import AccountKey, Alias
from workers import identity

KINDS = ("set_fields", "create_task", "update_task")
STATUSES = ("pending", "sent", "failed", "dead")
MAX_ATTEMPTS = 8  # a failed intent is retried until this many attempts, then dead
CLAIM_LEASE = timedelta(minutes=5)  # a claim older than this is taken again (a writer died)
CRM_KINDS = ("salesforce", "hubspot")
NO_CRM = "none"  # the target of an intent whose account has no Salesforce or HubSpot record
CrmTarget = tuple[str | None, str | None]  # (salesforce | hubspot, the account's id there)


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
    target: CrmTarget | None = None,
) -> int | None:
    """Add an intent; returns its id, or None when a create_task with this external key is
    already queued (a retry never makes a second task). The target CRM record is the account's
    CRM link at enqueue time, when it has one (`target`: as the caller already read it with
    `crm_targets`)."""
    values = _intent_values(conn, kind, external_key, payload, now, account_id, target)
    return conn.execute(_insert_intent(conn.dialect.name), values).scalar()


def queue_intent(
    conn: Connection,
    kind: str,
    external_key: str,
    payload: Mapping[str, Any],
    now: datetime,
    account_id: int | None = None,
    target: CrmTarget | None = None,
) -> None:
    """`enqueue_intent`, or within `intents_deferred` on this connection, one row of the
    single insert it makes at the end."""
    deferred = conn.info.get(_DEFERRED)
    if deferred is None:
        enqueue_intent(conn, kind, external_key, payload, now, account_id, target)
    else:
        deferred.append(_intent_values(conn, kind, external_key, payload, now, account_id, target))


_DEFERRED = "es.outbox.deferred"  # conn.info key: the intents queued but not yet inserted


@contextmanager
def intents_deferred(conn: Connection) -> Iterator[None]:
    """Within it, `queue_intent` collects the intents, inserted in order (ids follow the order
    queued) in one statement when the block ends without an error: a rescore batch queues one
    or more per account, one round trip each otherwise. Nothing read within the block sees
    them."""
    deferred: list[dict[str, Any]] = []
    conn.info[_DEFERRED] = deferred
    try:
        yield
    finally:
        conn.info.pop(_DEFERRED, None)
    copy_rows(conn, outbox, deferred, on_conflict=_queued_once)


def _queued_once(insert: Any) -> Any:
    """A create_task whose external key is already queued is not queued again."""
    return insert.on_conflict_do_nothing()


def _intent_values(
    conn: Connection,
    kind: str,
    external_key: str,
    payload: Mapping[str, Any],
    now: datetime,
    account_id: int | None,
    target: CrmTarget | None,
) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"unknown intent kind {kind!r}; known: {', '.join(KINDS)}")
    crm, crm_id = target if target is not None else _crm_target(conn, account_id)
    return {
        "account_id": account_id,
        "crm": crm,
        "crm_id": crm_id,
        "kind": kind,
        "external_key": external_key,
        "payload": dict(payload),
        "status": "pending",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


@cache
def _insert_intent(dialect_name: str) -> Any:
    """Built once: plays enqueue intents for thousands of accounts in a rescore batch."""
    return _insert_intents(dialect_name).returning(outbox.c.id)


@cache
def _insert_intents(dialect_name: str) -> Any:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(outbox).on_conflict_do_nothing()


def claim_pending(
    conn: Connection, now: datetime, limit: int = 100, crm: str | Collection[str] | None = None
) -> list[Intent]:
    """Up to `limit` intents to send, oldest first: pending ones, failed ones to retry, and
    claims older than the lease. Each is marked claimed in the caller's transaction. `crm`: only
    intents bound for that CRM (or any of several; NO_CRM names those with no CRM record), so
    that each CRM's flush claims its own; None takes them all."""
    stale = now - CLAIM_LEASE
    ready = and_(
        outbox.c.status.in_(("pending", "failed")),
        or_(outbox.c.claimed_at.is_(None), outbox.c.claimed_at < stale),
    )
    query = select(outbox).where(ready).order_by(outbox.c.id).limit(limit)
    if crm is not None:
        query = query.where(_TARGET_CRM.in_([crm] if isinstance(crm, str) else list(crm)))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = conn.execute(query).mappings().all()
    if rows:
        ids = [row["id"] for row in rows]
        conn.execute(update(outbox).where(outbox.c.id.in_(ids)).values(claimed_at=now))
    return [_intent(row) for row in rows]


def _linked_to(kind: str) -> Any:
    return exists().where(
        account_links.c.account_id == outbox.c.account_id, account_links.c.kind == kind
    )


# The CRM an intent goes to, as the flush routes it (integration/writers/plan.py `targets`): the
# hint stored at enqueue time, else the account's link now (salesforce before hubspot).
_TARGET_CRM = case(
    (and_(outbox.c.crm.is_not(None), outbox.c.crm_id.is_not(None)), outbox.c.crm),
    (_linked_to("salesforce"), "salesforce"),
    (_linked_to("hubspot"), "hubspot"),
    else_=NO_CRM,
)


def unsent(conn: Connection, account_id: int | None = None) -> list[Intent]:
    """The intents a flush would send now (pending or failed), oldest first, of one account or
    all; nothing is claimed (the dry run reads them)."""
    query = select(outbox).where(outbox.c.status.in_(("pending", "failed"))).order_by(outbox.c.id)
    if account_id is not None:
        query = query.where(outbox.c.account_id == account_id)
    return [_intent(row) for row in conn.execute(query).mappings()]


def mark_sent(
    conn: Connection, intent_id: int, now: datetime, crm_record_id: str | None = None
) -> None:
    """The CRM confirmed the write. `crm_record_id`: the id the CRM gave the task a
    create_task made; it is kept on the play step, and a HubSpot task is routed to its company,
    so that the task's completion (HubSpot names the task by this id) reaches the play, one
    that came before this confirmation (parked until now) included."""
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
    if crm_record_id is not None:
        _record_task_id(conn, intent_id, crm_record_id, now)


def _record_task_id(conn: Connection, intent_id: int, crm_task_id: str, now: datetime) -> None:
    row = conn.execute(
        select(
            outbox.c.kind, outbox.c.external_key, outbox.c.account_id, outbox.c.crm, outbox.c.crm_id
        ).where(outbox.c.id == intent_id)
    ).one()
    if row.kind != "create_task":
        return
    conn.execute(
        update(play_steps)
        .where(play_steps.c.task_key == row.external_key)
        .values(crm_task_id=crm_task_id)
    )
    # An account linked to its CRM record after the task was queued has no hint: its link now.
    crm, crm_id = (row.crm, row.crm_id) if row.crm_id else _crm_target(conn, row.account_id)
    if crm != "hubspot" or crm_id is None:
        return
    task = AccountKey("hubspot_task", crm_task_id)
    identity.add_alias(conn, Alias(task, AccountKey("hubspot", crm_id)), now)
    # A completion HubSpot sent before this confirmation was parked (the task reached no
    # account then): it completes its step now.
    from workers.ingest import release_routed  # ingest -> play_step -> outbox: import cycle

    release_routed(conn, [task], now)


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
    return last_fields_many(conn, [account_id])[account_id]


def last_fields_many(conn: Connection, account_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """`last_fields` of each account, in one query (a rescore batch)."""
    dialect = conn.dialect.name
    rows = conn.execute(
        select(outbox.c.account_id, outbox.c.payload)
        .where(one_of(outbox.c.account_id, account_ids, dialect), outbox.c.kind == "set_fields")
        .order_by(outbox.c.id)
    )
    values: dict[int, dict[str, Any]] = {account_id: {} for account_id in account_ids}
    for account_id, payload in rows:
        values[account_id].update(payload.get("fields", {}))
    return values


def crm_targets(conn: Connection, account_ids: Sequence[int]) -> dict[int, CrmTarget]:
    """Each account's CRM record intents go to (salesforce before hubspot), or (None, None)
    without a CRM link; in one query (a rescore batch)."""
    rows = conn.execute(
        select(account_links.c.account_id, account_links.c.kind, account_links.c.external_id)
        .where(
            one_of(account_links.c.account_id, account_ids, conn.dialect.name),
            account_links.c.kind.in_(CRM_KINDS),
        )
        .order_by(account_links.c.kind.desc())
    )
    targets: dict[int, CrmTarget] = {}
    for account_id, kind, external_id in rows:
        targets.setdefault(account_id, (kind, external_id))
    return {account_id: targets.get(account_id, (None, None)) for account_id in account_ids}


def _crm_target(conn: Connection, account_id: int | None) -> CrmTarget:
    if account_id is None:
        return None, None
    row = conn.execute(_CRM_TARGET, {"account": account_id}).first()
    return (row[0], row[1]) if row else (None, None)


_CRM_TARGET = (
    select(account_links.c.kind, account_links.c.external_id)
    .where(account_links.c.account_id == bindparam("account"), account_links.c.kind.in_(CRM_KINDS))
    .order_by(account_links.c.kind.desc())  # salesforce before hubspot
    .limit(1)
)


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
