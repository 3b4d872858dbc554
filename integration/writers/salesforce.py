"""Salesforce writes through simple-salesforce: sObject Collections upserts by external id (200
records a call) and Bulk API 2.0 above the mapping's `bulk_above`, with an OAuth client
credentials session from SALESFORCE_TOKEN_URL fetched again when it expires."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
)

from expansion.settings import Settings
from integration.writers.engine import (
    NotAuthorized,
    Refused,
    Result,
    SessionExpired,
    TransientError,
)
from integration.writers.mapping import SalesforceOutbound
from integration.writers.plan import Write
from integration.writers.quota import Budget

COLLECTION_SIZE = 200  # sObject Collections take at most 200 records a call
BULK_CALLS = 8  # create, upload, close, poll, job info, and the three result sets
# Per-record and per-call error codes that succeed when sent again later.
TRANSIENT_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "REQUEST_LIMIT_EXCEEDED",
        "SERVER_UNAVAILABLE",
        "API_TEMPORARILY_UNAVAILABLE",
    }
)
TIMEOUT_SECONDS = 60


class NotConfigured(ValueError):
    pass


class SalesforceApi:
    """One org. `send(phase, writes)`: phase `accounts`, `creates` or `updates` (tasks)."""

    def __init__(
        self,
        settings: Settings,
        mapping: SalesforceOutbound,
        budget: Budget,
        bulk_wait: float = 1.0,
    ) -> None:
        if not (settings.salesforce_client_id and settings.salesforce_client_secret):
            raise NotConfigured("SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET are not set")
        if not (settings.salesforce_token_url or settings.salesforce_instance_url):
            raise NotConfigured("SALESFORCE_INSTANCE_URL (or SALESFORCE_TOKEN_URL) is not set")
        self.settings = settings
        self.mapping = mapping
        self.budget = budget
        self.bulk_wait = bulk_wait
        self.calls = 0
        self.session = requests.Session()
        if settings.crm_ca_bundle:
            self.session.verify = settings.crm_ca_bundle
            # Else REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE in the environment would override it.
            self.session.trust_env = False
        self.session.hooks["response"].append(self._observe)
        self.last_response: requests.Response | None = None
        self._client: Salesforce | None = None

    @property
    def token_url(self) -> str:
        return self.settings.salesforce_token_url or (
            f"{self.settings.salesforce_instance_url}/services/oauth2/token"
        )

    def client(self) -> Salesforce:
        if self._client is None:
            self.refresh()
        return self._client  # type: ignore[return-value]

    def refresh(self) -> None:
        """A new access token (client credentials) and a client on it."""
        response = self.session.post(
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": self.settings.salesforce_client_id,
                "client_secret": self.settings.salesforce_client_secret,
            },
            timeout=TIMEOUT_SECONDS,
        )
        if response.status_code >= 500:
            raise TransientError(f"token endpoint answered {response.status_code}")
        if not response.ok:
            raise NotAuthorized(
                f"token request refused ({response.status_code}): {response.text[:200]}; check "
                "SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET and SALESFORCE_TOKEN_URL"
            )
        token = response.json()
        self._client = Salesforce(
            instance_url=token.get("instance_url") or self.settings.salesforce_instance_url,
            session_id=token["access_token"],
            session=self.session,
            version=self.settings.salesforce_api_version,
        )

    def _observe(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        self.calls += 1
        self.last_response = response
        used, total = _api_usage(response.headers.get("Sforce-Limit-Info"))
        if total is not None:
            self.budget.observe(used=used, total=total)

    # --- batches ------------------------------------------------------------------------------

    def bulk(self, phase: str, total: int) -> bool:
        return phase == "accounts" and total > self.mapping.bulk_above

    def batch_size(self, phase: str, total: int) -> int:
        return total if self.bulk(phase, total) else COLLECTION_SIZE

    def cost(self, phase: str, count: int) -> int:
        return BULK_CALLS if self.bulk(phase, count) else 1

    def send(self, phase: str, writes: Sequence[Write]) -> list[Result]:
        obj, key_field, records = self._records(phase, writes)
        try:
            if self.bulk(phase, len(writes)):
                return self._bulk(obj, key_field, writes, records)
            # Keyed by the record Id: an sObject Collections update; else an upsert by the
            # external id field.
            path = (
                "composite/sobjects"
                if key_field == "Id"
                else f"composite/sobjects/{obj}/{key_field}"
            )
            answer = self.client().restful(
                path,
                method="PATCH",
                json={"allOrNone": False, "records": records},
                timeout=TIMEOUT_SECONDS,
            )
        except SalesforceError as exc:
            raise self._translate(exc) from None
        except requests.RequestException as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from None
        return [_result(write, item) for write, item in zip(writes, answer or [], strict=True)]

    def _records(
        self, phase: str, writes: Sequence[Write]
    ) -> tuple[str, str, list[dict[str, Any]]]:
        if phase == "accounts":
            account = self.mapping.account
            return (
                account.object,
                account.external_id,
                [
                    {"attributes": {"type": account.object}, account.external_id: w.key, **w.fields}
                    for w in writes
                ],
            )
        task = self.mapping.task
        parent = task.account_field or ""
        return (
            task.object,
            task.external_id,
            [
                {
                    "attributes": {"type": task.object},
                    task.external_id: w.key,
                    **({parent: w.parent_id} if w.create else {}),
                    **w.fields,
                }
                for w in writes
            ],
        )

    def _bulk(
        self, obj: str, key_field: str, writes: Sequence[Write], records: list[dict[str, Any]]
    ) -> list[Result]:
        """One Bulk API 2.0 upsert job; results are read back per record by the key column."""
        columns = list(dict.fromkeys(name for r in records for name in r if name != "attributes"))
        rows = [{c: _bulk_value(r, c) for c in columns} for r in records]
        handler = getattr(self.client().bulk2, obj)
        try:
            if key_field == "Id":
                jobs = handler.update(records=rows, wait=self.bulk_wait)
            else:
                jobs = handler.upsert(
                    records=rows, external_id_field=key_field, wait=self.bulk_wait
                )
        except SalesforceOperationError as exc:
            raise TransientError(f"bulk job failed: {exc}") from None
        index = {w.key: w for w in writes}
        by_key: dict[str, Result] = {}
        for job in jobs:
            job_id = job["job_id"]
            for row in _csv(handler.get_successful_records(job_id)):
                write = index.get(row.get(key_field) or "")
                if write is not None:
                    by_key[write.key] = Result(write, crm_id=row.get("sf__Id"))
            for row in _csv(handler.get_failed_records(job_id)):
                write = index.get(row.get(key_field) or "")
                if write is not None:
                    code = (row.get("sf__Error") or "").split(":", 1)[0]
                    again = code in TRANSIENT_CODES
                    by_key[write.key] = Result(
                        write, error=row.get("sf__Error"), transient=again, resend=again
                    )
        return [
            by_key.get(w.key)
            or Result(w, error="not processed by the bulk job", transient=True, resend=True)
            for w in writes
        ]

    def _translate(self, exc: SalesforceError) -> Exception:
        code, message = _first_error(exc.content)
        text = f"{exc.status} {code}: {message}" if code else f"{exc.status}: {exc.content}"
        if isinstance(exc, SalesforceExpiredSession):
            return SessionExpired(text)
        retry_after = _retry_after(self.last_response)
        if isinstance(exc, SalesforceRefusedRequest) and code == "REQUEST_LIMIT_EXCEEDED":
            # TotalRequests: the org's 24-hour allowance; others (concurrency) pass soon.
            daily = "TotalRequests" in message
            return TransientError(text, retry_after, throttled=not daily, daily=daily)
        if exc.status == 429:
            return TransientError(text, retry_after, throttled=True)
        if exc.status >= 500 or code in TRANSIENT_CODES:
            return TransientError(text, retry_after)
        if isinstance(exc, SalesforceMalformedRequest | SalesforceRefusedRequest):
            return Refused(text)
        return TransientError(text, retry_after)

    # --- reading the org (mappings check) ------------------------------------------------------

    def describe(self, obj: str) -> dict[str, Any]:
        try:
            return dict(getattr(self.client(), obj).describe())
        except SalesforceError as exc:
            raise self._translate(exc) from None


def _result(write: Write, item: dict[str, Any]) -> Result:
    if item.get("success"):
        return Result(write, crm_id=item.get("id"))
    errors = item.get("errors") or []
    codes = {e.get("statusCode") for e in errors}
    text = "; ".join(
        f"{e.get('statusCode')}: {e.get('message')}"
        + (f" ({', '.join(e['fields'])})" if e.get("fields") else "")
        for e in errors
    )
    again = bool(codes) and codes <= TRANSIENT_CODES
    return Result(write, error=text or "failed without an error", transient=again, resend=again)


def _first_error(content: Any) -> tuple[str | None, str]:
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return content[0].get("errorCode"), str(content[0].get("message", ""))
    return None, str(content)[:300]


def _retry_after(response: requests.Response | None) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _api_usage(header: str | None) -> tuple[int | None, int | None]:
    """`api-usage=18/5000` -> (18, 5000)."""
    if not header:
        return None, None
    usage = Salesforce.parse_api_usage(header).get("api-usage")
    return (usage.used, usage.total) if usage else (None, None)


def _bulk_value(record: dict[str, Any], column: str) -> str:
    """A CSV cell: absent = leave the field as it is; #N/A = clear it (Bulk API 2.0)."""
    if column not in record:
        return ""
    value = record[column]
    return "#N/A" if value is None else str(value)


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text))) if text else []
