"""The TurboQuant KV cache on real local models, against the full cache, in one run.

For each model (the catalogue's GGUF files, loaded by transformers with ``gguf_file=``, run in
float32 on the CPU) and each cache:

  bytes/token  what the cache holds after the perplexity text, over its tokens (codes, norms,
               means and the exact window for TurboQuant; packed data, scales and shifts for
               quanto; the type sizes for llama.cpp), and the ratio to the same cache in bf16
  ppl          perplexity on Alice's Adventures in Wonderland (bench/public_text.py), fed in
               64-token chunks so every chunk attends to what the cache stored of the earlier
               ones; targets across chunk borders are skipped, the same for every row
  agree        share of those positions where the greedy next token equals the full cache's
  needle       passkey retrieval at 2k / 4k / 8k tokens: a five-digit key at each --depths
               (default: the middle) of the text. The haystack is prefilled once with
               exact attention and handed to each cache (which stores it: quantized, for
               the quantized caches); then the question and the answer attend to what the
               cache holds. Hits out of depths tried.

llama.cpp rows (llama-cpp-python, flash_attn on, same GGUF, its own Q4_K_M kernels) compare
q8_0 / q4_0 K and V types with its f16 cache; their prompt is evaluated through the cache.

    python bench/turboquant_kv.py                       # both models, all lengths
    python bench/turboquant_kv.py --models qwen2.5-coder-0.5b-instruct --lengths 2048
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from public_text import alice
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, QuantizedCache

from hybridgate.turboquant.kv_cache import TurboQuantCache, cache_nbytes

MODELS = Path.home() / ".cache" / "hybridgate" / "models"
CHUNK = 64
NEEDLE = "The pass key is {key}. Remember it. {key} is the pass key. "
QUESTION = " What is the pass key? The pass key is"
KEYS = ["68432", "51907", "27365"]


def caches(config: object) -> dict[str, Callable[[], object]]:
    layer_types = set(getattr(config.get_text_config(decoder=True), "layer_types", None)
                      or ["full_attention"])
    out: dict[str, Callable[[], object]] = {
        "full (fp32)": lambda: DynamicCache(config=config),
        "TurboQuant 3.5": lambda: TurboQuantCache(config, bits=3.5),
        "TurboQuant 2.5": lambda: TurboQuantCache(config, bits=2.5),
    }
    if layer_types == {"full_attention"}:  # QuantizedCache refuses sliding-window layers
        out["quanto int4"] = lambda: QuantizedCache("quanto", config, nbits=4)
        out["quanto int2"] = lambda: QuantizedCache("quanto", config, nbits=2)
    return out


def cache_bytes(cache) -> int:
    """What the cache holds; for quanto add its packed data, scales and shifts."""
    total = cache_nbytes(cache)
    for layer in cache.layers:
        for q in (getattr(layer, "_quantized_keys", None),
                  getattr(layer, "_quantized_values", None)):
            if q is not None:
                names, _ = q.__tensor_flatten__()
                total += sum(getattr(q, n).nbytes for n in names)
    return total


def bf16_bytes_per_token(config: object, context: int) -> float:
    """The same model's cache in bf16 at this context (sliding layers hold window - 1)."""
    text = config.get_text_config(decoder=True)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    per_layer = text.num_key_value_heads * head_dim * 2 * 2  # K and V, 2 bytes
    types = getattr(text, "layer_types", None) or ["full_attention"] * text.num_hidden_layers
    held = [min(context, text.sliding_window - 1) if t == "sliding_attention" else context
            for t in types]
    return per_layer * sum(held) / context


def chunked_nll(model, ids: torch.Tensor, cache) -> tuple[float, torch.Tensor]:
    nll, n, greedy = 0.0, 0, []
    with torch.no_grad():
        for s in range(0, ids.shape[1], CHUNK):
            chunk = ids[:, s:s + CHUNK]
            logp = torch.log_softmax(model(input_ids=chunk, cache=cache).logits[0, :-1], -1)
            target = chunk[0, 1:]
            nll -= logp[torch.arange(len(target)), target].sum().item()
            n += len(target)
            greedy.append(logp.argmax(-1))
    return math.exp(nll / n), torch.cat(greedy)


def haystack(tok, story: list[int], length: int, key: str, depth: float) -> tuple[list, list]:
    needle = tok(NEEDLE.format(key=key), add_special_tokens=False).input_ids
    question = tok(QUESTION, add_special_tokens=False).input_ids
    room = length - len(needle) - len(question)
    at = int(room * depth)
    return story[:at] + needle + story[at:room], question


def answer(model, tok, cache, question: list[int], steps: int = 6) -> str:
    ids = torch.tensor([question])
    out = []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=ids, cache=cache).logits[0, -1]
            nxt = int(logits.argmax())
            out.append(nxt)
            ids = torch.tensor([[nxt]])
    return tok.decode(out)


def fill(cache, exact: DynamicCache, length: int) -> None:
    """Hand an exactly prefilled haystack to ``cache``, as if its own prefill had stored it."""
    for i, layer in enumerate(exact.layers):
        cache.update(layer.keys, layer.values, i)
        target = cache.layers[i]
        if getattr(target, "sliding_window", None) and hasattr(target, "cumulative_length"):
            target.cumulative_length = length  # the exact cache kept only the window


def transformers_rows(name: str, story_text: str, lengths: list[int], depths: list[float],
                      ppl_tokens: int) -> list[dict]:
    tok = AutoTokenizer.from_pretrained(MODELS, gguf_file=f"{name}.gguf")
    model = AutoModelForCausalLM.from_pretrained(MODELS, gguf_file=f"{name}.gguf",
                                                 dtype=torch.float32).eval()
    story = tok(story_text, add_special_tokens=False).input_ids
    ids = torch.tensor([story[:ppl_tokens]])
    makers = caches(model.config)
    rows = {label: {"model": name, "cache": label, "needle": {}} for label in makers}
    reference = None
    for label, make in makers.items():
        cache = make()
        t = time.perf_counter()
        ppl, greedy = chunked_nll(model, ids, cache)
        row = rows[label]
        row["ppl"], row["seconds"] = ppl, time.perf_counter() - t
        reference = greedy if reference is None else reference
        row["agree"] = (greedy == reference).float().mean().item()
        row["bytes"] = cache_bytes(cache) / ppl_tokens
        row["bf16"] = bf16_bytes_per_token(model.config, ppl_tokens)
        print(f"  {name} {label}: ppl {ppl:.3f} ({row['seconds']:.0f} s)", flush=True)
    for length in lengths:
        for d, depth in enumerate(depths):
            key = KEYS[d % len(KEYS)]
            hay, question = haystack(tok, story, length, key, depth)
            exact = DynamicCache(config=model.config)
            t = time.perf_counter()
            with torch.no_grad():
                for s in range(0, len(hay), 512):
                    model(input_ids=torch.tensor([hay[s:s + 512]]), cache=exact)
            print(f"  {name} prefill {length} at depth {depth}: "
                  f"{time.perf_counter() - t:.0f} s", flush=True)
            for label, make in makers.items():
                cache = copy.deepcopy(exact) if label.startswith("full") else make()
                if not label.startswith("full"):
                    fill(cache, exact, len(hay))
                said = answer(model, tok, cache, question)
                hits = rows[label]["needle"].setdefault(length, [0, 0])
                hits[0] += key in said
                hits[1] += 1
    return list(rows.values())


def llama_rows(name: str, story_text: str, lengths: list[int], depths: list[float],
               ppl_tokens: int, threads: int) -> list[dict]:
    from llama_cpp import Llama

    types = {"llama.cpp f16": 1, "llama.cpp q8_0": 8, "llama.cpp q4_0": 2}
    elem_bytes = {1: 2.0, 8: 34 / 32, 2: 18 / 32}
    rows, reference = [], None
    for label, ggml_type in types.items():
        def load(n_ctx: int, logits_all: bool, kv: int = ggml_type) -> Llama:
            # llama.cpp writes each batch's K and V into the (quantized) cache before
            # attention reads them, so the batch size does not change what is measured
            return Llama(str(MODELS / f"{name}.gguf"), n_ctx=n_ctx, n_batch=512,
                         n_threads=threads, flash_attn=True, type_k=kv, type_v=kv,
                         logits_all=logits_all, verbose=False)

        llm = load(ppl_tokens + 64, logits_all=True)
        story = llm.tokenize(story_text.encode(), add_bos=False)
        ids = story[:ppl_tokens]
        llm.eval(ids)
        logits = np.asarray(llm.scores[:len(ids)], dtype=np.float64)
        del llm
        logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        keep = [i for i in range(len(ids) - 1) if (i + 1) % CHUNK]  # same targets as above
        nll = -sum(logp[i, ids[i + 1]] for i in keep)
        greedy = logp[keep].argmax(1)
        reference = greedy if reference is None else reference
        row = {"model": name, "cache": label, "ppl": math.exp(nll / len(keep)),
               "agree": float((greedy == reference).mean()), "needle": {}}
        llm = load(max(lengths) + 64, logits_all=False)
        for length in lengths:
            for d, depth in enumerate(depths):
                key = KEYS[d % len(KEYS)]
                needle = llm.tokenize(NEEDLE.format(key=key).encode(), add_bos=False)
                question = llm.tokenize(QUESTION.encode(), add_bos=False)
                room = length - len(needle) - len(question)
                at = int(room * depth)
                prompt = story[:at] + needle + story[at:room] + question
                llm.reset()
                out = llm.create_completion(prompt, max_tokens=6, temperature=0.0)
                hits = row["needle"].setdefault(length, [0, 0])
                hits[0] += key in out["choices"][0]["text"]
                hits[1] += 1
        row["elem_bytes"] = elem_bytes[ggml_type]
        rows.append(row)
        print(f"  {name} {label}: ppl {row['ppl']:.3f}", flush=True)
        del llm
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+",
                        default=["qwen2.5-coder-0.5b-instruct", "gemma-3-270m"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[2048, 4096, 8192])
    parser.add_argument("--depths", nargs="+", type=float, default=[0.5])
    parser.add_argument("--ppl-tokens", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    story = alice()
    print("| model | cache | bytes/token | vs bf16 | ppl | Δppl | agree | "
          + " | ".join(f"needle {n // 1024}k" for n in args.lengths) + " |")
    lines = []
    for name in args.models:
        rows = transformers_rows(name, story, args.lengths, args.depths, args.ppl_tokens)
        rows += llama_rows(name, story, args.lengths, args.depths, args.ppl_tokens,
                           args.threads)
        base = {"tf": rows[0]["ppl"], "llama": next(r["ppl"] for r in rows
                                                    if r["cache"] == "llama.cpp f16")}
        bf16 = rows[0]["bf16"]  # the model's cache in bf16, from its transformers config
        for r in rows:
            if "elem_bytes" in r:  # llama.cpp: the type's size, same layer accounting
                r["bytes"] = bf16 / 2 * r["elem_bytes"]
            ref = base["llama" if r["cache"].startswith("llama") else "tf"]
            needles = " | ".join(f"{h}/{n}" for h, n in r["needle"].values())
            lines.append(f"| {name} | {r['cache']} | {r['bytes']:,.0f} | {bf16 / r['bytes']:.2f}x "
                         f"| {r['ppl']:.3f} | {100 * (r['ppl'] / ref - 1):+.1f}% "
                         f"| {100 * r['agree']:.1f}% | {needles} |")
            print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
