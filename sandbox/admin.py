"""The sandbox's own admin API under /_sandbox/: what it serves and the credentials, the request
log, reset, faults, limits, webhook targets and deliveries, seeding, and raw records."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from pydantic import BaseModel, ValidationError

from sandbox.config import Crm, Faults, Limits, Webhooks
from sandbox.context import Context, ctx
from sandbox.responses import json_response
from sandbox.seed import SeedError, apply_seed, parse_seed

bp = Blueprint("sandbox_admin", __name__, url_prefix="/_sandbox")
CRMS: tuple[Crm, ...] = ("salesforce", "hubspot")


def describe(context: Context) -> dict[str, Any]:
    """The URLs and credentials a client of this sandbox needs."""
    config, base = context.config, context.base_url
    return {
        "base_url": base,
        "ca_path": str((config.tls_dir / "ca.pem").resolve()),
        "salesforce": {
            "instance_url": base,
            "token_url": f"{base}/services/oauth2/token",
            "api_version": config.salesforce_api_version,
            "session_id": config.salesforce_session_id,
            "client_id": config.salesforce_client_id,
            "client_secret": config.salesforce_client_secret,
            "username": config.salesforce_username,
            "password": config.salesforce_password,
            "org_id": config.salesforce_org_id,
            "integration_user_id": config.salesforce_integration_user_id,
        },
        "hubspot": {
            "host": base,
            "access_token": config.hubspot_access_token,
            "token_url": f"{base}/oauth/v1/token",
            "client_id": config.hubspot_client_id,
            "client_secret": config.hubspot_client_secret,
            "refresh_token": config.hubspot_refresh_token,
            "app_id": config.hubspot_app_id,
            "portal_id": config.hubspot_portal_id,
        },
        "admin_url": f"{base}/_sandbox/",
        "tasks_page": f"{base}/_sandbox/tasks",
    }


def _bad_request(exc: ValidationError | SeedError) -> Response:
    if isinstance(exc, SeedError):
        return json_response({"error": str(exc)}, 400)
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()
    ]
    return json_response({"error": "invalid sandbox settings", "problems": problems}, 400)


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


@bp.get("/")
def index() -> Response:
    return json_response(describe(ctx()))


@bp.get("/requests")
def requests_log() -> Response:
    context = ctx()
    crm = request.args.get("crm")
    since = int(request.args.get("since", 0))
    with context.store.lock:
        found = [
            r.as_json()
            for r in context.store.requests
            if r.seq > since and (crm is None or r.crm == crm)
        ]
    return json_response({"count": len(found), "requests": found})


@bp.post("/reset")
def reset() -> Response:
    """Empty the request log and the quota counters; `{"records": true}` also drops every
    record and association (owners and users stay)."""
    context = ctx()
    with context.store.lock:
        context.store.clear_requests()
        context.gate.reset_usage()
        if context.webhooks is not None:
            context.webhooks.deliveries.clear()
        if _body().get("records"):
            for table in context.store.hubspot.values():
                table.clear()
            for name, table in context.store.salesforce.items():
                if name != "User":
                    table.clear()
            context.store.associations.clear()
    return json_response({"reset": True})


@bp.get("/spec")
def spec() -> Response:
    """Whether HubSpot bodies are checked against the specs, and which operations were seen."""
    check = ctx().spec
    return json_response(
        {"enabled": check is not None, "operations": sorted(check.checked) if check else []}
    )


@bp.get("/faults")
def faults() -> Response:
    config = ctx().config
    return json_response({crm: _dump(config.faults[crm]) for crm in CRMS})


@bp.post("/faults")
def set_faults() -> Response:
    """Replace the faults: `{"salesforce": {...}, "hubspot": {...}}`, or one set for both."""
    context, body = ctx(), _body()
    try:
        if set(body) <= set(CRMS) and body:
            wanted = {crm: Faults.model_validate(body[crm]) for crm in body}
        else:
            wanted = {crm: Faults.model_validate(body) for crm in CRMS}
    except ValidationError as exc:
        return _bad_request(exc)
    for crm, value in wanted.items():
        context.gate.set_faults(crm, value)
    return faults()


@bp.get("/limits")
def limits() -> Response:
    return json_response(_dump(ctx().config.limits))


@bp.post("/limits")
def set_limits() -> Response:
    context = ctx()
    try:
        context.config.limits = Limits.model_validate({**_dump(context.config.limits), **_body()})
    except ValidationError as exc:
        return _bad_request(exc)
    return limits()


@bp.get("/webhooks")
def webhooks() -> Response:
    context = ctx()
    sender = context.webhooks
    return json_response(
        {
            "config": _dump(context.config.webhooks),
            "pending": sender.pending() if sender else 0,
            "deliveries": [d.as_json() for d in sender.deliveries] if sender else [],
        }
    )


@bp.post("/webhooks")
def set_webhooks() -> Response:
    context = ctx()
    try:
        merged = {**_dump(context.config.webhooks), **_body()}
        context.config.webhooks = Webhooks.model_validate(merged)
    except ValidationError as exc:
        return _bad_request(exc)
    return webhooks()


@bp.post("/seed")
def seed() -> Response:
    context = ctx()
    try:
        return json_response(apply_seed(context, parse_seed(_body(), "seed")))
    except SeedError as exc:
        return _bad_request(exc)


@bp.get("/records/<crm>/<name>")
def records(crm: str, name: str) -> Response:
    """Every record of one object as stored, with who created and last changed it."""
    context = ctx()
    tables = context.store.salesforce if crm == "salesforce" else context.store.hubspot
    with context.store.lock:
        table = tables.get(name)
        rows = list(table.rows.values()) if table else []
        body = [
            {
                "id": r.id,
                "values": r.values,
                "created_by": r.created_by,
                "modified_by": r.modified_by,
            }
            for r in rows
        ]
    return json_response({"count": len(body), "records": body})
