"""The breaker shared through Redis (127.0.0.1:6379): one state per model for every
process and replica, one half-open probe among them, and no failure when Redis is gone."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid

import pytest
import requests

from hybridgate.config.settings import BreakerConfig
from hybridgate.execute.breaker import DENY, PASS, PROBE, SharedBreaker

redis_asyncio = pytest.importorskip("redis.asyncio")
URL = "redis://127.0.0.1:6379/0"
CFG = BreakerConfig(failure_ratio=0.5, window=10, min_requests=4, cooldown=0.5)


def _name() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"  # every test its own keys in the shared Redis


def test_two_processes_see_one_breaker_and_one_probe():
    async def main():
        a_client, b_client = redis_asyncio.Redis.from_url(URL), redis_asyncio.Redis.from_url(URL)
        name = _name()
        a, b = SharedBreaker(CFG, name, a_client), SharedBreaker(CFG, name, b_client)
        try:
            for who in (a, b, a, b):  # failures from both count in one window
                assert await who.allow() == PASS
                await who.record(False, PASS)
            assert await a.allow() == DENY and await b.allow() == DENY
            assert await b.state() == "open"
            assert await a_client.exists(f"hybridgate:breaker:{name}:state")  # as documented
            await asyncio.sleep(0.6)  # the cooldown passes
            tickets = await asyncio.gather(*(x.allow() for x in (a, b) * 5))
            assert sorted(tickets) == [DENY] * 9 + [PROBE]  # exactly one probe
            prober = (a, b)[tickets.index(PROBE) % 2]
            await b.record(True, PASS)  # not the probe: does not close it
            assert await a.state() == "half-open"
            await prober.record(True, PROBE)
            assert await a.allow() == PASS and await b.state() == "closed"
        finally:
            await a_client.aclose()
            await b_client.aclose()
    asyncio.run(main())


def test_a_failed_probe_reopens_for_another_cooldown():
    async def main():
        client = redis_asyncio.Redis.from_url(URL)
        b = SharedBreaker(CFG, _name(), client)
        try:
            for _ in range(4):
                await b.record(False, PASS)
            await asyncio.sleep(0.6)
            assert await b.allow() == PROBE
            await b.record(False, PROBE)
            assert await b.allow() == DENY and await b.state() == "open"
        finally:
            await client.aclose()
    asyncio.run(main())


def test_unreachable_redis_falls_back_to_this_process(caplog):
    async def main():
        client = redis_asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2,
                                              socket_connect_timeout=0.2)
        b = SharedBreaker(CFG, _name(), client)
        for _ in range(4):
            ticket = await b.allow()
            assert ticket != DENY  # a dead Redis never refuses a request by itself
            await b.record(False, ticket)
        assert await b.allow() == DENY  # ...and the local breaker still protects
        await client.aclose()
    asyncio.run(main())
    warned = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warned) == 1  # said once, not per request


def test_a_breaker_opened_by_one_gateway_protects_another(tmp_path, fake_openai):
    """Two gateway processes, one Redis: the first sees the dead upstream fail until its
    breaker opens; the second's first request skips the dead upstream without trying it."""
    from tests.conftest import OPENAI_KEY
    from tests.ledger.helpers import GatewayProcess

    dead = _name()
    gateways = []
    for i in range(2):
        home = tmp_path / f"g{i}"
        home.mkdir()
        gateways.append(GatewayProcess(home, fake_openai.url, {}, config={
            "redis": URL,
            "breaker": {"min_requests": 2, "failure_ratio": 0.5, "cooldown": 300},
            "ledger": {"url": f"sqlite:///{home / 'l.db'}"},
            "models": [
                {"name": dead, "provider": "openai", "base_url": "http://127.0.0.1:9/v1",
                 "num_retries": 0, "fallbacks": ["ok"]},
                {"name": "ok", "provider": "openai", "base_url": fake_openai.url + "/v1",
                 "api_key": OPENAI_KEY, "model": "gpt-fake"}]}))
    try:
        for g in gateways:
            g.wait("/readyz")
        body = {"model": dead, "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(2):
            r = requests.post(gateways[0].url + "/v1/chat/completions", json=body, timeout=10)
            assert r.status_code == 200 and r.headers["x-hybridgate-model"] == "ok"
        r = requests.post(gateways[1].url + "/v1/chat/completions", json=body, timeout=10)
        assert r.status_code == 200 and r.headers["x-hybridgate-model"] == "ok"
        rid = r.headers["x-request-id"]
    finally:
        for g in gateways:
            g.stop()
    with sqlite3.connect(tmp_path / "g1" / "l.db") as db:
        steps = json.loads(db.execute("SELECT attempts FROM requests WHERE id = ?",
                                      (rid,)).fetchone()[0])
    assert steps[0]["model"] == dead and steps[0]["error"] == "circuit breaker open"
