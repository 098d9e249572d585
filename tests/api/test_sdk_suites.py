"""The official `openai` and `anthropic` SDKs' own tests (their sdists) against a real
gateway.

Those tests are generated from each API's spec and meant for a mock server: they take
``TEST_API_BASE_URL``. Here they run against a gateway process whose models go to the
fake upstreams: for openai 3.57.0, chat completions (stored ones included),
completions, embeddings, models and the Responses API; for anthropic 2.14.0, messages,
count_tokens and models. Every test must pass except the ones listed in ``EXPECTED``
with the reason; a newly failing test fails this one, and so does a listed one that
starts passing (the list must stay true).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests

from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.ledger.helpers import GatewayProcess

VERSION = "3.57.0"
ANTHROPIC_VERSION = "2.14.0"
SUITES = ["tests/api_resources/chat", "tests/api_resources/test_completions.py",
          "tests/api_resources/test_embeddings.py", "tests/api_resources/test_models.py",
          "tests/api_resources/test_responses.py", "tests/api_resources/responses"]
MODELS = ["gpt-6-astra", "gpt-3.5-turbo-instruct", "text-embedding-3-small", "model"]
ANTHROPIC_SUITES = ["tests/api_resources/test_messages.py",
                    "tests/api_resources/test_models.py"]
# the models its tests name; the last five are its DEPRECATED_MODELS (it warns on them)
ANTHROPIC_MODELS = ["claude-opus-5-5", "model_id", "claude-mythos-preview", "claude-opus-4-5",
                    "claude-opus-4-5-20251101", "claude-sonnet-4-5",
                    "claude-sonnet-4-5-20250929"]

# test (module.Class::name, without the client parameter) -> why it fails here
_WHY = {
    "model_delete": "no model deletion: the gateway serves models, it does not own them",
    "no_input": "no model and no input: nothing to answer (OpenAI's stored prompt "
                "templates are not supported)",
    "background": "background responses are not supported (the test sets background=True)",
    "cancel": "cancel is for background responses, which are not supported",
    "compact": "server-side compaction of a conversation is not supported",
    "limit0": "limit=0 is refused: list pages take 1 to 100, as OpenAI documents",
    "max_tokens0": "max_completion_tokens=0 is refused: an answer needs at least 1 token",
    "bad_tool_schema": "the test's tool input_schema has properties that are not schemas "
                       "('location': 'bar'); the gateway checks tool schemas and says so",
    "unknown_cursor": "after_id/before_id name no model: a clear 400, not a guessed page",
    "store_roles": "the SDK types every stored message as role 'assistant'; the gateway "
                   "returns the request's messages as stored, user ones included",
}


def _expect(why: str, module: str, classes: tuple[str, ...], *names: str) -> dict[str, str]:
    return {f"{module}.{c}::{n}": _WHY[why] for c in classes for n in names}


_SYNC_ASYNC = ("Test{}", "TestAsync{}")


def _both(name: str) -> tuple[str, ...]:
    return tuple(f.format(name) for f in _SYNC_ASYNC)


_FORMS = ("test_method_{}", "test_raw_response_{}", "test_streaming_response_{}")


def _forms(what: str) -> tuple[str, ...]:
    return tuple(f.format(what) for f in _FORMS)


EXPECTED = {
    **_expect("model_delete", "test_models", _both("Models"), *_forms("delete")),
    **_expect("no_input", "test_responses", _both("Responses"),
              *_forms("create_overload_1"), *_forms("create_overload_2")),
    **_expect("background", "test_responses", _both("Responses"),
              "test_method_create_with_all_params_overload_1",
              "test_method_create_with_all_params_overload_2"),
    **_expect("cancel", "test_responses", _both("Responses"), *_forms("cancel")),
    **_expect("compact", "test_responses", _both("Responses"), *_forms("compact"),
              "test_method_compact_with_all_params"),
    **_expect("limit0", "chat.test_completions", _both("Completions"),
              "test_method_list_with_all_params"),
    **_expect("limit0", "responses.test_input_items", _both("InputItems"),
              "test_method_list_with_all_params"),
    **_expect("limit0", "chat.completions.test_messages", _both("Messages"),
              "test_method_list_with_all_params"),
    **_expect("max_tokens0", "chat.test_completions", _both("Completions"),
              "test_method_create_with_all_params_overload_1",
              "test_method_create_with_all_params_overload_2"),
    **_expect("store_roles", "chat.completions.test_messages", _both("Messages"),
              *_forms("list")),
}
ANTHROPIC_EXPECTED = {
    **_expect("bad_tool_schema", "test_messages", _both("Messages"),
              "test_method_create_with_all_params_overload_1",
              "test_method_create_with_all_params_overload_2"),
    **_expect("unknown_cursor", "test_models", _both("Models"),
              "test_method_list_with_all_params"),
}


def _sdist(package: str, version: str) -> Path:
    """An SDK's sdist, unpacked once under ~/.cache/hybridgate/sdists (pip download)."""
    root = Path.home() / ".cache" / "hybridgate" / "sdists"
    unpacked = root / f"{package}-{version}"
    if not (unpacked / "tests").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--no-binary", ":all:", f"{package}=={version}", "-d", str(root)],
                       check=True)
        with tarfile.open(root / f"{package}-{version}.tar.gz") as tar:
            tar.extractall(root, filter="data")
    return unpacked


def _run(sdist: Path, suites: list[str], base_url: str, junit: Path,
         **env: str) -> subprocess.CompletedProcess[str]:
    """The SDK's own pytest run, in its own process, against ``base_url``."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-o", "filterwarnings=",
         "-p", "no:cacheprovider", f"--junitxml={junit}", "--rootdir", str(sdist),
         *(["-p", "hg_seed_plugin"] if "HG_SEED_LEDGER" in env else []), *suites],
        cwd=sdist, capture_output=True, text=True, timeout=900,
        env={**os.environ, "TEST_API_BASE_URL": base_url,
             "PYTHONPATH": f"{sdist}{os.pathsep}{Path(__file__).parent / 'sdk'}", **env})


def _judge(sdk: str, junit: Path, run: subprocess.CompletedProcess[str],
           expected: dict[str, str], at_least: int) -> None:
    assert junit.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    passed, failed = _results(junit)
    unexpected = sorted(n for n in failed if _base(n) not in expected)
    fixed = sorted({_base(n) for n in passed} & set(expected))
    print(f"{sdk} SDK tests against the gateway: {len(passed)} passed, {len(failed)} failed "
          f"({len(failed) - len(unexpected)} expected)")
    assert not unexpected, "\n".join(unexpected[:40]) + "\n" + run.stdout[-6000:]
    assert not fixed, f"now passing, remove from EXPECTED: {fixed}"
    assert len(passed) >= at_least, run.stdout[-3000:]


def _results(junit: Path) -> tuple[set[str], set[str]]:
    passed, failed = set(), set()
    for case in ET.parse(junit).iter("testcase"):
        module = case.get("classname", "").removeprefix("tests.api_resources.")
        name = f"{module}::{case.get('name')}"
        if case.find("skipped") is not None:
            continue
        bad = case.find("failure") is not None or case.find("error") is not None
        (failed if bad else passed).add(name)
    return passed, failed


def _base(name: str) -> str:
    return name.split("[", 1)[0]


@pytest.mark.slow
def test_the_openai_sdks_own_tests_pass_against_the_gateway(tmp_path, fake_openai):
    sdist = _sdist("openai", VERSION)
    ledger = tmp_path / "ledger.db"
    cfg = {"ledger": {"url": f"sqlite:///{ledger}", "store": True},
           "models": [{"name": m, "provider": "openai", "base_url": fake_openai.url + "/v1",
                       "api_key": OPENAI_KEY, "model": "gpt-fake",
                       "embeddings": m == "text-embedding-3-small"} for m in MODELS]}
    gw = GatewayProcess(tmp_path, fake_openai.url, {}, config=cfg)
    junit = tmp_path / "junit.xml"
    try:
        gw.wait()
        # real stored objects, copied under the SDK tests' placeholder ids (sdk/hg_seed_plugin)
        chat = requests.post(gw.url + "/v1/chat/completions", timeout=10, json={
            "model": "gpt-6-astra", "store": True,
            "messages": [{"role": "user", "content": "hi"}]}).json()
        resp = requests.post(gw.url + "/v1/responses", timeout=10, json={
            "model": "gpt-6-astra", "input": "hi"}).json()
        run = _run(sdist, SUITES, gw.url + "/v1", junit, HG_SEED_LEDGER=str(ledger),
                   HG_SEED_FROM=f"{chat['id']},{resp['id']}")
    finally:
        gw.stop()
    _judge("openai", junit, run, EXPECTED, 300)


@pytest.mark.slow
def test_the_anthropic_sdks_own_tests_pass_against_the_gateway(tmp_path, fake_anthropic):
    sdist = _sdist("anthropic", ANTHROPIC_VERSION)
    cfg = {"ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
           "models": [{"name": m, "provider": "anthropic", "base_url": fake_anthropic.url,
                       "api_key": ANTHROPIC_KEY, "model": "claude-sonnet-4-5"}
                      for m in ANTHROPIC_MODELS]}
    gw = GatewayProcess(tmp_path, fake_anthropic.url, {}, config=cfg)
    junit = tmp_path / "junit.xml"
    try:
        gw.wait()
        run = _run(sdist, ANTHROPIC_SUITES, gw.url, junit)
    finally:
        gw.stop()
    _judge("anthropic", junit, run, ANTHROPIC_EXPECTED, 20)
