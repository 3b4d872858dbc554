"""Product telemetry in Segment format (track / identify / group / page, single or batch),
signed with Segment's `X-Signature` or Standard Webhooks, normalized through the event mapping
in mappings/sources/segment.yaml."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Response
from pydantic import Field, model_validator

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
    json_body,
)
from integration.sources.signing import (
    equal,
    hmac_digest,
    standard_webhooks_secret_bytes,
    verify_standard_webhook,
)

MESSAGE_TYPES = frozenset({"track", "identify", "group", "page", "screen", "alias"})
ProductEvent = Literal[
    "user.invited",
    "feature.used",
    "teaser.clicked",
    "integration.connected",
    "limit.hit",
    "usage.reported",
    "nps.response",
]
Scalar = str | int | float | bool


class TrackMapping(StrictModel):
    """One track event name: the canonical event and where each data field is read from."""

    event: ProductEvent
    data: dict[str, str] = {}  # canonical field -> dotted path in the Segment message
    fixed: dict[str, Scalar] = {}  # canonical field -> constant value
    required: list[str] = []  # fields without which the event is not usable

    @model_validator(mode="after")
    def _required_fields_are_mapped(self) -> TrackMapping:
        unknown = [f for f in self.required if f not in self.data and f not in self.fixed]
        if unknown:
            raise ValueError(f"required fields {unknown} are not under data or fixed")
        return self


class CrmLink(StrictModel):
    trait: str
    crm: Literal["salesforce", "hubspot"]


class UserFields(StrictModel):
    """Where user.active reads each user attribute; the first path with a value wins."""

    email: list[str] = []
    department: list[str] = []
    title: list[str] = []


class SegmentMapping(StrictModel):
    account_id_paths: Annotated[list[str], Field(min_length=1)]
    group_crm_links: list[CrmLink] = []
    user_fields: UserFields = UserFields()
    track: dict[str, TrackMapping]


def mapping(settings: Settings) -> SegmentMapping:
    return cached_model(settings.mappings_dir / "sources" / "segment.yaml", SegmentMapping)


def sign(body: bytes, secret: str) -> dict[str, str]:
    """The headers Segment's webhook destination sends with `body` (used by tests and the demo)."""
    return {"X-Signature": hmac_digest(secret.encode(), body, "sha1").hex()}


def _uses_standard_webhooks(request: RawRequest) -> bool:
    return request.header("webhook-signature") is not None


class SegmentSource:
    name = "segment"
    content_types = ("application/json",)

    def check_configured(self, settings: Settings) -> None:
        if not (settings.segment_shared_secret or settings.standard_webhooks_secret):
            raise NotConfigured(
                "neither SEGMENT_SHARED_SECRET nor STANDARD_WEBHOOKS_SECRET is set; set the "
                "Segment webhook destination's shared secret or a whsec_ Standard Webhooks secret"
            )
        if settings.standard_webhooks_secret:
            try:
                standard_webhooks_secret_bytes(settings.standard_webhooks_secret)
            except ValueError as exc:
                raise NotConfigured(str(exc)) from None

    def verify(self, request: RawRequest, settings: Settings) -> None:
        if _uses_standard_webhooks(request):
            if not settings.standard_webhooks_secret:
                raise BadSignature("Standard Webhooks headers sent but none are accepted here")
            verify_standard_webhook(
                settings.standard_webhooks_secret,
                msg_id=request.header("webhook-id"),
                timestamp=request.header("webhook-timestamp"),
                signature_header=request.header("webhook-signature"),
                body=request.body,
            )
            return
        given = request.header("x-signature")
        if not given:
            raise BadSignature("X-Signature or Standard Webhooks (webhook-*) headers are required")
        if not settings.segment_shared_secret:
            raise BadSignature("X-Signature sent but no Segment shared secret is accepted here")
        expected = sign(request.body, settings.segment_shared_secret)["X-Signature"]
        if not equal(expected, given.strip().lower()):
            raise BadSignature("X-Signature does not match the body")

    def parse(self, request: RawRequest, settings: Settings) -> list[InboxItem]:
        body = json_body(request)
        if isinstance(body, list):  # Webhooks (Actions) with batching on sends a bare array
            body = {"batch": body}
        if not isinstance(body, dict):
            raise MalformedPayload("a Segment call must be a JSON object (or an array of them)")
        messages, batched = _messages(body)
        webhook_id = request.header("webhook-id") if _uses_standard_webhooks(request) else None
        received_at = request.received_at.isoformat()
        items = []
        for index, message in enumerate(messages):
            where = f"batch[{index}]" if batched else "the message"
            message = {"receivedAt": received_at, **message}
            items.append(
                InboxItem(
                    dedup_key=_dedup_key(message, where, webhook_id, index if batched else None),
                    event_type=_event_type(message, where),
                    occurred_at=_occurred_at(message, where),
                    payload=message,
                )
            )
        return items

    def normalize(self, item: dict[str, Any], event_type: str, settings: Settings) -> Normalized:
        handler = HANDLERS.get(item["type"])
        if handler is None:
            return Ignored(f"Segment {item['type']} calls are not used")
        return handler(item, _occurred_at(item, "the message"), mapping(settings))

    def acknowledge(self, items: list[InboxItem]) -> Response | None:
        return None


def _messages(body: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The calls in a body: one call, or a batch whose shared `context` each call inherits."""
    if "batch" not in body:
        return [body], False
    batch = body["batch"]
    if not isinstance(batch, list) or not all(isinstance(m, dict) for m in batch):
        raise MalformedPayload("`batch` must be a list of Segment call objects")
    shared = body.get("context") if isinstance(body.get("context"), dict) else {}
    if not shared:
        return batch, True
    return [{**m, "context": {**shared, **_object(m.get("context"))}} for m in batch], True


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dedup_key(
    message: dict[str, Any], where: str, webhook_id: str | None, index: int | None
) -> str:
    if message.get("messageId"):
        return str(message["messageId"])
    if webhook_id:
        return webhook_id if index is None else f"{webhook_id}#{index}"
    raise MalformedPayload(f"{where} has no messageId")


def _event_type(message: dict[str, Any], where: str) -> str:
    kind = message.get("type")
    if kind not in MESSAGE_TYPES:
        raise MalformedPayload(
            f"{where} has type {kind!r}; expected one of {', '.join(sorted(MESSAGE_TYPES))}"
        )
    if not (message.get("userId") or message.get("anonymousId")):
        raise MalformedPayload(f"{where} needs a userId or an anonymousId")
    if kind == "track" and not isinstance(message.get("event"), str):
        raise MalformedPayload(f"{where} is a track call without an event name")
    if kind == "group" and not message.get("groupId"):
        raise MalformedPayload(f"{where} is a group call without a groupId")
    return f"track:{message['event']}"[:128] if kind == "track" else kind


def _occurred_at(message: dict[str, Any], where: str) -> datetime:
    """When it happened: Segment's `timestamp`, else the client's, else when we received it."""
    for field in ("timestamp", "originalTimestamp", "receivedAt"):
        value = message.get(field)
        if not value:
            continue
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise MalformedPayload(f"{where} has an invalid {field}: {value!r}") from None
        if moment.tzinfo is None:
            raise MalformedPayload(f"{where} has a {field} without a time zone: {value!r}")
        return moment
    raise MalformedPayload(f"{where} has no timestamp")


def _path(message: dict[str, Any], dotted: str) -> Any:
    value: Any = message
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _first(message: dict[str, Any], paths: list[str]) -> Any:
    return next((v for p in paths if (v := _path(message, p)) not in (None, "")), None)


def _account_key(message: dict[str, Any], config: SegmentMapping) -> AccountKey | None:
    """The product account named in the message, else the user routed through its alias."""
    account_id = _first(message, config.account_id_paths)
    if account_id is not None:
        return AccountKey("product", str(account_id))
    if message.get("userId"):
        return AccountKey("product_user", str(message["userId"]))
    return None


def _domain(email: object) -> str | None:
    return email.rsplit("@", 1)[-1].lower() if isinstance(email, str) and "@" in email else None


def _user_active(
    message: dict[str, Any], key: AccountKey, occurred_at: datetime, config: SegmentMapping
) -> CanonicalEvent:
    fields = config.user_fields
    return CanonicalEvent(
        "user.active",
        key,
        occurred_at,
        {
            "user_id": str(message["userId"]),
            "email_domain": _domain(_first(message, fields.email)),
            "department": _first(message, fields.department),
            "title": _first(message, fields.title),
        },
    )


def _track(message: dict[str, Any], occurred_at: datetime, config: SegmentMapping) -> Normalized:
    name = message["event"]
    rule = config.track.get(name)
    if rule is None:
        return Ignored(f"Segment track event {name!r} is not mapped in sources/segment.yaml")
    key = _account_key(message, config)
    if key is None:
        return Ignored(f"Segment track event {name!r} names no account and no userId")
    data = {**{f: _path(message, p) for f, p in rule.data.items()}, **rule.fixed}
    missing = [f for f in rule.required if data.get(f) in (None, "")]
    if missing:
        paths = ", ".join(rule.data.get(f, f) for f in missing)
        raise NormalizationError(f"Segment track event {name!r} has no value at {paths}")
    events = [CanonicalEvent(rule.event, key, occurred_at, data)]
    if message.get("userId"):
        events.append(_user_active(message, key, occurred_at, config))
    return events


def _identify(message: dict[str, Any], occurred_at: datetime, config: SegmentMapping) -> Normalized:
    key = _account_key(message, config)
    if key is None or not message.get("userId"):
        return Ignored("Segment identify call for an anonymous user (no userId)")
    return [_user_active(message, key, occurred_at, config)]


def _group(message: dict[str, Any], occurred_at: datetime, config: SegmentMapping) -> Normalized:
    """A user joins a product account; the account's traits may name its CRM account."""
    account = AccountKey("product", str(message["groupId"]))
    traits = _object(message.get("traits"))
    links = tuple(
        AccountKey(link.crm, str(traits[link.trait]))
        for link in config.group_crm_links
        if traits.get(link.trait) not in (None, "")
    )
    aliases = (
        (Alias(AccountKey("product_user", str(message["userId"])), account),)
        if message.get("userId")
        else ()
    )
    return [
        CanonicalEvent(
            "account.linked",
            account,
            occurred_at,
            {"name": traits.get("name"), "plan": traits.get("plan")},
            links=links,
            aliases=aliases,
        )
    ]


HANDLERS = {"track": _track, "identify": _identify, "group": _group}

SOURCE = SegmentSource()
