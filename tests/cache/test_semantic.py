"""The semantic tier through a real gateway (real MiniLM, fake upstream): a question asked
again in other words is answered from the cache, verified; the near misses that
embeddings confuse go upstream; only the same context can hit; streamed hits replay as
SSE; Cache-Control and the opt-in are honoured. And its bookkeeping, directly: crowded
neighbourhoods raise the bar, the size bound and TTL evict oldest first, a context is
forgotten with its last question."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
import time

import httpx
import msgspec
import numpy as np
import openai
import pytest

from hybridgate.cache.exact import ExactCache, clear
from hybridgate.cache.semantic import MAX_CHARS, Probe, SemanticCache, context_key, question
from hybridgate.config.settings import parse_config
from hybridgate.core.types import ChatRequest, ChatResponse
from tests.conftest import OPENAI_KEY, start_gateway

SEM, EXACT = "hg-semantic-tenant-key-01", "hg-exact-tenant-key-0001"
ADMIN = "hg-semantic-admin-key-001"


@pytest.fixture(scope="module")
def sem_gw(tmp_path_factory, fake_openai):
    db = tmp_path_factory.mktemp("semcache") / "ledger.db"
    gw = start_gateway(parse_config({
        "ledger": {"url": f"sqlite:///{db}"},
        "prices": [{"id": "gpt-fake", "input": 1.0, "output": 2.0}],
        "tenants": [{"name": "sem", "cache": "semantic"}, {"name": "exact", "cache": True}],
        "keys": [{"id": "s", "key": SEM, "tenant": "sem"},
                 {"id": "e", "key": EXACT, "tenant": "exact"},
                 {"id": "a", "key": ADMIN, "admin": True}],
        "models": [{"name": "gpt-fake", "provider": "openai", "api_key": OPENAI_KEY,
                    "base_url": fake_openai.url + "/v1"}]}))
    yield gw, db
    gw.stop()


def _ask(gw, text: str, key: str = SEM, system: str | None = None, **kw: object):  # noqa: ANN202
    c = openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0)
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": text}]
    return c.chat.completions.with_raw_response.create(model="gpt-fake", messages=msgs,
                                                       temperature=0, **kw)


def _settle() -> None:
    time.sleep(0.5)  # the answer and its question are stored after the response


def test_a_paraphrase_is_a_verified_semantic_hit(sem_gw, fake_openai):
    gw, db = sem_gw
    tag = secrets.token_hex(3)  # a fresh system prompt: a context of this test's own
    system = f"You are assistant {tag}."
    first = _ask(gw, "How do I reverse a list in Python?", system=system)
    assert first.headers["x-hybridgate-cache"] == "miss"
    _settle()
    n = len(fake_openai.requests)
    again = _ask(gw, "how can i reverse a list in python", system=system)
    assert again.headers["x-hybridgate-cache"] == "semantic-hit"
    assert len(fake_openai.requests) == n  # the upstream was not asked
    metrics = httpx.get(gw.url + "/metrics", headers={"authorization": f"Bearer {ADMIN}"}).text
    assert 'hybridgate_cache_lookups_total{result="semantic-hit"}' in metrics
    assert again.parse().choices[0].message.content == \
        first.parse().choices[0].message.content
    assert again.headers["x-hybridgate-cost"] == "0"
    with sqlite3.connect(db) as c:
        row = c.execute("SELECT provider, cost_usd, baseline_cost_usd FROM requests "
                        "WHERE id = ?", (again.headers["x-request-id"],)).fetchone()
    assert row[0] == "cache" and row[1] == 0 and row[2] > 0
    # streamed: the cached answer replays as a correct SSE stream
    c = openai.OpenAI(base_url=gw.v1, api_key=SEM, max_retries=0)
    chunks = list(c.chat.completions.create(
        model="gpt-fake", temperature=0, stream=True, messages=[
            {"role": "system", "content": system},
            {"role": "user", "content": "How do I reverse a list in Python, please?"}]))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == \
        first.parse().choices[0].message.content
    assert len(fake_openai.requests) == n


@pytest.mark.parametrize("near_miss", [
    "How do I reverse a list in JavaScript?",  # another language
    "How do I not reverse a list in Python?",  # negation
    "How do I reverse 2 lists in Python?",  # a number
])
def test_near_misses_go_upstream(sem_gw, fake_openai, near_miss):
    gw, _ = sem_gw
    system = f"You are assistant {secrets.token_hex(3)}."
    _ask(gw, "How do I reverse a list in Python?", system=system)
    _settle()
    n = len(fake_openai.requests)
    r = _ask(gw, near_miss, system=system)
    assert r.headers["x-hybridgate-cache"] == "miss" and len(fake_openai.requests) == n + 1
    assert near_miss in r.parse().choices[0].message.content  # its own answer


def test_only_the_same_context_and_opted_in_requests_can_hit(sem_gw, fake_openai):
    gw, _ = sem_gw
    system = f"You are assistant {secrets.token_hex(3)}."
    _ask(gw, "Convert 5 miles to kilometers.", system=system)
    _settle()
    assert _ask(gw, "convert 5 miles to kilometers", system=system).headers[
        "x-hybridgate-cache"] == "semantic-hit"
    # another system prompt, other sampling, the opposite conversion, an exact-only tenant
    assert _ask(gw, "convert 5 miles to kilometers", system=system + " Be terse.").headers[
        "x-hybridgate-cache"] == "miss"
    assert _ask(gw, "convert 5 miles to kilometers", system=system, max_tokens=9).headers[
        "x-hybridgate-cache"] == "miss"
    assert _ask(gw, "Convert 5 kilometers to miles.", system=system).headers[
        "x-hybridgate-cache"] == "miss"
    assert _ask(gw, "convert 5 miles to kilometers", key=EXACT, system=system).headers[
        "x-hybridgate-cache"] == "miss"
    # no-cache skips the lookup (and the answer is stored again)
    n = len(fake_openai.requests)
    r = _ask(gw, "convert 5 miles to kilometers", system=system,
             extra_headers={"cache-control": "no-cache"})
    assert r.headers["x-hybridgate-cache"] == "miss" and len(fake_openai.requests) == n + 1


def _cache(**over: object) -> SemanticCache:
    cfg = parse_config({"tenants": [{"name": "t", "cache": "semantic"}],
                        "cache": {"similarity": 0.9, "margin": 0.02, **over}})
    return SemanticCache(cfg, ExactCache(cfg), embedder=None, quick=None)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _key(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def test_a_crowded_neighbourhood_raises_the_bar():
    rng = np.random.default_rng(12345)  # not the rotation's seed: its rows are not data
    a = _unit(rng.standard_normal(384))
    b = _unit(a + 0.15 * _unit(rng.standard_normal(384)))  # another question, close by
    q = _unit(a + 0.2 * _unit(rng.standard_normal(384)))  # a rewording of a
    sc = _cache()
    sc.add(Probe("c", "a", 1), a, _key(1))
    sim = float(q @ a)
    assert 0.9 < sim and sc.candidates(Probe("c", "q", 1, q))[0][0] == 0  # alone: yes
    sc.add(Probe("c", "b", 1), b, _key(2))  # b lands closer to a than q is
    assert float(a @ b) + 0.02 > sim
    assert sc.candidates(Probe("c", "q", 1, q)) == []
    assert sc.candidates(Probe("c", "q", 2, a)) == []  # another fingerprint: never
    assert sc.candidates(Probe("other", "q", 1, a)) == []  # another context: never


def test_size_bound_and_ttl_evict_oldest_first_and_contexts_are_forgotten(monkeypatch):
    rng = np.random.default_rng(54321)
    sc = _cache(semantic_max_entries=20)
    vecs = [_unit(rng.standard_normal(384)) for _ in range(40)]
    for i, v in enumerate(vecs):
        sc.add(Probe(f"ctx{i % 2}", str(i), 0), v, _key(i))
    assert sc.rows.live <= 20 and len(sc.index) == sc.rows.live
    assert sc.candidates(Probe("ctx0", "0", 0, vecs[0])) == []  # the oldest went first
    assert sc.candidates(Probe("ctx1", "39", 0, vecs[39]))[0][0] == 39
    assert sc.rows.text[39 - sc.rows.base] == "39"  # the text kept for confirmation
    clock = [time.monotonic() + 10**6]  # everything is past the TTL
    monkeypatch.setattr("hybridgate.cache.semantic.time.monotonic", lambda: clock[0])
    assert sc.candidates(Probe("ctx1", "39", 0, vecs[39])) == []
    sc.add(Probe("ctx9", "new", 0), vecs[0], _key(99))
    assert sc.rows.live == 1 and set(sc.tags) == {"ctx9"}


def test_what_counts_as_the_question():
    def req(messages: list) -> ChatRequest:
        return msgspec.convert({"model": "m", "messages": messages}, ChatRequest)

    assert question(req([{"role": "user", "content": "hi there"}])) == "hi there"
    assert question(req([{"role": "user", "content": [{"type": "text", "text": "a"},
                                                         {"type": "text", "text": "b"}]}])) \
        == "a\nb"
    assert question(req([{"role": "user", "content": "x" * (MAX_CHARS + 1)}])) is None
    assert question(req([{"role": "user", "content": "q"},
                         {"role": "assistant", "content": "a"}])) is None
    one = req([{"role": "system", "content": "s"}, {"role": "user", "content": "q1"}])
    two = req([{"role": "system", "content": "s"}, {"role": "user", "content": "q2"}])
    other = req([{"role": "system", "content": "t"}, {"role": "user", "content": "q1"}])
    assert context_key("t", one, None) == context_key("t", two, None)
    assert context_key("t", one, None) != context_key("t", other, None)
    assert context_key("t", one, None) != context_key("u", one, None)
    assert context_key("t", one, None) != context_key("t", one, "redact")


def test_cache_clear_reaches_the_semantic_tier():
    asyncio.run(_clear_reaches_the_semantic_tier())


async def _clear_reaches_the_semantic_tier() -> None:
    """The semantic index points into the exact tier: once `cache clear` has emptied the
    shared answers, a reworded question misses and its entry is forgotten."""

    redis = "redis://127.0.0.1:6379/0"
    cfg = parse_config({"redis": redis, "tenants": [{"name": "t", "cache": "semantic"}]})
    exact = ExactCache(cfg)
    v = _unit(np.random.default_rng(777).standard_normal(384))
    same = _Counting({"capital of France?": v, "France's capital?": v})
    sc = SemanticCache(cfg, exact, embedder=same, quick=None)
    key = _key(secrets.randbits(64))
    answer = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "Paris"}}]}
    await exact.put(key, msgspec.json.encode(answer))
    sc.add(Probe("ctx", "capital of France?", 0), v, key)
    try:
        hit = await sc.lookup(Probe("ctx", "France's capital?", 0, v))
        assert isinstance(hit, ChatResponse) and hit.choices[0].message.content == "Paris"
        assert await clear(redis) >= 1
        assert await sc.lookup(Probe("ctx", "France's capital?", 0, v)) is None
        assert sc.rows.live == 0 and "ctx" not in sc.tags  # forgotten, not kept dangling
    finally:
        await exact.close()


class _Counting:
    """An embedder that records what it was asked to embed."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors_of, self.calls = vectors, []

    async def vectors(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([self.vectors_of[t] for t in texts])

    def backlog(self) -> int:
        return self.waiting

    waiting = 0


def test_only_questions_that_could_hit_are_embedded():
    asyncio.run(_only_questions_that_could_hit_are_embedded())


async def _only_questions_that_could_hit_are_embedded() -> None:
    rng = np.random.default_rng(2468)
    a = _unit(rng.standard_normal(384))
    near = _unit(a + 0.1 * _unit(rng.standard_normal(384)))
    vecs = {"q1": a, "q1 again": near, "q1 twisted": near,
            "q2": _unit(rng.standard_normal(384)), "q3": _unit(rng.standard_normal(384))}
    quick = _Counting(vecs)  # static vectors: "q1 twisted" looks like q1...
    full = _Counting({**vecs, "q1 twisted": _unit(rng.standard_normal(384))})  # ...MiniLM
    cfg = parse_config({"tenants": [{"name": "t", "cache": "semantic"}],
                        "cache": {"similarity": 0.9, "semantic_max_entries": 2}})
    exact = ExactCache(cfg)
    sc = SemanticCache(cfg, exact, embedder=full, quick=quick)
    answer = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "one"}}]}
    await exact.put(_key(1), msgspec.json.encode(answer))
    # a signature no cached question shares: a miss without embedding, then it waits
    assert await sc.lookup(Probe("c", "q1", 5)) is None
    await sc.remember(Probe("c", "q1", 5), _key(1))
    assert await sc.lookup(Probe("c", "q2", 6)) is None  # another signature
    await sc.remember(Probe("c", "q2", 6), _key(2))
    assert quick.calls == full.calls == [] and len(sc.index) == 0 and len(sc.waiting) == 2
    # the same signature again: both get static vectors in one call, the waiting one is
    # indexed, and MiniLM confirms the candidate
    hit = await sc.lookup(Probe("c", "q1 again", 5))
    assert quick.calls == [["q1", "q1 again"]] and len(sc.index) == 1
    assert full.calls == [["q1 again", "q1"]]
    assert isinstance(hit, ChatResponse) and hit.choices[0].message.content == "one"
    # statically close, but MiniLM says otherwise: a miss; q1 is not read again (its
    # MiniLM vector is kept from the first confirmation)
    twisted = Probe("c", "q1 twisted", 5)
    assert await sc.lookup(twisted) is None
    assert full.calls[-1] == ["q1 twisted"]
    await sc.remember(twisted, _key(9))  # stored with the MiniLM vector it already has
    assert len(sc.rows.full) == 2 and len(quick.calls) == 2 and len(full.calls) == 2
    sc._forget([max(sc.rows.full)])  # forgotten with its question
    assert len(sc.rows.full) == 1
    assert await sc.lookup(Probe("other", "q1 again", 5)) is None  # other context: no
    assert len(quick.calls) == 2 and len(full.calls) == 2
    # MiniLM behind on other lookups: a miss at once, not a wait in its queue
    full.waiting = 1  # (a text waiting behind the running call)
    busy = Probe("c", "q1 again", 5)
    assert await sc.lookup(busy) is None and busy.skipped and len(full.calls) == 2
    full.waiting = 0

    async def broken(texts: list[str]) -> np.ndarray:
        raise RuntimeError("the model went away")
    full.vectors = broken  # type: ignore[method-assign]
    failed = Probe("c", "q1 again", 5)
    assert await sc.lookup(failed) is None and failed.skipped  # a failure is a miss
    # waiting questions are bounded by the size bound, oldest dropped first
    await sc.remember(Probe("c", "q3", 7), _key(3))
    await sc.remember(Probe("c", "q4", 8), _key(4))
    assert [k[1] for k in sc.waiting] == [7, 8]


def test_the_defaults_the_readme_names():
    """README: prefilter 0.76, similarity 0.81, margin off, 4-bit codes, an inverted file
    from 1,024 questions (one list per 32, up to 256), 100,000 questions per process."""
    cfg = parse_config({"tenants": [{"name": "t", "cache": "semantic"}]})
    sc = SemanticCache(cfg, ExactCache(cfg), embedder=None, quick=None)
    assert (sc.prefilter, sc.similarity, sc.margin, sc.crowding) == (0.76, 0.81, None, False)
    ix = sc.index
    assert (ix.mse.bits, ix.lists, ix.train_at, ix.per_list) == (4, 256, 1024, 32)
    assert sc.max_entries == 100_000
