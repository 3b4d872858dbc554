"""The unchanged client libraries pointed at a running sandbox (the recipe, in code).

Salesforce (simple-salesforce 1.12): `Salesforce(instance_url=base_url, session_id=token,
session=s, version="62.0")` where `s` is a requests.Session with `s.verify = ca_path` AND
`s.trust_env = False` - with REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE set in the environment, requests
lets that bundle override `session.verify`. Tokens come from POST {base_url}/services/oauth2/token
(client_credentials or password grant; simple-salesforce's own login only talks to
*.salesforce.com), or use the sandbox's static session id.

HubSpot (hubspot-api-client 12): `HubSpot(access_token=token, host=base_url,
ssl_ca_cert=ca_path)`; every extra keyword of `HubSpot(...)` is set on each API's
`Configuration` (discovery_base.py), whose `host` setter replaces https://api.hubapi.com and
whose `ssl_ca_cert` is handed to urllib3 as `ca_certs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from hubspot import HubSpot
from simple_salesforce import Salesforce


def trusting_session(ca_path: str | Path) -> requests.Session:
    session = requests.Session()
    session.verify = str(ca_path)
    session.trust_env = False
    return session


def salesforce_token(info: dict[str, Any], grant: str = "client_credentials") -> dict[str, Any]:
    """An OAuth token response from the sandbox (`info` is GET /_sandbox/ or describe())."""
    sf = info["salesforce"]
    form = {"grant_type": grant, "client_id": sf["client_id"], "client_secret": sf["client_secret"]}
    if grant == "password":
        form.update(username=sf["username"], password=sf["password"])
    response = trusting_session(info["ca_path"]).post(sf["token_url"], data=form, timeout=10)
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def salesforce_client(info: dict[str, Any], session_id: str | None = None) -> Salesforce:
    sf = info["salesforce"]
    return Salesforce(
        instance_url=sf["instance_url"],
        session_id=session_id or sf["session_id"],
        session=trusting_session(info["ca_path"]),
        version=sf["api_version"],
    )


def hubspot_client(info: dict[str, Any], **config: Any) -> HubSpot:
    hs = info["hubspot"]
    return HubSpot(
        access_token=config.pop("access_token", hs["access_token"]),
        host=hs["host"],
        ssl_ca_cert=info["ca_path"],
        **config,
    )
