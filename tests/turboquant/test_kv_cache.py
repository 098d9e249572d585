"""The TurboQuant KV cache inside real transformers models (tiny random Qwen2 and Gemma 3)."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    DynamicCache,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from hybridgate.turboquant.kv_cache import (
    BitPlan,
    TurboQuantCache,
    TurboQuantLayer,
    plan_kv,
)


def qwen2() -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=128, hidden_size=256, intermediate_size=256,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024)
    return Qwen2ForCausalLM(cfg).eval()


def gemma3() -> Gemma3ForCausalLM:
    torch.manual_seed(0)
    cfg = Gemma3TextConfig(vocab_size=128, hidden_size=128, intermediate_size=256,
                           num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=1,
                           head_dim=64, sliding_window=32, max_position_embeddings=1024,
                           layer_types=["sliding_attention", "sliding_attention",
                                        "full_attention"])
    return Gemma3ForCausalLM(cfg).eval()


def chunked_logits(model, ids, cache, chunk=16):
    """Feed the text in chunks through one cache: later chunks attend to coded tokens."""
    out = []
    with torch.no_grad():
        for s in range(0, ids.shape[1], chunk):
            out.append(model(input_ids=ids[:, s:s + chunk], cache=cache,
                             use_cache=True).logits)
    return torch.cat(out, dim=1)


def test_plan_matches_the_budget_and_gives_keys_the_extra_bit():
    keys, values = plan_kv(64, 3.5)
    assert keys == BitPlan(64, 3, 32) and values == BitPlan(64, 2, 32)
    # 32 channels at 4 bits + 32 at 3 + two fp16 norms = 4.0; values one bit less = 3.0
    assert keys.effective_bits == 4.0 and values.effective_bits == 3.0
    for d in (64, 128, 256):
        for target in (2.5, 3.5, 4.5):
            k, v = plan_kv(d, target)
            average = (k.effective_bits + v.effective_bits) / 2
            assert target - 0.5 < average <= target
    with pytest.raises(ValueError, match="below the smallest plan"):
        plan_kv(64, 1.0)


@pytest.mark.parametrize("make", [qwen2, gemma3], ids=["qwen2", "gemma3"])
def test_high_bits_track_the_full_cache_and_low_bits_drift(make):
    model = make()
    ids = torch.randint(0, 128, (1, 96), generator=torch.Generator().manual_seed(1))
    full = chunked_logits(model, ids, DynamicCache(config=model.config))
    errors = {}
    for bits in (7.5, 2.5):
        cache = TurboQuantCache(model.config, bits=bits, residual=8)
        errors[bits] = (chunked_logits(model, ids, cache) - full).abs().mean().item()
    # tokens 0..87 were coded; at 7.5 bits their errors are tiny, at 2.5 visible
    assert errors[7.5] < 0.005 * full.abs().max().item()
    assert errors[2.5] > 5 * errors[7.5]


def test_first_chunk_is_exact_like_the_full_cache():
    model = qwen2()
    ids = torch.randint(0, 128, (1, 40), generator=torch.Generator().manual_seed(2))
    full = chunked_logits(model, ids, DynamicCache(config=model.config), chunk=40)
    quant = chunked_logits(model, ids, TurboQuantCache(model.config, bits=2.5, residual=4),
                           chunk=40)
    assert torch.allclose(full, quant, atol=1e-5)  # prefill attends to exact states


def test_sliding_layers_hold_at_most_the_window_and_full_layers_everything():
    model = gemma3()
    cache = TurboQuantCache(model.config, bits=3.5, residual=8)
    ids = torch.randint(0, 128, (1, 100), generator=torch.Generator().manual_seed(3))
    chunked_logits(model, ids, cache, chunk=10)
    sliding, _, full = cache.layers
    assert sliding.is_sliding and not full.is_sliding
    assert cache.get_seq_length() == 100
    assert sliding._coded + sliding.keys.shape[-2] == 31  # sliding_window - 1
    assert full._coded + full.keys.shape[-2] + full._sink_k.shape[-2] == 100
    assert full.keys.shape[-2] == 8 and full._sink_k.shape[-2] == 4
    assert sliding.get_mask_sizes(1) == (32, 69)
    assert full.get_mask_sizes(1) == (101, 0)


def test_memory_is_counted_from_the_real_arrays():
    model = qwen2()
    ids = torch.randint(0, 128, (1, 512), generator=torch.Generator().manual_seed(4))
    full = DynamicCache(config=model.config)
    chunked_logits(model, ids, full, chunk=128)
    tq = TurboQuantCache(model.config, bits=3.5, residual=8, sink=0)
    chunked_logits(model, ids, tq, chunk=128)
    full_bytes = sum(layer.keys.nbytes + layer.values.nbytes for layer in full.layers)
    # head dim 64 at 3.5 bits: 504 coded tokens ~ 3.5 / 32 of float32, plus 8 exact and means
    assert tq.effective_bits == 3.5
    assert full_bytes / tq.nbytes > 7
    coded_bits = sum(c.nbytes - c.mean.nbytes for layer in tq.layers
                     for codecs in layer._codecs for c in codecs) * 8
    assert coded_bits == 504 * 2 * 2 * 64 * 3.5 * 2  # tokens x heads x (K, V) x d x bits x layers


def test_unsupported_operations_say_so():
    layer = TurboQuantLayer()
    with pytest.raises(NotImplementedError, match="beam search"):
        layer.reorder_cache(torch.tensor([0]))
    with pytest.raises(ValueError, match="residual"):
        TurboQuantLayer(residual=0)
