"""CPU time the gateway spends per request on the full product path: a steadier measure
than requests/s on a shared, noisy machine (requests/s moves with whatever else the
cores do; the gateway's own CPU seconds per request move far less).

The fake upstream, the gateway (`full`: key with a tenant allowlist, the `auto` route
group, the SQLite ledger) and wrk each run in their own process; the gateway's user +
system CPU time (/proc/<pid>/stat) is read before and after each round and divided by
the requests wrk completed. Rounds alternate with a pause; medians are reported.

    python bench/cpu_per_request.py [--seconds 5] [--rounds 5] [--conns 50] [--stream]

To compare two versions of the code, run it once per checkout (e.g. an older commit in
a worktree, with PYTHONPATH=<worktree>/src) on the same machine, back to back.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gateway_vs_litellm import full_config, script
from overhead import free_port, run_wrk, start_floor, start_gateway, stop_all, wait_http

import hybridgate

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--stream", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hg-cpu-"))
    up_port, floor_port, port = free_port(), free_port(), free_port()
    fake, floor = start_floor(up_port, floor_port)
    cfg = tmp / "full.yaml"
    cfg.write_text(full_config(f"http://127.0.0.1:{up_port}", tmp / "ledger.db"))
    gw = start_gateway(cfg, port, {"HYBRIDGATE_HOME": str(tmp)})
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        lua = script("auto", args.stream)
        run_wrk(url, args.conns, 2, lua)  # warm-up
        per, rps = [], []
        for _ in range(args.rounds):
            time.sleep(1)
            c0 = cpu_seconds(gw.pid)
            r = run_wrk(url, args.conns, args.seconds, lua)
            used = cpu_seconds(gw.pid) - c0
            served = r["rps"] * args.seconds
            per.append(used / max(served, 1) * 1e6)
            rps.append(r["rps"])
        print(f"hybridgate from {Path(hybridgate.__file__).parent}")
        print(f"full path, {'streaming' if args.stream else 'non-streaming'}, "
              f"{args.conns} in flight, {args.rounds} x {args.seconds} s: "
              f"CPU per request median {statistics.median(per):.0f} us "
              f"(rounds: {', '.join(f'{x:.0f}' for x in per)}); "
              f"req/s median {statistics.median(rps):.0f}")
    finally:
        stop_all([gw, fake, floor])


if __name__ == "__main__":
    sys.exit(main())
