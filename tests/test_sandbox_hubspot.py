"""The sandbox's HubSpot CRM API through the real hubspot-api-client over HTTPS: objects basic and
batch (100, 207 multi-status), validation errors, associations v4 (task->company 192),
properties, owners, rate-limit headers and the 429 body, 401 and OAuth refresh, and every body
checked against ../shared/specs/hubspot."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hubspot.crm.associations.v4 import AssociationSpec
from hubspot.crm.companies import ApiException

from tests.sandbox_support import ANA, HUBSPOT_SPECS, SandboxHandle, sandbox_fixture

crm_sandbox = sandbox_fixture()


@pytest.fixture(autouse=True)
def bodies_match_the_specs(crm_sandbox: SandboxHandle) -> Iterator[None]:
    """After each test: every request and response body it exchanged with the sandbox validates
    against ../shared/specs/hubspot (when present)."""
    yield
    if HUBSPOT_SPECS.is_dir():
        log = crm_sandbox.requests("hubspot")
        assert [(r["method"], r["path"], r["spec_errors"]) for r in log if r["spec_errors"]] == []


TASK_TO_COMPANY = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}]


def company(name: str, key: str) -> dict[str, object]:
    return {"properties": {"name": name, "es_account_key": key}, "associations": []}


def test_basic_create_read_update_and_the_validation_error(crm_sandbox: SandboxHandle):
    companies = crm_sandbox.hubspot().crm.companies
    created = companies.basic_api.create(company("Acme", "acme"))
    assert created.properties["name"] == "Acme"
    assert created.properties["hs_object_id"] == created.id
    companies.basic_api.update(created.id, {"properties": {"es_readiness_score": "82"}})
    read = companies.basic_api.get_by_id(created.id, properties=["es_readiness_score", "name"])
    assert read.properties["es_readiness_score"] == "82"
    by_key = companies.basic_api.get_by_id("acme", id_property="es_account_key")
    assert by_key.id == created.id

    with pytest.raises(ApiException) as caught:
        companies.basic_api.update(created.id, {"properties": {"es_nope": "1", "name": "x"}})
    body = json.loads(caught.value.body)
    assert caught.value.status == 400
    assert (body["status"], body["category"]) == ("error", "VALIDATION_ERROR")
    assert body["message"].startswith("Property values were not valid: ")
    assert json.loads(body["message"].split(": ", 1)[1])[0]["error"] == "PROPERTY_DOESNT_EXIST"
    assert body["correlationId"]


def test_batches_of_100_with_207_partial_errors(crm_sandbox: SandboxHandle):
    companies = crm_sandbox.hubspot().crm.companies
    existing = companies.basic_api.create(company("Acme", "acme"))
    upserted = companies.batch_api.upsert(
        {
            "inputs": [
                {
                    "id": "acme",
                    "idProperty": "es_account_key",
                    "properties": {"es_health_score": "70"},
                },
                {"id": "beta", "idProperty": "es_account_key", "properties": {"name": "Beta"}},
            ]
        }
    )
    assert sorted((r.properties["es_account_key"], r.new) for r in upserted.results) == [
        ("acme", False),
        ("beta", True),
    ]
    assert {r.id for r in upserted.results if not r.new} == {existing.id}

    updated = companies.batch_api.update(
        {
            "inputs": [
                {"id": existing.id, "properties": {"es_health_band": "Healthy"}},
                {"id": "999", "properties": {"es_health_band": "At risk"}},
                {"id": existing.id, "properties": {"es_health_score": "lots"}},
            ]
        }
    )
    assert type(updated).__name__ == "BatchResponseSimplePublicObjectWithErrors"
    assert updated.num_errors == 2
    categories = sorted(e.category for e in updated.errors)
    assert categories == ["OBJECT_NOT_FOUND", "VALIDATION_ERROR"]
    assert [r.properties["es_health_band"] for r in updated.results] == ["Healthy"]

    read = companies.batch_api.read(
        {
            "inputs": [{"id": existing.id}, {"id": "404"}],
            "properties": ["name"],
            "propertiesWithHistory": [],
        }
    )
    assert [e.context for e in read.errors] == [{"ids": ["404"]}]

    with pytest.raises(ApiException) as caught:
        companies.batch_api.create({"inputs": [company(f"C{i}", f"c{i}") for i in range(101)]})
    assert caught.value.status == 400
    assert json.loads(caught.value.body)["category"] == "VALIDATION_ERROR"


def test_tasks_are_created_associated_to_their_company(crm_sandbox: SandboxHandle):
    client = crm_sandbox.hubspot()
    acme = client.crm.companies.basic_api.create(company("Acme", "acme"))
    tasks = client.crm.objects.tasks.batch_api.create(
        {
            "inputs": [
                {
                    "properties": {
                        "hs_task_subject": "Expand seats",
                        "hs_task_status": "NOT_STARTED",
                        "hs_timestamp": "2026-05-20T09:00:00Z",
                        "es_task_key": "acme:seats:1",
                    },
                    "associations": [{"to": {"id": acme.id}, "types": TASK_TO_COMPANY}],
                }
            ]
        }
    )
    task = tasks.results[0]
    assert task.properties["hs_timestamp"] == "2026-05-20T09:00:00.000Z"
    v4 = client.crm.associations.v4
    [link] = v4.basic_api.get_page("tasks", task.id, "companies").results
    assert (link.to_object_id, link.association_types[0].type_id) == (acme.id, 192)
    [back] = v4.basic_api.get_page("companies", acme.id, "tasks").results
    assert (back.to_object_id, back.association_types[0].type_id) == (task.id, 191)

    other = client.crm.objects.tasks.basic_api.create(
        {"properties": {"hs_task_subject": "Follow up"}, "associations": []}
    )
    spec = AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=192)
    v4.basic_api.create("tasks", other.id, "companies", acme.id, [spec])
    linked = v4.batch_api.get_page("companies", "tasks", {"inputs": [{"id": acme.id}]})
    assert sorted(t.to_object_id for t in linked.results[0].to) == sorted([task.id, other.id])

    with pytest.raises(Exception) as caught:
        client.crm.objects.tasks.batch_api.create(
            {
                "inputs": [
                    {
                        "properties": {"hs_task_subject": "x"},
                        "associations": [{"to": {"id": "123"}, "types": TASK_TO_COMPANY}],
                    }
                ]
            }
        )
    assert caught.value.status == 400  # type: ignore[attr-defined]


def test_properties_and_owners(crm_sandbox: SandboxHandle):
    ids = crm_sandbox.seed(
        {
            "owners": [
                ANA,
                {"key": "bo", "email": "bo@example.com", "last_name": "Berg", "manager": "ana"},
            ]
        }
    )["owners"]
    client = crm_sandbox.hubspot()
    props = {p.name: p for p in client.crm.properties.core_api.get_all("companies").results}
    score = props["es_readiness_score"]
    assert (score.type, score.field_type) == ("number", "number")
    assert score.modification_metadata.read_only_value is False
    assert props["hs_object_id"].modification_metadata.read_only_value is True
    assert props["es_account_key"].has_unique_value is True
    status = client.crm.properties.core_api.get_by_name("tasks", "hs_task_status")
    assert "COMPLETED" in [o.value for o in status.options]

    owners = client.crm.owners.owners_api.get_page(email="bo@example.com").results
    assert [(o.id, o.last_name) for o in owners] == [(ids["bo"]["hubspot_owner_id"], "Berg")]
    ana = client.crm.owners.owners_api.get_by_id(ids["ana"]["hubspot_owner_id"])
    assert ana.email == "ana@example.com"
    with pytest.raises(ApiException) as caught:
        client.crm.companies.basic_api.create(
            {"properties": {"name": "x", "hubspot_owner_id": "1"}, "associations": []}
        )
    assert "INVALID_OWNER_ID" in json.loads(caught.value.body)["message"]


def test_rate_limit_headers_and_the_429_body(crm_sandbox: SandboxHandle):
    crm_sandbox.set_limits(hubspot_interval_max=3)
    token = crm_sandbox.info["hubspot"]["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    remaining = []
    for _ in range(3):
        response = crm_sandbox.raw("GET", "/crm/v3/objects/companies", headers=auth)
        assert response.headers["X-HubSpot-RateLimit-Max"] == "3"
        assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert response.headers["X-HubSpot-RateLimit-Daily"] == "250000"
        remaining.append(response.headers["X-HubSpot-RateLimit-Remaining"])
        assert "X-HubSpot-RateLimit-Secondly-Remaining" in response.headers
    assert remaining == ["2", "1", "0"]
    limited = crm_sandbox.raw("GET", "/crm/v3/objects/companies", headers=auth)
    body = limited.json()
    assert limited.status_code == 429
    assert body == {
        "status": "error",
        "message": "You have reached your secondly limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": body["correlationId"],
        "policyName": "SECONDLY",
    }

    crm_sandbox.set_limits(hubspot_interval_max=100)
    crm_sandbox.set_faults(hubspot={"storm": 2, "retry_after_s": 3})
    # A POST: urllib3's default Retry would wait out Retry-After and repeat a GET itself.
    with pytest.raises(ApiException) as caught:
        crm_sandbox.hubspot().crm.companies.basic_api.create(company("Acme", "acme"))
    assert (caught.value.status, caught.value.headers["Retry-After"]) == (429, "3")
    assert crm_sandbox.raw("GET", "/crm/v3/objects/companies", headers=auth).status_code == 429
    assert crm_sandbox.raw("GET", "/crm/v3/objects/companies", headers=auth).status_code == 200


def test_expired_and_unknown_tokens_get_401_and_oauth_refresh_issues_a_new_one(
    crm_sandbox: SandboxHandle,
):
    with pytest.raises(ApiException) as caught:
        crm_sandbox.hubspot(access_token="wrong").crm.companies.basic_api.get_page()
    assert json.loads(caught.value.body)["category"] == "INVALID_AUTHENTICATION"
    crm_sandbox.set_faults(hubspot={"expire_session": 1})
    with pytest.raises(ApiException) as caught:
        crm_sandbox.hubspot().crm.companies.basic_api.get_page()
    assert json.loads(caught.value.body)["category"] == "EXPIRED_AUTHENTICATION"

    hs = crm_sandbox.info["hubspot"]
    refreshed = crm_sandbox.raw(
        "POST",
        "/oauth/v1/token",
        data={
            "grant_type": "refresh_token",
            "client_id": hs["client_id"],
            "client_secret": hs["client_secret"],
            "refresh_token": hs["refresh_token"],
        },
    ).json()
    assert refreshed["token_type"] == "bearer" and refreshed["expires_in"] == 1800
    fresh = crm_sandbox.hubspot(access_token=refreshed["access_token"])
    assert fresh.crm.companies.basic_api.get_page().results == []


@pytest.mark.skipif(not HUBSPOT_SPECS.is_dir(), reason="../shared absent")
def test_the_spec_check_flags_a_body_that_breaks_the_specs(crm_sandbox: SandboxHandle):
    token = crm_sandbox.info["hubspot"]["access_token"]
    crm_sandbox.raw(
        "POST",
        "/crm/v3/objects/companies/batch/upsert",
        headers={"Authorization": f"Bearer {token}"},
        json={"inputs": [{"properties": {"name": 1}}]},
    )
    [bad] = crm_sandbox.requests("hubspot")
    assert "request $.inputs[0]: required key 'id' is missing" in bad["spec_errors"]
    assert "request $.inputs[0].properties.name: expected string, got int 1" in bad["spec_errors"]
    assert crm_sandbox.admin("GET", "spec") == {
        "enabled": True,
        "operations": ["POST /crm/v3/objects/companies/batch/upsert"],
    }
    crm_sandbox.reset()


def test_search_finds_a_task_by_its_key(crm_sandbox: SandboxHandle):
    tasks = crm_sandbox.hubspot().crm.objects.tasks
    for key in ("acme:1", "acme:2"):
        tasks.basic_api.create({"properties": {"es_task_key": key}, "associations": []})
    found = tasks.search_api.do_search(
        {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "es_task_key", "operator": "IN", "values": ["acme:2", "x"]}
                    ]
                }
            ],
            "properties": ["es_task_key"],
            "limit": 10,
            "after": "0",
            "sorts": [],
        }
    )
    assert (found.total, found.results[0].properties["es_task_key"]) == (1, "acme:2")
