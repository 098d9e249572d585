"""The exact cache through a real gateway: opted-in tenants' repeated requests are
answered from it (non-streamed and streamed, either way round), recorded at no cost with
the baseline they saved; anything that changes the answer misses; Cache-Control is
honoured; Redis shares it between gateways and `hybridgate cache clear` empties it."""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
import sys
import time

import openai
import pytest

from hybridgate.config.settings import parse_config
from tests.conftest import OPENAI_KEY, start_gateway

CACHED, PLAIN = "hg-cache-tenant-key-0000", "hg-plain-tenant-key-0000"


def _config(fake_url: str, db: str, redis: str | None = None) -> dict:
    cfg = {"ledger": {"url": db},
           "prices": [{"id": "gpt-fake", "input": 1.0, "output": 2.0}],
           "tenants": [{"name": "cached", "cache": True}, {"name": "plain"}],
           "keys": [{"id": "c", "key": CACHED, "tenant": "cached"},
                    {"id": "p", "key": PLAIN, "tenant": "plain"}],
           "models": [{"name": "gpt-fake", "provider": "openai", "api_key": OPENAI_KEY,
                       "base_url": fake_url + "/v1"}]}
    if redis:
        cfg["redis"] = redis
    return cfg


@pytest.fixture(scope="module")
def cached_gw(tmp_path_factory, fake_openai):
    db = tmp_path_factory.mktemp("cache") / "ledger.db"
    gw = start_gateway(parse_config(_config(fake_openai.url, f"sqlite:///{db}")))
    yield gw, db
    gw.stop()


def _ask(gw, key: str, text: str, **kw: object):  # noqa: ANN202
    c = openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0)
    return c.chat.completions.with_raw_response.create(
        model="gpt-fake", messages=[{"role": "user", "content": text}], **kw)


def test_a_repeated_request_is_answered_from_the_cache(cached_gw, fake_openai):
    gw, db = cached_gw
    q = f"what is {secrets.token_hex(4)}?"
    first = _ask(gw, CACHED, q, temperature=0)
    assert first.headers["x-hybridgate-cache"] == "miss"
    n = len(fake_openai.requests)
    time.sleep(0.1)  # the store is written after the answer
    again = _ask(gw, CACHED, q, temperature=0)
    assert again.headers["x-hybridgate-cache"] == "hit"
    assert len(fake_openai.requests) == n  # the upstream was not asked
    a, b = first.parse(), again.parse()
    assert b.choices[0].message.content == a.choices[0].message.content
    assert b.usage.cost == 0 and again.headers["x-hybridgate-cost"] == "0"
    with sqlite3.connect(db) as c:
        row = c.execute("SELECT provider, cost_usd, baseline_cost_usd, route FROM requests "
                        "WHERE id = ?", (again.headers["x-request-id"],)).fetchone()
    assert row[0] == "cache" and row[1] == 0 and row[2] > 0 and row[3] == "gpt-fake"
    # streamed, the cached answer replays as a correct stream
    c = openai.OpenAI(base_url=gw.v1, api_key=CACHED, max_retries=0)
    stream = c.chat.completions.create(model="gpt-fake", temperature=0, stream=True,
                                       stream_options={"include_usage": True},
                                       messages=[{"role": "user", "content": q}])
    chunks = list(stream)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == \
        a.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == a.usage.completion_tokens
    assert len(fake_openai.requests) == n


def test_a_streamed_answer_is_stored_and_serves_a_plain_request(cached_gw, fake_openai):
    gw, _ = cached_gw
    q = f"stream {secrets.token_hex(4)}"
    c = openai.OpenAI(base_url=gw.v1, api_key=CACHED, max_retries=0)
    text = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="gpt-fake", temperature=0, stream=True,
        messages=[{"role": "user", "content": q}]) if ch.choices)
    time.sleep(0.1)
    hit = _ask(gw, CACHED, q, temperature=0)
    assert hit.headers["x-hybridgate-cache"] == "hit"
    assert hit.parse().choices[0].message.content == text


def test_what_changes_the_answer_misses_and_cache_control_is_honoured(cached_gw,
                                                                      fake_openai):
    gw, _ = cached_gw
    q = f"vary {secrets.token_hex(4)}"
    _ask(gw, CACHED, q, temperature=0)
    time.sleep(0.1)
    assert _ask(gw, CACHED, q, temperature=0, max_tokens=7).headers[
        "x-hybridgate-cache"] == "miss"
    c = openai.OpenAI(base_url=gw.v1, api_key=CACHED, max_retries=0)
    sys_prompt = c.chat.completions.with_raw_response.create(
        model="gpt-fake", temperature=0, messages=[
            {"role": "system", "content": "be terse"}, {"role": "user", "content": q}])
    assert sys_prompt.headers["x-hybridgate-cache"] == "miss"
    # not allowed: temperature above 0 without the header; another tenant; no-cache
    assert "x-hybridgate-cache" not in _ask(gw, CACHED, q, temperature=0.7).headers
    assert "x-hybridgate-cache" not in _ask(gw, PLAIN, q, temperature=0).headers
    n = len(fake_openai.requests)
    fresh = _ask(gw, CACHED, q, temperature=0, extra_headers={"cache-control": "no-cache"})
    assert fresh.headers["x-hybridgate-cache"] == "miss" and len(fake_openai.requests) == n + 1
    q2 = f"opt in {secrets.token_hex(4)}"
    _ask(gw, CACHED, q2, temperature=1.0, extra_headers={"x-hybridgate-cache": "on"})
    time.sleep(0.1)
    assert _ask(gw, CACHED, q2, temperature=1.0, extra_headers={
        "x-hybridgate-cache": "on"}).headers["x-hybridgate-cache"] == "hit"
    q3 = f"never kept {secrets.token_hex(4)}"
    _ask(gw, CACHED, q3, temperature=0, extra_headers={"cache-control": "no-store"})
    time.sleep(0.1)
    assert _ask(gw, CACHED, q3, temperature=0).headers["x-hybridgate-cache"] == "miss"


def test_redis_shares_the_cache_between_gateways_and_clear_empties_it(tmp_path,
                                                                      fake_openai):
    redis = "redis://127.0.0.1:6379/0"
    gws = [start_gateway(parse_config(_config(fake_openai.url,
                                              f"sqlite:///{tmp_path / f'l{i}.db'}", redis)))
           for i in range(2)]
    try:
        q = f"shared {secrets.token_hex(4)}"
        assert _ask(gws[0], CACHED, q, temperature=0).headers["x-hybridgate-cache"] == "miss"
        time.sleep(0.2)
        assert _ask(gws[1], CACHED, q, temperature=0).headers["x-hybridgate-cache"] == "hit"
        cfg = tmp_path / "hg.yaml"
        cfg.write_text(f"redis: {redis}\n")
        r = subprocess.run([sys.executable, "-m", "hybridgate.cli.main", "cache", "clear",
                            "--config", str(cfg)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "cleared" in r.stdout, r.stderr
        assert _ask(gws[1], CACHED, q, temperature=0).headers["x-hybridgate-cache"] == "miss"
    finally:
        for gw in gws:
            gw.stop()


def test_an_anthropic_answer_in_the_cache_serves_an_openai_client_cleanly(tmp_path,
                                                                          fake_anthropic):
    """A Messages request passed through to an Anthropic upstream and an equivalent
    Chat Completions request share a key; the cached answer must be plain for both."""
    import anthropic

    from tests.conftest import ANTHROPIC_KEY

    gw = start_gateway(parse_config({
        "ledger": {"url": f"sqlite:///{tmp_path / 'l.db'}"},
        "tenants": [{"name": "cached", "cache": True}],
        "keys": [{"id": "c", "key": CACHED, "tenant": "cached"}],
        "models": [{"name": "claude-fake", "provider": "anthropic", "api_key": ANTHROPIC_KEY,
                    "base_url": fake_anthropic.url, "model": "claude-sonnet-4-5"}]}))
    try:
        q = f"both dialects {secrets.token_hex(4)}"
        claude = anthropic.Anthropic(base_url=gw.url, api_key=CACHED, max_retries=0)
        first = claude.messages.create(model="claude-fake", max_tokens=64,
                                       extra_body={"temperature": 0},
                                       messages=[{"role": "user", "content": q}])
        assert first.content[0].text == f"echo: {q}"
        time.sleep(0.2)
        c = openai.OpenAI(base_url=gw.v1, api_key=CACHED, max_retries=0)
        raw = c.chat.completions.with_raw_response.create(
            model="claude-fake", max_tokens=64, temperature=0,
            messages=[{"role": "user", "content": q}])
        assert raw.headers["x-hybridgate-cache"] == "hit"
        body = raw.http_response.json()
        assert "native" not in body and body["choices"][0]["message"]["content"] == f"echo: {q}"
    finally:
        gw.stop()
