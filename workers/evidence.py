"""A fired signal with the numbers that made it fire: what signals produce and what readiness,
plays, the CLI and the CRM writers consume."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

CATEGORIES = ("product", "commercial", "support", "relationship")


@dataclass(frozen=True)
class Signal:
    name: str  # e.g. seat_utilization (the key in mappings/signals.yaml)
    category: str  # one of CATEGORIES
    strength: float  # 0..1
    evidence: str  # one sentence with the numbers, e.g. "43 of 50 seats active (86%) ..."
    facts: Mapping[str, float | int | str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown signal category {self.category!r}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"signal strength must be within 0..1, got {self.strength}")
        if not self.evidence:
            raise ValueError(f"signal {self.name} fired without evidence")
