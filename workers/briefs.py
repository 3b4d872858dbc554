"""The text of a play's tasks: the brief in the task body (the signal and its evidence, the
conversation angle, talking points, the timing, similar accounts that won the same play) and the
subject, from the templates of mappings/plays.yaml; plain text that reads well in a CRM task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache

from workers.evidence import Signal
from workers.play_rules import PlayRule, PlayRules, placeholders
from workers.play_selection import PlayContext, money
from workers.scoring import Assessment, Health, fmt_score

ELLIPSIS = "..."
STEP_FIELDS = frozenset({"step_title", "step_number"})
SHORTENED = "[shortened to fit the task body]"


@dataclass(frozen=True)
class SimilarWin:
    """An account that won the same play (from stored outcomes)."""

    account: str
    closed_on: date
    amount: float | None = None
    signal: str | None = None  # the signal that opened its play
    days_from_signal: int | None = None


class PlayTexts:
    """The texts of one play's steps. What the steps share (the template fields but the step's
    own, why now, the similar wins) is built once: a play renders every step when it opens, and
    a rescore batch opens hundreds of plays."""

    def __init__(
        self,
        play: str,
        signals: Sequence[Signal],
        assessment: Assessment,
        account: PlayContext,
        rules: PlayRules,
        similar_wins: Sequence[SimilarWin] = (),
    ) -> None:
        rule: PlayRule = rules.plays[play]  # type: ignore[index]
        self.play, self.rule, self.assessment, self.rules = play, rule, assessment, rules
        readiness, health = assessment.readiness, assessment.health
        window = readiness.window
        strongest = _play_signals(rule, signals)
        self._shared = {
            "account": account.name or f"account {account.account_id}",
            "play_title": rule.title,
            "step_count": str(len(rule.steps)),
            "top_signal": rules.brief.label(strongest[0].name) if strongest else "no signal",
            "readiness": fmt_score(readiness.score),
            "readiness_band": readiness.band,
            "health": fmt_score(health.score),
            "health_band": health.band,
            "window": window.name.replace("_", " "),
            "days_to_renewal": _or(window.days_to_renewal, "unknown"),
            "renewal_on": window.renewal_on.isoformat() if window.renewal_on else "no renewal date",
            "acv": money(account.acv, rules) if account.acv is not None else "unknown",
            "seats": _or(account.seats, "unknown"),
            "tier": account.tier or "the current plan",
            "next_tier": account.next_tier or "the next tier",
            "segment": (account.segment or "unknown").replace("_", " "),
        }
        self._why_now = "\n".join(_why_now(rule, strongest, health, rules))
        self._similar = _similar_lines(similar_wins, rules)
        self._step_fields: dict[str, dict[str, str]] = {}
        templates = (rule.angle, rule.timing, *rule.talking_points)
        self._tail_names_step = any(_names_the_step(t) for t in templates)
        self._tails: dict[str | None, str] = {}

    def fields(self, step: str) -> dict[str, str]:
        """Every placeholder the templates may name (play_rules.TEMPLATE_FIELDS), as text."""
        return dict(self._fields(step))

    def _fields(self, step: str) -> dict[str, str]:
        """`fields`, built once per step (its subject and brief both format with them)."""
        fields = self._step_fields.get(step)
        if fields is None:
            fields = {
                **self._shared,
                "step_title": self.rule.step(step).title,
                "step_number": str(self.rule.step_number(step)),
            }
            self._step_fields[step] = fields
        return fields

    def subject(self, step: str) -> str:
        """The task subject from the play's `subject` template, one line, length-bounded."""
        subject = " ".join(self.rule.subject.format_map(self._fields(step)).split())
        return _clip(subject, self.rules.brief.max_subject_chars)

    def value(self, step: str) -> str:
        """What a `kind: field` step writes to its account field."""
        template = self.rule.step(step).value
        if template is None:
            raise ValueError(f"step {step!r} of {self.play} writes no field")
        return template.format_map(self._fields(step))

    def brief(self, step: str) -> str:
        """The task body: headline and scores, why now, this step, the angle, talking points,
        the timing and similar wins; at most `brief.max_chars` characters."""
        rule, brief = self.rule, self.rules.brief
        fields = self._fields(step)
        head = f"{brief.headline.format_map(fields)}\n{brief.scores.format_map(fields)}"
        action = "\n".join(_section(brief.step_heading, [rule.step(step).action]))
        texts = (head, self._why_now, action, self._tail(step))
        return _bounded("\n\n".join(text for text in texts if text), brief.max_chars)

    def _tail(self, step: str) -> str:
        """The sections after the step's own (angle, talking points, timing, similar wins):
        made once for all the steps unless their templates name the step."""
        rule, brief = self.rule, self.rules.brief
        key = step if self._tail_names_step else None
        text = self._tails.get(key)
        if text is None:
            fields = self._fields(step)
            blocks = [
                _section(brief.angle_heading, [_paragraph(rule.angle.format_map(fields))]),
                _section(
                    brief.talking_points_heading,
                    [f"- {p.format_map(fields)}" for p in rule.talking_points],
                ),
                _section(brief.timing_heading, [_timing(rule, self.assessment, fields)]),
                _section(brief.similar_heading, self._similar),
            ]
            text = "\n\n".join("\n".join(block) for block in blocks if block)
            self._tails[key] = text
        return text


@cache
def _names_the_step(template: str) -> bool:
    """Whether the template has a placeholder of the step's own (its title or number)."""
    return not STEP_FIELDS.isdisjoint(placeholders(template))


def _why_now(
    play: PlayRule, strongest: Sequence[Signal], health: Health, rules: PlayRules
) -> list[str]:
    """A save play: the health numbers; any other play: the signals that can trigger it
    (`strongest`: `_play_signals`)."""
    brief = rules.brief
    if play.gate == "save_play":
        return _section(brief.health_heading, _health_lines(health, rules))
    lines = [
        brief.signal_line.format(
            label=brief.label(s.name),
            evidence=_clip(s.evidence, brief.max_evidence_chars),
            signal=s.name,
            category=s.category,
            strength=f"{s.strength:.2f}",
        )
        for s in strongest[: brief.max_signals]
    ]
    more = len(strongest) - brief.max_signals
    if more > 0:
        lines.append(f"- and {more} more signal{'s' if more > 1 else ''}")
    return _section(brief.why_heading, lines)


def _health_lines(health: Health, rules: PlayRules) -> list[str]:
    """The health score and trend, then the weakest dimensions with their numbers."""
    head = f"- Health {fmt_score(health.score)}/100 ({health.band})"
    if health.trend is not None:
        head += f"; {health.trend.evidence}"
    scored = sorted((d for d in health.dimensions if d.has_data), key=lambda d: (d.score, d.name))
    width = rules.brief.max_evidence_chars
    lines = [_clip(head, width)]
    lines += [f"- {_clip(d.evidence, width)}" for d in scored[: rules.brief.max_signals]]
    return lines


def _timing(play: PlayRule, assessment: Assessment, fields: dict[str, str]) -> str:
    """The renewal window's advice (for expansion plays) or the renewal date, then the play's."""
    window = assessment.readiness.window
    if play.gate == "expansion":
        when = window.reason
    elif window.renewal_on is not None and (window.days_to_renewal or 0) >= 0:
        days = window.days_to_renewal
        when = f"renewal in {days} day{'' if days == 1 else 's'} ({window.renewal_on.isoformat()})"
    else:
        when = "no upcoming renewal date on record"
    return f"{when[:1].upper()}{when[1:]}. {play.timing.format_map(fields)}"


def _similar_lines(wins: Sequence[SimilarWin], rules: PlayRules) -> list[str]:
    brief = rules.brief
    ordered = sorted(wins, key=lambda w: (-w.closed_on.toordinal(), w.account))
    lines = []
    for win in ordered[: brief.max_similar_wins]:
        after = ""
        if win.days_from_signal is not None:
            after = f", {win.days_from_signal} days after the signal"
            if win.signal:
                after += f" ({brief.label(win.signal)})"
        lines.append(
            brief.similar_line.format(
                account=win.account,
                amount=money(win.amount, rules) if win.amount is not None else "an expansion",
                closed_on=win.closed_on.isoformat(),
                after=after,
                signal=brief.label(win.signal) if win.signal else "",
            )
        )
    return lines


def _play_signals(play: PlayRule, signals: Sequence[Signal]) -> list[Signal]:
    """The signals that can trigger `play`, strongest first (none for a save play)."""
    if play.triggers is None:
        return []
    named = play.triggers.signals
    return [s for s in _strongest(signals) if s.name in named]


def _strongest(signals: Sequence[Signal]) -> list[Signal]:
    """The strongest signal of each name, strongest first (ties by name)."""
    best: dict[str, Signal] = {}
    for s in signals:
        if s.strength > 0 and (s.name not in best or s.strength > best[s.name].strength):
            best[s.name] = s
    return sorted(best.values(), key=lambda s: (-s.strength, s.name))


def _section(heading: str, lines: list[str]) -> list[str]:
    lines = [line for line in lines if line]
    return [heading, *lines] if lines else []


def _paragraph(text: str) -> str:
    return " ".join(text.split())


def _or(value: object, missing: str) -> str:
    return missing if value is None else str(value)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def _bounded(text: str, limit: int) -> str:
    """`text`, or the whole sections (else lines) that fit within `limit`, then a note that it
    was shortened."""
    if len(text) <= limit:
        return text
    room = limit - len(SHORTENED) - 2
    cut = text.rfind("\n\n", 0, room + 1)
    if cut <= 0:
        cut = text.rfind("\n", 0, room + 1)
    head = text[:cut] if cut > 0 else _clip(text, room)
    return f"{head.rstrip()}\n\n{SHORTENED}"
