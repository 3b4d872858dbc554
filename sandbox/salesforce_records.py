"""Salesforce record semantics: field checks with the real per-record error codes, type
conversion, the JSON a record reads back as, and planned writes (so allOrNone can roll back)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from integration.salesforce_ids import id18, is_id
from sandbox.context import Context
from sandbox.responses import sf_record_error
from sandbox.schema import SfField, SfObject
from sandbox.store import Row, utcnow

TEXT_TYPES = {"string", "textarea", "url", "email", "picklist", "phone"}
NUMBER_TYPES = {"double", "currency", "percent"}
SYSTEM_FIELDS = ("CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById")


def sf_datetime(moment: datetime) -> str:
    """2026-05-14T06:00:01.000+0000, as the REST API prints dateTime fields."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


class FieldError(ValueError):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.error = error


def _type_error(name: str, value: object) -> FieldError:
    return FieldError(
        sf_record_error(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{name}: value not of required type: {value}",
            [name],
        )
    )


def convert(obj: str, spec: SfField, value: object, ctx: Context) -> Any:
    """The stored form of `value` for field `spec`, or FieldError with the real code."""
    if value is None or value == "":
        return None
    name = spec.name
    if spec.type in TEXT_TYPES or spec.type in ("id", "reference"):
        if not isinstance(value, str):
            raise _type_error(name, value)
        if spec.type == "reference":
            return _reference(spec, value, ctx)
        if spec.length and len(value) > spec.length:
            raise FieldError(
                sf_record_error(
                    "STRING_TOO_LONG",
                    f"{spec.name.removesuffix('__c')}: data value too large: "
                    f"{value[:40]} (max length={spec.length})",
                    [name],
                )
            )
        return value
    return _scalar(spec, value)


def _scalar(spec: SfField, value: object) -> Any:
    name = spec.name
    try:
        if spec.type in NUMBER_TYPES:
            if isinstance(value, bool):
                raise ValueError
            return float(value)  # type: ignore[arg-type]
        if spec.type == "int":
            if isinstance(value, bool) or not float(value).is_integer():  # type: ignore[arg-type]
                raise ValueError
            return int(float(value))  # type: ignore[arg-type]
        if spec.type == "boolean":
            if not isinstance(value, bool):
                raise ValueError
            return value
        if spec.type == "date":
            return date.fromisoformat(str(value)).isoformat()
        if spec.type == "datetime":
            moment = datetime.fromisoformat(str(value).replace("+0000", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return sf_datetime(moment)
    except (TypeError, ValueError):
        raise _type_error(name, value) from None
    raise _type_error(name, value)


def _reference(spec: SfField, value: str, ctx: Context) -> str:
    if is_id(value):
        full = id18(value)
        for target in spec.reference_to:
            if full in ctx.store.table("salesforce", target).rows:
                return full
    raise FieldError(
        sf_record_error(
            "INVALID_CROSS_REFERENCE_KEY",
            f"invalid cross reference id: {value}"
            if is_id(value)
            else f"id value of incorrect type: {value}",
            [spec.name],
        )
    )


@dataclass
class Planned:
    sobject: str
    row_id: str | None
    changes: dict[str, Any]


def plan(
    ctx: Context, obj: SfObject, data: dict[str, Any], row: Row | None
) -> Planned | list[dict[str, Any]]:
    """Check a create (row None) or update of `obj`; the planned write or the record's errors."""
    creating = row is None
    changes: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for name, value in data.items():
        if name in ("attributes", "Id", "id"):
            continue
        spec = obj.fields.get(name)
        if spec is None:
            errors.append(
                sf_record_error(
                    "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}"
                )
            )
            continue
        if not (spec.createable if creating else spec.updateable):
            errors.append(
                sf_record_error(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {name}. Please check the security "
                    "settings of this field and verify that it is read/write for your profile "
                    "or permission set.",
                    [name],
                )
            )
            continue
        try:
            changes[name] = convert(obj.name, spec, value, ctx)
        except FieldError as exc:
            errors.append(exc.error)
    if errors:
        return errors
    if creating:
        for spec in obj.fields.values():
            if spec.default is not None and changes.get(spec.name) is None:
                changes[spec.name] = spec.default
        missing = [
            s.name for s in obj.fields.values() if s.required and changes.get(s.name) is None
        ]
        if missing:
            return [
                sf_record_error(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]",
                    missing,
                )
            ]
    duplicate = _duplicate(ctx, obj, changes, row)
    if duplicate:
        return [duplicate]
    if row is not None and ctx.gate.lock_error():
        return [
            sf_record_error(
                "UNABLE_TO_LOCK_ROW",
                f"unable to obtain exclusive access to this record or 1 records: {row.id}",
            )
        ]
    _derive(ctx, obj, changes, row)
    return Planned(obj.name, row.id if row else None, changes)


def _duplicate(
    ctx: Context, obj: SfObject, changes: dict[str, Any], row: Row | None
) -> dict[str, Any] | None:
    table = ctx.store.table("salesforce", obj.name)
    for name, value in changes.items():
        if not obj.fields[name].external_id or value is None:
            continue
        holder = table.owner_of(name, value)
        if holder and (row is None or holder != row.id):
            return sf_record_error(
                "DUPLICATE_VALUE",
                f"duplicate value found: {name} duplicates value on record with id: {holder}",
            )
    return None


def _derive(ctx: Context, obj: SfObject, changes: dict[str, Any], row: Row | None) -> None:
    """Fields Salesforce computes: a Task's AccountId from WhatId, IsClosed from Status."""
    if obj.name != "Task":
        return
    what = changes.get("WhatId", row.values.get("WhatId") if row else None)
    if "WhatId" in changes:
        if what and what in ctx.store.table("salesforce", "Account").rows:
            changes["AccountId"] = what
        elif what:
            opportunity = ctx.store.table("salesforce", "Opportunity").rows[what]
            changes["AccountId"] = opportunity.values.get("AccountId")
        else:
            changes["AccountId"] = None
    if "Status" in changes:
        closed = changes["Status"] == "Completed"
        was_closed = bool(row and row.values.get("IsClosed"))
        changes["IsClosed"] = closed
        if closed and not was_closed:
            changes["CompletedDateTime"] = sf_datetime(utcnow())


def commit(ctx: Context, planned: Planned, actor: str) -> tuple[Row, bool]:
    obj = ctx.sf_objects[planned.sobject]
    changes = dict(planned.changes)
    if planned.row_id is None and "OwnerId" in obj.fields and not changes.get("OwnerId"):
        changes["OwnerId"] = actor
    return ctx.store.write(
        "salesforce",
        planned.sobject,
        planned.row_id,
        changes,
        actor,
        lambda: ctx.store.ids.salesforce(obj.key_prefix),
    )


def record_json(
    ctx: Context, obj: SfObject, row: Row, fields: list[str] | None = None
) -> dict[str, Any]:
    version = ctx.config.salesforce_api_version
    out: dict[str, Any] = {
        "attributes": {
            "type": obj.name,
            "url": f"/services/data/v{version}/sobjects/{obj.name}/{row.id}",
        }
    }
    for name in fields or list(obj.fields):
        out[name] = field_value(obj, row, name)
    return out


def field_value(obj: SfObject, row: Row, name: str) -> Any:
    system = {
        "Id": row.id,
        "IsDeleted": False,
        "CreatedDate": sf_datetime(row.created_at),
        "CreatedById": row.created_by,
        "LastModifiedDate": sf_datetime(row.updated_at),
        "LastModifiedById": row.modified_by,
        "SystemModstamp": sf_datetime(row.updated_at),
    }
    if name in system:
        return system[name]
    if obj.name == "User" and name == "Name":
        parts = (row.values.get("FirstName"), row.values.get("LastName"))
        return " ".join(p for p in parts if p)
    value = row.values.get(name)
    if value is None and obj.fields[name].type == "boolean":
        return False
    return value
