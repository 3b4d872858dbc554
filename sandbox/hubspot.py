"""The HubSpot CRM v3 subset: objects (companies, contacts, deals, tickets, tasks) basic and
batch read/create/update/upsert of 100 with 207 partial errors, search, properties, owners and
the OAuth token refresh."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, request

from sandbox.api import instrument
from sandbox.context import Context, ctx
from sandbox.hubspot_associations import create_inline
from sandbox.hubspot_records import (
    PropertyError,
    check_properties,
    object_json,
    validation_error,
    validation_message,
)
from sandbox.responses import (
    ApiError,
    hs_batch_response,
    hs_error,
    hs_standard_error,
    json_response,
)
from sandbox.schema import HS_OBJECTS, hubspot_object
from sandbox.store import Row, iso_ms, utcnow

BATCH_LIMIT = 100
OBJECTS = "/crm/v3/objects/<object_type>"

bp = Blueprint("hubspot", __name__)
instrument(bp, "hubspot", exempt={"hubspot.oauth_token"})


def object_name(object_type: str) -> str:
    obj = hubspot_object(object_type)
    if obj is None:
        raise hs_error(400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}")
    return obj.name


def body_json() -> Any:
    data = request.get_json(silent=True)
    if not isinstance(data, dict | list):
        raise hs_error(400, "VALIDATION_ERROR", "Invalid input JSON: the body is not JSON.")
    return data


def actor() -> str:
    return "app"


def not_found(obj: str, ids: list[str]) -> ApiError:
    return hs_error(
        404,
        "OBJECT_NOT_FOUND",
        "Object not found.  objectId are usually numeric.",
        context={"id": ids},
    )


def write(context: Context, obj: str, row_id: str | None, values: dict[str, str]) -> Row:
    row, _ = context.store.write(
        "hubspot",
        obj,
        row_id,
        values,
        actor(),
        lambda: context.store.ids.hubspot(HS_OBJECTS[obj].id_base),
    )
    if obj == "tasks" and values.get("hs_task_status") == "COMPLETED":
        row.values.setdefault("hs_task_completion_date", iso_ms(utcnow()))
    return row


def _requested(raw: str | list[str] | None) -> list[str] | None:
    if raw is None:
        return None
    names = raw.split(",") if isinstance(raw, str) else raw
    return [n.strip() for n in names if n.strip()]


def _unique_conflict(
    context: Context, obj: str, values: dict[str, str], row_id: str | None
) -> str | None:
    table = context.store.table("hubspot", obj)
    for name, value in values.items():
        holder = table.owner_of(name, value) if value else None
        if holder and holder != row_id:
            return (
                f'A {HS_OBJECTS[obj].singular} with {name} "{value}" already exists. '
                f"Existing ID: {holder}"
            )
    return None


# --- Basic ------------------------------------------------------------------------------------


@bp.get(OBJECTS)
def list_objects(object_type: str) -> Response:
    obj, context = object_name(object_type), ctx()
    limit = min(int(request.args.get("limit", 10)), 100)
    after = int(request.args.get("after", 0) or 0)
    with context.store.lock:
        rows = list(context.store.table("hubspot", obj).rows.values())
        page = rows[after : after + limit]
        body: dict[str, Any] = {
            "results": [
                object_json(context, obj, r, _requested(request.args.get("properties")))
                for r in page
            ]
        }
    if after + limit < len(rows):
        body["paging"] = {"next": {"after": str(after + limit), "link": ""}}
    return json_response(body)


def _find(context: Context, obj: str, object_id: str, id_property: str | None) -> Row:
    table = context.store.table("hubspot", obj)
    row = table.find(id_property, object_id) if id_property else table.rows.get(object_id)
    if row is None:
        raise not_found(obj, [object_id])
    return row


@bp.get(f"{OBJECTS}/<object_id>")
def read_object(object_type: str, object_id: str) -> Response:
    obj, context = object_name(object_type), ctx()
    with context.store.lock:
        row = _find(context, obj, object_id, request.args.get("idProperty"))
        return json_response(
            object_json(context, obj, row, _requested(request.args.get("properties")))
        )


@bp.post(OBJECTS)
def create_object(object_type: str) -> Response:
    obj, context = object_name(object_type), ctx()
    data = body_json()
    with context.store.lock:
        values, errors = check_properties(context, obj, data.get("properties", {}))
        if errors:
            raise validation_error(errors)
        conflict = _unique_conflict(context, obj, values, None)
        if conflict:
            raise hs_error(409, "CONFLICT", conflict)
        association_errors = create_inline(context, obj, None, data.get("associations") or [])
        if association_errors:
            raise hs_error(400, "VALIDATION_ERROR", association_errors[0])
        row = write(context, obj, None, values)
        create_inline(context, obj, row.id, data.get("associations") or [])
        g.records = 1
        return json_response(object_json(context, obj, row), 201)


@bp.patch(f"{OBJECTS}/<object_id>")
def update_object(object_type: str, object_id: str) -> Response:
    obj, context = object_name(object_type), ctx()
    data = body_json()
    with context.store.lock:
        row = _find(context, obj, object_id, request.args.get("idProperty"))
        values, errors = check_properties(context, obj, data.get("properties", {}))
        if errors:
            raise validation_error(errors)
        conflict = _unique_conflict(context, obj, values, row.id)
        if conflict:
            raise hs_error(409, "CONFLICT", conflict)
        write(context, obj, row.id, values)
        g.records = 1
        return json_response(object_json(context, obj, row))


@bp.delete(f"{OBJECTS}/<object_id>")
def archive_object(object_type: str, object_id: str) -> Response:
    obj, context = object_name(object_type), ctx()
    with context.store.lock:
        context.store.table("hubspot", obj).delete(object_id)
    return Response(status=204)


# --- Batch ------------------------------------------------------------------------------------


def batch_inputs() -> list[dict[str, Any]]:
    data = body_json()
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise hs_error(400, "VALIDATION_ERROR", "Invalid input JSON: inputs must be an array.")
    if len(inputs) > BATCH_LIMIT:
        raise hs_error(
            400,
            "VALIDATION_ERROR",
            f"Batch input limit exceeded: {len(inputs)} inputs were sent; "
            f"at most {BATCH_LIMIT} are allowed.",
        )
    g.records = len(inputs)
    return inputs


def batch_response(
    results: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    ok_status: int,
    started: str,
) -> Response:
    if errors and not results:
        first = errors[0]
        status = 404 if first["category"] == "OBJECT_NOT_FOUND" else 400
        extra = {k: first[k] for k in ("context", "errors") if first.get(k)}
        raise hs_error(status, first["category"], first["message"], **extra)
    return hs_batch_response(results, errors, started, ok_status)


def _checked_input(
    context: Context, obj: str, item: dict[str, Any], row_id: str | None
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """One batch input's values, or the error entry it gets (validation, unique conflict)."""
    values, problems = check_properties(context, obj, item.get("properties", {}))
    if problems:
        return values, _input_error(problems, item.get("objectWriteTraceId"))
    conflict = _unique_conflict(context, obj, values, row_id)
    return values, hs_standard_error("CONFLICT", conflict, {}) if conflict else None


def _missing(obj: str, verb: str, ids: list[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    message = (
        f"Could not {verb} some {HS_OBJECTS[obj].singular.upper()} objects, they may be deleted "
        "or not exist. Check that ids are valid."
    )
    return [hs_standard_error("OBJECT_NOT_FOUND", message, {"ids": ids})]


def _input_error(errors: list[PropertyError], trace: str | None) -> dict[str, Any]:
    error = hs_standard_error(
        "VALIDATION_ERROR", validation_message(errors), {"propertyName": [e.name for e in errors]}
    )
    if trace:
        error["context"]["objectWriteTraceId"] = [trace]
    return error


@bp.post(f"{OBJECTS}/batch/read")
def batch_read(object_type: str) -> Response:
    obj, context, started = object_name(object_type), ctx(), iso_ms(utcnow())
    inputs = batch_inputs()
    data = body_json()
    id_property = data.get("idProperty")
    requested = _requested(data.get("properties"))
    table = context.store.table("hubspot", obj)
    with context.store.lock:
        results, missing = [], []
        for item in inputs:
            key = str(item.get("id", ""))
            row = table.find(id_property, key) if id_property else table.rows.get(key)
            if row is None:
                missing.append(key)
            else:
                results.append(object_json(context, obj, row, requested))
    return batch_response(results, _missing(obj, "get", missing), 200, started)


@bp.post(f"{OBJECTS}/batch/create")
def batch_create(object_type: str) -> Response:
    obj, context, started = object_name(object_type), ctx(), iso_ms(utcnow())
    inputs = batch_inputs()
    with context.store.lock:
        results, errors = [], []
        for item in inputs:
            values, error = _checked_input(context, obj, item, None)
            associations = item.get("associations") or []
            bad_links = create_inline(context, obj, None, associations)
            if error or bad_links:
                errors.append(error or hs_standard_error("VALIDATION_ERROR", bad_links[0], {}))
            else:
                row = write(context, obj, None, values)
                create_inline(context, obj, row.id, associations)
                results.append(object_json(context, obj, row))
    return batch_response(results, errors, 201, started)


@bp.post(f"{OBJECTS}/batch/update")
def batch_update(object_type: str) -> Response:
    obj, context, started = object_name(object_type), ctx(), iso_ms(utcnow())
    inputs = batch_inputs()
    table = context.store.table("hubspot", obj)
    with context.store.lock:
        results, errors, missing = [], [], []
        for item in inputs:
            key = str(item.get("id", ""))
            id_property = item.get("idProperty")
            row = table.find(id_property, key) if id_property else table.rows.get(key)
            if row is None:
                missing.append(key)
                continue
            values, error = _checked_input(context, obj, item, row.id)
            if error:
                errors.append(error)
            else:
                results.append(object_json(context, obj, write(context, obj, row.id, values)))
        errors += _missing(obj, "update", missing)
    return batch_response(results, errors, 200, started)


@bp.post(f"{OBJECTS}/batch/upsert")
def batch_upsert(object_type: str) -> Response:
    obj, context, started = object_name(object_type), ctx(), iso_ms(utcnow())
    inputs = batch_inputs()
    table = context.store.table("hubspot", obj)
    with context.store.lock:
        results, errors = [], []
        for item in inputs:
            key, id_property = str(item.get("id", "")), item.get("idProperty")
            if id_property:
                prop = context.hs_properties[obj].get(id_property)
                if prop is None or not prop.unique:
                    raise hs_error(
                        400,
                        "VALIDATION_ERROR",
                        f"idProperty {id_property} is not a unique value property of {obj}; "
                        "upsert needs a property with hasUniqueValue",
                    )
            row = table.find(id_property, key) if id_property else table.rows.get(key)
            if row is None and not id_property:
                errors.append(
                    hs_standard_error(
                        "OBJECT_NOT_FOUND",
                        f"No {HS_OBJECTS[obj].singular} with id {key}",
                        {"ids": [key]},
                    )
                )
                continue
            properties = dict(item.get("properties") or {})
            if id_property:
                properties[id_property] = key
            values, problems = check_properties(context, obj, properties)
            if problems:
                errors.append(_input_error(problems, item.get("objectWriteTraceId")))
                continue
            result = object_json(context, obj, write(context, obj, row.id if row else None, values))
            results.append({**result, "new": row is None})
    return batch_response(results, errors, 200, started)


@bp.post(f"{OBJECTS}/batch/archive")
def batch_archive(object_type: str) -> Response:
    obj, context = object_name(object_type), ctx()
    inputs = batch_inputs()
    with context.store.lock:
        for item in inputs:
            context.store.table("hubspot", obj).delete(str(item.get("id", "")))
    return Response(status=204)


# --- Search -----------------------------------------------------------------------------------


def _filter_matches(row: Row, flt: dict[str, Any]) -> bool:
    value = (
        row.id
        if flt.get("propertyName") == "hs_object_id"
        else row.values.get(flt.get("propertyName", ""), "")
    )
    op = flt.get("operator", "EQ")
    if op == "HAS_PROPERTY":
        return bool(value)
    if op == "NOT_HAS_PROPERTY":
        return not value
    if op in ("IN", "NOT_IN"):
        hit = value in [str(v) for v in flt.get("values", [])]
        return hit if op == "IN" else not hit
    if op in ("EQ", "NEQ"):
        hit = value == str(flt.get("value", ""))
        return hit if op == "EQ" else not hit
    raise hs_error(400, "VALIDATION_ERROR", f"operator {op} is not supported by this sandbox")


@bp.post(f"{OBJECTS}/search")
def search(object_type: str) -> Response:
    obj, context = object_name(object_type), ctx()
    data = body_json()
    groups = data.get("filterGroups") or []
    limit, after = min(int(data.get("limit", 10)), 200), int(data.get("after", 0) or 0)
    with context.store.lock:
        rows = [
            r
            for r in context.store.table("hubspot", obj).rows.values()
            if not groups
            or any(all(_filter_matches(r, f) for f in grp.get("filters", [])) for grp in groups)
        ]
        page = [
            object_json(context, obj, r, _requested(data.get("properties")))
            for r in rows[after : after + limit]
        ]
    body: dict[str, Any] = {"total": len(rows), "results": page}
    if after + limit < len(rows):
        body["paging"] = {"next": {"after": str(after + limit)}}
    return json_response(body)


# --- Properties, owners, OAuth ----------------------------------------------------------------


@bp.get("/crm/v3/properties/<object_type>")
def properties(object_type: str) -> Response:
    obj, context = object_name(object_type), ctx()
    now = iso_ms(utcnow())
    return json_response(
        {"results": [p.as_json(obj, now) for p in context.hs_properties[obj].values()]}
    )


@bp.get("/crm/v3/properties/<object_type>/<name>")
def property_detail(object_type: str, name: str) -> Response:
    obj, context = object_name(object_type), ctx()
    prop = context.hs_properties[obj].get(name)
    if prop is None:
        raise hs_error(
            404, "OBJECT_NOT_FOUND", f"Unable to find property {name} on object type {obj}"
        )
    return json_response(prop.as_json(obj, iso_ms(utcnow())))


@bp.get("/crm/v3/owners/")
def owners() -> Response:
    context = ctx()
    email = request.args.get("email")
    limit = min(int(request.args.get("limit", 100)), 500)
    after = int(request.args.get("after", 0) or 0)
    with context.store.lock:
        found = [o for o in context.store.owners if not email or o["email"] == email]
    body: dict[str, Any] = {"results": found[after : after + limit]}
    if after + limit < len(found):
        body["paging"] = {"next": {"after": str(after + limit), "link": ""}}
    return json_response(body)


@bp.get("/crm/v3/owners/<owner_id>")
def owner(owner_id: str) -> Response:
    context = ctx()
    key = "userId" if request.args.get("idProperty") == "userId" else "id"
    for found in context.store.owners:
        if str(found[key]) == owner_id:
            return json_response(found)
    raise hs_error(404, "OBJECT_NOT_FOUND", f"No owner found with {key} {owner_id}")


@bp.post("/oauth/v1/token")
def oauth_token() -> Response:
    context = ctx()
    config, form = context.config, request.form
    if form.get("grant_type") != "refresh_token":
        return json_response(
            {"status": "BAD_GRANT_TYPE", "message": "grant_type must be refresh_token"}, 400
        )
    if (form.get("client_id"), form.get("client_secret")) != (
        config.hubspot_client_id,
        config.hubspot_client_secret,
    ):
        return json_response(
            {"status": "BAD_CLIENT_ID", "message": "missing or unknown client id"}, 400
        )
    if form.get("refresh_token") != config.hubspot_refresh_token:
        return json_response(
            {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"}, 400
        )
    return json_response(
        {
            "token_type": "bearer",
            "refresh_token": config.hubspot_refresh_token,
            "access_token": context.gate.issue_token("hubspot"),
            "expires_in": 1800,
        }
    )
