"""The generic webhook route: size and type checks, the source's verify and parse, the inbox
insert committed before we answer, and the inbox drain woken after the answer is sent."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request

from expansion.db import utcnow
from expansion.settings import Settings
from integration import inbox
from integration.sources import SOURCES
from integration.sources.base import (
    PayloadTooLarge,
    RawRequest,
    UnsupportedMediaType,
    WebhookError,
)

log = logging.getLogger(__name__)
webhooks = Blueprint("webhooks", __name__)


def error_response(status: int, code: str, detail: str) -> Response:
    response = jsonify({"error": code, "detail": detail})
    response.status_code = status
    return response


def _raw_request(settings: Settings) -> RawRequest:
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        raise PayloadTooLarge(f"body is {length} bytes; the limit is {settings.max_body_bytes}")
    body = request.stream.read(settings.max_body_bytes + 1)
    if len(body) > settings.max_body_bytes:
        raise PayloadTooLarge(f"body exceeds the limit of {settings.max_body_bytes} bytes")
    base = settings.public_base_url or request.host_url.rstrip("/")
    query = request.query_string.decode("latin-1")
    url = base + request.path + (f"?{query}" if query else "")
    headers = {name.lower(): value for name, value in request.headers.items()}
    return RawRequest(request.method, url, headers, body, utcnow())


@webhooks.post("/webhooks/<name>")
def receive(name: str) -> Response:
    source = SOURCES.get(name)
    if source is None:
        return error_response(404, "unknown_source", f"no webhook source named {name!r}")
    settings: Settings = current_app.config["SETTINGS"]
    try:
        source.check_configured(settings)
        raw = _raw_request(settings)
        if raw.content_type not in source.content_types:
            raise UnsupportedMediaType(
                f"{name} webhooks must be sent as {' or '.join(source.content_types)}, "
                f"got {raw.content_type or 'no content type'}"
            )
        source.verify(raw, settings)
        items = source.parse(raw, settings)
    except WebhookError as exc:
        log.info(
            "webhook rejected", extra={"source": name, "error": exc.code, "status": exc.status}
        )
        return error_response(exc.status, exc.code, exc.detail)
    try:
        new_ids = inbox.write(settings, name, items, raw.received_at)
    except Exception:
        log.exception("inbox insert failed", extra={"source": name})
        return error_response(503, "storage_unavailable", "the event could not be stored; retry")
    log.debug(
        "webhook stored",
        extra={"source": name, "items": len(items), "new": len(new_ids)},
    )
    response = source.acknowledge(items) or jsonify(
        {"received": len(items), "new": len(new_ids), "duplicates": len(items) - len(new_ids)}
    )
    if new_ids:
        response.call_on_close(current_app.extensions["wake_drain"])
    return response
