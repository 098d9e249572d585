"""Memory over a long run: the full product path (route group + learned router +
SQLite ledger) under steady load, RSS sampled every segment.

    python bench/soak.py [--minutes 10] [--conns 100]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from gateway_vs_litellm import full_config, rss_mb, script
from overhead import HERE, free_port, run_wrk, start_gateway, wait_http


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--segment", type=int, default=60, help="seconds per sample")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hg-soak-"))
    up_port, gw_port = free_port(), free_port()
    up = f"http://127.0.0.1:{up_port}"
    cfg = tmp / "full.yaml"
    cfg.write_text(full_config(up, tmp / "ledger.db"))
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([sys.executable, str(HERE / "fake_upstream.py"), "--port",
                               str(up_port)], **quiet),
             start_gateway(cfg, gw_port, {"HYBRIDGATE_HOME": str(tmp)})]
    try:
        wait_http(f"http://127.0.0.1:{gw_port}/readyz")
        url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        lua = [script("auto", False), script("auto", True)]
        print(f"{'minute':>6} | {'req/s':>7} | {'p99 ms':>8} | {'errors':>6} | {'RSS MB':>7}")
        print(f"{0:>6} | {'':>7} | {'':>8} | {'':>6} | {rss_mb(procs[1].pid):7.1f}")
        segments = int(args.minutes * 60 / args.segment)
        for i in range(segments):  # alternate non-streaming and streaming segments
            r = run_wrk(url, args.conns, args.segment, lua[i % 2])
            print(f"{(i + 1) * args.segment / 60:>6.1f} | {r['rps']:>7.0f} | {r['p99']:>8.1f} | "
                  f"{r['errors'] + r['socket_errors']:>6.0f} | {rss_mb(procs[1].pid):7.1f}",
                  flush=True)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
