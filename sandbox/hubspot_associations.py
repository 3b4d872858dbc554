"""HubSpot associations v4: labelled and default associate, list, batch create/read/archive,
and the `associations` of a record created in v3; both directions are stored (task->company 192,
company->task 191)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, request

from sandbox.api import instrument
from sandbox.context import Context, ctx
from sandbox.responses import hs_batch_response, hs_error, hs_standard_error, json_response
from sandbox.schema import HS_ASSOCIATION_TYPES, HS_OBJECTS, hubspot_object
from sandbox.store import iso_ms, utcnow

bp = Blueprint("hubspot_associations", __name__)
instrument(bp, "hubspot", exempt=set())

Pair = tuple[str, str]


def _name(object_type: str) -> str:
    obj = hubspot_object(object_type)
    if obj is None:
        raise hs_error(400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}")
    return obj.name


def target_of(from_obj: str, type_id: int) -> str | None:
    """The object type a HUBSPOT_DEFINED association type id leads to from `from_obj`."""
    for (source, target), known in HS_ASSOCIATION_TYPES.items():
        if source == from_obj and known == type_id:
            return target
    return None


def associate(
    context: Context, pair: Pair, from_id: str, to_id: str, category: str, type_id: int
) -> None:
    from_obj, to_obj = pair
    forward = context.store.associations.setdefault((from_obj, from_id, to_obj, to_id), [])
    if (category, type_id) not in forward:
        forward.append((category, type_id))
    defined = category == "HUBSPOT_DEFINED"
    inverse = HS_ASSOCIATION_TYPES.get((to_obj, from_obj)) if defined else None
    backward = context.store.associations.setdefault((to_obj, to_id, from_obj, from_id), [])
    spec = (category, inverse if inverse is not None else type_id)
    if spec not in backward:
        backward.append(spec)


def check_link(
    context: Context, pair: Pair, from_id: str, to_id: str, types: list[dict[str, Any]]
) -> str | None:
    """Why this association cannot be made, or None."""
    from_obj, to_obj = pair
    for obj, object_id in ((from_obj, from_id), (to_obj, to_id)):
        if object_id not in context.store.table("hubspot", obj).rows:
            return f"{HS_OBJECTS[obj].singular.upper()}={object_id} is not valid"
    for spec in types:
        category = spec.get("associationCategory")
        type_id = spec.get("associationTypeId")
        if category == "HUBSPOT_DEFINED" and HS_ASSOCIATION_TYPES.get(pair) != type_id:
            return (
                f"{type_id} is not a valid association type id between "
                f"{HS_OBJECTS[from_obj].singular} and {HS_OBJECTS[to_obj].singular}"
            )
    return None


def create_inline(
    context: Context, obj: str, row_id: str | None, associations: list[dict[str, Any]]
) -> list[str]:
    """The `associations` of a v3 create: checked (row_id None) or made (row_id given)."""
    problems: list[str] = []
    for item in associations:
        to_id = str((item.get("to") or {}).get("id", ""))
        for spec in item.get("types") or []:
            target = target_of(obj, spec.get("associationTypeId"))
            if target is None:
                problems.append(
                    f"association type id {spec.get('associationTypeId')} does not exist for "
                    f"{HS_OBJECTS[obj].singular}"
                )
                continue
            if row_id is None:
                if to_id not in context.store.table("hubspot", target).rows:
                    problems.append(f"{HS_OBJECTS[target].singular.upper()}={to_id} is not valid")
                continue
            associate(
                context,
                (obj, target),
                row_id,
                to_id,
                spec["associationCategory"],
                spec["associationTypeId"],
            )
    return problems


def _labels(pair: Pair, from_id: str, to_id: str) -> dict[str, Any]:
    return {
        "fromObjectTypeId": HS_OBJECTS[pair[0]].type_id,
        "fromObjectId": from_id,
        "toObjectTypeId": HS_OBJECTS[pair[1]].type_id,
        "toObjectId": to_id,
        "labels": [],
    }


def _associated(context: Context, pair: Pair, from_id: str) -> list[dict[str, Any]]:
    return [
        {
            "toObjectId": key[3],
            "associationTypes": [
                {"category": category, "typeId": type_id, "label": None}
                for category, type_id in specs
            ],
        }
        for key, specs in context.store.associations.items()
        if key[0] == pair[0] and key[1] == from_id and key[2] == pair[1]
    ]


@bp.put("/crm/v4/objects/<object_type>/<object_id>/associations/<to_type>/<to_id>")
def associate_labelled(object_type: str, object_id: str, to_type: str, to_id: str) -> Response:
    pair, context = (_name(object_type), _name(to_type)), ctx()
    types = request.get_json(silent=True)
    if not isinstance(types, list) or not types:
        raise hs_error(400, "VALIDATION_ERROR", "The body must be a non-empty array of types.")
    with context.store.lock:
        problem = check_link(context, pair, object_id, to_id, types)
        if problem:
            raise hs_error(400, "VALIDATION_ERROR", problem)
        for spec in types:
            associate(
                context,
                pair,
                object_id,
                to_id,
                spec["associationCategory"],
                spec["associationTypeId"],
            )
    g.records = 1
    return json_response(_labels(pair, object_id, to_id), 201)


@bp.put("/crm/v4/objects/<object_type>/<object_id>/associations/default/<to_type>/<to_id>")
def associate_default(object_type: str, object_id: str, to_type: str, to_id: str) -> Response:
    pair, context = (_name(object_type), _name(to_type)), ctx()
    type_id = HS_ASSOCIATION_TYPES.get(pair)
    with context.store.lock:
        problem = check_link(context, pair, object_id, to_id, [])
        if problem or type_id is None:
            raise hs_error(400, "VALIDATION_ERROR", problem or "no default association type")
        associate(context, pair, object_id, to_id, "HUBSPOT_DEFINED", type_id)
    g.records = 1
    now = iso_ms(utcnow())
    result = {
        "from": {"id": object_id},
        "to": {"id": to_id},
        "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id},
    }
    return json_response(
        {"status": "COMPLETE", "results": [result], "startedAt": now, "completedAt": now}
    )


@bp.get("/crm/v4/objects/<object_type>/<object_id>/associations/<to_type>")
def list_associations(object_type: str, object_id: str, to_type: str) -> Response:
    pair, context = (_name(object_type), _name(to_type)), ctx()
    with context.store.lock:
        return json_response({"results": _associated(context, pair, object_id)})


@bp.delete("/crm/v4/objects/<object_type>/<object_id>/associations/<to_type>/<to_id>")
def remove_association(object_type: str, object_id: str, to_type: str, to_id: str) -> Response:
    pair, context = (_name(object_type), _name(to_type)), ctx()
    with context.store.lock:
        context.store.associations.pop((pair[0], object_id, pair[1], to_id), None)
        context.store.associations.pop((pair[1], to_id, pair[0], object_id), None)
    return Response(status=204)


def _batch(max_inputs: int = 100) -> list[dict[str, Any]]:
    data = request.get_json(silent=True)
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if not isinstance(inputs, list):
        raise hs_error(400, "VALIDATION_ERROR", "Invalid input JSON: inputs must be an array.")
    if len(inputs) > max_inputs:
        raise hs_error(
            400, "VALIDATION_ERROR", f"Batch input limit exceeded: at most {max_inputs} inputs."
        )
    g.records = len(inputs)
    return inputs


@bp.post("/crm/v4/associations/<from_type>/<to_type>/batch/create")
def batch_create(from_type: str, to_type: str) -> Response:
    pair, context, started = (_name(from_type), _name(to_type)), ctx(), iso_ms(utcnow())
    inputs = _batch()
    results, errors = [], []
    with context.store.lock:
        for item in inputs:
            from_id = str((item.get("from") or {}).get("id", ""))
            to_id = str((item.get("to") or {}).get("id", ""))
            types = item.get("types") or []
            problem = check_link(context, pair, from_id, to_id, types)
            if problem:
                errors.append(hs_standard_error("VALIDATION_ERROR", problem, {}))
                continue
            for spec in types:
                associate(
                    context,
                    pair,
                    from_id,
                    to_id,
                    spec["associationCategory"],
                    spec["associationTypeId"],
                )
            results.append(_labels(pair, from_id, to_id))
    if errors and not results:
        raise hs_error(400, "VALIDATION_ERROR", errors[0]["message"])
    return hs_batch_response(results, errors, started, 201)


@bp.post("/crm/v4/associations/<from_type>/<to_type>/batch/read")
def batch_read(from_type: str, to_type: str) -> Response:
    pair, context, started = (_name(from_type), _name(to_type)), ctx(), iso_ms(utcnow())
    inputs = _batch(1000)
    with context.store.lock:
        results = []
        for item in inputs:
            from_id = str(item.get("id", ""))
            found = _associated(context, pair, from_id)
            if found:
                results.append({"from": {"id": from_id}, "to": found})
    return hs_batch_response(results, [], started, 200)


@bp.post("/crm/v4/associations/<from_type>/<to_type>/batch/archive")
def batch_archive(from_type: str, to_type: str) -> Response:
    pair, context = (_name(from_type), _name(to_type)), ctx()
    inputs = _batch(2000)
    with context.store.lock:
        for item in inputs:
            from_id = str((item.get("from") or {}).get("id", ""))
            for target in item.get("to") or []:
                to_id = str(target.get("id", ""))
                context.store.associations.pop((pair[0], from_id, pair[1], to_id), None)
                context.store.associations.pop((pair[1], to_id, pair[0], from_id), None)
    return Response(status=204)
