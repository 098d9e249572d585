"""/readyz is 200 only when every model is loaded (or failed and marked optional), and
every in-process engine loads in the background, whatever its kind."""

from __future__ import annotations

import time

import pytest
import requests

from hybridgate.config.settings import parse_config
from tests.conftest import OPENAI_KEY, start_gateway


def _config(fake_openai, **broken: object) -> object:
    return parse_config({
        "ledger": {"enabled": False},
        "models": [
            {"name": "broken", "provider": "local", "model": "/nonexistent/model.gguf",
             **broken},
            {"name": "gpt-fake", "provider": "openai", "base_url": fake_openai.url + "/v1",
             "api_key": OPENAI_KEY}]})


def _settled(gw) -> requests.Response:
    """/readyz once the background load has finished (failed, here)."""
    deadline = time.time() + 30
    while True:
        r = requests.get(gw.url + "/readyz", timeout=5)
        if r.json()["errors"] or time.time() > deadline:
            return r
        time.sleep(0.05)


def test_a_model_that_failed_to_load_is_not_ready(fake_openai):
    gw = start_gateway(_config(fake_openai), wait_ready=False)
    try:
        r = _settled(gw)
        assert r.status_code == 503
        assert "broken" in r.json()["errors"] and "nonexistent" in r.json()["errors"]["broken"]
        # the other models still serve; the broken one says why it cannot
        ok = requests.post(gw.url + "/v1/chat/completions", json={
            "model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]})
        assert ok.status_code == 200
        bad = requests.post(gw.url + "/v1/chat/completions", json={
            "model": "broken", "messages": [{"role": "user", "content": "hi"}]})
        assert bad.status_code == 503 and "failed to load" in bad.json()["error"]["message"]
    finally:
        gw.stop()


def test_an_optional_model_that_failed_leaves_the_gateway_ready(fake_openai):
    gw = start_gateway(_config(fake_openai, optional=True), wait_ready=False)
    try:
        r = _settled(gw)
        assert r.status_code == 200 and "broken" in r.json()["errors"]
    finally:
        gw.stop()


@pytest.mark.parametrize("provider", ["transformers", "sentence_transformers"])
def test_every_in_process_engine_loads_in_the_background(fake_openai, provider):
    """A transformers model used to load in the foreground like a remote pool: a broken
    one stopped the whole gateway from starting. Now it is one more local model."""
    cfg = parse_config({
        "ledger": {"enabled": False},
        "models": [{"name": "broken", "provider": provider, "model": "/nonexistent/model"},
                   {"name": "gpt-fake", "provider": "openai",
                    "base_url": fake_openai.url + "/v1", "api_key": OPENAI_KEY}]})
    gw = start_gateway(cfg, ready_timeout=30, wait_ready=False)
    try:
        r = _settled(gw)
        assert r.status_code == 503 and "broken" in r.json()["errors"]
        assert requests.get(gw.url + "/healthz").status_code == 200
    finally:
        gw.stop()


def test_a_model_that_failed_to_load_is_skipped_for_its_fallback(fake_openai):
    gw = start_gateway(_config(fake_openai, fallbacks=["gpt-fake"]), wait_ready=False)
    try:
        _settled(gw)
        r = requests.post(gw.url + "/v1/chat/completions", json={
            "model": "broken", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200 and r.headers["x-hybridgate-model"] == "gpt-fake"
    finally:
        gw.stop()
