"""Fault scenarios through a real gateway: what the client sees, and how long it took.

The fake OpenAI upstream (tests/fakes) fails on cue; the gateway runs in its own process
with a temporary HYBRIDGATE_HOME and the SQLite ledger on. Models: `primary` (2 retries,
falls back to `backup`, ttft_timeout 1 s, timeout 2 s between bytes) and `backup` (the
same fake, healthy; also its `content_policy_fallbacks`; idle_timeout 1 s between
chunks); `short` moves a prompt that is too long to `backup`. Each row says what the
client must see (and, where it matters, within how many seconds); `ok` is whether it did.

    python bench/faults.py
    python bench/faults.py --load 60   # and 100 in flight for 60 s, 30% of the primary's
                                       # requests failing (500, 503, 429, reset); the
                                       # backup healthy: success rate and latency
    python bench/faults.py --outage 60 # the primary down for 60 s, then back
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from overhead import (  # noqa: E402
    free_port,
    run_wrk,
    start_gateway,
    stop_all,
    wait_http,
    wrk_script,
)

from tests.fakes.openai_upstream import FakeOpenAI  # noqa: E402
from tests.fakes.server import Fault  # noqa: E402

KEY = "sk-bench-faults"
MSG = [{"role": "user", "content": "one two three four five six"}]


def config(url: str, ledger: Path) -> str:
    common = f"    base_url: {url}/v1\n    api_key: {KEY}\n    model: gpt-fake\n"
    return (f"ledger: {{url: 'sqlite:///{ledger}'}}\n"
            "server: {retry_backoff: 0.05}\n"
            "breaker: {enabled: false}\n"
            "models:\n"
            "  - name: primary\n    provider: openai\n" + common +
            "    timeout: 2\n    ttft_timeout: 1\n    idle_timeout: 1\n    num_retries: 2\n"
            "    fallbacks: [backup]\n    content_policy_fallbacks: [backup]\n"
            "  - name: backup\n    provider: openai\n" + common + "    num_retries: 0\n"
            "  - name: short\n    provider: openai\n" + common + "    num_retries: 0\n"
            "    context_window_fallbacks: [backup]\n")


def call(base: str, model: str, stream: bool) -> dict:
    t0 = time.perf_counter()
    body = {"model": model, "messages": MSG, "stream": stream,
            "stream_options": {"include_usage": True}} if stream else {
        "model": model, "messages": MSG}
    r = requests.post(base + "/v1/chat/completions", json=body, stream=stream, timeout=30)
    out = {"status": r.status_code, "model": r.headers.get("x-hybridgate-model", "-"),
           "attempts": r.headers.get("x-hybridgate-attempts", "-"), "done": None,
           "usage": None}
    if stream and r.status_code == 200:
        lines = [x for x in r.iter_lines() if x]
        out["done"] = bool(lines) and lines[-1] == b"data: [DONE]"
        for x in lines:
            if x.startswith(b"data: {") and b'"usage"' in x:
                doc = json.loads(x[6:])
                out["usage"] = (doc.get("usage") or {}).get("completion_tokens")
    out["s"] = time.perf_counter() - t0
    return out


SCENARIOS = [
    # name, faults (in order), model, stream, what the client must see
    ("500 once", [Fault(status=500)], "primary", False, {"status": 200, "attempts": "2"}),
    ("429 with Retry-After 0.3 s", [Fault(status=429, headers={"retry-after": "0.3"})],
     "primary", False, {"status": 200, "attempts": "2"}),
    ("429 persistent", [Fault(status=429)] * 3, "primary", False,
     {"status": 200, "model": "backup", "attempts": "4"}),
    ("503 persistent", [Fault(status=503)] * 3, "primary", False,
     {"status": 200, "model": "backup"}),
    ("connection reset", [Fault(drop=True)], "primary", False, {"status": 200}),
    ("no response at all (> timeout)", [Fault(delay=4)], "primary", False,
     {"status": 200, "attempts": "2"}),
    ("slow first token (> ttft_timeout)", [Fault(delay=3)], "primary", True,
     {"status": 200, "done": True}),
    ("stream cut before output", [Fault(truncate_after=1)], "primary", True,
     {"status": 200, "done": True, "attempts": "2"}),
    ("stream cut mid-way", [Fault(truncate_after=4)], "primary", True,
     {"status": 200, "done": False}),
    ("context length exceeded", [Fault(status=400, message=(
        "This model's maximum context length is 8192 tokens"))], "short", False,
     {"status": 200, "model": "backup"}),
    ("400 (client error)", [Fault(status=400)], "primary", False,
     {"status": 400, "attempts": "1"}),
    ("usage across a failover", [Fault(status=503)] * 3, "primary", True,
     {"status": 200, "done": True, "usage": 7}),
    ("stream stalled mid-way (> idle_timeout)", [Fault(stall_at=3, stall=4)], "primary", True,
     {"status": 200, "done": False, "max_s": 2.5}),
    ("a malformed chunk", [Fault(bad_chunk_at=2)], "primary", True,
     {"status": 200, "done": True, "attempts": "1"}),
    ("a missing [DONE]", [Fault(no_done=True)], "primary", True,
     {"status": 200, "done": True, "attempts": "1"}),
    ("content filter", [Fault(status=400, code="content_filter", message=(
        "The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy."))], "primary", False,
     {"status": 200, "model": "backup", "attempts": "2"}),
]


@contextmanager
def two_upstreams(name: str, breaker: str = ""):
    """A gateway whose `primary` (one retry, then `backup`) is on one fake upstream and
    `backup` on a second, healthy one: yields (flaky fake, gateway base URL)."""
    flaky, healthy = FakeOpenAI().start(), FakeOpenAI().start()
    flaky.api_key = healthy.api_key = KEY
    home = Path(tempfile.mkdtemp(prefix=f"hg-faults-{name}-"))
    cfg = home / f"{name}.yaml"
    common = f"    api_key: {KEY}\n    model: gpt-fake\n"
    cfg.write_text(f"ledger: {{url: 'sqlite:///{home / 'ledger.db'}'}}\n"
                   "server: {retry_backoff: 0.05}\n" + breaker +
                   "models:\n"
                   f"  - name: primary\n    provider: openai\n    base_url: {flaky.url}/v1\n"
                   + common + "    num_retries: 1\n    fallbacks: [backup]\n"
                   f"  - name: backup\n    provider: openai\n    base_url: {healthy.url}/v1\n"
                   + common)
    port = free_port()
    proc = start_gateway(cfg, port, {"HYBRIDGATE_HOME": str(home)})
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        yield flaky, f"http://127.0.0.1:{port}"
    finally:
        stop_all([proc])
        flaky.stop()
        healthy.stop()


def load(seconds: int) -> None:
    """100 in flight against `primary` (30% of its upstream requests fail), `backup` on a
    second, healthy fake upstream."""
    with two_upstreams("load") as (flaky, base):
        flaky.fail_rate = 0.3
        r = run_wrk(base + "/v1/chat/completions", 100, seconds,
                    wrk_script(False, model="primary"))
        total = r["rps"] * seconds
        print(f"\n100 in flight for {seconds} s, primary failing 30% (500/503/429/reset), "
              f"backup healthy:\n  {r['rps']:.0f} req/s, p50 {r['p50']:.1f} ms, p99 "
              f"{r['p99']:.1f} ms, non-2xx {r['errors']:.0f} of ~{total:.0f} "
              f"({100 * (1 - r['errors'] / max(total, 1)):.3f}% success), socket errors: "
              f"{'yes' if r['socket_errors'] else 'none'}")


def outage(seconds: int) -> None:
    """The primary's upstream answers 503 for ``seconds``, then recovers; 20 requests/s
    all along. The breaker (min 10 requests, ratio 0.5, 10 s cooldown) should open within
    the first second, leave the dead upstream alone but for one probe per cooldown, and
    let traffic back within a cooldown of the recovery."""
    breaker = "breaker: {min_requests: 10, failure_ratio: 0.5, window: 10, cooldown: 10}\n"
    with two_upstreams("outage", breaker) as (flaky, base):
        flaky.default_fault = Fault(status=503)
        t0 = time.perf_counter()
        ok = total = hits_during = 0
        back_at = None  # when the primary served again after the recovery
        while True:
            now = time.perf_counter() - t0
            if now >= seconds and flaky.default_fault.status is not None:
                hits_during = len(flaky.requests)
                flaky.default_fault = Fault()
            if now >= seconds + 30:
                break
            got = call(base, "primary", False)
            total += 1
            ok += got["status"] == 200
            if now >= seconds and back_at is None and got["model"] == "primary":
                back_at = now - seconds
            time.sleep(0.05)
        print(f"\nprimary down {seconds} s, then back (20 req/s, breaker cooldown 10 s):\n"
              f"  {ok} of {total} requests answered 200 ({100 * ok / total:.2f}%)\n"
              f"  requests that reached the dead upstream during the outage: {hits_during} "
              f"(of ~{20 * seconds} sent)\n"
              + (f"  the primary served again {back_at:.1f} s after it recovered"
                 if back_at is not None else "  the primary never served again"))


def main() -> None:
    # the fake logs a traceback for every connection the gateway gives up on: expected
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    if "--load" in sys.argv:
        load(int(sys.argv[sys.argv.index("--load") + 1]))
        return
    if "--outage" in sys.argv:
        outage(int(sys.argv[sys.argv.index("--outage") + 1]))
        return
    fake = FakeOpenAI().start()
    fake.api_key = KEY
    home = Path(tempfile.mkdtemp(prefix="hg-faults-"))
    cfg = home / "faults.yaml"
    cfg.write_text(config(fake.url, home / "ledger.db"))
    port = free_port()
    proc = start_gateway(cfg, port, {"HYBRIDGATE_HOME": str(home)})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/readyz")
        print(f"\n{'scenario':<40} | {'ok':<3} | status | served by | tries | [DONE] | "
              f"seconds")
        print("-" * 88)
        failed = 0
        for name, faults, model, stream, want in SCENARIOS:
            fake.reset()
            fake.faults.extend(faults)
            got = call(base, model, stream)
            ok = all(got.get(k) == v for k, v in want.items() if k != "max_s")
            ok = ok and got["s"] <= want.get("max_s", 30)
            failed += not ok
            done = "-" if got["done"] is None else ("yes" if got["done"] else "no")
            print(f"{name:<40} | {'yes' if ok else 'NO':<3} | {got['status']:>6} | "
                  f"{got['model']:<9} | {got['attempts']:>5} | {done:>6} | {got['s']:7.2f}")
        print(f"\n{len(SCENARIOS) - failed} of {len(SCENARIOS)} scenarios as expected")
    finally:
        stop_all([proc])
        fake.stop()


if __name__ == "__main__":
    main()
