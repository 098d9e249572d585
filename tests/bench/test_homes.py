"""Benchmarks never touch the user's real HYBRIDGATE_HOME, and tools write files only
when asked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from tests.conftest import OPENAI_KEY

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import overhead  # noqa: E402


def test_a_bench_gateway_writes_nothing_under_the_users_home(tmp_path, monkeypatch,
                                                             fake_openai):
    real = tmp_path / "real-home"
    real.mkdir()
    monkeypatch.setenv("HYBRIDGATE_HOME", str(real))
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(f"models:\n  - name: gpt-fake\n    provider: openai\n"
                   f"    base_url: {fake_openai.url}/v1\n    api_key: {OPENAI_KEY}\n")
    port = overhead.free_port()
    proc = overhead.start_gateway(cfg, port)  # the helper every wrk bench uses
    try:
        overhead.wait_http(f"http://127.0.0.1:{port}/healthz")
        r = requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={
            "model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200
    finally:
        overhead.stop_all([proc])
    assert list(real.iterdir()) == [], "the benchmark wrote into the user's home"


def test_router_eval_writes_a_plot_only_when_asked(tmp_path):
    labels = tmp_path / "l.csv"
    labels.write_text("prompt,weak,strong\n" + "".join(
        f"question {i},{i % 2},{(i // 2) % 2}\n" for i in range(40)))
    run = [sys.executable, "-m", "hybridgate.cli.main", "router", "eval", "--labels",
           str(labels)]
    subprocess.run(run, cwd=tmp_path, check=True, capture_output=True)
    assert not list(tmp_path.glob("*.png"))
    subprocess.run([*run, "--plot", "curve.png"], cwd=tmp_path, check=True,
                   capture_output=True)
    assert (tmp_path / "curve.png").stat().st_size > 1000
