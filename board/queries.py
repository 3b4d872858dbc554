"""What the board's list and account pages read: the ranked book with its filters and paging, and
one account's scores, evidence, plays and series; read-only."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, String, cast, exists, func, or_, select

from expansion.db import as_utc
from expansion.models import (
    account_attributes,
    account_current_scores,
    account_links,
    account_scores,
    accounts,
)
from expansion.play_tables import play_instances, play_steps, sla_breaches
from expansion.plays_admin import PlayView, account_plays
from workers.owners import resolve_owner
from workers.play_rules import PRIORITIES, PlayRules

RUNNING = ("opened", "step")
OPEN_STEPS = ("open", "overdue")
# Who a CSM's view shows: accounts whose running play they own, or where a CRM field of these
# roles names them.
OWNER_ROLES = ("csm", "account_owner")


@dataclass(frozen=True)
class Filters:
    owner: str | None = None
    play: str | None = None
    page: int = 1
    per_page: int = 50


@dataclass(frozen=True)
class NextStep:
    name: str
    due_on: date
    overdue: bool


@dataclass(frozen=True)
class CurrentPlay:
    play: str
    state: str
    owner: str | None
    owner_role: str | None


@dataclass(frozen=True)
class RankedAccount:
    rank: int
    account_id: int
    name: str
    readiness_score: float
    readiness_band: str
    health_score: float | None
    health_band: str
    health_trend: str
    gate: str
    timing_window: str
    days_to_renewal: int | None
    top_signal: dict[str, Any] | None  # name, category, strength, evidence
    play: CurrentPlay | None
    owner: str | None
    owner_role: str | None
    next_step: NextStep | None


@dataclass(frozen=True)
class Page:
    rows: list[RankedAccount]
    total: int
    page: int
    pages: int
    per_page: int


def owner_fields(rules: PlayRules) -> list[str]:
    """The account attributes (crm.*) that name the owners a CSM's view matches."""
    return [f"crm.{field}" for role in OWNER_ROLES for field in rules.owners.roles[role].fields]


def ranked(conn: Connection, filters: Filters, rules: PlayRules, today: date) -> Page:
    """Scored accounts by readiness (then health), filtered, one page of them."""
    scores = account_current_scores.c
    query = (
        select(
            scores.account_id,
            accounts.c.name,
            scores.readiness_score,
            scores.readiness_band,
            scores.health_score,
            scores.health_band,
            scores.gate,
            scores.timing_window,
            account_scores.c.health_trend,
            account_scores.c.days_to_renewal,
            account_scores.c.signals,
        )
        .select_from(
            account_current_scores.join(accounts, accounts.c.id == scores.account_id).join(
                account_scores, account_scores.c.id == scores.score_id
            )
        )
        .where(*_conditions(filters, rules))
    )
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    pages = max((total + filters.per_page - 1) // filters.per_page, 1)
    page = min(max(filters.page, 1), pages)
    rows = conn.execute(
        query.order_by(
            scores.readiness_score.desc(),
            scores.health_score.is_(None),
            scores.health_score.desc(),
            scores.account_id,
        )
        .limit(filters.per_page)
        .offset((page - 1) * filters.per_page)
    ).all()
    ids = [row.account_id for row in rows]
    plays = _current_plays(conn, ids, filters.play)
    steps = _next_steps(conn, ids, today)
    crm = _crm_owners(conn, ids, rules)
    first = (page - 1) * filters.per_page
    return Page(
        [
            _ranked_row(first + i + 1, row, plays.get(row.account_id), steps, crm)
            for i, row in enumerate(rows)
        ],
        total,
        page,
        pages,
        filters.per_page,
    )


def _conditions(filters: Filters, rules: PlayRules) -> list[Any]:
    scores = account_current_scores.c
    active = play_instances.c.closed_at.is_(None)
    conditions = []
    if filters.play:
        conditions.append(
            exists().where(
                play_instances.c.account_id == scores.account_id,
                play_instances.c.play == filters.play,
                active,
            )
        )
    if filters.owner:
        # Attribute values are JSON: "csm-1" as a string, 123 as a HubSpot owner number.
        stored = [json.dumps(filters.owner)] + ([filters.owner] if filters.owner.isdigit() else [])
        conditions.append(
            or_(
                exists().where(
                    play_instances.c.account_id == scores.account_id,
                    play_instances.c.owner == filters.owner,
                    active,
                ),
                exists().where(
                    account_attributes.c.account_id == scores.account_id,
                    account_attributes.c.name.in_(owner_fields(rules)),
                    cast(account_attributes.c.value, String).in_(stored),
                ),
            )
        )
    return conditions


def _ranked_row(
    rank: int,
    row: Any,
    play: CurrentPlay | None,
    steps: dict[int, NextStep],
    crm: dict[int, tuple[str, str]],
) -> RankedAccount:
    signals = row.signals or []
    owner, role = (
        (play.owner, play.owner_role)
        if play and play.owner
        else crm.get(row.account_id, (None, None))
    )
    return RankedAccount(
        rank=rank,
        account_id=row.account_id,
        name=row.name or f"account {row.account_id}",
        readiness_score=row.readiness_score,
        readiness_band=row.readiness_band,
        health_score=row.health_score,
        health_band=row.health_band,
        health_trend=row.health_trend,
        gate=row.gate,
        timing_window=row.timing_window,
        days_to_renewal=row.days_to_renewal,
        top_signal=signals[0] if signals else None,
        play=play,
        owner=owner,
        owner_role=role,
        next_step=steps.get(row.account_id),
    )


def _current_plays(
    conn: Connection, ids: Sequence[int], play: str | None
) -> dict[int, CurrentPlay]:
    """Per account the play to show: the filtered type, else running before waiting, the most
    urgent priority first, then the oldest."""
    if not ids:
        return {}
    query = select(play_instances).where(
        play_instances.c.account_id.in_(ids), play_instances.c.closed_at.is_(None)
    )
    if play:
        query = query.where(play_instances.c.play == play)
    rank = {priority: i for i, priority in enumerate(PRIORITIES)}
    chosen: dict[int, Any] = {}
    for row in conn.execute(query).mappings():
        key = (row["state"] not in RUNNING, rank.get(row["priority"], 9), row["id"])
        held = chosen.get(row["account_id"])
        if held is None or key < held[0]:
            chosen[row["account_id"]] = (key, row)
    return {
        account: CurrentPlay(row["play"], row["state"], row["owner"], row["owner_role"])
        for account, (_, row) in chosen.items()
    }


def _next_steps(conn: Connection, ids: Sequence[int], today: date) -> dict[int, NextStep]:
    """The earliest due open step of each account's running plays."""
    if not ids:
        return {}
    rows = conn.execute(
        select(play_instances.c.account_id, play_steps.c.name, play_steps.c.due_on)
        .join(play_instances, play_instances.c.id == play_steps.c.play_id)
        .where(
            play_instances.c.account_id.in_(ids),
            play_instances.c.closed_at.is_(None),
            play_steps.c.status.in_(OPEN_STEPS),
        )
        .order_by(play_steps.c.due_on, play_steps.c.id)
    ).all()
    found: dict[int, NextStep] = {}
    for account, name, due_on in rows:
        found.setdefault(account, NextStep(name, due_on, due_on < today))
    return found


def _crm_owners(
    conn: Connection, ids: Sequence[int], rules: PlayRules
) -> dict[int, tuple[str, str]]:
    """The CSM (else the account owner) the CRM names, for accounts without a running play."""
    if not ids:
        return {}
    crm: dict[int, dict[str, Any]] = {}
    for account, name, value in conn.execute(
        select(
            account_attributes.c.account_id, account_attributes.c.name, account_attributes.c.value
        ).where(
            account_attributes.c.account_id.in_(ids),
            account_attributes.c.name.in_(owner_fields(rules)),
        )
    ).all():
        crm.setdefault(account, {})[name.removeprefix("crm.")] = value
    found = {}
    for account, fields in crm.items():
        for role in OWNER_ROLES:
            owner = resolve_owner(role, fields, rules.owners)
            if not owner.is_fallback:
                found[account] = (owner.assignee, rules.owners.roles[role].label)
                break
    return found


def owners(conn: Connection, rules: PlayRules) -> list[str]:
    """Everyone the owner filter can select: running plays' owners and the CRM's owners."""
    names = set(
        conn.execute(
            select(play_instances.c.owner)
            .where(play_instances.c.closed_at.is_(None), play_instances.c.owner.is_not(None))
            .distinct()
        ).scalars()
    )
    stored = conn.execute(
        select(cast(account_attributes.c.value, String))
        .where(account_attributes.c.name.in_(owner_fields(rules)))
        .distinct()
    ).scalars()
    for raw in stored:
        value = json.loads(raw) if raw else None
        if value is not None and str(value).strip():
            names.add(str(value).strip())
    return sorted(names)


@dataclass(frozen=True)
class BookSummary:
    accounts: int
    readiness: dict[str, int]
    health: dict[str, int]
    running_plays: int
    overdue_steps: int
    breaches: int


def summary(conn: Connection, today: date) -> BookSummary:
    scores = account_current_scores.c

    def counted(column: Any) -> dict[str, int]:
        return dict(conn.execute(select(column, func.count()).group_by(column)).all())

    return BookSummary(
        accounts=conn.execute(
            select(func.count()).select_from(account_current_scores)
        ).scalar_one(),
        readiness=counted(scores.readiness_band),
        health=counted(scores.health_band),
        running_plays=conn.execute(
            select(func.count()).where(play_instances.c.state.in_(RUNNING))
        ).scalar_one(),
        overdue_steps=conn.execute(
            select(func.count())
            .select_from(play_steps.join(play_instances))
            .where(
                play_instances.c.closed_at.is_(None),
                play_steps.c.status.in_(OPEN_STEPS),
                play_steps.c.due_on < today,
            )
        ).scalar_one(),
        breaches=conn.execute(select(func.count()).select_from(sla_breaches)).scalar_one(),
    )


# --- one account -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScorePoint:
    as_of: date
    computed_at: datetime
    health_score: float | None
    readiness_score: float


@dataclass(frozen=True)
class AccountDetail:
    account_id: int
    name: str
    links: list[tuple[str, str]]
    score: dict[str, Any] | None  # the current history row (with its evidence), None: unscored
    plays: list[PlayView]
    breaches: dict[int, list[dict[str, Any]]]  # play id -> its SLA breaches
    history: list[ScorePoint]


def account_detail(conn: Connection, account_id: int) -> AccountDetail | None:
    row = conn.execute(select(accounts).where(accounts.c.id == account_id)).mappings().first()
    if row is None:
        return None
    links = conn.execute(
        select(account_links.c.kind, account_links.c.external_id)
        .where(account_links.c.account_id == account_id)
        .order_by(account_links.c.kind, account_links.c.external_id)
    ).all()
    score = (
        conn.execute(
            select(account_scores)
            .join(account_current_scores, account_current_scores.c.score_id == account_scores.c.id)
            .where(account_current_scores.c.account_id == account_id)
        )
        .mappings()
        .first()
    )
    plays = account_plays(conn, account_id)
    return AccountDetail(
        account_id=account_id,
        name=row["name"] or f"account {account_id}",
        links=[(kind, value) for kind, value in links],
        score=dict(score) if score else None,
        plays=plays,
        breaches=_breaches(conn, [play.play_id for play in plays]),
        history=score_history(conn, account_id),
    )


def _breaches(conn: Connection, play_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {}
    if not play_ids:
        return found
    rows = conn.execute(
        select(sla_breaches, play_steps.c.name.label("step"))
        .join(play_steps, play_steps.c.id == sla_breaches.c.step_id)
        .where(sla_breaches.c.play_id.in_(play_ids))
        .order_by(sla_breaches.c.breached_at)
    ).mappings()
    for breach in rows:
        found.setdefault(breach["play_id"], []).append(
            {**breach, "breached_at": as_utc(breach["breached_at"])}
        )
    return found


def score_history(conn: Connection, account_id: int) -> list[ScorePoint]:
    """The stored results, the last one of each day."""
    rows = conn.execute(
        select(
            account_scores.c.as_of,
            account_scores.c.computed_at,
            account_scores.c.health_score,
            account_scores.c.readiness_score,
        )
        .where(account_scores.c.account_id == account_id)
        .order_by(account_scores.c.as_of, account_scores.c.computed_at, account_scores.c.id)
    ).all()
    by_day = {row.as_of: ScorePoint(row.as_of, as_utc(row.computed_at), *row[2:]) for row in rows}
    return list(by_day.values())
