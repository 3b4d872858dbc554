"""The emulated schema: Salesforce sObjects and fields (describe), HubSpot objects and properties,
standard ones plus the project's custom fields; a seed file can add more."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SF_PICKLISTS = {
    "Task.Status": (
        "Not Started",
        "In Progress",
        "Completed",
        "Waiting on someone else",
        "Deferred",
    ),
    "Task.Priority": ("High", "Normal", "Low"),
    "Opportunity.StageName": ("Prospecting", "Negotiation/Review", "Closed Won", "Closed Lost"),
    "Case.Status": ("New", "Working", "Escalated", "Closed"),
}


@dataclass
class SfField:
    name: str
    type: str
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    required: bool = False
    length: int = 0
    reference_to: tuple[str, ...] = ()
    default: str | None = None

    def describe(self, sobject: str) -> dict[str, Any]:
        picklist = SF_PICKLISTS.get(f"{sobject}.{self.name}", ())
        return {
            "name": self.name,
            "label": self.name.removesuffix("__c").replace("_", " "),
            "type": self.type,
            "soapType": SOAP_TYPES.get(self.type, "xsd:string"),
            "length": self.length,
            "createable": self.createable,
            "updateable": self.updateable,
            "externalId": self.external_id,
            "unique": self.external_id,
            "idLookup": self.external_id or self.name == "Id",
            "nillable": not self.required and self.type != "boolean",
            "defaultedOnCreate": self.default is not None or not self.createable,
            "custom": self.name.endswith("__c"),
            "calculated": False,
            "filterable": True,
            "sortable": self.type != "textarea",
            "referenceTo": list(self.reference_to),
            "relationshipName": (self.name[:-2] if self.reference_to else None),
            "picklistValues": [
                {"active": True, "defaultValue": v == self.default, "label": v, "value": v}
                for v in picklist
            ],
            "restrictedPicklist": False,
        }


SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}


def _system() -> list[SfField]:
    ro = {"createable": False, "updateable": False}
    return [
        SfField("Id", "id", **ro, length=18),
        SfField("IsDeleted", "boolean", **ro),
        SfField("OwnerId", "reference", reference_to=("User",), length=18),
        SfField("CreatedDate", "datetime", **ro),
        SfField("CreatedById", "reference", **ro, reference_to=("User",), length=18),
        SfField("LastModifiedDate", "datetime", **ro),
        SfField("LastModifiedById", "reference", **ro, reference_to=("User",), length=18),
        SfField("SystemModstamp", "datetime", **ro),
    ]


def _text(name: str, length: int = 255, **kw: Any) -> SfField:
    return SfField(name, "string", length=length, **kw)


def _project_account_fields() -> list[SfField]:
    return [
        SfField("Expansion_Readiness_Score__c", "double"),
        _text("Expansion_Readiness_Band__c", 40),
        SfField("Health_Score__c", "double"),
        _text("Health_Band__c", 40),
        SfField("Expansion_Top_Signals__c", "textarea", length=1000),
        _text("Expansion_Recommended_Play__c"),
        _text("Expansion_Play_Owner__c"),
        _text("Expansion_Window__c"),
        _text("Expansion_In_Product_Prompt__c"),
        SfField("Expansion_Next_Step_Due__c", "date"),
        SfField("Expansion_Updated_At__c", "datetime"),
        _text("Expansion_Account_Key__c", external_id=True),
    ]


@dataclass
class SfObject:
    name: str
    key_prefix: str
    fields: dict[str, SfField] = field(default_factory=dict)


def salesforce_objects() -> dict[str, SfObject]:
    ro = {"createable": False, "updateable": False}
    specs: dict[str, tuple[str, list[SfField]]] = {
        "Account": (
            "001",
            [
                _text("Name", required=True),
                _text("Industry", 40),
                SfField("Website", "url", length=255),
                SfField("NumberOfEmployees", "int"),
                SfField("AnnualRevenue", "currency"),
                *_project_account_fields(),
            ],
        ),
        "Contact": (
            "003",
            [
                _text("FirstName", 40),
                _text("LastName", 80, required=True),
                SfField("Email", "email", length=80),
                _text("Title", 128),
                SfField("AccountId", "reference", reference_to=("Account",), length=18),
            ],
        ),
        "Opportunity": (
            "006",
            [
                _text("Name", 120, required=True),
                SfField("StageName", "picklist", length=255, required=True),
                SfField("CloseDate", "date", required=True),
                SfField("Amount", "currency"),
                SfField("AccountId", "reference", reference_to=("Account",), length=18),
                SfField("IsWon", "boolean", **ro),
            ],
        ),
        "Case": (
            "500",
            [
                _text("Subject"),
                SfField("Status", "picklist", length=255, default="New"),
                SfField("Priority", "picklist", length=255),
                SfField("AccountId", "reference", reference_to=("Account",), length=18),
            ],
        ),
        "Task": (
            "00T",
            [
                _text("Subject"),
                SfField("Status", "picklist", length=255, default="Not Started"),
                SfField("Priority", "picklist", length=255, default="Normal"),
                SfField("ActivityDate", "date"),
                SfField("Description", "textarea", length=32000),
                SfField("WhatId", "reference", reference_to=("Account", "Opportunity"), length=18),
                SfField("WhoId", "reference", reference_to=("Contact",), length=18),
                SfField("AccountId", "reference", **ro, reference_to=("Account",), length=18),
                SfField("IsClosed", "boolean", **ro),
                SfField("CompletedDateTime", "datetime", **ro),
                _text("Expansion_Key__c", external_id=True),
            ],
        ),
        "User": (
            "005",
            [
                _text("Username", 80, required=True),
                SfField("Email", "email", length=128, required=True),
                _text("FirstName", 40),
                _text("LastName", 80, required=True),
                _text("Name", 121, **ro),
                SfField("ManagerId", "reference", reference_to=("User",), length=18),
                SfField("IsActive", "boolean"),
            ],
        ),
    }
    objects = {}
    for name, (prefix, own) in specs.items():
        fields = [f for f in _system() if not (name == "User" and f.name == "OwnerId")] + own
        objects[name] = SfObject(name, prefix, {f.name: f for f in fields})
    return objects


# --- HubSpot ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HsObject:
    name: str  # the plural path name: companies
    type_id: str  # 0-2
    singular: str  # company
    id_base: int  # ids are numeric; each object gets its own range
    defaults: tuple[str, ...]  # properties returned when none are asked for


HS_OBJECTS = {
    o.name: o
    for o in (
        HsObject("contacts", "0-1", "contact", 90_000_000, ("email", "firstname", "lastname")),
        HsObject("companies", "0-2", "company", 18_000_000_000, ("name", "domain")),
        HsObject("deals", "0-3", "deal", 71_000_000, ("dealname", "amount", "dealstage")),
        HsObject("tickets", "0-5", "ticket", 33_000_000, ("subject", "content", "hs_pipeline")),
        HsObject("tasks", "0-27", "task", 88_000_000, ("hs_task_subject", "hs_task_status")),
    )
}
_ALIASES = {alias: o for o in HS_OBJECTS.values() for alias in (o.name, o.type_id, o.singular)}


def hubspot_object(name: str) -> HsObject | None:
    return _ALIASES.get(name.lower())


# Association type ids (HUBSPOT_DEFINED): (from, to) -> typeId, both directions listed.
HS_ASSOCIATION_TYPES: dict[tuple[str, str], int] = {
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
    ("tickets", "companies"): 339,
    ("companies", "tickets"): 340,
    ("tasks", "companies"): 192,
    ("companies", "tasks"): 191,
    ("tasks", "contacts"): 204,
    ("contacts", "tasks"): 203,
    ("tasks", "deals"): 216,
    ("deals", "tasks"): 215,
    ("contacts", "deals"): 4,
    ("deals", "contacts"): 3,
}

HS_OPTIONS = {
    ("tasks", "hs_task_status"): ("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"),
    ("tasks", "hs_task_priority"): ("NONE", "LOW", "MEDIUM", "HIGH"),
    ("tasks", "hs_task_type"): ("TODO", "CALL", "EMAIL"),
    ("deals", "dealstage"): ("appointmentscheduled", "closedwon", "closedlost"),
}

# (type, fieldType)
_KINDS = {
    "string": ("string", "text"),
    "textarea": ("string", "textarea"),
    "number": ("number", "number"),
    "datetime": ("datetime", "date"),
    "date": ("date", "date"),
    "bool": ("bool", "booleancheckbox"),
    "enumeration": ("enumeration", "select"),
}


@dataclass(frozen=True)
class HsProperty:
    name: str
    kind: str
    read_only: bool = False
    unique: bool = False
    custom: bool = False

    @property
    def type(self) -> str:
        return _KINDS[self.kind][0]

    def as_json(self, obj: str, created_at: str) -> dict[str, Any]:
        options = HS_OPTIONS.get((obj, self.name), ())
        return {
            "name": self.name,
            "label": self.name.replace("_", " ").title(),
            "type": _KINDS[self.kind][0],
            "fieldType": _KINDS[self.kind][1],
            "description": "",
            "groupName": "expansion_signals" if self.custom else f"{obj[:-1]}information",
            "options": [
                {"label": v.title(), "value": v, "displayOrder": i, "hidden": False}
                for i, v in enumerate(options)
            ],
            "displayOrder": -1,
            "calculated": self.read_only and not self.custom,
            "externalOptions": self.name == "hubspot_owner_id",
            "hasUniqueValue": self.unique,
            "hidden": False,
            "hubspotDefined": not self.custom,
            "modificationMetadata": {
                "archivable": self.custom,
                "readOnlyDefinition": not self.custom,
                "readOnlyValue": self.read_only,
            },
            "formField": not self.read_only,
            "createdAt": created_at,
            "updatedAt": created_at,
            "archived": False,
        }


def _common() -> list[HsProperty]:
    return [
        HsProperty("hs_object_id", "number", read_only=True),
        HsProperty("createdate", "datetime", read_only=True),
        HsProperty("hs_lastmodifieddate", "datetime", read_only=True),
        HsProperty("hubspot_owner_id", "enumeration"),
    ]


def _project_company() -> list[HsProperty]:
    names = {
        "es_readiness_score": "number",
        "es_readiness_band": "string",
        "es_health_score": "number",
        "es_health_band": "string",
        "es_top_signals": "textarea",
        "es_recommended_play": "string",
        "es_play_owner": "string",
        "es_window": "string",
        "es_in_product_prompt": "string",
        "es_next_step_due": "date",
        "es_updated_at": "datetime",
    }
    return [
        *(HsProperty(n, k, custom=True) for n, k in names.items()),
        HsProperty("es_account_key", "string", unique=True, custom=True),
    ]


def hubspot_properties() -> dict[str, dict[str, HsProperty]]:
    own: dict[str, list[HsProperty]] = {
        "companies": [
            HsProperty("name", "string"),
            HsProperty("domain", "string"),
            HsProperty("industry", "string"),
            HsProperty("numberofemployees", "number"),
            HsProperty("annualrevenue", "number"),
            HsProperty("lifecyclestage", "string"),
            *_project_company(),
        ],
        "contacts": [
            HsProperty("email", "string", unique=True),
            HsProperty("firstname", "string"),
            HsProperty("lastname", "string"),
            HsProperty("jobtitle", "string"),
        ],
        "deals": [
            HsProperty("dealname", "string"),
            HsProperty("dealstage", "enumeration"),
            HsProperty("pipeline", "string"),
            HsProperty("amount", "number"),
            HsProperty("closedate", "datetime"),
        ],
        "tickets": [
            HsProperty("subject", "string"),
            HsProperty("content", "textarea"),
            HsProperty("hs_pipeline", "string"),
            HsProperty("hs_pipeline_stage", "string"),
            HsProperty("hs_ticket_priority", "string"),
        ],
        "tasks": [
            HsProperty("hs_task_subject", "string"),
            HsProperty("hs_task_body", "textarea"),
            HsProperty("hs_task_status", "enumeration"),
            HsProperty("hs_task_priority", "enumeration"),
            HsProperty("hs_task_type", "enumeration"),
            HsProperty("hs_timestamp", "datetime"),
            HsProperty("hs_task_completion_date", "datetime", read_only=True),
            HsProperty("es_task_key", "string", unique=True, custom=True),
        ],
    }
    return {obj: {p.name: p for p in [*_common(), *props]} for obj, props in own.items()}
