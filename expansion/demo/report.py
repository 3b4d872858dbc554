"""What a demo run left in the database: inbox rows per source and status, the accounts touched
with their links and attributes, canonical events per type and source, and parked events."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from expansion.db import transaction
from expansion.models import (
    account_attributes,
    account_links,
    accounts,
    canonical_events,
    inbox_events,
)
from expansion.settings import Settings


@dataclass(frozen=True)
class AccountView:
    id: int
    name: str | None
    events_applied: int
    links: list[str]
    attributes: dict[str, Any]


@dataclass
class RunReport:
    """Everything stored and applied for inbox rows with an id above `after_id`."""

    inbox: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> status -> n
    errors: list[tuple[int, str, str, str]] = field(default_factory=list)  # dead/ignored rows
    events: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    parked: list[tuple[str, str, str]] = field(default_factory=list)  # source, type, key
    accounts: list[AccountView] = field(default_factory=list)

    def pending(self) -> int:
        return sum(by_status.get("pending", 0) for by_status in self.inbox.values())

    def dead(self) -> int:
        return sum(by_status.get("dead", 0) for by_status in self.inbox.values())

    def applied_sources(self) -> set[str]:
        return {source for (source, _), n in self.events.items() if n.get("applied")}


def last_inbox_id(settings: Settings) -> int:
    with transaction(settings) as conn:
        return conn.execute(select(func.coalesce(func.max(inbox_events.c.id), 0))).scalar_one()


def pending_count(settings: Settings, after_id: int) -> int:
    with transaction(settings) as conn:
        return conn.execute(
            select(func.count())
            .select_from(inbox_events)
            .where(inbox_events.c.id > after_id, inbox_events.c.status == "pending")
        ).scalar_one()


def parked_count(settings: Settings, after_id: int) -> int:
    with transaction(settings) as conn:
        return conn.execute(
            select(func.count())
            .select_from(canonical_events)
            .where(canonical_events.c.inbox_id > after_id, canonical_events.c.status == "parked")
        ).scalar_one()


def collect(settings: Settings, after_id: int) -> RunReport:
    report = RunReport()
    with transaction(settings) as conn:
        rows = conn.execute(
            select(
                inbox_events.c.id,
                inbox_events.c.source,
                inbox_events.c.event_type,
                inbox_events.c.status,
                inbox_events.c.last_error,
            ).where(inbox_events.c.id > after_id)
        ).all()
        for row in rows:
            by_status = report.inbox.setdefault(row.source, {})
            by_status[row.status] = by_status.get(row.status, 0) + 1
            if row.status in ("dead", "ignored"):
                report.errors.append((row.id, row.source, row.status, row.last_error or ""))
        events = conn.execute(
            select(
                inbox_events.c.source,
                canonical_events.c.type,
                canonical_events.c.status,
                canonical_events.c.key_kind,
                canonical_events.c.key_value,
                canonical_events.c.account_id,
            )
            .join(inbox_events, inbox_events.c.id == canonical_events.c.inbox_id)
            .where(inbox_events.c.id > after_id)
            .order_by(canonical_events.c.id)
        ).all()
        counts: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        for event in events:
            by_status = counts[(event.source, event.type)]
            by_status[event.status] = by_status.get(event.status, 0) + 1
            if event.status == "parked":
                report.parked.append(
                    (event.source, event.type, f"{event.key_kind}:{event.key_value}")
                )
        report.events = dict(sorted(counts.items()))
        account_ids = sorted({e.account_id for e in events if e.account_id is not None})
        report.accounts = [_account(conn, account_id) for account_id in account_ids]
    return report


def _account(conn, account_id: int) -> AccountView:  # type: ignore[no-untyped-def]
    row = conn.execute(select(accounts).where(accounts.c.id == account_id)).one()
    links = conn.execute(
        select(account_links.c.kind, account_links.c.external_id)
        .where(account_links.c.account_id == account_id)
        .order_by(account_links.c.kind)
    ).all()
    attributes = conn.execute(
        select(account_attributes.c.name, account_attributes.c.value)
        .where(account_attributes.c.account_id == account_id)
        .order_by(account_attributes.c.name)
    ).all()
    return AccountView(
        id=row.id,
        name=row.name,
        events_applied=row.events_applied,
        links=[f"{kind}:{external_id}" for kind, external_id in links],
        attributes=dict(attributes),
    )
