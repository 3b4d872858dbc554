"""Salesforce Outbound Messages: the SOAP `notifications` envelope parsed safely, checked against
the configured org, one inbox item per Notification, answered with the SOAP Ack."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape, quoteattr

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring
from flask import Response
from pydantic import BeforeValidator

from expansion.mappings import MappingError, StrictModel, cached_model
from expansion.settings import Settings
from integration.canonical import AccountKey, Alias, CanonicalEvent, Ignored, Normalized
from integration.salesforce_ids import id18, is_id, same_id
from integration.sources.base import (
    BadSignature,
    InboxItem,
    MalformedPayload,
    NormalizationError,
    NotConfigured,
    RawRequest,
    UnknownTenant,
)
from integration.sources.signing import equal
from integration.writers.mapping import owned_fields

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
SOBJECT = "urn:sobject.enterprise.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS = 100
# A Flow HTTP callout can send this header; Outbound Messages cannot add headers at all.
SECRET_HEADER = "X-Expansion-Webhook-Secret"
# The record's version stamps: the data in a notification is at least as new as both.
TIMESTAMP_FIELDS = ("LastModifiedDate", "SystemModstamp")

ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>'
    f'<notificationsResponse xmlns="{OUTBOUND}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body></soapenv:Envelope>"
)


class UnsafeXml(MalformedPayload):
    code = "unsafe_xml"


# --- The mapping (mappings/sources/salesforce.yaml) -------------------------------------------

FieldType = Literal["text", "integer", "number", "boolean", "date", "datetime", "id"]


def _shorthand(value: object) -> object:
    return {"to": value} if isinstance(value, str) else value


class FieldSpec(StrictModel):
    to: str
    type: FieldType = "text"
    # For text: the org's picklist values -> ours; a value not listed is kept as sent.
    values: dict[str, str] = {}


class ObjectMapping(StrictModel):
    event: Literal[
        "account.changed", "contact.changed", "deal.closed", "task.changed", "ticket.changed"
    ]
    account_field: str = "AccountId"
    fields: dict[str, Annotated[FieldSpec, BeforeValidator(_shorthand)]] = {}
    links: dict[str, Literal["stripe", "chargebee", "product", "hubspot"]] = {}
    only_when: dict[str, list[str]] = {}
    require: list[str] = []


class SalesforceMapping(StrictModel):
    system_fields: list[str]
    objects: dict[str, ObjectMapping]


def mapping(settings: Settings) -> SalesforceMapping:
    path = settings.mappings_dir / "sources" / "salesforce.yaml"
    loaded = cached_model(path, SalesforceMapping)
    owned = owned_fields(settings, "salesforce")
    problems = [
        f"objects.{name}.{part}.{field}: {field} is written by this project (outbound.account."
        "fields of mappings/salesforce.yaml) and never read back"
        for name, obj in loaded.objects.items()
        for part, names in (("fields", obj.fields), ("links", obj.links))
        for field in names
        if field in owned
    ]
    if problems:
        raise MappingError(path, problems)
    return loaded


# --- Parsing the envelope --------------------------------------------------------------------


def _document(body: bytes) -> Element:
    try:
        return fromstring(body, forbid_dtd=True)
    except DTDForbidden:
        raise UnsafeXml("XML with a document type declaration (DTD) is refused") from None
    except EntitiesForbidden:
        raise UnsafeXml("XML entity declarations are refused") from None
    except ExternalReferenceForbidden:
        raise UnsafeXml("XML external references are refused") from None
    except ParseError as exc:
        raise MalformedPayload(f"body is not well-formed XML: {exc}") from None


def _notifications_element(root: Element) -> Element:
    body = root.find(f"{{{SOAP_ENV}}}Body") if root.tag == f"{{{SOAP_ENV}}}Envelope" else None
    found = body.find(f"{{{OUTBOUND}}}notifications") if body is not None else None
    if found is None:
        raise MalformedPayload(
            f'expected a SOAP 1.1 Envelope whose Body holds <notifications xmlns="{OUTBOUND}">'
        )
    return found


def _required_text(parent: Element, name: str, where: str) -> str:
    child = parent.find(f"{{{OUTBOUND}}}{name}")
    text = (child.text or "").strip() if child is not None else ""
    if not text:
        raise MalformedPayload(f"{where} has no {name}")
    return text


def _field_value(element: Element) -> str | None:
    if element.get(f"{{{XSI}}}nil") == "true":
        return None
    return element.text or ""


def _notification(element: Element) -> tuple[str, str, dict[str, str | None]]:
    notification_id = _required_text(element, "Id", "a Notification")
    sobject = element.find(f"{{{OUTBOUND}}}sObject")
    if sobject is None:
        raise MalformedPayload(f"Notification {notification_id} has no sObject")
    sobject_type = (sobject.get(f"{{{XSI}}}type") or "").rpartition(":")[2]
    if not sobject_type:
        raise MalformedPayload(f"the sObject of Notification {notification_id} has no xsi:type")
    fields = {child.tag.rpartition("}")[2]: _field_value(child) for child in sobject}
    return notification_id, sobject_type, fields


def parse_datetime(value: str) -> datetime:
    """A Salesforce dateTime (`2026-05-12T14:03:22.000Z`) as an aware UTC datetime."""
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return moment.astimezone(UTC)


def version_stamp(fields: dict[str, str | None]) -> datetime | None:
    """The latest of the record's version stamps the notification carries (ValueError when one
    is not a dateTime)."""
    return max(
        (parse_datetime(value) for name in TIMESTAMP_FIELDS if (value := fields.get(name))),
        default=None,
    )


# --- The source ------------------------------------------------------------------------------


class SalesforceSource:
    name = "salesforce"
    # Salesforce sends SOAP 1.1 as text/xml; a Flow HTTP callout may be set to application/xml.
    content_types = ("text/xml", "application/xml")

    def check_configured(self, settings: Settings) -> None:
        org_id = settings.salesforce_org_id
        if not org_id:
            raise NotConfigured(
                "SALESFORCE_ORG_ID is not set; set it to the org's id "
                "(Setup > Company Information > Salesforce.com Organization ID)"
            )
        for variable, value in (
            ("SALESFORCE_ORG_ID", org_id),
            ("SALESFORCE_INTEGRATION_USER_ID", settings.salesforce_integration_user_id),
        ):
            if value and not is_id(value):
                raise NotConfigured(f"{variable} must be a 15- or 18-character Salesforce id")

    def verify(self, request: RawRequest, settings: Settings) -> None:
        secret = settings.salesforce_shared_secret
        if not secret:
            return
        given = request.header(SECRET_HEADER)
        if not given:
            raise BadSignature(f"the {SECRET_HEADER} header is missing")
        if not equal(secret, given):
            raise BadSignature(f"the {SECRET_HEADER} header does not match")

    def parse(self, request: RawRequest, settings: Settings) -> list[InboxItem]:
        notifications = _notifications_element(_document(request.body))
        org_id = _required_text(notifications, "OrganizationId", "notifications")
        if not same_id(org_id, settings.salesforce_org_id or ""):
            raise UnknownTenant(
                f"OrganizationId {org_id} is not the org this endpoint serves (SALESFORCE_ORG_ID)"
            )
        action_id = _required_text(notifications, "ActionId", "notifications")
        elements = notifications.findall(f"{{{OUTBOUND}}}Notification")
        if not 1 <= len(elements) <= MAX_NOTIFICATIONS:
            raise MalformedPayload(
                f"notifications holds {len(elements)} Notification elements; "
                f"1 to {MAX_NOTIFICATIONS} expected"
            )
        items = []
        for element in elements:
            notification_id, sobject_type, fields = _notification(element)
            try:
                stamp = version_stamp(fields)
            except ValueError as exc:
                raise MalformedPayload(f"Notification {notification_id}: {exc}") from None
            items.append(
                InboxItem(
                    dedup_key=notification_id,
                    event_type=sobject_type,
                    occurred_at=stamp or request.received_at,
                    # The SessionId is a live Salesforce session: it is never stored.
                    payload={
                        "organization_id": org_id,
                        "action_id": action_id,
                        "notification_id": notification_id,
                        "sobject_type": sobject_type,
                        "fields": fields,
                        "received_at": request.received_at.isoformat(),
                    },
                )
            )
        return items

    def normalize(self, item: dict[str, Any], event_type: str, settings: Settings) -> Normalized:
        config = mapping(settings)
        obj = config.objects.get(event_type)
        if obj is None:
            return Ignored(
                f"Salesforce {event_type} notifications are not mapped in sources/salesforce.yaml"
            )
        fields = item.get("fields")
        if not isinstance(fields, dict):
            raise NormalizationError("Salesforce notification payload has no fields object")
        record = Record(event_type, fields, _occurred_at(item, fields))
        reason = _echo(record, config, settings) or _skipped(record, obj)
        if reason:
            return Ignored(reason)
        return NORMALIZERS[obj.event](record, obj)

    def acknowledge(self, items: list[InboxItem]) -> Response | None:
        return Response(ACK, status=200, content_type="text/xml; charset=utf-8")


# --- Normalization ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One notified record: its type, the fields the Outbound Message carried, and as of when."""

    sobject_type: str
    fields: dict[str, str | None]
    occurred_at: datetime

    def id_field(self, name: str) -> str | None:
        value = self.fields.get(name)
        if not value:
            return None
        try:
            return id18(value)
        except ValueError:
            raise NormalizationError(
                f"{self.sobject_type} field {name}: {value!r} is not a Salesforce id"
            ) from None

    @property
    def id(self) -> str:
        record_id = self.id_field("Id")
        if record_id is None:
            raise NormalizationError(f"{self.sobject_type} notification has no Id field")
        return record_id


def _occurred_at(item: dict[str, Any], fields: dict[str, str | None]) -> datetime:
    try:
        return version_stamp(fields) or parse_datetime(str(item["received_at"]))
    except (KeyError, ValueError) as exc:
        raise NormalizationError(
            f"Salesforce notification has no usable timestamp: {exc}"
        ) from None


def _echo(record: Record, config: SalesforceMapping, settings: Settings) -> str | None:
    """Why this notification is our own write coming back (§3.5), or None."""
    user = settings.salesforce_integration_user_id
    modified_by = record.fields.get("LastModifiedById")
    if user and modified_by and same_id(modified_by, user):
        return f"echo: {record.sobject_type} last modified by the integration user {id18(user)}"
    changed = set(record.fields) - set(config.system_fields)
    if changed and changed <= owned_fields(settings, "salesforce"):
        return (
            f"echo: {record.sobject_type} notification carries only fields this project owns "
            f"({', '.join(sorted(changed))})"
        )
    return None


def _skipped(record: Record, obj: ObjectMapping) -> str | None:
    for name, accepted in obj.only_when.items():
        value = record.fields.get(name)
        if value not in accepted:
            return (
                f"{record.sobject_type} {record.fields.get('Id')}: {name} is {value!r}, "
                f"not {' or '.join(accepted)}"
            )
    for name in obj.require:
        if not record.fields.get(name):
            return (
                f"{record.sobject_type} {record.fields.get('Id')} has no {name} "
                "(required by sources/salesforce.yaml)"
            )
    return None


_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def _convert(record: Record, name: str, spec: FieldSpec) -> Any:
    value, kind = record.fields[name], spec.type
    if value is None or (kind != "text" and not value.strip()):
        return None
    try:
        if kind == "text":
            return spec.values.get(value, value)
        if kind == "id":
            return record.id_field(name)
        if kind == "boolean":
            return _BOOLEANS[value.strip().lower()]
        if kind == "integer":
            number = float(value)
            if not number.is_integer():
                raise ValueError("not a whole number")
            return int(number)
        if kind == "number":
            return float(value)
        if kind == "date":
            return date.fromisoformat(value.strip()).isoformat()
        return parse_datetime(value).isoformat()
    except (KeyError, ValueError):
        raise NormalizationError(
            f"{record.sobject_type} field {name}: {value!r} is not a valid {kind}"
        ) from None


def _data(record: Record, obj: ObjectMapping) -> dict[str, Any]:
    return {
        spec.to: _convert(record, name, spec)
        for name, spec in obj.fields.items()
        if name in record.fields
    }


def _account_key(record: Record, obj: ObjectMapping) -> AccountKey | Ignored:
    account_id = record.id_field(obj.account_field)
    if account_id is None:
        return Ignored(
            f"{record.sobject_type} {record.id} has no {obj.account_field}: "
            "it belongs to no account"
        )
    return AccountKey("salesforce", account_id)


def _account(record: Record, obj: ObjectMapping) -> Normalized:
    links = tuple(
        AccountKey(kind, value.strip())
        for name, kind in obj.links.items()
        if (value := record.fields.get(name)) and value.strip()
    )
    return [
        CanonicalEvent(
            "account.changed",
            AccountKey("salesforce", record.id),
            record.occurred_at,
            _data(record, obj),
            links=links,
        )
    ]


def _contact(record: Record, obj: ObjectMapping) -> Normalized:
    account = _account_key(record, obj)
    if isinstance(account, Ignored):
        return account
    contact = AccountKey("salesforce_contact", record.id)
    return [
        CanonicalEvent(
            "contact.changed",
            contact,
            record.occurred_at,
            {"contact_id": record.id, **_data(record, obj)},
            aliases=(Alias(contact, account),),
        )
    ]


def _account_record(record: Record, obj: ObjectMapping) -> Normalized:
    account = _account_key(record, obj)
    if isinstance(account, Ignored):
        return account
    return [CanonicalEvent(obj.event, account, record.occurred_at, _data(record, obj))]


def _ticket(record: Record, obj: ObjectMapping) -> Normalized:
    events = _account_record(record, obj)
    created = record.fields.get("CreatedDate")
    if isinstance(events, Ignored) or not created:
        return events
    if created != record.fields.get("LastModifiedDate"):
        return events
    (event,) = events
    return [CanonicalEvent("ticket.created", event.key, event.occurred_at, event.data)]


NORMALIZERS: dict[str, Callable[[Record, ObjectMapping], Normalized]] = {
    "account.changed": _account,
    "contact.changed": _contact,
    "deal.closed": _account_record,
    "task.changed": _account_record,
    "ticket.changed": _ticket,
}


# --- Rendering (tests, the demo and the CRM sandbox send real Outbound Messages) -------------

FieldValue = str | int | float | bool | datetime | None


def _render_value(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{value.microsecond // 1000:03d}Z"
        )
    return escape(str(value))


def _render_sobject(sobject_type: str, fields: dict[str, FieldValue]) -> list[str]:
    # Salesforce sends Id first and the other fields by name; empty fields are left out.
    names = sorted(fields, key=lambda name: (name != "Id", name))
    return [
        f'    <sObject xsi:type={quoteattr("sf:" + sobject_type)} xmlns:sf="{SOBJECT}">',
        *(
            f"     <sf:{name}>{_render_value(fields[name])}</sf:{name}>"
            for name in names
            if fields[name] is not None
        ),
        "    </sObject>",
    ]


def outbound_message(
    org_id: str,
    notifications: list[tuple[str, str, dict[str, FieldValue]]],
    *,
    action_id: str = "04k5g000000ExpSAAS",
    instance_url: str = "https://expansion-demo.my.salesforce.com",
    api_version: str = "62.0",
) -> bytes:
    """The Outbound Message Salesforce would POST for `(notification id, sObject type, fields)`
    triples, SessionId left out (the default when "Send Session ID" is off)."""
    org15 = id18(org_id)[:15]
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" '
        f'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="{XSI}">',
        " <soapenv:Body>",
        f'  <notifications xmlns="{OUTBOUND}">',
        f"   <OrganizationId>{escape(org_id)}</OrganizationId>",
        f"   <ActionId>{escape(action_id)}</ActionId>",
        '   <SessionId xsi:nil="true"/>',
        f"   <EnterpriseUrl>{instance_url}/services/Soap/c/{api_version}/{org15}</EnterpriseUrl>",
        f"   <PartnerUrl>{instance_url}/services/Soap/u/{api_version}/{org15}</PartnerUrl>",
    ]
    for notification_id, sobject_type, fields in notifications:
        lines += [
            "   <Notification>",
            f"    <Id>{escape(notification_id)}</Id>",
            *_render_sobject(sobject_type, fields),
            "   </Notification>",
        ]
    lines += ["  </notifications>", " </soapenv:Body>", "</soapenv:Envelope>"]
    return ("\n".join(lines) + "\n").encode()


SOURCE = SalesforceSource()
