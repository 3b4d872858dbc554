"""How each canonical event type updates the account state tables the scores are computed from,
and the retention pruning of that state. Every rollup gives the same state whatever order the
events arrive in: days are sets, counts follow them, firsts are minimums, and a field keeps the
value of the newest event that set it."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from expansion.db import as_utc, transaction
from expansion.models import (
    account_attributes,
    account_contacts,
    account_crm_history,
    account_features,
    account_integrations,
    account_invoices,
    account_limit_hits,
    account_nps,
    account_series,
    account_subscriptions,
    account_teaser_clicks,
    account_tickets,
    account_users,
    accounts,
)
from expansion.settings import Settings
from integration.canonical import CanonicalEvent
from workers.days import day_number, from_day_number, month_number, pack_bits, unpack_bits

DAY, MONTH = "day", "month"
USER_TRAITS = ("email_domain", "department", "title")
TICKET_FIELDS = ("subject", "text", "priority", "status", "closed", "csat")
CONTACT_FIELDS = ("title", "role", "champion", "exec_sponsor", "left_company")
PRUNE_BATCH = 1000

Rollup = Callable[[Connection, int, CanonicalEvent], bool]


def apply(conn: Connection, account_id: int, event: CanonicalEvent) -> bool:
    """Fold one event into its account's state; True when that state changed."""
    rollup = ROLLUPS.get(event.type)
    return rollup(conn, account_id, event) if rollup else False


# --- Small helpers ----------------------------------------------------------------------------


def _insert(conn: Connection, table: Table):  # type: ignore[no-untyped-def]
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


Key = dict[str, Any]


def _fit(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """Cut text to its column's size: PostgreSQL refuses longer text, and one oversized title
    must not keep an event from being applied."""
    fitted = dict(values)
    for name, value in values.items():
        size = getattr(table.c[name].type, "length", None)
        if isinstance(value, str) and size is not None and len(value) > size:
            fitted[name] = value[:size]
    return fitted


def _where(table: Table, key: Key) -> list[ColumnElement[bool]]:
    return [table.c[name] == value for name, value in _fit(table, key).items()]


def _locked(conn: Connection, table: Table, key: Key):  # type: ignore[no-untyped-def]
    """The row to read, change and write back, locked on PostgreSQL so two workers applying
    events of one account cannot lose each other's update. (state.apply's update of the
    account row already serializes them; this keeps the rollups safe on their own. SQLite
    serializes all writers.)"""
    query = select(table).where(*_where(table, key))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def _claim(conn: Connection, table: Table, key: Key, initial: dict[str, Any]):  # type: ignore[no-untyped-def]
    """The row under `key`, locked; or None when there was none and one was created from
    `initial`. When two workers create the same row at once, the second insert waits for the
    first, does nothing, and the row the first one made is returned instead."""
    row = _locked(conn, table, key)
    if row is not None:
        return row
    created = conn.execute(
        _insert(conn, table)
        .values(**_fit(table, {**key, **initial}))
        .on_conflict_do_nothing()
        .returning(*table.primary_key.columns)
    ).first()
    return None if created is not None else _locked(conn, table, key)


def _update(conn: Connection, table: Table, key: Key, values: dict[str, Any]) -> None:
    conn.execute(update(table).where(*_where(table, key)).values(**_fit(table, values)))


def _day(event: CanonicalEvent) -> int:
    return day_number(event.occurred_at.date())


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "y", "on"}


def _day_of(value: Any) -> int | None:
    """A day number from an ISO date or datetime (as sources send them)."""
    text = _text(value)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return day_number(as_utc(moment).date() if moment.tzinfo else moment.date())


def _newer(field_at: dict[str, float], name: str, at: float) -> bool:
    previous = field_at.get(name)
    return previous is None or at >= previous


def _min(a: int | None, b: int) -> int:
    return b if a is None else min(a, b)


def _max(a: int | None, b: int) -> int:
    return b if a is None else max(a, b)


# --- Packed series ------------------------------------------------------------------------------


def edit_series(
    conn: Connection,
    account_id: int,
    metric: str,
    grain: str,
    index: int,
    change: Callable[[float | None], float],
    fill: float | None,
) -> bool:
    """Set point `index` of a packed series to `change(current)`; new points between the old
    range and `index` get `fill` (0 for counts of events, None for reports that never came)."""
    key = {"account_id": account_id, "metric": metric, "grain": grain}
    row = _claim(conn, account_series, key, {"start": index, "points": [change(None)]})
    if row is None:
        return True
    start, points = row.start, list(row.points)
    if index < start:
        points = [fill] * (start - index) + points
        start = index
    elif index >= start + len(points):
        points.extend([fill] * (index - start - len(points) + 1))
    new = change(points[index - start])
    if new == points[index - start] and start == row.start and len(points) == len(row.points):
        return False
    points[index - start] = new
    _update(conn, account_series, key, {"start": start, "points": points})
    return True


def _add(delta: float) -> Callable[[float | None], float]:
    return lambda current: (current or 0) + delta


def _at_least(value: float) -> Callable[[float | None], float]:
    return lambda current: value if current is None else max(current, value)


# --- Product usage ------------------------------------------------------------------------------


def _set_active_day(origin: int | None, bits: int, day: int) -> tuple[int, int]:
    if origin is None:
        return day, 1
    if day < origin:
        bits, origin = bits << (origin - day), day
    return origin, bits | 1 << (day - origin)


def _trait_changes(row: Any, traits: dict[str, str], at: datetime) -> dict[str, Any]:
    """A newer event sets every trait it carries; an older one only fills traits never set."""
    newer = row.traits_at is None or at >= as_utc(row.traits_at)
    return {
        name: value
        for name, value in traits.items()
        if getattr(row, name) != value and (newer or getattr(row, name) is None)
    }


def _has_day(origin: int | None, bits: int, day: int) -> bool:
    return origin is not None and day >= origin and bool(bits >> (day - origin) & 1)


def _user_active(conn: Connection, account_id: int, event: CanonicalEvent) -> bool:
    user_id = _text(event.data.get("user_id"))
    if user_id is None:
        return False
    day = _day(event)
    traits = {name: v for name in USER_TRAITS if (v := _text(event.data.get(name)))}
    key = {"account_id": account_id, "user_id": user_id}
    initial = {
        "first_seen": day,
        "last_active": day,
        "active_from": day,
        "active_bits": pack_bits(1),
        "traits_at": event.occurred_at if traits else None,
        **traits,
    }
    row = _claim(conn, account_users, key, initial)
    if row is None:
        edit_series(conn, account_id, "dau", DAY, day, _add(1), fill=0)
        return True
    bits = unpack_bits(row.active_bits)
    new_day = not _has_day(row.active_from, bits, day)
    changes = _trait_changes(row, traits, event.occurred_at)
    if row.first_seen is None or day < row.first_seen:
        changes["first_seen"] = day
    if row.last_active is None or day > row.last_active:
        changes["last_active"] = day
    if new_day:
        origin, bits = _set_active_day(row.active_from, bits, day)
        changes.update(active_from=origin, active_bits=pack_bits(bits))
        edit_series(conn, account_id, "dau", DAY, day, _add(1), fill=0)
    # The traits' time advances even when they did not change, so an older event arriving
    # later cannot overwrite them.
    advance = bool(traits) and (row.traits_at is None or event.occurred_at > as_utc(row.traits_at))
    if changes or advance:
        _update(
            conn,
            account_users,
            key,
            {**changes, **({"traits_at": event.occurred_at} if advance else {})},
        )
    return bool(changes)


def _user_invited(conn: Connection, account_id: int, event: CanonicalEvent) -> bool:
    """Counts invitations per day; when the event names the invitee, records when."""
    day = _day(event)
    edit_series(conn, account_id, "invites", DAY, day, _add(1), fill=0)
    invitee = _text(event.data.get("invitee_id"))
    if invitee is None:
        return True
    key = {"account_id": account_id, "user_id": invitee}
    row = _claim(conn, account_users, key, {"invited_on": day})
    if row is not None and (row.invited_on is None or day < row.invited_on):
        _update(conn, account_users, key, {"invited_on": day})
    return True


def _feature_used(conn: Connection, account_id: int, event: CanonicalEvent) -> bool:
    feature = _text(event.data.get("feature"))
    if feature is None:
        return False
    day, user_id = _day(event), _text(event.data.get("user_id"))
    tier, category = _text(event.data.get("tier")), _text(event.data.get("category"))
    key = {"account_id": account_id, "feature": feature}
    initial = {
        "tier": tier,
        "category": category,
        "first_used": day,
        "last_used": day,
        "users": {user_id: [day, day]} if user_id else {},
    }
    row = _claim(conn, account_features, key, initial)
    if row is None:
        return True
    changes: dict[str, Any] = {}
    latest = day >= row.last_used
    for name, value in (("tier", tier), ("category", category)):
        if value is not None and value != getattr(row, name) and (latest or not getattr(row, name)):
            changes[name] = value
    if day < row.first_used:
        changes["first_used"] = day
    if day > row.last_used:
        changes["last_used"] = day
    if user_id:
        first, last = row.users.get(user_id, (day, day))
        span = [min(first, day), max(last, day)]
        if row.users.get(user_id) != span:
            changes["users"] = {**row.users, user_id: span}
    if changes:
        _update(conn, account_features, key, changes)
    return bool(changes)


def _teaser_clicked(conn: Connection, account_id: int, event: CanonicalEvent) -> bool:
    feature = _text(event.data.get("feature"))
    if feature is None:
        return False
    click = {
        "account_id": account_id,
        "day": _day(event),
        "feature": feature,
        "user_id": _text(event.data.get("user_id")) or "",
        "tier": _text(event.data.get("tier")),
    }
    statement = (
        _insert(conn, account_teaser_clicks)
        .values(**_fit(account_teaser_clicks, click))
        .on_conflict_do_nothing()
        .returning(account_teaser_clicks.c.day)
    )
    # rowcount is not reliable here across drivers; a returned row is.
    return conn.execute(statement).first() is not None


def _integration_connected(conn: Connection, account_id: int, event: CanonicalEvent) -> bool:
    name = _text(event.data.get("integration"))
    if name is None:
        return False
    day, category = _day(event), _text(event.data.get("category"))
    key = {"account_id": account_id, "name": name}
    row = _claim(conn, account_integrations, key, {"category": category, "connected_on": day})
    if row is None:
        return True
    changes: dict[str, Any] = {}
    if day < row.connected_on:
        changes["connected_on"] = day
    if category and category != row.category and (day >= row.connected_on or not row.category):
        changes["category"] = category
    if changes:
        _update(conn, account_integrations, key, changes)
    return bool(changes)


def _limit_hit(conn: Connection, account_id: int, event: CanonicalEvent) -> bool:
    name = _text(event.data.get("limit"))
    if name is None:
        return False
    day = _day(event)
    usage, cap = _number(event.data.get("usage")), _number(event.data.get("cap"))
    key = {"account_id": account_id, "limit_name": name, "day": day}
    row = _claim(conn, account_limit_hits, key, {"usage": usage, "cap": cap})
    if row is None:
        return True
    if usage is None or (row.usage is not None and usage <= row.usage):
        return False  # the day keeps its highest usage (and the cap reported with it)
    _update(conn, account_limit_hits, key, {"usage": usage, "cap": cap})
    return True


PERIOD_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def _usage_point(period: Any, occurred: date) -> tuple[str, int]:
    """(grain, index) of a usage report: a YYYY-MM or "month" period is a monthly total, a
    YYYY-MM-DD or "day" period (or none) a daily one; other periods count for their day."""
    text = (_text(period) or "").lower()
    match = PERIOD_MONTH.match(text)
    if match:
        return MONTH, int(match[1]) * 12 + int(match[2]) - 1
    if text in {"month", "monthly"}:
        return MONTH, month_number(occurred)
    named_day = _day_of(text) if len(text) == 10 else None
    return DAY, named_day if named_day is not None else day_number(occurred)


def _usage_reported(conn: Connection, account_id: int, event: CanonicalEvent) -> bool:
    """A report is the period's total so far: several reports of one period keep the largest,
    so a late or repeated report never lowers it."""
    metric, value = _text(event.data.get("metric")), _number(event.data.get("value"))
    if metric is None or value is None:
        return False
    grain, index = _usage_point(event.data.get("period"), event.occurred_at.date())
    return edit_series(
        conn, account_id, f"usage.{metric}", grain, index, _at_least(value), fill=None
    )


def _nps_response(conn: Connection, account_id: int, event: CanonicalEvent) -> bool:
    score = _number(event.data.get("score"))
    if score is None or not 0 <= score <= 10:
        return False
    response = {
        "account_id": account_id,
        "day": _day(event),
        "score": round(score),
        "respondent": _text(event.data.get("user_id")),
        "comment": _text(event.data.get("comment")),
    }
    conn.execute(account_nps.insert().values(**_fit(account_nps, response)))
    return True


# --- Billing ------------------------------------------------------------------------------------


def with_change(history: list[list[Any]], at: float, value: Any) -> list[list[Any]]:
    """Insert (at, value) in time order into a history of [time, value] changes. Of each run of
    one value only its first and last entries are kept: few entries, yet enough to place any
    late change correctly."""
    entries = sorted([*[entry for entry in history if entry[0] != at], [at, value]])
    return [
        entry
        for i, entry in enumerate(entries)
        if not (0 < i < len(entries) - 1 and entries[i - 1][1] == entry[1] == entries[i + 1][1])
    ]


def run_starts(history: list[list[Any]]) -> list[list[Any]]:
    """The entries where the value changed: what the history means."""
    return [entry for i, entry in enumerate(history) if i == 0 or history[i - 1][1] != entry[1]]


def _seats(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


# Subscription column -> (data key, conversion); a key the event does not carry is left as is.
SUBSCRIPTION_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "subscription_id": ("subscription_id", _text),
    "tier": ("tier", _text),
    "seats": ("seats", _seats),
    "arr": ("arr", _number),
    "currency": ("currency", _text),
    "status": ("status", _text),
    "cancel_at_period_end": ("cancel_at_period_end", _flag),
}


def _subscription_changed(conn: Connection, account_id: int, event: CanonicalEvent) -> bool:
    """The newest snapshot wins; every seat count is also kept with its time, so seats per day
    come out right whatever order the changes arrived in."""
    at = event.occurred_at
    snapshot = {
        column: convert(event.data[name])
        for column, (name, convert) in SUBSCRIPTION_FIELDS.items()
        if name in event.data
    }
    if "renewal_at" in event.data:
        snapshot["renewal_on"] = renewal_day(conn, account_id)
    seats = snapshot.get("seats")
    key = {"account_id": account_id}
    history = [[at.timestamp(), seats]] if seats is not None else []
    row = _claim(
        conn, account_subscriptions, key, {"as_of": at, "seat_changes": history, **snapshot}
    )
    if row is None:
        return True
    changes: dict[str, Any] = {}
    if at >= as_utc(row.as_of):
        changes.update({c: v for c, v in snapshot.items() if getattr(row, c) != v})
    history = row.seat_changes
    if seats is not None:
        history = with_change(row.seat_changes, at.timestamp(), seats)
    relevant = bool(changes) or run_starts(history) != run_starts(row.seat_changes)
    if history != row.seat_changes:
        changes["seat_changes"] = history
    if at > as_utc(row.as_of):
        changes["as_of"] = at
    if changes:
        _update(conn, account_subscriptions, key, changes)
    return relevant


# The renewal date: the CRM's contract renewal date (account.changed) when the CRM has one,
# else the billing source's (subscription.changed; set only for annual terms). Both are read
# from the account's attributes, which state.apply keeps at their newest values, so the result
# does not depend on the order the events arrive in.
CRM_RENEWAL = "crm.contract_renewal_on"
BILLING_RENEWAL = "subscription.renewal_at"
# The as_of of a subscription row the CRM's renewal date created: older than any billing event,
# so the first billing snapshot still applies in full.
NO_SNAPSHOT = datetime(1970, 1, 1, tzinfo=UTC)


def renewal_day(conn: Connection, account_id: int) -> int | None:
    values = dict(
        conn.execute(
            select(account_attributes.c.name, account_attributes.c.value).where(
                account_attributes.c.account_id == account_id,
                account_attributes.c.name.in_((CRM_RENEWAL, BILLING_RENEWAL)),
            )
        ).all()
    )
    crm = _day_of(values.get(CRM_RENEWAL))
    return crm if crm is not None else _day_of(values.get(BILLING_RENEWAL))


def _sync_renewal(conn: Connection, account_id: int) -> bool:
    """Set the subscription's renewal_on to renewal_day; True when it changed. A CRM renewal
    date on an account no billing source reports creates its subscription row."""
    day = renewal_day(conn, account_id)
    key = {"account_id": account_id}
    if day is None:
        row = _locked(conn, account_subscriptions, key)
    else:
        initial = {"renewal_on": day, "as_of": NO_SNAPSHOT, "seat_changes": []}
        row = _claim(conn, account_subscriptions, key, initial)
        if row is None:
            return True
    if row is None or row.renewal_on == day:
        return False
    _update(conn, account_subscriptions, key, {"renewal_on": day})
    return True


def _invoice(status: str) -> Rollup:
    def rollup(conn: Connection, account_id: int, event: CanonicalEvent) -> bool:
        invoice_id = _text(event.data.get("invoice_id")) or f"{event.key}@{event.occurred_at}"
        day, amount = _day(event), _number(event.data.get("amount"))
        key = {"account_id": account_id, "invoice_id": invoice_id, "status": status}
        row = _claim(conn, account_invoices, key, {"day": day, "amount": amount})
        if row is None:
            return True
        if day >= row.day:
            return False  # the invoice keeps the first day it was paid (or first failed)
        _update(conn, account_invoices, key, {"day": day, "amount": amount})
        return True

    return rollup


# --- Support and relationship --------------------------------------------------------------------


def _field_updates(
    row: Any, data: dict[str, Any], fields: tuple[str, ...], at: float
) -> tuple[dict[str, Any], dict[str, float]]:
    """Fields the event carries and is the newest for: their new values and set-times."""
    field_at = dict(row.field_at) if row is not None else {}
    values: dict[str, Any] = {}
    for name in fields:
        if name not in data or not _newer(field_at, name, at):
            continue
        field_at[name] = at
        values[name] = data[name]
    return values, field_at


def _ticket_value(name: str, value: Any) -> Any:
    if name == "closed":
        return _flag(value)
    if name == "csat":
        return _number(value)
    return _text(value)


def _ticket_fields(
    row: Any, data: dict[str, Any], at: float
) -> tuple[dict[str, Any], dict[str, float]]:
    fields, field_at = _field_updates(row, data, TICKET_FIELDS, at)
    return {name: _ticket_value(name, value) for name, value in fields.items()}, field_at


def _ticket(conn: Connection, account_id: int, event: CanonicalEvent) -> bool:
    ticket_id = _text(event.data.get("ticket_id")) or event.key.value
    day, at = _day(event), event.occurred_at.timestamp()
    key = {"account_id": account_id, "ticket_id": ticket_id}
    values, field_at = _ticket_fields(None, event.data, at)
    initial = {
        "created_on": day,
        "last_on": day,
        "status_on": day if "status" in values or "closed" in values else None,
        "field_at": field_at,
        **values,
    }
    row = _claim(conn, account_tickets, key, initial)
    if row is None:
        return True
    values, field_at = _ticket_fields(row, event.data, at)
    changes = {name: value for name, value in values.items() if getattr(row, name) != value}
    if "status" in changes or "closed" in changes:
        changes["status_on"] = day
    if day < row.created_on:
        changes["created_on"] = day
    _write_tracked(conn, account_tickets, key, row, changes, field_at, day)
    return bool(changes)


def _write_tracked(
    conn: Connection,
    table: Table,
    key: Key,
    row: Any,
    changes: dict[str, Any],
    field_at: dict[str, float],
    day: int,
) -> None:
    """Write the changes with the fields' set-times; the times advance even when the values
    did not change, so an older event arriving later cannot overwrite them."""
    extra: dict[str, Any] = {}
    if field_at != row.field_at:
        extra["field_at"] = field_at
    if day > row.last_on:
        extra["last_on"] = day
    if changes or extra:
        _update(conn, table, key, {**changes, **extra})


def _contact_fields(
    row: Any, data: dict[str, Any], at: float
) -> tuple[dict[str, Any], dict[str, float]]:
    fields, field_at = _field_updates(row, data, CONTACT_FIELDS, at)
    values = {
        name: _text(value) if name in ("title", "role") else _flag(value)
        for name, value in fields.items()
    }
    return values, field_at


def _contact_changed(conn: Connection, account_id: int, event: CanonicalEvent) -> bool:
    data = event.data
    contact_id = _text(data.get("contact_id")) or event.key.value
    day, at = _day(event), event.occurred_at.timestamp()
    key = {"account_id": account_id, "contact_id": contact_id}
    title = _text(data.get("title"))
    engaged = _day_of(data.get("last_engaged_at") or data.get("last_engaged_on"))
    values, field_at = _contact_fields(None, data, at)
    initial = {
        "title_history": [[at, title]] if title else [],
        "last_engaged_on": engaged,
        "last_on": day,
        "field_at": field_at,
        **values,
    }
    row = _claim(conn, account_contacts, key, initial)
    if row is None:
        return True
    values, field_at = _contact_fields(row, data, at)
    history = with_change(row.title_history, at, title) if title else row.title_history
    changes = {name: value for name, value in values.items() if getattr(row, name) != value}
    if engaged is not None and (row.last_engaged_on is None or engaged > row.last_engaged_on):
        changes["last_engaged_on"] = engaged
    relevant = bool(changes) or run_starts(history) != run_starts(row.title_history)
    if history != row.title_history:
        changes["title_history"] = history
    _write_tracked(conn, account_contacts, key, row, changes, field_at, day)
    return relevant


def _account_changed(conn: Connection, account_id: int, event: CanonicalEvent) -> bool:
    """Keeps the last value of each CRM field per day (current values are attributes); True
    when a value differs from the one in force before it."""
    changed = False
    for name, value in event.data.items():
        changed = _crm_history_point(conn, account_id, name, value, event) or changed
    if CRM_RENEWAL.removeprefix("crm.") in event.data:
        changed = _sync_renewal(conn, account_id) or changed
    return changed


def _crm_history_point(
    conn: Connection, account_id: int, name: str, value: Any, event: CanonicalEvent
) -> bool:
    day, history = _day(event), account_crm_history.c
    key = {"account_id": account_id, "name": name, "day": day}
    point = {"value": value, "as_of": event.occurred_at}
    row = _claim(conn, account_crm_history, key, point)
    if row is not None:
        if as_utc(row.as_of) >= event.occurred_at:
            return False
        _update(conn, account_crm_history, key, point)
        return row.value != value
    before = conn.execute(
        select(history.value)
        .where(history.account_id == account_id, history.name == name, history.day < day)
        .order_by(history.day.desc())
        .limit(1)
    ).first()
    return before is None or before.value != value


ROLLUPS: dict[str, Rollup] = {
    "user.active": _user_active,
    "user.invited": _user_invited,
    "feature.used": _feature_used,
    "teaser.clicked": _teaser_clicked,
    "integration.connected": _integration_connected,
    "limit.hit": _limit_hit,
    "usage.reported": _usage_reported,
    "nps.response": _nps_response,
    "subscription.changed": _subscription_changed,
    "invoice.paid": _invoice("paid"),
    "invoice.payment_failed": _invoice("failed"),
    "ticket.created": _ticket,
    "ticket.changed": _ticket,
    "contact.changed": _contact_changed,
    "account.changed": _account_changed,
}


# --- Retention ----------------------------------------------------------------------------------


def prune(settings: Settings, today: date) -> dict[str, int]:
    """Drop state older than STATE_RETENTION_DAYS, a batch of accounts per transaction so
    ingest is never blocked for long. Returns rows deleted or trimmed per table."""
    if settings.state_retention_days < 1:
        raise ValueError(
            f"STATE_RETENTION_DAYS must be at least 1, got {settings.state_retention_days}"
        )
    cutoff = day_number(today) - settings.state_retention_days + 1  # the first day kept
    with transaction(settings) as conn:
        low, high = conn.execute(select(func.min(accounts.c.id), func.max(accounts.c.id))).one()
    counts: dict[str, int] = {}
    if low is None:
        return counts
    for first in range(low, high + 1, PRUNE_BATCH):
        with transaction(settings) as conn:
            batch = prune_accounts(conn, cutoff, first, first + PRUNE_BATCH)
        for table, count in batch.items():
            counts[table] = counts.get(table, 0) + count
    return counts


def prune_accounts(conn: Connection, cutoff: int, first_id: int, end_id: int) -> dict[str, int]:
    """Prune the accounts with first_id <= id < end_id; `cutoff` is the first day kept."""
    counts = {
        table.name: conn.execute(
            delete(table).where(table.c.account_id >= first_id, table.c.account_id < end_id, old)
        ).rowcount
        for table, old in _expired(cutoff).items()
    }
    counts[account_crm_history.name] = _prune_crm_history(conn, cutoff, first_id, end_id)
    for table, trim in TRIMS.items():
        counts[table.name] = counts.get(table.name, 0) + trim(conn, cutoff, first_id, end_id)
    return {table: count for table, count in counts.items() if count}


def _expired(cutoff: int) -> dict[Table, ColumnElement[bool]]:
    """Rows whose whole content is older than the cutoff."""
    return {
        account_teaser_clicks: account_teaser_clicks.c.day < cutoff,
        account_limit_hits: account_limit_hits.c.day < cutoff,
        account_nps: account_nps.c.day < cutoff,
        account_invoices: account_invoices.c.day < cutoff,
        account_tickets: account_tickets.c.last_on < cutoff,
        account_features: account_features.c.last_used < cutoff,
        account_users: func.coalesce(account_users.c.last_active, account_users.c.invited_on)
        < cutoff,
    }


def _prune_crm_history(conn: Connection, cutoff: int, first_id: int, end_id: int) -> int:
    """Drop values older than the cutoff except the last one before it (the trend's baseline)."""
    later = account_crm_history.alias("later")
    superseded = exists().where(
        later.c.account_id == account_crm_history.c.account_id,
        later.c.name == account_crm_history.c.name,
        later.c.day > account_crm_history.c.day,
        later.c.day <= cutoff,
    )
    return conn.execute(
        delete(account_crm_history).where(
            account_crm_history.c.account_id >= first_id,
            account_crm_history.c.account_id < end_id,
            account_crm_history.c.day < cutoff,
            superseded,
        )
    ).rowcount


def _rows(conn: Connection, table: Table, first_id: int, end_id: int, *where: Any) -> list[Any]:
    return conn.execute(
        select(table).where(table.c.account_id >= first_id, table.c.account_id < end_id, *where)
    ).all()


def _trim_series(conn: Connection, cutoff: int, first_id: int, end_id: int) -> int:
    month_cutoff = month_number(from_day_number(cutoff))
    old = or_(
        and_(account_series.c.grain == DAY, account_series.c.start < cutoff),
        and_(account_series.c.grain == MONTH, account_series.c.start < month_cutoff),
    )
    trimmed = 0
    for row in _rows(conn, account_series, first_id, end_id, old):
        first = cutoff if row.grain == DAY else month_cutoff
        key = (
            account_series.c.account_id == row.account_id,
            account_series.c.metric == row.metric,
            account_series.c.grain == row.grain,
        )
        kept = row.points[first - row.start :]
        if any(point is not None for point in kept):
            conn.execute(update(account_series).where(*key).values(start=first, points=kept))
        else:
            conn.execute(delete(account_series).where(*key))
        trimmed += 1
    return trimmed


def _trim_user_days(conn: Connection, cutoff: int, first_id: int, end_id: int) -> int:
    rows = _rows(conn, account_users, first_id, end_id, account_users.c.active_from < cutoff)
    for row in rows:
        bits = unpack_bits(row.active_bits) >> (cutoff - row.active_from)
        conn.execute(
            update(account_users)
            .where(
                account_users.c.account_id == row.account_id,
                account_users.c.user_id == row.user_id,
            )
            .values(active_from=cutoff if bits else None, active_bits=pack_bits(bits) or None)
        )
    return len(rows)


def _trim_feature_users(conn: Connection, cutoff: int, first_id: int, end_id: int) -> int:
    trimmed = 0
    for row in _rows(conn, account_features, first_id, end_id):
        users = {user: span for user, span in row.users.items() if span[1] >= cutoff}
        if users != row.users:
            conn.execute(
                update(account_features)
                .where(
                    account_features.c.account_id == row.account_id,
                    account_features.c.feature == row.feature,
                )
                .values(users=users)
            )
            trimmed += 1
    return trimmed


def _since_cutoff(entries: list[list[Any]], cutoff_at: float) -> list[list[Any]]:
    """Entries from the cutoff on, plus the last one before it (the state at the cutoff)."""
    before = [entry for entry in entries if entry[0] < cutoff_at]
    return before[-1:] + [entry for entry in entries if entry[0] >= cutoff_at]


def _cutoff_at(cutoff: int) -> float:
    return datetime.combine(from_day_number(cutoff), time(), UTC).timestamp()


def _trim_title_history(conn: Connection, cutoff: int, first_id: int, end_id: int) -> int:
    trimmed = 0
    for row in _rows(conn, account_contacts, first_id, end_id):
        history = _since_cutoff(row.title_history, _cutoff_at(cutoff))
        if history != row.title_history:
            conn.execute(
                update(account_contacts)
                .where(
                    account_contacts.c.account_id == row.account_id,
                    account_contacts.c.contact_id == row.contact_id,
                )
                .values(title_history=history)
            )
            trimmed += 1
    return trimmed


def _trim_seat_changes(conn: Connection, cutoff: int, first_id: int, end_id: int) -> int:
    trimmed = 0
    for row in _rows(conn, account_subscriptions, first_id, end_id):
        history = _since_cutoff(row.seat_changes, _cutoff_at(cutoff))
        if history != row.seat_changes:
            conn.execute(
                update(account_subscriptions)
                .where(account_subscriptions.c.account_id == row.account_id)
                .values(seat_changes=history)
            )
            trimmed += 1
    return trimmed


TRIMS: dict[Table, Callable[[Connection, int, int, int], int]] = {
    account_series: _trim_series,
    account_users: _trim_user_days,
    account_features: _trim_feature_users,
    account_contacts: _trim_title_history,
    account_subscriptions: _trim_seat_changes,
}
