"""One API budget per CRM org / portal, shared by every worker through Redis: a token bucket for
the call rate, the daily quota the CRM reports (less a headroom kept for other integrations),
and a pause every worker honours after a 429. Each check is one atomic Lua script."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

KEY_PREFIX = "expansion:crm-quota"

# KEYS[1]: the org's hash. ARGV: now_ms, rate per second, capacity, calls wanted, headroom
# share, pause_ms. Returns {0, ""} when granted, else {wait_ms, reason}.
_TAKE = """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local headroom = tonumber(ARGV[5])
local pause_ms = tonumber(ARGV[6])
local state = redis.call(
  'HMGET', KEYS[1], 'tokens', 'ts', 'used', 'total', 'blocked_until', 'blocked_by')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
local used = tonumber(state[3]) or 0
local total = tonumber(state[4])
local blocked_until = tonumber(state[5]) or 0
if blocked_until > now then
  return {blocked_until - now, state[6] or 'throttled'}
end
if total and used + wanted > total * (1 - headroom) then
  -- Paused; forgetting the total lets the first call after the pause read the CRM's count
  -- again (its daily window rolls), so writing resumes by itself.
  redis.call('HSET', KEYS[1], 'blocked_until', now + pause_ms, 'blocked_by', 'daily')
  redis.call('HDEL', KEYS[1], 'total')
  return {pause_ms, 'daily'}
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate / 1000)
if tokens < wanted then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
  return {math.ceil((wanted - tokens) * 1000 / rate), 'rate'}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - wanted), 'ts', now, 'used', used + wanted)
redis.call('PEXPIRE', KEYS[1], 172800000)
return {0, ''}
"""

# What a response's headers said. ARGV: used (-1 unknown), total (-1), interval remaining (-1).
_OBSERVE = """
local used = tonumber(ARGV[1])
local total = tonumber(ARGV[2])
local remaining = tonumber(ARGV[3])
if used >= 0 then redis.call('HSET', KEYS[1], 'used', used) end
if total >= 0 then redis.call('HSET', KEYS[1], 'total', total) end
if remaining >= 0 then
  local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens'))
  if tokens == nil or tokens > remaining then
    redis.call('HSET', KEYS[1], 'tokens', remaining)
  end
end
redis.call('PEXPIRE', KEYS[1], 172800000)
return 1
"""

# ARGV: until_ms. The org is throttled until then (never shortened by a later, shorter 429).
_BLOCK = """
local until_ms = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'blocked_until')) or 0
if until_ms > current then
  redis.call('HSET', KEYS[1], 'blocked_until', until_ms, 'blocked_by', 'throttled')
end
redis.call('PEXPIRE', KEYS[1], 172800000)
return 1
"""


@dataclass(frozen=True)
class Grant:
    wait_seconds: float  # 0: go ahead
    reason: str  # "", rate, throttled (a 429 paused the org) or daily (the budget is spent)

    @property
    def granted(self) -> bool:
        return self.wait_seconds == 0


class Budget:
    """The API budget of one CRM org or portal (`org` names it: the org id or portal id)."""

    def __init__(
        self,
        client: redis.Redis,
        crm: str,
        org: str,
        calls_per_second: float,
        headroom_pct: float,
        pause_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = f"{KEY_PREFIX}:{crm}:{org}"
        self.rate = calls_per_second
        self.capacity = max(1.0, calls_per_second)
        self.headroom = headroom_pct / 100
        self.pause_ms = int(pause_seconds * 1000)
        self.clock = clock
        self._take = client.register_script(_TAKE)
        self._observe = client.register_script(_OBSERVE)
        self._block = client.register_script(_BLOCK)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def take(self, calls: int = 1) -> Grant:
        """Spend `calls` now, or learn how long to wait and why (nothing is spent then)."""
        wait_ms, reason = self._take(
            keys=[self.key],
            args=[self._now_ms(), self.rate, self.capacity, calls, self.headroom, self.pause_ms],
        )
        reason = reason.decode() if isinstance(reason, bytes) else str(reason)
        return Grant(int(wait_ms) / 1000, reason)

    def observe(
        self, used: int | None = None, total: int | None = None, remaining: int | None = None
    ) -> None:
        """What the CRM reported: daily calls used of total, calls left in its rate window."""
        args = [-1 if value is None else value for value in (used, total, remaining)]
        self._observe(keys=[self.key], args=args)

    def block(self, seconds: float) -> None:
        """Every worker waits this long before its next call to this org (after a 429)."""
        self._block(keys=[self.key], args=[self._now_ms() + int(seconds * 1000)])
