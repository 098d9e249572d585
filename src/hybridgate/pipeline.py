"""One request through the gateway, stage by stage.

The API layer turns a wire format into a ``Call`` (core types) and back; everything in
between happens here, in this order:

    1. gate      ``admit``: key -> principal (tenant, allowlist, limits), before the
                 body is read
    2. record    a Tracker opens the request's ledger row (every request gets one)
    3. check     the dialect's own validation of the decoded request
    4. ledger    up?  (required mode: refuse rather than serve unrecorded)
    4b. guard    personal data, by the tenant's / route group's ``pii:`` mode: counted,
                 redacted or pseudonymized (restored in the answer), blocked, or kept
                 local (``guard/scrub``)
    4c. cache    an opted-in, cacheable request seen before: answered from the exact
                 cache, or (``cache: semantic``) its question asked before in other
                 words, verified, from the semantic tier; recorded at no cost
                 (``cache/exact``, ``cache/semantic``)
    4d. fan-out  a fan-out group: its members, then its synthesis, each a run of this
                 pipeline of its own (``execute/fanout``)
    5. route     guard + routing: residency, personal data, allowlist, the learned router
                 -> the *names* of the models that may serve it, in order: the choice,
                 its fallbacks (``routing.resolve``)
    5b. limits   the tenant's and key's budgets and rate limits: the request's worst
                 case is reserved in Redis across every candidate it may reach, or a
                 429 (``gate/limits``); settled to the real cost once it ends
    6. execute   attempts until one answers: retries, fallbacks, breakers, the request's
                 deadline (``execute``)
    7. record    usage priced, every attempt noted, the row committed before the answer
                 ends (streams: the writer feeds a StreamRecord and commits it before
                 ``[DONE]``), one access-log line

Each stage takes and returns core types and may end the request with a GatewayError,
which is recorded (status and message) and re-raised for the API layer to encode.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from hybridgate.cache.exact import ExactCache
from hybridgate.cache.semantic import Probe, SemanticCache
from hybridgate.config.settings import Config, EmbeddingModel
from hybridgate.core.assemble import Assembler, as_chunks
from hybridgate.core.errors import GatewayError, InvalidRequest
from hybridgate.core.logs import access_log
from hybridgate.core.types import ChatRequest, ChatResponse, CompletionRequest, EmbeddingRequest
from hybridgate.execute import Executor, Plan
from hybridgate.execute.fanout import ask_members, raw_response, synthesis_request
from hybridgate.gate.auth import KeyTable, Principal
from hybridgate.gate.limits import Limiter
from hybridgate.guard import names as names_model
from hybridgate.guard.pii import scan_text
from hybridgate.guard.scrub import Pseudonyms, count, stricter, texts
from hybridgate.ledger.recorder import Costs, Recorder, StreamRecord, Tracker, ledger_url
from hybridgate.ledger.stored import Keeper
from hybridgate.observe.metrics import Metrics
from hybridgate.observe.tracing import Tracing
from hybridgate.providers.embeddings import EmbeddingProvider
from hybridgate.providers.registry import Registry
from hybridgate.providers.static_embeddings import StaticEmbedder
from hybridgate.routing.resolve import Choice, Routes

# Bodies above this size are routed (PII scan, router features) on a worker thread, so a
# large or adversarial prompt never holds the event loop; small ones stay inline (cheap).
OFFLOOP_BYTES = 64 * 1024
DEFAULT_OUTPUT = 4096  # a request's output limit, for its budget hold, when none is known

Request = ChatRequest | CompletionRequest | EmbeddingRequest


@dataclass(slots=True)
class Call:
    """One decoded request, as every stage sees it."""

    endpoint: str  # the API asked (the ledger says so): "chat", "messages", "responses", ...
    request: Request
    principal: Principal
    local_only: bool = False  # x-hybridgate-residency: local
    size: int = 0  # body bytes
    check: Callable[[Any], None] | None = None  # the dialect's validation
    deadline: float | None = None  # seconds, from the client (x-hybridgate-deadline)
    traceparent: str | None = None  # the client's W3C trace context (traces join it)
    digest: str | None = None  # SHA-256 of the request body (the audit log)
    cache: str | None = None  # the client's say: "on", "no-cache", "no-store" (headers)
    parent: str | None = None  # a fan-out's member or synthesis call: the client's row
    fanout_raw: bool = False  # x-hybridgate-fanout: raw


@dataclass(slots=True)
class Outcome:
    """What the API layer encodes: an answer, or a stream whose first item is pulled."""

    request_id: str
    model: str  # the model that served it
    route: str | None = None  # the route-group decision, for x-hybridgate-route
    response: Any = None  # non-streamed
    held: list[Any] | None = None  # streamed: the items read before answering...
    rest: AsyncIterator[Any] | None = None  # ...the rest of the stream...
    record: StreamRecord | None = None  # ...and its record, fed by the writer
    cost: float | None = None  # non-streamed: USD (None: unknown price)
    priced: bool = False  # non-streamed: a cost was computed
    estimated: bool = False  # the tokens are estimated (the upstream sent no usage)
    attempts: int = 1
    confidence: float | None = None  # a local model's mean token log-probability
    limits: dict[str, str] | None = None  # x-ratelimit-* headers
    cache: str | None = None  # x-hybridgate-cache: hit | semantic-hit | miss (where
    # caching applies)
    headers: dict[str, str] | None = None  # more of the gateway's headers (a fan-out's)


async def _nothing() -> AsyncIterator[Any]:
    """The rest of a stream that was whole from the start (a cached answer)."""
    return
    yield


def _prompt_chars(req: Request) -> int:
    if isinstance(req, ChatRequest):
        return sum(len(m.text()) for m in req.messages)
    if isinstance(req, CompletionRequest):
        return len(str(req.prompt))
    return 0


def _response_chars(resp: Any) -> int:
    n = 0
    for c in resp.choices:
        msg = getattr(c, "message", None)
        if msg is not None:
            n += len(msg.content or "")
            for call in msg.tool_calls or ():
                n += len(call.function.name) + len(call.function.arguments)
        else:
            n += len(getattr(c, "text", "") or "")
    return n


class Pipeline:
    def __init__(self, config: Config) -> None:
        self.keys = KeyTable(config)
        self.registry = Registry(config)  # providers, built once
        self.routes = Routes(config, self.registry.local_names)  # names only
        self.metrics = Metrics(config.server.metrics)
        self.registry.observe(self.metrics)  # local queue depth and speed
        self.tracing = Tracing(config.tracing)
        self.execute = Executor(self.registry, config, self.metrics.breaker_state)
        self.recorder = Recorder(config)
        self.kept = Keeper(config, self.recorder.ledger)  # what clients ask to store
        self.limits = Limiter(config, ledger_url(config))
        self._background: set[asyncio.Task[None]] = set()  # settles, cache stores
        self.cache = ExactCache(config)
        self.semantic = SemanticCache(
            config, self.cache, EmbeddingProvider(EmbeddingModel(
                name="cache-embeddings", model=config.cache.embedding_model)),
            quick=StaticEmbedder(config.cache.embedding_model))
        self.fanouts = {g.name: g for g in config.routes if g.mode == "fanout"}
        self.deadline = config.server.deadline
        self.model_deadline = {m.name: m.deadline for m in config.models}
        self.default_out = {m.name: m.default_max_tokens for m in config.models
                            if hasattr(m, "default_max_tokens")}
        self.pii_modes = {**{f"tenant:{x.name}": x.pii for x in config.tenants if x.pii},
                          **{f"group:{g.name}": g.pii for g in config.routes if g.pii}}
        self.pii_names = config.pii_names and any(
            m != "off" for m in self.pii_modes.values())
        self.names_reader = config.pii_names_model
        self.names = names_model.Reader()

    async def start(self) -> None:
        if self.pii_names:
            names_model.use(self.names_reader)
            await asyncio.to_thread(names_model.load)  # not on the first request
        await self.recorder.start()
        await self.registry.start()
        if self.semantic.enabled:
            await self.semantic.embedder.start()
            await self.semantic.quick.start()

    async def close(self) -> None:
        await self.execute.close()
        await self.limits.close()
        await self.cache.close()
        await self.semantic.embedder.close()
        await self.semantic.quick.close()
        await self.registry.close()
        await self.recorder.close()
        self.tracing.close()

    # ------------------------------------------------------------------ 1. gate

    def admit(self, authorization: str | None, api_key: str | None) -> Principal:
        """Before the body is read: a request without a valid key costs us nothing."""
        return self.keys.authenticate(authorization, api_key)

    # ------------------------------------------------------------------ 2-7

    async def run(self, call: Call) -> Outcome:
        req = call.request
        stream = bool(getattr(req, "stream", False))
        t = self.recorder.track(call.endpoint, req.model, stream, req.user,
                                call.principal.key_id)
        t.parent_id = call.parent
        if self.recorder.audit:
            t.audited(call.principal.tenant, call.digest, call.local_only)
        try:
            if call.check is not None:
                call.check(req)
            self.recorder.check()
            mode = self._pii_mode(call)
            names = await self._guard(call, t, mode) if mode else None
            req = call.request
            ckey, probe = None, None
            if self.cache.enabled and self.cache.applies(call.principal.tenant, req,
                                                          call.cache, mode):
                ckey = self.cache.key(call.principal.tenant, req, mode)
                hit = await self.cache.get(ckey) if call.cache != "no-cache" else None
                if hit is not None:
                    return await self._from_cache(t, call, hit)
                probe = self.semantic.probe(call.principal.tenant, req, mode)
                if probe is not None and call.cache != "no-cache":
                    hit = await self.semantic.lookup(probe)
                    if hit is not None:
                        return await self._from_cache(t, call, hit, "semantic-hit")
                    if probe.skipped:
                        self.metrics.cache_lookup("semantic-skipped")
            if req.model in self.fanouts and isinstance(req, ChatRequest):
                return await self._fan_out(call, t, names)
            choice = await self._route(call)
            route = self._note_route(t, choice)
            plan = Plan(choice.candidates, choice.context, self._deadline(call, choice),
                        policy=choice.policy, cascade=self._cascade(choice))
            t.attempts = plan.attempts
            if self.limits.enabled:
                t.grant = await self._reserve(t, call, plan)
                if t.policy is not None and t.grant is not None:
                    t.policy["budget_scopes"] = [s.name for s in t.grant.scopes]
            out = Outcome(t.id, choice.model, route, cache="miss" if ckey else None)
            if ckey:
                self.metrics.cache_lookup("miss")
            if t.grant is not None:
                out.limits = t.grant.headers
            if stream:
                assert isinstance(req, ChatRequest | CompletionRequest)
                # execute read the stream up to its first output before we answer, so a
                # failure before any output is a real HTTP error, not a 200 with an
                # error event; the writer feeds the record as the chunks go out
                provider, (out.held, out.rest) = await self.execute.stream(plan, req)
                self._served(t, out, provider, plan)
                if names is not None:
                    out.held, out.rest = names.stream(out.held, out.rest)
                if ckey is not None:
                    out.rest = self._caching(ckey, probe, out.held, out.rest)
                out.record = t.stream_record(lambda: _prompt_chars(req),
                                             lambda usage, status: self._ended(t, status, usage,
                                                                               call=call))
                return out
            provider, out.response = await self.execute.call(plan, req)
            self._served(t, out, provider, plan)
            if names is not None:
                names.answer(out.response)
            if ckey is not None:  # without an upstream's own body: any dialect may hit it
                self._spawn(self._store(ckey, probe, msgspec.json.encode(
                    msgspec.structs.replace(out.response, native=msgspec.UNSET))))
            if self.recorder.audit:
                t.answered(out.response)
            self._record_answer(t, out, req)
            await t.commit(200)
            self._ended(t, "200", getattr(out.response, "usage", None), call=call,
                        resp=out.response)
            return out
        except GatewayError as e:
            e.headers = {**e.headers, "x-request-id": t.id}
            if t.route is None and t.attempts:  # the row names the model that failed last
                last = self.registry.providers[t.attempts[-1].model]
                t.served_by(last.name, last.kind)
            if t.attempts:
                e.headers["x-hybridgate-attempts"] = str(len(t.attempts))
            if t.grant is not None:
                e.headers = {**t.grant.headers, **e.headers}
            if await t.commit(e.status, e.message) or self.recorder.ledger is None:
                self._ended(t, f"error:{e.status}", error=e.code or e.type, call=call)
            raise

    # ------------------------------------------------------------------ 4b. guard

    def _pii_mode(self, call: Call) -> str | None:
        """The stricter of the tenant's and the route group's ``pii:`` modes."""
        if not self.pii_modes or not isinstance(call.request, ChatRequest):
            return None
        mode = stricter(self.pii_modes.get(f"tenant:{call.principal.tenant}"),
                        self.pii_modes.get(f"group:{call.request.model}"))
        return None if mode == "off" else mode

    async def _guard(self, call: Call, t: Tracker, mode: str) -> Pseudonyms | None:
        """A chat request under its ``pii:`` mode (large bodies scanned on a worker
        thread)."""
        req = call.request
        if self.pii_names:  # the model's work, batched with concurrent requests'
            await self.names.prefetch(scan_text(x) for x in texts(req))
        big = call.size > OFFLOOP_BYTES
        found = None
        if mode in ("redact", "pseudonymize"):
            found = Pseudonyms(mode, self.pii_names)
            call.request = await asyncio.to_thread(found.request, req) if big \
                else found.request(req)
            counts = found.counts
        else:
            counts = await asyncio.to_thread(count, req, self.pii_names) if big \
                else count(req, self.pii_names)
        if t.policy is not None:
            t.policy["pii_mode"] = mode
            t.policy["pii"] = dict(sorted(counts.items()))
        if counts and mode == "block":
            raise InvalidRequest("the request contains personal data ("
                                 f"{', '.join(sorted(counts))}), which this "
                                 "tenant's policy does not let leave", code="pii_blocked")
        if counts and mode == "local":
            call.local_only = True  # served as if tagged x-hybridgate-residency: local
        return found if found is not None and found.counts else None

    # ------------------------------------------------------------------ 4c. cache

    async def _from_cache(self, t: Tracker, call: Call, hit: ChatResponse,
                          how: str = "hit") -> Outcome:
        """A cached answer: recorded like any other, at no cost (the baseline it saved
        stays in the row), streamed as chunks when the request streams."""
        req = call.request
        t.served_by(hit.model, "cache")
        if t.policy is not None:
            t.policy["cache"] = how
        out = Outcome(t.id, hit.model, cache=how)
        self.metrics.cache_lookup(how)
        if getattr(req, "stream", False):
            out.held, out.rest = as_chunks(hit), _nothing()
            out.record = t.stream_record(lambda: _prompt_chars(req),
                                         lambda usage, status: self._ended(t, status, usage,
                                                                           call=call))
            return out
        out.response = hit
        self._record_answer(t, out, req)
        await t.commit(200)
        self._ended(t, "200", hit.usage or None, call=call, resp=hit)
        return out

    async def _store(self, key: str, probe: Probe | None, raw: bytes) -> None:
        """An answer into the exact tier and, once it is there, its question into the
        semantic index (a hit must find the answer it points to)."""
        await self.cache.put(key, raw)
        if probe is not None:
            await self.semantic.remember(probe, key)

    async def _caching(self, key: str, probe: Probe | None, held: list[Any],
                       rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """A stream passed on as it comes, and stored once it has ended whole."""
        whole = Assembler()
        for item in held:
            whole.see(item)
        try:
            async for item in rest:
                whole.see(item)
                yield item
        finally:
            close = getattr(rest, "aclose", None)
            if close is not None:
                await close()
        self._spawn(self._store(key, probe, msgspec.json.encode(whole.response())))

    # ------------------------------------------------------------------ 4d. fan-out

    async def _fan_out(self, call: Call, t: Tracker, names: Pseudonyms | None) -> Outcome:
        """A fan-out group's answer (``execute/fanout``): its members and its synthesis
        run as requests of their own, rows pointing at this one, which costs nothing
        itself (the parts carry the cost; the client's usage.cost is their sum)."""
        group = self.fanouts[call.request.model]
        for m in (*group.members, group.synthesizer):  # every part must be allowed
            self.routes.pinned(m or "", call.principal.allowed, call.local_only)
        t.served_by(group.name, "fanout")
        t.costs = Costs(0.0, None, None)

        def part(req: ChatRequest) -> Any:
            return self.run(dataclasses.replace(call, request=req, endpoint="fanout",
                                                parent=t.id, fanout_raw=False))

        seconds = min(x for x in (self.deadline, call.deadline) if x is not None)
        answers = await ask_members(group, call.request, seconds, part)
        headers = {"x-hybridgate-fanout-members": ",".join(m for m, _ in answers.said)}
        if answers.left_out:
            headers["x-hybridgate-fanout-left-out"] = ",".join(answers.left_out)
        if call.fanout_raw:
            out = Outcome(t.id, group.name, headers=headers, priced=True, cost=answers.cost)
            resp = raw_response(group, answers)
            if names is not None:
                names.answer(resp)
            if getattr(call.request, "stream", False):
                out.held, out.rest = as_chunks(resp), _nothing()
                out.record = t.stream_record(None, lambda usage, status: self._ended(
                    t, status, usage, call=call))
                out.record.add_cost = answers.cost
                return out
            out.response = resp
        else:
            out = await part(synthesis_request(call.request, group, answers.said))
            out.request_id, out.headers = t.id, headers
            out.route = f"fanout; synthesizer={group.synthesizer}"
            if out.record is not None:
                out.record.add_cost = answers.cost
                if names is not None:
                    out.held, out.rest = names.stream(out.held, out.rest)
            else:
                usage = out.response.usage
                if usage and usage.cost is not None:
                    usage.cost += answers.cost
                out.cost = (out.cost or 0.0) + answers.cost
                if names is not None:
                    names.answer(out.response)
        await t.commit(200)
        self._ended(t, "200", call=call)
        return out

    # ------------------------------------------------------------------ 5b. limits

    async def _reserve(self, t: Tracker, call: Call, plan: Plan) -> Any:
        """Hold the request's worst case: its prompt (about four characters a token)
        and its output limit (the model's default; 4,096 where a model has none) at the
        dearest candidate it may reach, until its deadline."""
        req = call.request
        prompt = -(-_prompt_chars(req) // 4) if not isinstance(req, EmbeddingRequest) \
            else -(-len(str(req.input)) // 4)
        limit = getattr(req, "token_limit", None) or getattr(req, "max_tokens", None)
        worst, tokens = 0.0, prompt
        for name in (*plan.candidates, *plan.context, *plan.policy):
            p = self.registry.providers[name]
            out = 0 if isinstance(req, EmbeddingRequest) else \
                limit or self.default_out.get(name, DEFAULT_OUTPUT)
            tokens = max(tokens, prompt + out)
            worst = max(worst, self.recorder.worst_cost(name, p.kind, prompt, out))
        return await self.limits.reserve(t.id, call.principal, tokens, worst,
                                          plan.deadline - time.monotonic() + 60)

    def _settle(self, t: Tracker) -> None:
        """Release the hold and count the real cost (a task: the answer is not kept
        waiting on Redis)."""
        cost = t.costs.cost_usd if t.costs is not None else 0.0
        self._spawn(self.limits.settle(t.grant, cost, t.usage[0] + t.usage[2]))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ 5. route

    async def _route(self, call: Call) -> Choice:
        req, who = call.request, call.principal
        if not isinstance(req, ChatRequest):  # only chat is routed
            return self.routes.plan(self.routes.pinned(req.model, who.allowed,
                                                       call.local_only),
                                    who.allowed, call.local_only)
        if call.size > OFFLOOP_BYTES:
            return await asyncio.to_thread(self.routes.choose, req, call.local_only,
                                           who.allowed)
        return self.routes.choose(req, call.local_only, who.allowed)

    def _cascade(self, choice: Choice) -> Any:
        """A cascade's escalation rule, when the router left the request to one."""
        if choice.group is None or choice.decision is None or \
                choice.decision.reason != "cascade":
            return None
        return self.execute.cascades.get(choice.group.name)

    def _deadline(self, call: Call, choice: Choice) -> float:
        """When the request must have its answer (started, for a stream): the server's
        deadline, shortened by the chosen model's and the client's."""
        limits = [self.deadline, self.model_deadline.get(choice.model), call.deadline]
        return time.monotonic() + min(x for x in limits if x is not None)

    @staticmethod
    def _note_route(t: Tracker, choice: Choice) -> str | None:
        d = choice.decision
        if d is None or choice.group is None:
            return None
        t.route_score = d.score
        t.route_decision = f"{d.member}:{d.reason}"
        if choice.group.keep_text and not d.reason.startswith("residency"):
            t.route_text = choice.text[:4000]
        return d.header()

    # ------------------------------------------------------------------ 7. record

    @staticmethod
    def _served(t: Tracker, out: Outcome, provider: Any, plan: Plan) -> None:
        """Who answered, after how many attempts; a route group's header says when a
        fallback answered instead of the member the router chose."""
        t.served_by(provider.name, provider.kind)
        if out.route is not None and provider.name != out.model:
            how = "escalated" if plan.cascade is not None else "fallback"
            out.route += f"; {how}={provider.name}"
        out.model, out.attempts = provider.name, len(plan.attempts)
        out.confidence = plan.confidence

    @staticmethod
    def _record_answer(t: Tracker, out: Outcome, req: Request) -> None:
        t.ttft = time.perf_counter() - t.t0
        usage = getattr(out.response, "usage", None)
        if usage:
            costs = t.set_usage(usage)  # with what unused answers cost (see attempts)
            if hasattr(usage, "cost"):  # chat and completions (embeddings' usage has none)
                usage.cost = costs.cost_usd
            out.cost, out.priced = costs.cost_usd, True
        elif not isinstance(req, EmbeddingRequest):  # an upstream that reports no usage
            costs = t.estimate_usage(_prompt_chars(req), _response_chars(out.response))
            out.cost, out.priced, out.estimated = costs.cost_usd, True, True

    def _ended(self, t: Tracker, status: str, usage: Any = None, error: str | None = None,
               call: Call | None = None, resp: Any = None) -> None:
        """Once per request, when it is over: the access-log line, the metrics and the
        trace. ``status``: "200", "error:<status>" or "cancelled" (the client left)."""
        end = time.perf_counter()
        seconds = end - t.t0
        if t.grant is not None:
            self._settle(t)
        prompt = getattr(usage, "prompt_tokens", None) if usage else None
        completion = getattr(usage, "completion_tokens", None) if usage else None
        access_log.add("%s id=%s model=%s served=%s status=%s ms=%.1f prompt_tokens=%s "
                       "completion_tokens=%s", t.endpoint, t.id, t.requested_model, t.route,
                       status, seconds * 1000, prompt, completion)
        if not (self.metrics.enabled or self.tracing.enabled):
            return
        if status == "200":
            code = 200
        elif status == "cancelled":
            code, error = 499, "cancelled"
        else:
            code = int(status.partition(":")[2])
            error = error or str(code)
        if self.metrics.enabled:
            self.metrics.request(t, code, seconds, error)
        if self.tracing.enabled:
            self.tracing.request(t, code, end, error, call and call.request, resp,
                                 call and call.traceparent)
