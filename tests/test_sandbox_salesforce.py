"""The sandbox's Salesforce REST API through the real simple-salesforce over HTTPS: OAuth,
describe, CRUD and upsert, sObject Collections with per-record errors, SOQL, limits and the
Sforce-Limit-Info header, Bulk API 2.0, and the injected faults."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from sandbox.clients import salesforce_token
from tests.sandbox_support import ANA, SandboxHandle, sandbox_fixture

crm_sandbox = sandbox_fixture()
KEY = "Expansion_Account_Key__c"


def account(key: str, **fields: object) -> dict[str, object]:
    return {"attributes": {"type": "Account"}, KEY: key, **fields}


def test_oauth_grants_issue_tokens_the_library_can_use(crm_sandbox: SandboxHandle):
    for grant in ("client_credentials", "password"):
        token = salesforce_token(crm_sandbox.info, grant)
        assert token["instance_url"] == crm_sandbox.base_url
        assert token["token_type"] == "Bearer"
        assert token["id"].endswith("/00D000000000062EAA/005000000000042AAA")
        assert {"access_token", "issued_at", "signature"} <= set(token)
        sf = crm_sandbox.salesforce(session_id=token["access_token"])
        assert sf.query("SELECT Id FROM User LIMIT 1")["totalSize"] == 1

    refused = crm_sandbox.raw(
        "POST",
        "/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
    )
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_client")
    with pytest.raises(SalesforceExpiredSession) as caught:
        crm_sandbox.salesforce(session_id="not-a-session").Account.describe()
    assert caught.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_describe_lists_fields_with_type_and_access(crm_sandbox: SandboxHandle):
    sf = crm_sandbox.salesforce()
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {"Account", "Task", "User", "Contact", "Opportunity", "Case"} <= names
    fields = {f["name"]: f for f in sf.Account.describe()["fields"]}
    score = fields["Expansion_Readiness_Score__c"]
    assert (score["type"], score["createable"], score["updateable"]) == ("double", True, True)
    assert fields[KEY]["externalId"] is True
    assert (fields["Id"]["updateable"], fields["LastModifiedById"]["createable"]) == (False, False)
    task = {f["name"]: f for f in sf.Task.describe()["fields"]}
    assert task["Expansion_Key__c"]["externalId"] is True
    assert "Completed" in [v["value"] for v in task["Status"]["picklistValues"]]
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful("sobjects/Nope__c/describe")


def test_crud_and_upsert_by_external_id(crm_sandbox: SandboxHandle):
    sf = crm_sandbox.salesforce()
    created = sf.Account.create({"Name": "Acme", KEY: "acme"})
    assert created["success"] and created["errors"] == []
    assert sf.Account.update(created["id"], {"Health_Score__c": 61.5}) == 204
    record = sf.Account.get(created["id"])
    assert (record["Name"], record["Health_Score__c"]) == ("Acme", 61.5)
    assert record["LastModifiedById"] == "005000000000042AAA"
    assert sf.Account.upsert(f"{KEY}/beta", {"Name": "Beta"}) == 201
    assert sf.Account.upsert(f"{KEY}/beta", {"Health_Band__c": "Healthy"}) == 200
    assert sf.Account.get_by_custom_id(KEY, "beta")["Health_Band__c"] == "Healthy"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Account.create({"Health_Score__c": 3})
    assert caught.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert sf.Account.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get(created["id"])


def test_collections_answer_200_with_per_record_errors(crm_sandbox: SandboxHandle):
    sf = crm_sandbox.salesforce()
    upserted = sf.restful(
        f"composite/sobjects/Account/{KEY}",
        method="PATCH",
        json={
            "allOrNone": False,
            "records": [
                account("a1", Name="A1"),
                account("a2", Name="A2", Foo__c=1),
                account("a3", Name="A3", Health_Score__c="high"),
            ],
        },
    )
    assert [r["success"] for r in upserted] == [True, False, False]
    assert upserted[0]["created"] is True
    assert upserted[1]["errors"] == [
        {
            "statusCode": "INVALID_FIELD",
            "message": "No such column 'Foo__c' on sobject of type Account",
            "fields": [],
        }
    ]
    assert upserted[2]["errors"][0]["statusCode"] == "INVALID_TYPE_ON_FIELD_IN_RECORD"

    updated = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Account"}, "id": upserted[0]["id"], "Health_Score__c": 80},
                {
                    "attributes": {"type": "Account"},
                    "id": "001000000000000AAA",
                    "Health_Score__c": 1,
                },
            ],
        },
    )
    assert updated[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert updated[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert sf.Account.get(upserted[0]["id"])["Health_Score__c"] is None

    created = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "records": [
                {"attributes": {"type": "Task"}, "Subject": "Call", "Expansion_Key__c": "k1"},
                {"attributes": {"type": "Task"}, "Subject": "Dup", "Expansion_Key__c": "k1"},
            ],
        },
    )
    assert created[0]["success"] is True
    assert created[1]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"

    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful(
            f"composite/sobjects/Account/{KEY}",
            method="PATCH",
            json={"records": [account(f"k{i}", Name="x") for i in range(201)]},
        )
    assert caught.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_soql_subset(crm_sandbox: SandboxHandle):
    sf = crm_sandbox.salesforce()
    owner = crm_sandbox.seed(
        {
            "owners": [ANA],
            "accounts": [
                {"key": "acme", "name": "Acme", "owner": "ana", "fields": {KEY: "acme"}},
                {"key": "beta", "name": "Beta", "owner": "ana", "fields": {KEY: "beta"}},
                {"key": "gamma", "name": "Gamma"},
            ],
        }
    )["owners"]["ana"]
    rows = sf.query(
        "SELECT Id, Name, Owner.Email FROM Account WHERE Name IN ('Acme', 'Gamma') "
        "ORDER BY Name DESC LIMIT 5"
    )["records"]
    assert [r["Name"] for r in rows] == ["Gamma", "Acme"]
    assert rows[1]["Owner"]["Email"] == "ana@example.com"
    by_owner = sf.query(f"SELECT Name FROM Account WHERE OwnerId = '{owner['salesforce_user_id']}'")
    assert by_owner["totalSize"] == 2
    assert sf.query("SELECT COUNT() FROM Account WHERE Name != 'Acme'")["totalSize"] == 2
    keyed = sf.query(f"SELECT Name FROM Account WHERE {KEY} IN ('beta', 'acme', 'zeta', 'beta')")
    assert sorted(r["Name"] for r in keyed["records"]) == ["Acme", "Beta"]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id FROM Account WHERE")
    assert caught.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Nope__c FROM Account")
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_limits_and_the_limit_info_header_count_calls(crm_sandbox: SandboxHandle):
    sf = crm_sandbox.salesforce()
    crm_sandbox.set_limits(salesforce_daily=5)
    sf.query("SELECT Id FROM Account")
    assert sf.api_usage["api-usage"].used == 1
    assert sf.api_usage["api-usage"].total == 5
    assert sf.limits()["DailyApiRequests"] == {"Max": 5, "Remaining": 3}
    sf.query("SELECT Id FROM Account")
    sf.query("SELECT Id FROM Account")
    sf.query("SELECT Id FROM Account")
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM Account")
    assert caught.value.content == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert len(crm_sandbox.requests("salesforce")) == 6


def test_injected_faults(crm_sandbox: SandboxHandle):
    sf = crm_sandbox.salesforce()
    created = sf.Account.create({"Name": "Acme", KEY: "acme"})

    crm_sandbox.set_faults(salesforce={"expire_session": 1})
    with pytest.raises(SalesforceExpiredSession):
        sf.Account.get(created["id"])
    assert sf.Account.get(created["id"])["Name"] == "Acme"

    crm_sandbox.set_faults(salesforce={"storm": 1, "retry_after_s": 7})
    throttled = crm_sandbox.raw(
        "GET",
        "/services/data/v62.0/limits/",
        headers={"Authorization": f"Bearer {crm_sandbox.info['salesforce']['session_id']}"},
    )
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (403, "7")
    assert throttled.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"

    crm_sandbox.set_faults(salesforce={"lock_error_rate": 1.0})
    locked = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Account"}, "id": created["id"], "Health_Score__c": 5}
            ]
        },
    )
    assert locked[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"

    crm_sandbox.set_faults(salesforce={"lost_response_rate": 1.0})
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.Account.update(created["id"], {"Health_Score__c": 9})
    assert caught.value.status == 504
    crm_sandbox.set_faults(salesforce={})
    assert sf.Account.get(created["id"])["Health_Score__c"] == 9

    crm_sandbox.set_faults(salesforce={"error_rate": 1.0})
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.Account.get(created["id"])
    assert caught.value.status == 503
    crm_sandbox.set_faults(salesforce={})
    assert sf.Account.get(created["id"])["Health_Score__c"] == 9


def test_bulk_api_2_upsert_reports_each_record(crm_sandbox: SandboxHandle):
    sf = crm_sandbox.salesforce()
    records = [{KEY: f"bulk-{i}", "Name": f"Account {i}"} for i in range(2100)]
    records.append({KEY: "bulk-bad", "Name": "Bad", "Health_Score__c": "high"})
    [result] = sf.bulk2.Account.upsert(records=records, external_id_field=KEY, wait=0.1)
    assert (result["numberRecordsProcessed"], result["numberRecordsFailed"]) == (2101, 1)
    failed = sf.bulk2.Account.get_failed_records(result["job_id"])
    assert failed.splitlines()[0].startswith('"sf__Id","sf__Error"') or failed.startswith(
        "sf__Id,sf__Error"
    )
    assert "INVALID_TYPE_ON_FIELD_IN_RECORD" in failed
    successful = sf.bulk2.Account.get_successful_records(result["job_id"])
    assert len(successful.splitlines()) == 2101
    everything = sf.query_all(f"SELECT Id, {KEY} FROM Account")
    assert everything["totalSize"] == 2100 and len(everything["records"]) == 2100
