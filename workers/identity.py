"""Identity (SPEC §3.4): which account a key belongs to, links between an account's keys, and
aliases that route a contact or a product user to its account."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select

from expansion.models import account_links, accounts, key_aliases
from integration.canonical import ACCOUNT_KINDS, CRM_ACCOUNT_KINDS, AccountKey, Alias

MAX_ALIAS_DEPTH = 4


def lookup(conn: Connection, key: AccountKey) -> int | None:
    """The account a key belongs to, following aliases; None while it is not linked yet."""
    for _ in range(MAX_ALIAS_DEPTH):
        account_id = conn.execute(
            select(account_links.c.account_id).where(
                account_links.c.kind == key.kind, account_links.c.external_id == key.value
            )
        ).scalar_one_or_none()
        if account_id is not None:
            return account_id
        target = conn.execute(
            select(key_aliases.c.target_kind, key_aliases.c.target_id).where(
                key_aliases.c.kind == key.kind, key_aliases.c.external_id == key.value
            )
        ).first()
        if target is None:
            return None
        key = AccountKey(target.target_kind, target.target_id)
    return None


def create_account(conn: Connection, now: datetime) -> int:
    return conn.execute(
        insert(accounts)
        .values(created_at=now, updated_at=now, events_applied=0)
        .returning(accounts.c.id)
    ).scalar_one()


def link(conn: Connection, key: AccountKey, account_id: int, now: datetime) -> bool:
    """Record that `key` names `account_id`; True when the link is new. A key already linked to
    another account keeps its first link (re-pointing needs an admin, not a webhook)."""
    existing = conn.execute(
        select(account_links.c.account_id).where(
            account_links.c.kind == key.kind, account_links.c.external_id == key.value
        )
    ).scalar_one_or_none()
    if existing is not None:
        return False
    conn.execute(
        insert(account_links).values(
            kind=key.kind, external_id=key.value, account_id=account_id, created_at=now
        )
    )
    return True


def add_alias(conn: Connection, alias: Alias, now: datetime) -> bool:
    """Route `alias.key` to `alias.target`; a later alias (a contact moving company) wins."""
    row = conn.execute(
        select(key_aliases.c.target_kind, key_aliases.c.target_id).where(
            key_aliases.c.kind == alias.key.kind, key_aliases.c.external_id == alias.key.value
        )
    ).first()
    if row is not None and (row.target_kind, row.target_id) == (
        alias.target.kind,
        alias.target.value,
    ):
        return False
    if row is not None:
        conn.execute(
            key_aliases.update()
            .where(
                key_aliases.c.kind == alias.key.kind, key_aliases.c.external_id == alias.key.value
            )
            .values(target_kind=alias.target.kind, target_id=alias.target.value, created_at=now)
        )
    else:
        conn.execute(
            insert(key_aliases).values(
                kind=alias.key.kind,
                external_id=alias.key.value,
                target_kind=alias.target.kind,
                target_id=alias.target.value,
                created_at=now,
            )
        )
    return True


def resolve(
    conn: Connection, key: AccountKey, links: tuple[AccountKey, ...], now: datetime
) -> tuple[int | None, list[AccountKey]]:
    """The account for an event and the keys newly linked to it. A CRM account key creates its
    account on first sight; any other key must be linked first (else None: park the event)."""
    candidates = [key, *links]
    account_id = next((found for k in candidates if (found := lookup(conn, k)) is not None), None)
    if account_id is None:
        crm_key = next((k for k in candidates if k.kind in CRM_ACCOUNT_KINDS), None)
        if crm_key is None:
            return None, []
        account_id = create_account(conn, now)
    newly_linked = [
        k for k in candidates if k.kind in ACCOUNT_KINDS and link(conn, k, account_id, now)
    ]
    return account_id, newly_linked


def keys_routed_to(conn: Connection, keys: list[AccountKey]) -> list[AccountKey]:
    """`keys` plus every alias that (transitively) routes to one of them."""
    found = list(dict.fromkeys(keys))
    frontier = list(found)
    for _ in range(MAX_ALIAS_DEPTH):
        next_frontier = []
        for key in frontier:
            rows = conn.execute(
                select(key_aliases.c.kind, key_aliases.c.external_id).where(
                    key_aliases.c.target_kind == key.kind, key_aliases.c.target_id == key.value
                )
            )
            for row in rows:
                alias_key = AccountKey(row.kind, row.external_id)
                if alias_key not in found:
                    found.append(alias_key)
                    next_frontier.append(alias_key)
        if not next_frontier:
            break
        frontier = next_frontier
    return found
