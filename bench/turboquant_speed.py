"""Speed of the transformers engine (TurboQuant and full cache) next to llama.cpp.

The same GGUF, the gateway's own engines (hf_engine.TransformersEngine, engine.Engine),
greedy, after a prompt cut from Alice's Adventures in Wonderland: prefill seconds, decode
tokens/s, and what the KV cache held at the end.

    python bench/turboquant_speed.py [--model qwen2.5-coder-0.5b-instruct] [--prompt 1024 4096]
"""

from __future__ import annotations

import argparse
import os
import threading
import time

from public_text import alice

from hybridgate.models.store import resolve_gguf
from hybridgate.providers.local.engine import Engine, SamplingParams
from hybridgate.providers.local.hf_engine import TransformersEngine


def timed(engine, tokens: list[int], new: int) -> tuple[float, float]:
    """(seconds to the first token, decode tokens/s after it)."""
    stamps: list[float] = []
    params = SamplingParams(max_tokens=new, temperature=0.0)
    start = time.perf_counter()
    engine.generate(tokens, params, threading.Event(), lambda _p: stamps.append(
        time.perf_counter()))
    first = stamps[0] - start
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return first, rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--prompt", nargs="+", type=int, default=[1024, 4096])
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    path = resolve_gguf(args.model)
    n_ctx = max(args.prompt) + args.new + 16
    engines = {
        "llama.cpp (f16 KV)": Engine(path, n_ctx=n_ctx, n_threads=args.threads, n_batch=512,
                                     kv_cache_type="f16", flash_attn=None,
                                     default_max_tokens=args.new),
    }
    for kind in ("full", "turboquant"):
        engines[f"transformers ({kind} KV)"] = TransformersEngine(
            path, n_ctx=n_ctx, n_threads=args.threads, kv_cache=kind, kv_bits=3.5,
            kv_residual=128, default_max_tokens=args.new)
    text = alice()
    print(f"{args.model}, {args.threads} threads, greedy, {args.new} new tokens\n")
    print("| engine | prompt tokens | first token s | decode tok/s | KV bytes at end |")
    print("|---|---:|---:|---:|---:|")
    for n in args.prompt:
        for name, engine in engines.items():
            tokens = engine.tokenize_prompt(text, templated=False)[:n]
            if isinstance(engine, Engine):
                engine.llm.reset()  # no prefix reuse between rows
            first, rate = timed(engine, tokens, args.new)
            held = getattr(engine, "last_cache_bytes", None)
            print(f"| {name} | {n:,} | {first:.2f} | {rate:.1f} | "
                  f"{'' if held is None else f'{held:,}'} |", flush=True)


if __name__ == "__main__":
    main()
