"""The ``hybridgate`` command line, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

HG = [sys.executable, "-m", "hybridgate.cli.main"]


def run(*args: str, env: dict | None = None, timeout: float = 120,
        input_text: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*HG, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, input=input_text)


def test_models_list_shows_catalog():
    r = run("models", "list", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    for name in ("qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct", "gemma-3-270m"):
        assert name in r.stdout


def test_unknown_model_is_a_clear_error(tmp_path):
    r = run("models", "pull", "gpt-9", env={"HYBRIDGATE_HOME": str(tmp_path)})
    assert r.returncode != 0 and "unknown model" in r.stderr


def test_verify_missing_model(tmp_path):
    r = run("models", "verify", "smollm2-135m-instruct", env={"HYBRIDGATE_HOME": str(tmp_path)})
    assert r.returncode == 1 and "not pulled" in r.stderr


def test_serve_refuses_unpulled_model(tmp_path):
    r = run("serve", "--port", "0", env={"HYBRIDGATE_HOME": str(tmp_path)})
    assert r.returncode == 1 and "models pull" in r.stderr


def test_serve_reports_bad_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models:\n  - {name: x, provider: nope}\n")
    r = run("serve", "--config", str(cfg))
    assert r.returncode == 1 and "nope" in r.stderr


@pytest.mark.slow
def test_chat_against_running_gateway(gateway):
    r = run("chat", "Say hi", "--model", "gpt-fake", "--url", gateway.v1)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "echo: Say hi"


@pytest.mark.slow
def test_chat_in_process_with_local_model(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models:\n  - {name: s, provider: local, model: smollm2-135m-instruct, "
                   "n_ctx: 1024}\n")
    r = run("chat", "What is 2+2?", "--config", str(cfg), "--max-tokens", "12",
            "--temperature", "0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()


def test_chat_unreachable_gateway():
    r = run("chat", "hi", "--url", "http://127.0.0.1:9/v1")
    assert r.returncode == 1 and "cannot reach" in r.stderr


@pytest.mark.slow
def test_serve_with_two_workers(tmp_path, fake_openai):
    import requests

    from tests.conftest import OPENAI_KEY
    from tests.ledger.helpers import free_port

    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"ledger: {{url: 'sqlite:///{tmp_path / 'l.db'}'}}\nmodels:\n"
                   f"  - {{name: gpt-fake, provider: openai, base_url: '{fake_openai.url}/v1',"
                   f" api_key: {OPENAI_KEY}}}\n")
    proc = subprocess.Popen([*HG, "serve", "--config", str(cfg), "--port", str(port),
                             "--workers", "2"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if requests.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        ids = set()
        for _ in range(20):
            r = requests.post(url + "/v1/chat/completions", json={
                "model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200
            ids.add(r.headers["x-request-id"])
        assert len(ids) == 20
    finally:
        proc.terminate()
        proc.wait(15)
    import sqlite3
    with sqlite3.connect(tmp_path / "l.db") as db:  # both workers wrote to one ledger
        assert db.execute("SELECT count(*) FROM requests").fetchone()[0] == 20
