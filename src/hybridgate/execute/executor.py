"""Attempts against the providers behind the chosen models: retries, fallbacks, a
breaker per model, one deadline across everything.

Routing hands over an ordered list of model *names* (the chosen model, its `fallbacks`,
a route group's other member) and the `context_window_fallbacks`; this stage resolves
each through the provider registry and calls it until one answers:

- the same model is tried again (``num_retries``) when its failure is worth it: a
  connection error or timeout, or an upstream status in ``retry_on`` (429, 5xx...); the
  wait is the upstream's ``Retry-After`` or a jittered exponential backoff, and when the
  wait would pass the deadline we fall back at once instead of sleeping;
- a model still loading, failed to load, or with its breaker open is skipped at once;
- the client's own mistakes (400, 404, 413, 422) end the request: another model would
  reject them too; a prompt too long for the model moves to the context fallbacks, and
  an upstream's content-policy refusal to the content-policy fallbacks (never the same
  model again);
- a stream may be retried and fall back until it has produced output; what comes before
  (a role-only chunk) is held back, so a client never sees a failed attempt's bytes.
  After that, the model's ``idle_timeout`` bounds each wait for the next chunk.

The gateway's own upstream clients never retry on their own: this is the one loop.
Every attempt is noted (model, status, error, milliseconds) for the ledger row.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hybridgate.config.settings import Config
from hybridgate.core.errors import (
    GatewayError,
    InvalidRequest,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from hybridgate.core.types import UNSET, ChatRequest, CompletionRequest, EmbeddingRequest
from hybridgate.execute import checks
from hybridgate.execute.breaker import DENY, Breaker, SharedBreaker
from hybridgate.execute.cascade import Confidence, LowConfidence
from hybridgate.providers.base import Provider
from hybridgate.providers.registry import Registry

Request = ChatRequest | CompletionRequest | EmbeddingRequest
T = TypeVar("T")

_CONTEXT_MARKERS = ("context length", "context_length", "maximum context", "too long",
                    "context window")
# A model that cannot serve right now (not loaded, failed to load, its queue full): the
# next candidate is tried at once, with no retry and no mark against its breaker.
_UNAVAILABLE_NOW = frozenset({"model_not_ready", "model_overloaded"})


@dataclass(slots=True)
class Attempt:
    model: str
    status: int  # 200, or the upstream's error status (else the one we mapped it to)
    error: str | None
    ms: float
    # an answer that was not used (invalid, or unsure in a cascade) still cost its
    # tokens: its usage, and the provider's kind to price it with (the ledger does)
    usage: Any = None
    kind: str | None = None
    end: float = field(default_factory=time.perf_counter)  # when it ended (traces)


@dataclass(slots=True)
class Plan:
    """Which models to try, in order, and until when (``time.monotonic()``)."""

    candidates: tuple[str, ...]
    context: tuple[str, ...] = ()  # for a prompt too long for a candidate
    deadline: float = float("inf")
    attempts: list[Attempt] = field(default_factory=list)
    policy: tuple[str, ...] = ()  # for a request a candidate's content policy refused
    cascade: Confidence | None = None  # a cascade's rule for its weak member's answers
    confidence: float | None = None  # the served answer's, where the model reports one


def _is_context_error(e: GatewayError) -> bool:
    if e.code == "context_length_exceeded":
        return True
    return isinstance(e, InvalidRequest) and any(m in e.message.lower()
                                                 for m in _CONTEXT_MARKERS)


def _has_output(item: Any, hold: int = checks.NOTHING) -> bool:
    """A stream item that commits us to this attempt: content (unless ``hold`` is
    ``ALL``: the whole answer is held to be checked), a tool call (unless ``hold``: calls
    are held until the stream finishes them), a finish reason or the usage chunk (a
    role-only or empty chunk does not)."""
    for chunk in item if isinstance(item, list) else (item,):
        if not chunk.choices and getattr(chunk, "usage", None):
            return True
        for c in chunk.choices:
            if getattr(c, "finish_reason", None):
                return True
            if hold == checks.ALL:
                continue
            delta = getattr(c, "delta", None)
            if delta is None:
                if getattr(c, "text", None):
                    return True
            elif delta.content or (delta.tool_calls and not hold):
                return True
    return False


async def _idle_bounded(it: AsyncIterator[Any], idle: float, name: str
                        ) -> AsyncIterator[Any]:
    """``it``, failing with an UpstreamTimeout when a chunk takes longer than ``idle``
    seconds (the stream then ends with an error event, not a clean end)."""
    try:
        while True:
            try:
                async with asyncio.timeout(idle):
                    item = await anext(it)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise UpstreamTimeout(f"model '{name}' stalled: no chunk within its "
                                      f"idle_timeout of {idle} s") from None
            yield item
    finally:
        await it.aclose()  # type: ignore[attr-defined]


def _told(on_breaker: Callable[[str, bool], None] | None, model: str
          ) -> Callable[[bool], None] | None:
    return None if on_breaker is None else functools.partial(on_breaker, model)


class Executor:
    def __init__(self, registry: Registry, config: Config,
                 on_breaker: Callable[[str, bool], None] | None = None) -> None:
        """``on_breaker(model, open)``: a breaker opened or closed (the metrics)."""
        self.registry = registry
        self.models = {m.name: m for m in config.models}
        self.redis: Any = None
        self.breakers: dict[str, Breaker | SharedBreaker]
        if config.redis is not None:
            from redis.asyncio import BlockingConnectionPool, Redis  # only with `redis:`

            # short timeouts: a Redis that hangs must not hold requests (the breaker
            # falls back to this process's own); a pool that waits its turn rather than
            # failing past 100 connections at once
            self.redis = Redis(connection_pool=BlockingConnectionPool.from_url(
                config.redis, max_connections=64, timeout=0.5, socket_timeout=0.5,
                socket_connect_timeout=0.5))
            self.breakers = {m.name: SharedBreaker(config.breaker, m.name, self.redis,
                                                   on_change=_told(on_breaker, m.name))
                             for m in config.models}
        else:
            self.breakers = {m.name: Breaker(config.breaker, _told(on_breaker, m.name))
                             for m in config.models}
        self.cascades = {g.name: Confidence(g.weak, g.cascade_share, g.cascade_threshold)
                         for g in config.routes if g.cascade}
        self.backoff = config.server.retry_backoff
        self.backoff_max = config.server.retry_backoff_max

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    # ------------------------------------------------------------------ one attempt

    @staticmethod
    async def _call_once(provider: Provider, req: Request) -> Any:
        if isinstance(req, ChatRequest):
            return await provider.chat(req)
        if isinstance(req, CompletionRequest):
            return await provider.complete(req)
        return await provider.embed(req)

    async def _open_once(self, provider: Provider, req: ChatRequest | CompletionRequest,
                         remaining: float) -> tuple[list[Any], AsyncIterator[Any]]:
        """Start a stream and read it until it has output: (what was read, the rest).
        The model's ``ttft_timeout`` fails this attempt (an UpstreamTimeout, so the loop
        retries or falls back); the deadline ends the request (a TimeoutError)."""
        ttft = self.models[provider.name].ttft_timeout
        it = (provider.chat_stream(req) if isinstance(req, ChatRequest)
              else provider.complete_stream(req))
        held: list[Any] = []
        t0 = time.monotonic()
        slow = ttft is not None and ttft < remaining
        hold = (checks.hold(req) if isinstance(req, ChatRequest)
                and self.models[provider.name].output_checks else checks.NOTHING)
        try:
            async with asyncio.timeout(ttft if slow else remaining) as bound:
                async for item in it:
                    held.append(item)
                    if _has_output(item, hold):
                        break
                    if slow and _has_output(item):  # output, held: the first token came
                        slow = False
                        bound.reschedule(asyncio.get_running_loop().time() + remaining
                                         - (time.monotonic() - t0))
            if hold:
                checks.check_stream(req, held)  # type: ignore[arg-type]
        except TimeoutError:
            await it.aclose()  # type: ignore[attr-defined]
            if slow:
                raise UpstreamTimeout(f"model '{provider.name}' sent no output within its "
                                      f"ttft_timeout of {ttft} s") from None
            raise
        except BaseException:
            await it.aclose()  # type: ignore[attr-defined]
            raise
        return held, it

    # ------------------------------------------------------------------ the loop

    async def call(self, plan: Plan, req: Request) -> tuple[Provider, Any]:
        """A whole, valid answer from the first candidate that gives one (a chat answer
        goes through the output checks)."""
        async def once(p: Provider, r: Any, remaining: float) -> Any:
            async with asyncio.timeout(remaining):  # (wait_for would cost a task)
                resp = await self._call_once(p, r)
            if isinstance(req, ChatRequest):
                if self.models[p.name].output_checks:
                    try:
                        checks.check_chat(req, resp)
                    except checks.InvalidOutput as e:
                        e.usage = getattr(resp, "usage", None)
                        raise
                confidence, resp.confidence = resp.confidence, UNSET
                plan.confidence = None if confidence is UNSET else confidence
                rule = plan.cascade
                if rule is not None and p.name == rule.weak and confidence is not UNSET:
                    low, limit = rule.escalate(confidence)
                    if low:
                        raise LowConfidence(f"low confidence: mean token logprob "
                                            f"{confidence:.3f} < {limit:.3f}", resp)
            return resp
        return await self._attempts(plan, req, once)

    async def stream(self, plan: Plan, req: ChatRequest | CompletionRequest
                     ) -> tuple[Provider, tuple[list[Any], AsyncIterator[Any]]]:
        """A stream from the first candidate that starts producing output: the items
        read so far (held back until there was output) and the rest of the stream.
        Tool calls are held until the stream has finished them, and checked."""
        provider, (held, rest) = await self._attempts(plan, req, self._open_once)
        idle = self.models[provider.name].idle_timeout
        if idle is not None:
            rest = _idle_bounded(rest, idle, provider.name)
        return provider, (held, rest)

    def _wait(self, n: int, e: GatewayError) -> float:
        if e.retry_after is not None:
            return e.retry_after
        base = min(self.backoff_max, self.backoff * 2 ** n)
        return base * (0.5 + random.random() / 2)  # jitter: no thundering herd

    async def _attempts(self, plan: Plan, req: Any,
                        once: Callable[[Provider, Any, float], Awaitable[T]]
                        ) -> tuple[Provider, T]:
        """``once(provider, request, seconds left)`` over the candidates until one
        succeeds. An invalid answer (``checks.InvalidOutput``) is asked again once on the
        same model, the request carrying the answer and the validation error."""
        queue = list(plan.candidates)
        tried: set[str] = set()
        last: GatewayError | None = None
        unsure: tuple[Provider, Any] | None = None  # a cascade's weak answer, escalated
        while queue:
            name = queue.pop(0)
            if name in tried:
                continue
            tried.add(name)
            cfg, breaker = self.models[name], self.breakers[name]
            n, current = 0, req  # retries so far; the request as this model gets it
            while True:
                remaining = plan.deadline - time.monotonic()
                if remaining <= 0:
                    raise self._deadline_error(plan, last)
                ticket = await breaker.allow()
                if ticket == DENY:
                    last = UpstreamUnavailable(f"model '{name}' is failing; its circuit "
                                               "breaker is open")
                    plan.attempts.append(Attempt(name, 503, "circuit breaker open", 0.0))
                    break
                t0 = time.perf_counter()
                try:
                    provider = self.registry.get(name)
                    result = await once(provider, current, remaining)
                except TimeoutError:  # the deadline passed during the attempt
                    await breaker.record(False, ticket)
                    plan.attempts.append(Attempt(name, 504, "deadline passed",
                                                 (time.perf_counter() - t0) * 1000))
                    raise self._deadline_error(plan, last) from None
                except GatewayError as e:
                    plan.attempts.append(Attempt(name, e.upstream_status or e.status,
                                                 e.message,
                                                 (time.perf_counter() - t0) * 1000,
                                                 e.usage, self.registry.providers[name].kind))
                    if _is_context_error(e):
                        last = e
                        queue = [c for c in plan.context if c not in tried] + queue
                        break
                    if e.code == "content_filter":  # only its own fallbacks, if any
                        queue = [c for c in plan.policy if c not in tried]
                        if not queue:
                            raise  # the client sees the refusal
                        last = e
                        break
                    if isinstance(e, InvalidRequest):
                        raise  # the client's own mistake: no other model will take it
                    last = e
                    if isinstance(e, LowConfidence):
                        await breaker.record(True, ticket)
                        unsure = provider, e.answer  # if no one else answers, this does
                        break
                    if isinstance(e, checks.InvalidOutput):
                        # the model is up; its answer was not usable
                        await breaker.record(True, ticket)
                        if current is not req:
                            break  # asked twice: the fallbacks' turn
                        current = checks.with_feedback(req, e)
                        continue
                    if e.code in _UNAVAILABLE_NOW:
                        break
                    await breaker.record(False, ticket)
                    if n >= cfg.num_retries or not self._retryable(e, cfg.retry_on):
                        break
                    wait = self._wait(n, e)
                    n += 1
                    if time.monotonic() + wait >= plan.deadline:
                        break  # waiting would pass the deadline: fall back now
                    await asyncio.sleep(wait)
                else:
                    await breaker.record(True, ticket)
                    plan.attempts.append(Attempt(name, 200, None,
                                                 (time.perf_counter() - t0) * 1000))
                    return provider, result
        if unsure is not None:
            return unsure  # type: ignore[return-value]
        assert last is not None
        raise last

    @staticmethod
    def _retryable(e: GatewayError, retry_on: list[int]) -> bool:
        if e.upstream_status is not None:
            return e.upstream_status in retry_on
        return e.status >= 500  # connection errors, timeouts, a crashed local engine

    @staticmethod
    def _deadline_error(plan: Plan, last: GatewayError | None) -> UpstreamTimeout:
        why = f"; last error: {last.message}" if last is not None else ""
        return UpstreamTimeout(f"the request's deadline passed after "
                               f"{len(plan.attempts)} attempt(s){why}",
                               code="deadline_exceeded")
