"""Budgets and rate limits in a real Redis (127.0.0.1:6379): exact request counts per
window, budgets held at the worst case and settled to the real cost once, holds that
expire when their process dies, spend rebuilt from the ledger, and Redis down."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest
from redis.asyncio import Redis

from hybridgate.config.settings import parse_config
from hybridgate.core.errors import RateLimited, UpstreamUnavailable
from hybridgate.gate.auth import KeyTable
from hybridgate.gate.limits import MICRO, PREFIX, Limiter
from hybridgate.ledger.record import Record
from hybridgate.ledger.store import Store

REDIS = "redis://127.0.0.1:6379/0"
KEY = "hg-limits-test-key-000000"


def _limiter(tenant: dict, key: dict | None = None, redis: str = REDIS,
             ledger: str | None = None, **top: object) -> tuple[Limiter, object, str]:
    name = f"t{secrets.token_hex(4)}"  # a fresh tenant: counters of its own
    cfg = parse_config({"redis": redis, "tenants": [{"name": name, **tenant}],
                        "keys": [{"id": f"k-{name}", "key": KEY, "tenant": name,
                                  **(key or {})}], **top})
    client = Redis.from_url(redis, socket_timeout=0.5, socket_connect_timeout=0.5)
    who = KeyTable(cfg).authenticate(f"Bearer {KEY}")
    return Limiter(cfg, ledger, client), who, name


def _run(coro):  # noqa: ANN001, ANN202
    return asyncio.run(coro)


def _wait_for_a_fresh_minute() -> None:
    """Windows are whole minutes: start with 20 s or more left in this one."""
    if time.time() % 60 > 40:
        time.sleep(61 - time.time() % 60)


def test_rpm_admits_exactly_the_limit_and_says_when_to_retry():
    _wait_for_a_fresh_minute()

    async def go() -> None:
        lim, who, _ = _limiter({"rpm_limit": 5})
        grants = [await lim.reserve(f"r{i}", who, 10, 0.0, 30) for i in range(5)]
        assert grants[0].headers["x-ratelimit-limit-requests"] == "5"
        assert [g.headers["x-ratelimit-remaining-requests"] for g in grants] == \
            ["4", "3", "2", "1", "0"]
        with pytest.raises(RateLimited) as e:
            await lim.reserve("r5", who, 10, 0.0, 30)
        assert e.value.status == 429 and e.value.code == "rate_limit_exceeded"
        assert 1 <= int(e.value.headers["retry-after"]) <= 60
        assert e.value.headers["x-ratelimit-remaining-requests"] == "0"
        assert "5 requests per minute" in e.value.message
        await lim.redis.aclose()
    _run(go())


def test_a_key_is_bound_by_its_own_limits_and_its_tenants():
    _wait_for_a_fresh_minute()

    async def go() -> None:
        lim, who, _ = _limiter({"rpm_limit": 10, "tpm_limit": 1000}, {"rpm_limit": 2})
        g = await lim.reserve("a", who, 300, 0.0, 30)
        # the tightest of each kind: the key's requests, the tenant's tokens
        assert g.headers["x-ratelimit-limit-requests"] == "2"
        assert g.headers["x-ratelimit-remaining-tokens"] == "700"
        await lim.reserve("b", who, 300, 0.0, 30)
        with pytest.raises(RateLimited, match="key"):
            await lim.reserve("c", who, 300, 0.0, 30)
        await lim.redis.aclose()
    _run(go())


def test_tokens_per_minute_and_parallel_requests():
    _wait_for_a_fresh_minute()

    async def go() -> None:
        lim, who, _ = _limiter({"tpm_limit": 1000, "max_parallel_requests": 2})
        a = await lim.reserve("a", who, 400, 0.0, 30)
        await lim.reserve("b", who, 400, 0.0, 30)
        with pytest.raises(RateLimited, match="parallel"):
            await lim.reserve("c", who, 100, 0.0, 30)
        await lim.settle(a, 0.0, 50)  # done: one slot free, 350 tokens given back
        c = await lim.reserve("c", who, 500, 0.0, 30)
        assert c.headers["x-ratelimit-remaining-tokens"] == str(1000 - 50 - 400 - 500)
        await lim.settle(c, 0.0, 500)
        with pytest.raises(RateLimited, match="tokens per minute"):  # 950 + 200 > 1000
            await lim.reserve("d", who, 200, 0.0, 30)
        await lim.redis.aclose()
    _run(go())


def test_a_budget_holds_the_worst_case_and_counts_the_real_cost_once():
    async def go() -> None:
        lim, who, name = _limiter({"max_budget_usd": 1.0, "budget_period": "1d"})
        a = await lim.reserve("a", who, 10, 0.4, 30)
        await lim.reserve("b", who, 10, 0.4, 30)
        with pytest.raises(RateLimited) as e:  # 0.8 held + 0.4 > 1.0
            await lim.reserve("c", who, 10, 0.4, 30)
        assert e.value.code == "budget_exceeded" and "held by its requests" in e.value.message
        assert e.value.headers["retry-after"] == "1"  # the holds end in moments
        with pytest.raises(RateLimited) as e:  # more than the whole budget: the next day
            await lim.reserve("big", who, 10, 1.5, 30)
        assert "too little of its budget of $1 left this period" in e.value.message
        assert 60 < int(e.value.headers["retry-after"]) <= 86400
        await lim.settle(a, 0.1, 10)
        await lim.settle(a, 0.1, 10)  # twice: counted once
        a.settled = False
        await lim.settle(a, 0.1, 10)  # even from another process
        spent = [v for k, v in [(k, await lim.redis.get(k)) for k in
                                await lim.redis.keys(f"{PREFIX}tenant:{name}:spent:*")]]
        assert [int(v) for v in spent] == [int(0.1 * MICRO)]
        await lim.reserve("c", who, 10, 0.4, 30)  # 0.1 + 0.8 <= 1.0
        await lim.redis.aclose()
    _run(go())


def test_a_dead_processs_hold_expires():
    async def go() -> None:
        lim, who, _ = _limiter({"max_budget_usd": 1.0, "max_parallel_requests": 1})
        await lim.reserve("dies", who, 10, 0.9, 0.001)  # its holder never settles
        await asyncio.sleep(1.1)  # ttl floors at one second
        await lim.reserve("next", who, 10, 0.9, 30)  # the hold and the slot are back
        await lim.redis.aclose()
    _run(go())


def test_spend_is_rebuilt_from_the_ledger(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"

    async def go() -> None:
        lim, who, name = _limiter({"max_budget_usd": 1.0, "budget_period": "30d"},
                                  ledger=url)
        store = Store(url)
        store.connect()
        store.insert([Record(id=f"x{i}", ts=time.time() - 60, requested_model="m",
                             endpoint="chat", status=200, cost_usd=0.3,
                             key_id=who.key_id).row() for i in range(3)])
        store.insert([Record(id="old", ts=time.time() - 40 * 86400, requested_model="m",
                             endpoint="chat", status=200, cost_usd=5.0,
                             key_id=who.key_id).row()])
        store.close()
        # Redis knows nothing of this period: 0.9 spent comes back from the ledger
        with pytest.raises(RateLimited, match="budget"):
            await lim.reserve("a", who, 10, 0.2, 30)
        await lim.reserve("b", who, 10, 0.05, 30)
        await lim.redis.aclose()
    _run(go())


def test_redis_unreachable_fails_closed_or_open_as_configured():
    async def go() -> None:
        down = "redis://127.0.0.1:9/0"
        lim, who, _ = _limiter({"rpm_limit": 5}, redis=down)
        with pytest.raises(UpstreamUnavailable) as e:
            await lim.reserve("a", who, 10, 0.0, 30)
        assert e.value.status == 503 and e.value.code == "limits_unavailable"
        lim, who, _ = _limiter({"rpm_limit": 5}, redis=down, on_redis_error="allow")
        assert await lim.reserve("a", who, 10, 0.0, 30) is None
    _run(go())


def test_limits_without_redis_are_refused_at_start():
    with pytest.raises(ValueError, match="redis"):
        parse_config({"tenants": [{"name": "t", "rpm_limit": 1}]})


def test_many_requests_at_once_wait_for_a_connection_not_a_503():
    """redis-py's default pool fails past 100 connections at once; the limiter's waits."""
    async def go() -> None:
        name = f"t{secrets.token_hex(4)}"
        cfg = parse_config({"redis": REDIS, "tenants": [{"name": name, "rpm_limit": 10**6}],
                            "keys": [{"id": f"k-{name}", "key": KEY, "tenant": name}]})
        lim = Limiter(cfg, None)  # its own client, as the gateway makes it
        who = KeyTable(cfg).authenticate(f"Bearer {KEY}")
        grants = await asyncio.gather(*(lim.reserve(f"r{i}", who, 10, 0.0, 30)
                                        for i in range(300)))
        assert all(g is not None for g in grants)
        await asyncio.gather(*(lim.settle(g, 0.0, 10) for g in grants))
        await lim.close()
    _run(go())
