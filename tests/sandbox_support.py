"""The CRM sandbox in tests: start it in-process on a free port with its own CA, and talk to it
through the real client libraries and its admin API (request log, faults, limits, webhooks).

NOTE for the writers (integration/writers/) - the interface below is stable:

    from tests.sandbox_support import sandbox_fixture, running_sandbox
    crm_sandbox = sandbox_fixture()             # a module-level line in your test file
    def test_x(crm_sandbox): ...                # a SandboxHandle, fresh per test

    crm_sandbox.info                 # the URLs and credentials (same as GET /_sandbox/)
    crm_sandbox.base_url, .ca_path   # https://127.0.0.1:PORT, the CA file to trust
    crm_sandbox.salesforce()         # simple_salesforce.Salesforce on the static session id
    crm_sandbox.hubspot()            # hubspot.HubSpot(access_token, host, ssl_ca_cert)
    crm_sandbox.requests("hubspot")  # the request log: method, path, status, records, spec_errors
    crm_sandbox.requests("hubspot", since=n)  # only entries with seq > n; seq numbers every API
                                     # call of both CRMs from 1, starting again at each reset()
    crm_sandbox.set_faults(hubspot={"storm": 3, "retry_after_s": 1}, salesforce={...})
    crm_sandbox.set_limits(hubspot_interval_max=100)
    crm_sandbox.seed({...})          # owners / accounts / extra fields, returns the ids by key
    crm_sandbox.records("salesforce", "Task")   # stored values with created_by / modified_by
    crm_sandbox.set_webhooks(hubspot_url=..., salesforce_url=...); .wait_webhooks()

Client recipes (sandbox/clients.py has them as functions):
- Salesforce: Salesforce(instance_url=base_url, session_id=token, session=s, version="62.0")
  with s = requests.Session(); s.verify = ca_path; s.trust_env = False. trust_env must be off:
  REQUESTS_CA_BUNDLE in the environment overrides session.verify in requests.
  OAuth: POST {base_url}/services/oauth2/token, grant_type=client_credentials (client_id,
  client_secret) or password (+ username, password) -> {"access_token", "instance_url", ...}.
- HubSpot: HubSpot(access_token=token, host=base_url, ssl_ca_cert=ca_path); pass retry=Retry(...)
  like the real one. OAuth refresh: POST {base_url}/oauth/v1/token (grant_type=refresh_token).

Schema: describe / properties show every field. Salesforce custom fields: Account has the
owned fields of mappings/sources/salesforce.yaml plus Expansion_Account_Key__c (external id);
Task has Expansion_Key__c (external id). HubSpot: companies have the es_* owned properties plus
es_account_key (unique); tasks have es_task_key (unique, usable as batch upsert idProperty).
Add more through seed {"salesforce_fields": {...}, "hubspot_properties": {...}}.
Faults (per CRM, POST /_sandbox/faults): error_rate (5xx), throttle_rate / storm (HubSpot 429
SECONDLY body, Salesforce 403 REQUEST_LIMIT_EXCEEDED; both with Retry-After: retry_after_s),
lost_response_rate (carried out, answered 504: tests idempotency), latency_ms, lock_error_rate
(Salesforce per-record UNABLE_TO_LOCK_ROW), expire_session (next N calls 401), seed.
Limits (POST /_sandbox/limits) are enforced: salesforce_daily (403 TotalRequests), hubspot_daily,
hubspot_interval_max per hubspot_interval_ms (429 SECONDLY, no Retry-After, like HubSpot).
Two library facts the sandbox made visible: hubspot-api-client's urllib3 default Retry already
waits out Retry-After and repeats GETs (never POSTs); and the specs require `associations` on
SimplePublicObjectInputForCreate, so send `associations=[]` for spec-valid creates.
Webhook actors: writes through the API are by the integration user (Salesforce LastModifiedById)
and by the app (HubSpot changeSource INTEGRATION, sourceId = app id 4242); the task page completes
as the task's owner. Defaults match tests/support.py TEST_SECRETS (org, user, app, portal, secret).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hubspot import HubSpot
from simple_salesforce import Salesforce
from werkzeug.serving import make_server

from sandbox.clients import hubspot_client, salesforce_client, trusting_session
from sandbox.config import SandboxConfig
from sandbox.server import Running, start
from tests.support import SHARED, wait_for

HUBSPOT_SPECS = SHARED / "specs" / "hubspot"
# An owner for seeds: {"owners": [ANA], "accounts": [{..., "owner": "ana"}]}
ANA = {"key": "ana", "email": "ana@example.com", "first_name": "Ana", "last_name": "Lopez"}


class SandboxHandle:
    def __init__(self, running: Running) -> None:
        self.running = running
        self.info = running.describe()
        self.base_url = running.base_url
        self.ca_path = str(running.ca_path)
        self.http = trusting_session(self.ca_path)

    # --- clients ---------------------------------------------------------------------------

    def salesforce(self, session_id: str | None = None) -> Salesforce:
        return salesforce_client(self.info, session_id)

    def hubspot(self, **config: Any) -> HubSpot:
        return hubspot_client(self.info, **config)

    # --- admin -----------------------------------------------------------------------------

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(
            method, f"{self.base_url}/_sandbox/{path}", json=body, timeout=30
        )
        response.raise_for_status()
        return response.json()

    def requests(self, crm: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        query = f"requests?since={since}" + (f"&crm={crm}" if crm else "")
        return self.admin("GET", query)["requests"]  # type: ignore[no-any-return]

    def reset(self, records: bool = False) -> None:
        self.admin("POST", "reset", {"records": records})

    def set_faults(self, **by_crm: dict[str, Any]) -> dict[str, Any]:
        return self.admin("POST", "faults", by_crm)  # type: ignore[no-any-return]

    def set_limits(self, **limits: int) -> dict[str, Any]:
        return self.admin("POST", "limits", limits)  # type: ignore[no-any-return]

    def set_webhooks(self, **config: Any) -> dict[str, Any]:
        return self.admin("POST", "webhooks", config)  # type: ignore[no-any-return]

    def seed(self, seed: dict[str, Any]) -> dict[str, Any]:
        return self.admin("POST", "seed", seed)  # type: ignore[no-any-return]

    def records(self, crm: str, name: str) -> list[dict[str, Any]]:
        return self.admin("GET", f"records/{crm}/{name}")["records"]  # type: ignore[no-any-return]

    def webhooks(self) -> dict[str, Any]:
        return self.admin("GET", "webhooks")  # type: ignore[no-any-return]

    def wait_webhooks(self, timeout: float = 30) -> list[dict[str, Any]]:
        """Wait until every change was delivered (or gave up); returns the deliveries."""
        wait_for(lambda: self.webhooks()["pending"] == 0, timeout, "sandbox webhooks")
        return self.webhooks()["deliveries"]  # type: ignore[no-any-return]

    def raw(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A plain HTTPS call to the emulated APIs (for bodies the libraries hide)."""
        return self.http.request(method, f"{self.base_url}{path}", timeout=30, **kwargs)


@contextlib.contextmanager
def running_sandbox(directory: Path, **config: Any) -> Iterator[SandboxHandle]:
    """A sandbox for the duration of the block; HubSpot bodies are checked against the specs
    when ../shared is present (see SandboxHandle.requests()[i]["spec_errors"])."""
    if "hubspot_spec_dir" not in config and HUBSPOT_SPECS.is_dir():
        config["hubspot_spec_dir"] = HUBSPOT_SPECS
    running = start(SandboxConfig(tls_dir=directory, **config))
    try:
        yield SandboxHandle(running)
    finally:
        running.stop()


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve a WSGI app (the receiver) over HTTP in a thread: the sandbox's webhook target."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def sandbox_fixture(scope: str = "function", **config: Any) -> Callable[..., Any]:
    """A pytest fixture (assign it at module level) yielding a running SandboxHandle."""

    @pytest.fixture(scope=scope)  # type: ignore[call-overload]
    def crm_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
        with running_sandbox(tmp_path_factory.mktemp("sandbox"), **config) as handle:
            yield handle

    return crm_sandbox  # type: ignore[no-any-return]
