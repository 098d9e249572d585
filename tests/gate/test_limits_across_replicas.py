"""Budgets and rate limits held by three gateway processes sharing one Redis and one
Postgres ledger: 200 concurrent requests against one tenant's budget, an rpm limit
across the three, and Redis killed and brought back mid-run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import OPENAI_KEY
from tests.ledger.helpers import GatewayProcess, free_port, pg_schema

SPENDER, PACER, FREE = ("hg-spender-key-000000000", "hg-pacer-key-0000000000",
                        "hg-free-key-00000000000")
BUDGET = 0.05
PRICE_IN, PRICE_OUT = 100.0, 200.0  # USD per 1M tokens
MAX_TOKENS = 50
PROMPT = "hello budget"


@contextmanager
def redis_server(port: int):  # noqa: ANN201
    """A Redis of this test's own, so it can be killed."""
    exe = shutil.which("redis-server")
    assert exe, "redis-server is needed"
    proc = subprocess.Popen([exe, "--port", str(port), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL)
    deadline = time.time() + 10
    import redis

    while time.time() < deadline:
        try:
            redis.Redis(port=port).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(5)


def _config(fake_url: str, ledger: str, redis_url: str) -> dict:
    return {"ledger": {"url": ledger}, "redis": redis_url, "breaker": {"enabled": False},
            "server": {"metrics_public": True},
            "prices": [{"id": "gpt-fake", "input": PRICE_IN, "output": PRICE_OUT}],
            "tenants": [{"name": "team", "max_budget_usd": BUDGET, "budget_period": "1d"},
                        {"name": "paced", "rpm_limit": 7},
                        {"name": "free", "max_budget_usd": 100.0}],
            "keys": [{"id": "spender", "key": SPENDER, "tenant": "team"},
                     {"id": "pacer", "key": PACER, "tenant": "paced"},
                     {"id": "free", "key": FREE, "tenant": "free"}],
            "models": [{"name": "gpt-fake", "provider": "openai", "num_retries": 0,
                        "base_url": fake_url + "/v1", "api_key": OPENAI_KEY}]}


def _ask(url: str, key: str) -> requests.Response:
    return requests.post(url + "/v1/chat/completions", timeout=30,
                         headers={"authorization": f"Bearer {key}"},
                         json={"model": "gpt-fake", "max_tokens": MAX_TOKENS,
                               "messages": [{"role": "user", "content": PROMPT}]})


def _spent(ledger: str, key_id: str) -> float:
    from hybridgate.ledger.store import Store

    store = Store(ledger)
    store.connect()
    try:
        return float(store.query("SELECT COALESCE(SUM(cost_usd), 0) FROM requests "
                                 "WHERE key_id = ?", (key_id,))[0][0])
    finally:
        store.close()


@pytest.fixture
def three(tmp_path: Path, fake_openai):  # noqa: ANN201
    port = free_port()
    with pg_schema() as ledger, redis_server(port) as redis_proc:
        cfg = _config(fake_openai.url, ledger, f"redis://127.0.0.1:{port}/0")
        gws = []
        for i in range(3):
            (tmp_path / str(i)).mkdir()
            gws.append(GatewayProcess(tmp_path / str(i), fake_openai.url, {}, config=cfg))
        try:
            for gw in gws:
                gw.wait(timeout=60)
            yield gws, ledger, port, redis_proc
        finally:
            for gw in gws:
                gw.stop()


def test_budgets_rpm_and_a_redis_outage_across_three_gateways(three):
    gws, ledger, port, redis_proc = three
    urls = [gw.url for gw in gws]
    # 1. 200 concurrent requests against one tenant's budget
    with ThreadPoolExecutor(40) as pool:
        got = list(pool.map(lambda i: _ask(urls[i % 3], SPENDER), range(200)))
    codes = [r.status_code for r in got]
    assert set(codes) <= {200, 429}, [r.text for r in got if r.status_code == 503][:2]
    refused = [r for r in got if r.status_code == 429]
    assert refused and all(r.json()["error"]["code"] == "budget_exceeded" for r in refused)
    assert all(r.headers["retry-after"] for r in refused)
    worst = ((len(PROMPT) + 3) // 4 * PRICE_IN + MAX_TOKENS * PRICE_OUT) / 1e6
    assert _spent(ledger, "spender") <= BUDGET + worst
    # the storm over, every hold is released: one at a time, the rest of the budget is
    # served until it is truly spent
    for i in range(300):
        r = _ask(urls[i % 3], SPENDER)
        if r.status_code == 429 and r.headers["retry-after"] == "1":
            time.sleep(0.2)  # the last request's hold is still being released
            continue
        if r.status_code == 429:
            break
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 60  # the next day
    spent = _spent(ledger, "spender")
    assert BUDGET - worst <= spent <= BUDGET + worst, spent

    # 2. an rpm limit of 7 admits exactly 7 across the three (within one minute)
    if time.time() % 60 > 40:
        time.sleep(61 - time.time() % 60)
    with ThreadPoolExecutor(20) as pool:
        paced = list(pool.map(lambda i: _ask(urls[i % 3], PACER), range(20)))
    assert [r.status_code for r in paced].count(200) == 7
    ok = [r for r in paced if r.status_code == 200]
    assert sorted(r.headers["x-ratelimit-remaining-requests"] for r in ok) == \
        [str(n) for n in range(7)]
    assert all(r.headers["x-ratelimit-limit-requests"] == "7" for r in ok)
    # hybridgate budgets: the ledger's spend, Redis's live counts
    cli = subprocess.run([sys.executable, "-m", "hybridgate.cli.main", "budgets", "--config",
                          str(gws[0].config_path), "--format", "json"],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    by = {r["scope"]: r for r in json.loads(cli.stdout)}
    assert by["tenant:team"]["spent_usd"] == pytest.approx(spent)
    assert by["tenant:team"]["budget_usd"] == BUDGET and by["tenant:team"]["period"] == "1d"
    assert by["tenant:team"]["held_usd"] == 0 and by["tenant:team"]["in_flight"] == 0
    assert by["tenant:paced"]["rpm_used"] == 7 and by["tenant:paced"]["rpm_limit"] == 7
    table = subprocess.run([sys.executable, "-m", "hybridgate.cli.main", "budgets",
                            "--config", str(gws[0].config_path)],
                           capture_output=True, text=True, timeout=60).stdout
    assert "tenant:team" in table and "7/7" in table
    page = gws[0].config_path.with_name("report.html")
    rep = subprocess.run([sys.executable, "-m", "hybridgate.cli.main", "report", "--config",
                          str(gws[0].config_path), "--html", str(page)],
                         capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    html = page.read_text()
    assert "Budgets and limits" in html and "tenant:team" in html and "/ 1d" in html
    metrics = requests.get(urls[2] + "/metrics", timeout=10).text
    left = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
            if line.startswith('hybridgate_budget_remaining_usd{scope="tenant:team"}')]
    assert left and left[0] == pytest.approx(BUDGET - spent, abs=1e-3)

    # 3. Redis killed: a clear 503, never an unlimited request; back: served again,
    # and the budget's spend comes back from the ledger (no overspend)
    assert _ask(urls[0], FREE).status_code == 200
    redis_proc.kill()
    redis_proc.wait(5)
    down = [_ask(u, FREE) for u in urls]
    assert [r.status_code for r in down] == [503] * 3
    assert all(r.json()["error"]["code"] == "limits_unavailable" for r in down)
    with _restarted(port):
        assert [_ask(u, FREE).status_code for u in urls] == [200] * 3
        again = _ask(urls[1], SPENDER)
        assert again.status_code == 429 and again.json()["error"]["code"] == "budget_exceeded"
    assert _spent(ledger, "spender") == pytest.approx(spent)


@contextmanager
def _restarted(port: int):  # noqa: ANN202
    with redis_server(port) as proc:
        yield proc
