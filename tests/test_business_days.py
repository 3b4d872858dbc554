"""Business-day due dates: weekends, US / UK / German holidays (observed days and regional ones
included), the local day of the trigger in the time zone, DST changes and year ends."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.business_days import (
    add_business_days,
    business_deadline,
    is_business_day,
    local_day,
    next_business_day,
)

NEW_YORK = "America/New_York"
LONDON = "Europe/London"
BERLIN = "Europe/Berlin"


def at(year: int, month: int, day: int, hour: int = 15) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def test_weekdays_count_and_weekends_are_skipped():
    wednesday = at(2026, 6, 3)
    assert add_business_days(wednesday, 0, NEW_YORK, "US") == date(2026, 6, 3)
    assert add_business_days(wednesday, 2, NEW_YORK, "US") == date(2026, 6, 5)
    assert add_business_days(wednesday, 3, NEW_YORK, "US") == date(2026, 6, 8)  # Monday
    assert add_business_days(wednesday, 10, NEW_YORK, "US") == date(2026, 6, 17)


def test_d0_on_a_weekend_is_the_next_monday():
    saturday = at(2026, 6, 6)
    assert add_business_days(saturday, 0, NEW_YORK, "US") == date(2026, 6, 8)
    assert add_business_days(saturday, 1, NEW_YORK, "US") == date(2026, 6, 9)


def test_us_holidays_and_observed_days_are_skipped():
    # July 4th 2026 is a Saturday: observed on Friday July 3rd.
    assert add_business_days(at(2026, 7, 2), 1, NEW_YORK, "US") == date(2026, 7, 6)
    # Thanksgiving (Thursday Nov 26th 2026) is a holiday; the Friday after is not.
    assert add_business_days(at(2026, 11, 25), 1, NEW_YORK, "US") == date(2026, 11, 27)
    # A trigger on the holiday itself starts on the next business day.
    assert add_business_days(at(2026, 11, 26), 0, NEW_YORK, "US") == date(2026, 11, 27)


def test_uk_holidays_accept_gb_and_uk_and_a_nation():
    # Good Friday April 3rd 2026 is UK-wide; Easter Monday April 6th is not a Scottish
    # holiday, so only the England calendar (GB-ENG) skips it.
    assert add_business_days(at(2026, 4, 2), 1, LONDON, "GB") == date(2026, 4, 6)
    assert add_business_days(at(2026, 4, 2), 1, LONDON, "GB-ENG") == date(2026, 4, 7)
    # Boxing Day 2026 is a Saturday: observed Monday December 28th.
    assert add_business_days(at(2026, 12, 24), 1, LONDON, "UK") == date(2026, 12, 29)
    # The US works on Easter Monday.
    assert add_business_days(at(2026, 4, 2), 1, NEW_YORK, "US") == date(2026, 4, 3)


def test_german_holidays_and_a_regional_one():
    # Day of German Unity, Saturday October 3rd 2026: no observed day in Germany.
    assert add_business_days(at(2026, 10, 2), 1, BERLIN, "DE") == date(2026, 10, 5)
    # Christmas Friday 25th, Boxing Day Saturday 26th, and Monday 28th is a working day.
    assert add_business_days(at(2026, 12, 24), 1, BERLIN, "DE") == date(2026, 12, 28)
    # Epiphany (January 6th) is a holiday in Bavaria, not in Berlin.
    assert add_business_days(at(2026, 1, 5), 1, BERLIN, "DE") == date(2026, 1, 6)
    assert add_business_days(at(2026, 1, 5), 1, BERLIN, "DE-BY") == date(2026, 1, 7)


def test_year_ends():
    # New Year's Day 2027 is a Friday.
    assert add_business_days(at(2026, 12, 31), 1, NEW_YORK, "US") == date(2027, 1, 4)
    # January 1st 2028 is a Saturday: the US observes it on Friday December 31st 2027.
    assert add_business_days(at(2027, 12, 30), 1, NEW_YORK, "US") == date(2028, 1, 3)
    # Germany has no observed day: December 31st 2027 is a working day there.
    assert add_business_days(at(2027, 12, 30), 1, BERLIN, "DE") == date(2027, 12, 31)


def test_the_trigger_day_is_the_local_day_in_the_time_zone():
    late_friday_utc = at(2026, 1, 2, hour=23)  # Saturday 00:00 in Berlin, Friday 18:00 in NY
    assert local_day(late_friday_utc, BERLIN) == date(2026, 1, 3)
    assert add_business_days(late_friday_utc, 0, BERLIN, "DE") == date(2026, 1, 5)
    assert add_business_days(late_friday_utc, 0, NEW_YORK, "US") == date(2026, 1, 2)


def test_dst_changes_move_the_utc_deadline_not_the_local_one():
    # US clocks go forward on Sunday March 8th 2026: Friday is EST, Monday is EDT.
    friday = at(2026, 3, 6)
    before = business_deadline(friday, 0, NEW_YORK, "US")
    after = business_deadline(friday, 1, NEW_YORK, "US")
    assert (before.date(), after.date()) == (date(2026, 3, 6), date(2026, 3, 9))
    assert before.timetz().replace(tzinfo=None) == after.timetz().replace(tzinfo=None)
    assert before.utcoffset() == timedelta(hours=-5)
    assert after.utcoffset() == timedelta(hours=-4)
    assert after.astimezone(UTC) == datetime(2026, 3, 9, 21, 0, tzinfo=UTC)
    # Europe goes back on Sunday October 25th 2026.
    berlin = business_deadline(at(2026, 10, 23), 1, BERLIN, "DE", at=time(9, 30))
    assert berlin.astimezone(UTC) == datetime(2026, 10, 26, 8, 30, tzinfo=UTC)


def test_the_night_of_a_dst_change_lands_on_the_right_local_day():
    # 03:30 UTC on Monday March 9th 2026 is 23:30 on Sunday in New York (already EDT).
    assert add_business_days(at(2026, 3, 9, hour=3), 0, NEW_YORK, "US") == date(2026, 3, 9)
    assert local_day(datetime(2026, 3, 9, 3, 30, tzinfo=UTC), NEW_YORK) == date(2026, 3, 8)


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="no time zone"):
        add_business_days(datetime(2026, 6, 1, 12), 1, NEW_YORK, "US")
    with pytest.raises(ValueError, match="count forward"):
        add_business_days(at(2026, 6, 1), -1, NEW_YORK, "US")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
        add_business_days(at(2026, 6, 1), 1, "Mars/Base", "US")
    with pytest.raises(ValueError, match="unknown holiday country 'XX'"):
        add_business_days(at(2026, 6, 1), 1, NEW_YORK, "XX")


@given(
    start=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    n=st.integers(min_value=0, max_value=40),
    where=st.sampled_from([(NEW_YORK, "US"), (LONDON, "GB"), (BERLIN, "DE")]),
)
def test_the_due_day_is_a_business_day_exactly_n_business_days_after_d0(start, n, where):
    tz, country = where
    d0 = next_business_day(local_day(start, tz), country)
    due = add_business_days(start, n, tz, country)
    assert is_business_day(due, country)
    between = [d0 + timedelta(days=i) for i in range(1, (due - d0).days + 1)]
    assert sum(is_business_day(day, country) for day in between) == n
