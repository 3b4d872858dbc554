"""Exactly-once, checked in the database after a fault run: one inbox row per accepted event,
one canonical event per row, and every account's counter and seats matching what was sent."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select

from bench.faults.events import Event
from expansion.db import transaction
from expansion.models import (
    account_attributes,
    account_links,
    accounts,
    canonical_events,
    inbox_events,
)
from expansion.settings import Settings


def pending_count(settings: Settings) -> int:
    with transaction(settings) as conn:
        return conn.execute(
            select(func.count()).select_from(inbox_events).where(inbox_events.c.status == "pending")
        ).scalar_one()


def done_count(settings: Settings) -> int:
    with transaction(settings) as conn:
        return conn.execute(
            select(func.count()).select_from(inbox_events).where(inbox_events.c.status != "pending")
        ).scalar_one()


def claimed_unfinished(settings: Settings) -> set[int]:
    """Rows a worker claimed (attempt counted) but did not finish: in flight, or orphaned."""
    with transaction(settings) as conn:
        return set(
            conn.execute(
                select(inbox_events.c.id).where(
                    inbox_events.c.status == "pending", inbox_events.c.attempts > 0
                )
            ).scalars()
        )


@dataclass(frozen=True)
class Ledger:
    accepted: int
    inbox_rows: int
    statuses: dict[str, int]
    missing: list[str]  # accepted event ids without an inbox row
    extra_canonical: list[int]  # inbox ids whose canonical event count is not exactly one
    applied: int
    parked: int
    counter_total: int  # sum(accounts.events_applied)
    account_mismatch: list[str]  # CRM ids whose events_applied differs from events sent
    seat_mismatch: list[str]  # CRM ids whose seats differ from their latest subscription event
    dead: list[tuple[int, str]]
    retried: int  # rows claimed more than once (a kill or a redelivery)
    swept: int  # rows the sweeper enqueued again

    def problems(self) -> list[str]:
        found = []
        if self.missing:
            found.append(f"{len(self.missing)} accepted events have no inbox row")
        if self.inbox_rows != self.accepted:
            found.append(f"{self.inbox_rows} inbox rows for {self.accepted} accepted events")
        if self.extra_canonical:
            found.append(f"{len(self.extra_canonical)} rows without exactly 1 canonical event")
        if self.statuses.get("pending"):
            found.append(f"{self.statuses['pending']} rows still pending")
        if self.parked:
            found.append(f"{self.parked} canonical events still parked")
        if self.counter_total != self.applied:
            found.append(f"sum(events_applied)={self.counter_total} != applied={self.applied}")
        if self.applied != self.accepted:
            found.append(f"{self.applied} events applied for {self.accepted} accepted")
        if self.account_mismatch:
            found.append(f"{len(self.account_mismatch)} accounts with a wrong events_applied")
        if self.seat_mismatch:
            found.append(f"{len(self.seat_mismatch)} accounts with wrong seats")
        found.extend(f"dead row {row_id}: {error}" for row_id, error in self.dead)
        return found


def ledger(settings: Settings, events: list[Event], accepted: set[int]) -> Ledger:
    sent = [events[index] for index in sorted(accepted)]
    with transaction(settings) as conn:
        rows = conn.execute(
            select(
                inbox_events.c.id,
                inbox_events.c.dedup_key,
                inbox_events.c.status,
                inbox_events.c.attempts,
                inbox_events.c.swept_at,
                inbox_events.c.last_error,
            )
        ).all()
        per_row = Counter(conn.execute(select(canonical_events.c.inbox_id)).scalars())
        canonical_status = Counter(conn.execute(select(canonical_events.c.status)).scalars())
        counter_total = conn.execute(select(func.sum(accounts.c.events_applied))).scalar() or 0
        counters = dict(
            conn.execute(
                select(account_links.c.external_id, accounts.c.events_applied)
                .join(accounts, accounts.c.id == account_links.c.account_id)
                .where(account_links.c.kind == "salesforce")
            ).all()
        )
        seats = dict(
            conn.execute(
                select(account_links.c.external_id, account_attributes.c.value)
                .join(
                    account_attributes,
                    account_attributes.c.account_id == account_links.c.account_id,
                )
                .where(
                    account_links.c.kind == "salesforce",
                    account_attributes.c.name == "subscription.seats",
                )
            ).all()
        )
    stored = {row.dedup_key for row in rows}
    expected_counts = Counter(event.crm_account_id for event in sent)
    latest_seats: dict[str, int] = {}
    for event in sorted(sent, key=lambda e: e.created):
        if event.seats is not None:
            latest_seats[event.crm_account_id] = event.seats
    return Ledger(
        accepted=len(sent),
        inbox_rows=len(rows),
        statuses=dict(Counter(row.status for row in rows)),
        missing=[event.event_id for event in sent if event.event_id not in stored],
        extra_canonical=[
            row.id for row in rows if row.status == "processed" and per_row[row.id] != 1
        ]
        + [row.id for row in rows if row.status != "processed" and per_row[row.id]],
        applied=canonical_status["applied"],
        parked=canonical_status["parked"],
        counter_total=counter_total,
        account_mismatch=sorted(
            crm for crm, count in expected_counts.items() if counters.get(crm) != count
        ),
        seat_mismatch=sorted(crm for crm, value in latest_seats.items() if seats.get(crm) != value),
        dead=[(row.id, row.last_error or "") for row in rows if row.status == "dead"],
        retried=sum(1 for row in rows if row.attempts > 1),
        swept=sum(1 for row in rows if row.swept_at is not None),
    )
