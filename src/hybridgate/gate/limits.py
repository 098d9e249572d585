"""Budgets and rate limits for tenants and keys, shared by every process and replica.

A key inside a tenant is bound by both. Each limited scope (``tenant:<name>``,
``key:<id>``) keeps its counters in Redis, and one Lua script per step touches every
counter a request needs, atomically (Redis runs a script alone):

- ``reserve`` (before the call): drops reservations whose holder died (each one expires
  with the request's deadline), then checks every scope (requests and tokens in this
  minute, requests in flight, and spend: settled in this period + held by reservations
  + this request's worst case <= the budget) and, only if all pass, counts the request
  in all of them and holds its worst-case cost. Nothing is half-applied.
- ``settle`` (after): releases the hold and adds the real cost, once per request id
  (a ``settled`` marker makes it idempotent), trues up the minute's tokens.

Money is integer micro-dollars. The ledger stays the truth: a period's spend counter
that Redis does not have (a restart, an eviction, the first request of the period) is
rebuilt from the ledger's rows before the request is admitted. Redis unreachable: a
clear 503 (``on_redis_error: deny``, the default) or admit without limits (``allow``).
Windows are fixed (the minute, the period since the epoch), on Redis's clock, so every
process counts the same window.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import NoScriptError

from hybridgate.config.settings import Config, Limits
from hybridgate.core.errors import GatewayError, RateLimited, UpstreamUnavailable
from hybridgate.gate.auth import Principal

log = logging.getLogger("hybridgate.limits")

PREFIX = "hybridgate:lim:"
MICRO = 1_000_000
PERIODS = {"1h": 3600, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400}

_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

# ARGV: request id, reservation ttl ms, scope count, then 8 per scope: prefix, budget
# (micro-dollars, -1 none), period s (0: none), rpm, tpm, parallel (-1 none), tokens,
# worst-case cost. Returns {"ok", per scope: rpm used, tpm used, reset ms} or
# {reason, scope index, retry ms} or {"seed", scope index, spend key}.
_RESERVE = _NOW + """
local id, ttl, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local minute = math.floor(now / 60000)
local reset = 60000 - now % 60000
for i = 0, n - 1 do
  local p = ARGV[4 + i * 8]
  for _, rid in ipairs(redis.call('ZRANGEBYSCORE', p .. ':resv', '-inf', now)) do
    local amt = redis.call('HGET', p .. ':amt', rid)
    if amt then
      local worst = string.match(amt, '^(%d+)')
      redis.call('DECRBY', p .. ':held', worst)
      redis.call('DECR', p .. ':par')
      redis.call('HDEL', p .. ':amt', rid)
    end
    redis.call('ZREM', p .. ':resv', rid)
  end
end
local used = {}
for i = 0, n - 1 do
  local b = 4 + i * 8
  local p, budget, period = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local rpm, tpm, par = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
  local tokens, worst = tonumber(ARGV[b + 6]), tonumber(ARGV[b + 7])
  if budget >= 0 then
    local window = 0
    if period > 0 then window = math.floor(now / 1000 / period) end
    local key = p .. ':spent:' .. window
    local spent = redis.call('GET', key)
    if not spent then return {'seed', i, key} end
    local held = tonumber(redis.call('GET', p .. ':held') or '0')
    if tonumber(spent) + held + worst > budget then
      -- requests in flight hold it: free again in moments, not at the period's end
      if tonumber(spent) + worst <= budget then return {'held', i, 1000} end
      local retry = -1
      if period > 0 then retry = (window + 1) * period * 1000 - now end
      return {'budget', i, retry}
    end
  end
  local r = tonumber(redis.call('GET', p .. ':rpm:' .. minute) or '0')
  if rpm >= 0 and r + 1 > rpm then return {'rpm', i, reset} end
  local k = tonumber(redis.call('GET', p .. ':tpm:' .. minute) or '0')
  if tpm >= 0 and k + tokens > tpm then return {'tpm', i, reset} end
  if par >= 0 and tonumber(redis.call('GET', p .. ':par') or '0') + 1 > par then
    return {'parallel', i, 1000}
  end
  used[i + 1] = {r + 1, k + tokens}
end
local out = {'ok'}
for i = 0, n - 1 do
  local b = 4 + i * 8
  local p, tokens, worst = ARGV[b], tonumber(ARGV[b + 6]), tonumber(ARGV[b + 7])
  redis.call('INCR', p .. ':rpm:' .. minute)
  redis.call('PEXPIRE', p .. ':rpm:' .. minute, 120000)
  redis.call('INCRBY', p .. ':tpm:' .. minute, tokens)
  redis.call('PEXPIRE', p .. ':tpm:' .. minute, 120000)
  redis.call('INCR', p .. ':par')
  redis.call('INCRBY', p .. ':held', worst)
  redis.call('ZADD', p .. ':resv', now + ttl, id)
  redis.call('HSET', p .. ':amt', id, worst .. ',' .. tokens .. ',' .. minute)
  table.insert(out, used[i + 1][1])
  table.insert(out, used[i + 1][2])
end
table.insert(out, reset)
return out
"""

# ARGV: request id, scope count, then 4 per scope: prefix, period s (-1: no budget),
# real cost micro-dollars, real tokens. Returns 1, or 0 when it was settled already
# (the marker lives under the first scope's prefix).
_SETTLE = _NOW + """
local id, n = ARGV[1], tonumber(ARGV[2])
if not redis.call('SET', ARGV[3] .. ':settled:' .. id, 1, 'NX', 'PX', 86400000) then
  return 0
end
local minute = math.floor(now / 60000)
for i = 0, n - 1 do
  local b = 3 + i * 4
  local p, period = ARGV[b], tonumber(ARGV[b + 1])
  local cost, tokens = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local amt = redis.call('HGET', p .. ':amt', id)
  if amt then
    local worst, est, at = string.match(amt, '^(%d+),(%d+),(%d+)')
    redis.call('DECRBY', p .. ':held', worst)
    redis.call('DECR', p .. ':par')
    redis.call('HDEL', p .. ':amt', id)
    redis.call('ZREM', p .. ':resv', id)
    if tonumber(at) == minute and tokens ~= tonumber(est) then
      redis.call('INCRBY', p .. ':tpm:' .. minute, tokens - tonumber(est))
    end
  end
  if period >= 0 and cost > 0 then
    local window = 0
    if period > 0 then window = math.floor(now / 1000 / period) end
    -- a missing counter is rebuilt from the ledger, which already has this row
    local key = p .. ':spent:' .. window
    if redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, cost) end
  end
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Scope:
    name: str  # "tenant:research", "key:ci": the Redis prefix after PREFIX
    budget: int | None  # micro-dollars
    period: int  # seconds; 0: the budget never resets
    rpm: int | None
    tpm: int | None
    parallel: int | None
    key_ids: tuple[str, ...]  # whose ledger rows count toward it (to rebuild spend)

    @classmethod
    def of(cls, name: str, lim: Limits, key_ids: tuple[str, ...]) -> Scope | None:
        if not lim.limited:
            return None
        budget = None if lim.max_budget_usd is None else round(lim.max_budget_usd * MICRO)
        return cls(name, budget, PERIODS.get(lim.budget_period or "", 0), lim.rpm_limit,
                   lim.tpm_limit, lim.max_parallel_requests, key_ids)

    def argv(self, tokens: int, worst: int) -> list[Any]:
        return [PREFIX + self.name, -1 if self.budget is None else self.budget, self.period,
                _n(self.rpm), _n(self.tpm), _n(self.parallel), tokens, worst]


def _n(v: int | None) -> int:
    return -1 if v is None else v


def _reset(ms: float) -> str:
    """OpenAI's reset format: ``1s``, ``6m0s``."""
    s = max(0, math.ceil(ms / 1000))
    return f"{s // 60}m{s % 60}s" if s >= 60 else f"{s}s"


@dataclass(slots=True)
class Grant:
    """A request's admission: the scopes it was counted in, and the headers to send."""

    request_id: str
    scopes: list[Scope]
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False


SETTLE_DELAY = 0.005  # seconds a settle waits for a reserve to ride along with

_WHY = {"budget": "budget", "rpm": "requests per minute", "tpm": "tokens per minute",
        "parallel": "parallel requests"}


def scopes_of(config: Config) -> tuple[list[Scope], dict[str | None, list[Scope]]]:
    """Every limited scope, and each key's (its tenant's first, then its own)."""
    members: dict[str, list[str]] = {}
    for k in config.keys:
        if k.tenant:
            members.setdefault(k.tenant, []).append(k.id)
    by_name: dict[str, Scope] = {}
    for t in config.tenants:
        s = Scope.of(f"tenant:{t.name}", t, tuple(members.get(t.name, ())))
        if s is not None:
            by_name[s.name] = s
    by_key: dict[str | None, list[Scope]] = {}
    for k in config.keys:
        s = Scope.of(f"key:{k.id}", k, (k.id,))
        if s is not None:
            by_name[s.name] = s
        tenant = by_name.get(f"tenant:{k.tenant}") if k.tenant else None
        found = [x for x in (tenant, s) if x is not None]
        if found:
            by_key[k.id] = found
    return list(by_name.values()), by_key


def window_start(scope: Scope, now: float) -> float:
    """When the scope's current budget period began (0: a budget that never resets)."""
    return math.floor(now / scope.period) * scope.period if scope.period else 0.0


def ledger_spend(url: str | None, key_ids: tuple[str, ...], since: float) -> float:
    """What the ledger (the truth) says these keys spent since ``since``."""
    if url is None or not key_ids:
        return 0.0
    from hybridgate.ledger.store import Store

    store = Store(url)
    store.connect()
    try:
        marks = ", ".join("?" for _ in key_ids)
        rows = store.query(f"SELECT COALESCE(SUM(cost_usd), 0) FROM requests WHERE "
                           f"ts >= ? AND key_id IN ({marks})", (since, *key_ids))
    finally:
        store.close()
    return float(rows[0][0] or 0.0)


class Limiter:
    """Off (no limits configured) it costs one dict lookup per request."""

    def __init__(self, config: Config, ledger_url: str | None, redis: Any = None) -> None:
        """``redis``: a client (tests); by default one of its own from ``config.redis``,
        with timeouts long enough that a busy moment is not taken for an outage (a
        request refused for it would be a false 503)."""
        self.all, self.scopes = scopes_of(config)  # every scope; key id -> its scopes
        self.enabled = bool(self.scopes)
        if self.enabled and redis is None and config.redis is not None:
            from redis.asyncio import BlockingConnectionPool, Redis

            # a bounded pool that waits for a free connection: redis-py's default pool
            # raises MaxConnectionsError past 100 at once, a false 503 under load
            redis = Redis(connection_pool=BlockingConnectionPool.from_url(
                config.redis, max_connections=64, timeout=2.0, socket_timeout=2.0,
                socket_connect_timeout=1.0))
        if self.enabled and redis is None:
            raise ValueError("budgets and rate limits need `redis:`, so that every process "
                             "and replica counts against the same limits")
        self.fail_open = config.on_redis_error == "allow"
        self._pending: list[list[Any]] = []  # settles waiting for the next round trip
        self._batch: asyncio.Future[None] | None = None  # resolved when they are sent
        self._flushes: set[asyncio.Task[Any]] = set()
        self.ledger_url = ledger_url
        self.redis = redis
        if self.enabled:
            self._reserve = redis.register_script(_RESERVE)
            self._settle = redis.register_script(_SETTLE)
        self._warned = 0.0

    async def close(self) -> None:
        if self.enabled:
            await self.redis.aclose()

    def limits(self, who: Principal) -> list[Scope]:
        return self.scopes.get(who.key_id, [])

    async def reserve(self, request_id: str, who: Principal, tokens: int, worst_usd: float,
                      ttl: float) -> Grant | None:
        """Admit the request or raise a 429 (or a 503 when Redis is unreachable)."""
        scopes = self.limits(who)
        if not scopes:
            return None
        worst = math.ceil(worst_usd * MICRO)
        argv: list[Any] = [request_id, max(1000, int(ttl * 1000)), len(scopes)]
        for s in scopes:
            argv += s.argv(tokens, worst)
        for _ in range(3):
            try:
                res = await self._reserve_carrying(argv)
            except Exception as e:  # noqa: BLE001 - any Redis failure
                return self._unreachable(e, request_id)
            res = [r.decode() if isinstance(r, bytes) else r for r in res]
            if res[0] == "seed":
                await self._seed(scopes[int(res[1])], str(res[2]))
                continue
            if res[0] != "ok":
                raise self._refused(scopes[int(res[1])], str(res[0]), int(res[2]))
            return Grant(request_id, scopes, self._headers(scopes, res[1:], tokens))
        raise UpstreamUnavailable("budget counters could not be rebuilt from the ledger",
                                  code="limits_unavailable")

    async def settle(self, grant: Grant | None, cost_usd: float | None, tokens: int) -> None:
        """Once the request is over (any outcome); a second call does nothing."""
        if grant is None or grant.settled:
            return
        grant.settled = True
        cost = math.ceil((cost_usd or 0.0) * MICRO)
        argv: list[Any] = [grant.request_id, len(grant.scopes)]
        for s in grant.scopes:
            argv += [PREFIX + s.name, -1 if s.budget is None else s.period, cost, tokens]
        # Settles wait a moment to ride along with the next reserve (one round trip for
        # both, under load); when none comes, a timer sends them on their own.
        loop = asyncio.get_running_loop()
        if self._batch is None:
            self._batch = loop.create_future()
            loop.call_later(SETTLE_DELAY, self._flush_later)
        self._pending.append(argv)
        await asyncio.shield(self._batch)

    def _take(self) -> tuple[list[list[Any]], asyncio.Future[None] | None]:
        batch, done = self._pending, self._batch
        self._pending, self._batch = [], None
        return batch, done

    def _flush_later(self) -> None:
        batch, done = self._take()
        if batch:
            task = asyncio.ensure_future(self._send(batch, None, done))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _reserve_carrying(self, argv: list[Any]) -> Any:
        batch, done = self._take()
        return await self._send(batch, argv, done)

    async def _send(self, batch: list[list[Any]], reserve: list[Any] | None,
                    done: asyncio.Future[None] | None) -> Any:
        """Settles (and a reserve) in one pipelined round trip: EVALSHA straight into the
        pipeline (the scripts are loaded: redis-py's script-in-pipeline path would ask
        SCRIPT EXISTS every time). Returns the reserve's answer."""
        try:
            if not batch:
                return await self._reserve(args=reserve) if reserve is not None else None
            pipe = self.redis.pipeline(transaction=False)
            for a in batch:
                pipe.evalsha(self._settle.sha, 0, *a)
            if reserve is not None:
                pipe.evalsha(self._reserve.sha, 0, *reserve)
            try:
                results = await pipe.execute()  # retried on a dead connection by redis-py
            except NoScriptError:  # Redis restarted since: one at a time, loading them
                for a in batch:
                    await self._settle(args=a)
                return await self._reserve(args=reserve) if reserve is not None else None
            return results[-1] if reserve is not None else None
        except Exception as e:
            if batch:
                log.warning("limits: could not settle %d requests (%s); their holds expire "
                            "on their own", len(batch), type(e).__name__)
            if reserve is not None:
                raise
            return None
        finally:
            if done is not None and not done.done():
                done.set_result(None)

    async def remaining(self) -> dict[str, float]:
        """Budget left per scope right now (Redis's counters: settled spend this period
        and holds), for /metrics; scopes whose counters Redis lacks are left out."""
        now = time.time()
        out = {}
        for s in self.all:
            if s.budget is None:
                continue
            window = int(window_start(s, now) // s.period) if s.period else 0
            p = PREFIX + s.name
            try:
                spent, held = await self.redis.mget(f"{p}:spent:{window}", f"{p}:held")
            except Exception:  # noqa: BLE001 - a scrape without them
                return out
            if spent is not None:
                out[s.name] = (s.budget - int(spent) - int(held or 0)) / MICRO
        return out

    # ------------------------------------------------------------------ helpers

    def _unreachable(self, e: Exception, request_id: str) -> None:
        if time.monotonic() - self._warned > 60:
            self._warned = time.monotonic()
            log.warning("limits: Redis unreachable (%s); %s", type(e).__name__,
                        "admitting without limits" if self.fail_open else "refusing (503)")
        if self.fail_open:
            return None
        raise UpstreamUnavailable("budgets and rate limits are unavailable (their store "
                                  "cannot be reached); try again shortly",
                                  code="limits_unavailable", headers={"retry-after": "1"})

    @staticmethod
    def _refused(scope: Scope, reason: str, retry_ms: int) -> GatewayError:
        kind, _, name = scope.name.partition(":")
        if reason == "budget":
            msg = (f"the {kind} '{name}' has too little of its budget of "
                   f"${(scope.budget or 0) / MICRO:g} left")
            msg += " this period" if scope.period else ""
            msg += " for this request's worst case (its prompt and output limit)"
        elif reason == "held":
            msg = (f"the rest of the {kind} '{name}''s budget of "
                   f"${(scope.budget or 0) / MICRO:g} is held by its requests in flight "
                   "(each holds its worst case until it ends); retry in a moment")
        else:
            limit = {"rpm": scope.rpm, "tpm": scope.tpm, "parallel": scope.parallel}[reason]
            msg = f"the {kind} '{name}' is over its limit of {limit} {_WHY[reason]}"
        err = RateLimited(msg, code="budget_exceeded" if reason in ("budget", "held")
                          else "rate_limit_exceeded")
        if retry_ms >= 0:
            err.headers = {"retry-after": str(max(1, math.ceil(retry_ms / 1000)))}
        for what, limit in (("requests", scope.rpm), ("tokens", scope.tpm)):
            if limit is not None and reason in ("rpm", "tpm"):
                out = reason == ("rpm" if what == "requests" else "tpm")
                err.headers[f"x-ratelimit-limit-{what}"] = str(limit)
                if out:
                    err.headers[f"x-ratelimit-remaining-{what}"] = "0"
                    err.headers[f"x-ratelimit-reset-{what}"] = _reset(retry_ms)
        return err

    @staticmethod
    def _headers(scopes: list[Scope], used: list[Any], tokens: int) -> dict[str, str]:
        """OpenAI's x-ratelimit-* pairs, for the tightest scope of each kind."""
        reset = _reset(float(used[-1]))
        h: dict[str, str] = {}
        req = [(s.rpm - int(used[2 * i]), s.rpm) for i, s in enumerate(scopes)
               if s.rpm is not None]
        tok = [(s.tpm - int(used[2 * i + 1]), s.tpm) for i, s in enumerate(scopes)
               if s.tpm is not None]
        for what, pairs in (("requests", req), ("tokens", tok)):
            if pairs:
                left, limit = min(pairs)
                h[f"x-ratelimit-limit-{what}"] = str(limit)
                h[f"x-ratelimit-remaining-{what}"] = str(max(0, left))
                h[f"x-ratelimit-reset-{what}"] = reset
        return h

    async def _seed(self, scope: Scope, key: str) -> None:
        """The period's spend, from the ledger, into Redis (only if still missing)."""
        window = int(key.rsplit(":", 1)[1])
        since = window * scope.period if scope.period else 0.0
        spent = await asyncio.to_thread(ledger_spend, self.ledger_url, scope.key_ids, since)
        ttl = int(scope.period * 2 * 1000) if scope.period else None
        await self.redis.set(key, math.ceil(spent * MICRO), nx=True, px=ttl)

