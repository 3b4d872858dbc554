"""Seed data for the sandbox (a JSON file or the admin endpoint): owners as HubSpot owners and
Salesforce users (with managers), accounts as companies and Accounts, and extra custom fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from sandbox.config import Mutable
from sandbox.context import Context
from sandbox.schema import HsProperty, SfField
from sandbox.store import iso_ms, utcnow


class SeedOwner(Mutable):
    key: str
    email: str
    first_name: str = ""
    last_name: str
    manager: str | None = Field(None, description="key of the owner's manager")
    hubspot_owner_id: str | None = None
    hubspot_user_id: int | None = None
    salesforce_user_id: str | None = None


class SeedAccount(Mutable):
    key: str
    name: str
    domain: str | None = None
    owner: str | None = Field(None, description="key of the owning owner")
    hubspot_id: str | None = None
    salesforce_id: str | None = None
    properties: dict[str, str] = {}
    fields: dict[str, Any] = {}


class SeedSfField(Mutable):
    name: str
    type: Literal["string", "textarea", "double", "int", "boolean", "date", "datetime", "picklist"]
    external_id: bool = False
    length: int = 255


class SeedHsProperty(Mutable):
    name: str
    type: Literal["string", "textarea", "number", "datetime", "date", "bool", "enumeration"]
    unique: bool = False


class Seed(Mutable):
    owners: list[SeedOwner] = []
    accounts: list[SeedAccount] = []
    salesforce_fields: dict[str, list[SeedSfField]] = {}
    hubspot_properties: dict[str, list[SeedHsProperty]] = {}


class SeedError(ValueError):
    pass


def parse_seed(raw: object, where: str) -> Seed:
    try:
        return Seed.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise SeedError(f"{where}: {problems}") from None


def load_seed(context: Context, path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SeedError(f"{path}: cannot read the seed JSON ({exc})") from None
    return apply_seed(context, parse_seed(raw, str(path)))


def seed_integration_user(context: Context) -> None:
    config = context.config
    with context.store.lock:
        context.store.write(
            "salesforce",
            "User",
            config.salesforce_integration_user_id,
            {
                "Username": config.salesforce_username,
                "Email": config.salesforce_username,
                "FirstName": "Integration",
                "LastName": "User",
                "IsActive": True,
            },
            config.salesforce_integration_user_id,
            lambda: config.salesforce_integration_user_id,
            notify=False,
        )


def apply_seed(context: Context, seed: Seed) -> dict[str, Any]:
    """Load `seed`; returns the ids each owner and account got in both CRMs, by key."""
    with context.store.lock:
        _add_fields(context, seed)
        owners = _owners(context, seed.owners)
        accounts = {a.key: _account(context, a, owners) for a in seed.accounts}
    return {"owners": owners, "accounts": accounts}


def _add_fields(context: Context, seed: Seed) -> None:
    for sobject, fields in seed.salesforce_fields.items():
        obj = context.sf_objects.get(sobject)
        if obj is None:
            raise SeedError(f"salesforce_fields.{sobject}: no such sObject in the sandbox")
        for f in fields:
            obj.fields[f.name] = SfField(f.name, f.type, external_id=f.external_id, length=f.length)
    for name, props in seed.hubspot_properties.items():
        if name not in context.hs_properties:
            raise SeedError(f"hubspot_properties.{name}: no such object in the sandbox")
        for p in props:
            context.hs_properties[name][p.name] = HsProperty(
                p.name, p.type, unique=p.unique, custom=True
            )
    context.index_unique_fields()


def _owners(context: Context, owners: list[SeedOwner]) -> dict[str, dict[str, Any]]:
    store, now = context.store, iso_ms(utcnow())
    ids: dict[str, dict[str, Any]] = {}
    for owner in owners:
        ids[owner.key] = {
            "hubspot_owner_id": owner.hubspot_owner_id or store.ids.hubspot(70_000_000),
            "hubspot_user_id": owner.hubspot_user_id or int(store.ids.hubspot(8_600_000)),
            "salesforce_user_id": owner.salesforce_user_id or store.ids.salesforce("005"),
            "email": owner.email,
        }
    for owner in owners:
        mine = ids[owner.key]
        store.owners.append(
            {
                "id": mine["hubspot_owner_id"],
                "email": owner.email,
                "firstName": owner.first_name,
                "lastName": owner.last_name,
                "userId": mine["hubspot_user_id"],
                "userIdIncludingInactive": mine["hubspot_user_id"],
                "createdAt": now,
                "updatedAt": now,
                "archived": False,
                "teams": [],
                "type": "PERSON",
            }
        )
        manager = ids.get(owner.manager or "")
        if owner.manager and manager is None:
            raise SeedError(f"owners.{owner.key}.manager: no owner with key {owner.manager}")
        values = {
            "Username": owner.email,
            "Email": owner.email,
            "FirstName": owner.first_name,
            "LastName": owner.last_name,
            "ManagerId": manager["salesforce_user_id"] if manager else None,
            "IsActive": True,
        }
        uid = mine["salesforce_user_id"]
        store.write("salesforce", "User", uid, values, uid, lambda uid=uid: uid, notify=False)
    return ids


def _account(
    context: Context, account: SeedAccount, owners: dict[str, dict[str, Any]]
) -> dict[str, str]:
    store, config = context.store, context.config
    owner = owners.get(account.owner or "")
    if account.owner and owner is None:
        raise SeedError(f"accounts.{account.key}.owner: no owner with key {account.owner}")
    actor = config.salesforce_integration_user_id
    sf_values = {
        "Name": account.name,
        "Website": account.domain,
        "OwnerId": owner["salesforce_user_id"] if owner else actor,
        **account.fields,
    }
    sf_row, _ = store.write(
        "salesforce",
        "Account",
        account.salesforce_id,
        sf_values,
        actor,
        lambda: store.ids.salesforce("001"),
        notify=False,
    )
    hs_values = {"name": account.name, **account.properties}
    if account.domain:
        hs_values["domain"] = account.domain
    if owner:
        hs_values["hubspot_owner_id"] = owner["hubspot_owner_id"]
    hs_row, _ = store.write(
        "hubspot",
        "companies",
        account.hubspot_id,
        hs_values,
        "seed",
        lambda: store.ids.hubspot(18_000_000_000),
        notify=False,
    )
    return {"salesforce_id": sf_row.id, "hubspot_id": hs_row.id}
