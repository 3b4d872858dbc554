"""The outbound field mappings (mappings/salesforce.yaml, mappings/hubspot.yaml) as typed models,
and the conversion of a worker's output value into the value a CRM field takes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from expansion.mappings import StrictModel, cached_model
from expansion.settings import Settings

Crm = Literal["salesforce", "hubspot"]
CRMS: tuple[Crm, ...] = ("salesforce", "hubspot")
FieldType = Literal[
    "text", "textarea", "number", "integer", "date", "datetime", "picklist", "reference"
]
TASK_OUTPUTS = ("subject", "body", "due_date", "owner", "status", "priority")
# The account outputs SPEC §6 names; `expansion mappings check` reports the ones not mapped.
ACCOUNT_OUTPUTS = (
    "readiness_score",
    "readiness_band",
    "health_score",
    "health_band",
    "top_signals",
    "recommended_play",
    "play_owner",
    "window",
    "next_step_due",
    "updated_at",
)
TEXT_TYPES = ("text", "textarea", "picklist", "reference")


class FieldSpec(StrictModel):
    field: str = Field(min_length=1)
    type: FieldType = "text"
    max_length: int | None = Field(default=None, ge=4)


class AccountMapping(StrictModel):
    object: str
    external_id: str
    fields: dict[str, FieldSpec]

    @model_validator(mode="after")
    def _one_output_per_field(self) -> AccountMapping:
        seen: dict[str, str] = {}
        for output, spec in self.fields.items():
            if spec.field in seen:
                raise ValueError(
                    f"fields.{output}: {spec.field} is already the field of {seen[spec.field]}"
                )
            seen[spec.field] = output
        return self


class Association(StrictModel):
    to: str
    type_id: int
    category: Literal["HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"] = "HUBSPOT_DEFINED"


class TaskMapping(StrictModel):
    object: str
    external_id: str
    fields: dict[Literal["subject", "body", "due_date", "owner", "status", "priority"], FieldSpec]
    status_values: dict[str, str]
    priority_values: dict[str, str] = {}
    account_field: str | None = None  # Salesforce: the lookup to the account (WhatId)
    association: Association | None = None  # HubSpot: the v4 association to the company

    @model_validator(mode="after")
    def _open_status_is_mapped(self) -> TaskMapping:
        if "open" not in self.status_values:
            raise ValueError("status_values.open: required (the status a new task gets)")
        return self


class OwnerMapping(StrictModel):
    queue_users: dict[str, str] = {}


class Outbound(StrictModel):
    account: AccountMapping
    task: TaskMapping
    owners: OwnerMapping = OwnerMapping()
    bulk_above: int = Field(default=2000, ge=200)


class SalesforceOutbound(Outbound):
    @model_validator(mode="after")
    def _task_names_its_account(self) -> SalesforceOutbound:
        if not self.task.account_field:
            raise ValueError(
                "task.account_field: required (the Task lookup to the Account, WhatId)"
            )
        return self


class HubSpotOutbound(Outbound):
    @model_validator(mode="after")
    def _task_is_associated(self) -> HubSpotOutbound:
        if self.task.association is None:
            raise ValueError("task.association: required (the v4 task -> company association)")
        return self


class SalesforceFile(StrictModel):
    outbound: SalesforceOutbound


class HubSpotFile(StrictModel):
    outbound: HubSpotOutbound


FILES: dict[Crm, type[SalesforceFile] | type[HubSpotFile]] = {
    "salesforce": SalesforceFile,
    "hubspot": HubSpotFile,
}


def mapping_path(settings: Settings, crm: Crm) -> Any:
    return settings.mappings_dir / f"{crm}.yaml"


def outbound(settings: Settings, crm: Crm) -> Outbound:
    """The CRM's outbound mapping (re-read when the file changes)."""
    return cached_model(mapping_path(settings, crm), FILES[crm]).outbound


def owned_fields(settings: Settings, crm: Crm) -> frozenset[str]:
    """The account fields this project writes: their changes coming back are echoes (§3.5)."""
    return frozenset(spec.field for spec in outbound(settings, crm).account.fields.values())


def crm_value(crm: Crm, spec: FieldSpec, value: Any) -> Any:
    """`value` as the CRM field takes it. Salesforce gets JSON types (null clears a field);
    HubSpot takes every property as a string ("" clears it). Dates are ISO 8601; a date written
    to a datetime field is midnight UTC of that day."""
    if value is None or value == "":
        return None if crm == "salesforce" else ""
    converted = _typed(spec, value)
    if crm == "hubspot" and not isinstance(converted, str):
        return str(converted)
    return converted


def _typed(spec: FieldSpec, value: Any) -> Any:
    if spec.type == "number":
        number = float(value)
        return int(number) if number.is_integer() else number
    if spec.type == "integer":
        return round(float(value))
    if spec.type == "date":
        return _as_date(value).isoformat()
    if spec.type == "datetime":
        return _as_datetime(value).isoformat().replace("+00:00", "Z")
    text = str(value)
    if spec.max_length is not None and len(text) > spec.max_length:
        text = text[: spec.max_length - 3] + "..."
    return text


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, datetime.min.time())
    else:
        text = str(value)
        moment = (
            datetime.fromisoformat(text)
            if len(text) > 10
            else datetime.combine(date.fromisoformat(text), datetime.min.time())
        )
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(microsecond=0)


def configured(settings: Settings) -> list[Crm]:
    """The CRMs with credentials set: the ones the flush writes to."""
    found: list[Crm] = []
    if settings.salesforce_client_id:
        found.append("salesforce")
    if settings.hubspot_access_token or settings.hubspot_refresh_token:
        found.append("hubspot")
    return found


def crm_org(settings: Settings, crm: Crm) -> str:
    """The Salesforce org or HubSpot portal the writes of `crm` go to: its API budget and its
    flush are one per org."""
    if crm == "salesforce":
        return settings.salesforce_org_id or "default"
    return (settings.hubspot_portal_ids or ("default",))[0]
