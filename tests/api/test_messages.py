"""Anthropic's Messages API in front of any model, checked with the official `anthropic`
SDK: text, system, tools and tool results, streaming with Anthropic's event sequence,
count_tokens, and Anthropic's error shape."""

from __future__ import annotations

import json
import sqlite3

import anthropic
import pytest
import requests

from tests.fakes.server import Fault

WEATHER = {"name": "get_weather", "description": "Weather for a city", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def claude(gateway):
    return anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0)


def test_a_text_answer_from_an_openai_upstream(claude, fake_openai):
    raw = claude.messages.with_raw_response.create(
        model="gpt-fake", max_tokens=64, system="Be brief.",
        messages=[{"role": "user", "content": "hello there"}])
    msg = raw.parse()
    assert msg.type == "message" and msg.role == "assistant" and msg.model == "gpt-fake"
    assert msg.id.startswith("msg_")
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "echo: hello there"
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    assert raw.headers["x-hybridgate-model"] == "gpt-fake"
    sent = fake_openai.requests[0]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 64


def test_tools_tool_use_and_tool_results_round_trip(claude, fake_openai):
    msg = claude.messages.create(
        model="gpt-fake", max_tokens=64, tools=[WEATHER],
        messages=[{"role": "user", "content": "use a tool for Paris"}])
    assert msg.stop_reason == "tool_use"
    use = next(b for b in msg.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"city": "Paris", "unit": "celsius"}
    sent = fake_openai.requests[-1]["body"]
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    follow = claude.messages.create(
        model="gpt-fake", max_tokens=64, tools=[WEATHER], messages=[
            {"role": "user", "content": "use a tool for Paris"},
            {"role": "assistant", "content": [b.model_dump() for b in msg.content]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": use.id, "content": "18 C, sunny"},
                {"type": "text", "text": "and so?"}]}])
    assert follow.content[0].text == "echo: and so?"
    turns = fake_openai.requests[-1]["body"]["messages"]
    assert turns[1]["tool_calls"][0]["id"] == use.id
    assert turns[2] == {"role": "tool", "tool_call_id": use.id, "content": "18 C, sunny"}


@pytest.mark.parametrize("choice, sent", [
    ({"type": "any"}, "required"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "get_weather"},
     {"type": "function", "function": {"name": "get_weather"}})])
def test_tool_choice_maps(claude, fake_openai, choice, sent):
    claude.messages.create(model="gpt-fake", max_tokens=16, tools=[WEATHER],
                           tool_choice=choice, messages=[{"role": "user", "content": "x"}])
    assert fake_openai.requests[-1]["body"]["tool_choice"] == sent


def test_stop_sequences_temperature_and_user(claude, fake_openai):
    claude.messages.create(model="gpt-fake", max_tokens=16, stop_sequences=["END"],
                           extra_body={"temperature": 0.2}, metadata={"user_id": "u-42"},
                           messages=[{"role": "user", "content": "x"}])
    body = fake_openai.requests[-1]["body"]
    assert body["stop"] == ["END"] and body["temperature"] == 0.2 and body["user"] == "u-42"


def test_structured_output_is_checked_like_json_schema(claude, fake_openai):
    """output_config.format is response_format json_schema: checked, repaired."""
    fake_openai.content = ["{'city': 'Paris',}"]
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"], "additionalProperties": False}
    msg = claude.messages.create(
        model="gpt-fake", max_tokens=32, messages=[{"role": "user", "content": "where?"}],
        output_config={"format": {"type": "json_schema", "schema": schema}})
    assert json.loads(msg.content[0].text) == {"city": "Paris"}
    sent = fake_openai.requests[-1]["body"]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == schema


def test_fields_without_a_chat_twin_are_dropped_not_refused(claude, fake_openai):
    claude.messages.create(model="gpt-fake", max_tokens=16,
                           thinking={"type": "enabled", "budget_tokens": 1024},
                           extra_body={"top_k": 5}, system=[
                               {"type": "text", "text": "Be brief.",
                                "cache_control": {"type": "ephemeral"}}],
                           messages=[{"role": "user", "content": "x"}])
    body = fake_openai.requests[-1]["body"]
    assert not {"top_k", "thinking", "cache_control"} & set(body)
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def _events(gateway, **body):
    with requests.post(gateway.url + "/v1/messages", stream=True, timeout=30, json={
            "max_tokens": 64, "stream": True, **body}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith(
            "text/event-stream")
        text = r.content.decode()
    out = []
    for frame in text.strip().split("\n\n"):
        name, data = frame.split("\n", 1)
        assert name.startswith("event: ") and data.startswith("data: ")
        doc = json.loads(data[6:])
        assert doc["type"] == name[7:]  # the event name and the payload's type agree
        out.append(doc)
    return out


def test_a_stream_has_anthropics_event_sequence(gateway):
    events = _events(gateway, model="gpt-fake",
                     messages=[{"role": "user", "content": "one two three"}])
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["message_start", "ping", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[3:-3]) == {"content_block_delta"}
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "echo: one two three"
    delta = events[-2]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] > 0 and delta["usage"]["input_tokens"] > 0


def test_the_sdk_assembles_a_streamed_tool_call(claude):
    with claude.messages.stream(model="gpt-fake", max_tokens=64, tools=[WEATHER], messages=[
            {"role": "user", "content": "use a tool now"}]) as stream:
        final = stream.get_final_message()
    use = [b for b in final.content if b.type == "tool_use"]
    assert len(use) == 1 and use[0].input == {"city": "Paris", "unit": "celsius"}
    assert final.stop_reason == "tool_use" and final.usage.output_tokens > 0


def test_a_stream_that_fails_after_output_ends_with_an_error_event(gateway, fake_openai):
    fake_openai.faults.append(Fault(truncate_after=3))
    events = _events(gateway, model="gpt-fake",
                     messages=[{"role": "user", "content": "one two three"}])
    assert events[-1]["type"] == "error" and events[-1]["error"]["type"]
    assert "message_stop" not in [e["type"] for e in events]


def test_errors_use_anthropics_shape_and_status(claude, gateway):
    with pytest.raises(anthropic.NotFoundError) as e:
        claude.messages.create(model="no-such-model", max_tokens=8,
                               messages=[{"role": "user", "content": "x"}])
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "not_found_error"
    r = requests.post(gateway.url + "/v1/messages", json={
        "model": "gpt-fake", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400
    doc = r.json()
    assert doc["type"] == "error" and doc["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in doc["error"]["message"]
    r = requests.post(gateway.url + "/v1/messages", data=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_count_tokens(claude):
    n = claude.messages.count_tokens(model="gpt-fake", system="Be brief.", tools=[WEATHER],
                                     messages=[{"role": "user", "content": "hello " * 40}])
    assert n.input_tokens >= 60
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "x"}])


def test_the_ledger_records_a_messages_request(claude, ledger_path):
    raw = claude.messages.with_raw_response.create(
        model="gpt-fake", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    with sqlite3.connect(ledger_path) as db:
        row = db.execute("SELECT endpoint, route, status, completion_tokens FROM requests "
                         "WHERE id = ?", (raw.headers["x-request-id"],)).fetchone()
    assert row[0] == "messages" and row[1] == "gpt-fake" and row[2] == 200 and row[3] > 0


@pytest.mark.slow
def test_the_local_model_answers_the_messages_api(claude):
    with claude.messages.stream(model="smollm2-135m-instruct", max_tokens=8,
                                extra_body={"temperature": 0},
                                messages=[{"role": "user", "content": "Say hi."}]) as s:
        final = s.get_final_message()
    assert final.content[0].text and final.usage.output_tokens <= 8
    assert final.stop_reason in ("end_turn", "max_tokens")


def test_an_anthropic_upstream_behind_the_messages_api(claude, fake_anthropic):
    msg = claude.messages.create(model="claude-fake", max_tokens=32,
                                 messages=[{"role": "user", "content": "hello"}])
    assert msg.content[0].type == "text" and msg.content[0].text
    assert fake_anthropic.requests[-1]["body"]["messages"][0]["role"] == "user"


def test_models_list_in_anthropics_shape_for_the_anthropic_sdk(claude, client):
    everything = [m.id for m in claude.models.list(limit=1000)]
    assert "gpt-fake" in everything and "claude-fake" in everything
    assert everything == [m.id for m in client.models.list()]  # the same models, both shapes
    page = claude.models.list(limit=2)
    assert [m.type for m in page.data] == ["model", "model"] and page.has_more
    assert page.data[0].created_at.year >= 2026
    assert [m.id for m in claude.models.list(limit=3)] == everything  # pages follow after_id
    before = claude.models.list(limit=2, before_id=everything[3])
    assert [m.id for m in before.data] == everything[1:3]
    assert claude.models.retrieve("gpt-fake").display_name == "gpt-fake"
    with pytest.raises(anthropic.NotFoundError) as e:
        claude.models.retrieve("no-such-model")
    assert e.value.body["type"] == "error"
    with pytest.raises(anthropic.BadRequestError):
        claude.models.list(limit=0)


THINK = {"type": "enabled", "budget_tokens": 1024}
CACHED_SYSTEM = [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]


def test_an_anthropic_upstream_gets_the_request_and_gives_the_answer_as_they_came(
        claude, fake_anthropic):
    hello = [{"role": "user", "content": [
        {"type": "text", "text": "hello", "cache_control": {"type": "ephemeral"}}]}]
    msg = claude.messages.create(model="claude-fake", max_tokens=2048, extra_body={"top_k": 5},
                                 thinking=THINK, metadata={"user_id": "u-1"},
                                 system=CACHED_SYSTEM, messages=hello)
    sent = fake_anthropic.requests[-1]["body"]
    assert sent["model"] == "claude-sonnet-4-5"  # the upstream's own name for it
    assert sent["top_k"] == 5 and sent["thinking"] == THINK
    assert sent["metadata"] == {"user_id": "u-1"}
    assert sent["system"] == CACHED_SYSTEM and sent["messages"] == hello
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].signature == "sig-fake-1"
    assert msg.usage.cache_read_input_tokens == 2
    # the next turn hands the thinking block back; it reaches the upstream unchanged
    turn = [*hello, {"role": "assistant", "content": [b.model_dump() for b in msg.content]},
            {"role": "user", "content": "and then?"}]
    claude.messages.create(model="claude-fake", max_tokens=2048, thinking=THINK,
                           messages=turn)
    assert fake_anthropic.requests[-1]["body"]["messages"][1]["content"][0] == {
        "type": "thinking", "thinking": "thinking about hello", "signature": "sig-fake-1"}


def test_an_anthropic_upstreams_stream_is_passed_through(gateway, claude, ledger_path):
    with claude.messages.stream(model="claude-fake", max_tokens=2048, thinking=THINK,
                                messages=[{"role": "user", "content": "hi there"}]) as s:
        kinds = [e.type for e in s]
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "thinking about hi there"
    assert final.content[0].signature == "sig-fake-1"
    assert final.content[1].text == "echo: hi there"
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.usage.output_tokens == 7 and final.stop_reason == "end_turn"
    # recorded like any other request: the row has the upstream's usage
    r = requests.post(gateway.url + "/v1/messages", timeout=10, json={
        "model": "claude-fake", "max_tokens": 64, "stream": True,
        "messages": [{"role": "user", "content": "count me"}]})
    rid = r.headers["x-request-id"]
    assert r.text.rstrip().endswith('data: {"type": "message_stop"}')
    with sqlite3.connect(ledger_path) as db:
        row = db.execute("SELECT prompt_tokens, completion_tokens, endpoint FROM requests "
                         "WHERE id = ?", (rid,)).fetchone()
    assert row == (13, 7, "messages")
