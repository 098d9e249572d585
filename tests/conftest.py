"""Shared fixtures: fake upstreams and a real gateway on loopback ports.

One gateway serves the whole session (loading the local model once): SmolLM2 via
llama.cpp, the MiniLM embedding model, and two remote models that point at the fake
OpenAI and Anthropic servers.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
import requests
import uvicorn
import yaml

from hybridgate.api.app import create_app
from hybridgate.config.settings import Config, parse_config
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI

LOCAL = "smollm2-135m-instruct"
OPENAI_KEY = "sk-fake-openai-test-key"
ANTHROPIC_KEY = "sk-ant-fake-test-key"


@dataclass
class Gateway:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def client(self, **kw: object) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.v1, api_key="unused", max_retries=0, **kw)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def start_gateway(config: Config, ready_timeout: float = 180, wait_ready: bool = True
                  ) -> Gateway:
    """A gateway on a free loopback port; returns once /readyz is 200 (or, without
    ``wait_ready``, once /healthz answers)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(config), loop="uvloop", http="httptools",
                                           access_log=False, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    gw = Gateway(f"http://127.0.0.1:{port}", server, thread)
    deadline = time.time() + ready_timeout
    while time.time() < deadline:
        try:
            r = requests.get(gw.url + ("/readyz" if wait_ready else "/healthz"), timeout=2)
            if r.status_code == 200:
                return gw
            if wait_ready and r.json().get("errors"):
                raise RuntimeError(f"gateway failed to load: {r.json()['errors']}")
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    gw.stop()
    raise RuntimeError("gateway did not become ready")


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    fake.api_key = OPENAI_KEY
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic().start()
    fake.api_key = ANTHROPIC_KEY
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _reset_fakes(request: pytest.FixtureRequest) -> None:
    for name in ("fake_openai", "fake_anthropic"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


def gateway_config(fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, ledger_url: str,
                   local_engine: str = "embedded", **server: object) -> Config:
    """``local_engine: server`` runs the local models on llama-server (4 slots)."""
    engine = "" if local_engine == "embedded" else f", engine: {local_engine}, parallel: 4"
    os.environ["TEST_OPENAI_KEY"] = OPENAI_KEY
    os.environ["TEST_ANTHROPIC_KEY"] = ANTHROPIC_KEY
    doc = yaml.safe_load(f"""
server: {{max_body_bytes: 1048576, retry_backoff: 0.01}}
ledger: {{url: "{ledger_url}", store: true}}
breaker: {{enabled: false}}   # tests/execute has its own gateway for the breaker
prices:
  - {{id: gpt-fake, input: 1.0, cached_input: 0.5, output: 2.0}}
routes:
  - {{name: smart, weak: {LOCAL}, strong: gpt-fake, threshold: 0.0}}
  # cascades: every weak answer is below 0 (escalated) / above -1e9 (kept)
  - {{name: cascade-up, weak: {LOCAL}, strong: gpt-fake, cascade: true, cascade_threshold: 0.0}}
  - {{name: cascade-keep, weak: {LOCAL}, strong: gpt-fake, cascade: true,
      cascade_threshold: -1000000000.0}}
  - {{name: cascade-down, weak: {LOCAL}, strong: down, cascade: true, cascade_threshold: 0.0}}
models:
  - {{name: {LOCAL}, provider: local, model: {LOCAL}, n_ctx: 2048, n_threads: 2{engine}}}
  - {{name: {LOCAL}-grammar, provider: local, model: {LOCAL}, n_ctx: 2048, n_threads: 2,
      auto_tool_grammar: true{engine}}}
  - {{name: all-MiniLM-L6-v2, provider: sentence_transformers}}
  - name: gpt-fake
    provider: openai
    base_url: {fake_openai.url}/v1
    api_key: ${{TEST_OPENAI_KEY}}
    timeout: 2
    num_retries: 0       # the error-mapping tests see each upstream failure as it is
  - name: gpt-retry
    provider: openai
    base_url: {fake_openai.url}/v1
    api_key: ${{TEST_OPENAI_KEY}}
    model: gpt-fake
    timeout: 2
    num_retries: 2
  - name: gpt-short
    provider: openai
    base_url: {fake_openai.url}/v1
    api_key: ${{TEST_OPENAI_KEY}}
    model: gpt-fake
    num_retries: 0
    context_window_fallbacks: [gpt-fake]
  - name: gpt-slow-start
    provider: openai
    base_url: {fake_openai.url}/v1
    api_key: ${{TEST_OPENAI_KEY}}
    model: gpt-fake
    num_retries: 0
    ttft_timeout: 0.3
    fallbacks: [gpt-fake]
  - name: gpt-guarded
    provider: openai
    base_url: {fake_openai.url}/v1
    api_key: ${{TEST_OPENAI_KEY}}
    model: gpt-fake
    num_retries: 2
    idle_timeout: 0.3
    content_policy_fallbacks: [claude-fake]
  - name: gpt-unchecked
    provider: openai
    base_url: {fake_openai.url}/v1
    api_key: ${{TEST_OPENAI_KEY}}
    model: gpt-fake
    num_retries: 0
    output_checks: false
  - name: gpt-with-fallback
    provider: openai
    base_url: http://127.0.0.1:9/v1
    num_retries: 1
    fallbacks: [gpt-fake]
  - name: gpt-alias
    provider: openai
    base_url: {fake_openai.url}/v1
    api_key: ${{TEST_OPENAI_KEY}}
    model: gpt-upstream-name
  - name: claude-fake
    provider: anthropic
    base_url: {fake_anthropic.url}
    api_key: ${{TEST_ANTHROPIC_KEY}}
    model: claude-sonnet-4-5
    timeout: 2
    num_retries: 0
  - name: down
    provider: openai
    base_url: http://127.0.0.1:9/v1
    num_retries: 0
""")
    doc["server"].update(server)
    return parse_config(doc)


@pytest.fixture(scope="session")
def ledger_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ledger") / "ledger.db"


@pytest.fixture(scope="session")
def gateway(fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic,
            ledger_path: Path) -> Iterator[Gateway]:
    gw = start_gateway(gateway_config(fake_openai, fake_anthropic, f"sqlite:///{ledger_path}"))
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def client(gateway: Gateway) -> openai.OpenAI:
    return gateway.client()


def _shared_data() -> Path:
    """../shared/data next to the checkout (or HYBRIDGATE_SHARED_DATA, or /work/shared/data)."""
    if os.environ.get("HYBRIDGATE_SHARED_DATA"):
        return Path(os.environ["HYBRIDGATE_SHARED_DATA"])
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return Path("/work/shared/data")


SHARED_DATA = _shared_data()
