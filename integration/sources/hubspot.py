"""HubSpot webhooks: v3 signature verification (v1/v2 only when configured), one inbox item per
event of the batch, and normalization driven by mappings/sources/hubspot.yaml."""

from __future__ import annotations

import base64
import hashlib
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Literal

from flask import Response
from pydantic import field_validator

from expansion.mappings import StrictModel, cached_model
from expansion.settings import Settings
from integration.canonical import AccountKey, Alias, CanonicalEvent, Ignored, Normalized
from integration.sources.base import (
    BadSignature,
    InboxItem,
    MalformedPayload,
    NormalizationError,
    NotConfigured,
    RawRequest,
    UnknownTenant,
    json_body,
)
from integration.sources.signing import check_window, equal, hmac_digest
from integration.writers.mapping import owned_fields

TOLERANCE_SECONDS = 300
# HubSpot decodes exactly these percent-encodings in the URI before signing v3 ("Validating
# requests from HubSpot"); every other encoding (%20, %26, %3D...) stays as sent.
URI_DECODES = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ENCODED = re.compile("|".join(URI_DECODES), re.IGNORECASE)

REQUIRED_KEYS = ("eventId", "subscriptionId", "portalId", "occurredAt", "subscriptionType")
# Further keys the events we act on cannot do without, by the action part of subscriptionType.
ACTION_KEYS = {
    "creation": ("objectId",),
    "propertyChange": ("objectId", "propertyName"),
    "associationChange": ("fromObjectId", "toObjectId"),
}
ASSOCIATION_FIELDS = (
    "associationType",
    "fromObjectId",
    "toObjectId",
    "isPrimaryAssociation",
    "associationRemoved",
)

ObjectName = Literal["company", "contact", "deal", "ticket", "task"]
KeyKind = Literal["hubspot", "hubspot_contact", "hubspot_deal", "hubspot_ticket", "hubspot_task"]
KEY_KINDS: dict[str, KeyKind] = {
    "company": "hubspot",
    "contact": "hubspot_contact",
    "deal": "hubspot_deal",
    "ticket": "hubspot_ticket",
    "task": "hubspot_task",
}


class PropertyField(StrictModel):
    field: str
    type: Literal["string", "number", "boolean", "datetime", "date"] = "string"
    # For booleans: values meaning true; a multi-select value ("A;B") is true if any part is.
    true_values: tuple[str, ...] = ("true",)
    # For strings: the portal's dropdown values -> ours; a value not listed is kept as sent.
    values: dict[str, str] = {}


class CompanyMapping(StrictModel):
    properties: dict[str, PropertyField]
    links: dict[str, Literal["stripe", "chargebee", "product", "salesforce"]] = {}


class PropertiesMapping(StrictModel):
    properties: dict[str, PropertyField]


class DealMapping(StrictModel):
    stage_property: str = "dealstage"
    won_stages: tuple[str, ...]
    lost_stages: tuple[str, ...]


class TaskMapping(StrictModel):
    status_property: str = "hs_task_status"
    completed_values: tuple[str, ...] = ("COMPLETED",)


class Inbound(StrictModel):
    object_type_ids: dict[str, ObjectName]
    company: CompanyMapping
    contact: PropertiesMapping
    deal: DealMapping
    ticket: PropertiesMapping
    task: TaskMapping
    associations: dict[str, tuple[KeyKind, KeyKind]]
    primary_associations_only: bool = True

    @field_validator("associations")
    @classmethod
    def _one_company_side(
        cls, associations: dict[str, tuple[KeyKind, KeyKind]]
    ) -> dict[str, tuple[KeyKind, KeyKind]]:
        wrong = [name for name, sides in associations.items() if sides.count("hubspot") != 1]
        if wrong:
            raise ValueError(f"exactly one side must be the company (hubspot) in {wrong}")
        return associations


class HubSpotMapping(StrictModel):
    inbound: Inbound


def mapping(settings: Settings) -> Inbound:
    return cached_model(settings.mappings_dir / "sources" / "hubspot.yaml", HubSpotMapping).inbound


def decode_uri(uri: str) -> str:
    """The URI as HubSpot signs it (v3): only the listed percent-encodings decoded."""
    return _ENCODED.sub(lambda match: URI_DECODES[match.group(0).upper()], uri)


def v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: int | str) -> str:
    message = f"{method}{decode_uri(uri)}".encode() + body + str(timestamp).encode()
    return base64.b64encode(hmac_digest(secret.encode(), message)).decode()


def v1_signature(secret: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + body).hexdigest()


def v2_signature(secret: str, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256(f"{secret}{method}{uri}".encode() + body).hexdigest()


def sign_request(
    body: bytes, secret: str, url: str, method: str = "POST", timestamp_ms: int | None = None
) -> dict[str, str]:
    """The v3 headers HubSpot would send for `body` POSTed to `url` (tests, demo, sandbox)."""
    timestamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return {
        "X-HubSpot-Signature-v3": v3_signature(secret, method, url, body, timestamp),
        "X-HubSpot-Request-Timestamp": str(timestamp),
    }


def _verify_v3(request: RawRequest, secret: str) -> None:
    signature = request.header("x-hubspot-signature-v3") or ""
    timestamp = request.header("x-hubspot-request-timestamp") or ""
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise BadSignature("X-HubSpot-Request-Timestamp (epoch milliseconds) is missing or invalid")
    check_window(int(timestamp) / 1000, TOLERANCE_SECONDS)
    expected = v3_signature(secret, request.method, request.url, request.body, timestamp)
    if not equal(expected, signature):
        raise BadSignature("X-HubSpot-Signature-v3 does not match the method, URL, body and time")


def _verify_legacy(request: RawRequest, secret: str, accepted: bool) -> None:
    if not accepted:
        raise BadSignature(
            "HubSpot signature v3 is required (X-HubSpot-Signature-v3 and "
            "X-HubSpot-Request-Timestamp); v1/v2 are accepted only with HUBSPOT_ACCEPT_V1_V2=true"
        )
    version = (request.header("x-hubspot-signature-version") or "v1").lower()
    if version == "v1":
        expected = v1_signature(secret, request.body)
    elif version == "v2":
        expected = v2_signature(secret, request.method, request.url, request.body)
    else:
        raise BadSignature(f"X-HubSpot-Signature-Version {version!r} is not v1 or v2")
    if not equal(expected, (request.header("x-hubspot-signature") or "").lower()):
        raise BadSignature(f"X-HubSpot-Signature ({version}) does not match the request")


def _check_event(index: int, event: object) -> None:
    if not isinstance(event, dict):
        raise MalformedPayload(f"event [{index}] is not a JSON object")
    action = str(event.get("subscriptionType", "")).rpartition(".")[2]
    required = REQUIRED_KEYS + ACTION_KEYS.get(action, ())
    missing = [key for key in required if event.get(key) is None]
    if missing:
        raise MalformedPayload(f"event [{index}] is missing {', '.join(missing)}")
    if not isinstance(event["subscriptionType"], str):
        raise MalformedPayload(f"event [{index}] subscriptionType must be a string")
    if type(event["occurredAt"]) is not int:
        raise MalformedPayload(f"event [{index}] occurredAt must be epoch milliseconds")


def _check_portals(events: list[dict[str, Any]], settings: Settings) -> None:
    if not settings.hubspot_portal_ids:
        return
    unknown = sorted({str(e["portalId"]) for e in events} - set(settings.hubspot_portal_ids))
    if unknown:
        raise UnknownTenant(
            f"HubSpot portal {', '.join(unknown)} is not in HUBSPOT_PORTAL_ID; nothing was stored"
        )


def dedup_key(event: dict[str, Any]) -> str:
    """eventId alone is not unique: (portalId, subscriptionId, eventId, occurredAt, objectId,
    propertyName). Association events have no objectId; both ends and the flags stand in."""
    if event.get("objectId") is not None:
        obj = str(event["objectId"])
    else:
        obj = "|".join(str(event.get(name, "")) for name in ASSOCIATION_FIELDS)
    parts = ("portalId", "subscriptionId", "eventId", "occurredAt")
    return ":".join([*(str(event[p]) for p in parts), obj, str(event.get("propertyName") or "")])


def _occurred_at(event: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(event["occurredAt"] / 1000, UTC)


class HubSpotSource:
    name = "hubspot"
    content_types = ("application/json",)

    def check_configured(self, settings: Settings) -> None:
        if not settings.hubspot_client_secret:
            raise NotConfigured(
                "HUBSPOT_CLIENT_SECRET is not set; set it to your HubSpot app's client secret"
            )

    def verify(self, request: RawRequest, settings: Settings) -> None:
        secret = settings.hubspot_client_secret or ""
        if request.header("x-hubspot-signature-v3") is not None:
            _verify_v3(request, secret)
        elif request.header("x-hubspot-signature") is not None:
            _verify_legacy(request, secret, settings.hubspot_accept_v1_v2)
        else:
            raise BadSignature("X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp are missing")

    def parse(self, request: RawRequest, settings: Settings) -> list[InboxItem]:
        events = json_body(request)
        if not isinstance(events, list):
            raise MalformedPayload("a HubSpot webhook body must be a JSON array of events")
        for index, event in enumerate(events):
            _check_event(index, event)
        _check_portals(events, settings)
        return [InboxItem(dedup_key(e), e["subscriptionType"], _occurred_at(e), e) for e in events]

    def normalize(self, item: dict[str, Any], event_type: str, settings: Settings) -> Normalized:
        config = mapping(settings)
        echo = _echo_reason(item, owned_fields(settings, "hubspot"), settings.hubspot_app_id)
        if echo:
            return Ignored(echo)
        prefix, _, action = event_type.partition(".")
        if action == "associationChange":
            return _association(item, config)
        type_id = item.get("objectTypeId")
        obj = config.object_type_ids.get(str(type_id), "") if prefix == "object" else prefix
        normalizer = NORMALIZERS.get((obj, action))
        if normalizer is None:
            shown = f"{event_type} (objectTypeId {type_id})" if prefix == "object" else event_type
            return Ignored(f"HubSpot {shown} events are not mapped in sources/hubspot.yaml")
        return normalizer(item, config)

    def acknowledge(self, items: list[InboxItem]) -> Response | None:
        return None


def _echo_reason(item: dict[str, Any], owned: frozenset[str], app_id: str | None) -> str | None:
    """Our own writes come back as webhooks (SPEC §3.5): HubSpot names our app as the source
    (changeSource INTEGRATION, sourceId = app id) or the property is one we own."""
    source = str(item.get("sourceId") or "")
    if app_id and source == app_id:
        return f"echo: changed by this app (sourceId {source})"
    prop = item.get("propertyName")
    if prop in owned:
        return f"echo: {prop} is a property this project writes"
    return None


def _object_key(obj: str, item: dict[str, Any]) -> AccountKey:
    return AccountKey(KEY_KINDS[obj], str(item["objectId"]))


def _convert(spec: PropertyField, prop: str, raw: object) -> Any:
    if raw is None or raw == "":
        return None
    text = str(raw)
    try:
        return CONVERTERS[spec.type](text, spec)
    except ValueError:
        raise NormalizationError(
            f"property {prop} value {text!r} is not a {spec.type} as sources/hubspot.yaml says"
        ) from None


def _number(text: str, spec: PropertyField) -> int | float:
    try:
        return int(text)
    except ValueError:
        value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _boolean(text: str, spec: PropertyField) -> bool:
    return any(part.strip() in spec.true_values for part in text.split(";"))


def _datetime(text: str, spec: PropertyField) -> str:
    if text.isascii() and text.isdigit():
        moment = datetime.fromtimestamp(int(text) / 1000, UTC)
    else:
        moment = datetime.fromisoformat(text)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def _date(text: str, spec: PropertyField) -> str:
    """A date property: HubSpot sends midnight UTC in epoch milliseconds (or YYYY-MM-DD)."""
    if text.isascii() and text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC).date().isoformat()
    return date.fromisoformat(text[:10]).isoformat()


CONVERTERS: dict[str, Callable[[str, PropertyField], Any]] = {
    "string": lambda text, spec: spec.values.get(text, text),
    "number": _number,
    "boolean": _boolean,
    "datetime": _datetime,
    "date": _date,
}


def _mapped_change(
    obj: str, item: dict[str, Any], properties: dict[str, PropertyField]
) -> dict[str, Any] | Ignored:
    """`{field: value}` for a mapped property change, or why it is ignored."""
    prop = item["propertyName"]
    spec = properties.get(prop)
    if spec is None:
        return Ignored(f"{obj} property {prop} is not mapped in sources/hubspot.yaml")
    return {spec.field: _convert(spec, prop, item.get("propertyValue"))}


def _company_created(item: dict[str, Any], config: Inbound) -> Normalized:
    return [CanonicalEvent("account.linked", _object_key("company", item), _occurred_at(item))]


def _company_property(item: dict[str, Any], config: Inbound) -> Normalized:
    key = _object_key("company", item)
    prop, value = item["propertyName"], item.get("propertyValue")
    if prop in config.company.links:
        if not value:
            return Ignored(f"{prop} was cleared; a webhook never removes an account link")
        link = AccountKey(config.company.links[prop], str(value))
        return [CanonicalEvent("account.linked", key, _occurred_at(item), links=(link,))]
    change = _mapped_change("company", item, config.company.properties)
    if isinstance(change, Ignored):
        return change
    return [CanonicalEvent("account.changed", key, _occurred_at(item), change)]


def _contact_property(item: dict[str, Any], config: Inbound) -> Normalized:
    change = _mapped_change("contact", item, config.contact.properties)
    if isinstance(change, Ignored):
        return change
    key = _object_key("contact", item)
    data = {"contact_id": key.value, **change}
    return [CanonicalEvent("contact.changed", key, _occurred_at(item), data)]


def _deal_property(item: dict[str, Any], config: Inbound) -> Normalized:
    prop, stage = item["propertyName"], str(item.get("propertyValue") or "")
    if prop != config.deal.stage_property:
        return Ignored(f"deal property {prop} is not mapped in sources/hubspot.yaml")
    won, lost = stage in config.deal.won_stages, stage in config.deal.lost_stages
    if not (won or lost):
        return Ignored(f"deal stage {stage or '(empty)'} is neither won nor lost")
    key = _object_key("deal", item)
    data = {"deal_id": key.value, "won": won, "stage": stage}
    return [CanonicalEvent("deal.closed", key, _occurred_at(item), data)]


def _ticket_created(item: dict[str, Any], config: Inbound) -> Normalized:
    key = _object_key("ticket", item)
    return [CanonicalEvent("ticket.created", key, _occurred_at(item), {"ticket_id": key.value})]


def _ticket_property(item: dict[str, Any], config: Inbound) -> Normalized:
    change = _mapped_change("ticket", item, config.ticket.properties)
    if isinstance(change, Ignored):
        return change
    key = _object_key("ticket", item)
    data = {"ticket_id": key.value, **change}
    return [CanonicalEvent("ticket.changed", key, _occurred_at(item), data)]


def _task_property(item: dict[str, Any], config: Inbound) -> Normalized:
    prop, status = item["propertyName"], str(item.get("propertyValue") or "")
    if prop != config.task.status_property:
        return Ignored(f"task property {prop} is not mapped in sources/hubspot.yaml")
    if status not in config.task.completed_values:
        return Ignored(f"task status {status or '(empty)'} is not a completion")
    key = _object_key("task", item)
    data = {"task_id": key.value, "status": status}
    return [CanonicalEvent("task.changed", key, _occurred_at(item), data)]


def _association_type(item: dict[str, Any], config: Inbound) -> str:
    if item.get("associationType"):
        return str(item["associationType"])
    # Generic object.associationChange events name both ends by object type id instead.
    ends = [str(item.get(f"{end}ObjectTypeId")) for end in ("from", "to")]
    names = [config.object_type_ids.get(end, end) for end in ends]
    return f"{names[0]}_TO_{names[1]}".upper()


def _association(item: dict[str, Any], config: Inbound) -> Normalized:
    """A contact, deal, ticket or task associated with a company routes its key to the
    company's account: an identity-only account.linked carrying the alias."""
    name = _association_type(item, config)
    sides = config.associations.get(name)
    if sides is None:
        return Ignored(f"association {name} is not mapped in sources/hubspot.yaml")
    if item.get("associationRemoved"):
        return Ignored(f"association {name} removed; a key keeps its route until a new one")
    if config.primary_associations_only and item.get("isPrimaryAssociation") is False:
        return Ignored(f"association {name} is not the primary one")
    ends = (
        AccountKey(sides[0], str(item["fromObjectId"])),
        AccountKey(sides[1], str(item["toObjectId"])),
    )
    company, routed = ends if ends[0].kind == "hubspot" else ends[::-1]
    alias = Alias(routed, company)
    return [CanonicalEvent("account.linked", company, _occurred_at(item), aliases=(alias,))]


# (object, action) -> normalizer; association changes of any object go to _association.
NORMALIZERS: dict[tuple[str, str], Callable[[dict[str, Any], Inbound], Normalized]] = {
    ("company", "creation"): _company_created,
    ("company", "propertyChange"): _company_property,
    ("contact", "propertyChange"): _contact_property,
    ("deal", "propertyChange"): _deal_property,
    ("ticket", "creation"): _ticket_created,
    ("ticket", "propertyChange"): _ticket_property,
    ("task", "propertyChange"): _task_property,
}

SOURCE = HubSpotSource()
