"""The sandbox as a server: concurrent writers through both libraries, the admin API's checks
and reset, latency injection, and `expansion sandbox` started as a real process with a seed."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sandbox.clients import salesforce_client
from tests.sandbox_support import ANA, SandboxHandle, sandbox_fixture
from tests.support import BIN, ROOT

crm_sandbox = sandbox_fixture()
KEY = "Expansion_Account_Key__c"


def test_concurrent_writers_lose_nothing(crm_sandbox: SandboxHandle):
    def hubspot_batch(n: int) -> int:
        inputs = [
            {
                "id": f"hs-{n}-{i}",
                "idProperty": "es_account_key",
                "properties": {"name": f"Company {n}-{i}"},
            }
            for i in range(100)
        ]
        return len(crm_sandbox.hubspot().crm.companies.batch_api.upsert({"inputs": inputs}).results)

    def salesforce_batch(n: int) -> int:
        records = [
            {"attributes": {"type": "Account"}, KEY: f"sf-{n}-{i}", "Name": f"A {n}-{i}"}
            for i in range(200)
        ]
        results = crm_sandbox.salesforce().restful(
            f"composite/sobjects/Account/{KEY}", method="PATCH", json={"records": records}
        )
        return sum(r["success"] for r in results)

    with ThreadPoolExecutor(max_workers=8) as pool:
        hubspot = list(pool.map(hubspot_batch, range(8)))
        salesforce = list(pool.map(salesforce_batch, range(8)))
    assert (sum(hubspot), sum(salesforce)) == (800, 1600)
    assert len(crm_sandbox.records("hubspot", "companies")) == 800
    assert len(crm_sandbox.records("salesforce", "Account")) == 1600
    assert len(crm_sandbox.requests()) == 16
    assert {r["records"] for r in crm_sandbox.requests("salesforce")} == {200}


def test_admin_refuses_bad_settings_by_name_and_reset_clears_the_log(crm_sandbox: SandboxHandle):
    refused = crm_sandbox.http.post(
        f"{crm_sandbox.base_url}/_sandbox/faults", json={"hubspot": {"error_rate": 2}}
    )
    assert refused.status_code == 400
    assert refused.json()["problems"] == ["error_rate: Input should be less than or equal to 1"]
    refused = crm_sandbox.http.post(
        f"{crm_sandbox.base_url}/_sandbox/limits", json={"hubspot_dialy": 5}
    )
    assert refused.status_code == 400 and "hubspot_dialy" in refused.json()["problems"][0]

    both = crm_sandbox.set_faults(latency_ms=20)
    assert both["salesforce"]["latency_ms"] == both["hubspot"]["latency_ms"] == 20
    crm_sandbox.salesforce().query("SELECT Id FROM Account")
    assert len(crm_sandbox.requests()) == 1
    crm_sandbox.salesforce().Account.create({"Name": "Acme"})
    crm_sandbox.reset(records=True)
    assert crm_sandbox.requests() == []
    assert crm_sandbox.records("salesforce", "Account") == []
    assert len(crm_sandbox.records("salesforce", "User")) == 1


@pytest.mark.slow
def test_the_cli_serves_a_seeded_sandbox_and_prints_how_to_connect(tmp_path: Path):
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps(
            {
                "owners": [ANA],
                "accounts": [
                    {
                        "key": "acme",
                        "name": "Acme",
                        "owner": "ana",
                        "salesforce_id": "0018c00002AcmeQAAR",
                    }
                ],
            }
        )
    )
    proc = subprocess.Popen(
        [
            str(BIN / "expansion"),
            "sandbox",
            "--port",
            "0",
            "--json",
            "--tls-dir",
            str(tmp_path / "tls"),
            "--seed",
            str(seed),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        while not lines or lines[-1] != "}\n":
            line = proc.stdout.readline()
            assert line, "expansion sandbox exited before printing its details"
            lines.append(line)
        info = json.loads("".join(lines))
        assert info["ca_path"] == str(tmp_path / "tls" / "ca.pem")
        record = salesforce_client(info).Account.get("0018c00002AcmeQAAR")
        assert record["Name"] == "Acme"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
