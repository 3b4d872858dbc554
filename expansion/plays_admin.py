"""Read-only view of an account's plays for the CLI: each play with its owner and state, its
steps with due dates and status, and the SLA breaches recorded against it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, select

from expansion.play_tables import play_instances, play_steps, sla_breaches


@dataclass(frozen=True)
class StepView:
    index: int
    name: str
    owner: str | None
    due_on: date
    status: str
    completed_at: datetime | None


@dataclass(frozen=True)
class PlayView:
    play_id: int
    play: str
    state: str
    owner: str | None
    readiness_at_open: float
    opened_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    steps: tuple[StepView, ...]
    breaches: int


def account_plays(conn: Connection, account_id: int) -> list[PlayView]:
    """Every play of the account, newest first."""
    plays = conn.execute(
        select(play_instances)
        .where(play_instances.c.account_id == account_id)
        .order_by(play_instances.c.created_at.desc(), play_instances.c.id.desc())
    ).mappings()
    views = []
    for play in plays:
        steps = conn.execute(
            select(play_steps)
            .where(play_steps.c.play_id == play["id"])
            .order_by(play_steps.c.step_index)
        ).mappings()
        breaches = conn.execute(
            select(sla_breaches.c.id).where(sla_breaches.c.play_id == play["id"])
        ).all()
        views.append(
            PlayView(
                play_id=play["id"],
                play=play["play"],
                state=play["state"],
                owner=play["owner"],
                readiness_at_open=play["readiness_at_open"],
                opened_at=play["opened_at"],
                closed_at=play["closed_at"],
                close_reason=play["close_reason"],
                steps=tuple(
                    StepView(
                        s["step_index"],
                        s["name"],
                        s["owner"],
                        s["due_on"],
                        s["status"],
                        s["completed_at"],
                    )
                    for s in steps
                ),
                breaches=len(breaches),
            )
        )
    return views
