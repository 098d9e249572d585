"""hybridgate side by side with the LiteLLM proxy and the aiohttp passthrough floor.

One run, same box, same fast fake upstream (bench/fake_upstream.py, loaded directly
first to show it is never the bottleneck), targets alternating within each round:

    direct        the fake upstream itself
    passthrough   bench/passthrough.py: Starlette + one aiohttp session (the floor)
    hg-bare       hybridgate: fixed remote model, ledger off, no key
    hg-full       hybridgate: gateway key with a tenant allowlist, `auto` route group
                  (policies + learned router over two models on the fake upstream),
                  SQLite ledger on (commit before reply)
    litellm       LiteLLM proxy 1.110.2, 1 worker, master key, no database, logging off
                  (bench/setup_litellm.sh installs it in bench/.venv-litellm)

wrk (one thread, its own process) at 1, 10, 100 and 500 connections, non-streaming and
streaming; medians of the rounds. Added latency = target minus direct. RSS of each
target before and after. Time to first token at one in flight from a small client.

    python bench/gateway_vs_litellm.py [--seconds 3] [--rounds 2] [--no-litellm]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from overhead import (
    HERE,
    free_port,
    run_table,
    start_floor,
    start_gateway,
    stop_all,
    wait_http,
    wrk_script,
)

MASTER_KEY = "sk-bench-master-key"
PROMPT = "Hello there! What is the capital of France and why is it famous?"


def script(model: str, stream: bool, fresh: bool = False) -> str:
    """The benchmark's request, with the key every keyed target accepts."""
    return wrk_script(stream, model, MASTER_KEY, PROMPT, fresh)


def hg_config(upstream: str, ledger_db: Path | None = None, key: bool = False,
              router: bool = False) -> str:
    """A gateway over two models on the fake upstream; optionally a gateway key whose
    tenant has an allowlist, the `auto` route group, and the SQLite ledger (None: off)."""
    text = ("ledger: {enabled: false}\n" if ledger_db is None else
            f"ledger: {{url: 'sqlite:///{ledger_db}'}}\n")
    text += (f"models:\n  - {{name: bench, provider: openai, base_url: '{upstream}/v1'}}\n"
             f"  - {{name: cheap, provider: openai, base_url: '{upstream}/v1'}}\n")
    if key:
        text += (f"tenants:\n  - {{name: team, models: [bench, cheap]}}\n"
                 f"keys:\n  - {{id: bench, key: {MASTER_KEY}, tenant: team}}\n")
    if router:
        text += "routes:\n  - {name: auto, weak: cheap, strong: bench, strong_share: 0.2}\n"
    return text


def full_config(upstream: str, ledger_db: Path) -> str:
    """The full product path: key with a tenant allowlist, `auto`, SQLite ledger on."""
    return hg_config(upstream, ledger_db, key=True, router=True)


def rss_mb(pid: int) -> float:
    """RSS of a process and its children, in MB."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True,
                             text=True).stdout
        pids += [int(p) for p in out.split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def ttft(port: int, model: str, n: int = 100) -> tuple[float, float]:
    """Median time to the first SSE data line and to the end, one request at a time (ms)."""
    import requests

    session = requests.Session()
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    firsts, totals = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        first = None
        with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
                          headers={"Authorization": f"Bearer {MASTER_KEY}"}, stream=True,
                          timeout=30) as r:
            for line in r.iter_lines():
                if first is None and line.startswith(b"data: {"):
                    first = time.perf_counter()
        end = time.perf_counter()
        firsts.append(((first or end) - t0) * 1000)
        totals.append((end - t0) * 1000)
    return statistics.median(firsts), statistics.median(totals)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--conns", default="1,10,100,500")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--delay-ms", type=float, default=0.0)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    litellm_bin = HERE / ".venv-litellm" / "bin" / "litellm"
    use_litellm = not args.no_litellm and litellm_bin.exists()
    tmp = Path(tempfile.mkdtemp(prefix="hg-vs-litellm-"))
    env = {"HYBRIDGATE_HOME": str(tmp), "PYTHONUNBUFFERED": "1"}
    ports = {name: free_port() for name in ("direct", "passthrough", "hg-bare", "hg-full",
                                            "litellm")}
    up = f"http://127.0.0.1:{ports['direct']}"
    (tmp / "bare.yaml").write_text(hg_config(up))
    (tmp / "full.yaml").write_text(full_config(up, tmp / "ledger.db"))
    (tmp / "litellm.yaml").write_text(
        f"model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/bench\n"
        f"      api_base: {up}/v1\n      api_key: sk-fake\n"
        f"general_settings:\n  master_key: {MASTER_KEY}\n")
    procs: dict[str, subprocess.Popen] = {}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs["direct"], procs["passthrough"] = start_floor(ports["direct"], ports["passthrough"],
                                                        args.delay_ms)
    for name in ("hg-bare", "hg-full"):
        cfg = tmp / ("bare.yaml" if name == "hg-bare" else "full.yaml")
        procs[name] = start_gateway(cfg, ports[name], env)
    if use_litellm:
        procs["litellm"] = subprocess.Popen(
            [str(litellm_bin), "--config", str(tmp / "litellm.yaml"), "--port",
             str(ports["litellm"]), "--num_workers", "1"],
            env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"},
            **quiet)
    models = {"direct": "bench", "passthrough": "bench", "hg-bare": "bench", "hg-full": "auto",
              "litellm": "bench"}
    try:
        wait_http(f"http://127.0.0.1:{ports['passthrough']}/", 30)
        for name in ("hg-bare", "hg-full"):
            wait_http(f"http://127.0.0.1:{ports[name]}/readyz", 60)
        if use_litellm:
            wait_http(f"http://127.0.0.1:{ports['litellm']}/health/liveliness", 180)
        targets = [t for t in procs]
        conns = [int(c) for c in args.conns.split(",")]
        rss_start = {t: rss_mb(procs[t].pid) for t in targets}
        for stream in (False, True):
            run_table({t: (f"http://127.0.0.1:{ports[t]}/v1/chat/completions",
                           script(models[t], stream)) for t in targets},
                      conns, args.seconds, args.rounds,
                      "streaming" if stream else "non-streaming",
                      f"; upstream delay {args.delay_ms} ms")
        print("\nstreaming, one request at a time (100 requests): time to first token / total")
        for t in targets:
            first, total = ttft(ports[t], models[t])
            print(f"  {t:<12} TTFT {first:7.3f} ms   total {total:7.3f} ms")
        print("\nRSS (MB) before -> after the load")
        for t in targets:
            print(f"  {t:<12} {rss_start[t]:7.1f} -> {rss_mb(procs[t].pid):7.1f}")
    finally:
        stop_all(list(procs.values()))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
