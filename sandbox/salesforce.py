"""The Salesforce REST API subset: OAuth token, versions, describe, sObject CRUD and upsert by
external id, sObject Collections (200 per call, allOrNone), SOQL query and limits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, g, request

from integration.salesforce_ids import id18, is_id
from sandbox.api import instrument
from sandbox.context import Context, ctx
from sandbox.responses import json_response, sf_error, sf_record_error
from sandbox.salesforce_records import Planned, commit, field_value, plan, record_json
from sandbox.schema import SfObject
from sandbox.soql import Query, SoqlError, matches, parse
from sandbox.store import Row

COLLECTION_LIMIT = 200
QUERY_BATCH = 2000

bp = Blueprint("salesforce", __name__)
DATA = "/services/data/v<version>"
instrument(bp, "salesforce", exempt={"salesforce.oauth_token", "salesforce.versions"})


def actor() -> str:
    return ctx().config.salesforce_integration_user_id


def sobject(name: str) -> SfObject:
    obj = ctx().sf_objects.get(name)
    if obj is None:
        raise sf_error(404, "NOT_FOUND", f"The requested resource does not exist: {name}")
    return obj


def body_json() -> Any:
    data = request.get_json(silent=True)
    if data is None:
        raise sf_error(400, "JSON_PARSER_ERROR", "The request body is not valid JSON.")
    return data


# --- OAuth ------------------------------------------------------------------------------------


@bp.post("/services/oauth2/token")
def oauth_token() -> Response:
    context = ctx()
    config = context.config
    form = request.form
    grant = form.get("grant_type")
    if grant not in ("client_credentials", "password"):
        return json_response(
            {"error": "unsupported_grant_type", "error_description": "grant type not supported"},
            400,
        )
    if (form.get("client_id"), form.get("client_secret")) != (
        config.salesforce_client_id,
        config.salesforce_client_secret,
    ):
        return json_response(
            {"error": "invalid_client", "error_description": "invalid client credentials"}, 400
        )
    if grant == "password" and (form.get("username"), form.get("password")) != (
        config.salesforce_username,
        config.salesforce_password,
    ):
        return json_response(
            {"error": "invalid_grant", "error_description": "authentication failure"}, 400
        )
    token = context.gate.issue_token("salesforce")
    issued_at = str(int(time.time() * 1000))
    identity = f"{context.base_url}/id/{config.salesforce_org_id}/{actor()}"
    signature = base64.b64encode(
        hmac.new(
            config.salesforce_client_secret.encode(),
            (identity + issued_at).encode(),
            hashlib.sha256,
        ).digest()
    ).decode()
    return json_response(
        {
            "access_token": token,
            "instance_url": context.base_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature,
            "scope": "api",
        }
    )


@bp.get("/services/data/")
def versions() -> Response:
    version = ctx().config.salesforce_api_version
    return json_response(
        [{"label": "Winter '25", "url": f"/services/data/v{version}", "version": version}]
    )


# --- Describe ---------------------------------------------------------------------------------


def _sobject_summary(obj: SfObject, version: str) -> dict[str, Any]:
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    return {
        "name": obj.name,
        "label": obj.name,
        "labelPlural": obj.name + "s",
        "keyPrefix": obj.key_prefix,
        "custom": False,
        "createable": True,
        "updateable": True,
        "deletable": True,
        "queryable": True,
        "searchable": True,
        "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
    }


@bp.get(f"{DATA}/sobjects/")
def describe_global(version: str) -> Response:
    context = ctx()
    return json_response(
        {
            "encoding": "UTF-8",
            "maxBatchSize": COLLECTION_LIMIT,
            "sobjects": [_sobject_summary(o, version) for o in context.sf_objects.values()],
        }
    )


@bp.get(f"{DATA}/sobjects/<name>/")
def sobject_info(version: str, name: str) -> Response:
    obj = sobject(name)
    return json_response({"objectDescribe": _sobject_summary(obj, version), "recentItems": []})


@bp.get(f"{DATA}/sobjects/<name>/describe/")
def describe(version: str, name: str) -> Response:
    obj = sobject(name)
    body = _sobject_summary(obj, version)
    body["fields"] = [f.describe(obj.name) for f in obj.fields.values()]
    return json_response(body)


# --- Single records ---------------------------------------------------------------------------


def _row(obj: SfObject, record_id: str) -> Row:
    rows = ctx().store.table("salesforce", obj.name).rows
    row = rows.get(id18(record_id)) if is_id(record_id) else None
    if row is None:
        raise sf_error(404, "NOT_FOUND", "The requested resource does not exist")
    return row


def _apply_single(obj: SfObject, data: dict[str, Any], row: Row | None) -> tuple[Row, bool]:
    context = ctx()
    planned = plan(context, obj, data, row)
    if not isinstance(planned, Planned):
        first = planned[0]
        raise sf_error(400, first["statusCode"], first["message"], first["fields"])
    g.records = 1
    return commit(context, planned, actor())


@bp.post(f"{DATA}/sobjects/<name>/")
def create(version: str, name: str) -> Response:
    obj = sobject(name)
    with ctx().store.lock:
        row, _ = _apply_single(obj, body_json(), None)
    return json_response({"id": row.id, "success": True, "errors": []}, 201)


@bp.get(f"{DATA}/sobjects/<name>/<record_id>")
def read(version: str, name: str, record_id: str) -> Response:
    obj = sobject(name)
    fields = _field_list(obj, request.args.get("fields"))
    with ctx().store.lock:
        return json_response(record_json(ctx(), obj, _row(obj, record_id), fields))


@bp.patch(f"{DATA}/sobjects/<name>/<record_id>")
def update(version: str, name: str, record_id: str) -> Response:
    obj = sobject(name)
    with ctx().store.lock:
        _apply_single(obj, body_json(), _row(obj, record_id))
    return Response(status=204)


@bp.delete(f"{DATA}/sobjects/<name>/<record_id>")
def delete(version: str, name: str, record_id: str) -> Response:
    obj = sobject(name)
    with ctx().store.lock:
        row = _row(obj, record_id)
        ctx().store.table("salesforce", obj.name).delete(row.id)
    return Response(status=204)


def _external_field(obj: SfObject, name: str) -> str:
    spec = obj.fields.get(name)
    if spec is None or not (spec.external_id or name == "Id"):
        raise sf_error(
            404,
            "NOT_FOUND",
            f"Provided external ID field does not exist or is not accessible: {name}",
        )
    return name


@bp.get(f"{DATA}/sobjects/<name>/<field>/<value>")
def read_by_external_id(version: str, name: str, field: str, value: str) -> Response:
    obj = sobject(name)
    _external_field(obj, field)
    with ctx().store.lock:
        row = ctx().store.table("salesforce", obj.name).find(field, value)
        if row is None:
            raise sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        return json_response(record_json(ctx(), obj, row))


@bp.patch(f"{DATA}/sobjects/<name>/<field>/<value>")
def upsert(version: str, name: str, field: str, value: str) -> Response:
    obj = sobject(name)
    _external_field(obj, field)
    data = {**body_json(), field: value}
    with ctx().store.lock:
        existing = ctx().store.table("salesforce", obj.name).find(field, value)
        row, created = _apply_single(obj, data, existing)
    body = {"id": row.id, "success": True, "errors": [], "created": created}
    return json_response(body, 201 if created else 200)


# --- sObject Collections ----------------------------------------------------------------------


def _collection_records() -> tuple[list[dict[str, Any]], bool]:
    data = body_json()
    records = data.get("records") if isinstance(data, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise sf_error(400, "JSON_PARSER_ERROR", "records must be an array of sObjects")
    if len(records) > COLLECTION_LIMIT:
        raise sf_error(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into "
            "this call",
        )
    g.records = len(records)
    return records, bool(data.get("allOrNone", False))


def _record_type(record: dict[str, Any]) -> SfObject | dict[str, Any]:
    name = (record.get("attributes") or {}).get("type")
    obj = ctx().sf_objects.get(name or "")
    if obj is None:
        return sf_record_error(
            "INVALID_TYPE",
            "sObject type is missing or not supported in this sandbox"
            if not name
            else f"sObject type '{name}' is not supported.",
        )
    return obj


def _unique_within(plans: list[Planned | list[dict[str, Any]]]) -> None:
    """A later record of the batch repeating an external id value fails, as in Salesforce."""
    seen: set[tuple[str, str, str]] = set()
    for index, planned in enumerate(plans):
        if not isinstance(planned, Planned):
            continue
        fields = ctx().sf_objects[planned.sobject].fields
        for name, value in planned.changes.items():
            if not fields[name].external_id or value is None:
                continue
            key = (planned.sobject, name, str(value))
            if key in seen:
                plans[index] = [
                    sf_record_error(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {name} duplicates value on record with id: "
                        "(in this request)",
                    )
                ]
                break
            seen.add(key)


def _run_collection(
    plans: list[Planned | list[dict[str, Any]]], all_or_none: bool, with_created: bool
) -> list[dict[str, Any]]:
    _unique_within(plans)
    failed = any(not isinstance(p, Planned) for p in plans)
    results = []
    for planned in plans:
        result: dict[str, Any]
        if not isinstance(planned, Planned):
            result = {"success": False, "errors": planned}
        elif failed and all_or_none:
            result = {
                "id": None,
                "success": False,
                "errors": [
                    sf_record_error(
                        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                        "Record rolled back because not all records were valid and the "
                        "request was using AllOrNone header",
                    )
                ],
            }
        else:
            row, created = commit(ctx(), planned, actor())
            result = {"id": row.id, "success": True, "errors": []}
            if with_created:
                result["created"] = created
        results.append(result)
    return results


Plan = Planned | list[dict[str, Any]]


def _plan_each(
    records: list[dict[str, Any]], plan_one: Callable[[SfObject, dict[str, Any]], Plan]
) -> list[Plan]:
    """`plan_one` for each record whose attributes.type is known; an error for the others."""
    plans: list[Plan] = []
    for record in records:
        obj = _record_type(record)
        plans.append([obj] if isinstance(obj, dict) else plan_one(obj, record))
    return plans


@bp.post(f"{DATA}/composite/sobjects")
def collection_create(version: str) -> Response:
    records, all_or_none = _collection_records()
    context = ctx()

    def plan_create(obj: SfObject, record: dict[str, Any]) -> Plan:
        if record.get("id") or record.get("Id"):
            return [sf_record_error("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])]
        return plan(context, obj, record, None)

    with context.store.lock:
        results = _run_collection(_plan_each(records, plan_create), all_or_none, False)
    return json_response(results)


@bp.patch(f"{DATA}/composite/sobjects")
def collection_update(version: str) -> Response:
    records, all_or_none = _collection_records()
    context = ctx()

    def plan_update(obj: SfObject, record: dict[str, Any]) -> Plan:
        record_id = str(record.get("id") or record.get("Id") or "")
        rows = context.store.table("salesforce", obj.name).rows
        row = rows.get(id18(record_id)) if is_id(record_id) else None
        if row is not None:
            return plan(context, obj, record, row)
        if not record_id:
            return [
                sf_record_error("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
            ]
        return [
            sf_record_error(
                "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {record_id}"
            )
        ]

    with context.store.lock:
        results = _run_collection(_plan_each(records, plan_update), all_or_none, False)
    return json_response(results)


@bp.patch(f"{DATA}/composite/sobjects/<name>/<field>")
def collection_upsert(version: str, name: str, field: str) -> Response:
    obj = sobject(name)
    _external_field(obj, field)
    records, all_or_none = _collection_records()
    context = ctx()
    table = context.store.table("salesforce", obj.name)
    with context.store.lock:
        plans: list[Planned | list[dict[str, Any]]] = []
        seen: set[str] = set()
        for record in records:
            key = record.get(field)
            if key in (None, ""):
                plans.append(
                    [sf_record_error("MISSING_ARGUMENT", f"{field} not specified", [field])]
                )
                continue
            if str(key) in seen:
                plans.append(
                    [
                        sf_record_error(
                            "DUPLICATE_EXTERNAL_ID",
                            f"Duplicate external id specified: {key}",
                            [field],
                        )
                    ]
                )
                continue
            seen.add(str(key))
            plans.append(plan(context, obj, record, table.find(field, key)))
        results = _run_collection(plans, all_or_none, with_created=True)
    return json_response(results)


@bp.get(f"{DATA}/composite/sobjects/<name>")
def collection_read(version: str, name: str) -> Response:
    obj = sobject(name)
    ids = [i for i in request.args.get("ids", "").split(",") if i]
    fields = _field_list(obj, request.args.get("fields")) or ["Id"]
    context = ctx()
    with context.store.lock:
        rows = context.store.table("salesforce", obj.name).rows
        found = [rows.get(id18(i)) if is_id(i) else None for i in ids]
        return json_response([record_json(context, obj, r, fields) if r else None for r in found])


# --- SOQL and limits --------------------------------------------------------------------------


def _field_list(obj: SfObject, given: str | None) -> list[str] | None:
    if not given:
        return None
    names = [n.strip() for n in given.split(",") if n.strip()]
    for n in names:
        if n not in obj.fields:
            raise sf_error(400, "INVALID_FIELD", f"No such column '{n}' on entity '{obj.name}'.")
    return names


def _check_query(context: Context, query: Query) -> SfObject:
    obj = context.sf_objects.get(query.sobject)
    if obj is None:
        raise SoqlError("INVALID_TYPE", f"sObject type '{query.sobject}' is not supported.")
    names = query.fields + [c.field for c in query.where] + [query.order_by or "Id"]
    for name in names:
        _resolve(context, obj, name)
    return obj


def _resolve(context: Context, obj: SfObject, name: str) -> tuple[str, SfObject | None, str]:
    """`Field` or `Relationship.Field` -> (local field, related object, related field)."""
    head, _, tail = name.partition(".")
    if not tail:
        if head not in obj.fields:
            raise SoqlError("INVALID_FIELD", f"No such column '{head}' on entity '{obj.name}'.")
        return head, None, ""
    local = f"{head}Id"
    spec = obj.fields.get(local)
    if spec is None or not spec.reference_to:
        raise SoqlError("INVALID_FIELD", f"Didn't understand relationship '{head}' in field path.")
    related = context.sf_objects[spec.reference_to[0]]
    if tail not in related.fields:
        raise SoqlError("INVALID_FIELD", f"No such column '{tail}' on entity '{related.name}'.")
    return local, related, tail


def _value(context: Context, obj: SfObject, row: Row, name: str) -> Any:
    local, related, tail = _resolve(context, obj, name)
    if related is None:
        return field_value(obj, row, local)
    target_id = row.values.get(local) if local != "CreatedById" else row.created_by
    target = context.store.table("salesforce", related.name).rows.get(target_id or "")
    return field_value(related, target, tail) if target else None


def _query_record(context: Context, obj: SfObject, row: Row, fields: list[str]) -> dict[str, Any]:
    out = record_json(context, obj, row, [f for f in fields if "." not in f])
    for name in (f for f in fields if "." in f):
        head, _, tail = name.partition(".")
        related = context.sf_objects[obj.fields[f"{head}Id"].reference_to[0]]
        value = _value(context, obj, row, name)
        nested = out.setdefault(head, {"attributes": {"type": related.name}})
        nested[tail] = value
    return out


def _candidates(context: Context, obj: SfObject, query: Query) -> list[Row]:
    """The rows a query can match: through the external-id index when it filters on one."""
    table = context.store.table("salesforce", obj.name)
    for condition in query.where:
        if condition.op in ("=", "IN") and condition.field in table.index:
            ids = (table.owner_of(condition.field, v) for v in condition.values)
            return [table.rows[i] for i in dict.fromkeys(ids) if i is not None]
    return list(table.rows.values())


def run_query(context: Context, soql: str) -> dict[str, Any]:
    try:
        query = parse(soql)
        obj = _check_query(context, query)
    except SoqlError as exc:
        raise sf_error(400, exc.code, str(exc)) from None
    rows = [
        row
        for row in _candidates(context, obj, query)
        if all(matches(_value(context, obj, row, c.field), c) for c in query.where)
    ]
    if query.order_by:
        order = query.order_by
        rows.sort(
            key=lambda r: (
                _value(context, obj, r, order) is None,
                str(_value(context, obj, r, order)),
            ),
            reverse=query.descending,
        )
    if query.limit is not None:
        rows = rows[: query.limit]
    if query.count:
        return {"totalSize": len(rows), "done": True, "records": []}
    records = [_query_record(context, obj, r, query.fields) for r in rows]
    return _page(context, records, 0)


def _page(context: Context, records: list[dict[str, Any]], start: int) -> dict[str, Any]:
    end = start + QUERY_BATCH
    body: dict[str, Any] = {
        "totalSize": len(records),
        "done": end >= len(records),
        "records": records[start:end],
    }
    if end < len(records):
        locator = f"01g{len(context.store.requests):012d}"
        context.store.cursors[locator] = records
        version = context.config.salesforce_api_version
        body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{end}"
    return body


@bp.get(f"{DATA}/query/")
def query(version: str) -> Response:
    soql = request.args.get("q")
    if not soql:
        raise sf_error(400, "MALFORMED_QUERY", "The q parameter (a SOQL query) is required.")
    context = ctx()
    with context.store.lock:
        body = run_query(context, soql)
    g.records = len(body["records"])
    return json_response(body)


@bp.get(f"{DATA}/query/<locator>")
def query_more(version: str, locator: str) -> Response:
    context = ctx()
    cursor, _, start = locator.rpartition("-")
    records = context.store.cursors.get(cursor)
    if records is None or not start.isdigit():
        raise sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    body = _page(context, records, int(start))
    g.records = len(body["records"])
    return json_response(body)


@bp.get(f"{DATA}/limits/")
def limits(version: str) -> Response:
    context = ctx()
    daily = context.config.limits.salesforce_daily
    used = context.gate.used["salesforce"]
    return json_response(
        {
            "DailyApiRequests": {"Max": daily, "Remaining": max(0, daily - used)},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
        }
    )
