"""`model: smart` routes between the local model and the fake frontier upstream; feedback
is stored with the ledger row and retrains the router end to end."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import requests

from hybridgate.routing.router import Router
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.slow

# Chosen on either side of the shipped router's 0.0 (conftest's threshold); the router is
# trained on MMLU, so only MMLU-like prompts are meaningfully "hard" to it.
EASY = "What is the capital of France?"
HARD = ("Statement 1 | Every group of order 42 has a normal subgroup of order 7. Statement 2 "
        "| Every group of order 42 has a normal subgroup of order 8.\nA. True, True\n"
        "B. False, False\nC. True, False\nD. False, True\nAnswer:")


def chat(gateway, content):
    return requests.post(gateway.v1 + "/chat/completions", json={
        "model": "smart", "max_tokens": 5, "messages": [{"role": "user", "content": content}]})


def row(ledger_path, rid):
    with sqlite3.connect(ledger_path) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM requests WHERE id = ?", (rid,)).fetchone()


def test_scores_route_weak_and_strong(gateway, ledger_path):
    router = Router.load()
    assert router.score(EASY) < 0 < router.score(HARD)  # conftest's threshold is 0.0
    weak = chat(gateway, EASY)
    strong = chat(gateway, HARD)
    assert weak.status_code == strong.status_code == 200
    assert weak.headers["x-hybridgate-model"] == "smollm2-135m-instruct"
    assert strong.headers["x-hybridgate-model"] == "gpt-fake"
    assert weak.headers["x-hybridgate-route"].startswith("weak; reason=score; score=")
    rec = row(ledger_path, strong.headers["x-request-id"])
    assert rec["route_decision"] == "strong:score" and rec["route_score"] > 0
    assert rec["route_text"] == HARD and rec["requested_model"] == "smart"


def test_sensitive_requests_stay_local(gateway, ledger_path):
    r = chat(gateway, HARD + " mail the answer to ann@example.org")
    assert r.headers["x-hybridgate-model"] == "smollm2-135m-instruct"
    assert r.headers["x-hybridgate-route"] == "weak; reason=residency:email"
    assert row(ledger_path, r.headers["x-request-id"])["route_text"] is None  # not kept
    r = requests.post(gateway.v1 + "/chat/completions", headers={
        "x-hybridgate-residency": "local"}, json={
        "model": "smart", "max_tokens": 3, "messages": [{"role": "user", "content": HARD}]})
    assert r.headers["x-hybridgate-model"] == "smollm2-135m-instruct"


def test_feedback_endpoint(gateway, ledger_path):
    rid = chat(gateway, EASY).headers["x-request-id"]
    ok = requests.post(gateway.v1 + "/feedback", json={"request_id": rid, "score": 0.2,
                                                       "preferred_route": "strong"})
    assert ok.status_code == 200 and ok.json() == {"ok": True}
    rec = row(ledger_path, rid)
    assert rec["feedback_score"] == pytest.approx(0.2) and rec["preferred_route"] == "strong"
    missing = requests.post(gateway.v1 + "/feedback", json={"request_id": "req-nope",
                                                            "score": 1})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "request_id"
    empty = requests.post(gateway.v1 + "/feedback", json={"request_id": rid})
    assert empty.status_code == 400
    bad = requests.post(gateway.v1 + "/feedback", json={"request_id": rid, "score": 7})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "score"


def test_retrain_from_ledger_feedback(gateway, ledger_path, tmp_path):
    """Users say zebra questions need the strong model; retraining learns it."""
    zebra = [f"Describe zebra behaviour number {i} in the savanna." for i in range(12)]
    for text in zebra:
        r = chat(gateway, text)
        assert r.status_code == 200
        requests.post(gateway.v1 + "/feedback", json={
            "request_id": r.headers["x-request-id"], "preferred_route": "strong"})
    base = tmp_path / "base.csv"
    with open(SHARED_DATA / "routellm" / "mmlu" / "mmlu_astronomy.csv", newline="") as f:
        rows = list(csv.reader(f))[:150]
    with open(base, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    cmd = [sys.executable, "-m", "hybridgate.cli.main", "router", "train", "--labels",
           str(base)]
    before, after = tmp_path / "before.npz", tmp_path / "after.npz"
    subprocess.run([*cmd, "--out", str(before)], check=True, capture_output=True)
    r = subprocess.run([*cmd, "--from-ledger", "--ledger", f"sqlite:///{ledger_path}",
                        "--out", str(after)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "labelled requests from the ledger" in r.stdout
    probe = ["Tell me about zebra stripes in the savanna."]
    rb, ra = Router.load(before), Router.load(after)
    # relative to each router's own calibration: zebra moves toward the strong side
    pct = [float(np.searchsorted(x.quantiles, x.score_many(probe)[0])) for x in (rb, ra)]
    assert pct[1] > pct[0] + 20, pct


@pytest.mark.parametrize("shape", ["word run", "digit run", "mixed runs"])
def test_a_hostile_megabyte_is_decided_promptly_while_healthz_answers(gateway, shape):
    """1 MB of text with no '@' (long word runs, long digit runs): the old email pattern
    took hours on it, on the event loop, freezing every client. Now it is decided in
    linear time off the loop, and /healthz keeps answering meanwhile."""
    import threading
    import time

    n = 1_000_000 - 2_000  # the session gateway's body limit is 1 MiB
    text = {"word run": "a" * n, "digit run": "7" * n,
            "mixed runs": ("x" * 5000 + " " + "4" * 5000 + " ") * (n // 10002)}[shape]
    result: dict[str, object] = {}

    def post() -> None:
        t0 = time.perf_counter()
        r = requests.post(gateway.v1 + "/chat/completions", timeout=60, json={
            "model": "smart", "max_tokens": 5, "messages": [{"role": "user", "content": text}]})
        result["status"], result["seconds"] = r.status_code, time.perf_counter() - t0
        result["route"] = r.headers.get("x-hybridgate-route")

    worker = threading.Thread(target=post)
    worker.start()
    worst = 0.0
    while worker.is_alive():
        t0 = time.perf_counter()
        assert requests.get(gateway.url + "/healthz", timeout=10).status_code == 200
        worst = max(worst, time.perf_counter() - t0)
        time.sleep(0.02)
    worker.join()
    assert result["status"] == 200, result
    assert result["seconds"] < 20, result
    assert result["route"] == "strong; reason=context"  # too long for the local model
    assert worst < 1.0, f"/healthz waited {worst:.2f} s behind the scan"


@pytest.mark.parametrize(("path", "body"), [
    ("/chat/completions", {"model": "gpt-fake",
                           "messages": [{"role": "user", "content": "hi"}]}),
    ("/completions", {"model": "gpt-fake", "prompt": "hi"}),
])
def test_residency_header_refuses_a_pinned_remote_model(gateway, path, body):
    r = requests.post(gateway.v1 + path, json=body,
                      headers={"x-hybridgate-residency": "local"})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "residency_violation"
    # a pinned local model is fine with the header
    ok = requests.post(gateway.v1 + "/chat/completions", json={
        "model": "smollm2-135m-instruct", "max_tokens": 2,
        "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-hybridgate-residency": "local"})
    assert ok.status_code == 200


def test_personal_data_in_the_system_prompt_stays_local(gateway):
    r = requests.post(gateway.v1 + "/chat/completions", json={
        "model": "smart", "max_tokens": 3, "messages": [
            {"role": "system", "content": "The customer is ann@example.org."},
            {"role": "user", "content": HARD}]})
    assert r.status_code == 200
    assert r.headers["x-hybridgate-model"] == "smollm2-135m-instruct"
    assert r.headers["x-hybridgate-route"] == "weak; reason=residency:email"
