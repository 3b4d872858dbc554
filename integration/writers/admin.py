"""The admin side of the writers (SPEC §7): `expansion mappings check` (the outbound YAML, then
with credentials the live schema: each field exists, its type fits, it is writable) and the
text of `expansion sync --dry-run`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from expansion.mappings import MappingError
from expansion.settings import Settings
from integration.writers.mapping import (
    ACCOUNT_OUTPUTS,
    CRMS,
    Crm,
    FieldSpec,
    Outbound,
    outbound,
)
from integration.writers.plan import Plan

# Our field type -> the CRM field types it may be written to.
SALESFORCE_TYPES = {
    "number": {"double", "currency", "percent", "int"},
    "integer": {"int", "double"},
    "date": {"date"},
    "datetime": {"datetime"},
    "text": {"string", "picklist", "textarea", "email", "url", "phone"},
    "textarea": {"textarea", "string"},
    "picklist": {"picklist", "string"},
    "reference": {"reference"},
}
HUBSPOT_TYPES = {
    "number": {"number"},
    "integer": {"number"},
    "date": {"date", "datetime"},
    "datetime": {"datetime", "date"},
    "text": {"string", "enumeration"},
    "textarea": {"string"},
    "picklist": {"enumeration", "string"},
    "reference": {"enumeration", "number", "string"},
}


def check_files(settings: Settings) -> tuple[list[str], list[str]]:
    """(problems, warnings) of both outbound mapping files, every problem at once."""
    problems: list[str] = []
    warnings: list[str] = []
    for crm in CRMS:
        try:
            mapping = outbound(settings, crm)
        except MappingError as exc:
            problems.append(str(exc))
            continue
        unmapped = [
            o for o in (*ACCOUNT_OUTPUTS, *play_fields(settings)) if o not in mapping.account.fields
        ]
        if unmapped:
            warnings.append(
                f"{crm}.yaml: outputs not mapped, so never written to {crm}: {', '.join(unmapped)}"
            )
    return problems, warnings


def play_fields(settings: Settings) -> list[str]:
    """Account fields the plays of mappings/plays.yaml set (`kind: field` steps)."""
    from workers.play_rules import play_rules

    try:
        rules = play_rules(settings)
    except MappingError:
        return []  # plays.yaml reports its own problems
    return sorted(
        {s.field for p in rules.plays.values() for s in p.steps if s.kind == "field" and s.field}
    )


def check_live(settings: Settings, crm: Crm) -> list[str]:
    """Problems of the mapping against the CRM's schema (an API read per object)."""
    from integration.writers.flush import budget, make_api

    mapping = outbound(settings, crm)
    api: Any = make_api(settings, crm, budget(settings, crm))
    if crm == "salesforce":
        return _salesforce_problems(api, mapping)
    return _hubspot_problems(api, mapping)


def _salesforce_problems(api: Any, mapping: Outbound) -> list[str]:
    problems: list[str] = []
    for part, obj, key, specs, create in (
        (
            "account",
            mapping.account.object,
            mapping.account.external_id,
            mapping.account.fields,
            False,
        ),
        ("task", mapping.task.object, mapping.task.external_id, mapping.task.fields, True),
    ):
        described = {f["name"]: f for f in api.describe(obj)["fields"]}
        key_field = described.get(key)
        if key_field is None:
            problems.append(
                f"salesforce.yaml outbound.{part}.external_id: {obj}.{key} does not exist"
            )
        elif key != "Id" and not key_field.get("externalId"):
            problems.append(
                f"salesforce.yaml outbound.{part}.external_id: {obj}.{key} is not an External ID"
            )
        if part == "task" and mapping.task.account_field not in described:
            problems.append(
                f"salesforce.yaml outbound.task.account_field: "
                f"{obj}.{mapping.task.account_field} does not exist"
            )
        for output, spec in specs.items():
            where = f"salesforce.yaml outbound.{part}.fields.{output}: {obj}.{spec.field}"
            problems += _field_problems(where, spec, described.get(spec.field), create)
    return problems


def _field_problems(
    where: str, spec: FieldSpec, field: dict[str, Any] | None, create: bool
) -> list[str]:
    if field is None:
        return [f"{where} does not exist"]
    found: list[str] = []
    if field["type"] not in SALESFORCE_TYPES[spec.type]:
        found.append(
            f"{where} is a {field['type']} field; {spec.type} needs one of "
            f"{sorted(SALESFORCE_TYPES[spec.type])}"
        )
    if not field.get("updateable") or (create and not field.get("createable")):
        found.append(f"{where} is not writable by the integration user")
    length = field.get("length") or 0
    if spec.max_length and length and spec.max_length > length:
        found.append(f"{where} holds {length} characters; max_length is {spec.max_length}")
    return found


def _hubspot_problems(api: Any, mapping: Outbound) -> list[str]:
    problems: list[str] = []
    for part, obj, specs in (
        ("account", mapping.account.object, mapping.account.fields),
        ("task", mapping.task.object, mapping.task.fields),
    ):
        properties = api.properties(obj)
        for output, spec in specs.items():
            where = f"hubspot.yaml outbound.{part}.fields.{output}: {obj}.{spec.field}"
            prop = properties.get(spec.field)
            if prop is None:
                problems.append(f"{where} does not exist")
                continue
            if prop.type not in HUBSPOT_TYPES[spec.type]:
                problems.append(
                    f"{where} is a {prop.type} property; {spec.type} needs one of "
                    f"{sorted(HUBSPOT_TYPES[spec.type])}"
                )
            metadata = prop.modification_metadata
            if metadata is not None and metadata.read_only_value:
                problems.append(f"{where} is read-only")
        if part == "task":
            key = properties.get(mapping.task.external_id)
            if key is None or not key.has_unique_value:
                problems.append(
                    f"hubspot.yaml outbound.task.external_id: {obj}.{mapping.task.external_id} "
                    "must exist with unique values (a retry must never create a second task)"
                )
    return problems


def dry_run_lines(plans: dict[str, Plan]) -> Iterable[str]:
    """What `expansion sync --dry-run` prints for the plans of a flush that did not run."""
    if not plans:
        yield "nothing to write: no pending CRM writes"
        return
    for crm, plan in plans.items():
        yield (
            f"{crm}: {len(plan.accounts)} record(s) to update, {len(plan.creates)} task(s) to "
            f"create, {len(plan.updates)} task update(s); {len(plan.unchanged)} write(s) "
            "unchanged since confirmed"
        )
        for write in plan.accounts:
            yield f"  update {write.key}:"
            yield from (f"    {name} = {value!r}" for name, value in write.fields.items())
        for write in plan.creates:
            yield f"  create task {write.key} on {write.parent_id}:"
            yield from (f"    {name} = {_short(value)}" for name, value in write.fields.items())
        for write in plan.updates:
            yield f"  update task {write.key}: " + ", ".join(
                f"{n} = {v!r}" for n, v in write.fields.items()
            )
        for rejected in plan.rejected:
            yield f"  not sent (intent {rejected.intent_id}): {rejected.reason}"


def _short(value: Any, width: int = 100) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def outbox_rows(settings: Settings, statuses: tuple[str, ...], limit: int) -> tuple[list[Any], int]:
    """Outbox intents in these statuses, oldest first (up to `limit`), and how many there are."""
    from sqlalchemy import func, select

    from expansion.db import transaction
    from expansion.play_tables import outbox

    where = outbox.c.status.in_(statuses)
    with transaction(settings) as conn:
        total = conn.execute(select(func.count()).select_from(outbox).where(where)).scalar_one()
        rows = (
            conn.execute(select(outbox).where(where).order_by(outbox.c.id).limit(limit))
            .mappings()
            .all()
        )
    return list(rows), int(total)
