"""Charts as inline SVG rendered on the server (no script, no library): line charts over dates
with band zones and a threshold line, daily bar charts, and the small score bars of the list."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 14, 14, 28
X_TICKS = 6


@dataclass(frozen=True)
class Series:
    name: str  # in the legend and the tooltips
    css: str  # the colour class in board.css
    points: tuple[tuple[date, float], ...]


@dataclass(frozen=True)
class Zone:
    """A horizontal band behind the data, e.g. health green from 70 to 100."""

    low: float
    high: float
    css: str


@dataclass(frozen=True)
class Guide:
    """A labelled horizontal line, e.g. the signal's 80% threshold."""

    value: float
    label: str


@dataclass(frozen=True)
class Frame:
    start: date
    end: date
    y_max: float
    unit: str  # appended to values: "%", "" ...
    width: int = WIDTH  # of the viewBox: text keeps its size when the chart spans a wider box

    @property
    def right(self) -> int:
        return self.width - RIGHT

    def x(self, day: date) -> float:
        span = max((self.end - self.start).days, 1)
        return LEFT + (day - self.start).days / span * (self.right - LEFT)

    def y(self, value: float) -> float:
        return TOP + (1 - min(value, self.y_max) / self.y_max) * (HEIGHT - TOP - BOTTOM)

    def shown(self, value: float) -> str:
        return f"{compact(value)}{self.unit}"


def line_chart(
    title: str,
    series: Sequence[Series],
    start: date,
    end: date,
    *,
    unit: str = "",
    y_max: float | None = None,
    zones: Sequence[Zone] = (),
    guide: Guide | None = None,
    width: int = WIDTH,
) -> Markup:
    """Each series as a line with a marker per point (its tooltip names day and value)."""
    values = [v for s in series for _, v in s.points]
    top = y_max or nice_max([*values, guide.value if guide else 0])
    frame = Frame(start, end, top, unit, width)
    body = [_zone(frame, zone) for zone in zones]
    body += _axes(frame)
    if guide is not None:
        y = frame.y(guide.value)
        body.append(
            f'<line class="guide" x1="{LEFT}" x2="{frame.right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="guide-label" x="{frame.right - 4}" y="{y - 4:.1f}" '
            f'text-anchor="end">{escape(guide.label)}</text>'
        )
    for item in series:
        body.append(_line(frame, item))
    return _svg(title, frame, _describe(series, frame), body, series)


def bar_chart(
    title: str, series: Series, start: date, end: date, *, unit: str = "", width: int = WIDTH
) -> Markup:
    """One bar per day of the series."""
    frame = Frame(start, end, nice_max([v for _, v in series.points]), unit, width)
    step = (frame.right - LEFT) / max((end - start).days + 1, 1)
    width = max(step * 0.7, 1.0)
    body = _axes(frame)
    for day, value in series.points:
        x, y = frame.x(day) - width / 2, frame.y(value)
        body.append(
            f'<rect class="bar point {series.css}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{max(frame.y(0) - y, 0.5):.1f}" data-date="{day.isoformat()}" '
            f'data-value="{value:g}"><title>{day.isoformat()}: {frame.shown(value)}</title></rect>'
        )
    return _svg(title, frame, _describe([series], frame), body, [series])


def score_bar(value: float | None, band: str, label: str) -> Markup:
    """A 0-100 bar coloured by its band, for the ranked list."""
    filled = 0.0 if value is None else max(min(value, 100.0), 0.0)
    shown = "unknown" if value is None else f"{value:.0f}/100"
    return Markup(
        f'<svg class="score-bar" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(label)} {shown} {escape(band)}">'
        f'<rect class="track" width="100" height="8" rx="4"/>'
        f'<rect class="fill band-{escape(band)}" width="{filled:.1f}" height="8" rx="4"/></svg>'
    )


# --- pieces ------------------------------------------------------------------------------------


def _svg(
    title: str, frame: Frame, description: str, body: list[str], series: Sequence[Series]
) -> Markup:
    legend = "".join(
        f'<span class="legend-item"><span class="swatch {escape(s.css)}"></span>'
        f"{escape(s.name)}</span>"
        for s in series
    )
    return Markup(
        f'<figure class="chart"><figcaption>{escape(title)}<span class="legend">{legend}</span>'
        f'</figcaption><svg viewBox="0 0 {frame.width} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}"><desc>{escape(description)}</desc>{"".join(body)}'
        "</svg></figure>"
    )


def _axes(frame: Frame) -> list[str]:
    parts = []
    for tick in ticks(frame.y_max):
        y = frame.y(tick)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{frame.right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(frame.shown(tick))}</text>"
        )
    span = (frame.end - frame.start).days
    for i in range(X_TICKS):
        day = date.fromordinal(frame.start.toordinal() + round(span * i / (X_TICKS - 1)))
        anchor = "start" if i == 0 else "end" if i == X_TICKS - 1 else "middle"
        parts.append(
            f'<text class="axis" x="{frame.x(day):.1f}" y="{HEIGHT - 8}" '
            f'text-anchor="{anchor}">{day.strftime("%b")} {day.day}</text>'
        )
    return parts


def _zone(frame: Frame, zone: Zone) -> str:
    top, bottom = frame.y(zone.high), frame.y(zone.low)
    return (
        f'<rect class="zone {escape(zone.css)}" x="{LEFT}" y="{top:.1f}" '
        f'width="{frame.right - LEFT}" height="{bottom - top:.1f}"/>'
    )


def _line(frame: Frame, series: Series) -> str:
    if not series.points:
        return ""
    coords = [(frame.x(day), frame.y(value)) for day, value in series.points]
    path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(coords))
    radius = 2.0 if len(coords) > 60 else 3.5
    markers = "".join(
        f'<circle class="point {escape(series.css)}" cx="{x:.1f}" cy="{y:.1f}" r="{radius}" '
        f'data-date="{day.isoformat()}" data-value="{value:g}"><title>{escape(series.name)} '
        f"{day.isoformat()}: {escape(frame.shown(value))}</title></circle>"
        for (x, y), (day, value) in zip(coords, series.points, strict=True)
    )
    return f'<path class="line {escape(series.css)}" d="{path}"/>{markers}'


def _describe(series: Sequence[Series], frame: Frame) -> str:
    parts = []
    for item in series:
        if not item.points:
            parts.append(f"{item.name}: no data")
            continue
        last_day, last = item.points[-1]
        low = min(v for _, v in item.points)
        high = max(v for _, v in item.points)
        parts.append(
            f"{item.name}: {len(item.points)} points, latest {frame.shown(last)} on "
            f"{last_day.isoformat()}, range {frame.shown(low)} to {frame.shown(high)}"
        )
    return "; ".join(parts)


# --- scales ------------------------------------------------------------------------------------


def nice_max(values: Sequence[float]) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above the largest value (1 when all are 0)."""
    top = max([v for v in values if v is not None] + [0.0])
    if top <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(top))
    for step in (1, 2, 2.5, 5, 10):
        if top <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def ticks(y_max: float) -> list[float]:
    """Gridlines at round values: 0-100 by 25, 0-5k by 1k, 0-2k by 500, 0-2.5k by 500."""
    leading = y_max / 10 ** math.floor(math.log10(y_max))
    count = 4 if leading in (1, 2) else 5
    return [y_max * i / count for i in range(count + 1)]


def compact(value: float) -> str:
    """1234 -> 1.2k, 2500000 -> 2.5M, 12.5 -> 12.5."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:.1f}".rstrip("0").rstrip(".")
