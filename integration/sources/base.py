"""The contract every source module fulfils (verify -> parse -> normalize) and the errors the
receiver turns into JSON answers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from flask import Response

from expansion.settings import Settings
from integration.canonical import Normalized


class WebhookError(Exception):
    """An answer to the provider other than success; `code` is stable, `detail` is for people."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadSignature(WebhookError):
    status = 401
    code = "invalid_signature"


class MalformedPayload(WebhookError):
    status = 400
    code = "malformed_payload"


class UnknownTenant(WebhookError):
    status = 403
    code = "unknown_tenant"


class UnsupportedMediaType(WebhookError):
    status = 415
    code = "unsupported_media_type"


class PayloadTooLarge(WebhookError):
    status = 413
    code = "payload_too_large"


class NotConfigured(WebhookError):
    status = 503
    code = "not_configured"


class NormalizationError(Exception):
    """A stored event that cannot be turned into canonical events (goes to the dead-letter)."""


@dataclass(frozen=True)
class RawRequest:
    """What the receiver hands a source: the untouched body and what signatures cover."""

    method: str
    url: str  # the full URL as the provider addressed it (PUBLIC_BASE_URL + path + query)
    headers: dict[str, str]  # lower-cased names
    body: bytes
    received_at: datetime

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    def json_text(self) -> str | None:
        """The body as text that json.loads reads back as parsed, for a source whose item is
        the whole body (stored as received, no re-serializing); None if it must be re-encoded
        (not UTF-8, or a byte-order mark, which json.loads on text refuses)."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return None if text.startswith("\ufeff") else text


@dataclass(frozen=True)
class InboxItem:
    """One provider event, as stored in the inbox before we answer."""

    dedup_key: str
    event_type: str
    occurred_at: datetime | None
    payload: dict[str, Any]
    # The payload's JSON text as received, when the item is the whole body (RawRequest.json_text);
    # sources that split a body into items leave it None and the payload is serialized.
    raw: str | None = field(default=None, repr=False)

    def payload_json(self) -> str:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.payload, separators=(",", ":"), sort_keys=True, default=str)


def json_body(request: RawRequest) -> Any:
    """The body parsed as JSON, or MalformedPayload saying why it is not JSON."""
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPayload(f"body is not valid JSON: {exc}") from None


def json_document(request: RawRequest) -> tuple[Any, str | None]:
    """json_body for a source whose item is the whole body, with the text to store as received
    (RawRequest.json_text), decoded once for both; None when it must be re-encoded."""
    text = request.json_text()
    if text is not None:
        try:
            return json.loads(text), text
        except ValueError:
            pass  # json_body says why, or reads it as UTF-16/32 (so this text is not it)
    return json_body(request), None


def epoch_iso(epoch: int | None) -> str | None:
    """An epoch-seconds timestamp as ISO 8601 UTC (None stays None)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch else None


class Source(Protocol):
    """One provider. Modules in integration/sources/ each expose `SOURCE` of this shape."""

    name: str
    content_types: tuple[str, ...]

    def check_configured(self, settings: Settings) -> None:
        """Raise NotConfigured naming the variable to set when a secret is missing."""

    def verify(self, request: RawRequest, settings: Settings) -> None:
        """Check the raw body's signature (constant-time); raise BadSignature / UnknownTenant."""

    def parse(self, request: RawRequest, settings: Settings) -> list[InboxItem]:
        """Split a verified body into inbox items; raise MalformedPayload / UnknownTenant."""

    def normalize(self, item: dict[str, Any], event_type: str, settings: Settings) -> Normalized:
        """Turn one stored item into canonical events, or Ignored with the reason."""

    def acknowledge(self, items: list[InboxItem]) -> Response | None:
        """The success answer the provider expects, or None for the default JSON one."""
