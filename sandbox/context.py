"""What the request handlers share: the config, the state, the gate, the schema and the webhook
sender of one running sandbox, reachable from a handler as `ctx()`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app

from sandbox.config import SandboxConfig
from sandbox.faults import Gate
from sandbox.schema import HsProperty, SfObject, hubspot_properties, salesforce_objects
from sandbox.store import Store

if TYPE_CHECKING:
    from sandbox.openapi import SpecCheck
    from sandbox.webhooks import WebhookSender


@dataclass
class Context:
    config: SandboxConfig
    base_url: str = ""
    store: Store = field(default_factory=Store)
    sf_objects: dict[str, SfObject] = field(default_factory=salesforce_objects)
    hs_properties: dict[str, dict[str, HsProperty]] = field(default_factory=hubspot_properties)
    gate: Gate = field(init=False)
    webhooks: WebhookSender | None = None
    spec: SpecCheck | None = None

    def __post_init__(self) -> None:
        self.gate = Gate(self.config)
        self.index_unique_fields()

    def index_unique_fields(self) -> None:
        for name, obj in self.sf_objects.items():
            table = self.store.table("salesforce", name)
            for sf_field in obj.fields.values():
                if sf_field.external_id:
                    table.add_unique(sf_field.name)
        for name, props in self.hs_properties.items():
            table = self.store.table("hubspot", name)
            for prop in props.values():
                if prop.unique:
                    table.add_unique(prop.name)


def ctx() -> Context:
    return current_app.extensions["sandbox"]  # type: ignore[no-any-return]
