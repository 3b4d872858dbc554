"""When the pipeline has settled: no inbox row pending, no recompute scheduled or running, no CRM
write pending or flushing, and no sandbox webhook (an echo of our own writes) on its way back."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from expansion.db import transaction
from expansion.models import inbox_events
from expansion.play_tables import outbox
from expansion.settings import Settings
from integration.writers import schedule
from workers.recompute import KEY_PREFIX, redis_client


@dataclass(frozen=True)
class Backlog:
    inbox: int  # inbox rows pending
    recomputes: int  # accounts with a recompute scheduled or running
    writes: int  # outbox intents pending
    flushing: bool  # a CRM flush is running or about to
    webhooks: int  # sandbox changes not yet delivered to the receiver

    @property
    def empty(self) -> bool:
        return not (self.inbox or self.recomputes or self.writes or self.flushing or self.webhooks)

    def describe(self) -> str:
        flush = ", flushing" if self.flushing else ""
        return (
            f"inbox pending {self.inbox:,}, recomputes {self.recomputes:,}, "
            f"CRM writes pending {self.writes:,}{flush}, webhooks back {self.webhooks:,}"
        )


def backlog(settings: Settings, webhooks: int) -> Backlog:
    with transaction(settings) as conn:
        inbox = conn.execute(
            select(func.count()).select_from(inbox_events).where(inbox_events.c.status == "pending")
        ).scalar_one()
        writes = conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.status == "pending")
        ).scalar_one()
    client = redis_client(settings)
    recomputes = {
        key.rsplit(b":", 1)[-1] for key in client.scan_iter(f"{KEY_PREFIX}:*", count=1000)
    }
    flushing = schedule.flushing(settings)
    return Backlog(inbox, len(recomputes), writes, flushing, webhooks)
