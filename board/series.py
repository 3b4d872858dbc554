"""The account page's time series, from the account's loaded state and its score history: seat
utilization, daily API calls, and health and readiness as stored."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from board.queries import ScorePoint
from workers.account_state import AccountState

Points = tuple[tuple[date, float], ...]


def chart_start(end: date, days: int) -> date:
    """The first day of a chart of `days` days ending on `end`."""
    return end - timedelta(days=days - 1)


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def seat_utilization(state: AccountState, start: date, end: date, window_days: int) -> Points:
    """Active seats in the trailing window / licensed seats, in percent, for each day from the
    first product user on (earlier days have no data, which is not 0%)."""
    if not state.users:
        return ()
    first_seen = min(user.first_seen for user in state.users)
    points = []
    for day in days(max(start, first_seen), end):
        seats = state.licensed_seats.on(day) if state.licensed_seats else None
        if seats is None and state.subscription is not None:
            seats = state.subscription.seats
        if not seats:
            continue
        active = state.active_seats(day, window_days)
        points.append((day, round(active / seats * 100, 1)))
    return tuple(points)


def api_calls(state: AccountState, start: date, end: date) -> Points:
    """Reported API calls per day; days without a report are left out."""
    series = state.api_calls
    if series is None:
        return ()
    return tuple(
        (day, float(value)) for day in days(start, end) if (value := series.on(day)) is not None
    )


def health(history: Sequence[ScorePoint], start: date) -> Points:
    return tuple(
        (p.as_of, p.health_score)
        for p in history
        if p.as_of >= start and p.health_score is not None
    )


def readiness(history: Sequence[ScorePoint], start: date) -> Points:
    return tuple((p.as_of, p.readiness_score) for p in history if p.as_of >= start)
