"""Fan-out through a real gateway: the members are asked at once (a failing one is left
out and named), the synthesizer gets every answer under its member's name and writes
the merge, in Markdown or JSON, streamed or not; the members' answers come back raw on
request; every part is a ledger row under the client's, and usage.cost is their sum."""

from __future__ import annotations

import json
import sqlite3

import openai
import pytest

from hybridgate.config.settings import parse_config
from hybridgate.execute.fanout import SCHEMA
from tests.conftest import OPENAI_KEY, start_gateway

ALPHA = "Paris is the capital of France."
BETA = "The capital of France is Paris; about 2.1 million people live there."
MERGED = ("## Consensus\nParis is the capital. [alpha, beta]\n## Unique insights\n"
          "About 2.1 million people. [beta]\n## Contradictions\nNone.")


@pytest.fixture(scope="module")
def council(tmp_path_factory, fake_openai):
    db = tmp_path_factory.mktemp("fanout") / "ledger.db"

    def model(name: str, **kw: object) -> dict:
        return {"name": name, "provider": "openai", "api_key": OPENAI_KEY, "model": name,
                "base_url": fake_openai.url + "/v1", **kw}

    gw = start_gateway(parse_config({
        "ledger": {"url": f"sqlite:///{db}"},
        "prices": [{"id": m, "input": 1.0, "output": 2.0} for m in ("alpha", "beta", "judge")],
        "models": [model("alpha"), model("beta"), model("judge"),
                   {"name": "down", "provider": "openai", "num_retries": 0,
                    "base_url": "http://127.0.0.1:9/v1"}],
        "routes": [{"name": "council", "mode": "fanout", "members": ["alpha", "beta", "down"],
                    "synthesizer": "judge"}]}))
    yield gw, db
    gw.stop()


@pytest.fixture
def scripted(fake_openai):
    fake_openai.by_model = {"alpha": ALPHA, "beta": BETA, "judge": MERGED}
    return fake_openai


def _client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key="unused", max_retries=0)


def _synthesis_prompt(fake) -> dict:
    return next(r["body"] for r in reversed(fake.requests) if r["body"]["model"] == "judge")


def test_members_answer_and_the_synthesizer_merges_with_attribution(council, scripted):
    gw, db = council
    raw = _client(gw).chat.completions.with_raw_response.create(
        model="council", messages=[{"role": "user", "content": "What is the capital of France?"}])
    r = raw.parse()
    assert r.choices[0].message.content == MERGED
    assert raw.headers["x-hybridgate-fanout-members"] == "alpha,beta"
    assert raw.headers["x-hybridgate-fanout-left-out"] == "down"
    prompt = _synthesis_prompt(scripted)
    user = prompt["messages"][-1]["content"]
    assert "What is the capital of France?" in user
    assert f"### Answer from alpha\n{ALPHA}" in user and f"### Answer from beta\n{BETA}" in user
    assert "Consensus" in prompt["messages"][0]["content"]
    with sqlite3.connect(db) as c:
        parent = c.execute("SELECT provider, cost_usd, route FROM requests WHERE id = ?",
                           (raw.headers["x-request-id"],)).fetchone()
        parts = c.execute("SELECT route, status, cost_usd FROM requests WHERE parent_id = ?",
                          (raw.headers["x-request-id"],)).fetchall()
    assert parent == ("fanout", 0.0, "council")
    assert sorted(p[0] for p in parts) == ["alpha", "beta", "down", "judge"]
    assert {p[0]: p[1] for p in parts}["down"] >= 500
    spent = sum(p[2] or 0 for p in parts)
    assert spent > 0 and r.usage.cost == pytest.approx(spent)


def test_raw_answers_json_and_streaming(council, scripted):
    gw, db = council
    c = _client(gw)
    q = [{"role": "user", "content": "capital?"}]
    raw = c.chat.completions.with_raw_response.create(
        model="council", messages=q, extra_headers={"x-hybridgate-fanout": "raw"})
    assert [ch.message.content for ch in raw.parse().choices] == [ALPHA, BETA]
    streamed = c.chat.completions.with_raw_response.create(
        model="council", messages=q, stream=True, stream_options={"include_usage": True},
        extra_headers={"x-hybridgate-fanout": "raw"})
    chunks = list(streamed.parse())
    assert chunks[-1].usage.cost > 0  # the members' cost, in the client's usage...
    with sqlite3.connect(db) as con:  # ...while the client's own row counts nothing
        row = con.execute("SELECT prompt_tokens, completion_tokens, cost_usd FROM requests "
                          "WHERE id = ?", (streamed.headers["x-request-id"],)).fetchone()
    assert row == (0, 0, 0.0)
    assert not any(r["body"]["model"] == "judge" for r in scripted.requests)  # no synthesis
    scripted.by_model["judge"] = json.dumps({
        "consensus": [{"point": "Paris", "members": ["alpha", "beta"]}],
        "unique_insights": [{"point": "2.1 million people", "members": ["beta"]}],
        "contradictions": []})
    doc = json.loads(c.chat.completions.create(
        model="council", messages=q, response_format={"type": "json_object"})
        .choices[0].message.content)
    assert doc["unique_insights"][0]["members"] == ["beta"]
    assert _synthesis_prompt(scripted)["response_format"]["json_schema"]["schema"] == SCHEMA
    scripted.by_model["judge"] = MERGED
    chunks = list(c.chat.completions.create(model="council", messages=q, stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == MERGED
    assert chunks[-1].usage.cost > 0


def test_a_fanout_group_is_listed_and_validated():
    with pytest.raises(ValueError, match="two or more members"):
        parse_config({"models": [{"name": "a", "provider": "openai",
                                  "base_url": "http://x/v1"}],
                      "routes": [{"name": "g", "mode": "fanout", "members": ["a"],
                                  "synthesizer": "a"}]})


def test_the_fanout_group_is_in_the_models_list(council):
    gw, _ = council
    assert "council" in [m.id for m in _client(gw).models.list()]
