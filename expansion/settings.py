"""Process settings read from the environment, with embedded defaults for local runs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    return raw in {"1", "true", "yes", "on"}


def _list(env: dict[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to know; secrets come from the environment only."""

    var_dir: Path
    database_url: str | None
    redis_url: str | None
    broker_url: str | None
    public_base_url: str | None
    mappings_dir: Path
    max_body_bytes: int = 1024 * 1024
    auto_migrate: bool = True
    hubspot_client_secret: str | None = None
    hubspot_app_id: str | None = None
    hubspot_portal_ids: tuple[str, ...] = ()
    hubspot_accept_v1_v2: bool = False
    salesforce_org_id: str | None = None
    salesforce_integration_user_id: str | None = None
    salesforce_shared_secret: str | None = None
    stripe_webhook_secret: str | None = None
    chargebee_webhook_username: str | None = None
    chargebee_webhook_password: str | None = None
    segment_shared_secret: str | None = None
    standard_webhooks_secret: str | None = None
    ingest_max_attempts: int = 5
    inbox_sweep_after_seconds: int = 120
    inbox_sweep_interval_seconds: int = 60
    task_time_limit_seconds: int = 300
    ingest_wake_interval_seconds: float = 0.05
    ingest_drain_batch: int = 100
    ingest_drain_grace_seconds: float = 0.25
    state_retention_days: int = 400
    recompute_debounce_seconds: float = 5.0
    board_token: str | None = None
    # The CRM writers (integration/writers/): credentials, the sandbox's CA, quota and retries.
    salesforce_instance_url: str | None = None
    salesforce_token_url: str | None = None
    salesforce_client_id: str | None = None
    salesforce_client_secret: str | None = None
    salesforce_api_version: str = "62.0"
    hubspot_access_token: str | None = None
    hubspot_api_host: str = "https://api.hubapi.com"
    hubspot_oauth_client_id: str | None = None
    hubspot_refresh_token: str | None = None
    crm_ca_bundle: str | None = None
    crm_quota_headroom_pct: float = 20.0
    salesforce_calls_per_second: float = 20.0
    hubspot_calls_per_second: float = 10.0
    crm_quota_pause_seconds: int = 300
    crm_flush_interval_seconds: int = 30
    crm_retry_attempts: int = 5
    crm_retry_max_seconds: float = 30.0

    @property
    def uses_embedded_redis(self) -> bool:
        return not (self.redis_url or self.broker_url)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        var_dir = Path(env.get("VAR_DIR") or PROJECT_ROOT / "var").resolve()
        mappings_dir = Path(env.get("MAPPINGS_DIR") or PROJECT_ROOT / "mappings").resolve()
        portal = env.get("HUBSPOT_PORTAL_ID", "")
        settings = cls(
            var_dir=var_dir,
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            broker_url=env.get("BROKER_URL") or None,
            public_base_url=(env.get("PUBLIC_BASE_URL") or "").rstrip("/") or None,
            mappings_dir=mappings_dir,
            max_body_bytes=_int(env, "MAX_WEBHOOK_BODY_BYTES", 1024 * 1024),
            auto_migrate=_flag(env, "AUTO_MIGRATE", True),
            hubspot_client_secret=env.get("HUBSPOT_CLIENT_SECRET") or None,
            hubspot_app_id=env.get("HUBSPOT_APP_ID") or None,
            hubspot_portal_ids=tuple(p.strip() for p in portal.split(",") if p.strip()),
            hubspot_accept_v1_v2=_flag(env, "HUBSPOT_ACCEPT_V1_V2", False),
            salesforce_org_id=env.get("SALESFORCE_ORG_ID") or None,
            salesforce_integration_user_id=env.get("SALESFORCE_INTEGRATION_USER_ID") or None,
            salesforce_shared_secret=env.get("SALESFORCE_SHARED_SECRET") or None,
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET") or None,
            chargebee_webhook_username=env.get("CHARGEBEE_WEBHOOK_USERNAME") or None,
            chargebee_webhook_password=env.get("CHARGEBEE_WEBHOOK_PASSWORD") or None,
            segment_shared_secret=env.get("SEGMENT_SHARED_SECRET") or None,
            standard_webhooks_secret=env.get("STANDARD_WEBHOOKS_SECRET") or None,
            ingest_max_attempts=_int(env, "INGEST_MAX_ATTEMPTS", 5),
            inbox_sweep_after_seconds=_int(env, "INBOX_SWEEP_AFTER_SECONDS", 120),
            inbox_sweep_interval_seconds=_int(env, "INBOX_SWEEP_INTERVAL_SECONDS", 60),
            task_time_limit_seconds=_int(env, "TASK_TIME_LIMIT_SECONDS", 300),
            ingest_wake_interval_seconds=_float(env, "INGEST_WAKE_INTERVAL_SECONDS", 0.05),
            ingest_drain_batch=_int(env, "INGEST_DRAIN_BATCH", 100),
            ingest_drain_grace_seconds=_float(env, "INGEST_DRAIN_GRACE_SECONDS", 0.25),
            state_retention_days=_int(env, "STATE_RETENTION_DAYS", 400),
            recompute_debounce_seconds=_float(env, "RECOMPUTE_DEBOUNCE_SECONDS", 5.0),
            board_token=env.get("BOARD_TOKEN") or None,
            salesforce_instance_url=(env.get("SALESFORCE_INSTANCE_URL") or "").rstrip("/") or None,
            salesforce_token_url=env.get("SALESFORCE_TOKEN_URL") or None,
            salesforce_client_id=env.get("SALESFORCE_CLIENT_ID") or None,
            salesforce_client_secret=env.get("SALESFORCE_CLIENT_SECRET") or None,
            salesforce_api_version=env.get("SALESFORCE_API_VERSION") or "62.0",
            hubspot_access_token=env.get("HUBSPOT_ACCESS_TOKEN") or None,
            hubspot_api_host=(env.get("HUBSPOT_API_HOST") or "https://api.hubapi.com").rstrip("/"),
            hubspot_oauth_client_id=env.get("HUBSPOT_OAUTH_CLIENT_ID") or None,
            hubspot_refresh_token=env.get("HUBSPOT_REFRESH_TOKEN") or None,
            crm_ca_bundle=env.get("CRM_CA_BUNDLE") or None,
            crm_quota_headroom_pct=_float(env, "CRM_QUOTA_HEADROOM_PCT", 20.0),
            salesforce_calls_per_second=_float(env, "SALESFORCE_CALLS_PER_SECOND", 20.0),
            hubspot_calls_per_second=_float(env, "HUBSPOT_CALLS_PER_SECOND", 10.0),
            crm_quota_pause_seconds=_int(env, "CRM_QUOTA_PAUSE_SECONDS", 300),
            crm_flush_interval_seconds=_int(env, "CRM_FLUSH_INTERVAL_SECONDS", 30),
            crm_retry_attempts=_int(env, "CRM_RETRY_ATTEMPTS", 5),
            crm_retry_max_seconds=_float(env, "CRM_RETRY_MAX_SECONDS", 30.0),
        )
        if settings.ingest_drain_grace_seconds <= settings.ingest_wake_interval_seconds:
            # The drain's last look must come after every wake its publish throttled.
            raise ValueError(
                "INGEST_DRAIN_GRACE_SECONDS must be greater than INGEST_WAKE_INTERVAL_SECONDS"
            )
        return settings

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return _sqlalchemy_url(self.database_url)
        return f"sqlite:///{self.var_dir / 'expansion.db'}"


def _sqlalchemy_url(url: str) -> str:
    """Accept the common `postgres://` and `postgresql://` forms and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
