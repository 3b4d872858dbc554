"""HubSpot record semantics: property validation with the real error codes, value normalization
(datetimes, dates, owners, options), and the JSON of a record (SimplePublicObject)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from sandbox.context import Context
from sandbox.responses import ApiError, hs_error
from sandbox.schema import HS_OPTIONS, HsProperty
from sandbox.store import Row, iso_ms

SYSTEM_PROPERTIES = ("hs_object_id", "createdate", "hs_lastmodifieddate")


class PropertyError(ValueError):
    def __init__(self, name: str, code: str, message: str) -> None:
        super().__init__(message)
        self.name, self.code = name, code

    def as_json(self) -> dict[str, Any]:
        return {
            "isValid": False,
            "message": str(self),
            "error": self.code,
            "name": self.name,
            "localizedErrorMessage": str(self),
        }


def _moment(text: str) -> datetime:
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def normalize(context: Context, obj: str, prop: HsProperty, raw: object) -> str:
    if raw is None or raw == "":
        return ""
    scalar = isinstance(raw, str | int | float | bool)
    if not scalar or (isinstance(raw, bool) and prop.kind != "bool"):
        raise PropertyError(prop.name, "INVALID_VALUE", f"{raw!r} is not a valid property value")
    text = str(raw).lower() if isinstance(raw, bool) else str(raw)
    name = prop.name
    try:
        if prop.type == "number":
            float(text)
        elif prop.type == "bool" and text not in ("true", "false"):
            raise ValueError
        elif prop.type == "datetime":
            return iso_ms(_moment(text))
        elif prop.type == "date":
            moment = _moment(text) if text.isdigit() else None
            if moment and (moment.hour, moment.minute, moment.second) != (0, 0, 0):
                raise PropertyError(
                    name, "INVALID_DATE", f"{text} is not a valid date, it is not at midnight UTC"
                )
            return (moment.date() if moment else date.fromisoformat(text)).isoformat()
    except (ValueError, OverflowError):
        raise PropertyError(
            name, f"INVALID_{prop.type.upper()}", f"{text} was not a valid {prop.type}."
        ) from None
    if name == "hubspot_owner_id" and text not in {o["id"] for o in context.store.owners}:
        raise PropertyError(name, "INVALID_OWNER_ID", f"{text} is not a valid owner id")
    options = HS_OPTIONS.get((obj, name))
    if options and text not in options:
        raise PropertyError(
            name, "INVALID_OPTION", f"{text} was not one of the allowed options: {list(options)}"
        )
    return text


def check_properties(
    context: Context, obj: str, properties: object
) -> tuple[dict[str, str], list[PropertyError]]:
    if not isinstance(properties, dict):
        return {}, [PropertyError("properties", "INVALID_VALUE", "properties must be an object")]
    known = context.hs_properties[obj]
    values, errors = {}, []
    for name, raw in properties.items():
        prop = known.get(name)
        if prop is None:
            errors.append(
                PropertyError(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
            )
            continue
        if prop.read_only:
            errors.append(
                PropertyError(name, "READ_ONLY_VALUE", f'Property "{name}" is a read only property')
            )
            continue
        try:
            values[name] = normalize(context, obj, prop, raw)
        except PropertyError as exc:
            errors.append(exc)
    return values, errors


def validation_message(errors: list[PropertyError]) -> str:
    return "Property values were not valid: " + json.dumps([e.as_json() for e in errors])


def validation_error(errors: list[PropertyError]) -> ApiError:
    return hs_error(
        400,
        "VALIDATION_ERROR",
        validation_message(errors),
        errors=[
            {"message": str(e), "code": e.code, "context": {"propertyName": [e.name]}}
            for e in errors
        ],
    )


def object_json(
    context: Context, obj: str, row: Row, requested: list[str] | None = None
) -> dict[str, Any]:
    from sandbox.schema import HS_OBJECTS

    system = {
        "hs_object_id": row.id,
        "createdate": iso_ms(row.created_at),
        "hs_lastmodifieddate": iso_ms(row.updated_at),
    }
    if requested is None:
        names = [*HS_OBJECTS[obj].defaults, *(k for k in row.values if k not in system)]
    else:
        names = [n for n in requested if n in context.hs_properties[obj]]
    properties: dict[str, Any] = {n: row.values.get(n) or None for n in names}
    properties.update(system)
    return {
        "id": row.id,
        "properties": properties,
        "createdAt": iso_ms(row.created_at),
        "updatedAt": iso_ms(row.updated_at),
        "archived": False,
    }
