"""What each feature of the full product path costs: the same load, in one run, through
hybridgate with the features switched on one at a time.

    bare          fixed remote model, no key, ledger off
    +key          gateway key checked on every request
    +key+router   model "auto": policies and the learned router pick weak or strong
    full          the above and the SQLite ledger, committing before every reply

With ``direct`` (the fake upstream) and ``passthrough`` (bench/passthrough.py, the
Starlette + aiohttp floor) beside them. wrk, alternating targets, medians of rounds.

    python bench/feature_costs.py [--seconds 3] [--rounds 2] [--conns 1,100] [--stream]
                                  [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from overhead import (
    free_port,
    measure,
    print_added,
    start_floor,
    start_gateway,
    stop_all,
    wait_http,
)

KEY = "sk-bench-feature-key"


def configs(upstream: str, ledger_db: Path) -> dict[str, str]:
    models = (f"models:\n  - {{name: bench, provider: openai, base_url: '{upstream}/v1'}}\n"
              f"  - {{name: cheap, provider: openai, base_url: '{upstream}/v1'}}\n")
    keys = (f"tenants:\n  - {{name: team, models: [bench, cheap]}}\n"
            f"keys:\n  - {{id: bench, key: {KEY}, tenant: team}}\n")
    route = "routes:\n  - {name: auto, weak: cheap, strong: bench, strong_share: 0.2}\n"
    off = "ledger: {enabled: false}\n"
    return {"bare": off + models, "+key": off + models + keys,
            "+key+router": off + models + keys + route,
            "full": f"ledger: {{url: 'sqlite:///{ledger_db}'}}\n" + models + keys + route}


def script(model: str, stream: bool, tmp: Path) -> str:
    body: dict = {"model": model, "messages": [{"role": "user", "content": "Hello there! "
                                                "What is the capital of France?"}]}
    if stream:
        body["stream"] = True
    path = tmp / f"{model}-{int(stream)}.lua"
    path.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f'wrk.headers["Authorization"] = "Bearer {KEY}"\n'
                    f"wrk.body = {json.dumps(json.dumps(body))}\n")
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--conns", default="1,100")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--workers", type=int, default=1, help="worker processes per gateway")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="hg-features-"))
    ports = {"direct": free_port(), "passthrough": free_port()}
    up = f"http://127.0.0.1:{ports['direct']}"
    fake, passthrough = start_floor(ports["direct"], ports["passthrough"])
    procs = {"direct": fake, "passthrough": passthrough}
    for name, text in configs(up, tmp / "ledger.db").items():
        cfg = tmp / f"{name.strip('+').replace('+', '-')}.yaml"
        cfg.write_text(text)
        ports[name] = free_port()
        procs[name] = start_gateway(cfg, ports[name], {"HYBRIDGATE_HOME": str(tmp)},
                                    args.workers)
    try:
        wait_http(f"http://127.0.0.1:{ports['passthrough']}/", 30)
        for name in configs(up, tmp).keys():
            wait_http(f"http://127.0.0.1:{ports[name]}/healthz", 60)
        targets = {n: (f"http://127.0.0.1:{p}/v1/chat/completions",
                       script("auto" if "router" in n or n == "full" else "bench",
                              args.stream, tmp))
                   for n, p in ports.items()}
        conns = [int(c) for c in args.conns.split(",")]
        results = measure(targets, conns, args.seconds, args.rounds)
        mode = "streaming" if args.stream else "non-streaming"
        print(f"\n{mode}: wrk -t1, {args.rounds} rounds x {args.seconds}s, medians; "
              f"{os.cpu_count()} CPUs; {args.workers} worker(s) per gateway\n")
        print_added(results, list(targets), conns)
    finally:
        stop_all(list(procs.values()))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
