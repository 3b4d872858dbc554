"""From claimed outbox intents to CRM writes: each intent's target record, the worker outputs
mapped to the declared CRM fields only, and the delta against the last confirmed snapshot."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from expansion.crm_tables import crm_records, crm_snapshots
from expansion.models import account_links
from integration.writers.mapping import Crm, Outbound, crm_value
from workers.outbox import Intent

ObjectName = Literal["account", "task"]


@dataclass(frozen=True)
class Write:
    """One CRM record to write: `fields` are CRM field -> CRM value, only the changed ones."""

    object: ObjectName
    key: str  # account: the CRM record id; task: our external key
    fields: dict[str, Any]
    intent_ids: tuple[int, ...]
    create: bool = False  # a task to create
    parent_id: str | None = None  # a task's account / company id in the CRM


@dataclass(frozen=True)
class Rejected:
    intent_id: int
    reason: str
    permanent: bool


@dataclass
class Plan:
    crm: Crm
    accounts: list[Write] = field(default_factory=list)
    creates: list[Write] = field(default_factory=list)
    updates: list[Write] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)  # nothing to send: confirmed as is
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def writes(self) -> list[Write]:
        return [*self.accounts, *self.creates, *self.updates]


def targets(conn: Connection, intents: Sequence[Intent]) -> dict[int, tuple[str, str] | None]:
    """intent id -> (crm, CRM record id of its account): the hint stored at enqueue time, else
    the account's link now (it may have been linked since); None when it has no CRM record."""
    unlinked = {i.account_id for i in intents if i.crm is None and i.account_id is not None}
    links: dict[int, tuple[str, str]] = {}
    if unlinked:
        rows = conn.execute(
            select(account_links.c.account_id, account_links.c.kind, account_links.c.external_id)
            .where(
                account_links.c.account_id.in_(unlinked),
                account_links.c.kind.in_(("salesforce", "hubspot")),
            )
            .order_by(account_links.c.kind.desc())  # salesforce before hubspot
        )
        for account_id, kind, external_id in rows:
            links.setdefault(account_id, (kind, external_id))
    found: dict[int, tuple[str, str] | None] = {}
    for intent in intents:
        if intent.crm is not None and intent.crm_id is not None:
            found[intent.id] = (intent.crm, intent.crm_id)
        else:
            found[intent.id] = links.get(intent.account_id) if intent.account_id else None
    return found


def plan(
    conn: Connection,
    crm: Crm,
    mapping: Outbound,
    intents: Sequence[tuple[Intent, str]],
    now: datetime,
) -> Plan:
    """The writes for `intents` (each with its account's CRM record id), delta only."""
    result = Plan(crm)
    by_account: dict[str, list[Intent]] = {}
    tasks: list[tuple[Intent, str]] = []
    for intent, record_id in intents:
        if intent.kind == "set_fields":
            by_account.setdefault(record_id, []).append(intent)
        else:
            tasks.append((intent, record_id))
    _plan_accounts(conn, result, mapping, by_account, now)
    _plan_tasks(conn, result, mapping, tasks)
    return result


def _plan_accounts(
    conn: Connection,
    result: Plan,
    mapping: Outbound,
    by_account: Mapping[str, list[Intent]],
    now: datetime,
) -> None:
    snapshot = load_snapshot(conn, result.crm, "account", by_account)
    specs = mapping.account.fields
    for record_id, group in by_account.items():
        merged: dict[str, Any] = {}
        for intent in sorted(group, key=lambda i: i.id):
            merged.update(intent.payload.get("fields", {}))
        wanted = {
            specs[output].field: crm_value(result.crm, specs[output], value)
            for output, value in merged.items()
            if output in specs and output != "updated_at"
        }
        changed = _delta(wanted, snapshot.get(record_id, {}))
        ids = tuple(i.id for i in group)
        if not changed:
            result.unchanged.extend(ids)
            continue
        if "updated_at" in specs:
            stamp = specs["updated_at"]
            changed[stamp.field] = crm_value(result.crm, stamp, now)
        result.accounts.append(Write("account", record_id, changed, ids))


def _plan_tasks(
    conn: Connection, result: Plan, mapping: Outbound, tasks: Sequence[tuple[Intent, str]]
) -> None:
    keys = [intent.external_key for intent, _ in tasks]
    snapshot = load_snapshot(conn, result.crm, "task", keys)
    created = {
        key
        for key, (_, state) in load_records(conn, result.crm, keys).items()
        if state == "created"
    }
    creating = {i.external_key for i, _ in tasks if i.kind == "create_task"}
    for intent, record_id in tasks:
        try:
            fields = task_fields(
                result.crm, mapping, intent.payload, create=intent.kind == "create_task"
            )
        except ValueError as exc:
            result.rejected.append(Rejected(intent.id, str(exc), permanent=True))
            continue
        key = intent.external_key
        if intent.kind == "create_task":
            if key in created:  # created by an earlier run; its snapshot is what the CRM holds
                result.unchanged.append(intent.id)
                continue
            result.creates.append(Write("task", key, fields, (intent.id,), True, record_id))
            continue
        if key not in created and key not in creating and key not in snapshot:
            reason = f"task {key} is not created in {result.crm} yet; its update waits for it"
            result.rejected.append(Rejected(intent.id, reason, permanent=False))
            continue
        changed = _delta(fields, snapshot.get(key, {}))
        if changed:
            result.updates.append(Write("task", key, changed, (intent.id,), False, record_id))
        else:
            result.unchanged.append(intent.id)


def task_fields(
    crm: Crm, mapping: Outbound, payload: Mapping[str, Any], create: bool
) -> dict[str, Any]:
    """The mapped CRM fields of a create_task (every task field) or update_task payload (the
    ones it carries). ValueError names a status or priority the mapping has no value for."""
    task = mapping.task
    values: dict[str, Any] = {}
    if create:
        values = {
            "subject": payload.get("subject"),
            "body": payload.get("body"),
            "due_date": payload.get("due_date"),
            "owner": _owner(mapping, payload),
            "status": _choice(task.status_values, "open", "status_values"),
            "priority": _choice(task.priority_values, payload.get("priority"), "priority_values")
            if task.priority_values
            else payload.get("priority"),
        }
    elif "status" in payload:
        values["status"] = _choice(task.status_values, payload["status"], "status_values")
    return {
        task.fields[name].field: crm_value(crm, task.fields[name], value)  # type: ignore[index]
        for name, value in values.items()
        if name in task.fields and not (name == "owner" and value is None)
    }


def _owner(mapping: Outbound, payload: Mapping[str, Any]) -> str | None:
    owner = payload.get("owner")
    if owner and payload.get("owner_is_queue"):
        return mapping.owners.queue_users.get(owner)
    return owner or None


def _choice(values: Mapping[str, str], wanted: Any, where: str) -> str | None:
    if wanted is None:
        return None
    if wanted not in values:
        raise ValueError(f"{where} in the mapping has no value for {wanted!r}")
    return values[wanted]


def _delta(wanted: Mapping[str, Any], confirmed: Mapping[str, Any]) -> dict[str, Any]:
    missing = object()
    return {name: value for name, value in wanted.items() if confirmed.get(name, missing) != value}


# --- the snapshot and the created records ------------------------------------------------------


def load_snapshot(
    conn: Connection, crm: str, obj: ObjectName, keys: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """record key -> {CRM field: the last value the CRM confirmed}."""
    wanted = list(dict.fromkeys(keys))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            select(crm_snapshots.c.record_key, crm_snapshots.c.field, crm_snapshots.c.value).where(
                crm_snapshots.c.crm == crm,
                crm_snapshots.c.object == obj,
                crm_snapshots.c.record_key.in_(wanted[start : start + 500]),
            )
        )
        for key, name, value in rows:
            found.setdefault(key, {})[name] = value
    return found


def confirm_fields(
    conn: Connection, crm: str, obj: ObjectName, key: str, fields: Mapping[str, Any], now: datetime
) -> None:
    """The CRM confirmed `fields` of the record: they become its snapshot."""
    if not fields:
        return
    rows = [
        {
            "crm": crm,
            "object": obj,
            "record_key": key,
            "field": name,
            "value": value,
            "written_at": now,
        }
        for name, value in fields.items()
    ]
    statement = _insert(conn, crm_snapshots).values(rows)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["crm", "object", "record_key", "field"],
            set_={"value": statement.excluded.value, "written_at": statement.excluded.written_at},
        )
    )


def load_records(
    conn: Connection, crm: str, keys: Iterable[str], obj: ObjectName = "task"
) -> dict[str, tuple[str | None, str]]:
    """record key -> (CRM id, state) of the records the writer created or is creating."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    rows = conn.execute(
        select(crm_records.c.record_key, crm_records.c.crm_id, crm_records.c.state).where(
            tuple_(crm_records.c.crm, crm_records.c.object) == (crm, obj),
            crm_records.c.record_key.in_(wanted),
        )
    )
    return {key: (crm_id, state) for key, crm_id, state in rows}


def record_state(
    conn: Connection,
    crm: str,
    keys: Iterable[str],
    state: Literal["sending", "created"],
    now: datetime,
    crm_ids: Mapping[str, str] | None = None,
    obj: ObjectName = "task",
) -> None:
    """`sending` is committed before a create is sent (after a crash the key is looked up
    before creating again); `created` with the CRM's id once the CRM confirmed it."""
    rows = [
        {
            "crm": crm,
            "object": obj,
            "record_key": key,
            "crm_id": (crm_ids or {}).get(key),
            "state": state,
            "updated_at": now,
        }
        for key in keys
    ]
    if not rows:
        return
    statement = _insert(conn, crm_records).values(rows)
    update = {"state": statement.excluded.state, "updated_at": statement.excluded.updated_at}
    if crm_ids:
        update["crm_id"] = statement.excluded.crm_id
    conn.execute(
        statement.on_conflict_do_update(index_elements=["crm", "object", "record_key"], set_=update)
    )


def _insert(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)
