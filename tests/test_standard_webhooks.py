"""Standard Webhooks signing and verification against the specification's published test vector
and the reference `standardwebhooks` library.

The vector (secret, msg id, timestamp, payload and expected signature) is the one in the
specification's reference library test suite: standard-webhooks/standard-webhooks,
libraries/python/tests/test_webhooks.py, `test_sign_function`; its `test_invalid_signature_*`
uses the same signature with the last character changed."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from integration.sources.base import BadSignature
from integration.sources.signing import sign_standard_webhook, verify_standard_webhook

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
PAYLOAD = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
TAMPERED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="


def verify(signature: str, *, secret: str = SECRET, now: float = TIMESTAMP, body=PAYLOAD):  # type: ignore[no-untyped-def]
    verify_standard_webhook(secret, MSG_ID, str(TIMESTAMP), signature, body, now=now)


def test_signer_reproduces_the_published_vector():
    assert sign_standard_webhook(SECRET, MSG_ID, TIMESTAMP, PAYLOAD) == EXPECTED


@pytest.mark.parametrize("secret", [SECRET, SECRET.removeprefix("whsec_")])
def test_published_vector_verifies_with_or_without_the_whsec_prefix(secret):
    verify(EXPECTED, secret=secret)


def test_published_vector_with_a_changed_signature_is_rejected():
    with pytest.raises(BadSignature):
        verify(TAMPERED)


def test_published_vector_with_a_changed_body_is_rejected():
    with pytest.raises(BadSignature):
        verify(EXPECTED, body=b'{"test": 2432232315}')


def test_any_v1_entry_may_match_and_other_versions_are_skipped():
    header = f"v1,{TAMPERED[3:]} v2,{EXPECTED[3:]} {EXPECTED} v1a,abc"
    verify(header)
    with pytest.raises(BadSignature):
        verify(f"v2,{EXPECTED[3:]}")


@pytest.mark.parametrize("offset", [-301, 301])
def test_timestamps_more_than_five_minutes_away_either_way_are_rejected(offset):
    with pytest.raises(BadSignature, match="timestamp"):
        verify(EXPECTED, now=TIMESTAMP - offset)


@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamps_up_to_five_minutes_away_are_accepted(offset):
    verify(EXPECTED, now=TIMESTAMP - offset)


@pytest.mark.parametrize(
    ("msg_id", "timestamp", "signature"),
    [(None, str(TIMESTAMP), EXPECTED), (MSG_ID, None, EXPECTED), (MSG_ID, str(TIMESTAMP), None)],
)
def test_missing_headers_are_rejected(msg_id, timestamp, signature):
    with pytest.raises(BadSignature, match="required"):
        verify_standard_webhook(SECRET, msg_id, timestamp, signature, PAYLOAD, now=TIMESTAMP)


def test_non_integer_timestamp_is_rejected():
    with pytest.raises(BadSignature, match="integer"):
        verify_standard_webhook(SECRET, MSG_ID, "hello", EXPECTED, PAYLOAD, now=TIMESTAMP)


def test_unpadded_base64_secret_is_accepted_like_the_reference_libraries():
    secret = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHM"  # "secret-key-for-tests", no padding
    signature = sign_standard_webhook(secret, MSG_ID, TIMESTAMP, PAYLOAD)
    verify(signature, secret=secret)


def test_secret_that_is_not_base64_is_a_configuration_error():
    with pytest.raises(ValueError, match="STANDARD_WEBHOOKS_SECRET"):
        sign_standard_webhook("whsec_not base64!", MSG_ID, TIMESTAMP, PAYLOAD)


def test_signatures_agree_with_the_reference_library_both_ways():
    standardwebhooks = pytest.importorskip("standardwebhooks")
    webhook = standardwebhooks.Webhook(SECRET)
    at = datetime.fromtimestamp(TIMESTAMP, UTC)
    assert webhook.sign(MSG_ID, at, PAYLOAD.decode()) == EXPECTED

    now = int(time.time())
    body = b'{"type":"track","event":"Feature Used"}'
    ours = sign_standard_webhook(SECRET, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now, body)
    headers = {
        "webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        "webhook-timestamp": str(now),
        "webhook-signature": ours,
    }
    assert webhook.verify(body, headers) == {"type": "track", "event": "Feature Used"}
    theirs = webhook.sign(
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", datetime.fromtimestamp(now, UTC), body.decode()
    )
    verify_standard_webhook(SECRET, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", str(now), theirs, body)
