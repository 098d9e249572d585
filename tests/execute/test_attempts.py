"""Retries, fallbacks and the deadline, end to end: the official SDK against the gateway,
the fake OpenAI upstream failing on cue. Each test says what the client must see."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
import requests

from tests.fakes.server import Fault

MSG = [{"role": "user", "content": "one two three"}]


def post(gateway, model, headers=None, **body):
    return requests.post(gateway.v1 + "/chat/completions", timeout=30, headers=headers,
                         json={"model": model, "messages": MSG, **body})


def attempts_of(ledger_path, rid):
    with sqlite3.connect(ledger_path) as db:
        n, doc = db.execute("SELECT attempt, attempts FROM requests WHERE id = ?",
                            (rid,)).fetchone()
    return n, json.loads(doc) if doc else None


def test_a_500_once_is_retried_and_the_client_never_sees_it(gateway, fake_openai,
                                                           ledger_path):
    fake_openai.faults.append(Fault(status=500))
    r = post(gateway, "gpt-retry")
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
    assert r.headers["x-hybridgate-attempts"] == "2"
    n, tries = attempts_of(ledger_path, r.headers["x-request-id"])
    assert n == 2 and [t["status"] for t in tries] == [500, 200]
    assert len(fake_openai.requests) == 2


def test_retry_after_is_honoured(gateway, fake_openai):
    fake_openai.faults.append(Fault(status=429, headers={"retry-after": "0.4"}))
    t0 = time.perf_counter()
    r = post(gateway, "gpt-retry")
    assert r.status_code == 200 and time.perf_counter() - t0 >= 0.4


def test_a_wait_past_the_deadline_is_not_slept(gateway, fake_openai):
    """Retry-After 30 s, deadline 1 s: answer at once (the 429) rather than sleep."""
    fake_openai.faults.append(Fault(status=429, headers={"retry-after": "30"}))
    t0 = time.perf_counter()
    r = post(gateway, "gpt-retry", headers={"x-hybridgate-deadline": "1"})
    assert r.status_code == 429 and time.perf_counter() - t0 < 1.0
    assert r.headers["retry-after"] == "30"


def test_client_errors_are_not_retried(gateway, fake_openai):
    fake_openai.faults.append(Fault(status=400))
    r = post(gateway, "gpt-retry")
    assert r.status_code == 400 and len(fake_openai.requests) == 1
    assert r.headers["x-hybridgate-attempts"] == "1"


def test_persistent_503_gives_up_after_its_retries(gateway, fake_openai):
    fake_openai.faults.extend([Fault(status=503)] * 3)
    r = post(gateway, "gpt-retry")
    assert r.status_code == 503 and len(fake_openai.requests) == 3
    assert r.headers["x-hybridgate-attempts"] == "3"


def test_a_dead_upstream_falls_back(gateway, fake_openai, ledger_path):
    r = post(gateway, "gpt-with-fallback")
    assert r.status_code == 200, r.text
    assert r.headers["x-hybridgate-model"] == "gpt-fake"
    n, tries = attempts_of(ledger_path, r.headers["x-request-id"])
    assert [t["model"] for t in tries] == ["gpt-with-fallback", "gpt-with-fallback",
                                           "gpt-fake"]
    assert n == 3 and tries[-1]["status"] == 200


def test_the_deadline_bounds_the_whole_request(gateway, fake_openai):
    fake_openai.faults.append(Fault(delay=3))
    t0 = time.perf_counter()
    r = post(gateway, "gpt-retry", headers={"x-hybridgate-deadline": "0.5"})
    took = time.perf_counter() - t0
    assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded"
    assert took < 1.5


@pytest.mark.parametrize("value", ["soon", "-1", "0", "inf"])
def test_a_bad_deadline_header_is_400(gateway, value):
    r = post(gateway, "gpt-retry", headers={"x-hybridgate-deadline": value})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "x-hybridgate-deadline"


def test_a_stream_is_retried_until_it_has_output(gateway, fake_openai):
    """The first attempt dies after its role-only chunk: that chunk was held back, so the
    client gets one clean stream from the second attempt."""
    fake_openai.faults.append(Fault(truncate_after=1))
    with requests.post(gateway.v1 + "/chat/completions", stream=True, timeout=30, json={
            "model": "gpt-retry", "messages": MSG, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["x-hybridgate-attempts"] == "2"
        lines = [x for x in r.iter_lines() if x]
    assert lines[-1] == b"data: [DONE]"
    roles = [x for x in lines if b'"role"' in x]
    assert len(roles) == 1  # one stream, not two glued together
    text = "".join(json.loads(x[6:])["choices"][0]["delta"].get("content") or ""
                   for x in lines[:-1] if json.loads(x[6:])["choices"])
    assert text == "echo: one two three"


def test_after_output_a_failure_is_an_error_event_not_a_retry(gateway, fake_openai):
    fake_openai.faults.append(Fault(truncate_after=3))
    with requests.post(gateway.v1 + "/chat/completions", stream=True, timeout=30, json={
            "model": "gpt-retry", "messages": MSG, "stream": True}) as r:
        lines = [x for x in r.iter_lines() if x]
    assert lines[-1] != b"data: [DONE]" and lines[-1].startswith(b'data: {"error"')
    assert len(fake_openai.requests) == 1


@pytest.mark.slow
def test_a_route_group_falls_back_to_its_local_member(gateway, fake_openai):
    """The hybrid case: the frontier member is down, the local one answers."""
    from tests.routing.test_gateway_routing import HARD

    fake_openai.faults.append(Fault(status=500))
    r = requests.post(gateway.v1 + "/chat/completions", timeout=60, json={
        "model": "smart", "max_tokens": 4, "messages": [{"role": "user", "content": HARD}]})
    assert r.status_code == 200, r.text
    route = r.headers["x-hybridgate-route"]
    assert route.startswith("strong; reason=score")
    assert route.endswith("; fallback=smollm2-135m-instruct")
    assert r.headers["x-hybridgate-model"] == "smollm2-135m-instruct"
    assert r.headers["x-hybridgate-attempts"] == "2"


def test_a_prompt_too_long_goes_to_the_context_window_fallback(gateway, fake_openai):
    fake_openai.faults.append(Fault(status=400, message=(
        "This model's maximum context length is 8192 tokens. However, your messages "
        "resulted in 9000 tokens.")))
    r = post(gateway, "gpt-short")
    assert r.status_code == 200 and r.headers["x-hybridgate-model"] == "gpt-fake"
    assert r.headers["x-hybridgate-attempts"] == "2"


def test_retry_after_ms_and_dates_are_read():
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from hybridgate.providers.http import status_error

    e = status_error("x", 429, b"{}", {"retry-after-ms": "250"})
    assert e.retry_after == 0.25 and e.upstream_status == 429
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    e = status_error("x", 503, b"{}", {"retry-after": when})
    assert 25 < e.retry_after <= 30
    assert status_error("x", 500, b"{}", {}).retry_after is None


def test_a_stream_without_output_in_its_ttft_timeout_falls_back(gateway, fake_openai):
    fake_openai.faults.append(Fault(delay=3))
    t0 = time.perf_counter()
    with requests.post(gateway.v1 + "/chat/completions", stream=True, timeout=30, json={
            "model": "gpt-slow-start", "messages": MSG, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["x-hybridgate-model"] == "gpt-fake"
        lines = [x for x in r.iter_lines() if x]
    assert lines[-1] == b"data: [DONE]" and time.perf_counter() - t0 < 2.0


def _stream_text(gateway, model="gpt-fake"):
    with requests.post(gateway.v1 + "/chat/completions", stream=True, timeout=30, json={
            "model": model, "messages": MSG, "stream": True}) as r:
        lines = [x for x in r.iter_lines() if x]
    text = "".join(json.loads(x[6:])["choices"][0]["delta"].get("content") or ""
                   for x in lines[:-1] if json.loads(x[6:]).get("choices"))
    return r.status_code, text, lines[-1]


def test_a_stream_that_lost_only_its_done_marker_is_complete(gateway, fake_openai):
    fake_openai.faults.append(Fault(no_done=True))
    status, text, last = _stream_text(gateway)
    assert status == 200 and text == "echo: one two three" and last == b"data: [DONE]"


def test_one_unparseable_chunk_in_a_stream_that_completes_is_skipped(gateway, fake_openai):
    fake_openai.faults.append(Fault(bad_chunk_at=2))
    status, text, last = _stream_text(gateway)
    assert status == 200 and text == "echo: one two three" and last == b"data: [DONE]"
    provider = gateway.server.config.app.state.pipeline.registry.providers["gpt-fake"]
    assert provider.malformed_chunks >= 1


@pytest.mark.slow
def test_a_full_local_queue_sends_the_overflow_to_the_remote_member(fake_openai):
    """max_queue: 0 lets one request generate and none wait; the others are answered
    by the route group's remote member at once instead of queueing."""
    import threading

    from hybridgate.config.settings import parse_config
    from tests.conftest import LOCAL, OPENAI_KEY, start_gateway

    cfg = parse_config({
        "ledger": {"enabled": False},
        "routes": [{"name": "team", "weak": "local", "strong": "gpt", "threshold": 100.0}],
        "models": [
            {"name": "local", "provider": "local", "model": LOCAL, "n_ctx": 1024,
             "n_threads": 2, "max_queue": 0},
            {"name": "gpt", "provider": "openai", "base_url": fake_openai.url + "/v1",
             "api_key": OPENAI_KEY, "model": "gpt-fake"}]})
    gw = start_gateway(cfg)
    served: list[str] = []

    def ask() -> None:
        r = requests.post(gw.v1 + "/chat/completions", timeout=60, json={
            "model": "team", "max_tokens": 48, "temperature": 0,
            "messages": [{"role": "user", "content": "Count from one to thirty."}]})
        assert r.status_code == 200, r.text
        served.append(r.headers["x-hybridgate-model"])

    try:
        threads = [threading.Thread(target=ask) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        gw.stop()
    assert served.count("local") >= 1 and served.count("gpt") >= 1, served


POLICY = Fault(status=400, code="content_filter",
               message="The response was filtered due to the prompt triggering Azure "
                       "OpenAI's content management policy.")


def test_a_content_policy_refusal_is_not_retried_and_reaches_the_client(gateway, fake_openai):
    """gpt-retry retries 5xx twice; a refusal is asked once and returned as it is."""
    fake_openai.faults.append(POLICY)
    r = post(gateway, "gpt-retry")
    assert r.status_code == 400 and len(fake_openai.requests) == 1
    err = r.json()["error"]
    assert err["code"] == "content_filter" and "content management policy" in err["message"]


def test_a_refusal_goes_to_the_content_policy_fallbacks(gateway, fake_openai,
                                                        fake_anthropic, ledger_path):
    fake_openai.faults.append(POLICY)
    r = post(gateway, "gpt-guarded")
    assert r.status_code == 200, r.text
    assert r.headers["x-hybridgate-model"] == "claude-fake"
    assert len(fake_openai.requests) == 1  # never the refusing model again
    n, steps = attempts_of(ledger_path, r.headers["x-request-id"])
    assert n == 2 and [s["status"] for s in steps] == [400, 200]


def test_a_stream_stalled_past_its_idle_timeout_ends_with_an_error_event(gateway,
                                                                         fake_openai):
    """Output, then 3 s of silence against idle_timeout 0.3: the stream fails (an error
    event, no [DONE]) long before the upstream would have gone on."""
    fake_openai.faults.append(Fault(stall_at=3, stall=3))
    t0 = time.perf_counter()
    with requests.post(gateway.v1 + "/chat/completions", stream=True, timeout=30, json={
            "model": "gpt-guarded", "messages": MSG, "stream": True}) as r:
        assert r.status_code == 200
        lines = [x for x in r.iter_lines() if x]
    took = time.perf_counter() - t0
    assert lines[-1].startswith(b'data: {"error"') and b"idle_timeout" in lines[-1]
    assert b"data: [DONE]" not in lines and took < 1.5


@pytest.mark.parametrize("body, policy", [
    (b'{"error": {"message": "filtered", "code": "content_filter"}}', True),
    (b'{"error": {"message": "x", "type": "invalid_request_error", '
     b'"code": "content_policy_violation"}}', True),
    (b'{"error": {"message": "Your request was rejected as a result of our safety '
     b'system."}}', True),
    (b'{"error": {"message": "Invalid value for temperature", "code": null}}', False),
])
def test_content_policy_refusals_are_told_apart_from_other_400s(body, policy):
    from hybridgate.providers.http import status_error

    e = status_error("x", 400, body)
    assert e.status == 400 and (e.code == "content_filter") == policy


def test_idle_timeout_bounds_any_stream_whatever_its_provider():
    """The bound wraps the stream execute hands on, so a local model's stream gets it
    the same way as a remote one's."""
    import asyncio

    from hybridgate.core.errors import UpstreamTimeout
    from hybridgate.execute.executor import _idle_bounded

    async def chunks():
        yield "a"
        await asyncio.sleep(5)
        yield "b"

    async def main():
        got = []
        with pytest.raises(UpstreamTimeout, match="idle_timeout"):
            async for item in _idle_bounded(chunks(), 0.2, "local"):
                got.append(item)
        return got

    assert asyncio.run(main()) == ["a"]
