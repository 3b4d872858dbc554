"""Signature primitives shared by the sources: HMACs, constant-time comparison and timestamp
windows, plus Standard Webhooks (webhook-id / webhook-timestamp / webhook-signature)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from integration.sources.base import BadSignature


def hmac_digest(secret: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(secret, message, getattr(hashlib, algorithm)).digest()


def equal(expected: str | bytes, given: str | bytes) -> bool:
    """Constant-time comparison of two signatures."""
    a = expected.encode() if isinstance(expected, str) else expected
    b = given.encode() if isinstance(given, str) else given
    return hmac.compare_digest(a, b)


def check_window(timestamp_s: float, tolerance_s: float, now: float | None = None) -> None:
    """Reject a timestamp more than `tolerance_s` in the past or in the future."""
    now = time.time() if now is None else now
    if abs(now - timestamp_s) > tolerance_s:
        drift = int(now - timestamp_s)
        raise BadSignature(f"timestamp is {drift} s from now; at most {int(tolerance_s)} s allowed")


def standard_webhooks_secret_bytes(secret: str) -> bytes:
    """Standard Webhooks secrets are base64, usually prefixed `whsec_`."""
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise ValueError(
            "STANDARD_WEBHOOKS_SECRET must be base64 (optionally prefixed whsec_)"
        ) from exc


def verify_standard_webhook(
    secret: str,
    msg_id: str | None,
    timestamp: str | None,
    signature_header: str | None,
    body: bytes,
    tolerance_s: float = 300,
    now: float | None = None,
) -> None:
    """Verify per the Standard Webhooks spec: base64 HMAC-SHA256 of `id.timestamp.body`;
    the header holds space-separated `v1,<sig>` entries, any of which may match."""
    if not (msg_id and timestamp and signature_header):
        raise BadSignature("webhook-id, webhook-timestamp and webhook-signature are required")
    try:
        ts = int(timestamp)
    except ValueError:
        raise BadSignature("webhook-timestamp is not an integer") from None
    check_window(ts, tolerance_s, now)
    signed = f"{msg_id}.{ts}.".encode() + body
    expected = base64.b64encode(hmac_digest(standard_webhooks_secret_bytes(secret), signed))
    for entry in signature_header.split():
        version, _, value = entry.partition(",")
        if version == "v1" and equal(expected, value.encode()):
            return
    raise BadSignature("no webhook-signature entry matches")
