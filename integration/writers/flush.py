"""The flush (SPEC §6): claim outbox intents, plan the delta per CRM, send it in batches under
the org's budget, and per batch commit what the CRM confirmed (snapshot, intent sent) and what
it refused (intent failed, or dead with the reason). A spent budget pauses the flush: its
unsent intents are released and `resume_after` says when to run again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from expansion.db import transaction, utcnow
from expansion.play_tables import outbox
from expansion.settings import Settings
from integration.writers import hubspot, salesforce
from integration.writers.engine import (
    Api,
    Caller,
    NotAuthorized,
    Paused,
    Result,
    TransientError,
    send_all,
)
from integration.writers.mapping import (
    CRMS,
    Crm,
    HubSpotOutbound,
    Outbound,
    SalesforceOutbound,
    configured,
    crm_org,
    outbound,
)
from integration.writers.plan import (
    Plan,
    confirm_fields,
    load_records,
    plan,
    record_state,
    targets,
)
from integration.writers.quota import Budget
from workers.outbox import (
    CRM_KINDS,
    NO_CRM,
    Intent,
    claim_pending,
    mark_failed,
    mark_sent,
    unsent,
)

log = logging.getLogger(__name__)
CLAIM_BATCH = 5000
PHASES = ("accounts", "creates", "updates")


@dataclass
class CrmReport:
    calls: int = 0
    sent: int = 0
    unchanged: int = 0
    failed: int = 0
    dead: int = 0
    retries: int = 0


@dataclass
class FlushReport:
    crms: dict[str, CrmReport] = field(default_factory=dict)
    resume_after: float | None = None  # seconds: a budget was spent, run again then

    def of(self, crm: str) -> CrmReport:
        return self.crms.setdefault(crm, CrmReport())

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.crms.values())


def budget(settings: Settings, crm: Crm, clock: Callable[[], float] = time.time) -> Budget:
    from workers.recompute import redis_client

    rate = (
        settings.salesforce_calls_per_second
        if crm == "salesforce"
        else settings.hubspot_calls_per_second
    )
    return Budget(
        redis_client(settings),
        crm,
        crm_org(settings, crm),
        rate,
        settings.crm_quota_headroom_pct,
        settings.crm_quota_pause_seconds,
        clock,
    )


def make_api(settings: Settings, crm: Crm, quota: Budget) -> Api:
    mapping = outbound(settings, crm)
    if crm == "salesforce":
        assert isinstance(mapping, SalesforceOutbound)
        return salesforce.SalesforceApi(settings, mapping, quota)
    assert isinstance(mapping, HubSpotOutbound)
    return hubspot.HubSpotApi(settings, mapping, quota)


_apis: dict[tuple[Settings, Crm], tuple[Outbound, Api]] = {}


def api_for(settings: Settings, crm: Crm, quota: Budget) -> Api:
    """The process's client of the CRM: its session (token) lasts across flushes, until the
    mapping file changes."""
    mapping = outbound(settings, crm)
    cached = _apis.get((settings, crm))
    if cached is None or cached[0] is not mapping:
        cached = _apis[(settings, crm)] = (mapping, make_api(settings, crm, quota))
    return cached[1]


def flush(
    settings: Settings,
    now: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    crm: Crm | None = None,
) -> FlushReport:
    """Send every pending intent (of one CRM: `crm`): claim, send, claim again until none is
    left, a budget is spent, or a claim brings back an intent this flush already tried (it
    failed: the next flush retries it, so each flush costs a failing intent one attempt only)."""
    report = FlushReport()
    available = configured(settings)
    if not available or (crm is not None and crm not in available):
        return report
    claims = None if crm is None else claimed_by(crm, available)
    clients: dict[Crm, tuple[Api, Caller]] = {}
    calls_before: dict[Crm, int] = {}
    tried: set[int] = set()
    while report.resume_after is None:
        with transaction(settings) as conn:
            claimed = claim_pending(conn, now(), limit=CLAIM_BATCH, crm=claims)
            intents = [i for i in claimed if i.id not in tried]
            where = targets(conn, intents)
        again = [i.id for i in claimed if i.id in tried]
        if again:
            _release(settings, again)
        if not intents:
            break
        tried.update(i.id for i in intents)
        for crm, group in _route(settings, intents, where, available, now(), report).items():
            if crm not in clients:
                quota = budget(settings, crm)
                api = api_for(settings, crm, quota)
                clients[crm] = (api, Caller(quota, settings, api.refresh, sleep))
                calls_before[crm] = api.calls
            api, caller = clients[crm]
            try:
                _flush_crm(settings, crm, api, caller, group, now, report.of(crm))
            except NotAuthorized as exc:
                log.error("crm credentials refused", extra={"crm": crm, "error": str(exc)})
                _fail_unsent(
                    settings, [i.id for i, _ in group], f"{crm}: {exc}", now(), report.of(crm)
                )
            except Paused as exc:
                report.resume_after = max(report.resume_after or 0, exc.seconds)
                log.warning(
                    "crm writes paused",
                    extra={"crm": crm, "seconds": exc.seconds, "reason": exc.reason},
                )
            report.of(crm).calls = api.calls - calls_before[crm]
            report.of(crm).retries = caller.retries
        if report.resume_after is not None:
            _release(settings, [i.id for i in intents])
        if again:
            break
    return report


def claimed_by(crm: Crm, available: list[Crm]) -> list[str]:
    """What the flush of `crm` claims: its intents and, for the first configured CRM, those no
    configured CRM takes (no CRM record, or a CRM without credentials), which it fails with the
    reason."""
    if crm != available[0]:
        return [crm]
    return [crm, NO_CRM, *(other for other in CRM_KINDS if other not in available)]


def _route(
    settings: Settings,
    intents: list[Intent],
    where: dict[int, tuple[str, str] | None],
    available: list[Crm],
    now: datetime,
    report: FlushReport,
) -> dict[Crm, list[tuple[Intent, str]]]:
    """The intents by target CRM, each with its account's record id there; an intent with no
    CRM record, or for a CRM without credentials, fails with the reason."""
    groups: dict[Crm, list[tuple[Intent, str]]] = {}
    for intent in intents:
        target = where[intent.id]
        if target is None:
            reason = "the account is not linked to a Salesforce or HubSpot record"
            _fail(settings, intent.id, reason, now, report.of("none"))
        elif target[0] not in available:
            reason = f"{target[0]} is not configured ({_missing(target[0])})"
            _fail(settings, intent.id, reason, now, report.of(target[0]))
        else:
            groups.setdefault(target[0], []).append((intent, target[1]))  # type: ignore[index]
    return groups


def _missing(crm: str) -> str:
    return (
        "set SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET"
        if crm == "salesforce"
        else "set HUBSPOT_ACCESS_TOKEN"
    )


def _flush_crm(
    settings: Settings,
    crm: Crm,
    api: Api,
    caller: Caller,
    group: list[tuple[Intent, str]],
    now: Callable[[], datetime],
    counts: CrmReport,
) -> None:
    mapping = outbound(settings, crm)
    with transaction(settings) as conn:
        planned = plan(conn, crm, mapping, group, now())
        for intent_id in planned.unchanged:
            mark_sent(conn, intent_id, now())
        for rejected in planned.rejected:
            status = mark_failed(
                conn, rejected.intent_id, rejected.reason, now(), permanent=rejected.permanent
            )
            _count(counts, status)
    counts.unchanged += len(planned.unchanged)
    if crm == "hubspot":
        _prepare_hubspot_tasks(settings, api, caller, planned, now)

    def confirm(phase: str) -> Callable[[list[Result]], None]:
        return lambda results: _confirm(settings, crm, phase, results, now(), counts)

    for phase, writes in zip(
        PHASES, (planned.accounts, planned.creates, planned.updates), strict=True
    ):
        if crm == "hubspot" and phase == "creates":
            writes = [w for w in writes if w.key not in api.known_ids]  # type: ignore[attr-defined]
        if phase == "creates":
            with transaction(settings) as conn:
                record_state(conn, crm, [w.key for w in writes], "sending", now())
        if crm == "hubspot" and phase == "updates":
            _known_hubspot_ids(settings, api, [w.key for w in writes])  # incl. just created
        send_all(api, caller, phase, writes, confirm(phase))


def _prepare_hubspot_tasks(
    settings: Settings, api: Any, caller: Caller, planned: Plan, now: Callable[[], datetime]
) -> None:
    """HubSpot task ids for updates, and creates that may already have happened (a crash or a
    timeout after sending): those are looked up by key and confirmed instead of sent again."""
    records = _known_hubspot_ids(settings, api, [w.key for w in planned.creates + planned.updates])
    doubtful = [w.key for w in planned.creates if records.get(w.key, (None, ""))[1] == "sending"]
    doubtful += [w.key for w in planned.updates if w.key not in api.known_ids]
    if doubtful:
        try:
            api.known_ids.update(caller(lambda: api.task_ids(doubtful)))
        except TransientError:
            return  # the creates go ahead; HubSpot's unique key refuses a second task anyway
    existing = [w for w in planned.creates if w.key in api.known_ids]
    if existing:
        results = [Result(w, crm_id=api.known_ids[w.key]) for w in existing]
        _confirm(settings, "hubspot", "creates", results, now(), CrmReport())


def _known_hubspot_ids(
    settings: Settings, api: Any, keys: list[str]
) -> dict[str, tuple[str | None, str]]:
    with transaction(settings) as conn:
        records = load_records(conn, "hubspot", keys)
    api.known_ids.update({k: crm_id for k, (crm_id, _) in records.items() if crm_id})
    return records


def _confirm(
    settings: Settings,
    crm: Crm,
    phase: str,
    results: list[Result],
    now: datetime,
    counts: CrmReport,
) -> None:
    """One transaction per batch: the snapshot and the intents of what the CRM confirmed, and
    the failures (retried later) or dead intents (a permanent error, with the reason)."""
    with transaction(settings) as conn:
        created = {
            r.write.key: r.crm_id for r in results if r.ok and phase == "creates" and r.crm_id
        }
        if created:
            record_state(conn, crm, list(created), "created", now, created)  # type: ignore[arg-type]
        for result in results:
            write = result.write
            if result.ok:
                confirm_fields(conn, crm, write.object, write.key, write.fields, now)
                for intent_id in write.intent_ids:
                    mark_sent(conn, intent_id, now, result.crm_id if write.create else None)
                counts.sent += len(write.intent_ids)
                continue
            for intent_id in write.intent_ids:
                status = mark_failed(
                    conn, intent_id, f"{crm}: {result.error}", now, permanent=not result.transient
                )
                _count(counts, status)


def _count(counts: CrmReport, status: str) -> None:
    if status == "dead":
        counts.dead += 1
    else:
        counts.failed += 1


def _fail(
    settings: Settings, intent_id: int, reason: str, now: datetime, counts: CrmReport
) -> None:
    with transaction(settings) as conn:
        _count(counts, mark_failed(conn, intent_id, reason, now))


def _fail_unsent(
    settings: Settings, intent_ids: list[int], reason: str, now: datetime, counts: CrmReport
) -> None:
    """The intents of this claim not confirmed yet fail (retried by later flushes; dead after
    the last attempt, with the reason for the admin)."""
    with transaction(settings) as conn:
        unsent = conn.execute(
            select(outbox.c.id).where(
                outbox.c.id.in_(intent_ids),
                outbox.c.status.in_(("pending", "failed")),
                outbox.c.claimed_at.is_not(None),
            )
        ).scalars()
        for intent_id in list(unsent):
            _count(counts, mark_failed(conn, intent_id, reason, now))


def _release(settings: Settings, intent_ids: list[int]) -> None:
    """Claimed intents this flush will not send go back to pending at once (not after the
    claim lease): what a paused flush left, and failures a claim brought back."""
    with transaction(settings) as conn:
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(intent_ids), outbox.c.status.in_(("pending", "failed")))
            .values(claimed_at=None)
        )


def dry_run_plans(settings: Settings, account_id: int | None) -> dict[str, Plan]:
    """What a flush would write now (nothing is claimed, sent or changed): per CRM, the plan of
    the pending intents, of one account or all."""
    with transaction(settings) as conn:
        intents = unsent(conn, account_id)
        where = targets(conn, intents)
        groups: dict[str, list[tuple[Intent, str]]] = {}
        for intent in intents:
            target = where[intent.id]
            if target is not None and target[0] in CRMS:
                groups.setdefault(target[0], []).append((intent, target[1]))
        return {
            crm: plan(conn, crm, outbound(settings, crm), group, utcnow())  # type: ignore[arg-type]
            for crm, group in groups.items()
        }
