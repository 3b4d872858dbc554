"""Builds AccountState from the state tables (read by workers/state_reads.py): for one account,
or for many with the same fixed number of queries per batch (the daily rescore and the benchmark
load the whole book this way). Stored values are interpreted here through mappings/state.yaml
and mappings/plans.yaml."""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection

from expansion.mappings import StrictModel, cached_model
from expansion.settings import Settings
from workers.account_state import (
    AccountState,
    Contact,
    DailySeries,
    FeatureUse,
    Integration,
    Invoice,
    LimitHit,
    NpsResponse,
    Subscription,
    TeaserClick,
    Ticket,
    User,
)
from workers.days import (
    DaySet,
    LastDays,
    day_number,
    from_day_number,
    month_label,
    unpack_bits,
)
from workers.plans import Plans, plans
from workers.state_reads import crm_value, loads, read_batch

BATCH_SIZE = 500
SECONDS_PER_DAY = 86_400

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class TicketRules(StrictModel):
    priorities: dict[Literal["p1", "p2", "p3", "p4"], list[str]] = {}
    closed_statuses: list[str] = []
    pending_statuses: list[str] = []


class ContactRules(StrictModel):
    champion_roles: list[str] = []
    exec_sponsor_roles: list[str] = []


class UserRules(StrictModel):
    advanced_features: list[str] = []


class CrmRules(StrictModel):
    history_fields: list[str] = []


class StateRules(StrictModel):
    tickets: TicketRules = TicketRules()
    contacts: ContactRules = ContactRules()
    users: UserRules = UserRules()
    crm: CrmRules = CrmRules()


def state_rules(settings: Settings) -> StateRules:
    return cached_model(settings.mappings_dir / "state.yaml", StateRules)


@dataclass(frozen=True)
class LoadConfig:
    """What the loader needs besides the tables; `history_days` bounds the daily series."""

    plans: Plans
    rules: StateRules
    history_days: int = 400

    @classmethod
    def from_settings(cls, settings: Settings) -> LoadConfig:
        return cls(plans(settings), state_rules(settings), settings.state_retention_days)


def load_state(
    conn: Connection, account_id: int, today: date, config: LoadConfig | None = None
) -> AccountState:
    states = load_states(conn, [account_id], today, config)
    if not states:
        raise LookupError(f"there is no account {account_id}")
    return states[0]


def load_states(
    conn: Connection,
    account_ids: Iterable[int],
    today: date,
    config: LoadConfig | None = None,
) -> list[AccountState]:
    """The states of the accounts that exist, in the order asked; without `config`, the rules
    are read from the settings in the environment."""
    return [state for _, state in load_versioned_states(conn, account_ids, today, config)]


def load_versioned_states(
    conn: Connection,
    account_ids: Iterable[int],
    today: date,
    config: LoadConfig | None = None,
) -> list[tuple[int, AccountState]]:
    """(state version, state) of each account that exists, in the order asked. A batch's
    versions are read before its states: a change committed in between shows up as a newer
    version (and a re-run of the recompute), never as a stale state labelled with a newer
    version. On PostgreSQL a batch is one round trip."""
    config = config or LoadConfig.from_settings(Settings.from_env())
    ids = list(dict.fromkeys(account_ids))
    loaded: list[tuple[int, AccountState]] = []
    with cyclic_gc_paused():
        for first in range(0, len(ids), BATCH_SIZE):
            loaded.extend(_load_batch(conn, ids[first : first + BATCH_SIZE], today, config))
    return loaded


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """A state is a tree of fresh objects without cycles; letting the cyclic collector scan
    the growing heap while they are built doubles the time a whole book takes to load.
    Nests: only the outermost pause turns the collector back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load_batch(
    conn: Connection, ids: Sequence[int], today: date, config: LoadConfig
) -> list[tuple[int, AccountState]]:
    batch = read_batch(conn, ids, config.rules.crm.history_fields)
    found = {account_id: (version, name) for account_id, version, name in batch.accounts}
    builder = _Builder(today, config)
    loaded = []
    for account_id in ids:
        if account_id not in found:
            continue
        version, name = found[account_id]
        rows = {part: grouped.get(account_id, ()) for part, grouped in batch.parts.items()}
        loaded.append((version, builder.state(account_id, name, rows)))
    return loaded


class _Memo(dict[K, T]):
    """`function`'s result for each key, computed on its first lookup: a subscript costs less
    than a call of a functools.cache wrapper, and the builder looks up millions."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[[K], T]) -> None:
        super().__init__()
        self.function = function

    def __missing__(self, key: K) -> T:
        value = self[key] = self.function(key)
        return value


def _day(number: int | None) -> date | None:
    return None if number is None else from_day_number(number)


# The date of a day number (None for None); made once per day number in the process.
_DATES = _Memo(_day)

_new = object.__new__


def _frozen(cls: type[T], fields: dict[str, Any]) -> T:
    """An instance of the frozen dataclass `cls` (one without __post_init__) from all of its
    fields in declaration order, equal to `cls(**fields)` in every respect, made without its
    __init__: that sets each field through object.__setattr__, a quarter of the builder's time
    for the users, features, tickets and contacts of a book."""
    made = _new(cls)
    made.__dict__.update(fields)
    return made


def _tier_limits(plans: Plans, tier_name: str | None) -> tuple[dict[str, float], dict[str, str]]:
    """The caps and periods of a tier's limits (none for a tier the catalog lacks)."""
    tier = plans.tier(tier_name)
    limits = tier.limits if tier is not None else {}
    return (
        {metric: limit.cap for metric, limit in limits.items()},
        {metric: limit.period for metric, limit in limits.items()},
    )


def _words(values: Iterable[str]) -> frozenset[str]:
    return frozenset(value.strip().lower() for value in values)


def _has_role(roles: frozenset[str], role: str | None) -> bool:
    """Whether one of the `;`-separated parts of `role` is one of `roles`."""
    return bool(role) and any(part.strip().lower() in roles for part in role.split(";"))


Rows = list[Any]


class _Builder:
    """Turns one account's rows into its AccountState."""

    def __init__(self, today: date, config: LoadConfig) -> None:
        self.today = today
        self.today_number = day_number(today)
        self.first_day = self.today_number - config.history_days + 1
        self.tier_of = config.plans.tier_of_feature
        self.tier_limits = _Memo(partial(_tier_limits, config.plans))
        rules = config.rules
        self.priorities = {
            word: level
            for level, words in rules.tickets.priorities.items()
            for word in _words(words)
        }
        self.closed = _words(rules.tickets.closed_statuses)
        self.pending = _words(rules.tickets.pending_statuses)
        # Whether a contact's role names a champion or an executive sponsor, by role.
        self.champion_role = _Memo(partial(_has_role, _words(rules.contacts.champion_roles)))
        self.exec_role = _Memo(partial(_has_role, _words(rules.contacts.exec_sponsor_roles)))
        self.advanced = frozenset(rules.users.advanced_features)

    def state(self, account_id: int, name: str | None, rows: dict[str, Rows]) -> AccountState:
        """`rows`: each part's rows (see workers/state_reads.py), each leading with the account
        id."""
        daily, monthly = self._series(rows["series"])
        usage = {m.removeprefix("usage."): s for m, s in daily.items() if m.startswith("usage.")}
        subscription = rows["subscription"][0] if rows["subscription"] else None
        features = rows["features"]
        spans = [LastDays.of_stored(row[-1], loads) for row in features]
        tier_of, dates = self.tier_of, _DATES
        return AccountState(
            account_id=account_id,
            today=self.today,
            name=name,
            subscription=self._subscription(subscription),
            daily_active_users=daily.get("dau"),
            licensed_seats=self._seats(loads(subscription[-1])) if subscription else None,
            api_calls=usage.get("api_calls"),
            usage=usage,
            usage_by_month=monthly,
            invites=daily.get("invites"),
            users=self._users(rows["users"], self._advanced_since(features, spans)),
            features=self._features(features, spans),
            integrations=tuple(
                Integration(integration, category, dates[day])
                for _, integration, category, day in rows["integrations"]
            ),
            teaser_clicks=tuple(
                TeaserClick(feature, tier or tier_of(feature), dates[day], user or None)
                for _, feature, tier, day, user in rows["teaser_clicks"]
            ),
            limit_hits=tuple(
                LimitHit(limit, dates[day], used, cap)
                for _, limit, day, used, cap in rows["limit_hits"]
            ),
            tickets=self._tickets(rows["tickets"]),
            contacts=self._contacts(rows["contacts"]),
            nps=tuple(
                NpsResponse(score, dates[day], respondent)
                for _, score, day, respondent in rows["nps"]
            ),
            invoices=tuple(
                Invoice(invoice_id, dates[day], status, amount or 0.0)
                for _, invoice_id, day, status, amount in rows["invoices"]
            ),
            crm=_crm(rows["crm"]),
            crm_history=_crm_history(rows["crm_history"]),
        )

    # --- Series ---------------------------------------------------------------------------------

    def _series(self, rows: Rows) -> tuple[dict[str, DailySeries], dict[str, dict[str, float]]]:
        daily: dict[str, DailySeries] = {}
        monthly: dict[str, dict[str, float]] = {}
        for _, metric, grain, start, stored in rows:
            points = loads(stored)
            if grain == "month":
                monthly[metric.removeprefix("usage.")] = {
                    month_label(start + i): value
                    for i, value in enumerate(points)
                    if value is not None
                }
                continue
            # Counts of events (active users, invites) are 0 on days without events, up to
            # today; a reported metric is unknown on days no report came for.
            series = self._daily(start, points, extend=not metric.startswith("usage."))
            if series is not None:
                daily[metric] = series
        return daily, monthly

    def _daily(self, start: int, points: list[Any], extend: bool) -> DailySeries | None:
        if start < self.first_day:
            points, start = points[self.first_day - start :], self.first_day
        if extend:
            end = start + len(points) - 1
            points = points + [0] * (self.today_number - end)
        if not points:
            return None
        return DailySeries(_DATES[start], tuple(points))

    def _seats(self, seat_changes: list[list[float]]) -> DailySeries | None:
        """Licensed seats each day from the recorded seat changes, carried to today."""
        if not seat_changes:
            return None
        changes = [(int(at // SECONDS_PER_DAY), seats) for at, seats in seat_changes]
        start = max(changes[0][0], self.first_day)
        if start > self.today_number:
            return None
        current = None  # the seats in force on `day`
        values: list[Any] = []
        day = start
        for changed_on, seats in changes:
            if changed_on > self.today_number:
                break
            if changed_on > day:
                values += [current] * (changed_on - day)
                day = changed_on
            current = seats
        values += [current] * (self.today_number + 1 - day)
        return DailySeries(_DATES[start], tuple(values))

    def _subscription(self, row: tuple[Any, ...] | None) -> Subscription | None:
        if row is None:
            return None
        _, tier_name, seats, arr, renewal_on, status, cancel_at_period_end, _changes = row
        caps, periods = self.tier_limits[tier_name]
        return Subscription(
            tier=tier_name,
            seats=seats,
            arr=arr,
            renewal_on=_DATES[renewal_on],
            status=status,
            limits=dict(caps),  # each state its own dicts, as if made for it
            limit_periods=dict(periods),
            cancel_at_period_end=bool(cancel_at_period_end),
        )

    # --- Users and features ---------------------------------------------------------------------

    def _advanced_since(self, features: Rows, spans: list[LastDays]) -> dict[str, int]:
        """User -> the first day they used an advanced feature."""
        advanced: dict[str, int] = {}
        for row, users in zip(features, spans, strict=True):
            if row[1] in self.advanced:  # (account_id, feature, ...)
                for user_id, (first, _last) in users.spans().items():
                    if first < advanced.get(user_id, first + 1):
                        advanced[user_id] = first
        return advanced

    def _users(self, rows: Rows, advanced: dict[str, int]) -> tuple[User, ...]:
        """Users as _frozen makes them, with their fields stored straight into the instance's
        dict (no dict to copy from): the users are most of a book's rows."""
        dates = _DATES
        users = []
        for (
            _,
            user_id,
            first_seen,
            last_active,
            active_from,
            bits,
            domain,
            department,
            title,
            invited_on,
        ) in rows:
            if first_seen is None:  # invited, never active yet
                continue
            user = _new(User)
            fields = user.__dict__
            fields["user_id"] = user_id
            fields["first_seen"] = dates[first_seen]
            fields["last_active"] = dates[last_active]
            fields["active_days"] = DaySet(active_from or 0, unpack_bits(bits))
            fields["email_domain"] = domain
            fields["department"] = department
            fields["title"] = title
            fields["invited_on"] = dates[invited_on]
            fields["advanced_since"] = dates[advanced.get(user_id)]
            users.append(user)
        return tuple(users)

    def _features(self, rows: Rows, spans: list[LastDays]) -> tuple[FeatureUse, ...]:
        dates, tier_of = _DATES, self.tier_of
        return tuple(
            _frozen(
                FeatureUse,
                {
                    "feature": feature,
                    "tier": tier or tier_of(feature),
                    "category": category,
                    "first_used": dates[first_used],
                    "last_used": dates[last_used],
                    "users_last_used": users,
                },
            )
            for (_, feature, tier, category, first_used, last_used, _stored), users in zip(
                rows, spans, strict=True
            )
        )

    # --- Tickets and contacts -------------------------------------------------------------------

    def _ticket_status(self, status: str | None, closed: bool | None) -> str:
        status = (status or "").strip().lower()
        if closed or status in self.closed:
            return "closed"
        return "pending" if status in self.pending else "open"

    def _tickets(self, rows: Rows) -> tuple[Ticket, ...]:
        dates, tickets = _DATES, []
        for (
            _,
            ticket_id,
            created_on,
            subject,
            text,
            priority,
            status,
            closed,
            status_on,
            csat,
        ) in rows:
            normalized = self._ticket_status(status, closed)
            fields = {
                "ticket_id": ticket_id,
                "created_on": dates[created_on],
                "subject": subject or "",
                "text": text or "",
                "priority": self.priorities.get((priority or "").strip().lower()),
                "status": normalized,
                "csat": csat,
                "closed_on": dates[status_on] if normalized == "closed" else None,
            }
            tickets.append(_frozen(Ticket, fields))
        return tuple(tickets)

    def _contacts(self, rows: Rows) -> tuple[Contact, ...]:
        contacts = []
        for (
            _,
            contact_id,
            title,
            title_history,
            role,
            champion,
            exec_sponsor,
            left_company,
            last_engaged_on,
        ) in rows:
            fields = {
                "contact_id": contact_id,
                "title": title,
                "title_history": _title_runs(loads(title_history)),
                "champion": bool(champion) or self.champion_role[role],
                "left_company": bool(left_company),
                "exec_sponsor": bool(exec_sponsor) or self.exec_role[role],
                "last_engaged_on": _DATES[last_engaged_on],
            }
            contacts.append(_frozen(Contact, fields))
        return tuple(contacts)


def _utc_day(at: float) -> date:
    """The UTC day of a timestamp. Whole seconds (what the rollups store) are counted into
    days without a datetime; fromtimestamp rounds a fraction to microseconds, which can carry
    a moment just before midnight into the next day."""
    if type(at) is int or (type(at) is float and at.is_integer()):
        return _DATES[int(at) // SECONDS_PER_DAY]
    return datetime.fromtimestamp(at, UTC).date()


def _title_runs(history: list[list[Any]]) -> tuple[tuple[date, str], ...]:
    """(day, title) for each change of title, oldest first."""
    runs: list[tuple[date, str]] = []
    for at, title in history:
        if not runs or runs[-1][1] != title:
            runs.append((_utc_day(at), title))
    return tuple(runs)


def _crm(rows: Rows) -> dict[str, Any]:
    """Mapped CRM fields without their `crm.` prefix; a `<name>_at` timestamp is also given as
    the day `<name>_on` (e.g. last_meaningful_interaction_on)."""
    fields: dict[str, Any] = {}
    for _, attribute, stored in rows:
        name = attribute.removeprefix("crm.")
        fields[name] = value = crm_value(stored)
        if name.endswith("_at") and (day := _iso_day(value)) is not None:
            fields.setdefault(name.removesuffix("_at") + "_on", day)
    return fields


def _iso_day(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC).date() if moment.tzinfo else moment.date()


def _crm_history(rows: Rows) -> dict[str, tuple[tuple[date, Any], ...]]:
    history: dict[str, list[tuple[date, Any]]] = defaultdict(list)
    for _, name, day, value in rows:
        history[name].append((_DATES[day], crm_value(value)))
    return {name: tuple(values) for name, values in history.items()}
