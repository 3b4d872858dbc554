"""Signature primitives shared by the sources: HMACs, constant-time comparison and timestamp
windows, plus Standard Webhooks (webhook-id / webhook-timestamp / webhook-signature)."""

from __future__ import annotations

import base64
import hmac
import time

from integration.sources.base import BadSignature


def hmac_digest(secret: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.digest(secret, message, algorithm)


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
    """Standard Webhooks secrets are base64, usually prefixed `whsec_`; like the reference
    libraries, missing `=` padding is tolerated."""
    raw = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except ValueError as exc:
        raise ValueError(
            "STANDARD_WEBHOOKS_SECRET must be base64 (optionally prefixed whsec_)"
        ) from exc
    if not key:
        raise ValueError("STANDARD_WEBHOOKS_SECRET is empty")
    return key


def _standard_webhook_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return base64.b64encode(hmac_digest(key, f"{msg_id}.{timestamp}.".encode() + body))


def sign_standard_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value a Standard Webhooks sender puts on `body` (`v1,<base64>`)."""
    key = standard_webhooks_secret_bytes(secret)
    return "v1," + _standard_webhook_signature(key, msg_id, timestamp, body).decode()


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
    expected = _standard_webhook_signature(standard_webhooks_secret_bytes(secret), msg_id, ts, body)
    for entry in signature_header.split():
        version, _, value = entry.partition(",")
        if version == "v1" and equal(expected, value.encode()):
            return
    raise BadSignature("no webhook-signature entry matches")
