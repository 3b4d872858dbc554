"""The expansion-signal rules: mappings/signals.yaml as typed, validated models (every threshold,
window, strength curve, phrase list and CRM field name the signals read) joined with the plan
catalog of mappings/plans.yaml (tier order and tier features)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, NonNegativeInt, PositiveInt, model_validator

from expansion.mappings import MappingError, StrictModel, cached_model
from expansion.settings import Settings
from workers.plans import Plans, plans

Fraction = Annotated[float, Field(ge=0, le=1)]
Strength = Annotated[float, Field(gt=0, le=1)]
Point = tuple[float, Strength]
Level = Literal["manager", "director", "vp", "c_level"]
LEVELS: tuple[Level, ...] = ("manager", "director", "vp", "c_level")


def _curve_shape(points: tuple[Point, ...]) -> tuple[Point, ...]:
    if len(points) < 2:
        raise ValueError("a strength curve needs at least two [input, strength] points")
    if any(b[0] <= a[0] for a, b in pairwise(points)):
        raise ValueError("strength curve inputs must strictly increase")
    return points


def _rising(points: tuple[Point, ...]) -> tuple[Point, ...]:
    if any(b[1] < a[1] for a, b in pairwise(_curve_shape(points))):
        raise ValueError("strength must not fall as the input grows (more is stronger)")
    return points


def _falling(points: tuple[Point, ...]) -> tuple[Point, ...]:
    if any(b[1] > a[1] for a, b in pairwise(_curve_shape(points))):
        raise ValueError("strength must not rise as the input grows (sooner is stronger)")
    return points


def _regexes(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
    return patterns


RisingCurve = Annotated[tuple[Point, ...], AfterValidator(_rising)]
FallingCurve = Annotated[tuple[Point, ...], AfterValidator(_falling)]
Patterns = Annotated[tuple[str, ...], AfterValidator(_regexes)]


class CrmFields(StrictModel):
    """Names of the CRM fields (AccountState.crm / crm_history) the signals read."""

    employees: str
    department_headcount: str
    using_department: str
    departments: str
    funding_round_on: str
    funding_round: str
    funding_total: str
    domain: str
    licensed_domains: str
    licensed_departments: str
    products: str
    advocacy: tuple[str, ...]


class Rule(StrictModel):
    enabled: bool = True


class SeatUtilization(Rule):
    active_window_days: PositiveInt
    threshold: Fraction
    strength: RisingCurve
    rise_points: float = Field(gt=0)
    rise_window_days: PositiveInt
    rise_bonus: Fraction
    trend_days: PositiveInt


class InviteVelocity(Rule):
    window_days: PositiveInt
    min_new_users: PositiveInt
    prior_window_days: PositiveInt
    max_prior_new_users: NonNegativeInt
    min_established_users: NonNegativeInt
    strength: RisingCurve


class UsageNearCap(Rule):
    near_ratio: Fraction
    consecutive_days: PositiveInt
    billing_months: PositiveInt
    rolling_days: PositiveInt
    hit_window_days: PositiveInt
    strength: RisingCurve


class ApiVolumeGrowth(Rule):
    window_days: PositiveInt
    baseline_ends_days_ago: PositiveInt
    min_ratio: float = Field(gt=1)
    min_coverage_days: PositiveInt
    min_baseline_calls: float = Field(ge=0)
    strength: RisingCurve

    @model_validator(mode="after")
    def _coverage_fits(self) -> Self:
        if self.min_coverage_days > self.window_days:
            raise ValueError("min_coverage_days cannot exceed window_days")
        return self


class UsageVelocityToTier(Rule):
    horizon_days: PositiveInt
    trend_days: PositiveInt
    threshold_ratio: float = Field(gt=0)
    strength: FallingCurve


class IntegrationConnected(Rule):
    window_days: PositiveInt
    strength: Strength
    new_category_strength: Strength
    per_extra_integration: Fraction


class PremiumFeatureInterest(Rule):
    window_days: PositiveInt
    min_teaser_clicks: PositiveInt
    teaser_strength: RisingCurve
    min_trial_users: PositiveInt
    trial_strength: RisingCurve
    # Share of the next tier's features used in the window (tier_upsell's "adoption >= 70% of
    # next-tier features", SPEC §5).
    min_next_tier_adoption: Annotated[float, Field(gt=0, le=1)]
    adoption_strength: RisingCurve


class FeatureBreadth(Rule):
    window_days: PositiveInt
    core_categories: tuple[str, ...] = Field(min_length=1)
    adjacent_categories: tuple[str, ...]
    threshold: Fraction
    strength: RisingCurve
    no_adjacent_bonus: Fraction


class PowerUserEmergence(Rule):
    window_days: PositiveInt
    min_new_power_users: PositiveInt
    strength: RisingCurve


class SecondaryTeamLogins(Rule):
    window_days: PositiveInt
    footprint_days: PositiveInt
    min_users: PositiveInt
    ignore_domains: tuple[str, ...]
    strength: RisingCurve


class PlanLimitTicket(Rule):
    window_days: PositiveInt
    phrases: tuple[str, ...]
    patterns: Patterns
    match_next_tier_features: bool
    strength: RisingCurve


class CrossSellRule(StrictModel):
    product: str
    features: tuple[str, ...] = Field(min_length=1)
    min_users: PositiveInt
    strength: RisingCurve
    phrases: tuple[str, ...] = ()
    min_tickets: PositiveInt = 1
    ticket_strength: Strength = 0.5


class CrossSellBehavior(Rule):
    window_days: PositiveInt
    rules: tuple[CrossSellRule, ...]


class ChampionPromotion(Rule):
    window_days: PositiveInt
    min_new_level: Level
    strength_by_level: dict[Level, Strength]

    @model_validator(mode="after")
    def _levels_covered(self) -> Self:
        needed = LEVELS[LEVELS.index(self.min_new_level) :]
        missing = [level for level in needed if level not in self.strength_by_level]
        if missing:
            raise ValueError(f"strength_by_level needs a strength for {missing}")
        strengths = [self.strength_by_level[level] for level in needed]
        if any(b < a for a, b in pairwise(strengths)):
            raise ValueError("strength_by_level must not fall as seniority rises")
        return self


class PositiveConvergence(Rule):
    nps_window_days: PositiveInt
    promoter_score: float = Field(ge=0, le=10)
    nps_strength: RisingCurve
    usage_series: tuple[Literal["daily_active_users", "api_calls"], ...] = Field(min_length=1)
    usage_window_days: PositiveInt
    min_usage_days: PositiveInt
    min_usage_rise: float = Field(gt=0)
    usage_strength: RisingCurve
    exec_window_days: PositiveInt
    exec_min_level: Level
    advocacy_window_days: PositiveInt
    both_bonus: Fraction


class OrgGrowth(Rule):
    window_days: PositiveInt
    min_department_growth: float = Field(gt=0)
    department_strength: RisingCurve
    min_company_growth: float = Field(gt=0)
    company_strength: RisingCurve
    funding_strength: Strength
    new_department_strength: Strength
    extra_evidence_bonus: Fraction


class Signals(StrictModel):
    seat_utilization: SeatUtilization
    invite_velocity: InviteVelocity
    usage_near_cap: UsageNearCap
    api_volume_growth: ApiVolumeGrowth
    usage_velocity_to_tier: UsageVelocityToTier
    integration_connected: IntegrationConnected
    premium_feature_interest: PremiumFeatureInterest
    feature_breadth: FeatureBreadth
    power_user_emergence: PowerUserEmergence
    secondary_team_logins: SecondaryTeamLogins
    plan_limit_ticket: PlanLimitTicket
    cross_sell_behavior: CrossSellBehavior
    champion_promotion: ChampionPromotion
    positive_convergence: PositiveConvergence
    org_growth: OrgGrowth


class SignalConfig(StrictModel):
    """mappings/signals.yaml."""

    crm_fields: CrmFields
    # Metered metric -> how evidence names it ("API calls"); others read as the metric name.
    metric_labels: dict[str, str] = {}
    # Tier feature (mappings/plans.yaml) -> how people write it in a ticket, besides its name.
    feature_aliases: dict[str, tuple[str, ...]] = {}
    signals: Signals


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: a cache key for matchers
class SignalRules:
    """What the signals read: the signal config and the plan catalog."""

    config: SignalConfig
    plans: Plans

    @property
    def signals(self) -> Signals:
        return self.config.signals

    @property
    def crm_fields(self) -> CrmFields:
        return self.config.crm_fields

    @cached_property
    def enabled(self) -> frozenset[str]:
        """The names of the signals the config turns on."""
        signals = self.signals
        return frozenset(
            name for name in type(signals).model_fields if getattr(signals, name).enabled
        )

    def metric_label(self, metric: str) -> str:
        return self.config.metric_labels.get(metric, metric.replace("_", " "))

    def next_tier(self, tier: str | None) -> str | None:
        following = self.plans.next_tier(tier)
        return following.name if following else None

    def features_above(self, tier: str | None) -> tuple[str, ...]:
        """Features of every tier above `tier` (of every tier when the tier is unknown)."""
        rank = self.plans.rank(tier)
        above = self.plans.tiers if rank is None else self.plans.tiers[rank + 1 :]
        return tuple(feature for t in above for feature in t.features)

    def feature_phrases(self, features: tuple[str, ...]) -> list[str]:
        """How a ticket may name these features: each name with spaces, and its aliases."""
        aliases = self.config.feature_aliases
        return [f.replace("_", " ") for f in features] + [
            alias for f in features for alias in aliases.get(f, ())
        ]


def combine(config: SignalConfig, catalog: Plans, path: Path) -> SignalRules:
    """Join the config read from `path` with the plan catalog; an alias of a feature no tier
    has is an error in that file."""
    known = {feature for tier in catalog.tiers for feature in tier.features}
    unknown = sorted(set(config.feature_aliases) - known)
    if unknown:
        problems = [
            f"feature_aliases.{name}: not a feature of any tier in mappings/plans.yaml"
            for name in unknown
        ]
        raise MappingError(path, problems)
    return SignalRules(config, catalog)


_combined: dict[tuple[int, int], SignalRules] = {}


def signal_rules(settings: Settings) -> SignalRules:
    """The current rules; re-joined only when either file changed."""
    path = settings.mappings_dir / "signals.yaml"
    config, catalog = cached_model(path, SignalConfig), plans(settings)
    key = (id(config), id(catalog))
    if key not in _combined:
        _combined.clear()
        _combined[key] = combine(config, catalog, path)
    return _combined[key]
