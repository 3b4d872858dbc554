"""Product telemetry in Segment format: X-Signature and Standard Webhooks verification, single
calls and batches, deduplication, the canonical events each fixture yields, and product events
parked until a group call links the product account to its CRM account."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from expansion.db import transaction
from expansion.mappings import MappingError
from expansion.models import account_links, canonical_events, inbox_events
from integration.app import create_app
from integration.canonical import AccountKey, Alias, CanonicalEvent, Ignored
from integration.sources.segment import SOURCE, sign
from integration.sources.signing import sign_standard_webhook
from tests.support import TEST_SECRETS, fixture_path, load_json_fixture
from workers import ingest

SEGMENT_SECRET = TEST_SECRETS["SEGMENT_SHARED_SECRET"]
STANDARD_SECRET = TEST_SECRETS["STANDARD_WEBHOOKS_SECRET"]
ACME = AccountKey("product", "acct_acme")
GLOBEX = AccountKey("product", "acct_globex")
ADA, GRACE, HANK = "usr_4F7acme_ada", "usr_4F7acme_grace", "usr_9Bglobex_hank"


def fixture_body(name: str) -> bytes:
    return fixture_path("segment", name).read_bytes()


def post(
    client, body: bytes, headers: dict[str, str] | None = None, content_type="application/json"
):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": content_type, **(headers or sign(body, SEGMENT_SECRET))}
    return client.post("/webhooks/segment", data=body, headers=headers)


def standard_headers(body: bytes, msg_id: str, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_standard_webhook(STANDARD_SECRET, msg_id, timestamp, body),
    }


def inbox_rows(settings):  # type: ignore[no-untyped-def]
    with transaction(settings) as conn:
        return conn.execute(select(inbox_events).order_by(inbox_events.c.id)).all()


def stored_events(settings):  # type: ignore[no-untyped-def]
    with transaction(settings) as conn:
        return conn.execute(
            select(canonical_events).order_by(canonical_events.c.inbox_id, canonical_events.c.seq)
        ).all()


def deliver(client, settings, name: str) -> list[ingest.Outcome]:  # type: ignore[no-untyped-def]
    """Post a fixture signed like Segment would and ingest every row it stored."""
    before = {r.id for r in inbox_rows(settings)}
    assert post(client, fixture_body(name)).status_code == 200
    return [ingest.process(settings, r.id) for r in inbox_rows(settings) if r.id not in before]


def messages(name: str) -> list[dict[str, Any]]:
    body = load_json_fixture("segment", name)
    return body.get("batch", [body])


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


# --- verification -------------------------------------------------------------------------


def test_call_with_a_good_x_signature_is_stored(client, settings):
    response = post(client, fixture_body("track__feature_used.json"))
    assert response.status_code == 200
    assert response.get_json() == {"received": 1, "new": 1, "duplicates": 0}
    assert [(r.source, r.dedup_key, r.event_type) for r in inbox_rows(settings)] == [
        ("segment", "ajs-next-1b7f3c2e9d0a4c51b8a2f6e1d3c4b5a6", "track:Feature Used")
    ]


def test_x_signature_is_the_hex_hmac_sha1_of_the_body():
    # Computed independently: printf '%s' '{"type":"track"}' |
    #   openssl dgst -sha1 -hmac segment-shared-secret
    body = b'{"type":"track"}'
    assert sign(body, SEGMENT_SECRET) == {"X-Signature": "d41a04064038d281ef9724df2beba323c950cdce"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Signature": ""},
        {"X-Signature": "0" * 40},
        sign(b"another body", SEGMENT_SECRET),
        sign(fixture_path("segment", "page.json").read_bytes(), "another-secret"),
    ],
)
def test_missing_or_bad_x_signature_is_401_and_not_stored(client, settings, headers):
    response = client.post(
        "/webhooks/segment",
        data=fixture_body("page.json"),
        headers={"Content-Type": "application/json", **headers},
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_signature"
    assert inbox_rows(settings) == []


def test_upper_case_x_signature_is_accepted(client):
    body = fixture_body("page.json")
    signature = sign(body, SEGMENT_SECRET)["X-Signature"].upper()
    assert post(client, body, {"X-Signature": signature}).status_code == 200


def test_standard_webhooks_signed_call_is_stored(client, settings):
    body = fixture_body("identify.json")
    response = post(client, body, standard_headers(body, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"))
    assert response.status_code == 200
    assert [r.dedup_key for r in inbox_rows(settings)] == [
        "ajs-next-6a2c8b7d4e5f4ba6a3f7e1d6c8b9a0f1"
    ]


@pytest.mark.parametrize("offset", [-301, 301])
def test_standard_webhooks_timestamp_expired_or_in_the_future_is_401(client, settings, offset):
    body = fixture_body("identify.json")
    headers = standard_headers(body, "msg_1", int(time.time()) + offset)
    response = post(client, body, headers)
    assert response.status_code == 401
    assert "timestamp" in response.get_json()["detail"]
    assert inbox_rows(settings) == []


def test_standard_webhooks_signature_over_another_body_is_401(client, settings):
    headers = standard_headers(b'{"type":"identify"}', "msg_1")
    assert post(client, fixture_body("identify.json"), headers).status_code == 401
    assert inbox_rows(settings) == []


def test_each_scheme_needs_its_own_secret(settings):
    body = fixture_body("identify.json")
    only_segment = create_app(replace(settings, standard_webhooks_secret=None)).test_client()
    assert post(only_segment, body, standard_headers(body, "msg_1")).status_code == 401
    only_standard = create_app(replace(settings, segment_shared_secret=None)).test_client()
    assert post(only_standard, body).status_code == 401
    assert post(only_standard, body, standard_headers(body, "msg_1")).status_code == 200


def test_neither_secret_set_is_503_naming_both(settings):
    client = create_app(
        replace(settings, segment_shared_secret=None, standard_webhooks_secret=None)
    ).test_client()
    response = post(client, fixture_body("identify.json"))
    assert response.status_code == 503
    detail = response.get_json()["detail"]
    assert "SEGMENT_SHARED_SECRET" in detail and "STANDARD_WEBHOOKS_SECRET" in detail
    assert inbox_rows(settings) == []


def test_a_standard_webhooks_secret_that_is_not_base64_is_503(settings):
    client = create_app(
        replace(settings, standard_webhooks_secret="whsec_not base64!")
    ).test_client()
    response = post(client, fixture_body("identify.json"))
    assert response.status_code == 503
    assert "STANDARD_WEBHOOKS_SECRET" in response.get_json()["detail"]


# --- parsing and deduplication ------------------------------------------------------------


def test_wrong_content_type_is_415(client, settings):
    body = fixture_body("identify.json")
    response = post(client, body, sign(body, SEGMENT_SECRET), content_type="text/plain")
    assert response.status_code == 415
    assert inbox_rows(settings) == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"type": "track", ', "not valid JSON"),
        (b'"track"', "must be a JSON object (or an array of them)"),
        (b'[{"type": "identify", "userId": "u1"}]', "batch[0] has no messageId"),
        (b'{"batch": {"type": "track"}}', "`batch` must be a list"),
        (b'{"type": "flush", "userId": "u1", "messageId": "m1"}', "has type 'flush'"),
        (b'{"type": "track", "event": "Feature Used", "messageId": "m1"}', "userId or an"),
        (b'{"type": "track", "userId": "u1", "messageId": "m1"}', "without an event name"),
        (b'{"type": "group", "userId": "u1", "messageId": "m1"}', "without a groupId"),
        (b'{"type": "identify", "userId": "u1"}', "the message has no messageId"),
        (
            b'{"type": "identify", "userId": "u1", "messageId": "m1", "timestamp": "yesterday"}',
            "invalid timestamp",
        ),
        (
            b'{"batch": [{"type": "identify", "userId": "u1", "messageId": "m1"},'
            b' {"type": "track", "userId": "u1", "messageId": "m2"}]}',
            "batch[1] is a track call without an event name",
        ),
    ],
)
def test_malformed_calls_are_400_naming_the_problem(client, settings, body, detail):
    response = post(client, body)
    assert response.status_code == 400
    assert response.get_json()["error"] == "malformed_payload"
    assert detail in response.get_json()["detail"]
    assert inbox_rows(settings) == []


def test_redelivered_call_is_acknowledged_and_stored_once(client, settings):
    body = fixture_body("track__nps_survey_responded.json")
    assert post(client, body).get_json() == {"received": 1, "new": 1, "duplicates": 0}
    assert post(client, body).get_json() == {"received": 1, "new": 0, "duplicates": 1}
    assert len(inbox_rows(settings)) == 1


def test_batch_with_one_already_stored_call_stores_only_the_new_one(client, settings):
    assert post(client, fixture_body("batch.json")).get_json()["new"] == 3
    again = {"batch": [messages("batch.json")[1], *messages("track__plan_limit_hit.json")]}
    response = post(client, json.dumps(again).encode())
    assert response.get_json() == {"received": 2, "new": 1, "duplicates": 1}
    assert [r.event_type for r in inbox_rows(settings)] == [
        "identify",
        "track:Feature Used",
        "track:Integration Connected",
        "track:Plan Limit Hit",
    ]


def test_bare_array_from_webhooks_actions_batching_is_a_batch(client, settings):
    body = json.dumps(messages("batch.json")).encode()
    assert post(client, body).get_json() == {"received": 3, "new": 3, "duplicates": 0}


def test_batch_context_is_inherited_by_each_call(client, settings):
    post(client, fixture_body("batch.json"))
    library = {"name": "@segment/analytics-node", "version": "2.2.1"}
    payloads = [json.loads(r.payload) for r in inbox_rows(settings)]
    assert [p["context"]["library"] for p in payloads] == [library] * 3
    assert payloads[1]["context"]["groupId"] == "acct_globex"


def test_standard_webhooks_batch_without_message_ids_dedups_on_webhook_id_and_index(
    client, settings
):
    body = fixture_body("batch__without_message_ids.json")
    first = post(client, body, standard_headers(body, "msg_2LbhGx0b1J6gOWfHwbN8"))
    assert first.get_json() == {"received": 2, "new": 2, "duplicates": 0}
    assert [r.dedup_key for r in inbox_rows(settings)] == [
        "msg_2LbhGx0b1J6gOWfHwbN8#0",
        "msg_2LbhGx0b1J6gOWfHwbN8#1",
    ]
    # A retry keeps the webhook-id and gets a fresh timestamp and signature.
    retry = post(client, body, standard_headers(body, "msg_2LbhGx0b1J6gOWfHwbN8"))
    assert retry.get_json() == {"received": 2, "new": 0, "duplicates": 2}


def test_standard_webhooks_single_call_without_message_id_dedups_on_webhook_id(client, settings):
    message = {**messages("identify.json")[0]}
    del message["messageId"]
    body = json.dumps(message).encode()
    assert post(client, body, standard_headers(body, "msg_single")).status_code == 200
    assert [r.dedup_key for r in inbox_rows(settings)] == ["msg_single"]


# --- normalization ------------------------------------------------------------------------


def user_active(key: AccountKey, when: str, user: str = ADA, **attributes) -> CanonicalEvent:  # type: ignore[no-untyped-def]
    data = {"user_id": user, "email_domain": None, "department": None, "title": None}
    return CanonicalEvent("user.active", key, at(when), {**data, **attributes})


FEATURE = "2026-01-05T14:03:11.482Z"
NO_ACCOUNT = "2026-01-05T15:20:00.000Z"
EXPECTED: dict[str, list[list[CanonicalEvent] | Ignored]] = {
    "track__feature_used.json": [
        [
            CanonicalEvent(
                "feature.used",
                ACME,
                at(FEATURE),
                {
                    "feature": "advanced_reports",
                    "tier": "scale",
                    "category": "analytics",
                    "user_id": ADA,
                },
            ),
            user_active(ACME, FEATURE, email_domain="acme.example", department="Finance"),
        ]
    ],
    "track__feature_used__no_account.json": [
        [
            CanonicalEvent(
                "feature.used",
                AccountKey("product_user", GRACE),
                at(NO_ACCOUNT),
                {"feature": "bulk_export", "tier": "growth", "category": "data", "user_id": GRACE},
            ),
            user_active(AccountKey("product_user", GRACE), NO_ACCOUNT, user=GRACE),
        ]
    ],
    "track__user_invited.json": [
        [
            CanonicalEvent(
                "user.invited",
                ACME,
                at("2026-01-06T09:12:45.120Z"),
                {"invitee_role": "member", "invited_by": ADA},
            ),
            user_active(ACME, "2026-01-06T09:12:45.120Z"),
        ]
    ],
    # The account id comes from properties.account_id here (second configured path).
    "track__upgrade_teaser_clicked.json": [
        [
            CanonicalEvent(
                "teaser.clicked",
                ACME,
                at("2026-01-06T10:01:02.003Z"),
                {"feature": "sso_saml", "tier": "enterprise", "user_id": ADA},
            ),
            user_active(ACME, "2026-01-06T10:01:02.003Z"),
        ]
    ],
    # ... and from context.traits.account_id here.
    "track__integration_connected.json": [
        [
            CanonicalEvent(
                "integration.connected",
                ACME,
                at("2026-01-07T16:45:30.000Z"),
                {"integration": "salesforce", "category": "crm"},
            ),
            user_active(ACME, "2026-01-07T16:45:30.000Z"),
        ]
    ],
    "track__plan_limit_hit.json": [
        [
            CanonicalEvent(
                "limit.hit",
                ACME,
                at("2026-01-08T11:30:00.000Z"),
                {"limit": "seats", "usage": 50, "cap": 50},
            ),
            user_active(ACME, "2026-01-08T11:30:00.000Z"),
        ]
    ],
    # Reported by a backend job (anonymousId only): no user.active.
    "track__api_calls_reported.json": [
        [
            CanonicalEvent(
                "usage.reported",
                ACME,
                at("2026-01-31T23:59:59.000Z"),
                {"metric": "api_calls", "value": 184250, "period": "2026-01"},
            )
        ]
    ],
    "track__usage_reported.json": [
        [
            CanonicalEvent(
                "usage.reported",
                ACME,
                at("2026-01-31T23:59:59.000Z"),
                {"metric": "storage_gb", "value": 412.5, "period": "2026-01"},
            )
        ]
    ],
    "track__nps_survey_responded.json": [
        [
            CanonicalEvent(
                "nps.response",
                ACME,
                at("2026-01-09T13:14:15.161Z"),
                {"score": 9, "comment": "Reports save our team hours every week.", "user_id": ADA},
            ),
            user_active(ACME, "2026-01-09T13:14:15.161Z"),
        ]
    ],
    "track__report_exported.json": [
        Ignored("Segment track event 'Report Exported' is not mapped in sources/segment.yaml")
    ],
    "identify.json": [
        [
            user_active(
                AccountKey("product_user", ADA),
                "2026-01-05T14:00:02.000Z",
                email_domain="acme.example",
                department="Finance",
                title="VP Finance",
            )
        ]
    ],
    "group.json": [
        [
            CanonicalEvent(
                "account.linked",
                ACME,
                at("2026-01-05T15:25:00.000Z"),
                {"name": "Acme Corp", "plan": "growth"},
                links=(AccountKey("salesforce", "0015g00000AcmeQAAR"),),
                aliases=(Alias(AccountKey("product_user", GRACE), ACME),),
            )
        ]
    ],
    "page.json": [Ignored("Segment page calls are not used")],
    "batch.json": [
        [
            user_active(
                AccountKey("product_user", HANK),
                "2026-01-10T08:00:00.000Z",
                user=HANK,
                email_domain="globex.example",
                department="Operations",
                title="Director of Operations",
            )
        ],
        [
            CanonicalEvent(
                "feature.used",
                GLOBEX,
                at("2026-01-10T08:05:00.000Z"),
                {
                    "feature": "workflows",
                    "tier": "scale",
                    "category": "automation",
                    "user_id": HANK,
                },
            ),
            user_active(GLOBEX, "2026-01-10T08:05:00.000Z", user=HANK),
        ],
        [
            CanonicalEvent(
                "integration.connected",
                GLOBEX,
                at("2026-01-10T08:06:00.000Z"),
                {"integration": "slack", "category": "messaging"},
            ),
            user_active(GLOBEX, "2026-01-10T08:06:00.000Z", user=HANK),
        ],
    ],
}


def test_every_fixture_has_an_expectation():
    names = {p.name for p in fixture_path("segment", "x").parent.glob("*.json")}
    assert names - set(EXPECTED) == {"batch__without_message_ids.json"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_normalizes_to_exactly_these_events(settings, name):
    got = [SOURCE.normalize(m, m["type"], settings) for m in messages(name)]
    assert got == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_is_ingested_into_exactly_these_stored_events(client, settings, name):
    outcomes = deliver(client, settings, name)
    expected = EXPECTED[name]
    assert [(o.status, o.detail) for o in outcomes] == [
        ("ignored", e.reason) if isinstance(e, Ignored) else ("processed", "") for e in expected
    ]
    events = [e for group in expected if not isinstance(group, Ignored) for e in group]
    assert [(r.type, r.key_kind, r.key_value, r.data) for r in stored_events(settings)] == [
        (e.type, e.key.kind, e.key.value, e.data) for e in events
    ]


def test_product_events_are_parked_until_the_group_call_links_the_crm_account(client, settings):
    deliver(client, settings, "track__feature_used__no_account.json")  # by userId only
    deliver(client, settings, "track__feature_used.json")  # by context.groupId
    assert {r.status for r in stored_events(settings)} == {"parked"}

    assert [o.status for o in deliver(client, settings, "group.json")] == ["processed"]
    rows = stored_events(settings)
    assert [(r.type, r.key_kind, r.status) for r in rows] == [
        ("feature.used", "product_user", "applied"),
        ("user.active", "product_user", "applied"),
        ("feature.used", "product", "applied"),
        ("user.active", "product", "applied"),
        ("account.linked", "product", "applied"),
    ]
    assert len({r.account_id for r in rows}) == 1
    with transaction(settings) as conn:
        links = conn.execute(select(account_links.c.kind, account_links.c.external_id)).all()
    assert sorted(links) == [("product", "acct_acme"), ("salesforce", "0015g00000AcmeQAAR")]


def test_anonymous_identify_is_ignored(settings):
    message = {**messages("identify.json")[0]}
    del message["userId"]
    assert SOURCE.normalize(message, "identify", settings) == Ignored(
        "Segment identify call for an anonymous user (no userId)"
    )


def test_mapped_event_missing_a_required_property_goes_to_the_dead_letter(client, settings):
    message = {**messages("track__nps_survey_responded.json")[0], "properties": {"comment": "?"}}
    assert post(client, json.dumps(message).encode()).status_code == 200
    (row,) = inbox_rows(settings)
    outcome = ingest.process(settings, row.id)
    assert outcome.status == "dead"
    assert "properties.score" in outcome.detail


def test_mapping_errors_name_the_file_and_key_path(settings, tmp_path):
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "segment.yaml").write_text(
        "account_id_paths: [context.groupId]\n"
        "track:\n"
        "  Feature Used: {event: feature.used, data: {feature: properties.feature},"
        " required: [tier]}\n"
        "  Seat Added: {event: seat.added}\n"
    )
    message = messages("track__feature_used.json")[0]
    with pytest.raises(MappingError) as error:
        SOURCE.normalize(message, "track", replace(settings, mappings_dir=tmp_path))
    text = str(error.value)
    assert "segment.yaml" in text
    assert "track.Feature Used" in text and "tier" in text
    assert "track.Seat Added.event" in text
