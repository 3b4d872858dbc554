"""The sandbox's settings: identities and credentials of the emulated org and portal, quotas,
injected faults and webhook targets, validated so a bad admin call gets a named 400."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Crm = Literal["salesforce", "hubspot"]


class Mutable(BaseModel):
    """Unknown keys are errors; unlike the admin mappings these change at runtime."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Faults(Mutable):
    """Faults injected into one CRM's API calls (the admin endpoint replaces them at runtime)."""

    error_rate: float = Field(0.0, ge=0, le=1, description="share of calls answered 500/503")
    throttle_rate: float = Field(
        0.0, ge=0, le=1, description="share answered throttled (HubSpot 429, SF 403 limit)"
    )
    lost_response_rate: float = Field(
        0.0, ge=0, le=1, description="share of calls carried out but answered 504 (lost reply)"
    )
    storm: int = Field(0, ge=0, description="the next N calls are throttled")
    retry_after_s: int = Field(1, ge=0, description="Retry-After on injected throttles")
    latency_ms: int = Field(0, ge=0, description="added to every call")
    lock_error_rate: float = Field(
        0.0, ge=0, le=1, description="share of Salesforce records failing UNABLE_TO_LOCK_ROW"
    )
    expire_session: int = Field(0, ge=0, description="the next N authenticated calls get 401")
    seed: int | None = Field(None, description="random seed, for reproducible injection")


class Limits(Mutable):
    """Quotas enforced with the real headers and error bodies."""

    salesforce_daily: int = Field(100_000, ge=1)
    hubspot_daily: int = Field(250_000, ge=1)
    hubspot_interval_max: int = Field(100, ge=1, description="calls per rolling interval")
    hubspot_interval_ms: int = Field(10_000, ge=1)
    hubspot_secondly: int = Field(10, ge=1, description="shown in X-HubSpot-RateLimit-Secondly")


class Webhooks(Mutable):
    hubspot_url: str | None = None
    salesforce_url: str | None = None
    max_attempts: int = Field(5, ge=1)
    retry_base_s: float = Field(0.2, ge=0)
    batch_window_s: float = Field(0.1, ge=0, description="changes within it share one POST")


class SandboxConfig(Mutable):
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    tls_dir: Path = Path("var/sandbox")
    seed_file: Path | None = None
    hubspot_spec_dir: Path | None = Field(
        None, description="HubSpot OpenAPI specs; bodies are checked, violations logged"
    )
    # HubSpot: the portal, our app (its private-app token and client secret) and OAuth.
    hubspot_portal_id: int = 62515
    hubspot_app_id: int = 4242
    hubspot_access_token: str = "pat-na1-sandbox-0000-expansion-signals"
    hubspot_client_id: str = "sandbox-hubspot-client-id"
    hubspot_client_secret: str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
    hubspot_refresh_token: str = "sandbox-hubspot-refresh-token"
    # Salesforce: the org, the integration user our writes run as, and its connected app.
    salesforce_org_id: str = "00D000000000062EAA"
    salesforce_integration_user_id: str = "005000000000042AAA"
    salesforce_client_id: str = "sandbox-salesforce-consumer-key"
    salesforce_client_secret: str = "sandbox-salesforce-consumer-secret"
    salesforce_username: str = "integration@expansion-signals.sandbox"
    salesforce_password: str = "sandbox-password"
    salesforce_session_id: str = "00D000000000062!sandbox.static.session"
    salesforce_api_version: str = "62.0"
    limits: Limits = Field(default_factory=Limits)
    webhooks: Webhooks = Field(default_factory=Webhooks)
    faults: dict[Crm, Faults] = Field(
        default_factory=lambda: {"salesforce": Faults(), "hubspot": Faults()}
    )
