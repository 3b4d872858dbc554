"""The demo's CRM: the sandbox process as the writers' target (the settings the children get),
seeded with the book's owners and accounts, and read back for the tasks and the API calls."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from expansion.book import Book
from expansion.book.model import Owner
from sandbox.admin import describe
from sandbox.clients import trusting_session
from sandbox.config import SandboxConfig
from sandbox.context import Context
from sandbox.page import TASK_FIELDS

CRMS = ("salesforce", "hubspot")
SANDBOX = SandboxConfig()


def identity_env() -> dict[str, str]:
    """The org, portal and app the sandbox emulates: the receiver must know them, or it refuses
    the sandbox's webhooks (and the book, signed the same way)."""
    return {
        "HUBSPOT_CLIENT_SECRET": SANDBOX.hubspot_client_secret,
        "HUBSPOT_APP_ID": str(SANDBOX.hubspot_app_id),
        "HUBSPOT_PORTAL_ID": str(SANDBOX.hubspot_portal_id),
        "SALESFORCE_ORG_ID": SANDBOX.salesforce_org_id,
        "SALESFORCE_INTEGRATION_USER_ID": SANDBOX.salesforce_integration_user_id,
    }


def sandbox_info(port: int, tls_dir: Path) -> dict[str, Any]:
    """What the sandbox process on `port` will answer on GET /_sandbox/ (its URLs, CA file and
    credentials), known before it starts so every process can be started at once."""
    context = Context(SANDBOX.model_copy(update={"port": port, "tls_dir": tls_dir}))
    context.base_url = f"https://127.0.0.1:{port}"
    return describe(context)


def writer_env(
    info: dict[str, Any], crms: Sequence[str] = ("salesforce", "hubspot")
) -> dict[str, str]:
    """The writers' settings (as .env.example names them) for `crms` on the sandbox."""
    values = {"CRM_CA_BUNDLE": info["ca_path"]}
    if "salesforce" in crms:
        salesforce = info["salesforce"]
        values |= {
            "SALESFORCE_INSTANCE_URL": salesforce["instance_url"],
            "SALESFORCE_TOKEN_URL": salesforce["token_url"],
            "SALESFORCE_CLIENT_ID": salesforce["client_id"],
            "SALESFORCE_CLIENT_SECRET": salesforce["client_secret"],
            "SALESFORCE_API_VERSION": salesforce["api_version"],
        }
    if "hubspot" in crms:
        hubspot = info["hubspot"]
        values |= {
            "HUBSPOT_ACCESS_TOKEN": hubspot["access_token"],
            "HUBSPOT_API_HOST": hubspot["host"],
        }
    return values


def book_seed(book: Book) -> dict[str, Any]:
    """The book's people as CRM users and owners (CSMs report to the CS manager, who reports to
    the VP) and its accounts as Accounts and companies with the ids the book's webhooks use,
    owned by their AE as in the book."""
    staff = {owner.salesforce_id: owner for a in book.accounts for owner in _people(a)}
    managers = {
        "csm": _role(staff, "cs_manager"),
        "ae": _role(staff, "vp_cs"),
        "cs_manager": _role(staff, "vp_cs"),
    }
    owners = [
        _seed_owner(owner, managers.get(owner.role)) for owner in sorted(staff.values(), key=_key)
    ]
    accounts = [
        {
            "key": str(account.index),
            "name": account.name,
            "domain": account.domain,
            "owner": account.ae.salesforce_id,
            "salesforce_id": account.salesforce_id,
            "hubspot_id": account.hubspot_company_id,
        }
        for account in book.accounts
    ]
    return {"owners": owners, "accounts": accounts}


def _people(account: Any) -> tuple[Owner, ...]:
    return (account.csm, account.ae, account.manager, account.vp)


def _key(owner: Owner) -> str:
    return owner.salesforce_id


def _role(staff: dict[str, Owner], role: str) -> Owner | None:
    return next((owner for owner in staff.values() if owner.role == role), None)


def _seed_owner(owner: Owner, manager: Owner | None) -> dict[str, Any]:
    first, _, last = owner.name.partition(" ")
    return {
        "key": owner.salesforce_id,
        "email": f"{first}.{last}@book.example".lower(),
        "first_name": first,
        "last_name": last,
        "manager": manager.salesforce_id if manager else None,
        "hubspot_owner_id": owner.hubspot_id,
        "salesforce_user_id": owner.salesforce_id,
    }


@dataclass(frozen=True)
class CrmActivity:
    """What the writers did in the sandbox: tasks per owner id and API calls per CRM."""

    tasks: dict[tuple[str, str], int]  # (crm, owner id) -> tasks
    calls: dict[str, int]  # crm -> API calls
    writes: dict[str, int]  # crm -> calls that were not GETs
    daily_limits: dict[str, int]


class Sandbox:
    """The running sandbox's admin API, over HTTPS trusting its CA."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.base_url: str = info["base_url"]
        self.ca_path = Path(info["ca_path"])
        self._http: requests.Session | None = None

    @property
    def http(self) -> requests.Session:
        # The CA file is written when the sandbox starts: trust it once it is there.
        if self._http is None:
            self._http = trusting_session(self.ca_path)
        return self._http

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(
            method, f"{self.base_url}/_sandbox/{path}", json=body, timeout=30
        )
        response.raise_for_status()
        return response.json()

    def answers(self) -> bool:
        if not self.ca_path.exists():
            return False
        try:
            return bool(self.admin("GET", "")["base_url"])
        except (requests.RequestException, OSError):
            self._http = None
            return False

    def seed(self, book: Book) -> dict[str, Any]:
        return self.admin("POST", "seed", book_seed(book))  # type: ignore[no-any-return]

    def webhooks_pending(self) -> int:
        return int(self.admin("GET", "webhooks")["pending"])

    def activity(self) -> CrmActivity:
        tasks: Counter[tuple[str, str]] = Counter()
        for crm, (name, owner_field, *_) in TASK_FIELDS.items():
            for record in self.admin("GET", f"records/{crm}/{name}")["records"]:
                tasks[(crm, str(record["values"].get(owner_field) or ""))] += 1
        calls, writes = Counter[str](), Counter[str]()
        for crm in CRMS:
            for entry in self.admin("GET", f"requests?crm={crm}")["requests"]:
                calls[crm] += 1
                writes[crm] += entry["method"] != "GET"
        limits = self.admin("GET", "limits")
        return CrmActivity(
            dict(tasks),
            dict(calls),
            dict(writes),
            {crm: int(limits[f"{crm}_daily"]) for crm in CRMS},
        )
