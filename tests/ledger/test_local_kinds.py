"""One notion of "local" for every in-process engine: priced by hardware time, counted as
local in reports, allowed for data that must stay on-premises."""

from __future__ import annotations

import time

import pytest
from msgspec import UNSET

from hybridgate.config.settings import parse_config
from hybridgate.core.types import LOCAL_KINDS, Usage
from hybridgate.ledger.recorder import Recorder
from hybridgate.ledger.report import Row, _summarize
from hybridgate.providers.registry import build_provider

CONFIG = {"ledger": {"enabled": False}, "models": [
    {"name": "tq", "provider": "transformers", "model": "/nowhere.gguf"},
    {"name": "cpp", "provider": "local", "model": "/nowhere.gguf"},
    {"name": "emb", "provider": "sentence_transformers"},
    {"name": "gpt", "provider": "openai", "base_url": "http://127.0.0.1:9/v1"}]}


def test_every_in_process_provider_is_local():
    cfg = parse_config(CONFIG)
    local = {m.name: build_provider(m).local for m in cfg.models}
    assert local == {"tq": True, "cpp": True, "emb": True, "gpt": False}
    assert LOCAL_KINDS == {"local", "transformers", "embeddings"}


@pytest.mark.parametrize("kind", ["local", "transformers"])
def test_local_kinds_are_priced_by_hardware_seconds(kind):
    rec = Recorder(parse_config(CONFIG))
    costs = rec.costs("tq", kind, 100, 0, 50, 3600.0)
    # cpu-2core: $0.1323/h rented, carried by a 50% busy share; 35 W
    assert costs.cost_usd == pytest.approx(0.2646)
    assert costs.energy_j == pytest.approx(35 * 3600)


def test_engine_seconds_price_the_request_and_are_never_sent():
    rec = Recorder(parse_config(CONFIG))
    t = rec.track("chat", "tq", False, None)
    t.served_by("tq", "transformers")
    time.sleep(0.3)  # queued behind someone else: not this request's cost
    usage = Usage.of(10, 5, engine_seconds=0.1)
    costs = t.set_usage(usage)
    assert costs.cost_usd == pytest.approx(0.2646 * 0.1 / 3600)
    assert usage.engine_seconds is UNSET


def test_reports_count_transformers_rows_as_local():
    def row(provider: str) -> Row:
        return Row(ts=0, requested_model="m", route="m", key_id=None, provider=provider,
                   status=200, prompt_tokens=1, cached_tokens=0, completion_tokens=1,
                   latency_ms=1.0, ttft_ms=None, cost_usd=0.0, baseline_cost_usd=0.0,
                   energy_j=0.0)
    g = _summarize("all", [row("transformers"), row("local"), row("openai"),
                           row("embeddings")])
    assert g.local_share == pytest.approx(0.75)
