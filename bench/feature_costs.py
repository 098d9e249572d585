"""What each feature of the full product path costs: the same load, in one run, through
hybridgate with the features switched on one at a time.

    bare          fixed remote model, no key, ledger off
    +key          gateway key checked on every request
    +key+router   model "auto": policies and the learned router pick weak or strong
    full          the above and the SQLite ledger, committing before every reply
                  (and Prometheus metrics and the audit log, on by default; tracing off)
    full-nometrics  full with ``server.metrics: false``: what counting costs
    full-noaudit    full with the audit log off (``ledger.audit.enabled: false``)
    full+limits     full with a tenant budget and rate limits in Redis (never reached)
    full+pii        full with the tenant's ``pii: detect``, identifiers only
                    (``pii_names: false``)
    full+pii-names  full with ``pii: detect`` and the names model (the default reader,
                    the encoder)
    full+pii-small  the same with ``pii_names_model: small`` (the spaCy model)

With ``direct`` (the fake upstream) and ``passthrough`` (bench/passthrough.py, the
Starlette + aiohttp floor) beside them. wrk, alternating targets, medians of rounds.

    python bench/feature_costs.py [--seconds 3] [--rounds 2] [--conns 1,100] [--stream]
                                  [--workers N] [--only full,full+pii] [--fresh]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from gateway_vs_litellm import full_config, hg_config, script
from overhead import (
    free_port,
    run_table,
    start_floor,
    start_gateway,
    stop_all,
    wait_http,
)


def configs(upstream: str, ledger_db: Path) -> dict[str, str]:
    return {"bare": hg_config(upstream), "+key": hg_config(upstream, key=True),
            "+key+router": hg_config(upstream, key=True, router=True),
            "full": full_config(upstream, ledger_db),
            "full-nometrics": full_config(upstream, ledger_db.with_name("ledger-nm.db"))
            + "server: {metrics: false}\n",
            "full-noaudit": _no_audit(full_config(upstream, ledger_db.with_name("l-na.db"))),
            "full+limits": _limited(full_config(upstream, ledger_db.with_name("l-lim.db"))),
            "full+pii": _pii(full_config(upstream, ledger_db.with_name("l-pii.db")))
            + "pii_names: false\n",
            "full+pii-names": _pii(full_config(upstream, ledger_db.with_name("l-piin.db"))),
            "full+pii-small": _pii(full_config(upstream, ledger_db.with_name("l-pis.db")))
            + "pii_names_model: small\n"}


def _pii(cfg: str) -> str:
    """The same config with the tenant's requests under ``pii: detect`` (counted in the
    audit record; the bench prompt is a short sentence with nothing personal in it)."""
    return cfg.replace("{name: team, models: [bench, cheap]}",
                       "{name: team, models: [bench, cheap], pii: detect}", 1)


def _limited(cfg: str) -> str:
    """The same config with the tenant's budget and rate limits in Redis (set high
    enough never to refuse: what is measured is the reserve and the settle)."""
    return "redis: redis://127.0.0.1:6379/0\n" + cfg.replace(
        "{name: team, models: [bench, cheap]}",
        "{name: team, models: [bench, cheap], max_budget_usd: 1000000, rpm_limit: 100000000,"
        " tpm_limit: 10000000000, max_parallel_requests: 100000}", 1)


def _no_audit(cfg: str) -> str:
    """The same config with the audit log off (it is on wherever the ledger is)."""
    return cfg.replace("ledger: {url:", "ledger: {audit: {enabled: false}, url:", 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--conns", default="1,100")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--fresh", action="store_true",
                    help="a new prompt every request (nothing is remembered from before)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes per gateway")
    ap.add_argument("--only", help="comma-separated targets (default: all)")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="hg-features-"))
    ports = {"direct": free_port(), "passthrough": free_port()}
    up = f"http://127.0.0.1:{ports['direct']}"
    fake, passthrough = start_floor(ports["direct"], ports["passthrough"])
    procs = {"direct": fake, "passthrough": passthrough}
    chosen = {n: t for n, t in configs(up, tmp / "ledger.db").items()
              if only is None or n in only}
    for name, text in chosen.items():
        cfg = tmp / f"{name.strip('+').replace('+', '-')}.yaml"
        cfg.write_text(text)
        ports[name] = free_port()
        procs[name] = start_gateway(cfg, ports[name], {"HYBRIDGATE_HOME": str(tmp)},
                                    args.workers)
    try:
        wait_http(f"http://127.0.0.1:{ports['passthrough']}/", 30)
        for name in chosen:
            wait_http(f"http://127.0.0.1:{ports[name]}/healthz", 60)
        targets = {n: (f"http://127.0.0.1:{p}/v1/chat/completions",
                       script("auto" if "router" in n or n.startswith("full") else "bench",
                              args.stream, args.fresh))
                   for n, p in ports.items()}
        run_table(targets, [int(c) for c in args.conns.split(",")], args.seconds,
                  args.rounds, "streaming" if args.stream else "non-streaming",
                  f"; {args.workers} worker(s) per gateway")
    finally:
        stop_all(list(procs.values()))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
