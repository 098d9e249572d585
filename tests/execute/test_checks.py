"""Nothing malformed reaches a client: tool calls and structured answers are checked,
repaired when only the syntax is wrong, and asked again once when they are wrong."""

from __future__ import annotations

import json

import msgspec
import pytest
import requests

from hybridgate.core.types import ChatChunk, ChatRequest, ChatResponse
from hybridgate.execute.checks import InvalidOutput, check_chat

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}},
    "required": ["city"], "additionalProperties": False}}}


def req(**kw) -> ChatRequest:
    return msgspec.convert({"model": "m", "messages": [{"role": "user", "content": "x"}],
                            **kw}, ChatRequest)


def resp(content=None, calls=None, finish="stop") -> ChatResponse:
    msg: dict = {"role": "assistant", "content": content}
    if calls is not None:
        msg["tool_calls"] = [{"id": f"c{i}", "type": "function",
                              "function": {"name": n, "arguments": a}}
                             for i, (n, a) in enumerate(calls)]
    return msgspec.convert({"id": "x", "created": 0, "model": "m", "choices": [
        {"index": 0, "message": msg, "finish_reason": finish}]}, ChatResponse)


def test_a_valid_call_passes_untouched():
    r = resp(calls=[("get_weather", '{"city": "Paris"}')])
    check_chat(req(tools=[WEATHER]), r)
    assert r.choices[0].message.tool_calls[0].function.arguments == '{"city": "Paris"}'


def test_syntax_is_repaired_in_place():
    r = resp(calls=[("get_weather", "{'city': 'Paris',}")])
    check_chat(req(tools=[WEATHER]), r)
    assert json.loads(r.choices[0].message.tool_calls[0].function.arguments) == {
        "city": "Paris"}
    fenced = resp(content='```json\n{"a": 1,}\n```')
    check_chat(req(response_format={"type": "json_object"}), fenced)
    assert json.loads(fenced.choices[0].message.content) == {"a": 1}


@pytest.mark.parametrize(("request_kw", "answer", "why"), [
    ({"tools": [WEATHER]}, resp(calls=[("delete_all", "{}")]), "not an offered tool"),
    ({"tools": [WEATHER]}, resp(calls=[("get_weather", '{"city": 5}')]), "at city"),
    ({"tools": [WEATHER]}, resp(calls=[("get_weather", '{"town": "x"}')]), "schema"),
    ({"tools": [WEATHER]}, resp(calls=[("get_weather", "not json at all")]), "not JSON"),
    ({"tools": [WEATHER], "tool_choice": "required"}, resp(content="sunny"), "requires"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {
        "type": "object", "required": ["n"]}}}}, resp(content='{"m": 1}'), "schema"),
    ({"response_format": {"type": "json_object"}}, resp(content="plain words"), "JSON"),
])
def test_invalid_output_is_refused(request_kw, answer, why):
    with pytest.raises(InvalidOutput, match=why):
        check_chat(req(**request_kw), answer)


def test_an_answer_cut_at_max_tokens_is_returned_as_it_is():
    check_chat(req(response_format={"type": "json_object"}),
               resp(content='{"a": ', finish="length"))


TOOLS_BODY = {"tools": [WEATHER], "tool_choice": "required",
              "messages": [{"role": "user", "content": "weather in Paris?"}]}


def test_an_invalid_call_is_asked_again_with_the_error(gateway, fake_openai):
    fake_openai.tool_arguments = ['{"city": 5}', '{"city": "Paris"}']
    r = requests.post(gateway.v1 + "/chat/completions", json={"model": "gpt-fake",
                                                              **TOOLS_BODY})
    assert r.status_code == 200, r.text
    call = r.json()["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert r.headers["x-hybridgate-attempts"] == "2"
    reask = fake_openai.requests[1]["body"]["messages"]
    assert reask[-2]["role"] == "assistant" and "get_weather" in reask[-2]["content"]
    assert "invalid" in reask[-1]["content"] and "city" in reask[-1]["content"]


def test_an_answer_that_was_asked_again_still_costs_its_tokens(gateway, fake_openai,
                                                               ledger_path):
    import sqlite3

    fake_openai.tool_arguments = ['{"city": 5}', '{"city": "Paris"}']
    r = requests.post(gateway.v1 + "/chat/completions", json={"model": "gpt-fake",
                                                              **TOOLS_BODY})
    assert r.status_code == 200
    with sqlite3.connect(ledger_path) as db:
        cost, doc = db.execute("SELECT cost_usd, attempts FROM requests WHERE id = ?",
                               (r.headers["x-request-id"],)).fetchone()
    first = json.loads(doc)[0]
    assert first["status"] == 502 and first["error"].startswith("the arguments")
    assert first["completion_tokens"] > 0 and first["cost_usd"] > 0
    answer = r.json()["usage"]
    assert answer["cost"] == pytest.approx(cost) == pytest.approx(
        float(r.headers["x-hybridgate-cost"]), rel=1e-4)
    assert cost > first["cost_usd"]  # both answers are in it


def test_still_invalid_after_the_reask_is_a_clear_502(gateway, fake_openai):
    fake_openai.tool_arguments = '{"city": 5}'
    r = requests.post(gateway.v1 + "/chat/completions", json={"model": "gpt-fake",
                                                              **TOOLS_BODY})
    assert r.status_code == 502 and r.json()["error"]["code"] == "invalid_model_output"
    assert r.headers["x-hybridgate-attempts"] == "2"


def test_syntax_only_errors_are_repaired_without_a_reask(gateway, fake_openai):
    fake_openai.tool_arguments = "{'city': 'Paris',}"
    r = requests.post(gateway.v1 + "/chat/completions", json={"model": "gpt-fake",
                                                              **TOOLS_BODY})
    assert r.status_code == 200 and r.headers["x-hybridgate-attempts"] == "1"
    call = r.json()["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def _streamed_call(gateway):
    with requests.post(gateway.v1 + "/chat/completions", stream=True, json={
            "model": "gpt-fake", "stream": True, **TOOLS_BODY}) as r:
        lines = [x for x in r.iter_lines() if x]
        attempts = r.headers.get("x-hybridgate-attempts")
    args = "".join(d["function"].get("arguments") or ""
                   for x in lines[:-1] if json.loads(x[6:]).get("choices")
                   for d in json.loads(x[6:])["choices"][0]["delta"].get("tool_calls") or [])
    return r.status_code, attempts, args, lines[-1]


def test_a_streamed_call_is_held_checked_and_asked_again(gateway, fake_openai):
    fake_openai.tool_arguments = ['{"city": 5}', '{"city": "Paris"}']
    status, attempts, args, last = _streamed_call(gateway)
    assert status == 200 and attempts == "2" and last == b"data: [DONE]"
    assert json.loads(args) == {"city": "Paris"}


def test_a_streamed_call_with_broken_syntax_is_repaired(gateway, fake_openai):
    fake_openai.tool_arguments = "{'city': 'Paris',}"
    status, attempts, args, last = _streamed_call(gateway)
    assert status == 200 and attempts == "1" and json.loads(args) == {"city": "Paris"}


CITY = {"type": "json_schema", "json_schema": {"name": "city", "schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
    "additionalProperties": False}}}


def _streamed_text(gateway, **body):
    with requests.post(gateway.v1 + "/chat/completions", stream=True, json={
            "model": "gpt-fake", "stream": True,
            "messages": [{"role": "user", "content": "where?"}], **body}) as r:
        lines = [x for x in r.iter_lines() if x]
        attempts = r.headers.get("x-hybridgate-attempts")
    text = "".join(json.loads(x[6:])["choices"][0]["delta"].get("content") or ""
                   for x in lines[:-1] if json.loads(x[6:]).get("choices"))
    return r.status_code, attempts, text, lines[-1]


def test_a_streamed_json_schema_answer_is_held_and_repaired(gateway, fake_openai):
    fake_openai.content = ["{'city': 'Paris', }"]  # several deltas, single quotes, a comma
    status, attempts, text, last = _streamed_text(gateway, response_format=CITY)
    assert status == 200 and attempts == "1" and last == b"data: [DONE]"
    assert json.loads(text) == {"city": "Paris"}


def test_a_streamed_answer_off_its_schema_is_asked_again(gateway, fake_openai):
    fake_openai.content = ['{"town": "Paris"}', '{"city": "Paris"}']
    status, attempts, text, last = _streamed_text(gateway, response_format=CITY)
    assert status == 200 and attempts == "2" and json.loads(text) == {"city": "Paris"}
    assert "town" in fake_openai.requests[1]["body"]["messages"][-1]["content"]


def test_a_streamed_answer_never_valid_is_a_clear_error_before_any_byte(gateway, fake_openai):
    fake_openai.content = ["I cannot answer in JSON, sorry."]
    r = requests.post(gateway.v1 + "/chat/completions", json={
        "model": "gpt-fake", "stream": True, "response_format": CITY,
        "messages": [{"role": "user", "content": "where?"}]})
    assert r.status_code == 502 and r.json()["error"]["code"] == "invalid_model_output"


def test_a_held_stream_that_must_call_but_answers_in_text_is_invalid():
    from hybridgate.execute.checks import ALL, check_stream, hold

    def chunk(delta, finish=None):
        return msgspec.convert({"id": "c", "created": 0, "model": "m", "choices": [
            {"index": 0, "delta": delta, "finish_reason": finish}]}, ChatChunk)

    r = req(tools=[WEATHER], tool_choice="required")
    assert hold(r) == ALL
    held = [chunk({"role": "assistant", "content": ""}), chunk({"content": "no "}),
            chunk({"content": "call"}), chunk({}, "stop")]
    with pytest.raises(InvalidOutput, match="requires a tool call") as e:
        check_stream(r, held)
    assert e.value.answer == "no call"


def test_with_output_checks_off_an_invalid_call_passes_as_it_is(gateway, fake_openai):
    """For measuring what a model does on its own (bench/bfcl.py's "off")."""
    fake_openai.tool_arguments = '{"city": 5}'
    r = requests.post(gateway.v1 + "/chat/completions", json={"model": "gpt-unchecked",
                                                              **TOOLS_BODY})
    assert r.status_code == 200 and r.headers["x-hybridgate-attempts"] == "1"
    call = r.json()["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": 5}
