"""Shared by the play tests: the shipped rules, and assessments built from the real scoring
functions (band, gate and window come from mappings/scoring.yaml, not from the test)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from expansion.settings import Settings
from tests.support import ROOT
from workers.evidence import Signal
from workers.play_rules import PlayRules, play_rules
from workers.play_selection import PlayContext
from workers.score_rules import ScoringRules, score_rules
from workers.scoring import (
    Assessment,
    Convergence,
    Dimension,
    Health,
    Readiness,
    health_band,
    health_gate,
    readiness_band,
    timing_window,
)
from workers.signals import CATEGORY

TODAY = date(2026, 6, 1)
SETTINGS = Settings.from_env({"MAPPINGS_DIR": str(ROOT / "mappings")})


def rules() -> PlayRules:
    return play_rules(SETTINGS)


def scoring() -> ScoringRules:
    return score_rules(SETTINGS)


def assessment(
    health: float | None = 82.0,
    readiness: float = 55.0,
    days_to_renewal: int | None = 200,
    dimensions: tuple[Dimension, ...] = (),
    account_id: int = 1,
) -> Assessment:
    score_rules_ = scoring()
    band = health_band(health, score_rules_.health.bands)
    health_now = Health(TODAY, health, band, dimensions)
    renewal_on = TODAY + timedelta(days=days_to_renewal) if days_to_renewal is not None else None
    return Assessment(
        account_id=account_id,
        name="Acme Corp",
        as_of=TODAY,
        health=health_now,
        readiness=Readiness(
            score=readiness,
            band=readiness_band(readiness, score_rules_.readiness.bands),
            contributions=(),
            points=readiness,
            convergence=Convergence((), 1.0, "no multiplier"),
            capped=False,
            gate=health_gate(health_now, score_rules_),
            window=timing_window(days_to_renewal, score_rules_.window, renewal_on),
        ),
    )


def signal(name: str, strength: float = 0.8, evidence: str = "", **facts: Any) -> Signal:
    return Signal(name, CATEGORY[name], strength, evidence or f"{name} evidence 1 2 3", facts)


def context(**overrides: Any) -> PlayContext:
    values: dict[str, Any] = {
        "account_id": 1,
        "name": "Acme Corp",
        "crm": {"csm_owner": "csm-1", "account_owner": "ae-1", "owner_manager": "mgr-1"},
        "time_zone": "America/New_York",
        "holiday_country": "US",
        "acv": 20000.0,
        "seats": 50,
        "tier": "growth",
        "next_tier": "scale",
    }
    values.update(overrides)
    return PlayContext(**values)


@dataclass(frozen=True)
class Scored:
    """A stored score as the plays step reads it (what recompute hands it)."""

    account_id: int
    assessment: Assessment
    fired: tuple[Signal, ...]
    status: str = "written"
