"""Response bodies in each CRM's own error shapes: Salesforce's `[{"message", "errorCode"}]`
list and HubSpot's `{"status": "error", "category", "correlationId"}` object."""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask import Response

from sandbox.store import iso_ms, utcnow


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, headers=headers, content_type="application/json"
    )


class ApiError(Exception):
    """Raised anywhere in a handler; the blueprint turns it into the CRM's error response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def sf_error(status: int, code: str, message: str, fields: list[str] | None = None) -> ApiError:
    body: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        body["fields"] = fields
    return ApiError(json_response([body], status))


def sf_record_error(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    """One entry of a per-record `errors` array (sObject Collections, single create)."""
    return {"statusCode": code, "message": message, "fields": fields or []}


def correlation_id() -> str:
    return str(uuid.uuid4())


def hs_error_body(category: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "correlationId": correlation_id(),
        "category": category,
        **extra,
    }


def hs_error(status: int, category: str, message: str, **extra: Any) -> ApiError:
    return ApiError(json_response(hs_error_body(category, message, **extra), status))


def hs_standard_error(category: str, message: str, context: dict[str, list[str]]) -> dict[str, Any]:
    """One entry of a batch response's `errors[]` (StandardError in the specs)."""
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": context,
        "errors": [],
        "links": {},
        "subCategory": {},
        "id": correlation_id(),
    }


def hs_batch_response(
    results: list[Any], errors: list[dict[str, Any]], started: str, ok_status: int
) -> Response:
    """A HubSpot batch answer: `ok_status` when every input succeeded, else 207 with errors[]."""
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": iso_ms(utcnow()),
    }
    if errors:
        body.update(numErrors=len(errors), errors=errors)
    return json_response(body, 207 if errors else ok_status)
