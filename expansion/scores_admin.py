"""Score operations for admins: find an account from whatever a CSM knows of it (our id, a
linked key, an external id, its name), explain its scores without storing anything, rescore it
now, and count the book's bands."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from expansion.db import transaction
from expansion.models import account_current_scores, account_links, accounts, key_aliases
from expansion.settings import Settings
from integration.canonical import ACCOUNT_KINDS, AccountKey
from integration.salesforce_ids import id18, is_id
from workers import identity, recompute
from workers.evidence import Signal
from workers.scoring import Assessment
from workers.state_loader import LoadConfig, load_state

OWN_ID_KIND = "id"  # `id:42`: our account id, never an external one
KIND = re.compile(r"[a-z][a-z_]*")
HOW_TO_NAME = (
    "give our account id, a linked key as kind:value (salesforce:001..., hubspot:123, "
    "stripe:cus_..., chargebee:..., product:...), an external id, or the exact account name"
)


class AccountNotFound(LookupError):
    """Nothing, or more than one account, matches what was given; the message says what to do."""


@dataclass(frozen=True)
class Match:
    account_id: int
    name: str | None
    how: str  # e.g. "linked key stripe:cus_123", "account name"


def find_account(conn: Connection, given: str) -> Match:
    """The one account `given` names; AccountNotFound when none or several do."""
    text = given.strip()
    if not text:
        raise AccountNotFound(f"no account given: {HOW_TO_NAME}")
    kind, _, value = text.partition(":")
    if value and _is_key_kind(conn, kind):
        return _by_key(conn, kind, value.strip(), text)
    matches = _by_bare_value(conn, text)
    accounts_found = {m.account_id for m in matches}
    if len(accounts_found) == 1:
        return matches[0]
    if not matches:
        raise AccountNotFound(f"no account matches {text!r}: {HOW_TO_NAME}")
    listed = "; ".join(
        f"account {m.account_id} ({m.name or 'no name'}) by {m.how}" for m in matches
    )
    raise AccountNotFound(
        f"{text!r} matches {len(accounts_found)} accounts: {listed}. Name one as id:N or as "
        "kind:value"
    )


def _is_key_kind(conn: Connection, kind: str) -> bool:
    if kind == OWN_ID_KIND or kind in ACCOUNT_KINDS:
        return True
    if not KIND.fullmatch(kind):
        return False
    return (
        conn.execute(select(key_aliases.c.kind).where(key_aliases.c.kind == kind).limit(1)).first()
        is not None
    )


def _by_key(conn: Connection, kind: str, value: str, text: str) -> Match:
    if kind == OWN_ID_KIND:
        found = _by_own_id(conn, value)
        if found is None:
            raise AccountNotFound(f"there is no account with id {value}: {HOW_TO_NAME}")
        return found
    account_id = identity.lookup(conn, AccountKey(kind, value))
    if account_id is None:
        raise AccountNotFound(
            f"no account is linked to {text} (yet: its events may be parked until a link "
            f"arrives); check the key, or {HOW_TO_NAME}"
        )
    return Match(account_id, _name(conn, account_id), f"linked key {kind}:{value}")


def _by_own_id(conn: Connection, value: str) -> Match | None:
    if not value.isdigit():
        return None
    account_id = int(value)
    row = conn.execute(select(accounts.c.name).where(accounts.c.id == account_id)).first()
    return None if row is None else Match(account_id, row.name, "account id")


def _by_bare_value(conn: Connection, text: str) -> list[Match]:
    """Every account the text names as our id, an external id of any kind, or a name."""
    matches = [m for m in [_by_own_id(conn, text)] if m is not None]
    external = {text, id18(text)} if is_id(text) else {text}
    links = conn.execute(
        select(account_links.c.account_id, account_links.c.kind, account_links.c.external_id)
        .where(account_links.c.external_id.in_(external))
        .order_by(account_links.c.kind)
    ).all()
    matches += [
        Match(
            row.account_id, _name(conn, row.account_id), f"linked key {row.kind}:{row.external_id}"
        )
        for row in links
    ]
    named = conn.execute(
        select(accounts.c.id, accounts.c.name)
        .where(accounts.c.name == text)
        .order_by(accounts.c.id)
    ).all()
    matches += [Match(row.id, row.name, "account name") for row in named]
    return matches


def _name(conn: Connection, account_id: int) -> str | None:
    return conn.execute(select(accounts.c.name).where(accounts.c.id == account_id)).scalar()


@dataclass(frozen=True)
class Explanation:
    match: Match
    signals: tuple[Signal, ...]
    assessment: Assessment


def explain(settings: Settings, given: str, as_of: date) -> Explanation:
    """Health, readiness and the active signals of the account `given` names, as of `as_of`,
    from its stored state and the current rules; nothing is written."""
    with transaction(settings) as conn:
        match = find_account(conn, given)
        state = load_state(conn, match.account_id, as_of, LoadConfig.from_settings(settings))
    signals, assessment = recompute.score(state, recompute.Rules.from_settings(settings))
    return Explanation(match, signals, assessment)


def explanation_json(explanation: Explanation) -> dict[str, Any]:
    """The same content as the text: what score history stores as evidence, with the account."""
    assessment = explanation.assessment
    return {
        "account_id": assessment.account_id,
        "name": assessment.name,
        "matched_by": explanation.match.how,
        **recompute.evidence_json(assessment, explanation.signals),
    }


class AccountBusy(RuntimeError):
    """A worker is recomputing the account right now."""


def rescore_one(settings: Settings, account_id: int, now: datetime) -> recompute.ScoreRecord:
    """Recompute and store one account's scores now, under its single-flight lock."""
    lock = recompute.AccountLock.for_settings(settings)
    token = lock.acquire(account_id)
    if token is None:
        raise AccountBusy(
            f"account {account_id} is being recomputed by a worker right now; its scores will "
            "be current in a moment (run this again to recompute it once more)"
        )
    try:
        return recompute.recompute_account(settings, account_id, now, reason="rescore")
    finally:
        lock.release(account_id, token)


@dataclass(frozen=True)
class Bands:
    """Accounts per band in the current scores of the book."""

    health: dict[str, int]
    readiness: dict[str, int]


HEALTH_BANDS = ("green", "yellow", "red", "unknown")
READINESS_BANDS = ("hot", "warm", "cold")


def bands(settings: Settings) -> Bands:
    scores = account_current_scores.c
    with transaction(settings) as conn:
        health = dict(
            conn.execute(
                select(scores.health_band, func.count()).group_by(scores.health_band)
            ).all()
        )
        readiness = dict(
            conn.execute(
                select(scores.readiness_band, func.count()).group_by(scores.readiness_band)
            ).all()
        )
    return Bands(_ordered(health, HEALTH_BANDS), _ordered(readiness, READINESS_BANDS))


def _ordered(counts: dict[str, int], order: tuple[str, ...]) -> dict[str, int]:
    return {band: counts.get(band, 0) for band in order} | {
        band: n for band, n in sorted(counts.items()) if band not in order
    }
