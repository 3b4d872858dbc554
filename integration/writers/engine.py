"""The one writer shape both CRMs share: every API call passes the org's budget and is retried
with backoff and jitter (Retry-After honoured) on throttling and server errors, with a new
session on 401; batches are sent, their per-record results read one by one, records failing
transiently sent again, and a batch the CRM refuses as a whole split to find the bad record."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from expansion.settings import Settings
from integration.writers.plan import Write
from integration.writers.quota import Budget

log = logging.getLogger(__name__)
T = TypeVar("T")
BACKOFF_BASE_SECONDS = 0.5


class TransientError(Exception):
    """The call may succeed later: 429, 5xx, a lock or limit error, a dropped connection."""

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        throttled: bool = False,
        daily: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.throttled = throttled
        self.daily = daily  # the CRM's daily limit: pause, do not retry now


class SessionExpired(Exception):
    """401: fetch a new session and call again."""


class Refused(Exception):
    """The CRM refused the whole request (a 400): no retry will change that."""


class NotAuthorized(Exception):
    """The credentials are refused (no session, or a fresh one is refused): nothing can be
    written to this CRM until they are fixed; the records are not at fault."""


class Paused(Exception):
    """The org's budget is spent (or a Retry-After is long): stop and resume later."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(f"paused {seconds:.0f} s ({reason})")
        self.seconds = seconds
        self.reason = reason


@dataclass(frozen=True)
class Result:
    """What the CRM said about one write: its record id, or the error and whether to retry."""

    write: Write
    crm_id: str | None = None
    error: str | None = None
    transient: bool = False  # a later flush may succeed (the intent fails, it does not die)
    resend: bool = False  # a record error to send again now (a locked row), not a spent call

    @property
    def ok(self) -> bool:
        return self.error is None


class Api(Protocol):
    """One CRM's calls; each method sends one batch and returns a Result per write, in order."""

    calls: int

    def batch_size(self, phase: str, total: int) -> int: ...

    def cost(self, phase: str, count: int) -> int:
        """The API calls one batch of `count` writes takes (one; more for a bulk job)."""
        ...

    def send(self, phase: str, writes: Sequence[Write]) -> list[Result]: ...

    def refresh(self) -> None: ...


class Caller:
    """Runs API calls under the budget with retries; `sleep` and `jitter` are injectable."""

    def __init__(
        self,
        budget: Budget,
        settings: Settings,
        refresh: Callable[[], None],
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.budget = budget
        self.attempts = max(1, settings.crm_retry_attempts)
        self.max_wait = settings.crm_retry_max_seconds
        self.pause = float(settings.crm_quota_pause_seconds)
        self.refresh = refresh
        self.sleep = sleep
        self.jitter = jitter
        self.retries = 0

    def backoff(self, attempt: int) -> float:
        """Exponential, capped, with jitter so that workers retrying together spread out."""
        ceiling = min(self.max_wait, BACKOFF_BASE_SECONDS * 2**attempt)
        return self.jitter(ceiling / 2, ceiling)

    def wait(self, seconds: float, reason: str) -> None:
        if seconds > self.max_wait:
            raise Paused(seconds, reason)
        self.sleep(seconds)

    def __call__(self, call: Callable[[], T], cost: int = 1) -> T:
        attempt = 0
        refreshed = False
        while True:
            grant = self.budget.take(cost)
            if grant.reason == "daily":
                raise Paused(grant.wait_seconds, "the daily API budget is spent")
            if not grant.granted:
                self.wait(grant.wait_seconds, grant.reason)
                continue
            try:
                return call()
            except SessionExpired:
                if refreshed:
                    raise NotAuthorized("the CRM refused a freshly issued session (401)") from None
                refreshed = True
                self.refresh()
            except TransientError as exc:
                if exc.daily:
                    self.budget.block(self.pause)
                    raise Paused(self.pause, f"the CRM's daily limit: {exc}") from None
                attempt += 1
                self.retries += 1
                delay = exc.retry_after if exc.retry_after is not None else self.backoff(attempt)
                if exc.throttled:
                    self.budget.block(delay)  # every worker on this org waits too
                if attempt >= self.attempts:
                    raise
                log.info("crm call retried", extra={"attempt": attempt, "error": str(exc)})
                self.wait(delay, "throttled" if exc.throttled else "retry")


def send_all(
    api: Api,
    caller: Caller,
    phase: str,
    writes: Sequence[Write],
    on_results: Callable[[list[Result]], None],
) -> None:
    """Send `writes` in batches; `on_results` gets every batch's final results (to confirm them
    at once). Records failing transiently are sent again, up to the retry attempts."""
    if not writes:
        return
    size = api.batch_size(phase, len(writes))
    for start in range(0, len(writes), size):
        pending = list(writes[start : start + size])
        for attempt in range(1, caller.attempts + 1):
            results = _send_or_split(api, caller, phase, pending)
            retry = [r for r in results if r.resend] if attempt < caller.attempts else []
            on_results([r for r in results if r not in retry])
            if not retry:
                break
            pending = [r.write for r in retry]
            caller.wait(caller.backoff(attempt), "records retried")


def _send_or_split(api: Api, caller: Caller, phase: str, writes: list[Write]) -> list[Result]:
    try:
        return caller(lambda: api.send(phase, writes), cost=api.cost(phase, len(writes)))
    except Refused as exc:
        if len(writes) == 1:
            return [Result(writes[0], error=str(exc))]
        middle = len(writes) // 2
        return [
            *_send_or_split(api, caller, phase, writes[:middle]),
            *_send_or_split(api, caller, phase, writes[middle:]),
        ]
    except TransientError as exc:
        # The call itself was retried already: these records wait for the next flush.
        return [Result(w, error=f"gave up after retries: {exc}", transient=True) for w in writes]
