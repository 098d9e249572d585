"""Malformed requests get OpenAI's error shape and the right 4xx, never a 500."""

from __future__ import annotations

import pytest
import requests


def post(gateway, body, path="/v1/chat/completions", **kw):
    if isinstance(body, (dict, list)):
        return requests.post(gateway.url + path, json=body, **kw)
    return requests.post(gateway.url + path, data=body,
                      headers={"content-type": "application/json"}, **kw)


def assert_error(r, status, param=None):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    if param is not None:
        assert err["param"] == param, err
    return err


MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("body", "param"), [
    (b"{not json", None),
    (b"[1,2]", None),
    (b"", None),
    ({"model": "gpt-fake"}, "messages"),
    ({"model": "gpt-fake", "messages": []}, "messages"),
    ({"model": 5, "messages": MSG}, "model"),
    ({"model": "gpt-fake", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": "gpt-fake", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": "gpt-fake", "messages": MSG, "temperature": 3}, "temperature"),
    ({"model": "gpt-fake", "messages": MSG, "max_tokens": "ten"}, "max_tokens"),
    ({"model": "gpt-fake", "messages": MSG, "stream": "yes"}, "stream"),
])
def test_bad_bodies_are_400_naming_the_field(gateway, body, param):
    assert_error(post(gateway, body), 400, param)


def test_invalid_utf8_is_400(gateway):
    err = assert_error(post(gateway, b'{"model": "gpt-fake", "messages": [{"role": "user", '
                                     b'"content": "\xff\xfe"}]}'), 400)
    assert "UTF-8" in err["message"] or "utf-8" in err["message"].lower()


def test_tool_result_without_matching_call_is_400(gateway):
    body = {"model": "gpt-fake", "messages": [
        {"role": "user", "content": "x"},
        {"role": "tool", "tool_call_id": "call_nope", "content": "42"}]}
    assert_error(post(gateway, body), 400, "messages[1].tool_call_id")


def test_invalid_json_schema_is_400(gateway):
    body = {"model": "gpt-fake", "messages": MSG, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "banana"}}}}
    assert_error(post(gateway, body), 400, "response_format.json_schema.schema")


def test_invalid_tool_parameters_schema_is_400(gateway):
    body = {"model": "gpt-fake", "messages": MSG, "tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {"a": {"type": 7}}}}}]}
    assert_error(post(gateway, body), 400, "tools[0].function.parameters")


@pytest.mark.parametrize("model", ["smollm2-135m-instruct", "gpt-fake"])
def test_remote_schema_refs_are_400_naming_the_ref(gateway, model):
    """Server-side request forgery through a client schema: refused before any provider
    (the local model's grammar converter and validator included) sees it."""
    ref = "http://127.0.0.1:9/internal/admin.json"
    fmt = {"model": model, "messages": MSG, "response_format": {"type": "json_schema",
           "json_schema": {"name": "x", "schema": {"type": "object",
                                                   "properties": {"a": {"$ref": ref}}}}}}
    err = assert_error(post(gateway, fmt), 400, "response_format.json_schema.schema")
    assert ref in err["message"]
    tools = {"model": model, "messages": MSG, "tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {"a": {"$ref": ref}}}}}]}
    err = assert_error(post(gateway, tools), 400, "tools[0].function.parameters")
    assert ref in err["message"]


def test_tool_choice_naming_unknown_tool_is_400(gateway):
    body = {"model": "gpt-fake", "messages": MSG, "tools": [
        {"type": "function", "function": {"name": "f"}}],
        "tool_choice": {"type": "function", "function": {"name": "g"}}}
    assert_error(post(gateway, body), 400, "tool_choice")


def test_unknown_model_is_404(gateway):
    err = assert_error(post(gateway, {"model": "gpt-nope", "messages": MSG}), 404, "model")
    assert err["code"] == "model_not_found"


def test_wrong_method_is_405(gateway):
    assert_error(requests.put(gateway.url + "/v1/chat/completions"), 405)
    assert_error(requests.get(gateway.url + "/v1/embeddings"), 405)


def test_unknown_path_is_404(gateway):
    assert_error(requests.get(gateway.url + "/v1/nothing-here"), 404)


def test_body_over_limit_is_413(gateway):
    big = {"model": "gpt-fake", "messages": [{"role": "user", "content": "x" * 1_200_000}]}
    assert_error(post(gateway, big), 413)


def test_chunked_body_over_limit_is_413(gateway):
    def gen():
        yield b'{"model": "gpt-fake", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"y" * 100_000
        yield b'"}]}'
    r = requests.post(gateway.url + "/v1/chat/completions", data=gen(),
                   headers={"content-type": "application/json"})
    assert_error(r, 413)


def test_n_greater_than_one_on_local_model_is_400(gateway):
    assert_error(post(gateway, {"model": "smollm2-135m-instruct", "messages": MSG, "n": 2}),
                 400, "n")


def test_embeddings_bad_input_is_400(gateway):
    assert_error(post(gateway, {"model": "all-MiniLM-L6-v2", "input": ""}, "/v1/embeddings"),
                 400, "input")
    assert_error(post(gateway, {"model": "all-MiniLM-L6-v2", "input": [[1, 2]]},
                      "/v1/embeddings"), 400, "input")


def test_chat_on_embedding_model_is_400(gateway):
    assert_error(post(gateway, {"model": "all-MiniLM-L6-v2", "messages": MSG}), 400, "model")


@pytest.mark.parametrize("stop", [["a", "b", "c", "d", "e"], ["x" * 5000]])
def test_unbounded_stop_sequences_are_400(gateway, stop):
    """The local token loop matches held-back text against every stop prefix per token:
    stop strings are bounded like OpenAI bounds them."""
    for path, body in (("/v1/chat/completions", {"model": "smollm2-135m-instruct",
                                                 "messages": MSG, "stop": stop}),
                       ("/v1/completions", {"model": "smollm2-135m-instruct",
                                            "prompt": "hi", "stop": stop})):
        assert_error(post(gateway, body, path), 400, "stop")
