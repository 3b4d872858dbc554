"""The plan catalog (mappings/plans.yaml): tiers in order with their limits and features, and
the questions signals ask of it (which tier is next, which tier a feature belongs to)."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Literal

from pydantic import Field, model_validator

from expansion.mappings import StrictModel, cached_model
from expansion.settings import Settings


class Limit(StrictModel):
    cap: Annotated[float, Field(gt=0)]
    period: Literal["day", "month", "total"] = "month"


class Tier(StrictModel):
    name: Annotated[str, Field(min_length=1)]
    seats_included: Annotated[int, Field(ge=0)] | None = None
    limits: dict[str, Limit] = {}
    features: list[str] = []  # the features this tier adds to the tiers below it
    # List price per seat per year; plays estimate a tier upgrade's ACV increase from it.
    annual_price_per_seat: Annotated[float, Field(gt=0)] | None = None


class Plans(StrictModel):
    tiers: Annotated[list[Tier], Field(min_length=1)]

    @model_validator(mode="after")
    def _names_are_unique(self) -> Plans:
        names = [tier.name for tier in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        features = [f for tier in self.tiers for f in tier.features]
        repeated = sorted({f for f in features if features.count(f) > 1})
        if repeated:
            raise ValueError(f"features {repeated} are listed under more than one tier")
        return self

    # Lookup tables made once per catalog: the signals and the state loader ask for a rank or a
    # feature's tier many times per account. Cached properties, not private attributes: pydantic
    # serves those through __getattr__, which costs more than the lookup itself.
    @cached_property
    def _ranks(self) -> dict[str, int]:
        return {tier.name: rank for rank, tier in enumerate(self.tiers)}

    @cached_property
    def _feature_tiers(self) -> dict[str, str]:
        return {f: tier.name for tier in self.tiers for f in tier.features}

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(tier.name for tier in self.tiers)

    def tier(self, name: str | None) -> Tier | None:
        return next((tier for tier in self.tiers if tier.name == name), None)

    def rank(self, name: str | None) -> int | None:
        """0 for the lowest tier; None for a tier the catalog does not know."""
        return None if name is None else self._ranks.get(name)

    def next_tier(self, name: str | None) -> Tier | None:
        rank = self.rank(name)
        if rank is None or rank + 1 >= len(self.tiers):
            return None
        return self.tiers[rank + 1]

    def tier_of_feature(self, feature: str) -> str | None:
        return self._feature_tiers.get(feature)

    def features_included(self, name: str | None) -> frozenset[str]:
        """Every feature of `name` and the tiers below it (empty for an unknown tier)."""
        rank = self.rank(name)
        if rank is None:
            return frozenset()
        return frozenset(f for tier in self.tiers[: rank + 1] for f in tier.features)

    def is_above(self, feature_tier: str | None, current: str | None) -> bool:
        """Whether `feature_tier` is a higher tier than `current` (both known)."""
        high, low = self.rank(feature_tier), self.rank(current)
        return high is not None and low is not None and high > low


def plans(settings: Settings) -> Plans:
    return cached_model(settings.mappings_dir / "plans.yaml", Plans)
