"""The semantic tier: a question asked before in other words, answered from the cache.

A request the exact tier missed is split in two: its *context* (everything but the text
of the last user turn, hashed like an exact key: tenant, model or group, system prompt,
earlier turns, tools, sampling, PII mode) and its *question* (that text). Finding a
cached question to reuse takes two stages, the cheap one first:

  1. *candidates*: the question's static vector (MiniLM's word pieces distilled,
     ``providers/static_embeddings``, ~0.2 ms) is searched in a ``TurboQuantIndex``
     among entries of the same context only (a row tag per context); an entry is a
     candidate when its static similarity reaches ``prefilter`` (and, with a ``margin``,
     its *crowding*, the static similarity to its nearest other cached question, plus
     the margin) and its signature (``cache/verify``: numbers, units, negations, polar
     words, code languages, names, quoted strings) equals the question's, which catches
     what embeddings cannot (5 miles to km vs 5 km to miles, a question vs its negation);
  2. *confirmation*: only when there are candidates, the full MiniLM embeds the question
     and their texts in one call, and the most similar is a hit if it reaches
     ``similarity``. Static vectors are a bag of word pieces ("how do I sort a list"
     sits at 0.91 to "how do I reverse a list", MiniLM says 0.57), so they only choose
     what MiniLM is asked about.

Embedding is the tier's cost on a miss, so it is spent only where a hit is possible: a
question whose signature no other cached question of its context shares waits
unembedded (one per context and signature, within the size bound), and a lookup with no
such neighbour answers "miss" at once; one that has neighbours costs a static vector and
a search, and MiniLM only when a neighbour comes close. Thresholds are calibrated on a
labelled set (bench/semantic_cache.py, docs/benchmarks.md).

The answer itself lives in the exact tier under the original request's key (Redis or
memory), so a hit reads the same store, TTL and ``cache clear`` as an exact hit; an
index entry whose answer has gone is dropped at its next hit. The index (4-bit codes,
~200 bytes a question instead of 1,536, plus the question's text for confirmation) is
per process: each replica learns its own questions, and all of them share the answers.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybridgate.cache.exact import ExactCache, request_key
from hybridgate.cache.verify import fingerprint
from hybridgate.config.settings import Config
from hybridgate.core.types import ChatRequest, ChatResponse
from hybridgate.turboquant import TurboQuantIndex
from hybridgate.turboquant.index import Column

log = logging.getLogger("hybridgate.cache")

MAX_CHARS = 1000  # longer questions go exact-only: MiniLM reads 256 word pieces at most
DIM = 384
MAX_CANDIDATES = 2  # MiniLM reads the question and at most this many cached ones
# texts already waiting for MiniLM past which a lookup is a miss instead of a wait: the
# cache uses the model's spare time and never queues a request behind more than the call
# running and one more (8 cost 16% of requests/s on real questions at 300 ms, 1 cost 5%)
MAX_BACKLOG = 1


@dataclass(slots=True)
class Probe:
    """A question's place in the semantic tier: kept from lookup to store."""

    context: str  # context_key
    text: str
    print: int
    vector: np.ndarray | None = None  # its static vector, made when first needed
    skipped: bool = False  # candidates went unconfirmed: MiniLM was too busy, or failed
    full: np.ndarray | None = None  # its MiniLM vector, if a confirmation made one


def question(req: ChatRequest) -> str | None:
    """The last user turn's text, when the request ends in one and it is short enough."""
    if not req.messages:
        return None
    last = req.messages[-1]
    if last.role != "user":
        return None
    content = last.content
    if isinstance(content, list):
        parts = [getattr(p, "text", None) for p in content]
        if any(t is None for t in parts):
            return None  # images, audio: not a question the index can compare
        content = "\n".join(t for t in parts if t)
    if not isinstance(content, str) or not content.strip() or len(content) > MAX_CHARS:
        return None
    return content


def context_key(tenant: str | None, req: ChatRequest, pii_mode: str | None) -> str:
    """The exact key of everything but the question."""
    return request_key(tenant, req, pii_mode, question=False)


class Entries:
    """Per-question answer key (SHA-256), fingerprint, crowding (similarity to the nearest
    other question cached in its context), birth time and context tag, in
    arrays by index id (ids run in age order from ``base``): 61 bytes a question, and its
    text (a list) for MiniLM to read when it is a candidate."""

    def __init__(self) -> None:
        self.base = 0
        self.key = Column(32, np.uint8)
        self.fp = Column(None, np.int64)
        self.crowd = Column(None, np.float32)  # similarity to its nearest other question
        self.born = Column(None, np.float64)
        self.on = Column(None, np.bool_)  # still in the index
        self.tag = Column(None, np.int64)  # its context
        self.text: list[str] = []  # the question, for MiniLM to confirm a candidate
        # its MiniLM vector (float16), once a confirmation has made one: a question is
        # read by MiniLM at most once while cached (768 bytes for those that were)
        self.full: dict[int, np.ndarray] = {}
        self.live = 0

    def add(self, key: str, fp: int, crowd: float, born: float, tag: int, text: str) -> int:
        self.text.append(text)
        self.key.extend(np.frombuffer(bytes.fromhex(key), np.uint8)[None, :])
        self.fp.extend(np.array([fp]))
        self.crowd.extend(np.array([crowd], np.float32))
        self.born.extend(np.array([born]))
        self.on.extend(np.array([True]))
        self.tag.extend(np.array([tag]))
        self.live += 1
        return self.base + self.fp.n - 1

    def alive(self, i: int) -> bool:
        return i >= self.base and bool(self.on.view[i - self.base])

    def drop(self, ids: list[int]) -> list[tuple[int, int]]:
        """Mark ids gone; returns the (tag, fingerprint) of those that were live."""
        gone = []
        for i in ids:
            if self.alive(i):
                j = i - self.base
                self.on.view[j] = False
                self.live -= 1
                self.full.pop(i, None)
                gone.append((int(self.tag.view[j]), int(self.fp.view[j])))
        return gone

    def hexkey(self, i: int) -> str:
        return self.key.view[i - self.base].tobytes().hex()

    def trim(self, oldest: int) -> None:
        """Forget the arrays' front once most of it is evicted."""
        if oldest - self.base > max(1024, self.fp.n // 2):
            keep = np.arange(self.fp.n) >= oldest - self.base
            for col in (self.key, self.fp, self.crowd, self.born, self.on, self.tag):
                col.keep(keep)
            self.text = self.text[oldest - self.base:]
            self.base = oldest


class SemanticCache:
    def __init__(self, config: Config, exact: ExactCache, embedder: Any, quick: Any) -> None:
        c = config.cache
        self.tenants = {t.name for t in config.tenants if t.cache == "semantic"}
        self.groups = {g.name for g in config.routes if g.cache == "semantic"}
        self.enabled = bool(self.tenants or self.groups)
        self.prefilter, self.similarity, self.margin = c.prefilter, c.similarity, c.margin
        self.crowding = c.margin is not None
        self.max_entries, self.ttl = c.semantic_max_entries, c.ttl
        self.exact = exact
        self.quick = quick  # static vectors: every question indexed or looked up
        self.embedder = embedder  # the full MiniLM: confirms candidates
        # an inverted file from 1,024 questions on (one list per 32, up to 256), so a
        # search scores 512 to ~1,600 rows at any size (4 lists probed at 100k)
        self.index = TurboQuantIndex(DIM, bits=4, lists=256, train_at=1024, nprobe=4,
                                     per_list=32, min_rows=512)
        # a tag per context with questions indexed (forgotten with its last question)
        self.tags: dict[str, int] = {}
        self.contexts: dict[int, str] = {}
        self.per_tag: dict[int, int] = {}  # tag -> questions indexed
        self.per_print: dict[tuple[int, int], int] = {}  # (tag, fingerprint) -> indexed
        # (context, fingerprint) -> (text, answer key, born): a question no other shares
        # the signature of yet, not embedded until one does (oldest dropped first)
        self.waiting: OrderedDict[tuple[str, int], tuple[str, str, float]] = OrderedDict()
        self.next_tag = 0
        self.rows = Entries()
        self.oldest = 0  # ids are handed out in order, so the oldest live id evicts first

    def probe(self, tenant: str | None, req: Any, pii_mode: str | None) -> Probe | None:
        """The question's context and fingerprint (cheap; no embedding yet), or None
        where the tier does not apply (not opted in, no short last user turn)."""
        if not (self.enabled and isinstance(req, ChatRequest)
                and (tenant in self.tenants or req.model in self.groups)):
            return None
        text = question(req)
        if text is None:
            return None
        return Probe(context_key(tenant, req, pii_mode), text, fingerprint(text))

    async def _embed(self, probe: Probe) -> np.ndarray:
        if probe.vector is None:
            probe.vector = (await self.quick.vectors([probe.text]))[0]
        return probe.vector

    def candidates(self, probe: Probe) -> list[tuple[int, float]]:
        """Cached entries this (embedded) question may reuse, closest first: (id, static
        similarity), through the prefilter, crowding and signature."""
        tag = self.tags.get(probe.context)
        if probe.vector is None or tag is None:
            return []
        scores, ids = self.index.search(probe.vector, k=4, tag=tag)
        now, r, out = time.monotonic(), self.rows, []
        floor = -1.0 if self.prefilter is None else self.prefilter
        for s, i in zip(scores[0].tolist(), ids[0].tolist(), strict=True):
            j = i - r.base
            if now - r.born.view[j] > self.ttl:
                continue  # its answer has expired too; evicted in order below
            bar = floor
            if self.margin is not None:
                bar = max(bar, float(r.crowd.view[j]) + self.margin)
            if s >= bar and r.fp.view[j] == probe.print:
                out.append((i, s))
        return out

    async def confirm(self, probe: Probe, cands: list[tuple[int, float]]
                      ) -> tuple[int, float] | None:
        """The candidate MiniLM finds closest, if it reaches ``similarity``: (id, sim).
        With MiniLM behind on other lookups, none: a miss costs the request less than a
        wait in that queue (the upstream answers; the metric counts it)."""
        if not cands:
            return None
        if self.embedder.backlog() >= MAX_BACKLOG:
            probe.skipped = True
            return None
        cands = cands[:MAX_CANDIDATES]
        r = self.rows
        new = [i for i, _ in cands if i not in r.full]  # not read by MiniLM before
        texts = ([probe.text] if probe.full is None else []) + [r.text[i - r.base]
                                                                 for i in new]
        try:
            vectors = await self.embedder.vectors(texts) if texts else np.zeros((0, DIM))
        except Exception as e:  # noqa: BLE001 - a cache that fails is a miss
            log.warning("cache: MiniLM failed (%s); answering from upstream", type(e).__name__)
            probe.skipped = True
            return None
        if probe.full is None:
            probe.full, vectors = vectors[0], vectors[1:]
        fresh = dict(zip(new, vectors, strict=True))
        for i, v in fresh.items():
            if r.alive(i):  # (it may have been evicted while MiniLM ran)
                r.full[i] = v.astype(np.float16)
        sims = np.stack([fresh[i] if i in fresh else r.full[i] for i, _ in cands]
                        ).astype(np.float32) @ probe.full
        best = int(np.argmax(sims))
        if float(sims[best]) < self.similarity:
            return None
        return cands[best][0], float(sims[best])

    def _indexed(self, probe: Probe) -> bool:
        tag = self.tags.get(probe.context)
        return tag is not None and (tag, probe.print) in self.per_print

    async def _embed_with_waiting(self, probe: Probe) -> None:
        """Embed the question and, in the same call, the one waiting with its signature
        (now worth indexing: it has someone to be compared with)."""
        waiting = self.waiting.pop((probe.context, probe.print), None)
        if waiting is not None and time.monotonic() - waiting[2] > self.ttl:
            waiting = None
        if waiting is None:
            await self._embed(probe)
            return
        texts = [waiting[0]] + ([probe.text] if probe.vector is None else [])
        vectors = await self.quick.vectors(texts)
        if probe.vector is None:
            probe.vector = vectors[1]
        self.add(Probe(probe.context, waiting[0], probe.print), vectors[0], waiting[1],
                 born=waiting[2])

    async def lookup(self, probe: Probe) -> ChatResponse | None:
        """A verified cached answer. Costs no embedding unless a cached question of the
        same context has the same signature (nothing else could be a hit), and no MiniLM
        unless one of those is a candidate."""
        if not self._indexed(probe) and (probe.context, probe.print) not in self.waiting:
            return None
        await self._embed_with_waiting(probe)
        found = await self.confirm(probe, self.candidates(probe))
        if found is None:
            return None
        hit = await self.exact.get(self.rows.hexkey(found[0]))
        if hit is None:  # the answer expired, was evicted or cleared: forget the question
            self._forget([found[0]])
        return hit

    async def remember(self, probe: Probe, key: str) -> None:
        """Index a question whose answer is now stored under ``key`` (neighbours within
        reach of it get a higher bar), or keep it waiting, unembedded, while no other
        cached question of its context shares its signature."""
        at = (probe.context, probe.print)
        if probe.vector is None and not self._indexed(probe):
            waiting = self.waiting.get(at)
            if waiting is None:
                now = time.monotonic()
                self.waiting[at] = (probe.text, key, now)
                while self.waiting and (len(self.waiting) > self.max_entries or
                                        now - next(iter(self.waiting.values()))[2] > self.ttl):
                    self.waiting.popitem(last=False)  # in arrival order: oldest first
                return
            if waiting[1] == key:
                return  # the same request again (a no-cache refresh)
        await self._embed_with_waiting(probe)
        assert probe.vector is not None
        self.add(probe, probe.vector, key)

    def add(self, probe: Probe, vector: np.ndarray, key: str,
            born: float | None = None) -> None:
        tag = self.tags.get(probe.context)
        if tag is None:
            tag = self.tags[probe.context] = self.next_tag
            self.contexts[tag] = probe.context
            self.next_tag += 1
        r, crowd = self.rows, -1.0
        # crowding costs a search per question: only kept where a margin reads it (a
        # no-cache refresh may then index a request twice, both pointing to one answer)
        near: list[tuple[float, int]] = []
        if self.crowding:
            scores, ids = self.index.search(vector, k=8, tag=tag)
            near = list(zip(scores[0].tolist(), ids[0].tolist(), strict=True))
        for s, i in near:
            if r.hexkey(i) == key:
                return  # the same request again (a no-cache refresh): already indexed
            crowd = max(crowd, s)
            j = i - r.base
            r.crowd.view[j] = max(float(r.crowd.view[j]), s)
        new = r.add(key, probe.print, crowd, time.monotonic() if born is None else born, tag,
                    probe.text)
        if probe.full is not None:
            r.full[new] = probe.full.astype(np.float16)
        self.index.add(vector, ids=np.array([new]), tags=tag)
        self.per_tag[tag] = self.per_tag.get(tag, 0) + 1
        self.per_print[tag, probe.print] = self.per_print.get((tag, probe.print), 0) + 1
        self._evict(new + 1)

    def _evict(self, end: int) -> None:
        """Drop the oldest questions past the size bound (a tenth at a time, so the
        index is rewritten rarely) and those past the TTL; ids run in age order."""
        now, r = time.monotonic(), self.rows
        excess = r.live - self.max_entries
        if excess > 0:
            excess = max(excess, self.max_entries // 10)
        drop, i = [], self.oldest
        while i < end and (excess > 0 or not r.alive(i)
                           or now - r.born.view[i - r.base] > self.ttl):
            if r.alive(i):
                drop.append(i)
                excess -= 1
            i += 1
        self.oldest = i
        if drop:
            self._forget(drop)
        r.trim(self.oldest)

    def _forget(self, ids: list[int]) -> None:
        self.index.delete(ids)
        for tag, fp in self.rows.drop(ids):
            self.per_print[tag, fp] -= 1
            if not self.per_print[tag, fp]:
                del self.per_print[tag, fp]
            self.per_tag[tag] -= 1
            if not self.per_tag[tag]:
                del self.per_tag[tag]
                del self.tags[self.contexts.pop(tag)]
        if self.index.deleted > len(self.index):
            self.index.compact()

    @property
    def nbytes(self) -> tuple[int, int]:
        """(index codes, index bookkeeping) bytes."""
        return self.index.nbytes, self.index.overhead_nbytes
