"""OpenTelemetry traces: a span per request and one per upstream attempt, exported over
OTLP/HTTP to a collector (a real loopback server decoding the protobuf), joined to the
caller's trace by ``traceparent``; prompts stay out of spans unless turned on."""

from __future__ import annotations

import time

import pytest
import requests

from hybridgate.config.settings import parse_config
from tests.conftest import OPENAI_KEY, start_gateway
from tests.fakes.otlp_collector import FakeCollector

TRACE, PARENT = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
SECRET = "my card number is 4111 1111 1111 1111"


@pytest.fixture
def collector():
    c = FakeCollector().start()
    yield c
    c.stop()


def _gateway(fake_url: str, collector: FakeCollector, **tracing: object):
    return start_gateway(parse_config({
        "ledger": {"enabled": False},
        "tracing": {"endpoint": collector.url + "/v1/traces", "service_name": "gw-test",
                    "headers": {"x-collector-token": "t0k"}, **tracing},
        "models": [{"name": "gpt-fake", "provider": "openai", "base_url": fake_url + "/v1",
                    "api_key": OPENAI_KEY},
                   {"name": "gpt-flaky", "provider": "openai", "num_retries": 0,
                    "base_url": "http://127.0.0.1:9/v1", "fallbacks": ["gpt-fake"]}]}))


def _chat(url: str, model: str, **extra: object) -> requests.Response:
    return requests.post(url + "/v1/chat/completions", timeout=10, headers={
        "traceparent": f"00-{TRACE}-{PARENT}-01"}, json={
        "model": model, "messages": [{"role": "user", "content": SECRET}], **extra})


def test_a_request_and_its_attempts_are_spans_in_the_callers_trace(fake_openai, collector):
    gw = _gateway(fake_openai.url, collector)
    try:
        r = _chat(gw.url, "gpt-flaky", max_tokens=20, temperature=0.5)
        assert r.status_code == 200
        assert _chat(gw.url, "no-such-model").status_code == 404
    finally:
        gw.stop()  # shutting down flushes the batch
    spans = {s.name: s for s in collector.spans if s.kind == 2}  # SERVER: the requests
    req = spans["chat gpt-flaky"]
    assert (req.trace_id, req.parent_id, req.kind) == (TRACE, PARENT, 2)  # SERVER
    assert req.service == "gw-test"
    a = req.attrs
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "gpt-flaky"
    assert a["gen_ai.response.model"] == "gpt-fake"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["hybridgate.request_id"] == r.headers["x-request-id"]
    assert a["gen_ai.usage.input_tokens"] == r.json()["usage"]["prompt_tokens"] > 0
    assert a["gen_ai.usage.output_tokens"] == r.json()["usage"]["completion_tokens"]
    assert a["gen_ai.request.max_tokens"] == 20 and a["gen_ai.request.temperature"] == 0.5
    assert a["http.response.status_code"] == 200 and "error.type" not in a
    attempts = sorted((s for s in collector.spans if s.parent_id == req.span_id),
                      key=lambda s: s.start)
    assert [s.attrs["gen_ai.request.model"] for s in attempts] == ["gpt-flaky", "gpt-fake"]
    assert [s.kind for s in attempts] == [3, 3]  # CLIENT
    assert attempts[0].status == 2 and attempts[0].attrs["error.type"]
    assert attempts[1].status != 2 and attempts[1].attrs["http.response.status_code"] == 200
    assert req.start <= attempts[0].start <= attempts[0].end <= attempts[1].start
    assert attempts[1].end <= req.end
    assert abs(req.start / 1e9 - time.time()) < 60
    missing = spans["chat no-such-model"]
    assert missing.status == 2 and missing.attrs["http.response.status_code"] == 404
    assert missing.attrs["error.type"] == "model_not_found"
    # the prompt is nowhere in what was exported
    assert not any(SECRET in str(v) for s in collector.spans for v in s.attrs.values())
    assert collector.requests[0]["headers"]["x-collector-token"] == "t0k"


def test_prompts_and_answers_only_when_the_operator_turns_it_on(fake_openai, collector):
    gw = _gateway(fake_openai.url, collector, capture_content=True)
    try:
        assert _chat(gw.url, "gpt-fake").status_code == 200
        with requests.post(gw.url + "/v1/chat/completions", stream=True, timeout=10, json={
                "model": "gpt-fake", "stream": True,
                "messages": [{"role": "user", "content": "streamed"}]}) as r:
            assert r.status_code == 200 and b"[DONE]" in r.content
    finally:
        gw.stop()
    plain, streamed = [s for s in collector.spans if s.kind == 2]
    if "streamed" in plain.attrs["gen_ai.input.messages"]:
        plain, streamed = streamed, plain
    assert SECRET in plain.attrs["gen_ai.input.messages"]
    assert "echo" in plain.attrs["gen_ai.output.messages"]
    assert streamed.attrs["hybridgate.stream"] is True
    assert streamed.attrs["gen_ai.usage.output_tokens"] > 0


def test_tracing_is_off_until_an_endpoint_is_configured():
    from hybridgate.observe.tracing import Tracing

    assert not Tracing(parse_config({}).tracing).enabled
