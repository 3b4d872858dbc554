"""Checks HubSpot request and response bodies against the OpenAPI specs (../shared/specs/hubspot):
the subset of JSON Schema those files use ($ref, type, required, properties,
additionalProperties, items, enum, date-time). Like HubSpot itself, a null optional value passes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox.schema import HS_OBJECTS

TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]  # the whole file: $refs resolve inside it
    operation: dict[str, Any]


def validate(
    schema: dict[str, Any], value: Any, spec: dict[str, Any], where: str = "$"
) -> list[str]:
    """Every way `value` breaks `schema`, each naming its JSON path."""
    if "$ref" in schema:
        return validate(_resolve(spec, schema["$ref"]), value, spec, where)
    kind = schema.get("type")
    if kind in TYPES and (
        not isinstance(value, TYPES[kind]) or (kind != "boolean" and isinstance(value, bool))
    ):
        return [f"{where}: expected {kind}, got {type(value).__name__} {json.dumps(value)[:60]}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} is not one of {schema['enum']}"]
    if schema.get("format") == "date-time" and isinstance(value, str):
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return [f"{where}: {value!r} is not an ISO 8601 date-time"]
    if kind == "array":
        items = schema.get("items", {})
        return [
            e for i, item in enumerate(value) for e in validate(items, item, spec, f"{where}[{i}]")
        ]
    if kind == "object" or "properties" in schema:
        return _object(schema, value, spec, where)
    return []


def _object(
    schema: dict[str, Any], value: dict[str, Any], spec: dict[str, Any], where: str
) -> list[str]:
    errors = [
        f"{where}: required key {k!r} is missing"
        for k in schema.get("required", [])
        if k not in value
    ]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            if item is not None or key in schema.get("required", []):
                errors += validate(properties[key], item, spec, f"{where}.{key}")
        elif isinstance(extra, dict):
            if item is not None:
                errors += validate(extra, item, spec, f"{where}.{key}")
        elif extra is False:
            errors.append(f"{where}: unexpected key {key!r}")
    return errors


def _resolve(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node  # type: ignore[no-any-return]


def _json_schema(holder: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
    if "$ref" in holder:
        holder = _resolve(spec, holder["$ref"])
    for media, content in (holder.get("content") or {}).items():
        if "json" in media or media == "*/*":
            return content.get("schema")  # type: ignore[no-any-return]
    return None


class SpecCheck:
    def __init__(self, operations: list[Operation]) -> None:
        self.operations = operations
        self.checked: set[str] = set()  # "METHOD template" of every operation seen

    @classmethod
    def load(cls, directory: Path) -> SpecCheck:
        operations = []
        for path in sorted(directory.glob("*.json")):
            spec = json.loads(path.read_text(encoding="utf-8"))
            for template, methods in spec.get("paths", {}).items():
                regex = re.sub(r"\{[^}]+\}", "[^/]+", template)
                for method, operation in methods.items():
                    operations.append(
                        Operation(
                            method.upper(), template, re.compile(f"^{regex}/?$"), spec, operation
                        )
                    )
        # Literal paths first: /batch/read must not match /{objectId}.
        operations.sort(key=lambda op: op.template.count("{"))
        return cls(operations)

    def find(self, method: str, path: str) -> Operation | None:
        candidates = [path, *_aliases(path)]
        for candidate in candidates:
            for op in self.operations:
                if op.method == method and op.pattern.match(candidate):
                    return op
        return None

    def check(
        self, method: str, path: str, request_body: Any, status: int, response_body: Any
    ) -> list[str]:
        if not path.startswith("/crm/"):
            return []
        op = self.find(method, path)
        if op is None:
            return [f"{method} {path}: no such operation in the HubSpot specs"]
        self.checked.add(f"{method} {op.template}")
        errors = []
        request_spec = op.operation.get("requestBody")
        schema = _json_schema(request_spec, op.spec) if request_spec else None
        if schema is not None and request_body is not None:
            errors += [f"request {e}" for e in validate(schema, request_body, op.spec)]
        if status == 429:
            # HubSpot's rate-limit body (errorType, policyName) is not the specs' Error.
            return errors
        responses = op.operation.get("responses", {})
        response_spec = responses.get(str(status)) or responses.get("default")
        schema = _json_schema(response_spec, op.spec) if response_spec else None
        if schema is not None and response_body is not None:
            errors += [f"response {status} {e}" for e in validate(schema, response_body, op.spec)]
        return errors


def _aliases(path: str) -> list[str]:
    """The same path with the object named the other way (deals vs 0-3 in the specs)."""
    out = []
    for obj in HS_OBJECTS.values():
        for a, b in ((obj.name, obj.type_id), (obj.type_id, obj.name)):
            marker = f"/objects/{a}"
            if marker in path:
                out.append(path.replace(marker, f"/objects/{b}", 1))
    return out
