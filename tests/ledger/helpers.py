"""A gateway in its own process (so it can be killed), and a Postgres schema per test."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import yaml

from tests.conftest import OPENAI_KEY

PG_BASE = os.environ.get("HYBRIDGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    def __init__(self, tmp: Path, upstream_url: str, ledger: dict, workers: int = 1,
                 config: dict | None = None) -> None:
        """``config``: the whole config instead of one model on ``upstream_url``."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = config or {"ledger": ledger,
                         "prices": [{"id": "gpt-fake", "input": 1.0, "output": 2.0}],
                         "models": [{"name": "gpt-fake", "provider": "openai",
                                     "base_url": upstream_url + "/v1",
                                     "api_key": OPENAI_KEY}]}
        path = self.config_path = tmp / "gateway.yaml"
        path.write_text(yaml.safe_dump(cfg))
        self.log = open(tmp / "gateway.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hybridgate.cli.main", "serve", "--config", str(path),
             "--port", str(self.port), "--workers", str(workers)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "HYBRIDGATE_HOME": str(tmp)})

    def wait(self, path: str = "/healthz", timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.proc.returncode}")
            try:
                if requests.get(self.url + path, timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError("gateway did not start")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Terminate the gateway (and its workers); kill the whole group if it hangs."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers left behind by a kill -9
        self.log.close()


@contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh schema; yields a ledger URL whose search_path points at it."""
    import psycopg

    name = f"hg_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_BASE, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {name}")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as db:
            db.execute(f"DROP SCHEMA {name} CASCADE")


def ledger_rows(url: str) -> dict[str, int]:
    """id -> status of every ledger row."""
    from hybridgate.ledger.store import Store

    store = Store(url)
    store.connect()
    try:
        return dict(store.query("SELECT id, status FROM requests"))
    finally:
        store.close()
