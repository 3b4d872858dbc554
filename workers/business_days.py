"""Due dates in business days: weekends and a country's public holidays (the `holidays` package,
observed days included) are skipped, counting in the owner's or the company's time zone."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

SATURDAY = 5
END_OF_DAY = time(17, 0)  # a due date's deadline, local time


@lru_cache(maxsize=64)
def calendar(country: str) -> holidays.HolidayBase:
    """The holiday calendar of `country`, e.g. "US", "GB" (or "UK"), "DE", or "DE-BY" for a
    subdivision; years are filled in as they are asked about. Unknown codes raise ValueError."""
    code, _, subdiv = country.partition("-")
    try:
        return holidays.country_holidays(code.upper(), subdiv=subdiv.upper() or None)
    except NotImplementedError as exc:
        raise ValueError(f"unknown holiday country {country!r}: {exc}") from None


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; unknown names raise ValueError."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def is_business_day(day: date, country: str) -> bool:
    return day.weekday() < SATURDAY and day not in calendar(country)


def local_day(moment: datetime, tz: str) -> date:
    """The calendar day `moment` falls on in `tz` (a trigger at 23:30 UTC can be tomorrow in
    Berlin and today in New York)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; pass an aware datetime")
    return moment.astimezone(zone(tz)).date()


def next_business_day(day: date, country: str) -> date:
    """`day` itself when it is a business day, else the first business day after it."""
    while not is_business_day(day, country):
        day += timedelta(days=1)
    return day


def add_business_days(start: datetime, n: int, tz: str, country: str) -> date:
    """Business day D`n` counted from `start`: D0 is the local day of `start` in `tz`, moved to
    the next business day when it is a weekend or a holiday of `country`."""
    if n < 0:
        raise ValueError(f"business-day offsets count forward, got {n}")
    return _business_day(local_day(start, tz), n, country)


# A rescore batch's plays start on one or two days and their steps share a few offsets.
@lru_cache(maxsize=1024)
def _business_day(start: date, n: int, country: str) -> date:
    day = next_business_day(start, country)
    for _ in range(n):
        day = next_business_day(day + timedelta(days=1), country)
    return day


def business_deadline(
    start: datetime, n: int, tz: str, country: str, at: time = END_OF_DAY
) -> datetime:
    """D`n` at the local time `at`, as an aware datetime in `tz` (its UTC offset follows DST)."""
    return datetime.combine(add_business_days(start, n, tz, country), at, tzinfo=zone(tz))
