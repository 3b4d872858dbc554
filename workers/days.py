"""Days as integers (days since 1970-01-01) for compact storage, and the lazy views the loader
hands out so a whole book loads without building one date object per stored day: DaySet (a
set of days packed in a bitmap) and LastDays (user -> last day)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from datetime import date, timedelta
from functools import lru_cache

EPOCH = date(1970, 1, 1)
_EPOCH_ORDINAL = EPOCH.toordinal()


def day_number(day: date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL


def from_day_number(number: int) -> date:
    return date.fromordinal(number + _EPOCH_ORDINAL)


@lru_cache(maxsize=1024)
def days_delta(days: int) -> timedelta:
    """timedelta(days=days), made once per length: the scores step back by the same few window
    lengths dozens of times per account, and making a timedelta costs several subtractions."""
    return timedelta(days=days)


def month_number(day: date) -> int:
    return day.year * 12 + day.month - 1


def month_label(number: int) -> str:
    return f"{number // 12:04d}-{number % 12 + 1:02d}"


def pack_bits(bits: int) -> bytes:
    return bits.to_bytes((bits.bit_length() + 7) // 8, "little")


def unpack_bits(packed: bytes | None) -> int:
    return int.from_bytes(packed, "little") if packed else 0


class DaySet(Set[date]):
    """Days `origin + i` for every bit i set in `bits`. Membership, size and range tests work
    on the bitmap; iterating yields dates oldest first."""

    __slots__ = ("_bits", "_origin")

    def __init__(self, origin: int = 0, bits: int = 0) -> None:
        self._origin = origin  # day number of bit 0
        self._bits = bits

    @classmethod
    def of(cls, days: Iterable[date]) -> DaySet:
        numbers = [day_number(day) for day in days]
        if not numbers:
            return cls()
        origin = min(numbers)
        bits = 0
        for number in numbers:
            bits |= 1 << (number - origin)
        return cls(origin, bits)

    def __contains__(self, day: object) -> bool:
        if not isinstance(day, date):
            return False
        offset = day_number(day) - self._origin
        return offset >= 0 and bool(self._bits >> offset & 1)

    def __iter__(self) -> Iterator[date]:
        bits, offset = self._bits, 0
        while bits:
            skip = (bits & -bits).bit_length() - 1
            bits >>= skip
            offset += skip
            yield from_day_number(self._origin + offset)
            bits >>= 1
            offset += 1

    def __len__(self) -> int:
        return self._bits.bit_count()

    def __repr__(self) -> str:
        return f"DaySet({sorted(self)!r})"

    __hash__ = Set._hash

    def count_between(self, first: date, last: date) -> int:
        """How many days of the set fall within first..last (inclusive)."""
        return self._between(first, last).bit_count()

    def any_between(self, first: date, last: date) -> bool:
        # The scores ask this for every user several times over: kept to a few int operations.
        return self._between(first, last) != 0

    def _between(self, first: date, last: date) -> int:
        """The bits of the days within first..last, shifted down to bit 0."""
        origin = self._origin + _EPOCH_ORDINAL
        start = first.toordinal() - origin
        stop = last.toordinal() - origin + 1
        if start < 0:
            start = 0
        if stop <= start:
            return 0
        return self._bits >> start & ((1 << (stop - start)) - 1)

    @property
    def last(self) -> date | None:
        return from_day_number(self._origin + self._bits.bit_length() - 1) if self._bits else None

    @staticmethod
    def aligned(sets: Sequence[DaySet]) -> tuple[int, tuple[int, ...]]:
        """(a day number, each set's bitmap shifted so that its bit 0 is that day)."""
        origin = min([s._origin for s in sets if s._bits], default=0)
        return origin, tuple([s._bits << (s._origin - origin) if s._bits else 0 for s in sets])


def span_mask(origin: int, first: date, last: date) -> int:
    """The bits of the days first..last (inclusive) in a bitmap whose bit 0 is day number
    `origin`; days before `origin` have no bit."""
    start = max(day_number(first) - origin, 0)
    stop = day_number(last) - origin + 1
    return ((1 << (stop - start)) - 1) << start if stop > start else 0


class LastDays(Mapping[str, date]):
    """User id -> the last day they did something, over stored [first, last] day-number spans;
    dates are made only for the entries read. Made from the stored JSON text (`of_stored`), it
    decodes it on first use: most features' users are never asked for."""

    __slots__ = ("_decode", "_spans", "_stored")

    def __init__(self, spans: dict[str, list[int]]) -> None:
        self._spans: dict[str, list[int]] | None = spans
        self._stored: str | None = None
        self._decode: Callable[[str], dict[str, list[int]]] | None = None

    @classmethod
    def of_stored(cls, stored: str, decode: Callable[[str], dict[str, list[int]]]) -> LastDays:
        made = cls.__new__(cls)
        made._spans, made._stored, made._decode = None, stored, decode
        return made

    def spans(self) -> dict[str, list[int]]:
        """User id -> [first, last] day number."""
        spans = self._spans
        if spans is None:
            spans = self._spans = self._decode(self._stored)  # type: ignore[misc,arg-type]
            self._stored = self._decode = None
        return spans

    def __getitem__(self, key: str) -> date:
        return from_day_number(self.spans()[key][1])

    def __iter__(self) -> Iterator[str]:
        return iter(self.spans())

    def __len__(self) -> int:
        return len(self.spans())

    def __repr__(self) -> str:
        return f"LastDays({dict(self)!r})"

    def keys_since(self, day: date) -> list[str]:
        """The users whose last day is `day` or later, without a date per entry."""
        number = day_number(day)
        return [key for key, (_, last) in self.spans().items() if last >= number]
