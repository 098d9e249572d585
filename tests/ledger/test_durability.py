"""kill -9 under load loses no record of a response a client received; a database that
is down gives 503s (required) or spills and replays (not required)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import requests

from tests.fakes.tcp_proxy import TcpProxy
from tests.ledger.helpers import GatewayProcess, ledger_rows, pg_schema

pytestmark = pytest.mark.slow

BODY = {"model": "gpt-fake", "messages": [{"role": "user", "content": "one two three"}]}


def _client(url: str, stream: bool, ok: list[str], stop: threading.Event,
            on_ok: Callable[[], None]) -> None:
    session = requests.Session()
    while not stop.is_set():
        try:
            if stream:
                with session.post(url + "/v1/chat/completions", json={**BODY, "stream": True},
                                  stream=True, timeout=5) as r:
                    if r.status_code == 200 and any(
                            line == b"data: [DONE]" for line in r.iter_lines()):
                        ok.append(r.headers["x-request-id"])
                        on_ok()
            else:
                r = session.post(url + "/v1/chat/completions", json=BODY, timeout=5)
                if r.status_code == 200 and r.json()["choices"]:
                    ok.append(r.headers["x-request-id"])
                    on_ok()
        except (requests.RequestException, ValueError):
            if stop.is_set():
                return
            time.sleep(0.01)


def _audit_verifies(ledger_url: str) -> None:
    """The audit chain a kill left behind still verifies, a record for every row."""
    from hybridgate.ledger.store import Store

    r = subprocess.run([sys.executable, "-m", "hybridgate.cli.main", "audit", "verify",
                        "--ledger", ledger_url], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("OK"), r.stdout + r.stderr
    store = Store(ledger_url)
    store.connect()
    try:
        rows = store.query("SELECT COUNT(*) FROM requests")[0][0]
        audited = store.query("SELECT COUNT(*) FROM audit")[0][0]
    finally:
        store.close()
    assert rows == audited > 0


def _kill_under_load(tmp_path, fake_openai, ledger_url: str, workers: int = 1) -> None:
    gw = GatewayProcess(tmp_path, fake_openai.url, {"url": ledger_url}, workers=workers)
    try:
        gw.wait("/readyz")
        ok: list[str] = []
        stop = threading.Event()
        lock = threading.Lock()

        def on_ok() -> None:
            # Kill the moment a client has its 300th answer: other answers are leaving
            # the gateway right now, so any record committed after its response is lost.
            with lock:
                if len(ok) >= 300 and not stop.is_set():
                    gw.kill9()
                    stop.set()

        threads = [threading.Thread(target=_client,
                                    args=(gw.url, i % 2 == 1, ok, stop, on_ok))
                   for i in range(8)]
        for t in threads:
            t.start()
        stop.wait(60)
        for t in threads:
            t.join(10)
    finally:
        gw.stop()
    rows = ledger_rows(ledger_url)
    assert len(ok) > 100, "too little load to prove anything"
    missing = [rid for rid in ok if rows.get(rid) != 200]
    assert not missing, f"{len(missing)} of {len(ok)} answered requests have no ledger row"
    _audit_verifies(ledger_url)


def test_kill9_sqlite(tmp_path, fake_openai):
    _kill_under_load(tmp_path, fake_openai, f"sqlite:///{tmp_path / 'ledger.db'}")


def test_kill9_postgres(tmp_path, fake_openai):
    with pg_schema() as url:
        _kill_under_load(tmp_path, fake_openai, url)


def test_kill9_postgres_two_workers_share_one_audit_chain(tmp_path, fake_openai):
    with pg_schema() as url:
        _kill_under_load(tmp_path, fake_openai, url, workers=2)


def _post(gw: GatewayProcess) -> requests.Response:
    return requests.post(gw.url + "/v1/chat/completions", json=BODY, timeout=10)


@contextmanager
def postgres_behind_proxy() -> Iterator[tuple[str, str, TcpProxy]]:
    """(direct ledger URL, the same through a proxy we can cut, the proxy)."""
    with pg_schema() as url:
        proxy = TcpProxy("127.0.0.1", 5432)
        proxy.up()
        try:
            yield url, url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"), proxy
        finally:
            proxy.down()


def test_database_down_required_gives_503(tmp_path, fake_openai):
    with postgres_behind_proxy() as (url, pg_url, proxy):
        gw = GatewayProcess(tmp_path, fake_openai.url, {"url": pg_url, "required": True})
        try:
            gw.wait("/readyz")
            first = _post(gw)
            assert first.status_code == 200
            proxy.down()
            statuses = [_post(gw).status_code for _ in range(3)]
            assert statuses[-1] == 503 and set(statuses) <= {503}
            err = _post(gw).json()["error"]
            assert err["code"] == "ledger_unavailable"
            assert requests.get(gw.url + "/readyz").status_code == 503
            proxy.up()
            deadline = time.time() + 10
            while _post(gw).status_code != 200:
                assert time.time() < deadline, "the gateway did not recover"
                time.sleep(0.3)
        finally:
            gw.stop()
        rows = ledger_rows(url)
        assert rows[first.headers["x-request-id"]] == 200


def test_database_down_not_required_spills_and_replays(tmp_path, fake_openai):
    with postgres_behind_proxy() as (url, pg_url, proxy):
        gw = GatewayProcess(tmp_path, fake_openai.url, {"url": pg_url, "required": False})
        spill = tmp_path / "ledger-spill.jsonl"
        try:
            gw.wait("/readyz")
            proxy.down()
            served = [_post(gw) for _ in range(5)]
            assert all(r.status_code == 200 for r in served)
            ids = [r.headers["x-request-id"] for r in served]
            assert spill.exists() and len(spill.read_text().splitlines()) >= 4
            proxy.up()
            deadline = time.time() + 15
            while spill.exists():
                assert time.time() < deadline, "spilled records were not replayed"
                time.sleep(0.3)
        finally:
            gw.stop()
        rows = ledger_rows(url)
        assert all(rows.get(i) == 200 for i in ids)


def test_sqlite_unusable_refuses_requests(tmp_path, fake_openai):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the ledger's directory should be")
    gw = GatewayProcess(tmp_path, fake_openai.url, {"url": f"sqlite:///{blocker}/ledger.db"})
    try:
        gw.wait("/healthz")
        r = _post(gw)
        assert r.status_code == 503 and r.json()["error"]["code"] == "ledger_unavailable"
    finally:
        gw.stop()


def test_two_workers_spill_and_replay_lose_nothing(tmp_path, fake_openai):
    """Two worker processes share one spill file; the database goes away and comes back
    four times while both write, so one replays while the other appends. Every answered
    request must end up with its row."""
    with postgres_behind_proxy() as (url, pg_url, proxy):
        gw = GatewayProcess(tmp_path, fake_openai.url, {"url": pg_url, "required": False},
                            workers=2)
        ok: list[str] = []
        stop = threading.Event()
        threads = [threading.Thread(target=_client, args=(gw.url, i % 2 == 1, ok, stop,
                                                          lambda: None))
                   for i in range(6)]
        try:
            gw.wait("/readyz")
            for t in threads:
                t.start()
            for _ in range(4):
                time.sleep(0.8)
                proxy.down()
                time.sleep(0.8)
                proxy.up()
            time.sleep(0.5)
            stop.set()
            for t in threads:
                t.join(10)
            # Both workers reconnect on their next write: poke them until nothing is left
            # to replay.
            deadline = time.time() + 30
            while list(tmp_path.glob("ledger-spill.jsonl*")):
                assert time.time() < deadline, "spilled records were not replayed"
                for _ in range(4):
                    _post(gw)
                time.sleep(0.3)
        finally:
            stop.set()
            gw.stop()
        rows = ledger_rows(url)
        assert len(ok) > 100, "too little load to prove anything"
        missing = [rid for rid in ok if rows.get(rid) != 200]
        assert not missing, f"{len(missing)} of {len(ok)} answered requests have no row"


def _stream_once(url: str, done: list[str], cut: list[str]) -> None:
    """One stream; its id goes to ``done`` if it reached [DONE], to ``cut`` if content
    arrived but the stream ended (or broke) without it."""
    rid: str | None = None
    got_content = False
    try:
        with requests.post(url + "/v1/chat/completions", stream=True, timeout=5, json={
                **BODY, "stream": True,
                "messages": [{"role": "user", "content": " ".join(["word"] * 60)}]}) as r:
            if r.status_code != 200:
                return
            rid = r.headers["x-request-id"]
            for line in r.iter_lines():
                if line == b"data: [DONE]":
                    done.append(rid)
                    return
                got_content = got_content or line.startswith(b"data: {")
    except (requests.RequestException, ValueError):
        pass
    if rid is not None and got_content:
        cut.append(rid)


def test_kill9_at_random_points_of_streams(tmp_path):
    """The README's promise, exactly: every stream that reached ``data: [DONE]`` has its
    committed row, wherever in its streams the process was killed. (Streams cut before
    [DONE] may have delivered content without a row; the README says so.)"""
    import random

    from tests.conftest import OPENAI_KEY
    from tests.fakes.openai_upstream import FakeOpenAI
    from tests.fakes.server import Fault

    rng = random.Random(1234)
    fake = FakeOpenAI().start()
    fake.api_key = OPENAI_KEY
    fake.default_fault = Fault(chunk_delay=0.004)  # ~60 chunks: each stream ~0.25 s
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    done: list[str] = []
    cut: list[str] = []
    try:
        for round_ in range(6):
            home = tmp_path / f"run{round_}"
            home.mkdir()
            gw = GatewayProcess(home, fake.url, {"url": url})
            try:
                gw.wait("/readyz")
                stop = threading.Event()

                def loop(gw_url: str = gw.url, stop: threading.Event = stop) -> None:
                    while not stop.is_set():
                        _stream_once(gw_url, done, cut)

                threads = [threading.Thread(target=loop) for _ in range(6)]
                for t in threads:
                    t.start()
                time.sleep(rng.uniform(0.4, 1.5))
                gw.kill9()
                stop.set()
                for t in threads:
                    t.join(10)
            finally:
                gw.stop()
    finally:
        fake.stop()
    rows = ledger_rows(url)
    assert len(done) > 50, "too few complete streams to prove anything"
    assert cut, "no kill landed mid-stream; the test proved nothing"
    missing = [rid for rid in done if rows.get(rid) != 200]
    assert not missing, f"{len(missing)} of {len(done)} streams that got [DONE] have no row"
