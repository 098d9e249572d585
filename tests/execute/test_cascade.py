"""Cascade: the weak (local) member answers first and is escalated when unsure.

The session gateway's cascade groups fix the threshold so the outcome is known: every
mean log-probability is below 0 (``cascade-up`` always escalates) and above -1e9
(``cascade-keep`` never does); ``cascade-down``'s strong member is unreachable."""

from __future__ import annotations

import json
import sqlite3

import pytest
import requests

from hybridgate.execute.cascade import PRIOR, WARMUP, WINDOW, Confidence

MSG = [{"role": "user", "content": "Say hello."}]


def post(gateway, model, **body):
    return requests.post(gateway.v1 + "/chat/completions", timeout=120, json={
        "model": model, "messages": MSG, "max_tokens": 8, "temperature": 0, **body})


def test_the_threshold_is_the_share_quantile_of_recent_answers():
    rule = Confidence("weak", share=0.25, threshold=None)
    assert rule.threshold() == PRIOR  # nothing seen yet
    decisions = [rule.escalate(-i / 100)[0] for i in range(100)]  # -0.00 ... -0.99
    assert rule.threshold() == pytest.approx(-0.74)  # a quarter of them lie below
    assert decisions[:WARMUP] == [i / 100 > 0.1 for i in range(WARMUP)]  # by the prior
    assert rule.escalate(-0.9)[0] and not rule.escalate(-0.1)[0]


def test_only_the_last_window_of_answers_counts():
    rule = Confidence("weak", share=0.5, threshold=None)
    for _ in range(WINDOW):
        rule.escalate(-5.0)  # an old, very unsure stretch...
    for _ in range(WINDOW):
        rule.escalate(-0.1)  # ...pushed out by the last 500
    assert WINDOW == 500 and rule.threshold() == -0.1


def test_a_fixed_threshold_learns_nothing():
    rule = Confidence("weak", share=0.5, threshold=-0.3)
    assert rule.escalate(-0.31) == (True, -0.3) and rule.escalate(-0.29) == (False, -0.3)
    assert rule.threshold() == -0.3


@pytest.mark.slow
def test_a_confident_weak_answer_is_kept(gateway, fake_openai):
    r = post(gateway, "cascade-keep")
    assert r.status_code == 200, r.text
    assert r.headers["x-hybridgate-model"] != "gpt-fake" and not fake_openai.requests
    assert r.headers["x-hybridgate-route"].startswith("weak; reason=cascade")
    assert float(r.headers["x-hybridgate-confidence"]) < 0
    assert "confidence" not in r.json()  # internal: never in the body


@pytest.mark.slow
def test_an_unsure_weak_answer_is_escalated_and_both_attempts_recorded(gateway, fake_openai,
                                                                       ledger_path):
    r = post(gateway, "cascade-up")
    assert r.status_code == 200, r.text
    assert r.headers["x-hybridgate-model"] == "gpt-fake"
    assert r.headers["x-hybridgate-route"].endswith("; escalated=gpt-fake")
    assert r.json()["choices"][0]["message"]["content"].startswith("echo:")
    with sqlite3.connect(ledger_path) as db:
        steps = json.loads(db.execute("SELECT attempts FROM requests WHERE id = ?",
                                      (r.headers["x-request-id"],)).fetchone()[0])
    assert [s["status"] for s in steps] == [200, 200]
    assert steps[0]["error"].startswith("low confidence") and steps[1]["model"] == "gpt-fake"
    # the weak answer was not used, and still cost its engine time: in the row's cost
    assert steps[0]["completion_tokens"] > 0 and steps[0]["cost_usd"] > 0
    with sqlite3.connect(ledger_path) as db:
        cost = db.execute("SELECT cost_usd FROM requests WHERE id = ?",
                          (r.headers["x-request-id"],)).fetchone()[0]
    assert cost == pytest.approx(float(r.headers["x-hybridgate-cost"]), rel=1e-4)
    assert cost > steps[0]["cost_usd"]  # and the strong answer's on top


@pytest.mark.slow
def test_with_the_strong_member_down_the_weak_answer_still_answers(gateway):
    r = post(gateway, "cascade-down")
    assert r.status_code == 200, r.text
    assert r.headers["x-hybridgate-model"] != "down"
    assert r.json()["choices"][0]["message"]["content"]


@pytest.mark.slow
def test_a_streamed_request_is_not_cascaded(gateway, fake_openai):
    """Streams go by the router (no threshold here: the group's default, weak)."""
    with requests.post(gateway.v1 + "/chat/completions", stream=True, timeout=120, json={
            "model": "cascade-up", "messages": MSG, "max_tokens": 4, "stream": True}) as r:
        assert r.status_code == 200
        assert "reason=cascade" not in r.headers["x-hybridgate-route"]
        list(r.iter_lines())
