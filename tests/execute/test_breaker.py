"""The circuit breaker opens on a failing model, probes after its cooldown, closes on
success."""

from __future__ import annotations

from hybridgate.config.settings import BreakerConfig
from hybridgate.execute.breaker import PROBE, Breaker

CFG = BreakerConfig(failure_ratio=0.5, window=10, min_requests=4, cooldown=5)


def test_opens_at_the_failure_ratio_once_enough_requests_were_seen():
    b = Breaker(CFG)
    for t, ok in enumerate([False, False, True]):
        b.note(ok, now=t)
    assert b.ticket(now=3) and b.state == "closed"  # 3 < min_requests
    b.note(False, now=3)  # 3 of 4 failed
    assert b.state == "open" and not b.ticket(now=4)


def test_old_outcomes_leave_the_window():
    b = Breaker(CFG)
    for t in range(3):
        b.note(False, now=t)
    for t in range(20, 24):
        b.note(True, now=t)
    assert b.state == "closed"


def test_half_open_probe_closes_or_reopens():
    b = Breaker(CFG)
    for t in range(4):
        b.note(False, now=t)
    assert not b.ticket(now=5)
    assert b.ticket(now=9) == PROBE  # cooldown passed: one probe
    assert not b.ticket(now=9)  # and only one
    b.note(True, now=9)  # a request from before it opened does not decide
    assert b.state == "half-open"
    b.note(False, PROBE, now=9)
    assert b.state == "open" and not b.ticket(now=12)
    assert b.ticket(now=14) == PROBE
    b.note(True, PROBE, now=14)
    assert b.state == "closed" and b.ticket(now=14)


def test_disabled_never_opens():
    b = Breaker(BreakerConfig(enabled=False, min_requests=1))
    b.note(False, now=0)
    assert b.ticket(now=0)


def test_an_open_breaker_skips_the_model_at_once(tmp_path, fake_openai):
    """Through a gateway: two refused connections open the breaker; the third request
    does not try the dead upstream at all and is served by the fallback."""
    import json
    import sqlite3

    import requests

    from hybridgate.config.settings import parse_config
    from tests.conftest import OPENAI_KEY, start_gateway

    ledger = tmp_path / "l.db"
    cfg = parse_config({
        "ledger": {"url": f"sqlite:///{ledger}"},
        "breaker": {"min_requests": 2, "failure_ratio": 0.5, "cooldown": 300},
        "models": [
            {"name": "dead", "provider": "openai", "base_url": "http://127.0.0.1:9/v1",
             "num_retries": 0, "fallbacks": ["ok"]},
            {"name": "ok", "provider": "openai", "base_url": fake_openai.url + "/v1",
             "api_key": OPENAI_KEY, "model": "gpt-fake"}]})
    gw = start_gateway(cfg)
    try:
        ids = []
        for _ in range(3):
            r = requests.post(gw.v1 + "/chat/completions", json={
                "model": "dead", "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200 and r.headers["x-hybridgate-model"] == "ok"
            ids.append(r.headers["x-request-id"])
    finally:
        gw.stop()
    with sqlite3.connect(ledger) as db:
        last = json.loads(db.execute("SELECT attempts FROM requests WHERE id = ?",
                                     (ids[-1],)).fetchone()[0])
    assert last[0] == {"model": "dead", "status": 503, "error": "circuit breaker open",
                       "ms": 0.0}


def test_a_primary_that_goes_down_and_comes_back(tmp_path, fake_openai):
    """Down: requests are answered by the backup, and once the breaker opens the
    primary is not even tried. Back: after the cooldown one probe finds it healthy and
    traffic returns to it."""
    import time

    import requests

    from hybridgate.config.settings import parse_config
    from tests.conftest import OPENAI_KEY, start_gateway
    from tests.fakes.openai_upstream import FakeOpenAI
    from tests.fakes.server import Fault

    primary = FakeOpenAI().start()
    primary.api_key = OPENAI_KEY
    primary.fail_rate, primary.fail_with = 1.0, [Fault(status=500)]
    cfg = parse_config({
        "ledger": {"enabled": False},
        "breaker": {"min_requests": 3, "failure_ratio": 0.5, "cooldown": 1.0},
        "models": [
            {"name": "primary", "provider": "openai", "base_url": primary.url + "/v1",
             "api_key": OPENAI_KEY, "model": "gpt-fake", "num_retries": 0,
             "fallbacks": ["backup"]},
            {"name": "backup", "provider": "openai", "base_url": fake_openai.url + "/v1",
             "api_key": OPENAI_KEY, "model": "gpt-fake"}]})
    gw = start_gateway(cfg)

    def ask() -> str:
        r = requests.post(gw.v1 + "/chat/completions", json={
            "model": "primary", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200
        return r.headers["x-hybridgate-model"]

    try:
        assert [ask() for _ in range(3)] == ["backup"] * 3  # the breaker opens here
        tried = len(primary.requests)
        assert [ask() for _ in range(5)] == ["backup"] * 5
        assert len(primary.requests) == tried  # not even tried while open
        primary.fail_rate = 0.0  # it comes back
        time.sleep(1.1)
        assert ask() == "primary"  # the probe
        assert [ask() for _ in range(3)] == ["primary"] * 3
    finally:
        gw.stop()
        primary.stop()
