"""Local generation speed: llama.cpp called directly vs the same model through the
gateway (streaming, one request at a time), same model, threads and prompt; and the
prompt (prefill) rate, which the economics' hardware profiles use next to the decode rate.

    python bench/local_tokens.py [--model qwen2.5-coder-0.5b-instruct] [--tokens 128]
                                 [--prefill-tokens 512]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from llama_cpp import Llama

from hybridgate.models.store import resolve_gguf

PROMPT = "Write a detailed essay about the history of the printing press."


def direct_run(llm: Llama, tokens: int) -> float:
    llm.reset()
    first = None
    n = 0
    for chunk in llm.create_chat_completion(messages=[{"role": "user", "content": PROMPT}],
                                            max_tokens=tokens, temperature=0, stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            n += 1
            if first is None:
                first = time.perf_counter()
    assert first is not None
    return (n - 1) / (time.perf_counter() - first)


def prefill_run(llm: Llama, n: int) -> float:
    """Prompt tokens/s: ``n`` tokens of prose evaluated in one batch from an empty cache."""
    text = (PROMPT + " ") * (n // 8 + 1)
    tokens = llm.tokenize(text.encode(), add_bos=True)[:n]
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(tokens)
    return len(tokens) / (time.perf_counter() - t0)


def gateway_run(url: str, tokens: int) -> float:
    body = {"model": "m", "messages": [{"role": "user", "content": PROMPT}], "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}, "max_tokens": tokens}
    first = None
    usage = None
    with requests.post(url + "/v1/chat/completions", json=body, stream=True) as r:
        for line in r.iter_lines():
            if not line.startswith(b"data: {"):
                continue
            doc = json.loads(line[6:])
            if doc.get("usage"):
                usage = doc["usage"]
            elif first is None and doc["choices"][0]["delta"].get("content"):
                first = time.perf_counter()
    end = time.perf_counter()
    assert usage is not None and first is not None
    return (usage["completion_tokens"] - 1) / (end - first)


def start_gateway(model: str, threads: int, n_ctx: int) -> tuple[subprocess.Popen, str]:
    """The gateway serving the pulled GGUF by path, ledger off, in a temporary
    HYBRIDGATE_HOME (nothing is written under the user's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gguf = resolve_gguf(model)
    home = Path(tempfile.mkdtemp(prefix="hg-bench-home-"))
    cfg = home / "bench.yaml"
    cfg.write_text(f"ledger: {{enabled: false}}\n"
                   f"models:\n  - {{name: m, provider: local, model: '{gguf}', "
                   f"n_threads: {threads}, n_ctx: {n_ctx}}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "hybridgate.cli.main", "serve", "--config",
                             str(cfg), "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env={**os.environ, "HYBRIDGATE_HOME": str(home)})
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            pass
        time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--prefill-tokens", type=int, default=512)
    args = ap.parse_args()
    path = resolve_gguf(args.model)
    proc, url = start_gateway(args.model, args.threads, args.n_ctx)
    llm = Llama(str(path), n_ctx=args.n_ctx, n_threads=args.threads,
                n_threads_batch=args.threads, n_batch=512, verbose=False)
    try:
        direct_run(llm, 8)  # warm both up
        gateway_run(url, 8)
        ds, gs, ps = [], [], []
        for _ in range(args.rounds):  # alternate, so machine noise hits both alike
            ds.append(direct_run(llm, args.tokens))
            gs.append(gateway_run(url, args.tokens))
            ps.append(prefill_run(llm, args.prefill_tokens))
    finally:
        proc.terminate()
        proc.wait(10)
        llm.close()
    d, g = statistics.median(ds), statistics.median(gs)
    print(f"\n{args.model}, {args.tokens} tokens, {args.threads} threads, median of "
          f"{args.rounds} alternating rounds (decode rate after the first token)\n")
    print(f"{'path':<28} | tok/s")
    print("-" * 38)
    print(f"{'llama-cpp-python direct':<28} | {d:6.1f}")
    print(f"{'through hybridgate (SSE)':<28} | {g:6.1f}")
    print(f"{'ratio':<28} | {g / d:6.1%}")
    print(f"{'prefill (direct), ' + str(args.prefill_tokens) + ' tokens':<28} | "
          f"{statistics.median(ps):6.1f}")


if __name__ == "__main__":
    main()
