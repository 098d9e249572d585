"""Local generation speed.

Modes:
  single (default): llama.cpp called directly vs the same model through the gateway
    (streaming, one request at a time), same model, threads and prompt; and the prompt
    (prefill) rate, which the economics' hardware profiles use next to the decode rate.
  concurrency: N clients at once, engine embedded (one request at a time) and server
    (llama-server, continuous batching), through the gateway and against the raw
    llama-server: aggregate and per-client tokens/s, TTFT p50/p95.
  prefix: TTFT of a first and a second request sharing a ~1,500-token prefix (system
    prompt), different questions.
  speculative: tokens/s with speculative decoding off / ngram / draft model, on an
    input-grounded set (edit or extract from a given text) and on free chat.

    python bench/local_tokens.py [--model qwen2.5-coder-0.5b-instruct] [--tokens 128]
    python bench/local_tokens.py --mode concurrency --clients 1,4,8,16 \
        --models qwen2.5-coder-0.5b-instruct,qwen2.5-coder-1.5b-instruct
    python bench/local_tokens.py --mode prefix --models qwen2.5-coder-0.5b-instruct
    python bench/local_tokens.py --mode speculative --model qwen2.5-coder-1.5b-instruct \
        --draft qwen2.5-coder-0.5b-instruct
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
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


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gateway(model: str, threads: int, n_ctx: int, **local: object
                  ) -> tuple[subprocess.Popen, str]:
    """The gateway serving the pulled GGUF by path, ledger off, in a temporary
    HYBRIDGATE_HOME (nothing is written under the user's); ``local``: more fields of the
    model entry (engine, parallel, speculative...)."""
    port = _port()
    gguf = resolve_gguf(model)
    home = Path(tempfile.mkdtemp(prefix="hg-bench-home-"))
    cfg = home / "bench.yaml"
    extra = "".join(f", {k}: {json.dumps(v)}" for k, v in local.items())
    cfg.write_text(f"ledger: {{enabled: false}}\n"
                   f"models:\n  - {{name: m, provider: local, model: '{gguf}', "
                   f"n_threads: {threads}, n_ctx: {n_ctx}{extra}}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "hybridgate.cli.main", "serve", "--config",
                             str(cfg), "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env={**os.environ, "HYBRIDGATE_HOME": str(home)})
    return proc, wait_up(f"http://127.0.0.1:{port}", "/readyz")


def wait_up(url: str, path: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        try:
            r = requests.get(url + path, timeout=1)
            if r.status_code == 200:
                return url
            body = r.text
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url}{path} not ready after {timeout:.0f} s: {body}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(20)


# ---------------------------------------------------------------------- many clients

TOPICS = ["the printing press", "steam engines", "the silk road", "coral reefs",
          "the Roman aqueducts", "jazz", "volcanoes", "the telescope", "bread baking",
          "glaciers", "the compass", "honey bees", "the piano", "paper money",
          "lighthouses", "the bicycle"]


RUN = [0]  # counts runs: every run's prompts are new to the engine's prefix cache


def essay(i: int) -> list[dict]:
    """A ~100-token prompt, different per client and per run: it opens with the run and
    client number, so no request finds its prompt in a cache (the prompt's cost counts)."""
    topic = TOPICS[i % len(TOPICS)]
    return [{"role": "user", "content":
             f"Run {RUN[0]}, client {i}. Write a detailed essay about {topic}. "
             f"Cover its origins, how it works or "
             f"what it is made of, the people who shaped it, the places where it mattered "
             f"most, how it changed daily life, the mistakes and myths around it, and what "
             f"its future may look like. Use plain language, short paragraphs, concrete "
             f"examples and dates where you know them."}]


async def stream_one(session: aiohttp.ClientSession, url: str, model: str,
                     messages: list[dict], tokens: int, t_start: float
                     ) -> tuple[float, float, float, int]:
    """One streamed chat request: (sent, first content, end) times and output tokens."""
    body = {"model": model, "messages": messages, "temperature": 0, "max_tokens": tokens,
            "stream": True, "stream_options": {"include_usage": True}}
    sent = time.perf_counter()
    first = None
    usage = 0
    async with session.post(url + "/v1/chat/completions", json=body) as r:
        assert r.status == 200, await r.text()
        async for line in r.content:
            if not line.startswith(b"data: {"):
                continue
            doc = json.loads(line[6:])
            if doc.get("usage"):
                usage = doc["usage"]["completion_tokens"]
            if first is None and doc.get("choices") and \
                    doc["choices"][0]["delta"].get("content"):
                first = time.perf_counter()
    assert first is not None and usage
    return sent - t_start, first - t_start, time.perf_counter() - t_start, usage


async def clients_run(url: str, model: str, n: int, tokens: int,
                      prompts: list[list[dict]] | None = None) -> dict[str, float]:
    RUN[0] += 1
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as session:
        t0 = time.perf_counter()
        runs = await asyncio.gather(*(stream_one(
            session, url, model, prompts[i] if prompts else essay(i), tokens, t0)
            for i in range(n)))
    wall = max(end for _, _, end, _ in runs)
    ttft = sorted(first - sent for sent, first, _, _ in runs)
    per_client = [(u - 1) / (end - first) for _, first, end, u in runs if end > first]
    return {"aggregate": sum(u for *_, u in runs) / wall,
            "per_client": statistics.median(per_client),
            "ttft_p50": statistics.median(ttft),
            "ttft_p95": ttft[min(len(ttft) - 1, round(0.95 * (len(ttft) - 1)))],
            "tokens": sum(u for *_, u in runs)}


def start_raw_server(model: str, threads: int, n_ctx: int, **local: object
                     ) -> tuple[subprocess.Popen, str]:
    """llama-server alone, with the argv the gateway's provider would give it."""
    from hybridgate.config.settings import LocalModel
    from hybridgate.providers.local.server import LlamaServer

    cfg = LocalModel(name="m", model=model, n_threads=threads, n_ctx=n_ctx, engine="server",
                     **local)  # type: ignore[arg-type]
    argv = LlamaServer(cfg, resolve_gguf(model), threads).argv
    port = _port()
    proc = subprocess.Popen([*argv, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, wait_up(f"http://127.0.0.1:{port}", "/health")


def concurrency(args: argparse.Namespace) -> None:
    clients = [int(c) for c in args.clients.split(",")]
    rows = []
    for model in args.models.split(","):
        for engine in args.engines.split(","):
            local: dict[str, object] = {"engine": engine}
            if engine == "server":
                local["parallel"] = args.parallel
            targets = [("gateway", start_gateway(model, args.threads, args.n_ctx, **local))]
            if engine == "server" and not args.no_raw:
                targets.append(("raw llama-server", start_raw_server(
                    model, args.threads, args.n_ctx, parallel=args.parallel)))
            try:
                for _path, (_, url) in targets:
                    asyncio.run(clients_run(url, "m", 1, 8))  # warm up
                for n in clients:
                    for path, (_, url) in targets:
                        r = asyncio.run(clients_run(url, "m", n, args.tokens))
                        rows.append((model, engine, path, n, r))
                        print(f"{model:<28} {engine:<8} {path:<16} {n:>3} clients: "
                              f"{r['aggregate']:6.1f} tok/s aggregate, "
                              f"{r['per_client']:5.1f} per client, TTFT p50 "
                              f"{r['ttft_p50']:.2f} s p95 {r['ttft_p95']:.2f} s", flush=True)
            finally:
                for _, (proc, _) in targets:
                    stop(proc)
    print(f"\n{args.tokens} tokens per request (fewer when the model stops), temperature 0, "
          f"{args.threads} threads, n_ctx {args.n_ctx}, parallel {args.parallel} (server)\n")
    print("| model | engine | path | clients | aggregate tok/s | per-client tok/s | "
          "TTFT p50 s | TTFT p95 s |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for model, engine, path, n, r in rows:
        print(f"| {model} | {engine} | {path} | {n} | {r['aggregate']:.1f} | "
              f"{r['per_client']:.1f} | {r['ttft_p50']:.2f} | {r['ttft_p95']:.2f} |")


# ---------------------------------------------------------------------- shared prefix

def shared_prefix(n_tokens: int) -> str:
    """A ~n-token system prompt: this repository's own architecture notes, repeated."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    words = text.split()
    out = []
    while len(out) < n_tokens * 3 // 4:  # ~0.75 words a token for English prose
        out += words
    return " ".join(out[: n_tokens * 3 // 4])


def prefix(args: argparse.Namespace) -> None:
    system = shared_prefix(args.prefix_tokens)
    questions = ["Summarise the request pipeline in one sentence.",
                 "Which stage records the request?", "What does the cache stage do?",
                 "Name the stage that runs after routing."]
    print(f"shared system prompt ~{args.prefix_tokens} tokens; TTFT (s) of requests that "
          f"share it, one after another, 8 output tokens each\n")
    print("| model | engine | first request | second | third | fourth | speed-up (1st/2nd) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for model in args.models.split(","):
        for engine in args.engines.split(","):
            local: dict[str, object] = {"engine": engine}
            if engine == "server":
                local["parallel"] = args.parallel
            proc, url = start_gateway(model, args.threads, max(args.n_ctx, 4096), **local)
            try:
                asyncio.run(clients_run(url, "m", 1, 4))  # warm up, another prompt
                ttfts = []
                for q in questions:
                    r = asyncio.run(clients_run(url, "m", 1, 8, prompts=[[
                        {"role": "system", "content": system},
                        {"role": "user", "content": q}]]))
                    ttfts.append(r["ttft_p50"])
            finally:
                stop(proc)
            print(f"| {model} | {engine} | " + " | ".join(f"{t:.2f}" for t in ttfts) +
                  f" | {ttfts[0] / ttfts[1]:.1f}x |", flush=True)


# ---------------------------------------------------------------------- speculative

def grounded_prompts() -> list[list[dict]]:
    """Input-grounded work: the answer copies most of a given text (this repository's
    own source files and docs): edit code, extract a section, fix a typo in a paragraph."""
    root = Path(__file__).resolve().parents[1]
    code = (root / "src/hybridgate/providers/local/textstream.py").read_text()[:1800]
    tier = (root / "src/hybridgate/core/ids.py").read_text()[:1500]
    doc = (root / "docs" / "architecture.md").read_text()[:1800]
    return [
        [{"role": "user", "content": "Rename the class StopTextStream to StopFilter "
          "everywhere in this code and output the whole file, nothing else:\n\n" + code}],
        [{"role": "user", "content": "Add a one-line comment above every function in this "
          "code and output the whole file:\n\n" + tier}],
        [{"role": "user", "content": "Copy the first three paragraphs of this document "
          "exactly, then stop:\n\n" + doc}],
        [{"role": "user", "content": "Output this code again with every double quote "
          "replaced by a single quote:\n\n" + code}],
    ]


def chat_prompts() -> list[list[dict]]:
    return [essay(i) for i in range(4)]


def speculative(args: argparse.Namespace) -> None:
    sets = {"input-grounded": grounded_prompts(), "free chat": chat_prompts()}
    variants: list[tuple[str, dict[str, object]]] = [("off", {}), ("ngram",
                                                                   {"speculative": "ngram"})]
    if args.draft:
        variants.append((f"draft {args.draft}", {"speculative": "draft",  # by path: the
                                                 # gateway runs in a temporary home
                                                 "draft_model": str(resolve_gguf(args.draft))}))
    # (variant, set) -> (decode tok/s after the first token, tok/s over the whole request)
    results: dict[tuple[str, str], tuple[float, float]] = {}
    if args.baseline:  # "off" measured before: decode,whole per set, e.g. 19.9,11.3,19.8,16.4
        nums = [float(x) for x in args.baseline.split(",")]
        for k, name in enumerate(sets):
            results[("off", name)] = nums[2 * k], nums[2 * k + 1]
        variants = [v for v in variants if v[0] != "off" and (v[0] != "ngram" or not
                                                              args.draft)]
    for label, extra in variants:
        proc, url = start_gateway(args.model, args.threads, max(args.n_ctx, 4096),
                                  engine="server", parallel=1, **extra)
        try:
            asyncio.run(clients_run(url, "m", 1, 4))
            for name, prompts in sets.items():
                decode, whole = [], []
                for p in prompts:  # one at a time: the single-stream speed-up
                    r = asyncio.run(clients_run(url, "m", 1, args.tokens, prompts=[p]))
                    decode.append(r["per_client"])
                    whole.append(r["tokens"] / (r["tokens"] / r["per_client"] +
                                                r["ttft_p50"]))
                results[(label, name)] = statistics.mean(decode), statistics.mean(whole)
                print(f"{args.model} {label:<30} {name:<15} decode {statistics.mean(decode):6.1f}"
                      f" tok/s, whole request {statistics.mean(whole):6.1f} tok/s", flush=True)
        finally:
            stop(proc)
    print(f"\n{args.model}, at most {args.tokens} tokens, temperature 0, one request at a "
          f"time, mean of {len(sets['free chat'])} prompts per set; decode = tokens/s after "
          f"the first token, whole = over the request, prompt included\n")
    print("| speculative | " + " | ".join(f"decode, {s}" for s in sets) + " | " +
          " | ".join(f"speed-up, {s}" for s in sets) + " | " +
          " | ".join(f"whole request, {s}" for s in sets) + " |")
    print("|---|" + "---:|" * (3 * len(sets)))
    for label in dict.fromkeys(k[0] for k in results):
        vals = [results[(label, s)][0] for s in sets]
        ups = [results[(label, s)][0] / results[("off", s)][0] for s in sets]
        whole = [results[(label, s)][1] / results[("off", s)][1] for s in sets]
        print(f"| {label} | " + " | ".join(f"{v:.1f}" for v in vals) + " | " +
              " | ".join(f"{u:.2f}x" for u in ups) + " | " +
              " | ".join(f"{u:.2f}x" for u in whole) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["single", "concurrency", "prefix", "speculative"],
                    default="single")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--models", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--engines", default="embedded,server")
    ap.add_argument("--clients", default="1,4,8,16")
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--no-raw", action="store_true", help="skip the raw llama-server rows")
    ap.add_argument("--prefix-tokens", type=int, default=1500)
    ap.add_argument("--draft", default=None, help="a draft model for --mode speculative")
    ap.add_argument("--baseline", default=None,
                    help="--mode speculative: the 'off' rates of an earlier run (decode,whole "
                         "per set), to measure only the draft model")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--prefill-tokens", type=int, default=512)
    args = ap.parse_args()
    if args.mode != "single":
        {"concurrency": concurrency, "prefix": prefix, "speculative": speculative}[args.mode](args)
        return
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
