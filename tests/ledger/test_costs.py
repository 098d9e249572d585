"""Exact cost per request, in usage.cost, the x-hybridgate-cost header and the ledger row."""

from __future__ import annotations

import sqlite3

import openai
import pytest

from tests.fakes.server import Fault

# conftest prices gpt-fake at $1 / $0.50 cached / $2 per 1M tokens; the baseline is
# gpt-4.1 from the catalog: $2 / $0.50 cached / $8.
USAGE = {"prompt_tokens": 1_000, "completion_tokens": 500, "total_tokens": 1_500,
         "prompt_tokens_details": {"cached_tokens": 400}}
# (600 * 1 + 400 * 0.5 + 500 * 2) / 1e6
COST = 0.0018
# (600 * 2 + 400 * 0.5 + 500 * 8) / 1e6
BASELINE = 0.0054


def row(ledger_path, rid):
    with sqlite3.connect(ledger_path) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM requests WHERE id = ?", (rid,)).fetchone()


def test_non_streaming_cost_with_cached_tokens(client, fake_openai, ledger_path):
    fake_openai.usage_override = USAGE
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-fake", messages=[{"role": "user", "content": "hi"}], user="alice")
    r = raw.parse()
    assert r.usage.model_extra["cost"] == pytest.approx(COST)
    assert float(raw.headers["x-hybridgate-cost"]) == pytest.approx(COST)
    rec = row(ledger_path, raw.headers["x-request-id"])
    assert rec["status"] == 200 and rec["route"] == "gpt-fake" and rec["provider"] == "openai"
    assert (rec["prompt_tokens"], rec["cached_tokens"], rec["completion_tokens"]) == (1000, 400,
                                                                                      500)
    assert rec["cost_usd"] == pytest.approx(COST)
    assert rec["baseline_cost_usd"] == pytest.approx(BASELINE)
    assert rec["user_id"] == "alice" and rec["stream"] == 0 and rec["latency_ms"] > 0


def test_streaming_cost(client, fake_openai, ledger_path):
    fake_openai.usage_override = USAGE
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-fake", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "hello world"}])
    chunks = list(raw.parse())
    assert chunks[-1].usage.model_extra["cost"] == pytest.approx(COST)
    rec = row(ledger_path, raw.headers["x-request-id"])
    assert rec["stream"] == 1 and rec["cost_usd"] == pytest.approx(COST)
    assert rec["ttft_ms"] is not None and rec["ttft_ms"] <= rec["latency_ms"]


def test_streaming_without_usage_chunk_still_records_tokens(client, fake_openai, ledger_path):
    fake_openai.usage_override = USAGE
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-fake", stream=True, messages=[{"role": "user", "content": "x"}])
    assert all(c.usage is None for c in raw.parse())
    rec = row(ledger_path, raw.headers["x-request-id"])
    assert rec["prompt_tokens"] == 1000 and rec["cost_usd"] == pytest.approx(COST)


def test_anthropic_cache_reads_priced_from_catalog(client, ledger_path):
    raw = client.chat.completions.with_raw_response.create(
        model="claude-fake", messages=[{"role": "user", "content": "hi"}])
    rec = row(ledger_path, raw.headers["x-request-id"])
    # claude-sonnet-4-5: (11 * 3 + 2 * 0.30 + 7 * 15) / 1e6
    assert rec["cost_usd"] == pytest.approx(138.6e-6)
    assert rec["baseline_cost_usd"] == pytest.approx((11 * 2 + 2 * 0.5 + 7 * 8) / 1e6)


def test_unknown_price_keeps_tokens_and_marks_cost_unknown(client, fake_openai, ledger_path):
    fake_openai.usage_override = USAGE
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-alias", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-hybridgate-cost"] == "unknown"
    assert raw.parse().usage.model_extra["cost"] is None
    rec = row(ledger_path, raw.headers["x-request-id"])
    assert rec["cost_usd"] is None and rec["prompt_tokens"] == 1000
    assert rec["baseline_cost_usd"] == pytest.approx(BASELINE)


def test_local_request_costs_hardware_time_and_energy(client, ledger_path):
    raw = client.chat.completions.with_raw_response.create(
        model="smollm2-135m-instruct", max_tokens=5,
        messages=[{"role": "user", "content": "hi"}])
    rec = row(ledger_path, raw.headers["x-request-id"])
    latency = rec["latency_ms"] / 1000
    assert rec["provider"] == "local" and rec["tokens_source"] == "upstream"
    # cpu-2core rents at $0.1323/h, carried by a 50% busy share: $0.2646 per busy hour;
    # the seconds charged are the engine's own (at most the latency; most of it, unqueued)
    charged = rec["cost_usd"] / 0.2646 * 3600
    assert 0.5 * latency < charged <= latency
    assert rec["energy_j"] == pytest.approx(35 * charged, rel=1e-6)  # cpu-2core: 35 W
    assert "engine_seconds" not in raw.http_response.json()["usage"]


def test_local_requests_are_charged_engine_time_not_queue_time(gateway, ledger_path):
    """Four requests at once queue for the one model thread. Charged by latency, the
    last would pay for the three before it too: busy hours counted several times over.
    Charged by engine time, the four together cost at most the wall time they took."""
    import threading
    import time

    import requests

    ids: list[str] = []

    def one() -> None:
        r = requests.post(gateway.v1 + "/chat/completions", json={
            "model": "smollm2-135m-instruct", "max_tokens": 24, "temperature": 0,
            "messages": [{"role": "user", "content": "Count from one to twenty."}]})
        assert r.status_code == 200 and "engine_seconds" not in r.json()["usage"]
        ids.append(r.headers["x-request-id"])

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    recs = [row(ledger_path, i) for i in ids]
    charged = [r["cost_usd"] / 0.2646 * 3600 for r in recs]
    latencies = [r["latency_ms"] / 1000 for r in recs]
    assert sum(charged) <= wall * 1.02, (charged, wall)
    assert sum(latencies) > 1.5 * sum(charged)  # the queueing that is no longer charged


def test_errors_are_recorded(client, fake_openai, ledger_path):
    fake_openai.faults.append(Fault(status=500))
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.with_raw_response.create(
            model="gpt-fake", messages=[{"role": "user", "content": "boom"}])
    rec = row(ledger_path, e.value.response.headers["x-request-id"])
    assert rec["status"] == 502 and rec["route"] == "gpt-fake" and "500" in rec["error"]


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_without_usage_is_estimated(gateway, fake_openai, ledger_path, stream):
    import requests

    fake_openai.omit_usage = True
    content = "x" * 400  # 400 characters: ~100 tokens at 4 characters a token
    r = requests.post(gateway.v1 + "/chat/completions", json={
        "model": "gpt-fake", "stream": stream, "messages": [{"role": "user",
                                                             "content": content}]})
    assert r.status_code == 200
    if stream:
        assert r.text.rstrip().endswith("data: [DONE]")
    else:
        assert r.headers["x-hybridgate-tokens"] == "estimated"
        assert "usage" not in r.json()  # we do not invent usage for the client
    rec = row(ledger_path, r.headers["x-request-id"])
    assert rec["tokens_source"] == "estimated"
    assert rec["prompt_tokens"] == 100
    answer = len("echo: " + content)
    assert rec["completion_tokens"] == -(-answer // 4)
    assert rec["cost_usd"] == pytest.approx((100 * 1.0 + rec["completion_tokens"] * 2.0) / 1e6)
