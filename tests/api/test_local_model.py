"""The local model (SmolLM2 135M) through the gateway, via the openai SDK, on both
engines: llama.cpp in-process (``embedded``) and llama.cpp's server (``server``)."""

from __future__ import annotations

import json
import threading
import time

import jsonschema
import pytest
import requests

from tests.conftest import gateway_config, start_gateway

pytestmark = pytest.mark.slow

M = "smollm2-135m-instruct"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {
        "tz": {"type": "string"}}, "required": ["tz"]}}}


@pytest.fixture(scope="module", params=["embedded", "server"])
def gateway(request, gateway, fake_openai, fake_anthropic, tmp_path_factory):
    """The session's gateway (embedded engine), then one whose local models run on
    llama-server: every test here holds for both."""
    if request.param == "embedded":
        yield gateway
        return
    ledger = tmp_path_factory.mktemp("server-engine") / "ledger.db"
    gw = start_gateway(gateway_config(fake_openai, fake_anthropic, f"sqlite:///{ledger}",
                                      local_engine="server"))
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def client(gateway):
    return gateway.client()


def ask(client, content="What is the capital of France?", **kw):
    return client.chat.completions.create(model=M, messages=[
        {"role": "user", "content": content}], **kw)


def test_plain_chat(client):
    r = ask(client, max_tokens=20, temperature=0)
    assert r.choices[0].message.content.strip()
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.model == M


def test_max_tokens_gives_length_and_exact_count(client):
    r = ask(client, "Write a long story about a dragon.", max_tokens=7, temperature=0)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 7


def test_auto_means_default_local_model(client):
    r = client.chat.completions.create(model="auto", max_tokens=5, messages=[
        {"role": "user", "content": "hi"}])
    assert r.model == M


def test_stream_matches_non_stream_and_usage_is_exact(client):
    kw = dict(max_tokens=25, temperature=0, seed=3)
    full = ask(client, "Name three colors.", **kw)
    chunks = list(ask(client, "Name three colors.", stream=True,
                      stream_options={"include_usage": True}, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    tokens = ("prompt_tokens", "completion_tokens", "total_tokens")
    assert [getattr(chunks[-1].usage, k) for k in tokens] == \
        [getattr(full.usage, k) for k in tokens]
    assert chunks[0].choices[0].delta.role == "assistant"


def test_seed_makes_sampling_reproducible(client):
    a = ask(client, "Tell me a word.", max_tokens=12, temperature=1.0, seed=42)
    b = ask(client, "Tell me a word.", max_tokens=12, temperature=1.0, seed=42)
    assert a.choices[0].message.content == b.choices[0].message.content


def test_stop_sequence(client):
    r = ask(client, "Count from 1 to 20 separated by commas.", max_tokens=60, temperature=0,
            stop=["5"])
    assert "5" not in r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"


def test_content_parts_and_roles(client):
    r = client.chat.completions.create(model=M, max_tokens=10, messages=[
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Say "},
                                     {"type": "text", "text": "hello"}]},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "again"}])
    assert r.choices[0].message.content is not None


@pytest.mark.parametrize("choice", ["required", {"type": "function",
                                                 "function": {"name": "get_weather"}}])
def test_forced_tool_call_has_valid_arguments(client, choice):
    r = ask(client, "What's the weather in Paris?", tools=[WEATHER, TIME], tool_choice=choice,
            temperature=0)
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    call = msg.tool_calls[0]
    tool = {"get_weather": WEATHER, "get_time": TIME}[call.function.name]
    jsonschema.validate(json.loads(call.function.arguments), tool["function"]["parameters"])
    if isinstance(choice, dict):
        assert call.function.name == "get_weather"


def test_streamed_tool_call(client):
    chunks = list(ask(client, "Weather in Oslo?", tools=[WEATHER], tool_choice="required",
                      stream=True, temperature=0))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls and calls[0].function.name == "get_weather" and calls[0].id
    args = "".join(tc.function.arguments or "" for tc in calls)
    jsonschema.validate(json.loads(args), WEATHER["function"]["parameters"])
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_auto_tool_grammar_makes_a_started_call_a_valid_one(client):
    """Unconstrained, SmolLM2 answers this with JSON that is no call (a "name": "Rome"
    object); under auto_tool_grammar an answer that opens like a call must be one, with
    arguments valid against the tool (the unit from its enum)."""
    r = client.chat.completions.create(
        model=M + "-grammar", temperature=0, max_tokens=100, tools=[WEATHER],
        tool_choice="auto", messages=[{"role": "user", "content":
                                       "Write a JSON object calling get_weather for Rome."}])
    calls = r.choices[0].message.tool_calls
    assert calls and r.choices[0].finish_reason == "tool_calls"
    assert len(calls) == 1  # the model repeats the block; the repeats are one call
    args = json.loads(calls[0].function.arguments)
    jsonschema.validate(args, WEATHER["function"]["parameters"])
    assert args["city"] == "Rome"


def test_tool_choice_none_answers_in_text(client):
    r = ask(client, "What's the weather in Paris?", tools=[WEATHER], tool_choice="none",
            max_tokens=10)
    assert r.choices[0].message.tool_calls is None


def test_tool_result_conversation(client):
    r = client.chat.completions.create(model=M, max_tokens=20, tools=[WEATHER], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees, sunny"}])
    assert r.choices[0].finish_reason in ("stop", "length", "tool_calls")


SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
    "required": ["name", "age", "tags"], "additionalProperties": False}


def test_json_schema_output_validates(client):
    r = ask(client, "Describe a person as JSON.", temperature=0, max_tokens=200,
            response_format={"type": "json_schema", "json_schema": {
                "name": "person", "schema": SCHEMA, "strict": True}})
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content), SCHEMA)


def test_json_schema_streamed_output_validates(client):
    chunks = list(ask(client, "A person as JSON.", stream=True, max_tokens=200, temperature=0,
                      response_format={"type": "json_schema", "json_schema": {
                          "name": "person", "schema": SCHEMA}}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    jsonschema.validate(json.loads(text), SCHEMA)


JOKE = {"title": "Joke", "type": "object", "properties": {
    "setup": {"type": "string", "description": "question to set up a joke"},
    "punchline": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}},
    "required": ["setup"]}


@pytest.mark.parametrize("content", ["Tell me a joke about cats.", "Tell me a joke about dogs.",
                                     "Tell me a joke about the sea."])
def test_a_schema_with_an_optional_field_ends_before_max_tokens(client, content):
    """LangChain's test_structured_output_optional_param: a small model repeats itself
    inside a string value until max_tokens (SmolLM2 does on the first prompt); strings
    are bounded by the token budget, so the JSON is closed and valid."""
    r = ask(client, content, temperature=0, max_tokens=400, response_format={
        "type": "json_schema", "json_schema": {"name": "Joke", "schema": JOKE}})
    assert r.choices[0].finish_reason == "stop", r.choices[0].message.content
    jsonschema.validate(json.loads(r.choices[0].message.content), JOKE)


def test_schema_strings_exclude_raw_control_characters():
    from hybridgate.providers.local.constraints import _schema_gbnf

    grammar = _schema_gbnf({"type": "object", "properties": {"a": {"type": "string"}}}, 300)
    rules = dict(line.split(" ::= ", 1) for line in grammar.splitlines())
    assert rules["char"].startswith('[^"\\\\\\x7F\\x00-\\x1F]')
    assert rules["string"] == '"\\"" char{0,300} "\\"" space'  # bounded by the budget
    from hybridgate.providers.local.constraints import string_bound

    assert string_bound(300) == 300 and string_bound(100_000) == 2000  # at most 2,000


def test_json_object_mode(client):
    r = ask(client, 'What is 2+2? Answer as JSON like {"result": 4}', max_tokens=300, temperature=0,
            response_format={"type": "json_object"})
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_completions_endpoint(client):
    r = client.completions.create(model=M, prompt="Once upon a time", max_tokens=8,
                                  temperature=0)
    assert r.choices[0].text and r.usage.completion_tokens <= 8
    parts = list(client.completions.create(model=M, prompt="Once upon a time", max_tokens=8,
                                           temperature=0, stream=True,
                                           stream_options={"include_usage": True}))
    assert "".join(p.choices[0].text for p in parts if p.choices) == r.choices[0].text
    assert parts[-1].usage.completion_tokens == r.usage.completion_tokens


def test_prompt_longer_than_context_is_400(client, gateway):
    r = requests.post(gateway.v1 + "/chat/completions", json={
        "model": M, "messages": [{"role": "user", "content": "word " * 3000}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


def test_generation_does_not_block_other_routes(gateway):
    """While the local model generates, remote routes and health checks still answer."""
    done = threading.Event()

    def long_generation():
        requests.post(gateway.v1 + "/chat/completions", json={
            "model": M, "max_tokens": 200, "temperature": 0,
            "messages": [{"role": "user", "content": "Write a long essay about rivers."}]})
        done.set()

    t = threading.Thread(target=long_generation)
    t.start()
    time.sleep(0.3)
    latencies = []
    for _ in range(5):
        t0 = time.perf_counter()
        r = requests.post(gateway.v1 + "/chat/completions", json={
            "model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]})
        latencies.append(time.perf_counter() - t0)
        assert r.status_code == 200
    assert not done.is_set(), "the local generation finished too early to prove anything"
    assert max(latencies) < 0.5
    t.join(60)


def test_concurrent_requests_queue_and_all_complete(client):
    results: list[str] = []

    def one(i: int) -> None:
        r = ask(client, f"Say the number {i}.", max_tokens=8, temperature=0)
        results.append(r.choices[0].finish_reason)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 4


def test_disconnect_mid_stream_frees_the_model(gateway, client):
    """A client that leaves mid-stream stops generation: the next request is served fast."""
    with requests.post(gateway.v1 + "/chat/completions", stream=True, json={
            "model": M, "max_tokens": 1500, "stream": True,
            "messages": [{"role": "user", "content": "Write a very long essay."}]}) as r:
        for line in r.iter_lines():
            if line.startswith(b"data:"):
                break
    t0 = time.perf_counter()
    ask(client, "hi", max_tokens=3)
    # 1500 tokens at >100 tok/s would hold the model for >10 s if not cancelled.
    assert time.perf_counter() - t0 < 5
