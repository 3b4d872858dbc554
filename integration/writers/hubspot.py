"""HubSpot writes through hubspot-api-client: companies updated in batches of 100, tasks created
in batches of 100 with their v4 association to the company and our key in a unique property,
every 207's errors[] read per record; a task whose create may have happened (a retry, a crash)
is looked up by its key first, so it is never created twice."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from hubspot import HubSpot
from hubspot.crm.objects import (
    AssociationSpec,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchReadInputSimplePublicObjectId,
    PublicAssociationsForObject,
    PublicObjectId,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectId,
)
from hubspot.crm.objects.exceptions import ApiException
from hubspot.oauth.exceptions import ApiException as OAuthApiException
from urllib3.util.retry import Retry

from expansion.settings import Settings
from integration.writers.engine import (
    NotAuthorized,
    Refused,
    Result,
    SessionExpired,
    TransientError,
)
from integration.writers.mapping import HubSpotOutbound
from integration.writers.plan import Write
from integration.writers.quota import Budget

BATCH_SIZE = 100  # HubSpot batch endpoints take at most 100 inputs
TRANSIENT_CATEGORIES = frozenset(
    {"RATE_LIMITS", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"}
)
# urllib3 retries only what is safe for any method: a connection that never reached HubSpot.
# Statuses (429, 5xx) are retried by the writer itself: its Retry default skips POST (a batch
# create is a POST) and would bypass the shared budget.
CONNECT_RETRY = Retry(total=3, connect=3, read=0, status=0, other=0, redirect=0)


class NotConfigured(ValueError):
    pass


class NotFound(Refused):
    """404: none of the records asked for exists."""


class HubSpotApi:
    """One portal. `send(phase, writes)`: phase `accounts`, `creates` or `updates` (tasks).
    `task_ids(keys)` reads tasks by our key: key -> HubSpot id of those that exist."""

    def __init__(self, settings: Settings, mapping: HubSpotOutbound, budget: Budget) -> None:
        oauth = settings.hubspot_refresh_token and settings.hubspot_oauth_client_id
        if not (settings.hubspot_access_token or oauth):
            raise NotConfigured(
                "HUBSPOT_ACCESS_TOKEN (or HUBSPOT_REFRESH_TOKEN and HUBSPOT_OAUTH_CLIENT_ID) "
                "is not set"
            )
        self.settings = settings
        self.mapping = mapping
        self.budget = budget
        self.calls = 0
        self.client = self._client(settings.hubspot_access_token)
        self.known_ids: dict[str, str] = {}  # task key -> HubSpot id, filled by the flush
        if not settings.hubspot_access_token:
            self.refresh()

    def _client(self, token: str | None) -> HubSpot:
        return HubSpot(
            access_token=token,
            host=self.settings.hubspot_api_host,
            ssl_ca_cert=self.settings.crm_ca_bundle,
            retry=CONNECT_RETRY,
        )

    def refresh(self) -> None:
        """With OAuth, a new access token from the refresh token; a private app's token does
        not expire (its 401 is retried once, then reported)."""
        settings = self.settings
        if not (settings.hubspot_refresh_token and settings.hubspot_oauth_client_id):
            return
        try:
            answer = self._call(
                self.client.oauth.tokens_api.create_with_http_info,
                grant_type="refresh_token",
                client_id=settings.hubspot_oauth_client_id,
                client_secret=settings.hubspot_client_secret,
                refresh_token=settings.hubspot_refresh_token,
            )
        except Refused as exc:
            raise NotAuthorized(
                f"the OAuth refresh was refused ({exc}); check HUBSPOT_OAUTH_CLIENT_ID, "
                "HUBSPOT_CLIENT_SECRET and HUBSPOT_REFRESH_TOKEN"
            ) from None
        self.client = self._client(answer.access_token)

    def batch_size(self, phase: str, total: int) -> int:
        return BATCH_SIZE

    def cost(self, phase: str, count: int) -> int:
        return 1

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        try:
            data, _status, headers = method(*args, **kwargs)
        except (ApiException, OAuthApiException) as exc:
            self._observe(exc.headers or {})
            raise _translate(exc) from None
        except OSError as exc:  # urllib3's connection errors after its own retries
            raise TransientError(f"{type(exc).__name__}: {exc}") from None
        self._observe(headers or {})
        return data

    def _observe(self, headers: Any) -> None:
        daily = _int(headers.get("X-HubSpot-RateLimit-Daily"))
        left = _int(headers.get("X-HubSpot-RateLimit-Daily-Remaining"))
        used = daily - left if daily is not None and left is not None else None
        remaining = _int(headers.get("X-HubSpot-RateLimit-Remaining"))
        if daily is not None or remaining is not None:
            self.budget.observe(used=used, total=daily, remaining=remaining)

    def send(self, phase: str, writes: Sequence[Write]) -> list[Result]:
        if phase == "accounts":
            return self._update(self.mapping.account.object, writes, [w.key for w in writes])
        if phase == "updates":
            ids = [self.known_ids.get(w.key, "") for w in writes]
            return self._update(self.mapping.task.object, writes, ids)
        return self._create_tasks(writes)

    def _update(self, obj: str, writes: Sequence[Write], ids: Sequence[str]) -> list[Result]:
        body = BatchInputSimplePublicObjectBatchInput(
            inputs=[
                SimplePublicObjectBatchInput(id=record_id, properties=_strings(w.fields))
                for w, record_id in zip(writes, ids, strict=True)
            ]
        )
        answer = self._call(self.client.crm.objects.batch_api.update_with_http_info, obj, body)
        done = {str(r.id) for r in answer.results or []}
        failures = _errors_by_id(answer)
        return [
            Result(w, crm_id=i)
            if i in done
            else _failure(
                w, failures.get(i) or failures.get("") or ("no result for this record", False)
            )
            for w, i in zip(writes, ids, strict=True)
        ]

    def _create_tasks(self, writes: Sequence[Write]) -> list[Result]:
        task = self.mapping.task
        association = task.association
        assert association is not None  # the mapping model requires it
        body = BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                SimplePublicObjectBatchInputForCreate(
                    properties={**_strings(w.fields), task.external_id: w.key},
                    associations=[
                        PublicAssociationsForObject(
                            to=PublicObjectId(id=w.parent_id),
                            types=[
                                AssociationSpec(
                                    association_category=association.category,
                                    association_type_id=association.type_id,
                                )
                            ],
                        )
                    ],
                )
                for w in writes
            ]
        )
        try:
            answer = self._call(
                self.client.crm.objects.batch_api.create_with_http_info, task.object, body
            )
        except Refused as exc:
            if "CONFLICT" not in str(exc) and "already" not in str(exc):
                raise
            answer = None  # some key exists already: read them below
        created = {}
        for record in (answer.results or []) if answer else []:
            key = (record.properties or {}).get(task.external_id)
            if key:
                created[key] = str(record.id)
        failures = _errors_by_id(answer) if answer else {}
        missing = [w.key for w in writes if w.key not in created]
        if missing:
            created.update(self.task_ids(missing))  # a conflict means it exists: that is success
        return [
            Result(w, crm_id=created[w.key])
            if w.key in created
            else _failure(w, failures.get("") or ("the task was not created", True))
            for w in writes
        ]

    def task_ids(self, keys: Sequence[str]) -> dict[str, str]:
        """key -> HubSpot id of the tasks that exist with these keys (batch read by the key)."""
        task = self.mapping.task
        found: dict[str, str] = {}
        for start in range(0, len(keys), BATCH_SIZE):
            body = BatchReadInputSimplePublicObjectId(
                id_property=task.external_id,
                inputs=[SimplePublicObjectId(id=k) for k in keys[start : start + BATCH_SIZE]],
                properties=[task.external_id],
                properties_with_history=[],
            )
            try:
                answer = self._call(
                    self.client.crm.objects.batch_api.read_with_http_info, task.object, body
                )
            except NotFound:
                continue  # none of these keys exists
            for record in answer.results or []:
                key = (record.properties or {}).get(task.external_id)
                if key:
                    found[key] = str(record.id)
        return found

    # --- reading the portal (mappings check) ---------------------------------------------------

    def properties(self, obj: str) -> dict[str, Any]:
        answer = self._call(self.client.crm.properties.core_api.get_all_with_http_info, obj)
        return {p.name: p for p in answer.results or []}


def _strings(fields: dict[str, Any]) -> dict[str, str]:
    return {name: "" if value is None else str(value) for name, value in fields.items()}


def _errors_by_id(answer: Any) -> dict[str, tuple[str, bool]]:
    """Record id -> (message, transient) from a 207's errors[]; "" for errors naming no id."""
    found: dict[str, tuple[str, bool]] = {}
    for error in getattr(answer, "errors", None) or []:
        text = f"{error.category}: {error.message}"
        transient = error.category in TRANSIENT_CATEGORIES
        ids = [i for values in (error.context or {}).values() for i in values]
        for record_id in ids or [""]:
            found.setdefault(str(record_id), (text, transient))
    return found


def _failure(write: Write, error: tuple[str, bool]) -> Result:
    return Result(write, error=error[0], transient=error[1], resend=error[1])


def _translate(exc: ApiException) -> Exception:
    body = _body(exc.body)
    text = f"{exc.status} {body.get('category') or ''}: {body.get('message') or exc.reason}".strip()
    headers = exc.headers or {}
    retry_after = _float(headers.get("Retry-After"))
    if exc.status == 401:
        return SessionExpired(text)
    if exc.status == 429:
        if body.get("policyName") == "DAILY":
            return TransientError(text, daily=True)
        interval = _int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"))
        fallback = interval / 1000 if interval else None
        return TransientError(
            text, retry_after if retry_after is not None else fallback, throttled=True
        )
    if exc.status >= 500 or exc.status == 0:
        return TransientError(text, retry_after)
    return NotFound(text) if exc.status == 404 else Refused(text)


def _body(raw: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {"message": str(raw)[:300]}
    return parsed if isinstance(parsed, dict) else {}


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
