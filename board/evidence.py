"""A score's stored evidence (workers/recompute.py evidence_json) read back into the scoring types,
so the board shows the very sentences, labels and text `expansion explain` prints."""

from __future__ import annotations

from datetime import date
from typing import Any

from workers.scoring import (
    Assessment,
    Contribution,
    Convergence,
    Dimension,
    Gate,
    Health,
    Metric,
    Readiness,
    Trend,
    Window,
)


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def health_of(data: dict[str, Any]) -> Health:
    trend = data.get("trend")
    return Health(
        as_of=date.fromisoformat(data["as_of"]),
        score=data["score"],
        band=data["band"],
        dimensions=tuple(
            Dimension(d["name"], d["weight"], d["score"], tuple(Metric(**m) for m in d["metrics"]))
            for d in data["dimensions"]
        ),
        trend=Trend(**{**trend, "previous_as_of": _day(trend["previous_as_of"])})
        if trend
        else None,
    )


def readiness_of(data: dict[str, Any]) -> Readiness:
    window = data["window"]
    return Readiness(
        score=data["score"],
        band=data["band"],
        contributions=tuple(Contribution(**c) for c in data["contributions"]),
        points=data["points"],
        convergence=Convergence(
            **{**data["convergence"], "categories": tuple(data["convergence"]["categories"])}
        ),
        capped=data["capped"],
        gate=Gate(**data["gate"]),
        window=Window(**{**window, "renewal_on": _day(window["renewal_on"])}),
    )


def assessment_of(account_id: int, name: str | None, evidence: dict[str, Any]) -> Assessment:
    return Assessment(
        account_id=account_id,
        name=name,
        as_of=date.fromisoformat(evidence["as_of"]),
        health=health_of(evidence["health"]),
        readiness=readiness_of(evidence["readiness"]),
    )
