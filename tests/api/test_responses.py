"""OpenAI's Responses API in front of any model, checked with the official `openai` SDK:
text and instructions, function tools and their outputs, text.format, streaming with
the Responses events, and stored responses (previous_response_id, GET, DELETE,
input_items) in the ledger's database, shared by replicas."""

from __future__ import annotations

import json
import sqlite3

import openai
import pytest
import requests
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from tests.conftest import LOCAL, OPENAI_KEY
from tests.ledger.helpers import GatewayProcess, pg_schema

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}
EVENTS = TypeAdapter(ResponseStreamEvent)


def test_a_text_answer_with_instructions(client, fake_openai):
    raw = client.responses.with_raw_response.create(model="gpt-fake", input="hello there",
                                                    instructions="Be brief.",
                                                    max_output_tokens=64)
    resp = raw.parse()
    assert resp.id.startswith("resp_") and resp.object == "response"
    assert resp.status == "completed" and resp.model == "gpt-fake"
    assert resp.output_text == "echo: hello there"
    assert resp.output[0].type == "message" and resp.output[0].role == "assistant"
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert resp.instructions == "Be brief." and resp.max_output_tokens == 64
    assert raw.headers["x-hybridgate-model"] == "gpt-fake"
    sent = fake_openai.requests[-1]["body"]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "hello there"}]
    assert sent["max_tokens"] == 64 and "store" not in sent


def test_function_tools_and_their_outputs_round_trip(client, fake_openai):
    resp = client.responses.create(model="gpt-fake", tools=[WEATHER], store=False,
                                   input="use a tool for Paris")
    call = next(o for o in resp.output if o.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments)["city"] == "Paris"
    assert call.call_id and call.id.startswith("fc_") and resp.store is False
    sent = fake_openai.requests[-1]["body"]
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["parameters"]
    follow = client.responses.create(model="gpt-fake", tools=[WEATHER], input=[
        {"role": "user", "content": "use a tool for Paris"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name,
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "18 C"},
        {"role": "user", "content": [{"type": "input_text", "text": "and so?"}]}])
    assert follow.output_text == "echo: and so?"
    turns = fake_openai.requests[-1]["body"]["messages"]
    assert turns[1]["role"] == "assistant" and turns[1]["tool_calls"][0]["id"] == call.call_id
    assert turns[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "18 C"}


def test_a_named_tool_choice_and_a_json_schema_format_are_passed_on(client, fake_openai):
    client.responses.create(model="gpt-fake", tools=[WEATHER], input="weather?",
                            tool_choice={"type": "function", "name": "get_weather"})
    assert fake_openai.requests[-1]["body"]["tool_choice"] == {
        "type": "function", "function": {"name": "get_weather"}}
    fake_openai.content = ['{"city": "Oslo"}']
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"], "additionalProperties": False}
    resp = client.responses.create(model="gpt-fake", input="a city", text={"format": {
        "type": "json_schema", "name": "place", "schema": schema, "strict": True}})
    assert json.loads(resp.output_text) == {"city": "Oslo"}
    assert resp.text.format.type == "json_schema"
    fmt = fake_openai.requests[-1]["body"]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == schema


def _events(client, **kw) -> list:
    with client.responses.create(stream=True, **kw) as stream:
        return list(stream)


def test_a_streamed_text_answer_has_the_responses_event_sequence(client):
    events = _events(client, model="gpt-fake", input="stream me please")
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert text == "echo: stream me please" == final.output_text
    assert final.usage.output_tokens > 0 and final.status == "completed"


def test_a_streamed_tool_call_and_the_sdk_stream_helper(client):
    with client.responses.stream(model="gpt-fake", tools=[WEATHER],
                                 input="use a tool for Paris") as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert kinds.index("response.function_call_arguments.done") < kinds.index(
        "response.completed")
    call = final.output[-1]
    assert call.type == "function_call" and json.loads(call.arguments)["city"] == "Paris"


def test_previous_response_id_continues_a_stored_conversation(client, fake_openai):
    first = client.responses.create(model="gpt-fake", input="my name is Ada",
                                    metadata={"topic": "names"})
    assert first.store is True
    second = client.responses.create(model="gpt-fake", input="what is my name?",
                                     previous_response_id=first.id)
    assert second.previous_response_id == first.id
    turns = fake_openai.requests[-1]["body"]["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == "echo: my name is Ada"
    got = client.responses.retrieve(second.id)
    assert got.id == second.id and got.output_text == second.output_text
    assert client.responses.retrieve(first.id).metadata == {"topic": "names"}
    items = client.responses.input_items.list(second.id, order="asc")
    assert [i.type for i in items.data] == ["message", "message", "message"]
    assert items.data[0].content[0].text == "my name is Ada"
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-fake", input="x", previous_response_id=first.id)


def test_a_streamed_response_is_stored_before_it_completes(client):
    events = _events(client, model="gpt-fake", input="keep this")
    resp_id = events[-1].response.id
    assert client.responses.retrieve(resp_id).output_text == "echo: keep this"


def test_store_false_keeps_nothing(client):
    resp = client.responses.create(model="gpt-fake", input="forget this", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(resp.id)


def test_errors_are_openai_errors(gateway, client):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="gpt-fake", input="x",
                                tools=[{"type": "web_search_preview"}])
    assert e.value.body["param"] == "tools[0].type"
    r = requests.post(gateway.url + "/v1/responses", json={"model": "gpt-fake"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    r = requests.post(gateway.url + "/v1/responses",
                      json={"model": "gpt-fake", "input": [{"type": "mystery"}]}, timeout=10)
    assert r.status_code == 400 and "mystery" in r.json()["error"]["message"]
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="x")


def test_the_ledger_records_a_responses_request(client, ledger_path):
    raw = client.responses.with_raw_response.create(model="gpt-fake", input="hi")
    with sqlite3.connect(ledger_path) as db:
        row = db.execute("SELECT endpoint, route, status FROM requests WHERE id = ?",
                         (raw.headers["x-request-id"],)).fetchone()
    assert row == ("responses", "gpt-fake", 200)


def test_every_streamed_event_parses_as_the_sdks_type(gateway):
    """The raw wire, parsed with the SDK's own union: no event the SDK does not know."""
    r = requests.post(gateway.url + "/v1/responses", stream=True, timeout=10, json={
        "model": "gpt-fake", "input": "use a tool for Paris", "tools": [WEATHER],
        "stream": True})
    events = [json.loads(line[6:]) for line in r.iter_lines(decode_unicode=True)
              if line.startswith("data: ")]
    parsed = [EVENTS.validate_python(e) for e in events]
    assert parsed[-1].type == "response.completed"


@pytest.mark.slow
def test_the_local_model_answers_with_a_json_schema(client):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}},
              "required": ["answer"], "additionalProperties": False}
    resp = client.responses.create(model=LOCAL, input="What is 2+2? Answer in JSON.",
                                   max_output_tokens=24, temperature=0, text={"format": {
                                       "type": "json_schema", "name": "sum", "schema": schema}})
    assert isinstance(json.loads(resp.output_text)["answer"], int)


def test_a_conversation_continues_on_another_replica(tmp_path, fake_openai):
    """Two gateway processes sharing a Postgres ledger: the response made on one is the
    previous response of the next request on the other."""
    with pg_schema() as url:
        cfg = {"ledger": {"url": url, "store": True},
               "models": [{"name": "gpt-fake", "provider": "openai",
                           "base_url": fake_openai.url + "/v1", "api_key": OPENAI_KEY}]}
        a_dir, b_dir = tmp_path / "a", tmp_path / "b"
        a_dir.mkdir()
        b_dir.mkdir()
        a = GatewayProcess(a_dir, fake_openai.url, {}, config=cfg)
        b = GatewayProcess(b_dir, fake_openai.url, {}, config=cfg)
        try:
            a.wait()
            b.wait()
            first = requests.post(a.url + "/v1/responses", timeout=10, json={
                "model": "gpt-fake", "input": "remember 42"}).json()
            second = requests.post(b.url + "/v1/responses", timeout=10, json={
                "model": "gpt-fake", "input": "what number?",
                "previous_response_id": first["id"]})
            assert second.status_code == 200, second.text
            turns = fake_openai.requests[-1]["body"]["messages"]
            assert turns[1]["content"] == "echo: remember 42"
            assert requests.get(a.url + f"/v1/responses/{second.json()['id']}",
                                timeout=10).json()["id"] == second.json()["id"]
        finally:
            a.stop()
            b.stop()


def test_input_tokens_counts_what_a_request_would_take(client):
    short = client.responses.input_tokens.count(model="gpt-fake", input="hello")
    assert short.object == "response.input_tokens" and short.input_tokens >= 1
    long = client.responses.input_tokens.count(model="gpt-fake", input="hello " * 400,
                                               instructions="be brief")
    assert long.input_tokens > 100 * short.input_tokens  # ~4 characters a token
    tool = {"type": "function", "name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}
    with_tools = client.responses.input_tokens.count(model="gpt-fake", input="hello",
                                                     tools=[tool])
    assert with_tools.input_tokens > short.input_tokens
    first = client.responses.create(model="gpt-fake", input="remember the word 'apple'")
    more = client.responses.input_tokens.count(model="gpt-fake", input="hello",
                                               previous_response_id=first.id)
    assert more.input_tokens > short.input_tokens  # the stored conversation counts
    with pytest.raises(openai.NotFoundError):
        client.responses.input_tokens.count(model="no-such-model", input="hello")
