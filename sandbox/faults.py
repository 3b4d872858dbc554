"""The gate every API call passes: bearer-token check, the quotas (Salesforce daily requests,
HubSpot daily and rolling-interval limits) with their headers, and the injected faults."""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import deque

from sandbox.config import Crm, Faults, SandboxConfig
from sandbox.responses import ApiError, correlation_id, hs_error, json_response, sf_error

HUBSPOT_AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


class Gate:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self.tokens: dict[Crm, set[str]] = {
            "salesforce": {config.salesforce_session_id},
            "hubspot": {config.hubspot_access_token},
        }
        self.used: dict[Crm, int] = {"salesforce": 0, "hubspot": 0}
        self._window: deque[float] = deque()
        self._random: dict[Crm, random.Random] = {}
        self.set_faults("salesforce", config.faults["salesforce"])
        self.set_faults("hubspot", config.faults["hubspot"])

    def set_faults(self, crm: Crm, faults: Faults) -> None:
        with self._lock:
            self.config.faults[crm] = faults
            self._random[crm] = random.Random(faults.seed)

    def issue_token(self, crm: Crm) -> str:
        prefix = self.config.salesforce_org_id[:15] + "!" if crm == "salesforce" else "CJ"
        token = prefix + secrets.token_urlsafe(24)
        with self._lock:
            self.tokens[crm].add(token)
        return token

    def reset_usage(self) -> None:
        with self._lock:
            self.used = {"salesforce": 0, "hubspot": 0}
            self._window.clear()

    # --- the checks, in the order the real services apply them ---------------------------

    def latency(self, crm: Crm) -> float:
        return self.config.faults[crm].latency_ms / 1000

    def admit(self, crm: Crm, authorization: str | None) -> None:
        """Raise the CRM's error response if the call is refused; else count it."""
        with self._lock:
            faults = self.config.faults[crm]
            token = (authorization or "").removeprefix("Bearer ").strip()
            if faults.expire_session:
                faults.expire_session -= 1
                raise self._unauthorized(crm, expired=True)
            if token not in self.tokens[crm]:
                raise self._unauthorized(crm, expired=False)
            self._check_quota(crm)
            chance = self._random[crm].random()
            if faults.storm or chance < faults.throttle_rate:
                faults.storm = max(0, faults.storm - 1)
                raise self._throttled(crm, faults.retry_after_s)
            self._count(crm)
            if self._random[crm].random() < faults.error_rate:
                raise self._server_error(crm)

    def lost_response(self, crm: Crm) -> ApiError | None:
        """A 504 replacing the answer of a call that was carried out (the reply got lost)."""
        with self._lock:
            rate = self.config.faults[crm].lost_response_rate
            if not (rate > 0 and self._random[crm].random() < rate):
                return None
        if crm == "salesforce":
            return sf_error(504, "REQUEST_TIMEOUT", "The request timed out at the gateway.")
        return hs_error(504, "GATEWAY_TIMEOUT", "The upstream server timed out.")

    def lock_error(self) -> bool:
        """Whether this Salesforce record write fails with UNABLE_TO_LOCK_ROW."""
        with self._lock:
            rate = self.config.faults["salesforce"].lock_error_rate
            return rate > 0 and self._random["salesforce"].random() < rate

    def _count(self, crm: Crm) -> None:
        self.used[crm] += 1
        if crm == "hubspot":
            self._window.append(time.monotonic())

    def _prune(self) -> None:
        horizon = time.monotonic() - self.config.limits.hubspot_interval_ms / 1000
        while self._window and self._window[0] < horizon:
            self._window.popleft()

    def _check_quota(self, crm: Crm) -> None:
        limits = self.config.limits
        if crm == "salesforce":
            if self.used["salesforce"] >= limits.salesforce_daily:
                raise sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            return
        if self.used["hubspot"] >= limits.hubspot_daily:
            raise hs_rate_limited("DAILY", "You have reached your daily limit.")
        self._prune()
        if len(self._window) >= limits.hubspot_interval_max:
            raise hs_rate_limited("SECONDLY", "You have reached your secondly limit.")

    def _unauthorized(self, crm: Crm, expired: bool) -> ApiError:
        if crm == "salesforce":
            return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if expired:
            return hs_error(
                401,
                "EXPIRED_AUTHENTICATION",
                "The OAuth token used to make this call expired 1 second(s) ago.",
            )
        return hs_error(401, "INVALID_AUTHENTICATION", HUBSPOT_AUTH_MESSAGE)

    def _throttled(self, crm: Crm, retry_after_s: int) -> ApiError:
        if crm == "salesforce":
            error = sf_error(
                403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."
            )
        else:
            error = hs_rate_limited("SECONDLY", "You have reached your secondly limit.")
        error.response.headers["Retry-After"] = str(retry_after_s)
        return error

    def _server_error(self, crm: Crm) -> ApiError:
        if crm == "salesforce":
            return sf_error(
                503, "SERVER_UNAVAILABLE", "Server temporarily unavailable; please retry."
            )
        return hs_error(502, "BAD_GATEWAY", "Bad Gateway: the server is temporarily unavailable.")

    # --- headers on every response -------------------------------------------------------

    def headers(self, crm: Crm) -> dict[str, str]:
        limits = self.config.limits
        with self._lock:
            if crm == "salesforce":
                return {
                    "Sforce-Limit-Info": f"api-usage={self.used['salesforce']}/"
                    f"{limits.salesforce_daily}"
                }
            self._prune()
            recent = sum(1 for t in self._window if t >= time.monotonic() - 1)
            return {
                "X-HubSpot-RateLimit-Daily": str(limits.hubspot_daily),
                "X-HubSpot-RateLimit-Daily-Remaining": str(
                    max(0, limits.hubspot_daily - self.used["hubspot"])
                ),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(limits.hubspot_interval_ms),
                "X-HubSpot-RateLimit-Max": str(limits.hubspot_interval_max),
                "X-HubSpot-RateLimit-Remaining": str(
                    max(0, limits.hubspot_interval_max - len(self._window))
                ),
                "X-HubSpot-RateLimit-Secondly": str(limits.hubspot_secondly),
                "X-HubSpot-RateLimit-Secondly-Remaining": str(
                    max(0, limits.hubspot_secondly - recent)
                ),
            }


def hs_rate_limited(policy: str, message: str) -> ApiError:
    """HubSpot's 429 body: no `category`, but `errorType` and the `policyName` hit."""
    body = {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy,
    }
    return ApiError(json_response(body, 429))
