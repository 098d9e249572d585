"""Per-request accounting: price the usage, build the record, commit it.

``Recorder`` is made once from the config; ``Recorder.track`` makes one ``Tracker``
per request, which the API layer feeds (model chosen, usage seen, first token) and
finally commits. Costs are computed once the usage is known, so the same number goes
into ``usage.cost``, the ``x-hybridgate-cost`` header and the ledger row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from msgspec import UNSET

from hybridgate.config.settings import (
    AnthropicModel,
    Config,
    OpenAIModel,
    hybridgate_home,
)
from hybridgate.core.errors import GatewayError
from hybridgate.core.ids import new_id
from hybridgate.core.types import LOCAL_KINDS
from hybridgate.economics.costs import hourly_cost, load_hardware
from hybridgate.ledger.audit import AuditLog
from hybridgate.ledger.prices import Price, PriceBook
from hybridgate.ledger.record import Record
from hybridgate.ledger.writer import Ledger, LedgerUnavailable

log = logging.getLogger("hybridgate.ledger")
_ENCODE = msgspec.json.Encoder().encode


@dataclass(slots=True)
class Costs:
    cost_usd: float | None
    baseline_cost_usd: float | None
    energy_j: float | None


def default_url() -> str:
    return f"sqlite:///{hybridgate_home() / 'ledger.db'}"


def ledger_url(config: Config) -> str | None:
    """Where the config's ledger lives (None: the ledger is off)."""
    return (config.ledger.url or default_url()) if config.ledger.enabled else None


class Recorder:
    def __init__(self, config: Config) -> None:
        lc = config.ledger
        self.prices = PriceBook(config.prices)
        self.baseline: Price | None = self.prices.lookup(lc.baseline_model)
        if self.baseline is None:
            log.warning("baseline model %s has no price; baseline costs will be empty",
                        lc.baseline_model)
        hardware = load_hardware(lc.hardware)
        if lc.local_hardware not in hardware:
            raise ValueError(f"ledger.local_hardware {lc.local_hardware!r} is not a hardware "
                             f"profile; known: {', '.join(hardware)}")
        hw = hardware[lc.local_hardware]
        self.local_usd_per_hour = hourly_cost(hw, lc.electricity_usd_per_kwh,
                                              lc.local_utilization)
        self.local_watts = hw.watts
        self.local_tps = (hw.prefill_tokens_per_second or hw.tokens_per_second,
                          hw.tokens_per_second)  # prompt, output: a budget's worst case
        # What each configured model is called upstream: prices are keyed by either name.
        self.upstream: dict[str, str] = {
            m.name: (m.model or m.name) for m in config.models
            if isinstance(m, (OpenAIModel, AnthropicModel))}
        self.ledger: Ledger | None = None
        self.audit = False  # the audit log is on (it needs the ledger)
        if lc.enabled:
            spill = Path(lc.spill_path) if lc.spill_path else (
                hybridgate_home() / "ledger-spill.jsonl")
            self.audit = lc.audit.enabled
            self.ledger = Ledger(ledger_url(config) or "", required=lc.required,
                                 spill_path=spill, max_batch=lc.max_batch,
                                 audit=AuditLog(lc.audit) if lc.audit.enabled else None)

    async def start(self) -> None:
        if self.ledger is not None:
            await self.ledger.start()

    async def close(self) -> None:
        if self.ledger is not None:
            await self.ledger.close()

    def check(self) -> None:
        if self.ledger is not None:
            self.ledger.check()

    def price_of(self, route: str) -> Price | None:
        return self.prices.lookup(route, self.upstream.get(route))

    def costs(self, route: str | None, provider: str | None, prompt: int, cached: int,
              completion: int, seconds: float) -> Costs:
        baseline = (self.baseline.cost(prompt, cached, completion)
                    if self.baseline is not None and provider != "embeddings" else None)
        if provider == "cache":  # answered from the cache: free, and it saved the baseline
            return Costs(0.0, baseline, None)
        if provider == "fanout":  # its parts have rows (and costs) of their own
            return Costs(0.0, None, None)
        if provider in LOCAL_KINDS:
            # A local request costs the hardware's busy seconds; it also has a power draw.
            return Costs(self.local_usd_per_hour * seconds / 3600, baseline,
                         self.local_watts * seconds)
        price = self.price_of(route) if route else None
        cost = price.cost(prompt, cached, completion) if price is not None else None
        return Costs(cost, baseline, None)

    def worst_cost(self, model: str, kind: str, prompt: int, completion: int) -> float:
        """What a request may cost at most (a budget holds this much until it settles):
        the tokens at the model's price, or the seconds the hardware profile needs for
        them. A model with no known price: 0 (budgets count priced spend)."""
        if kind in LOCAL_KINDS:
            prefill, decode = self.local_tps
            return self.local_usd_per_hour * (prompt / prefill + completion / decode) / 3600
        price = self.price_of(model)
        return price.cost(prompt, 0, completion) if price is not None else 0.0

    def track(self, endpoint: str, requested_model: str, stream: bool,
              user: str | None, key_id: str | None = None) -> Tracker:
        return Tracker(self, endpoint, requested_model, stream, user, key_id)


@dataclass(slots=True)
class _EstimatedUsage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


class Tracker:
    """Everything known about one request, gathered as it goes."""

    __slots__ = ("recorder", "id", "ts", "t0", "endpoint", "requested_model", "stream", "user",
                 "key_id", "route", "provider", "usage", "ttft", "costs", "tokens_source", "done",
                 "route_score", "route_decision", "route_text", "attempts", "_priced",
                 "grant", "tenant", "policy", "request_sha256", "answer", "parent_id")

    def __init__(self, recorder: Recorder, endpoint: str, requested_model: str, stream: bool,
                 user: str | None, key_id: str | None = None) -> None:
        self.recorder = recorder
        self.key_id = key_id
        self.id = new_id("req")
        self.ts = time.time()
        self.t0 = time.perf_counter()
        self.endpoint = endpoint
        self.requested_model = requested_model
        self.stream = stream
        self.user = user
        self.route: str | None = None
        self.provider: str | None = None
        self.usage: tuple[int, int, int] = (0, 0, 0)
        self.tokens_source = "none"
        self.ttft: float | None = None
        self.costs: Costs | None = None
        self.done = False
        self.route_score: float | None = None
        self.route_decision: str | None = None
        self.route_text: str | None = None
        self.attempts: list[Any] = []  # execute's Attempt records, in order
        self._priced: tuple[str | None, float] | None = None  # see _attempts_priced
        self.grant: Any = None  # gate/limits' admission, settled when the request ends
        self.parent_id: str | None = None  # a fan-out's part: the client's request
        # the audit log's (ledger/audit), only when it is on
        self.tenant: str | None = None
        self.policy: dict[str, Any] | None = None
        self.request_sha256: str | None = None
        self.answer: Any = None  # a running SHA-256 of what was answered

    def audited(self, tenant: str | None, request_sha256: str | None,
                local_only: bool) -> None:
        self.tenant, self.request_sha256 = tenant, request_sha256
        self.policy = {"residency": "local" if local_only else "any"}
        self.answer = hashlib.sha256()

    def answered(self, resp: Any) -> None:
        """A whole answer into its digest: the output text and tool calls, so a streamed
        answer (``StreamRecord.see``) and the same answer whole digest alike."""
        if self.answer is not None:
            for piece in _answer_pieces(resp):
                self.answer.update(piece.encode())

    def served_by(self, route: str, provider: str) -> None:
        self.route, self.provider = route, provider

    def first_token(self) -> None:
        if self.ttft is None:
            self.ttft = time.perf_counter() - self.t0

    def estimate_usage(self, prompt_chars: int, completion_chars: int) -> Costs:
        """The upstream sent no usage: estimate ~4 characters a token (OpenAI's rule of
        thumb for English), and mark the row ``tokens_source = "estimated"``."""
        est = _EstimatedUsage(-(-prompt_chars // 4), -(-completion_chars // 4))
        return self.set_usage(est, source="estimated")

    def set_usage(self, usage: Any, source: str = "upstream") -> Costs:
        """Price the usage (an OpenAI usage object); returns the costs for the client."""
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        cached = int(getattr(usage, "cached_tokens", 0) or 0)
        self.usage = (prompt, cached, completion)
        self.tokens_source = source
        # A local engine reports the seconds it worked on this request; time spent queued
        # behind other requests is not this request's cost (it would count busy hours
        # several times over). Without a report: the whole latency.
        seconds = getattr(usage, "engine_seconds", UNSET)
        if seconds is not UNSET:
            usage.engine_seconds = UNSET  # internal: never sent to the client
        else:
            seconds = time.perf_counter() - self.t0
        costs = self.recorder.costs(self.route, self.provider, prompt, cached, completion,
                                    seconds)
        wasted = self._attempts_priced()[1]  # answers asked for and not used cost too
        if wasted:
            costs = Costs((costs.cost_usd or 0.0) + wasted, costs.baseline_cost_usd,
                          costs.energy_j)
        self.costs = costs
        return costs

    def _attempts_priced(self) -> tuple[str | None, float]:
        """The attempts as JSON (when there was more than one), and what the answers
        that were not used cost (priced like the served one: tokens, or a local
        engine's seconds). Worked out once, after execute has finished."""
        if len(self.attempts) <= 1:
            return None, 0.0
        if self._priced is None:
            out, wasted = [], 0.0
            for a in self.attempts:
                doc: dict[str, Any] = {"model": a.model, "status": a.status,
                                       "error": a.error, "ms": round(a.ms, 3)}
                if a.usage is not None:
                    prompt = int(getattr(a.usage, "prompt_tokens", 0) or 0)
                    completion = int(getattr(a.usage, "completion_tokens", 0) or 0)
                    seconds = getattr(a.usage, "engine_seconds", UNSET)
                    cost = self.recorder.costs(
                        a.model, a.kind, prompt, 0, completion,
                        a.ms / 1000 if seconds is UNSET else seconds).cost_usd
                    doc.update(prompt_tokens=prompt, completion_tokens=completion,
                               cost_usd=cost)
                    wasted += cost or 0.0
                out.append(doc)
            self._priced = _ENCODE(out).decode(), wasted
        return self._priced

    def _record(self, status: int, error: str | None) -> Record:
        prompt, cached, completion = self.usage
        costs = self.costs or Costs(None, None, None)
        latency = time.perf_counter() - self.t0
        attempts, wasted = self._attempts_priced()
        cost = costs.cost_usd if self.costs else (wasted if status >= 400 or wasted else None)
        return Record(
            id=self.id, ts=self.ts, requested_model=self.requested_model,
            endpoint=self.endpoint, status=status, user_id=self.user, key_id=self.key_id,
            route=self.route,
            provider=self.provider, stream=self.stream, prompt_tokens=prompt,
            cached_tokens=cached, completion_tokens=completion,
            tokens_source=self.tokens_source, latency_ms=latency * 1000,
            ttft_ms=self.ttft * 1000 if self.ttft is not None else None,
            cost_usd=cost,
            baseline_cost_usd=costs.baseline_cost_usd, energy_j=costs.energy_j,
            error=error, route_score=self.route_score, route_decision=self.route_decision,
            route_text=self.route_text, attempt=max(1, len(self.attempts)),
            attempts=attempts, parent_id=self.parent_id, tenant=self.tenant,
            policy=json.dumps(self.policy, sort_keys=True) if self.policy else None,
            request_sha256=self.request_sha256,
            response_sha256=self.answer.hexdigest() if self.answer is not None else None)

    def stream_record(self, prompt_chars: Callable[[], int] | None,
                      on_end: Callable[[Any, str], None]) -> StreamRecord:
        """The record of a stream, fed by whoever writes it out (see ``StreamRecord``)."""
        return StreamRecord(self, prompt_chars, on_end)

    async def commit(self, status: int, error: str | None = None) -> bool:
        """Commit the record (False: it already was, or the ledger is off); raises
        LedgerUnavailable for a success that cannot be kept."""
        if self.done or self.recorder.ledger is None:
            return False
        self.done = True
        rec = self._record(status, error)
        try:
            await self.recorder.ledger.record(rec)
        except LedgerUnavailable:
            if status < 400:
                raise  # the client must not get an answer we could not record
        return True

    def commit_nowait(self, status: int, error: str | None = None) -> None:
        if self.done or self.recorder.ledger is None:
            return
        self.done = True
        self.recorder.ledger.record_nowait(self._record(status, error))


def _pieces(chunk: Any) -> Iterator[str]:
    """The generated output in a chunk, piece by piece: its characters mark the first
    token and feed a token estimate; the audit log's answer digest is over them."""
    for c in chunk.choices:
        delta = getattr(c, "delta", None)
        if delta is None:
            yield getattr(c, "text", "") or ""
            continue
        yield delta.content or ""
        for call in delta.tool_calls or ():
            if call.function is not None:
                yield call.function.name or ""
                yield call.function.arguments or ""


def _answer_pieces(resp: Any) -> Iterator[str]:
    """A whole answer's output, in the order a stream of it would give it."""
    for c in getattr(resp, "choices", ()):
        msg = getattr(c, "message", None)
        if msg is None:
            yield getattr(c, "text", "") or ""
            continue
        yield msg.content or ""
        for call in msg.tool_calls or ():
            yield call.function.name
            yield call.function.arguments


class StreamRecord:
    """A stream's record, kept as its chunks go out. Hooks rather than a wrapping
    generator: the writer calls ``see`` per item and one of ``finish`` (before it writes
    ``[DONE]``: the row is committed first), ``fail`` (a mid-stream error: committed
    with its status) or ``abandon`` (the client left: a 499 row), so a chunk crosses no
    extra generator on its way out. ``on_end(usage, status)`` runs once, with status
    "200", "error:<status>" or "cancelled" (for the access log)."""

    __slots__ = ("t", "prompt_chars", "on_end", "usage", "chars", "ended", "add_cost")

    def __init__(self, t: Tracker, prompt_chars: Callable[[], int] | None,
                 on_end: Callable[[Any, str], None]) -> None:
        self.t = t
        self.prompt_chars = prompt_chars
        self.on_end = on_end
        self.usage: Any = None
        self.chars = 0  # generated characters, for an estimate without usage
        self.ended = False
        self.add_cost = 0.0  # what the client's usage.cost adds (a fan-out's members)

    def see(self, item: Any) -> None:
        """Per item: the first token's time; the usage chunk priced (``usage.cost`` set
        before it is sent)."""
        t = self.t
        for chunk in item if isinstance(item, list) else (item,):
            if not chunk.choices and chunk.usage:
                self.usage = chunk.usage
                if t.provider == "fanout":  # the members' usage: their own rows have it
                    self.usage.cost = self.add_cost
                    continue
                cost = t.set_usage(self.usage).cost_usd
                self.usage.cost = cost + self.add_cost if cost is not None else None
                continue
            n = 0
            for piece in _pieces(chunk):
                n += len(piece)
                if t.answer is not None and piece:
                    t.answer.update(piece.encode())
            self.chars += n
            if n and t.ttft is None:
                t.first_token()

    def _end(self, status: str) -> None:
        if not self.ended:
            self.ended = True
            self.on_end(self.usage, status)

    async def finish(self) -> None:
        """The upstream ended cleanly: commit (raises LedgerUnavailable in required mode
        when the row cannot be kept: the writer then sends an error, not [DONE])."""
        if self.usage is None and self.prompt_chars is not None:
            self.t.estimate_usage(self.prompt_chars(), self.chars)
        try:
            await self.t.commit(200)
        except GatewayError as e:
            self._end(f"error:{e.status}")
            raise
        self._end("200")

    async def fail(self, e: GatewayError) -> None:
        await self.t.commit(e.status, e.message)
        self._end(f"error:{e.status}")

    def abandon(self) -> None:
        self.t.commit_nowait(499, "client disconnected")
        self._end("cancelled")
