"""engine: server — llama.cpp's own server under the gateway: several requests decoded
together, each request's share of the engine's time, cancellation, crash and restart.

(What both engines must do alike, tools, grammars, usage, stop strings, runs on both in
tests/api/test_local_model.py.)"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from hybridgate.config.settings import ConfigError, parse_config
from hybridgate.economics.costs import load_hardware
from hybridgate.providers.local.server import ShareClock
from tests.conftest import start_gateway

pytestmark = pytest.mark.slow

M = "smollm2-135m-instruct"
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8,"  # a base continuation that does not stop early


def config(name: str, ledger: str | None = None, **local: object):
    doc: dict = {"models": [{"name": name, "provider": "local", "model": M, "n_ctx": 2048,
                             "n_threads": 2, "engine": "server", **local}]}
    doc["ledger"] = {"url": ledger} if ledger else {"enabled": False}
    return parse_config(doc)


def server_pids(name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"llama-server .*--alias {name} "],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def complete(gw, name: str, max_tokens: int, stream: bool = False, **kw):
    return requests.post(gw.v1 + "/completions", stream=stream, timeout=120, json={
        "model": name, "prompt": COUNTING, "max_tokens": max_tokens, "temperature": 0,
        "stream": stream, **kw})


@pytest.fixture(scope="module")
def batched(tmp_path_factory):
    ledger = tmp_path_factory.mktemp("batched") / "ledger.db"
    gw = start_gateway(config("batched", f"sqlite:///{ledger}", parallel=4))
    gw.ledger = ledger
    yield gw
    gw.stop()


def test_requests_are_decoded_together_and_each_pays_its_share(batched):
    """Four streams at once: every one has its first token before any has finished
    (one at a time, the fourth would start after three whole answers). Their recorded
    engine seconds add up to the time the engine was busy, not four times it."""
    first: dict[int, float] = {}
    end: dict[int, float] = {}
    usage: dict[int, int] = {}

    def one(i: int) -> None:
        with complete(batched, "batched", 160, stream=True,
                      stream_options={"include_usage": True}) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if not line.startswith(b"data: {"):
                    continue
                if b'"text":"' in line and b'"text":""' not in line:
                    first.setdefault(i, time.perf_counter())
                if b'"usage":{' in line:
                    usage[i] = int(line.split(b'"completion_tokens":')[1].split(b",")[0])
        end[i] = time.perf_counter()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    wall = time.perf_counter() - t0
    assert sorted(usage) == [0, 1, 2, 3] and set(usage.values()) == {160}
    assert max(first.values()) < min(end.values())
    time.sleep(0.5)  # the ledger writes after the answer
    watts = load_hardware(None)["cpu-2core"].watts
    rows = sqlite3.connect(batched.ledger).execute(
        "SELECT energy_j FROM requests WHERE route = 'batched' ORDER BY ts DESC LIMIT 4"
    ).fetchall()
    engine_seconds = sum(e for (e,) in rows) / watts
    assert len(rows) == 4 and 0 < engine_seconds <= wall


def test_disconnect_cancels_the_sequence(tmp_path):
    """With one slot, a client that leaves mid-stream frees it at once: 1,500 tokens
    would hold it for several seconds."""
    gw = start_gateway(config("one-slot", parallel=1))
    try:
        with complete(gw, "one-slot", 1500, stream=True) as r:
            for line in r.iter_lines():
                if line.startswith(b"data:"):
                    break
        t0 = time.perf_counter()
        assert complete(gw, "one-slot", 3).status_code == 200
        assert time.perf_counter() - t0 < 3
    finally:
        gw.stop()


def test_queue_bound_answers_503_at_once(tmp_path):
    gw = start_gateway(config("bounded", parallel=1, max_queue=0))
    try:
        with complete(gw, "bounded", 1500, stream=True) as r:
            lines = r.iter_lines()  # kept: a dropped iterator closes the stream
            next(lines)
            t0 = time.perf_counter()
            busy = complete(gw, "bounded", 3)
            assert time.perf_counter() - t0 < 1
        assert busy.status_code == 503, busy.text
        assert busy.json()["error"]["code"] == "model_overloaded"
    finally:
        gw.stop()


def test_a_crashed_server_is_restarted_and_stops_with_the_gateway(tmp_path):
    gw = start_gateway(config("crashy"))
    try:
        (pid,) = server_pids("crashy")
        os.kill(pid, signal.SIGKILL)
        statuses = []
        deadline = time.time() + 60
        while time.time() < deadline:
            r = complete(gw, "crashy", 3)
            statuses.append(r.status_code)
            if r.status_code == 200:
                break
            assert r.status_code == 503 and r.json()["error"]["type"]  # never a 500
            time.sleep(0.2)
        assert statuses[-1] == 200
        assert server_pids("crashy") and server_pids("crashy") != [pid]
    finally:
        gw.stop()
    deadline = time.time() + 15
    while server_pids("crashy") and time.time() < deadline:
        time.sleep(0.1)
    assert server_pids("crashy") == []


def test_ngram_speculation_changes_speed_not_text(batched, tmp_path):
    """Speculative decoding verifies every drafted token, so greedy output is the
    model's own. (Not bit for bit: drafted tokens are verified in one batch, whose
    logits differ from one-at-a-time ones by rounding, which can flip a near tie; here
    the first 80 characters.)"""
    gw = start_gateway(config("ngram", speculative="ngram"))
    try:
        prompt = {"prompt": "Repeat exactly: the quick brown fox jumps over the lazy dog. "
                  "The quick brown fox jumps over the lazy dog.\nRepeat:"}
        a = complete(gw, "ngram", 40, **prompt).json()["choices"][0]["text"]
        b = complete(batched, "batched", 40, **prompt).json()["choices"][0]["text"]
        assert a[:80] == b[:80] and len(a.strip()) > 40
    finally:
        gw.stop()


def test_share_clock_splits_overlapping_time(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("hybridgate.providers.local.server.time.perf_counter",
                        lambda: now[0])
    clock = ShareClock()
    a = clock.enter()          # t=0: a alone
    now[0] = 2.0
    b = clock.enter()          # t=2: a and b
    now[0] = 6.0
    assert clock.leave(a) == pytest.approx(2.0 + 4.0 / 2)
    now[0] = 7.0
    assert clock.leave(b) == pytest.approx(4.0 / 2 + 1.0)
    now[0] = 9.0               # idle time is nobody's
    c = clock.enter()
    now[0] = 10.0
    assert clock.leave(c) == pytest.approx(1.0)


@pytest.mark.parametrize("local, message", [
    ({"speculative": "ngram"}, "needs engine: server"),
    ({"engine": "server", "speculative": "draft"}, "draft_model go together"),
    ({"engine": "server", "draft_model": M}, "draft_model go together"),
])
def test_config_checks(local, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"models": [{"name": "x", "provider": "local", "model": M, **local}]})


def test_same_answer_and_usage_as_the_embedded_engine(batched, gateway):
    """Greedy, the two engines give one text and one token count (the end-of-generation
    token is not counted by either)."""
    body = {"messages": [{"role": "user", "content": "Reply with the single word: yes"}],
            "temperature": 0, "max_tokens": 50}
    a = requests.post(batched.v1 + "/chat/completions", json={"model": "batched", **body})
    b = requests.post(gateway.v1 + "/chat/completions", json={"model": M, **body})
    assert a.json()["choices"][0] == b.json()["choices"][0]
    assert a.json()["choices"][0]["finish_reason"] == "stop"
    usage = ("prompt_tokens", "completion_tokens")
    assert [a.json()["usage"][k] for k in usage] == [b.json()["usage"][k] for k in usage]


def test_a_draft_model_speculates(tmp_path):
    """speculative: draft starts the server with the draft model and answers (SmolLM2
    drafting for itself: the same vocabulary)."""
    gw = start_gateway(config("drafted", speculative="draft", draft_model=M, draft_max=4))
    try:
        r = complete(gw, "drafted", 24)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 24
        (pid,) = server_pids("drafted")
        argv = open(f"/proc/{pid}/cmdline").read().split("\0")
        assert argv[argv.index("--spec-type") + 1] == "draft-simple"
    finally:
        gw.stop()


def test_the_server_dies_with_a_killed_gateway(tmp_path):
    """kill -9 leaves no gateway to stop its engine: the kernel's parent-death signal
    does, so no orphan keeps the cores busy."""
    from hybridgate.models.store import resolve_gguf
    from tests.ledger.helpers import GatewayProcess

    gw = GatewayProcess(tmp_path, "", {}, config={
        "ledger": {"enabled": False},
        "models": [{"name": "orphan-check", "provider": "local", "n_threads": 2,
                    "model": str(resolve_gguf(M)), "n_ctx": 1024, "engine": "server"}]})
    try:
        gw.wait("/readyz", timeout=120)
        (pid,) = server_pids("orphan-check")
        gw.kill9()
        deadline = time.time() + 15
        while server_pids("orphan-check") and time.time() < deadline:
            time.sleep(0.1)
        assert server_pids("orphan-check") == []
    finally:
        gw.stop()
        for pid in server_pids("orphan-check"):
            os.kill(pid, signal.SIGKILL)


def test_the_engine_answers_only_the_gateway(batched):
    """Another process on the host finds the port but not the key (it is in the server's
    environment, not its argv)."""
    (pid,) = server_pids("batched")
    argv = open(f"/proc/{pid}/cmdline").read().split("\0")
    port = argv[argv.index("--port") + 1]
    assert "--api-key" not in argv
    r = requests.post(f"http://127.0.0.1:{port}/completion",
                      json={"prompt": "hi", "n_predict": 2}, timeout=10)
    assert r.status_code == 401
    assert requests.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200


def test_a_shared_prefix_is_read_once(batched):
    """The engine the gateway starts keeps each slot's KV cache and sends a request to
    the slot whose prompt is most alike: a second prompt that shares a long prefix with
    the first is evaluated from where they part (the server's own count, asked with the
    key the gateway gave it)."""
    (pid,) = server_pids("batched")
    argv = open(f"/proc/{pid}/cmdline").read().split("\0")
    env = dict(v.split("=", 1) for v in open(f"/proc/{pid}/environ").read().split("\0") if v)
    url = f"http://127.0.0.1:{argv[argv.index('--port') + 1]}/completion"
    auth = {"authorization": f"Bearer {env['LLAMA_API_KEY']}"}
    shared = "The gateway records every request in its ledger. " * 40
    timings = [requests.post(url, headers=auth, timeout=60, json={
        "prompt": shared + question, "n_predict": 1, "cache_prompt": True}).json()["timings"]
        for question in ("Who pays?", "What is recorded?")]
    assert timings[0]["prompt_n"] > 300
    assert timings[1]["cache_n"] > 300 and timings[1]["prompt_n"] < 20
