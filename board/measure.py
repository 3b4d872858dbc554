"""The program's scoreboard (SPEC §8) from stored plays, steps, deals and score history: ARR and
conversion by signal and play, days to close, windows, load per owner, accuracy, first tasks."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import fmean, median
from typing import Any

from sqlalchemy import Connection, select

from expansion.db import as_utc
from expansion.models import account_scores
from expansion.play_tables import play_instances, play_outcomes, play_steps, sla_breaches
from workers.signals import CATEGORY

FINISHED = ("won", "lost", "stalled", "closed")
RUNNING = ("opened", "step")
ACCURACY_DAYS = 90  # §8: flagged accounts that expanded within 90 days
HOT = "hot"


@dataclass(frozen=True)
class Rate:
    hits: int
    total: int

    @property
    def share(self) -> float | None:
        return self.hits / self.total if self.total else None


@dataclass
class ArrRow:
    signal: str
    category: str
    deals: int = 0
    amount: float = 0.0


@dataclass
class PlayConversion:
    play: str
    opened: int = 0
    running: int = 0
    won: int = 0
    lost: int = 0
    stalled: int = 0
    closed: int = 0

    @property
    def rate(self) -> Rate:
        return Rate(self.won, self.won + self.lost + self.stalled + self.closed)


@dataclass(frozen=True)
class DaysToClose:
    play: str
    deals: int
    median_days: float
    mean_days: float


@dataclass
class OwnerLoad:
    owner: str
    role: str | None
    open_plays: int = 0
    overdue_steps: int = 0
    breaches: int = 0


@dataclass
class Accuracy:
    flag: str  # a signal name, or "hot" for the readiness band
    flagged: int = 0
    pending: int = 0  # flagged less than 90 days ago and not expanded yet
    expanded: int = 0

    @property
    def rate(self) -> Rate:
        return Rate(self.expanded, self.flagged - self.pending)


@dataclass
class Scoreboard:
    arr_by_signal: list[ArrRow] = field(default_factory=list)
    unattributed: ArrRow = field(default_factory=lambda: ArrRow("none", "-"))
    won_amount: float = 0.0
    deals: int = 0
    conversion_by_play: list[PlayConversion] = field(default_factory=list)  # expansion plays
    save_plays: PlayConversion = field(default_factory=lambda: PlayConversion("save_play"))
    conversion_by_signal: dict[str, Rate] = field(default_factory=dict)
    days_to_close: list[DaysToClose] = field(default_factory=list)
    windows: dict[str, int] = field(default_factory=dict)
    open_window: Rate = field(default_factory=lambda: Rate(0, 0))
    owners: list[OwnerLoad] = field(default_factory=list)
    accuracy: list[Accuracy] = field(default_factory=list)
    first_task_days: list[float] = field(default_factory=list)
    steps_on_time: Rate = field(default_factory=lambda: Rate(0, 0))

    @property
    def first_task_median(self) -> float | None:
        return median(self.first_task_days) if self.first_task_days else None


def scoreboard(conn: Connection, now: datetime) -> Scoreboard:
    board = Scoreboard()
    plays = [dict(r) for r in conn.execute(select(play_instances)).mappings()]
    outcomes = [dict(r) for r in conn.execute(select(play_outcomes)).mappings()]
    history = _score_history(conn)
    _arr(board, outcomes)
    _conversion(board, plays)
    _days_to_close(board, plays, outcomes)
    _windows(board, plays, history)
    _owners(conn, board, plays, now)
    _accuracy(board, history, outcomes, now)
    _steps(conn, board)
    return board


def _arr(board: Scoreboard, outcomes: Iterable[dict[str, Any]]) -> None:
    """Won amounts by the signals that opened the attributed play (a deal counts under each)."""
    rows: dict[str, ArrRow] = {}
    for outcome in outcomes:
        if not outcome["won"]:
            continue
        amount = outcome["amount"] or 0.0
        board.deals += 1
        board.won_amount += amount
        targets = [
            rows.setdefault(name, ArrRow(name, CATEGORY.get(name, "-")))
            for name in outcome["signals"] or []
        ] or [board.unattributed]
        for row in targets:
            row.deals += 1
            row.amount += amount
    board.arr_by_signal = sorted(rows.values(), key=lambda r: (-r.amount, r.signal))


def _conversion(board: Scoreboard, plays: Iterable[dict[str, Any]]) -> None:
    by_play: dict[str, PlayConversion] = {}
    by_signal: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for play in plays:
        if play["opened_at"] is None:
            continue  # waitlisted, or left the waitlist without running
        expansion = play["gate"] == "expansion"
        row = (
            by_play.setdefault(play["play"], PlayConversion(play["play"]))
            if expansion
            else board.save_plays
        )
        row.opened += 1
        state = play["state"]
        if state in RUNNING:
            row.running += 1
            continue
        if state in FINISHED:
            setattr(row, state, getattr(row, state) + 1)
        if not expansion:
            continue
        for signal in {s["name"] for s in play["signals"] or []}:
            by_signal[signal][0] += state == "won"
            by_signal[signal][1] += 1
    board.conversion_by_play = sorted(by_play.values(), key=lambda r: r.play)
    board.conversion_by_signal = {s: Rate(*counts) for s, counts in sorted(by_signal.items())}


def _days_to_close(
    board: Scoreboard, plays: Iterable[dict[str, Any]], outcomes: Iterable[dict[str, Any]]
) -> None:
    """From the play's trigger (when its signals opened or waitlisted it) to the won deal."""
    started = {p["id"]: as_utc(p["created_at"]) for p in plays}
    days: dict[str, list[float]] = defaultdict(list)
    for outcome in outcomes:
        if outcome["won"] and outcome["play_id"] in started:
            span = as_utc(outcome["closed_at"]) - started[outcome["play_id"]]
            days[outcome["play"]].append(span.total_seconds() / 86400)
    board.days_to_close = [
        DaysToClose(play, len(values), median(values), fmean(values))
        for play, values in sorted(days.items())
    ]


History = dict[int, list[tuple[datetime, str, str, list[str]]]]


def _score_history(conn: Connection) -> History:
    """Per account, oldest first: (computed_at, window, readiness band, active signal names)."""
    history: History = defaultdict(list)
    rows = conn.execute(
        select(
            account_scores.c.account_id,
            account_scores.c.computed_at,
            account_scores.c.timing_window,
            account_scores.c.readiness_band,
            account_scores.c.signals,
        ).order_by(account_scores.c.account_id, account_scores.c.computed_at, account_scores.c.id)
    ).all()
    for account, computed_at, window, band, signals in rows:
        names = [s["name"] for s in signals or []]
        history[account].append((as_utc(computed_at), window, band, names))
    return history


def _windows(board: Scoreboard, plays: Iterable[dict[str, Any]], history: History) -> None:
    """The window each expansion play opened in: that of the latest score at its opening."""
    counts: dict[str, int] = defaultdict(int)
    for play in plays:
        if play["gate"] != "expansion" or play["opened_at"] is None:
            continue
        rows = history.get(play["account_id"], [])
        index = bisect.bisect_right([r[0] for r in rows], as_utc(play["opened_at"])) - 1
        counts[rows[index][1] if index >= 0 else "unknown"] += 1
    board.windows = dict(sorted(counts.items()))
    board.open_window = Rate(counts.get("open", 0), sum(counts.values()))


def _owners(
    conn: Connection, board: Scoreboard, plays: Iterable[dict[str, Any]], now: datetime
) -> None:
    loads: dict[str, OwnerLoad] = {}
    running = {p["id"]: p for p in plays if p["state"] in RUNNING and p["owner"]}
    for play in running.values():
        load = loads.setdefault(play["owner"], OwnerLoad(play["owner"], play["owner_role"]))
        load.open_plays += 1
    steps = conn.execute(
        select(play_steps.c.play_id, play_steps.c.owner, play_steps.c.status, play_steps.c.due_on)
    ).all()
    for play_id, owner, status, due_on in steps:
        late = status == "overdue" or (status == "open" and due_on < now.date())
        if play_id in running and owner and late:
            loads.setdefault(owner, OwnerLoad(owner, None)).overdue_steps += 1
    for (owner,) in conn.execute(select(sla_breaches.c.owner)).all():
        if owner:
            loads.setdefault(owner, OwnerLoad(owner, None)).breaches += 1
    board.owners = sorted(loads.values(), key=lambda r: (-r.open_plays, r.owner))


def _accuracy(
    board: Scoreboard, history: History, outcomes: Iterable[dict[str, Any]], now: datetime
) -> None:
    """Per signal (and for the hot band): accounts flagged, and of those flagged at least 90
    days ago or already expanded, the share with a won deal within 90 days of the first flag."""
    wins: dict[int, list[datetime]] = defaultdict(list)
    for outcome in outcomes:
        if outcome["won"]:
            wins[outcome["account_id"]].append(as_utc(outcome["closed_at"]))
    window = timedelta(days=ACCURACY_DAYS)
    rows: dict[str, Accuracy] = {}
    for account, scores in history.items():
        first: dict[str, datetime] = {}
        for computed_at, _, band, names in scores:
            for flag in [*names, *([HOT] if band == HOT else [])]:
                first.setdefault(flag, computed_at)
        for flag, flagged_at in first.items():
            row = rows.setdefault(flag, Accuracy(flag))
            row.flagged += 1
            if any(flagged_at <= won <= flagged_at + window for won in wins[account]):
                row.expanded += 1
            elif now - flagged_at < window:
                row.pending += 1
    board.accuracy = sorted(rows.values(), key=lambda r: (r.flag != HOT, r.flag))


def _steps(conn: Connection, board: Scoreboard) -> None:
    """Days from a play's first task to its completion; steps completed by their due time."""
    rows = conn.execute(
        select(
            play_steps.c.step_index,
            play_steps.c.created_at,
            play_steps.c.completed_at,
            play_steps.c.due_at,
        ).where(play_steps.c.completed_at.is_not(None))
    ).all()
    on_time = 0
    for index, created_at, completed_at, due_at in rows:
        done = as_utc(completed_at)
        if index == 0:
            board.first_task_days.append((done - as_utc(created_at)).total_seconds() / 86400)
        on_time += done <= as_utc(due_at)
    board.steps_on_time = Rate(on_time, len(rows))
