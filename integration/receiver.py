"""The generic webhook route: size and type checks, the source's verify and parse, the inbox
insert committed before we answer, and the inbox drain woken after the answer is sent."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from flask import Blueprint, Flask, Request, Response, current_app, jsonify, request
from werkzeug.sansio.utils import get_current_url

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


def _raw_request(req: Request, settings: Settings) -> RawRequest:
    length = req.content_length
    if length is not None and length > settings.max_body_bytes:
        raise PayloadTooLarge(f"body is {length} bytes; the limit is {settings.max_body_bytes}")
    # A read allocates a buffer of the size asked for: ask for the declared length, not the limit.
    body = req.stream.read(settings.max_body_bytes + 1 if length is None else length)
    if len(body) > settings.max_body_bytes:
        raise PayloadTooLarge(f"body exceeds the limit of {settings.max_body_bytes} bytes")
    base = settings.public_base_url or _host_url(req.scheme, req.host)
    query = req.query_string.decode("latin-1")
    url = base + req.path + (f"?{query}" if query else "")
    return RawRequest(req.method, url, _headers(req.environ), body, utcnow())


@lru_cache(maxsize=64)
def _host_url(scheme: str, host: str) -> str:
    """Request.host_url without the trailing slash, built once per scheme and host: werkzeug
    turns it into an IRI (unquoting, IDNA) on every request otherwise."""
    return get_current_url(scheme, host).rstrip("/")


_NOT_HEADERS = frozenset(("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"))


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request's headers by lower-cased name, as werkzeug's EnvironHeaders lists them
    (without building that object and a title-cased name per header)."""
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_") and key not in _NOT_HEADERS
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return headers


def _inbox(app: Flask) -> inbox.Inbox:
    """The app's inbox writer, looked up on first use: a database that cannot be reached at
    start must still give each request its 503."""
    writer = app.extensions.get("inbox")
    if writer is None:
        writer = app.extensions["inbox"] = inbox.for_settings(app.config["SETTINGS"])
    return writer


@webhooks.post("/webhooks/<name>")
def receive(name: str) -> Response:
    source = SOURCES.get(name)
    if source is None:
        return error_response(404, "unknown_source", f"no webhook source named {name!r}")
    # The proxies resolved once: each attribute read through one costs a context lookup.
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    settings: Settings = app.config["SETTINGS"]
    try:
        source.check_configured(settings)
        raw = _raw_request(request._get_current_object(), settings)  # type: ignore[attr-defined]
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
        new_ids = _inbox(app).write(name, items, raw.received_at)
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
        response.call_on_close(app.extensions["wake_drain"])
    return response
