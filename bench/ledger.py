"""What recording costs: requests/s and latency with the ledger on vs off, same run.

Three gateways behind the same fast fake upstream: ledger off, SQLite (WAL,
synchronous=FULL, group commit), Postgres (127.0.0.1:5432). wrk drives each in turn,
alternating, at 1, 10 and 100 connections; medians of rounds.

    python bench/ledger.py [--seconds 5] [--rounds 2] [--no-postgres]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from overhead import HERE, free_port, measure, start_gateway, wait_http, wrk_script


def gateway(name: str, up_port: int, ledger: str, tmp: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(f"ledger: {ledger}\nmodels:\n  - name: bench\n    provider: openai\n"
                   f"    base_url: http://127.0.0.1:{up_port}/v1\n")
    return start_gateway(cfg, port, {"HYBRIDGATE_HOME": str(tmp)}), f"http://127.0.0.1:{port}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--conns", default="1,10,100")
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="hg-ledger-bench-"))
    up_port = free_port()
    procs = [subprocess.Popen([sys.executable, str(HERE / "fake_upstream.py"), "--port",
                               str(up_port)], stdout=subprocess.DEVNULL)]
    variants = {"ledger off": "{enabled: false}",
                "sqlite": f"{{url: 'sqlite:///{tmp / 'ledger.db'}'}}"}
    if not args.no_postgres:
        schema = f"hg_bench_{os.getpid()}"
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc",
                        f"CREATE SCHEMA IF NOT EXISTS {schema}"], check=True)
        variants["postgres"] = ("{url: 'postgresql://postgres@127.0.0.1:5432/test?"
                                f"options=-csearch_path%3D{schema}'}}")
    urls = {}
    try:
        for name, ledger in variants.items():
            proc, url = gateway(name.replace(" ", "-"), up_port, ledger, tmp)
            procs.append(proc)
            urls[name] = url
        for url in urls.values():
            wait_http(url + "/readyz")
        script = wrk_script(False)
        conns = [int(c) for c in args.conns.split(",")]
        results = measure({name: (url + "/v1/chat/completions", script)
                           for name, url in urls.items()}, conns, args.seconds, args.rounds)
        print(f"\nnon-streaming chat via a fake upstream, {args.rounds} rounds x "
              f"{args.seconds}s, medians; {os.cpu_count()} CPUs\n")
        print(f"{'in flight':>9} | {'ledger':<10} | {'req/s':>8} | {'vs off':>7} | "
              f"{'p50 ms':>7} | {'p99 ms':>7} | errors")
        print("-" * 70)
        for c in conns:
            base = statistics.median(r["rps"] for r in results[("ledger off", c)])
            for name in urls:
                rs = results[(name, c)]
                rps = statistics.median(r["rps"] for r in rs)
                print(f"{c:>9} | {name:<10} | {rps:>8.0f} | {rps / base:>7.0%} | "
                      f"{statistics.median(r['p50'] for r in rs):>7.3f} | "
                      f"{statistics.median(r['p99'] for r in rs):>7.3f} | "
                      f"{sum(r['errors'] + r['socket_errors'] for r in rs):.0f}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        if not args.no_postgres:
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc",
                            f"DROP SCHEMA IF EXISTS {schema} CASCADE"], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
