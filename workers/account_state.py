"""What the scoring code knows about one account on one day: plain frozen data built from the
state tables (or by a test or the benchmark), with no I/O, so signals, health and readiness are
pure functions of it."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from itertools import compress
from operator import attrgetter
from typing import Any

from workers.days import DaySet, LastDays, days_delta, span_mask


@dataclass(frozen=True)
class DailySeries:
    """One value per calendar day from `start`; days before `start` or after the last value
    are unknown (None), never zero."""

    start: date
    values: tuple[float, ...] = ()

    @property
    def end(self) -> date | None:
        return self.start + timedelta(days=len(self.values) - 1) if self.values else None

    def on(self, day: date) -> float | None:
        index = (day - self.start).days
        return self.values[index] if 0 <= index < len(self.values) else None

    def window(self, end: date, days: int) -> list[float]:
        """Known values of the `days` days ending on `end` (inclusive)."""
        after_end = (end - self.start).days + 1  # index just past `end`
        first, stop = max(after_end - days, 0), min(after_end, len(self.values))
        if stop <= first:
            return []
        return [v for v in self.values[first:stop] if v is not None]

    def total(self, end: date, days: int) -> float:
        return sum(self.window(end, days))

    def complete_total(self, end: date, days: int) -> float | None:
        """total(end, days) when all of those days have a value, else None."""
        after_end = (end - self.start).days + 1
        if after_end < days or after_end > len(self.values):
            return None
        values = self.values[after_end - days : after_end]
        return None if None in values else sum(values)

    def coverage(self, end: date, days: int) -> int:
        """How many of those days have a value."""
        return len(self.window(end, days))


@dataclass(frozen=True)
class User:
    user_id: str
    first_seen: date
    last_active: date | None
    # Within the retention window; the loader hands out a DaySet (a bitmap, no date objects).
    active_days: AbstractSet[date] = frozenset()
    email_domain: str | None = None
    department: str | None = None
    title: str | None = None
    invited_on: date | None = None
    # First day the user used an advanced feature or made a high-volume export.
    advanced_since: date | None = None

    def active_between(self, first: date, last: date) -> bool:
        days = self.active_days
        if type(days) is DaySet:
            return days.any_between(first, last)
        return any(first <= day <= last for day in days)


@dataclass(frozen=True)
class FeatureUse:
    feature: str
    tier: str | None
    category: str | None
    first_used: date
    last_used: date
    # Distinct users by the last day each used it (for "N users in the last 30 days").
    users_last_used: Mapping[str, date] = field(default_factory=dict)

    def users_since(self, day: date) -> int:
        return len(self.user_ids_since(day))

    def user_ids_since(self, day: date) -> list[str]:
        """The users who used it on `day` or later."""
        users = self.users_last_used
        if type(users) is LastDays:
            return users.keys_since(day)
        return [user for user, last in users.items() if last >= day]


@dataclass(frozen=True)
class Integration:
    name: str
    category: str | None
    connected_on: date


@dataclass(frozen=True)
class TeaserClick:
    feature: str
    tier: str | None
    day: date
    user_id: str | None = None


@dataclass(frozen=True)
class LimitHit:
    limit: str
    day: date
    usage: float | None = None
    cap: float | None = None


@dataclass(frozen=True)
class Ticket:
    ticket_id: str
    created_on: date
    subject: str = ""
    text: str = ""
    priority: str | None = None  # normalized: p1 | p2 | p3 | p4
    status: str | None = None  # normalized: open | pending | closed
    csat: float | None = None  # 1-5
    closed_on: date | None = None

    @property
    def is_open(self) -> bool:
        return self.status != "closed"


@dataclass(frozen=True)
class Contact:
    contact_id: str
    title: str | None = None
    # (day, title) oldest first, including the current title.
    title_history: tuple[tuple[date, str], ...] = ()
    champion: bool = False
    left_company: bool = False
    exec_sponsor: bool = False
    last_engaged_on: date | None = None


@dataclass(frozen=True)
class NpsResponse:
    score: int
    day: date
    respondent: str | None = None


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    day: date
    status: str  # paid | failed
    amount: float = 0.0


@dataclass(frozen=True)
class Subscription:
    tier: str | None
    seats: int | None  # licensed seats
    arr: float | None
    renewal_on: date | None
    status: str | None = None
    # Plan limits per metered metric (e.g. {"api_calls": 1_000_000}) for the current tier.
    limits: Mapping[str, float] = field(default_factory=dict)
    committed_usage: float | None = None
    # What each limit counts over: day | month | total (mappings/plans.yaml).
    limit_periods: Mapping[str, str] = field(default_factory=dict)
    cancel_at_period_end: bool = False


_FIRST_SEEN = attrgetter("first_seen")


@dataclass(frozen=True)
class AccountState:
    account_id: int
    today: date
    name: str | None = None
    subscription: Subscription | None = None
    # Daily distinct active users (DAU) and daily licensed seats.
    daily_active_users: DailySeries | None = None
    licensed_seats: DailySeries | None = None
    api_calls: DailySeries | None = None
    # Daily metered usage per metric (the same metric names as Subscription.limits).
    usage: Mapping[str, DailySeries] = field(default_factory=dict)
    # Usage reported per billing month: metric -> {"2026-01": value}.
    usage_by_month: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # user.invited events per day.
    invites: DailySeries | None = None
    users: tuple[User, ...] = ()
    features: tuple[FeatureUse, ...] = ()
    integrations: tuple[Integration, ...] = ()
    teaser_clicks: tuple[TeaserClick, ...] = ()
    limit_hits: tuple[LimitHit, ...] = ()
    tickets: tuple[Ticket, ...] = ()
    contacts: tuple[Contact, ...] = ()
    nps: tuple[NpsResponse, ...] = ()
    invoices: tuple[Invoice, ...] = ()
    # Mapped CRM fields by canonical name (csm_sentiment, employees, funding_round_on,
    # last_meaningful_interaction_on, department_headcount, segment, owners...).
    crm: Mapping[str, Any] = field(default_factory=dict)
    # CRM field history for fields whose trend matters (employees, department_headcount).
    crm_history: Mapping[str, tuple[tuple[date, Any], ...]] = field(default_factory=dict)

    def active_seats(self, on: date, days: int = 30) -> int:
        """Distinct users active in the `days` days ending on `on` (monthly active seats)."""
        counts, key = self._active_seat_counts, (on, days)
        if key not in counts:
            origin, bits = self._active_bits
            mask = span_mask(origin, on - days_delta(days - 1), on)
            counts[key] = len([user_bits for user_bits in bits if user_bits & mask])
        return counts[key]

    def users_active_between(self, first: date, last: date) -> list[User]:
        """The users active on some day within first..last (inclusive), in order."""
        origin, bits = self._active_bits
        mask = span_mask(origin, first, last)
        return list(compress(self.users, [user_bits & mask for user_bits in bits]))

    @cached_property
    def _active_bits(self) -> tuple[int, tuple[int, ...]]:
        """(a day number, each user's active days as a bitmap with bit 0 on that day): the
        scores ask who was active in a window many times over, one AND per user each time."""
        return DaySet.aligned(
            [
                days if type(days := user.active_days) is DaySet else DaySet.of(days)
                for user in self.users
            ]
        )

    def had_users_by(self, day: date) -> bool:
        """Whether some user was first seen on or before `day`."""
        earliest = self._earliest_first_seen
        return earliest is not None and earliest <= day

    @cached_property
    def _earliest_first_seen(self) -> date | None:
        """The signals and both health views ask had_users_by for several days."""
        return min(map(_FIRST_SEEN, self.users), default=None)

    @cached_property
    def _active_seat_counts(self) -> dict[tuple[date, int], int]:
        """active_seats by (on, days): the signals and both health views ask for the same ones."""
        return {}

    def days_to_renewal(self) -> int | None:
        if self.subscription is None or self.subscription.renewal_on is None:
            return None
        return (self.subscription.renewal_on - self.today).days
