"""The sandbox's in-memory state behind one lock: records per object with unique-value indexes,
owners, the request log, and the change feed the webhook sender turns into deliveries."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from integration.salesforce_ids import id18


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_ms(moment: datetime) -> str:
    """2026-05-14T06:00:01.123Z, as both CRMs print instants."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Row:
    id: str
    values: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    created_by: str
    modified_by: str


class Table:
    """The records of one object type, with an index per unique field (external ids)."""

    def __init__(self, unique: Iterable[str] = ()) -> None:
        self.rows: dict[str, Row] = {}
        self.index: dict[str, dict[str, str]] = {name: {} for name in unique}

    def add_unique(self, name: str) -> None:
        if name in self.index:
            return
        self.index[name] = {
            str(row.values[name]): row.id
            for row in self.rows.values()
            if row.values.get(name) not in (None, "")
        }

    def clear(self) -> None:
        self.rows.clear()
        for index in self.index.values():
            index.clear()

    def find(self, name: str, value: object) -> Row | None:
        key = self.index.get(name, {}).get(str(value))
        return self.rows.get(key) if key else None

    def owner_of(self, name: str, value: object) -> str | None:
        """The id of the record holding `value` in unique field `name`, if any."""
        return self.index.get(name, {}).get(str(value))

    def put(self, row: Row, changes: dict[str, Any]) -> None:
        for name, index in self.index.items():
            if name not in changes:
                continue
            old = row.values.get(name)
            if old not in (None, "") and index.get(str(old)) == row.id:
                del index[str(old)]
            if changes[name] not in (None, ""):
                index[str(changes[name])] = row.id
        row.values.update(changes)
        self.rows[row.id] = row

    def delete(self, row_id: str) -> Row | None:
        row = self.rows.pop(row_id, None)
        if row is not None:
            for name, index in self.index.items():
                value = row.values.get(name)
                if value not in (None, "") and index.get(str(value)) == row_id:
                    del index[str(value)]
        return row


@dataclass(frozen=True)
class Change:
    """One record created or changed: what the webhooks report."""

    crm: str
    object: str
    id: str
    changed: dict[str, Any]
    values: dict[str, Any]
    created: bool
    actor: str  # the user (Salesforce id, or HubSpot "app" / owner's userId) who changed it
    at: datetime
    created_at: datetime
    created_by: str


@dataclass
class RequestRecord:
    seq: int
    at: str
    crm: str
    method: str
    path: str
    query: str
    request_bytes: int
    status: int
    response_bytes: int = 0
    records: int = 0
    spec_errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Ids:
    """Record ids in each CRM's style: Salesforce 18-character ids with the object's key prefix,
    HubSpot numeric ids per object."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def salesforce(self, key_prefix: str) -> str:
        return id18(f"{key_prefix}5s{next(self._counter):010d}")

    def hubspot(self, base: int) -> str:
        return str(base + next(self._counter))


class Store:
    """All state; handlers take `store.lock` around every read-modify-write."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.ids = Ids()
        self.salesforce: dict[str, Table] = {}
        self.hubspot: dict[str, Table] = {}
        # (from type, from id, to type, to id) -> [(category, typeId)]
        self.associations: dict[tuple[str, str, str, str], list[tuple[str, int]]] = {}
        self.owners: list[dict[str, Any]] = []
        self.requests: list[RequestRecord] = []
        self.cursors: dict[str, list[dict[str, Any]]] = {}  # SOQL query locators
        self.bulk_jobs: dict[str, Any] = {}  # Bulk API 2.0 ingest jobs by id
        self._seq = itertools.count(1)
        self.listeners: list[Callable[[Change], None]] = []

    def table(self, crm: str, name: str) -> Table:
        tables = self.salesforce if crm == "salesforce" else self.hubspot
        return tables.setdefault(name, Table())

    def clear_requests(self) -> None:
        """Empty the log; numbering starts again at 1."""
        with self.lock:
            self.requests.clear()
            self._seq = itertools.count(1)

    def record_request(self, **fields: Any) -> RequestRecord:
        with self.lock:
            record = RequestRecord(seq=next(self._seq), at=iso_ms(utcnow()), **fields)
            self.requests.append(record)
            return record

    def write(
        self,
        crm: str,
        name: str,
        row_id: str | None,
        changes: dict[str, Any],
        actor: str,
        id_factory: Callable[[], str],
        notify: bool = True,
    ) -> tuple[Row, bool]:
        """Create (row_id None, or an id not yet used) or update a record; tell the listeners
        what changed (seeding does not)."""
        table = self.table(crm, name)
        now = utcnow()
        row = table.rows.get(row_id) if row_id else None
        created = row is None
        if row is None:
            row = Row(row_id or id_factory(), {}, now, now, actor, actor)
            changed = {k: v for k, v in changes.items() if v not in (None, "")}
        else:
            changed = {k: v for k, v in changes.items() if row.values.get(k) != v}
            if changed:
                row.updated_at, row.modified_by = now, actor
        table.put(row, changes)
        if notify and (created or changed):
            self.notify(
                Change(
                    crm,
                    name,
                    row.id,
                    changed,
                    dict(row.values),
                    created,
                    actor,
                    now,
                    row.created_at,
                    row.created_by,
                )
            )
        return row, created

    def notify(self, change: Change) -> None:
        for listener in self.listeners:
            listener(change)
