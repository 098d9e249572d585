"""A chat completion served by the transformers provider with the TurboQuant KV cache."""

from __future__ import annotations

import openai
import pytest

from hybridgate.config.settings import parse_config
from hybridgate.turboquant.kv_cache import TurboQuantCache
from tests.conftest import LOCAL, start_gateway

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway():
    config = parse_config({"models": [
        {"provider": "transformers", "name": "tq", "model": LOCAL, "kv_cache": "turboquant",
         "kv_bits": 3.5, "kv_residual": 8, "n_ctx": 2048},
        {"provider": "transformers", "name": "full", "model": LOCAL, "kv_cache": "full"},
    ]})
    gw = start_gateway(config, ready_timeout=300)
    yield gw
    gw.stop()


def engine(gateway, name):
    return gateway.server.config.app.state.pipeline.registry.providers[name].engine


QUESTION = [{"role": "user", "content": "List the days of the week, one per line."}]


def test_chat_through_the_turboquant_cache(gateway):
    client = gateway.client()
    tq = engine(gateway, "tq")
    assert isinstance(tq.new_cache(), TurboQuantCache)
    r = client.chat.completions.create(model="tq", messages=QUESTION, max_tokens=40,
                                       temperature=0)
    text = r.choices[0].message.content
    assert "Monday" in text or "monday" in text.lower()
    assert r.usage.completion_tokens == 40 or r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 10
    # the prompt plus the answer outgrew the 8-token window: older tokens were coded
    assert 0 < tq.last_cache_bytes
    full = engine(gateway, "full")
    reference = client.chat.completions.create(model="full", messages=QUESTION,
                                               max_tokens=40, temperature=0)
    assert full.last_cache_bytes > 3 * tq.last_cache_bytes  # fp32 vs 3.5 bits + window
    # the coded cache still carries the question (quality is measured in bench/turboquant_kv.py)
    assert "Monday" in reference.choices[0].message.content and "Tuesday" in text


def test_streaming_gives_the_same_text_and_usage(gateway):
    client = gateway.client()
    kw = dict(model="tq", messages=QUESTION, max_tokens=15, temperature=0)
    whole = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(stream=True,
                                                 stream_options={"include_usage": True}, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_grammar_requests_get_a_clear_400(gateway):
    client = gateway.client()
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tq", messages=QUESTION, max_tokens=5,
                                       response_format={"type": "json_object"})
    assert "llama.cpp" in e.value.body["message"]
