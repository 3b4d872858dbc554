"""The plays of mappings/plays.yaml (SPEC §5) as typed, validated models: triggers, hysteresis,
owners by role and ACV, business-day step sequences, spam controls and the text templates."""

from __future__ import annotations

import string
from functools import cached_property
from typing import Annotated, Literal, Self, get_args

from pydantic import (
    AfterValidator,
    Field,
    NonNegativeInt,
    PositiveInt,
    field_validator,
    model_validator,
)

from expansion.mappings import StrictModel, cached_model
from expansion.settings import Settings
from workers.business_days import calendar, zone
from workers.score_rules import SIGNAL_NAMES

Role = Literal["csm", "account_owner", "vp_cs", "owner_manager", "renewal_owner"]
PlayName = Literal[
    "seat_expansion",
    "tier_upsell",
    "cross_sell",
    "strategic_expansion",
    "usage_auto_expansion",
    "save_play",
    "renewal_expansion",
]
PLAY_NAMES: tuple[str, ...] = get_args(PlayName)
ROLES: tuple[str, ...] = get_args(Role)
PRIORITIES = ("high", "medium", "low")  # most urgent first

WindowName = Literal["open", "closing", "renewal_pressure", "unknown"]
HealthBand = Literal["green", "yellow", "red"]
ReadinessBand = Literal["hot", "warm", "cold"]
Points = Annotated[float, Field(ge=0, le=100)]
Money = Annotated[float, Field(ge=0)]
Text = Annotated[str, Field(min_length=1)]

# What the play and step templates may name (workers/briefs.py fills every one of them).
TEMPLATE_FIELDS = frozenset(
    {
        "account",
        "play_title",
        "step_title",
        "step_number",
        "step_count",
        "top_signal",
        "readiness",
        "readiness_band",
        "health",
        "health_band",
        "window",
        "days_to_renewal",
        "renewal_on",
        "acv",
        "seats",
        "tier",
        "next_tier",
        "segment",
    }
)
SIGNAL_LINE_FIELDS = frozenset({"label", "evidence", "signal", "category", "strength"})
SIMILAR_LINE_FIELDS = frozenset({"account", "amount", "closed_on", "after", "signal"})


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _fields_within(allowed: frozenset[str]) -> AfterValidator:
    def check(template: str) -> str:
        try:
            names = placeholders(template)
        except ValueError as exc:
            raise ValueError(f"not a valid template: {exc}") from None
        unknown = sorted(names - allowed)
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)}; "
                f"known: {', '.join(sorted(allowed))}"
            )
        return template

    return AfterValidator(check)


Template = Annotated[str, Field(min_length=1), _fields_within(TEMPLATE_FIELDS)]
SignalLine = Annotated[str, Field(min_length=1), _fields_within(SIGNAL_LINE_FIELDS)]
SimilarLine = Annotated[str, Field(min_length=1), _fields_within(SIMILAR_LINE_FIELDS)]


def _time_zone(name: str) -> str:
    zone(name)
    return name


def _holiday_country(code: str) -> str:
    calendar(code)
    return code


TimeZone = Annotated[str, AfterValidator(_time_zone)]
HolidayCountry = Annotated[str, AfterValidator(_holiday_country)]


class Defaults(StrictModel):
    time_zone: TimeZone
    holiday_country: HolidayCountry
    cooldown_days: NonNegativeInt = 60
    acv_uplift_pct: Annotated[float, Field(gt=0)]


class AccountFields(StrictModel):
    """CRM fields (AccountState.crm names) that tune plays per account; null: not read."""

    segment: str | None = None
    time_zone: str | None = None
    holiday_country: str | None = None


class RoleRule(StrictModel):
    label: Text
    fields: tuple[str, ...] = ()  # CRM fields naming the user, the first non-empty one wins
    user: str | None = None  # a fixed user id when none of the fields names one
    queue: str | None = None  # overrides owners.fallback_queue for this role

    @model_validator(mode="after")
    def _has_a_source(self) -> Self:
        if not self.fields and not self.user:
            raise ValueError("give `fields` (CRM fields naming the user) or a fixed `user`")
        return self


class OwnerRules(StrictModel):
    fallback_queue: Text
    roles: dict[Role, RoleRule]

    @field_validator("roles")
    @classmethod
    def _every_role(cls, roles: dict[str, RoleRule]) -> dict[str, RoleRule]:
        missing = [r for r in ROLES if r not in roles]
        if missing:
            raise ValueError(f"roles {missing} are missing; every role of {list(ROLES)} is needed")
        return roles

    def label(self, role: str) -> str:
        return self.roles[role].label  # type: ignore[index]


class SignalCondition(StrictModel):
    signal: str
    min_strength: Annotated[float, Field(ge=0, le=1)] = 0.0
    fact: str | None = None  # a key of the signal's facts, compared with at_least / at_most
    at_least: float | None = None
    at_most: float | None = None

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, name: str) -> str:
        if name not in SIGNAL_NAMES:
            raise ValueError(f"unknown signal {name!r}; known: {', '.join(sorted(SIGNAL_NAMES))}")
        return name

    @model_validator(mode="after")
    def _fact_has_bounds(self) -> Self:
        bounded = self.at_least is not None or self.at_most is not None
        if bounded != (self.fact is not None):
            raise ValueError("`fact` and `at_least` / `at_most` go together")
        return self

    def describe(self) -> str:
        if self.fact is None:
            return self.signal
        bounds = []
        if self.at_least is not None:
            bounds.append(f"{self.fact} >= {self.at_least:g}")
        if self.at_most is not None:
            bounds.append(f"{self.fact} <= {self.at_most:g}")
        return f"{self.signal} ({', '.join(bounds)})"


class Triggers(StrictModel):
    any_of: tuple[SignalCondition, ...] = ()
    all_of: tuple[SignalCondition, ...] = ()

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.any_of and not self.all_of:
            raise ValueError("name at least one signal condition under any_of or all_of")
        return self

    @cached_property
    def signals(self) -> frozenset[str]:
        """The signals its conditions name: no other signal can make it fire."""
        return frozenset(c.signal for c in (*self.any_of, *self.all_of))


class Hysteresis(StrictModel):
    enter: Points  # a play opens at or above this readiness score
    exit: Points  # an open play closes below this readiness score
    bands: tuple[ReadinessBand, ...] = ()  # opening also needs one of these bands (empty: any)

    @model_validator(mode="after")
    def _exit_below_enter(self) -> Self:
        if self.exit > self.enter:
            raise ValueError(f"exit ({self.exit:g}) must not be above enter ({self.enter:g})")
        return self


class Assist(StrictModel):
    """A second owner on the play, when the account's ACV or health calls for one."""

    role: Role
    when_acv_above: Money | None = None  # ACV strictly above this
    when_health: tuple[HealthBand, ...] = ()  # health in one of these bands


class Handoff(StrictModel):
    """From `at_step` on, the steps go to `role` when the estimated ACV increase is above."""

    role: Role
    at_step: str
    when_acv_increase_above: Money


class Due(StrictModel):
    day: NonNegativeInt | None = None  # business day D<day> from the trigger
    week: PositiveInt | None = None  # the end of business week <week> (day 5 x week)

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.day is None) == (self.week is None):
            raise ValueError("give exactly one of `day` or `week`")
        return self

    @property
    def business_days(self) -> int:
        return self.day if self.day is not None else 5 * self.week  # type: ignore[operator]


class Step(StrictModel):
    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    title: Text
    kind: Literal["task", "fyi", "field"] = "task"
    action: str = ""  # what to do, the brief's "This step"
    due: Due
    due_by_segment: dict[Annotated[str, Field(pattern=r"^[a-z0-9_]+$")], Due] = {}
    owner: Role | None = None  # null: the play's owner (or its handoff role)
    condition: Literal["always", "no_response"] = "always"
    overdue: Literal["escalate", "stalled"] = "escalate"
    field: str | None = None  # kind field: the account output written
    value: Annotated[str, _fields_within(TEMPLATE_FIELDS)] | None = None

    @model_validator(mode="after")
    def _kind_fits(self) -> Self:
        if self.kind == "field":
            if not self.field or self.value is None:
                raise ValueError("a `field` step names the `field` and the `value` it writes")
        elif self.field is not None or self.value is not None:
            raise ValueError("`field` and `value` belong to `kind: field` steps only")
        elif not self.action:
            raise ValueError(f"a {self.kind} step needs an `action` (the task's instruction)")
        return self

    def due_days(self, segment: str | None) -> int:
        """Business days from the trigger, for the account's segment."""
        due = self.due_by_segment.get(segment, self.due) if segment else self.due
        return due.business_days


class PlayRule(StrictModel):
    title: Text
    enabled: bool = True
    priority: Literal["high", "medium", "low"]
    gate: Literal["expansion", "save_play"]
    windows: tuple[WindowName, ...] = Field(min_length=1)
    triggers: Triggers | None = None
    readiness: Hysteresis | None = None
    health_exit: Points | None = None
    owner: Role | None
    fyi: Role | None = None
    assists: tuple[Assist, ...] = ()
    handoff: Handoff | None = None
    escalation_owner: Role | None = None
    cooldown_days: NonNegativeInt | None = None  # null: defaults.cooldown_days
    capped: bool = True
    subject: Template
    angle: Template
    talking_points: tuple[Template, ...] = ()
    timing: Template
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = self._gate_problems() + self._owner_problems() + self._step_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _gate_problems(self) -> list[str]:
        if self.gate == "expansion":
            needs = [n for n in ("triggers", "readiness") if getattr(self, n) is None]
            wrong = ["health_exit"] if self.health_exit is not None else []
            return [f"an expansion play needs `{n}`" for n in needs] + [
                f"`{n}` belongs to save plays" for n in wrong
            ]
        extra = [n for n in ("triggers", "readiness") if getattr(self, n) is not None]
        needs = ["health_exit"] if self.health_exit is None else []
        return [f"a save play opens on the health gate, not on `{n}`" for n in extra] + [
            f"a save play needs `{n}`" for n in needs
        ]

    def _owner_problems(self) -> list[str]:
        problems = []
        if self.owner is not None and self.escalation_owner is None:
            problems.append("a play with an owner needs an `escalation_owner` for SLA breaches")
        if self.owner is None and self.capped:
            problems.append("a play without an owner cannot be capped (set `capped: false`)")
        keys = [s.key for s in self.steps]
        if self.handoff and self.handoff.at_step not in keys:
            problems.append(f"handoff.at_step {self.handoff.at_step!r} is not one of {keys}")
        return problems

    def _step_problems(self) -> list[str]:
        problems = []
        keys = [s.key for s in self.steps]
        if len(set(keys)) != len(keys):
            problems.append(f"step keys must be unique, got {keys}")
        for step in self.steps:
            if step.kind != "field" and step.owner is None and self.owner is None:
                problems.append(f"step {step.key!r} needs an `owner`: the play has none")
        segments = sorted({s for step in self.steps for s in step.due_by_segment})
        for segment in [None, *segments]:
            days = [step.due_days(segment) for step in self.steps]
            if days != sorted(days):
                which = f" for segment {segment}" if segment else ""
                problems.append(f"steps must be due in order{which}, got days {days}")
        return problems

    def step(self, key: str) -> Step:
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(f"play has no step {key!r}")

    def step_number(self, key: str) -> int:
        return [s.key for s in self.steps].index(key) + 1


class BriefRules(StrictModel):
    max_chars: Annotated[int, Field(ge=500)]
    max_signals: PositiveInt
    max_evidence_chars: Annotated[int, Field(ge=40)]
    max_similar_wins: NonNegativeInt
    max_subject_chars: Annotated[int, Field(ge=20)]
    currency: str
    headline: Template
    scores: Template
    why_heading: Text
    signal_line: SignalLine
    health_heading: Text
    step_heading: Text
    angle_heading: Text
    talking_points_heading: Text
    timing_heading: Text
    similar_heading: Text
    similar_line: SimilarLine
    signal_labels: dict[str, str] = {}

    @field_validator("signal_labels")
    @classmethod
    def _known_signals(cls, labels: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(labels) - SIGNAL_NAMES)
        if unknown:
            raise ValueError(f"unknown signal(s) {unknown}")
        return labels

    def label(self, signal: str) -> str:
        return self.signal_labels.get(signal) or signal.replace("_", " ").capitalize()


class PlayRules(StrictModel):
    defaults: Defaults
    account_fields: AccountFields = AccountFields()
    weekly_cap: dict[Role, NonNegativeInt] = {}
    owners: OwnerRules
    brief: BriefRules
    plays: dict[PlayName, PlayRule]

    @field_validator("plays")
    @classmethod
    def _all_seven(cls, plays: dict[str, PlayRule]) -> dict[str, PlayRule]:
        missing = [name for name in PLAY_NAMES if name not in plays]
        if missing:
            raise ValueError(f"plays {missing} are missing (set `enabled: false` to turn one off)")
        return plays

    def cooldown_days(self, play: str) -> int:
        own = self.plays[play].cooldown_days  # type: ignore[index]
        return self.defaults.cooldown_days if own is None else own

    def ordered(self) -> list[tuple[str, PlayRule]]:
        """Plays by priority (high first), then name: the order decisions are listed in."""
        return list(self._ordered)

    # Orders made once per loaded plays.yaml: the play step asks for them twice per account.
    @cached_property
    def _ordered(self) -> tuple[tuple[str, PlayRule], ...]:
        return tuple(sorted(self.plays.items(), key=lambda item: (priority_rank(item[1]), item[0])))

    @cached_property
    def save_first(self) -> tuple[tuple[str, PlayRule], ...]:
        """`ordered`, save plays first: the order plays are considered in."""
        return tuple(sorted(self._ordered, key=lambda item: item[1].gate != "save_play"))

    @cached_property
    def trigger_signals(self) -> frozenset[str]:
        """The signals any play's triggers name."""
        return frozenset().union(*(p.triggers.signals for p in self.plays.values() if p.triggers))

    @cached_property
    def listing_ranks(self) -> dict[str, tuple[int, str]]:
        """Play name -> its place in `ordered` (priority, then name)."""
        return {name: (priority_rank(play), name) for name, play in self.plays.items()}


def priority_rank(play: PlayRule) -> int:
    return PRIORITIES.index(play.priority)


def play_rules(settings: Settings) -> PlayRules:
    return cached_model(settings.mappings_dir / "plays.yaml", PlayRules)
