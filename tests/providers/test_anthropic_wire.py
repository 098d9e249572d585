import msgspec
import pytest

from hybridgate.core.errors import InvalidRequest, UpstreamUnavailable
from hybridgate.core.types import ChatRequest
from hybridgate.providers.anthropic_wire import (
    StreamTranslator,
    from_messages_response,
    to_messages_request,
)


def req(**kw):
    return msgspec.convert({"model": "m", **kw}, ChatRequest)


def test_image_parts_and_merging():
    body, _ = to_messages_request(req(messages=[
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "user", "content": "and"}]), "claude", 100, False)
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "AAAA"}},
        {"type": "text", "text": "and"}]}]


def test_only_system_message_is_400():
    with pytest.raises(InvalidRequest):
        to_messages_request(req(messages=[{"role": "system", "content": "x"}]), "c", 1, False)


def test_named_tool_choice_and_parallel_off():
    body, _ = to_messages_request(req(
        messages=[{"role": "user", "content": "x"}], parallel_tool_calls=False,
        tools=[{"type": "function", "function": {"name": "f"}}],
        tool_choice={"type": "function", "function": {"name": "f"}}), "c", 1, False)
    assert body["tool_choice"] == {"type": "tool", "name": "f",
                                   "disable_parallel_tool_use": True}


def test_response_stop_reasons():
    doc = {"id": "msg_1", "model": "c", "content": [{"type": "text", "text": "hi"}],
           "stop_reason": "max_tokens", "usage": {"input_tokens": 3, "output_tokens": 4}}
    r = from_messages_response(doc, json_mode=False)
    assert r.choices[0].finish_reason == "length"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (3, 4)


def test_stream_overloaded_error_event():
    t = StreamTranslator("c", False)
    with pytest.raises(UpstreamUnavailable):
        t.feed("error", {"type": "error", "error": {"type": "overloaded_error",
                                                     "message": "busy"}})
