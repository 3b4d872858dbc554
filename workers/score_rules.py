"""The health and readiness rules of mappings/scoring.yaml as typed, validated models: every
weight, curve, band edge, multiplier, gate and window edge lives in the file, none in code."""

from __future__ import annotations

from functools import cached_property
from itertools import pairwise
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, PositiveInt, model_validator

from expansion.mappings import StrictModel, cached_model
from expansion.settings import Settings

# The signals of SPEC §4.1: a readiness weight for any other name is a typo, not a new signal.
SIGNAL_NAMES = frozenset(
    {
        "seat_utilization",
        "invite_velocity",
        "usage_near_cap",
        "api_volume_growth",
        "usage_velocity_to_tier",
        "integration_connected",
        "premium_feature_interest",
        "feature_breadth",
        "power_user_emergence",
        "secondary_team_logins",
        "plan_limit_ticket",
        "cross_sell_behavior",
        "champion_promotion",
        "positive_convergence",
        "org_growth",
    }
)

Weight = Annotated[float, Field(ge=0)]
Points = Annotated[float, Field(ge=0, le=100)]
Point = tuple[float, Points]


def _curve_shape(points: tuple[Point, ...]) -> tuple[Point, ...]:
    if len(points) < 2:
        raise ValueError("a curve needs at least two [input, score] points")
    xs = [x for x, _ in points]
    if any(b <= a for a, b in pairwise(xs)):
        raise ValueError("curve inputs must strictly increase")
    return points


def _rising(points: tuple[Point, ...]) -> tuple[Point, ...]:
    ys = [y for _, y in _curve_shape(points)]
    if any(b < a for a, b in pairwise(ys)):
        raise ValueError("curve scores must not fall as the input grows (more is healthier)")
    return points


def _falling(points: tuple[Point, ...]) -> tuple[Point, ...]:
    ys = [y for _, y in _curve_shape(points)]
    if any(b > a for a, b in pairwise(ys)):
        raise ValueError("curve scores must not rise as the input grows (more is less healthy)")
    return points


# [input, score] points, interpolated linearly and flat beyond both ends.
RisingCurve = Annotated[tuple[Point, ...], AfterValidator(_rising)]
FallingCurve = Annotated[tuple[Point, ...], AfterValidator(_falling)]


class ActiveUsersRule(StrictModel):
    weight: Weight
    window_days: PositiveInt
    curve: RisingCurve  # active seats / licensed seats


class DauTrendRule(StrictModel):
    weight: Weight
    window_days: PositiveInt
    min_days: PositiveInt  # known DAU days needed in each window
    curve: RisingCurve  # relative change of average DAU, e.g. 0.12 = up 12%


class AdoptionBreadthRule(StrictModel):
    weight: Weight
    window_days: PositiveInt
    core_categories: tuple[str, ...] = Field(min_length=1)
    curve: RisingCurve  # core categories used / all core categories


class NpsRule(StrictModel):
    weight: Weight
    window_days: PositiveInt
    curve: RisingCurve  # average of each respondent's latest score, 0-10


class SentimentRule(StrictModel):
    weight: Weight
    # CRM value (lower case, spaces and hyphens as underscores) -> score.
    values: dict[str, Points] = Field(min_length=1)


class ExecSponsorRule(StrictModel):
    weight: Weight
    curve: FallingCurve  # days since an executive sponsor last engaged


class ChampionRule(StrictModel):
    weight: Weight
    present: Points
    absent: Points

    @model_validator(mode="after")
    def _present_is_better(self) -> Self:
        if self.present < self.absent:
            raise ValueError("present must score at least as high as absent")
        return self


class LastInteractionRule(StrictModel):
    weight: Weight
    curve: FallingCurve  # days since the last meaningful interaction


class OpenP1Rule(StrictModel):
    weight: Weight
    curve: FallingCurve  # open P1 tickets


class TicketTrendRule(StrictModel):
    weight: Weight
    window_days: PositiveInt
    baseline_days: PositiveInt  # the period before the window the rate is compared with
    curve: FallingCurve  # (tickets in window + 1) / (baseline per window + 1)


class CsatRule(StrictModel):
    weight: Weight
    window_days: PositiveInt
    curve: RisingCurve  # average CSAT, 1-5


class PaymentRule(StrictModel):
    weight: Weight
    window_days: PositiveInt
    curve: FallingCurve  # failed invoices in the window


class UtilizationRule(StrictModel):
    weight: Weight
    # Metered metric measured against Subscription.committed_usage; null: the account's only one.
    usage_metric: str | None
    period_days: PositiveInt  # the period the commitment is stated for
    min_days: PositiveInt
    # Without a usage commitment, licensed seats are the commitment (active / licensed seats).
    seats_as_commitment: bool
    curve: RisingCurve  # usage / commitment


class _Dimension(StrictModel):
    weight: Weight

    @model_validator(mode="after")
    def _some_metric_counts(self) -> Self:
        if not any(rule.weight > 0 for rule in self.metric_rules().values()):
            raise ValueError("at least one metric needs a weight above 0")
        return self

    def metric_rules(self) -> dict[str, StrictModel]:
        return {name: getattr(self, name) for name in type(self).model_fields if name != "weight"}


class ProductRules(_Dimension):
    active_users: ActiveUsersRule
    dau_trend: DauTrendRule
    adoption_breadth: AdoptionBreadthRule


class RelationshipRules(_Dimension):
    nps: NpsRule
    csm_sentiment: SentimentRule
    exec_sponsor_activity: ExecSponsorRule
    champion_present: ChampionRule
    last_interaction: LastInteractionRule


class SupportRules(_Dimension):
    open_p1s: OpenP1Rule
    ticket_volume_trend: TicketTrendRule
    csat: CsatRule


class FinancialRules(_Dimension):
    payment_history: PaymentRule
    contract_utilization: UtilizationRule


class Dimensions(StrictModel):
    product: ProductRules
    relationship: RelationshipRules
    support: SupportRules
    financial: FinancialRules

    @model_validator(mode="after")
    def _some_dimension_counts(self) -> Self:
        if not any(rules.weight > 0 for rules in self.by_name().values()):
            raise ValueError("at least one dimension needs a weight above 0")
        return self

    def by_name(self) -> dict[str, _Dimension]:
        return {name: getattr(self, name) for name in type(self).model_fields}

    @cached_property
    def plan(self) -> tuple[tuple[str, float, tuple[tuple[str, StrictModel], ...]], ...]:
        """(dimension, its weight, ((metric, its rule), ...)) in the file's order: made once, as
        health walks it twice for every account."""
        return tuple(
            (name, rules.weight, tuple(rules.metric_rules().items()))
            for name, rules in self.by_name().items()
        )


class HealthBands(StrictModel):
    green: Points  # score >= green
    yellow: Points  # yellow <= score < green; below is red

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.yellow >= self.green:
            raise ValueError("yellow must be below green")
        return self


class TrendRules(StrictModel):
    days: PositiveInt
    flat_within: Annotated[float, Field(ge=0)]  # a change this small (points) is "flat"


class HealthRules(StrictModel):
    bands: HealthBands
    trend: TrendRules
    dimensions: Dimensions


class ReadinessBands(StrictModel):
    hot: Points
    warm: Points

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.warm >= self.hot:
            raise ValueError("warm must be below hot")
        return self


def _known_signals(weights: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(weights) - SIGNAL_NAMES)
    if unknown:
        raise ValueError(f"unknown signal(s) {', '.join(unknown)}; known: {sorted(SIGNAL_NAMES)}")
    return weights


def _convergence_shape(multipliers: dict[int, float]) -> dict[int, float]:
    ordered = sorted(multipliers.items())
    if any(count < 2 for count, _ in ordered):
        raise ValueError("convergence applies from 2 categories on")
    values = [value for _, value in ordered]
    if any(value < 1 for value in values) or values != sorted(values):
        raise ValueError("multipliers must be >= 1 and must not fall as categories grow")
    return multipliers


class ReadinessRules(StrictModel):
    # Points a signal adds at strength 1.0.
    weights: Annotated[dict[str, Weight], AfterValidator(_known_signals)]
    default_weight: Weight  # for a signal the file does not list
    # Distinct categories firing together -> multiplier; the largest count <= the actual applies.
    convergence: Annotated[dict[int, float], AfterValidator(_convergence_shape)]
    bands: ReadinessBands


class GateRules(StrictModel):
    # Health bands in which expansion is surfaced; any other gets a save play (or a hold when
    # health is unknown).
    open_bands: tuple[Literal["green", "yellow", "red", "unknown"], ...] = Field(min_length=1)


class WindowAdvice(StrictModel):
    open: str
    closing: str
    renewal_pressure: str
    unknown: str


class WindowRules(StrictModel):
    open_from_days: PositiveInt  # days to renewal >= this: open
    closing_from_days: PositiveInt  # >= this: closing; fewer: renewal pressure
    advice: WindowAdvice

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.closing_from_days >= self.open_from_days:
            raise ValueError("closing_from_days must be below open_from_days")
        return self


class ScoringRules(StrictModel):
    health: HealthRules
    readiness: ReadinessRules
    gate: GateRules
    window: WindowRules


def score_rules(settings: Settings) -> ScoringRules:
    return cached_model(settings.mappings_dir / "scoring.yaml", ScoringRules)
