"""Gateway overhead: the same load, in one run, direct to a fast fake upstream and
through hybridgate (bare path: no key, fixed remote model, ledger off; the gateway runs
with a temporary HYBRIDGATE_HOME, so nothing is written under yours).

Load comes from wrk (Debian package ``wrk``) in its own process, at 1, 10 and 100
connections, alternating targets for ``--rounds`` rounds; we report medians of the
rounds: requests/s, p50 and p99, and added latency (gateway minus direct).

    python bench/overhead.py [--seconds 5] [--rounds 2] [--stream]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def wrk_script(stream: bool, model: str = "bench", key: str | None = None,
               prompt: str = "Hello there!", fresh: bool = False) -> str:
    """A wrk Lua script posting one chat request (with a bearer key if given); with
    ``fresh``, each request's prompt ends in a new number, so no two are the same, in
    this run or any other."""
    body: dict = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        body["stream"] = True
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else ""
    head = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n' + auth
    if fresh:
        said = json.dumps(prompt)[1:-1]
        before, after = json.dumps(body).split(said, 1)
        # numbered from the clock: a later run (the next round) repeats no earlier body
        head += (f"local n = (os.time() % 100000) * 100000\nrequest = function()\n  n = n + 1\n"
                 f"  return wrk.format(nil, nil, nil, {json.dumps(before + said)}"
                 f" .. \" (ticket \" .. n .. \")\" .. {json.dumps(after)})\nend\n")
    else:
        head += f"wrk.body = {json.dumps(json.dumps(body))}\n"
    path = Path(tempfile.mkstemp(suffix=".lua")[1])
    path.write_text(head)
    return str(path)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(url: str, conns: int, seconds: int, script: str) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s",
                          script, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": p50, "p99": p99,
            "errors": float(errors.group(1)) if errors else 0.0,
            "socket_errors": 1.0 if sock else 0.0}


Results = dict[tuple[str, int], list[dict[str, float]]]


def start_gateway(config: Path, port: int, env: dict[str, str] | None = None,
                  workers: int = 1) -> subprocess.Popen:
    """``hybridgate serve`` in its own process, output discarded. Its HYBRIDGATE_HOME is
    a fresh temporary directory unless ``env`` names one: a benchmark never writes a
    ledger (or anything else) into the user's real home."""
    env = {"HYBRIDGATE_HOME": tempfile.mkdtemp(prefix="hg-bench-home-"), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "hybridgate.cli.main", "serve", "--config",
                             str(config), "--port", str(port), "--workers", str(workers)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **env})


def stop_all(procs: list[subprocess.Popen]) -> None:
    """Terminate every process, killing any that do not exit within 10 s."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def start_floor(up_port: int, passthrough_port: int, delay_ms: float = 0.0
                ) -> tuple[subprocess.Popen, subprocess.Popen]:
    """The fake upstream and the aiohttp passthrough in front of it, output discarded."""
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    fake = subprocess.Popen([sys.executable, str(HERE / "fake_upstream.py"), "--port",
                             str(up_port), "--delay-ms", str(delay_ms)], **quiet)
    passthrough = subprocess.Popen(
        [sys.executable, str(HERE / "passthrough.py"), "--port", str(passthrough_port),
         "--upstream", f"http://127.0.0.1:{up_port}"], **quiet)
    return fake, passthrough


def measure(targets: dict[str, tuple[str, str]], conns: list[int], seconds: int,
            rounds: int) -> Results:
    """wrk against each (url, lua script) target, alternating targets within a round so
    machine noise hits them alike."""
    results: Results = {}
    for _ in range(rounds):
        for c in conns:
            for name, (url, script) in targets.items():
                results.setdefault((name, c), []).append(run_wrk(url, c, seconds, script))
    return results


def run_table(targets: dict[str, tuple[str, str]], conns: list[int], seconds: int,
              rounds: int, title: str, note: str = "") -> None:
    """Measure the targets and print one added-latency table under a one-line header."""
    results = measure(targets, conns, seconds, rounds)
    print(f"\n{title}: wrk -t1, {rounds} rounds x {seconds}s, medians; "
          f"{os.cpu_count()} CPUs{note}\n")
    print_added(results, list(targets), conns)


def print_added(results: Results, names: list[str], conns: list[int]) -> None:
    """Medians per target, and latency added over the ``direct`` target."""
    width = max(len(n) for n in names)
    print(f"{'in flight':>9} | {'target':<{width}} | {'req/s':>8} | {'p50 ms':>8} | "
          f"{'p99 ms':>8} | {'added p50':>9} | {'added p99':>9} | errors")
    print("-" * (80 + width))
    for c in conns:
        d50 = statistics.median(r["p50"] for r in results[("direct", c)])
        d99 = statistics.median(r["p99"] for r in results[("direct", c)])
        for name in names:
            rs = results[(name, c)]
            p50 = statistics.median(r["p50"] for r in rs)
            p99 = statistics.median(r["p99"] for r in rs)
            added = ("", "") if name == "direct" else (f"{p50 - d50:.3f}", f"{p99 - d99:.3f}")
            print(f"{c:>9} | {name:<{width}} | {statistics.median(r['rps'] for r in rs):>8.0f}"
                  f" | {p50:>8.3f} | {p99:>8.3f} | {added[0]:>9} | {added[1]:>9} | "
                  f"{sum(r['errors'] + r['socket_errors'] for r in rs):.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--conns", default="1,10,100")
    ap.add_argument("--stream", action="store_true")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    up_port, gw_port = free_port(), free_port()
    cfg = Path(tempfile.mkstemp(suffix=".yaml")[1])
    cfg.write_text(f"ledger: {{enabled: false}}\n"
                   f"models:\n  - name: bench\n    provider: openai\n"
                   f"    base_url: http://127.0.0.1:{up_port}/v1\n")
    procs = [subprocess.Popen([sys.executable, str(HERE / "fake_upstream.py"), "--port",
                               str(up_port)], stdout=subprocess.DEVNULL),
             start_gateway(cfg, gw_port, {"PYTHONUNBUFFERED": "1"})]
    try:
        wait_http(f"http://127.0.0.1:{gw_port}/healthz")
        script = wrk_script(args.stream)
        targets = {"direct": (f"http://127.0.0.1:{up_port}/v1/chat/completions", script),
                   "hybridgate": (f"http://127.0.0.1:{gw_port}/v1/chat/completions", script)}
        run_table(targets, [int(c) for c in args.conns.split(",")], args.seconds,
                  args.rounds, "streaming" if args.stream else "non-streaming")
    finally:
        stop_all(procs)


if __name__ == "__main__":
    main()
