"""Chat through the gateway to a fake OpenAI upstream, driven by the official SDK."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import time

import openai
import pytest
import requests

from tests.fakes.server import Fault

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string"}},
                   "required": ["city"]}}}]


def test_plain_chat_passes_through(client, fake_openai):
    r = client.chat.completions.create(model="gpt-fake", messages=[
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}])
    assert r.choices[0].message.content == "echo: hello there"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens > 0
    sent = fake_openai.requests[-1]
    assert sent["body"]["model"] == "gpt-fake"
    assert sent["headers"]["Authorization"] == "Bearer sk-fake-openai-test-key"


def test_alias_sends_upstream_model_name_and_unknown_fields(client, fake_openai):
    client.chat.completions.create(model="gpt-alias", messages=[{"role": "user", "content": "x"}],
                                   extra_body={"reasoning_effort": "low", "logit_bias": {"1": 2}})
    body = fake_openai.requests[-1]["body"]
    assert body["model"] == "gpt-upstream-name"
    assert body["reasoning_effort"] == "low" and body["logit_bias"] == {"1": 2}


def test_stream_with_usage(client):
    stream = client.chat.completions.create(
        model="gpt-fake", messages=[{"role": "user", "content": "one two three"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_stream_without_usage_hides_usage_chunk(client, fake_openai):
    chunks = list(client.chat.completions.create(
        model="gpt-fake", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
    # ...but the gateway itself asked the upstream for usage (for exact accounting).
    assert fake_openai.requests[-1]["body"]["stream_options"] == {"include_usage": True}


def test_tool_call_non_streaming(client):
    r = client.chat.completions.create(model="gpt-fake", tools=TOOLS, tool_choice="required",
                                       messages=[{"role": "user", "content": "weather?"}])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}


def test_streamed_tool_call_argument_deltas_reassemble(client):
    stream = client.chat.completions.create(
        model="gpt-fake", tools=TOOLS, messages=[{"role": "user", "content": "use a tool"}],
        stream=True)
    deltas = [c.choices[0].delta for c in stream if c.choices]
    parts = [d.tool_calls[0].function.arguments for d in deltas if d.tool_calls]
    assert len(parts) > 3  # really split across chunks
    assert json.loads("".join(parts)) == {"city": "Paris", "unit": "celsius"}


def test_tool_result_round_trip(client, fake_openai):
    msgs = [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"}]
    r = client.chat.completions.create(model="gpt-fake", tools=TOOLS, messages=msgs)
    assert r.choices[0].message.content == "echo: weather?"
    assert fake_openai.requests[-1]["body"]["messages"][2]["tool_call_id"] == "call_1"


def test_completions_and_embeddings_pass_through(client):
    r = client.completions.create(model="gpt-fake", prompt="and", max_tokens=3)
    assert r.choices[0].text == " and so on" and r.usage.completion_tokens == 3
    parts = list(client.completions.create(model="gpt-fake", prompt="x", stream=True))
    assert "".join(p.choices[0].text for p in parts if p.choices) == " and so on"


@pytest.mark.parametrize(("fault", "status"), [
    (Fault(status=500), 502), (Fault(status=503), 503), (Fault(status=429,
     headers={"retry-after": "7"}), 429), (Fault(status=400), 400), (Fault(drop=True), 502),
    (Fault(garbage=True), 502), (Fault(delay=3), 504)])
def test_upstream_failures_map_to_clear_statuses(gateway, fake_openai, fault, status):
    fake_openai.faults.append(fault)
    r = requests.post(gateway.v1 + "/chat/completions", timeout=10, json={
        "model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == status
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if status == 429:
        assert r.headers["retry-after"] == "7"


def test_unreachable_upstream_is_503(client):
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="down", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 503


def test_upstream_auth_failure_is_502_and_key_not_leaked(gateway, fake_openai):
    fake_openai.api_key = "another-key"
    try:
        r = requests.post(gateway.v1 + "/chat/completions", json={
            "model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]})
    finally:
        fake_openai.api_key = "sk-fake-openai-test-key"
    assert r.status_code == 502
    assert "sk-fake" not in r.text


def test_truncated_stream_reports_error_event(client, fake_openai):
    fake_openai.faults.append(Fault(truncate_after=3))
    stream = client.chat.completions.create(
        model="gpt-fake", messages=[{"role": "user", "content": "a b c d e f"}], stream=True)
    with pytest.raises(openai.APIError, match="before"):
        list(stream)


def test_stream_error_before_first_chunk_is_http_error(client, fake_openai):
    fake_openai.faults.append(Fault(status=500))
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="gpt-fake", stream=True,
                                       messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 502


def test_client_disconnect_cancels_upstream(gateway, fake_openai, ledger_path):
    fake_openai.faults.append(Fault(chunk_delay=0.2))
    words = " ".join(f"w{i}" for i in range(40))
    body = json.dumps({"model": "gpt-fake", "stream": True,
                       "messages": [{"role": "user", "content": words}]}).encode()
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: "
                  b"application/json\r\ncontent-length: " + str(len(body)).encode()
                  + b"\r\n\r\n" + body)
        got = b""
        while b"data:" not in got:
            got += s.recv(4096)
    rid = re.search(rb"x-request-id: (\S+)", got, re.I).group(1).decode()
    deadline = time.time() + 5
    while fake_openai.disconnects == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert fake_openai.disconnects == 1
    status = None
    while status is None and time.time() < deadline:  # the row says the client left
        with sqlite3.connect(ledger_path) as db:
            found = db.execute("SELECT status FROM requests WHERE id = ?", (rid,)).fetchone()
        status = found and found[0]
        time.sleep(0.05)
    assert status == 499
