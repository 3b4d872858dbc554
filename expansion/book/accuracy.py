"""How well the product found what the book planted: per signal and per play, the accounts
flagged against the accounts planted (precision, recall), and each account where they differ.
Signals are the ones stored with each account's current score; the play is what the play
selection decides for the account now (workers.play_selection), from the same state."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from time import sleep

from sqlalchemy import select

from expansion.book import Book
from expansion.book.model import Pattern
from expansion.cli import table
from expansion.db import transaction
from expansion.models import account_current_scores, account_links, account_scores
from expansion.settings import Settings
from workers.plans import plans
from workers.play_rules import PLAY_NAMES, play_rules
from workers.play_selection import PlayContext, select_plays
from workers.recompute import Rules, rescore_all, score, today_of
from workers.signals import SIGNALS
from workers.state_loader import load_states

RESCORE_TRIES = 30


@dataclass(frozen=True)
class Flagged:
    signals: frozenset[str]
    plays: frozenset[str]
    owners: Mapping[str, str | None] = field(default_factory=dict)  # play -> its assignee


@dataclass(frozen=True)
class Score:
    name: str
    planted: int
    flagged: int
    hits: int

    @property
    def precision(self) -> float | None:
        return self.hits / self.flagged if self.flagged else None

    @property
    def recall(self) -> float | None:
        return self.hits / self.planted if self.planted else None


@dataclass(frozen=True)
class Accuracy:
    signals: tuple[Score, ...]
    plays: tuple[Score, ...]
    # account key -> (pattern, what differs), for every account not flagged as planted
    mismatches: dict[str, tuple[str, str]] = field(default_factory=dict)
    missing: tuple[str, ...] = ()  # planted accounts the product has no score for

    @property
    def perfect(self) -> bool:
        scores = (*self.signals, *self.plays)
        return (
            not self.mismatches
            and not self.missing
            and all(s.hits == s.planted == s.flagged for s in scores)
        )


def flagged(settings: Settings, book: Book, now: datetime) -> dict[str, Flagged]:
    """What the product flags on each book account it knows, by the account's CRM key."""
    keys = {a.crm_key for a in book.accounts}
    with transaction(settings) as conn:
        links = {
            f"{kind}:{external}": account_id
            for kind, external, account_id in conn.execute(
                select(
                    account_links.c.kind, account_links.c.external_id, account_links.c.account_id
                )
            )
            if f"{kind}:{external}" in keys
        }
        stored = dict(
            conn.execute(
                select(account_current_scores.c.account_id, account_scores.c.signals).join(
                    account_scores, account_scores.c.id == account_current_scores.c.score_id
                )
            ).all()
        )
        rules = Rules.from_settings(settings)
        states = load_states(conn, list(links.values()), today_of(now), rules.load)
    play_config, catalog = play_rules(settings), plans(settings)
    plays: dict[int, dict[str, str | None]] = {}
    for state in states:
        signals, assessment = score(state, rules)
        context = PlayContext.from_state(state, play_config, catalog)
        decisions = select_plays(assessment, signals, context, [], [], play_config)
        plays[state.account_id] = {
            d.play: d.owner.assignee if d.owner else None for d in decisions if d.action == "open"
        }
    return {
        key: Flagged(
            frozenset(s["name"] for s in stored.get(account_id) or []),
            frozenset(plays.get(account_id, {})),
            plays.get(account_id, {}),
        )
        for key, account_id in links.items()
        if account_id in stored
    }


def measure(book: Book, found: Mapping[str, Flagged]) -> Accuracy:
    truth = {a.crm_key: a.pattern for a in book.accounts}
    mismatches: dict[str, tuple[str, str]] = {}
    for key, pattern in truth.items():
        got = found.get(key)
        if got is None:
            continue
        planted_plays = {pattern.play} if pattern.play else set()
        differences = _differences("signal", pattern.signals, got.signals)
        differences += _differences("play", planted_plays, got.plays)
        if differences:
            mismatches[key] = (pattern.name, "; ".join(differences))
    known = {key: truth[key] for key in found}
    return Accuracy(
        signals=tuple(
            _score(name, known, found, lambda p, n=name: n in p.signals, "signals")
            for name in SIGNALS
        ),
        plays=tuple(
            _score(name, known, found, lambda p, n=name: p.play == n, "plays")
            for name in PLAY_NAMES
        ),
        mismatches=mismatches,
        missing=tuple(sorted(set(truth) - set(found))),
    )


def _differences(what: str, planted: Iterable[str], got: Iterable[str]) -> list[str]:
    planted, got = set(planted), set(got)
    return [f"{what} {n} not flagged" for n in sorted(planted - got)] + [
        f"{what} {n} flagged but not planted" for n in sorted(got - planted)
    ]


def _score(
    name: str,
    known: Mapping[str, Pattern],
    found: Mapping[str, Flagged],
    planted_here: Callable[[Pattern], bool],
    part: str,
) -> Score:
    planted = {key for key, pattern in known.items() if planted_here(pattern)}
    flagged_keys = {key for key, got in found.items() if name in getattr(got, part)}
    return Score(name, len(planted), len(flagged_keys), len(planted & flagged_keys))


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(accuracy: Accuracy) -> str:
    """The precision/recall table the demo prints, then every account that differs."""
    lines = []
    for title, scores in (("signal", accuracy.signals), ("play", accuracy.plays)):
        rows = [
            [s.name, s.planted, s.flagged, s.hits, _ratio(s.precision), _ratio(s.recall)]
            for s in scores
        ]
        lines.append(table([title, "planted", "flagged", "correct", "precision", "recall"], rows))
        lines.append("")
    if accuracy.missing:
        lines.append(f"{len(accuracy.missing)} book account(s) have no score yet")
    for key, (pattern, differences) in sorted(accuracy.mismatches.items()):
        lines.append(f"{key} ({pattern}): {differences}")
    if accuracy.perfect:
        lines.append("every planted pattern was flagged with its play; nothing else was flagged")
    return "\n".join(lines).rstrip()


def check(settings: Settings, book: Book, rescore: bool = True) -> Accuracy:
    """Rescore the whole book as of its last day (unless told not to), then measure it."""
    return measure(book, rescored(settings, book, rescore))


def rescored(settings: Settings, book: Book, rescore: bool = True) -> dict[str, Flagged]:
    """What the product flags on the book's accounts, after a rescore as of its last day."""
    now = datetime.combine(book.today, time(12), UTC)
    for _ in range(RESCORE_TRIES if rescore else 0):
        # Accounts a worker is recomputing right now are skipped; their turn comes next try.
        if not rescore_all(settings, now).skipped:
            break
        sleep(1)
    return flagged(settings, book, now)
