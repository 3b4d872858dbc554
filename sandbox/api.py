"""What every emulated API call goes through: added latency, the gate (auth, quotas, faults),
the CRM's rate-limit headers on the response, the request log and, for HubSpot, the spec check."""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, g, request

from sandbox.config import Crm
from sandbox.context import ctx
from sandbox.responses import ApiError


def instrument(bp: Blueprint, crm: Crm, exempt: set[str]) -> None:
    """Wire the gate and the log into `bp`; endpoints in `exempt` skip the bearer-token check."""

    @bp.before_request
    def _admit() -> None:
        g.records = 0
        delay = ctx().gate.latency(crm)
        if delay:
            time.sleep(delay)
        if request.endpoint not in exempt:
            ctx().gate.admit(crm, request.headers.get("Authorization"))

    @bp.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return exc.response

    @bp.after_request
    def _finish(response: Response) -> Response:
        context = ctx()
        if request.endpoint not in exempt:
            lost = context.gate.lost_response(crm) if response.status_code < 300 else None
            response = lost.response if lost else response
            response.headers.update(context.gate.headers(crm))
        spec_errors: list[str] = []
        if context.spec is not None and crm == "hubspot":
            spec_errors = context.spec.check(
                request.method,
                request.path,
                _json(request.get_data()),
                response.status_code,
                _json(response.get_data()),
            )
        context.store.record_request(
            crm=crm,
            method=request.method,
            path=request.path,
            query=request.query_string.decode(),
            request_bytes=len(request.get_data()),
            status=response.status_code,
            response_bytes=response.calculate_content_length() or 0,
            records=g.get("records", 0),
            spec_errors=spec_errors,
        )
        return response


def _json(raw: bytes) -> object:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
