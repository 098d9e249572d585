"""OpenAI clients talking to an Anthropic model through the gateway (fake Messages API)."""

from __future__ import annotations

import json

import openai
import pytest

from tests.fakes.server import Fault

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def test_plain_chat_translates_both_ways(client, fake_anthropic):
    r = client.chat.completions.create(model="claude-fake", max_tokens=50, temperature=1.5,
                                       stop=["END"], messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"}])
    assert r.choices[0].message.content == "echo: hello"
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (13, 7)
    assert r.usage.prompt_tokens_details.cached_tokens == 2
    sent = fake_anthropic.requests[-1]
    assert sent["headers"]["x-api-key"] == "sk-ant-fake-test-key"
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    body = sent["body"]
    assert body["model"] == "claude-sonnet-4-5" and body["system"] == "be brief"
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    assert body["max_tokens"] == 50 and body["temperature"] == 1.0
    assert body["stop_sequences"] == ["END"]


def test_tools_and_tool_results(client, fake_anthropic):
    r = client.chat.completions.create(model="claude-fake", tools=TOOLS, tool_choice="required",
                                       messages=[{"role": "user", "content": "weather?"}])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.id == "toolu_fake1" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}
    body = fake_anthropic.requests[-1]["body"]
    assert body["tool_choice"] == {"type": "any"}
    assert body["tools"][0]["input_schema"]["properties"] == {"city": {"type": "string"}}

    client.chat.completions.create(model="claude-fake", tools=TOOLS, messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "18C"},
        {"role": "user", "content": "thanks"}])
    sent = fake_anthropic.requests[-1]["body"]["messages"]
    assert sent[1] == {"role": "assistant", "content": [{
        "type": "tool_use", "id": "toolu_fake1", "name": "get_weather",
        "input": {"city": "Paris", "unit": "celsius"}}]}
    assert sent[2]["role"] == "user"
    assert sent[2]["content"][0] == {"type": "tool_result", "tool_use_id": "toolu_fake1",
                                     "content": "18C"}
    assert sent[2]["content"][1] == {"type": "text", "text": "thanks"}


def test_streaming_text(client):
    chunks = list(client.chat.completions.create(
        model="claude-fake", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "one two"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) \
        == "echo: one two"
    assert chunks[-1].usage.completion_tokens == 7 and chunks[-1].usage.prompt_tokens == 13


def test_streaming_tool_call_deltas(client):
    chunks = list(client.chat.completions.create(
        model="claude-fake", stream=True, tools=TOOLS,
        messages=[{"role": "user", "content": "use a tool"}]))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id == "toolu_fake1" and calls[0].function.name == "get_weather"
    assert len(calls) > 3
    assert json.loads("".join(tc.function.arguments or "" for tc in calls))["city"] == "Paris"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_json_schema_via_forced_tool(client, fake_anthropic):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    r = client.chat.completions.create(model="claude-fake", messages=[
        {"role": "user", "content": "json please"}], response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert json.loads(r.choices[0].message.content)["city"] == "Paris"
    assert r.choices[0].finish_reason == "stop"
    body = fake_anthropic.requests[-1]["body"]
    assert body["tool_choice"]["type"] == "tool" and body["tools"][0]["input_schema"] == schema


@pytest.mark.parametrize(("fault", "status"), [(Fault(status=529), 503),
                                               (Fault(status=500), 502),
                                               (Fault(status=429), 429)])
def test_upstream_errors(client, fake_anthropic, fault, status):
    fake_anthropic.faults.append(fault)
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="claude-fake",
                                       messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == status


def test_truncated_stream_is_an_error(client, fake_anthropic):
    fake_anthropic.faults.append(Fault(truncate_after=4))
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="claude-fake", stream=True,
                                            messages=[{"role": "user", "content": "a b c"}]))
