"""One CRM's benchmark world: a fresh SQLite and embedded Redis under a temporary VAR_DIR, a
CRM sandbox seeded with the accounts (each linked locally), intents queued through the real
outbox, flushes by the real writer, and a naive one-call-per-record writer for comparison."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update

from expansion import db
from expansion.db import transaction
from expansion.models import account_links, accounts
from expansion.play_tables import outbox
from expansion.settings import PROJECT_ROOT, Settings
from integration.writers.flush import flush
from integration.writers.mapping import crm_value, outbound
from sandbox.clients import hubspot_client, salesforce_client, salesforce_token, trusting_session
from sandbox.config import Limits, SandboxConfig
from sandbox.server import Running, start
from workers.outbox import enqueue_intent

MAX_FLUSHES = 50  # with faults, failed intents are retried by the next flush (as beat does)


class Scenario:
    def __init__(self, crm: str, work: Path, count: int) -> None:
        self.crm = crm
        self.work = work
        self.count = count
        self.sandbox: Running | None = None
        self.settings: Settings | None = None
        self.account_ids: list[int] = []
        self.links: dict[int, str] = {}

    # --- setup -------------------------------------------------------------------------------

    def __enter__(self) -> Scenario:
        self.work.mkdir(parents=True, exist_ok=True)
        limits = Limits(
            salesforce_daily=10_000_000, hubspot_daily=10_000_000, hubspot_interval_max=100_000
        )
        self.sandbox = start(SandboxConfig(tls_dir=self.work / "tls", limits=limits))
        self.http = trusting_session(self.sandbox.ca_path)
        info = self.sandbox.describe()
        self.info = info
        env = {
            "VAR_DIR": str(self.work / "var"),
            "MAPPINGS_DIR": str(PROJECT_ROOT / "mappings"),
            "CRM_CA_BUNDLE": str(self.sandbox.ca_path),
            "CRM_RETRY_ATTEMPTS": "8",
            "CRM_RETRY_MAX_SECONDS": "5",
            "SALESFORCE_CALLS_PER_SECOND": "1000",
            "HUBSPOT_CALLS_PER_SECOND": "1000",
        }
        if self.crm == "salesforce":
            env |= {
                "SALESFORCE_INSTANCE_URL": info["salesforce"]["instance_url"],
                "SALESFORCE_CLIENT_ID": info["salesforce"]["client_id"],
                "SALESFORCE_CLIENT_SECRET": info["salesforce"]["client_secret"],
            }
        else:
            env |= {
                "HUBSPOT_ACCESS_TOKEN": info["hubspot"]["access_token"],
                "HUBSPOT_API_HOST": info["hubspot"]["host"],
            }
        self.settings = Settings.from_env(env)
        db.upgrade(self.settings)
        self._seed()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.sandbox is not None:
            self.sandbox.stop()
        db.dispose_engines()

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        assert self.sandbox is not None
        response = self.http.request(
            method, f"{self.sandbox.base_url}/_sandbox/{path}", json=body, timeout=600
        )
        response.raise_for_status()
        return response.json()

    def _seed(self) -> None:
        owners = [{"key": "csm", "email": "csm@bench.test", "last_name": "Csm"}]
        accounts_ = [{"key": f"a{n}", "name": f"Account {n}"} for n in range(self.count)]
        seeded = self.admin("POST", "seed", {"owners": owners, "accounts": accounts_})
        owner = seeded["owners"]["csm"]
        self.owner = owner["salesforce_user_id" if self.crm == "salesforce" else "hubspot_owner_id"]
        now = _now()
        with transaction(self.settings) as conn:  # type: ignore[arg-type]
            for n in range(self.count):
                account_id = int(
                    conn.execute(
                        insert(accounts).values(name=f"Account {n}", created_at=now, updated_at=now)
                    ).inserted_primary_key[0]
                )
                external = seeded["accounts"][f"a{n}"][f"{self.crm}_id"]
                conn.execute(
                    insert(account_links).values(
                        kind=self.crm, external_id=external, account_id=account_id, created_at=now
                    )
                )
                self.account_ids.append(account_id)
                self.links[account_id] = external

    # --- what is measured ---------------------------------------------------------------------

    def requests(self) -> list[dict[str, Any]]:
        return self.admin("GET", f"requests?crm={self.crm}")["requests"]  # type: ignore[no-any-return]

    def queue(self, fields: dict[str, Any], tasks_key: str | None = None) -> None:
        now = _now()
        with transaction(self.settings) as conn:  # type: ignore[arg-type]
            for account_id in self.account_ids:
                key = f"account-{account_id}"
                enqueue_intent(conn, "set_fields", key, {"fields": fields}, now, account_id)
                if tasks_key:
                    enqueue_intent(
                        conn,
                        "create_task",
                        f"{tasks_key}-{account_id}",
                        self._task(),
                        now,
                        account_id,
                    )

    def _task(self) -> dict[str, Any]:
        return {
            "subject": "Send the utilization report",
            "body": "Seats at 96% of the licence.",
            "owner": self.owner,
            "owner_is_queue": False,
            "due_date": "2026-06-03",
            "priority": "high",
        }

    def sync(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Queue `fields` for every account and flush once; the calls it took."""
        self.queue(fields)
        before = len(self.requests())
        started = time.monotonic()
        result = flush(self.settings)  # type: ignore[arg-type]
        seconds = time.monotonic() - started
        calls = self.requests()[before:]
        api_calls = [c for c in calls if "oauth2/token" not in c["path"]]
        counts = result.of(self.crm)
        return {
            "calls": len(calls),
            "write_calls": len(api_calls),
            "sent": counts.sent,
            "unchanged": counts.unchanged,
            "seconds": round(seconds, 2),
            "paths": dict(Counter(c["path"].split("/")[-1] or c["path"] for c in calls)),
        }

    def sync_with_faults(self, fields: dict[str, Any], rate: float) -> dict[str, Any]:
        """New values and a task per account while `rate` of the calls fail (half 429, half
        5xx); flushes until nothing is pending (a retried intent waits for the next flush)."""
        self.admin(
            "POST",
            "faults",
            {
                self.crm: {
                    "error_rate": rate / 2,
                    "throttle_rate": rate / 2,
                    "retry_after_s": 0,
                    "seed": 17,
                }
            },
        )
        self.queue(fields, tasks_key="es-bench-task")
        before, sent_before = len(self.requests()), self._count("sent")
        rounds = 0
        while rounds < MAX_FLUSHES and self._count("pending", "failed"):
            flush(self.settings, sleep=lambda s: time.sleep(min(s, 0.05)))  # type: ignore[arg-type]
            rounds += 1
        self.admin("POST", "faults", {self.crm: {}})
        calls = self.requests()[before:]
        keys = Counter(self._task_keys())
        return {
            "rounds": rounds,
            "calls": len(calls),
            "faults_seen": sum(1 for c in calls if c["status"] in (403, 429, 500, 502, 503)),
            "sent": self._count("sent") - sent_before,
            "dead": self._count("dead"),
            "pending": self._count("pending", "failed"),
            "tasks": len(keys),
            "duplicate_tasks": sum(n - 1 for n in keys.values()),
        }

    def _count(self, *statuses: str) -> int:
        with transaction(self.settings) as conn:  # type: ignore[arg-type]
            return int(
                conn.execute(
                    select(func.count()).select_from(outbox).where(outbox.c.status.in_(statuses))
                ).scalar_one()
            )

    def _task_keys(self) -> list[str]:
        obj = "Task" if self.crm == "salesforce" else "tasks"
        field = "Expansion_Key__c" if self.crm == "salesforce" else "es_task_key"
        records = self.admin("GET", f"records/{self.crm}/{obj}")["records"]
        return [r["values"].get(field) for r in records if r["values"].get(field)]

    # --- throughput ---------------------------------------------------------------------------

    def timed_batched(self, count: int) -> float:
        """Seconds for the writer to send one changed field of `count` accounts."""
        chosen = self.account_ids[:count]
        with transaction(self.settings) as conn:  # type: ignore[arg-type]
            conn.execute(update(outbox).values(status="sent"))
            for account_id in chosen:
                payload = {"fields": {"readiness_score": 90}}
                enqueue_intent(
                    conn, "set_fields", f"account-{account_id}", payload, _now(), account_id
                )
        started = time.monotonic()
        flush(self.settings)  # type: ignore[arg-type]
        return time.monotonic() - started

    def timed_naive(self, count: int) -> float:
        """Seconds for one call per record (the same field and values), through the library."""
        mapping = outbound(self.settings, self.crm)  # type: ignore[arg-type]
        spec = mapping.account.fields["readiness_score"]
        value = crm_value(self.crm, spec, 91)  # type: ignore[arg-type]
        ids = [self.links[a] for a in self.account_ids[:count]]
        started = time.monotonic()
        if self.crm == "salesforce":
            token = salesforce_token(self.info)["access_token"]
            client = salesforce_client(self.info, token)
            for record_id in ids:
                client.Account.update(record_id, {spec.field: value})
        else:
            companies = hubspot_client(self.info).crm.companies.basic_api
            for record_id in ids:
                companies.update(record_id, {"properties": {spec.field: value}})
        return time.monotonic() - started


def _now() -> Any:
    return db.utcnow()
