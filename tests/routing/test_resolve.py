"""Routing hands execute an ordered list of names the caller may be served by."""

from __future__ import annotations

import msgspec

from hybridgate.config.settings import parse_config
from hybridgate.core.types import ChatRequest
from hybridgate.routing.resolve import Routes

CONFIG = parse_config({
    "routes": [{"name": "auto", "weak": "local", "strong": "gpt", "threshold": -100.0}],
    "models": [
        {"name": "local", "provider": "local", "context_window_fallbacks": ["big-local"]},
        {"name": "big-local", "provider": "local"},
        {"name": "gpt", "provider": "openai", "base_url": "http://x",
         "fallbacks": ["claude", "local"], "context_window_fallbacks": ["gpt-long"]},
        {"name": "gpt-long", "provider": "openai", "base_url": "http://x"},
        {"name": "claude", "provider": "anthropic"}]})
ROUTES = Routes(CONFIG, frozenset({"local", "big-local"}))


def req(text: str) -> ChatRequest:
    return msgspec.convert({"model": "auto", "messages": [{"role": "user", "content": text}]},
                           ChatRequest)


def test_a_routed_request_lists_fallbacks_then_the_other_member():
    c = ROUTES.choose(req("Explain quantum chromodynamics."))
    assert c.model == "gpt" and c.candidates == ("gpt", "claude", "local")
    assert c.context == ("gpt-long", "big-local")


def test_data_that_must_stay_never_falls_back_to_a_remote_model():
    c = ROUTES.choose(req("mail it to ann@example.org"))
    assert c.model == "local" and c.candidates == ("local",)
    assert c.context == ("big-local",)
    tagged = ROUTES.plan(ROUTES.pinned("local", None, True), None, True)
    assert tagged.candidates == ("local",)


def test_the_allowlist_filters_fallbacks():
    c = ROUTES.plan("gpt", frozenset({"gpt", "local"}), False)
    assert c.candidates == ("gpt", "local") and c.context == ()
