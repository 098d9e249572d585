"""A circuit breaker per model: in this process, or shared by every process through Redis.

Closed: requests flow, outcomes are counted over a sliding window. Open (at least
``min_requests`` outcomes in the window and ``failure_ratio`` of them failures): the
model is skipped at once, so a dead upstream costs its callers nothing but a fallback.
After ``cooldown`` one probe request is let through (half-open); its success closes the
breaker, its failure opens it for another cooldown.

``allow()`` hands out a ticket (``DENY``, ``PASS`` or ``PROBE``) that the caller gives
back to ``record()`` with the outcome, so only the probe's own outcome decides a
half-open breaker, and outcomes of requests that started before it opened are ignored.

With ``redis:`` configured, ``SharedBreaker`` keeps the window, the open state and the
probe slot in Redis, updated by one Lua script per call on Redis's own clock: every
``--workers`` process and every replica sees one breaker per model, and exactly one of
them probes. If Redis cannot be reached the breaker falls back to this process's own
(a breaker must never be the reason a request fails), and says so in the log.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from hybridgate.config.settings import BreakerConfig

log = logging.getLogger("hybridgate.execute")

DENY, PASS, PROBE = 0, 1, 2
_LOCAL = 4  # a SharedBreaker's ticket that its in-process stand-in handed out


class Breaker:
    """One model's breaker in this process."""

    def __init__(self, cfg: BreakerConfig,
                 on_change: Callable[[bool], None] | None = None) -> None:
        self.cfg = cfg
        self._outcomes: deque[tuple[float, bool]] = deque()  # (time, ok)
        self._failures = 0
        self.opened_at: float | None = None
        self._probing = False
        self.on_change = on_change  # told True when it opens, False when it closes

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self._probing else "open"

    async def allow(self, now: float | None = None) -> int:
        return self.ticket(now)

    async def record(self, ok: bool, ticket: int = PASS, now: float | None = None) -> None:
        self.note(ok, ticket, now)

    def ticket(self, now: float | None = None) -> int:
        """May a request go to this model now? ``PROBE``: yes, as the half-open probe."""
        if not self.cfg.enabled or self.opened_at is None:
            return PASS
        now = time.monotonic() if now is None else now
        if not self._probing and now - self.opened_at >= self.cfg.cooldown:
            self._probing = True
            return PROBE
        return DENY

    def note(self, ok: bool, ticket: int = PASS, now: float | None = None) -> None:
        if not self.cfg.enabled:
            return
        was = self.opened_at is not None
        self._note(ok, ticket, time.monotonic() if now is None else now)
        if self.on_change is not None and was != (self.opened_at is not None):
            self.on_change(not was)

    def _note(self, ok: bool, ticket: int, now: float) -> None:
        if ticket == PROBE:  # the probe decides
            self._probing = False
            if ok:
                self.opened_at = None
                self._outcomes.clear()
                self._failures = 0
            else:
                self.opened_at = now
            return
        if self.opened_at is not None:
            return  # a request from before it opened: the probe will decide
        self._outcomes.append((now, ok))
        self._failures += not ok
        while self._outcomes and now - self._outcomes[0][0] > self.cfg.window:
            _, was_ok = self._outcomes.popleft()
            self._failures -= not was_ok
        n = len(self._outcomes)
        if n >= self.cfg.min_requests and self._failures / n >= self.cfg.failure_ratio:
            self.opened_at = now


# KEYS[1]: the state hash (opened_at, probe: ms on Redis's clock); KEYS[2]: the window's
# counts, one field per bucket and outcome ("<bucket>:ok" / "<bucket>:f").
_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

_ALLOW = _NOW + """
local opened = redis.call('HGET', KEYS[1], 'opened_at')
if not opened then return 1 end
local cooldown = tonumber(ARGV[1])
if now - tonumber(opened) < cooldown then return 0 end
local probe = redis.call('HGET', KEYS[1], 'probe')
-- a probe older than a cooldown belongs to a process that died: take its place
if probe and now - tonumber(probe) < cooldown then return 0 end
redis.call('HSET', KEYS[1], 'probe', now)
return 2
"""

_RECORD = _NOW + """
local ok, ticket = ARGV[1] == '1', tonumber(ARGV[2])
local window, min_req, ratio = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local bucket_ms, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
if ticket == 2 then
  if ok then redis.call('DEL', KEYS[1], KEYS[2]) return 'closed' end
  redis.call('HSET', KEYS[1], 'opened_at', now)
  redis.call('HDEL', KEYS[1], 'probe')
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 'open'
end
if redis.call('HEXISTS', KEYS[1], 'opened_at') == 1 then return 'open' end
local b = math.floor(now / bucket_ms)
redis.call('HINCRBY', KEYS[2], b .. (ok and ':ok' or ':f'), 1)
redis.call('PEXPIRE', KEYS[2], window * 2)
local oldest = b - math.ceil(window / bucket_ms)
local all = redis.call('HGETALL', KEYS[2])
local n, f = 0, 0
for i = 1, #all, 2 do
  local k = all[i]
  if tonumber(string.match(k, '^(%d+)')) <= oldest then
    redis.call('HDEL', KEYS[2], k)
  else
    local v = tonumber(all[i + 1])
    n = n + v
    if string.sub(k, -2) == ':f' then f = f + v end
  end
end
if n >= min_req and f / n >= ratio then
  redis.call('HSET', KEYS[1], 'opened_at', now)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('DEL', KEYS[2])
  return 'open'
end
return 'closed'
"""


class SharedBreaker:
    """One model's breaker, its state in Redis under ``hybridgate:breaker:<model>``."""

    def __init__(self, cfg: BreakerConfig, model: str, redis: Any,
                 prefix: str = "hybridgate:breaker:",
                 on_change: Callable[[bool], None] | None = None) -> None:
        self.cfg = cfg
        self.on_change = on_change
        self.keys = [f"{prefix}{model}:state", f"{prefix}{model}:window"]
        self.redis = redis
        self._allow = redis.register_script(_ALLOW)
        self._record = redis.register_script(_RECORD)
        self.local = Breaker(cfg, on_change)  # stands in while Redis is unreachable
        self._warned = 0.0
        window_ms = cfg.window * 1000
        # ten buckets a window; the state outlives a few cooldowns, then Redis drops it
        self._args = [int(window_ms), cfg.min_requests, cfg.failure_ratio,
                      max(1, int(window_ms / 10)), int(cfg.cooldown * 1000 * 4 + window_ms)]

    def _unreachable(self, e: Exception) -> None:
        if time.monotonic() - self._warned > 60:
            self._warned = time.monotonic()
            log.warning("breaker: Redis unreachable (%s); this process's own breaker "
                        "stands in", type(e).__name__)

    async def allow(self) -> int:
        if not self.cfg.enabled:
            return PASS
        try:
            return int(await self._allow(keys=self.keys,
                                         args=[int(self.cfg.cooldown * 1000)]))
        except Exception as e:  # noqa: BLE001 - any Redis failure: fall back
            self._unreachable(e)
            ticket = self.local.ticket()
            return ticket | _LOCAL if ticket != DENY else DENY

    async def record(self, ok: bool, ticket: int = PASS) -> None:
        if not self.cfg.enabled:
            return
        if ticket & _LOCAL:
            self.local.note(ok, ticket & ~_LOCAL)
            return
        try:
            state = await self._record(keys=self.keys, args=[int(ok), ticket, *self._args])
        except Exception as e:  # noqa: BLE001
            self._unreachable(e)
            self.local.note(ok)
            return
        if self.on_change is not None:
            self.on_change(state in (b"open", "open"))

    async def state(self) -> str:
        doc = await self.redis.hgetall(self.keys[0])
        if not doc:
            return "closed"
        return "half-open" if b"probe" in doc else "open"
