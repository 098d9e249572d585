"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/completions, /v1/embeddings,
/v1/models. Each handler: read + validate the body once, pick a provider, call it,
price and record the result, encode the answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hybridgate.api.body import decode, read_body
from hybridgate.api.sse import open_stream, sse_response
from hybridgate.api.validate import check_chat, check_completion, check_embedding
from hybridgate.core.errors import GatewayError, InvalidRequest, ModelNotFound, NotFound
from hybridgate.core.logs import access_log
from hybridgate.core.types import (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    Feedback,
    ModelCard,
    ModelList,
    encode,
)
from hybridgate.gate.auth import KeyTable, Principal
from hybridgate.ledger.recorder import Recorder, Tracker
from hybridgate.providers.base import Provider
from hybridgate.routing.resolve import AUTO, Models

_STARTED = int(time.time())
# Bodies above this size are routed (PII scan, router features) on a worker thread, so a
# large or adversarial prompt never holds the event loop; small ones stay inline (cheap).
_OFFLOOP_BYTES = 64 * 1024


def _json(body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, media_type="application/json", headers=headers)


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


def _cost_header(cost: float | None) -> str:
    return "unknown" if cost is None else f"{cost:.10f}".rstrip("0").rstrip(".") or "0"


class OpenAIRoutes:
    def __init__(self, models: Models, recorder: Recorder, keys: KeyTable,
                 max_body_bytes: int) -> None:
        self.models = models
        self.recorder = recorder
        self.keys = keys
        self.limit = max_body_bytes

    def _caller(self, request: Request) -> Principal:
        """Before the body is read: a request without a valid key costs us nothing."""
        h = request.headers
        return self.keys.authenticate(h.get("authorization"), h.get("x-api-key"))

    @staticmethod
    def _local_only(request: Request) -> bool:
        """``x-hybridgate-residency: local``: the request must not leave the premises."""
        return request.headers.get("x-hybridgate-residency", "").strip().lower() == "local"

    def _log(self, t: Tracker, status: Any, usage: Any = None) -> None:
        prompt = getattr(usage, "prompt_tokens", None) if usage else None
        completion = getattr(usage, "completion_tokens", None) if usage else None
        access_log.add("%s id=%s model=%s served=%s status=%s ms=%.1f prompt_tokens=%s "
                       "completion_tokens=%s", t.endpoint, t.id, t.requested_model, t.route,
                       status, (time.perf_counter() - t.t0) * 1000, prompt, completion)

    async def _serve(self, t: Tracker, provider: Provider, stream: bool, include_usage: bool,
                     call: Callable[[], Awaitable[Any]],
                     call_stream: Callable[[], AsyncIterator[Any]] | None,
                     extra_headers: dict[str, str] | None = None,
                     prompt_chars: Callable[[], int] | None = None) -> Response:
        """The shared tail of every generating endpoint: call, price, commit, encode."""
        t.served_by(provider.name, provider.kind)
        headers = {"x-hybridgate-model": provider.name, "x-request-id": t.id,
                   **(extra_headers or {})}
        if stream and call_stream is not None:
            first, rest = await open_stream(call_stream())
            return sse_response(first, rest, include_usage, t,
                                lambda usage, status: self._log(t, status, usage), headers,
                                prompt_chars)
        resp = await call()
        t.ttft = time.perf_counter() - t.t0
        if resp.usage:
            costs = t.set_usage(resp.usage)
            if hasattr(resp.usage, "cost"):
                resp.usage.cost = costs.cost_usd
            headers["x-hybridgate-cost"] = _cost_header(costs.cost_usd)
        elif prompt_chars is not None:  # an upstream that reports no usage
            costs = t.estimate_usage(prompt_chars(), _response_chars(resp))
            headers["x-hybridgate-cost"] = _cost_header(costs.cost_usd)
            headers["x-hybridgate-tokens"] = "estimated"
        await t.commit(200)
        self._log(t, 200, resp.usage)
        return _json(encode(resp), headers)

    async def _guarded(self, t: Tracker | None, work: Callable[[], Awaitable[Response]]
                       ) -> Response:
        try:
            return await work()
        except GatewayError as e:
            if t is not None:
                e.headers = {**e.headers, "x-request-id": t.id}
                await t.commit(e.status, e.message)
                self._log(t, e.status)
            raise

    async def chat_completions(self, request: Request) -> Response:
        who = self._caller(request)
        body = await read_body(request, self.limit)
        req = decode(body, ChatRequest)
        t = self.recorder.track("chat", req.model, bool(req.stream), req.user, who.key_id)

        async def work() -> Response:
            check_chat(req)
            self.recorder.check()
            sensitive = self._local_only(request)
            if len(body) > _OFFLOOP_BYTES:
                provider, decision, text = await asyncio.to_thread(
                    self.models.pick_chat, req, sensitive, who.allowed)
            else:
                provider, decision, text = self.models.pick_chat(req, sensitive, who.allowed)
            extra: dict[str, str] = {}
            if decision is not None:
                t.route_score = decision.score
                t.route_decision = f"{decision.member}:{decision.reason}"
                group = self.models.groups[req.model].group
                if group.keep_text and not decision.reason.startswith("residency"):
                    t.route_text = text[:4000]
                extra["x-hybridgate-route"] = decision.header()
            return await self._serve(t, provider, bool(req.stream), req.wants_usage_chunk,
                                     lambda: provider.chat(req),
                                     lambda: provider.chat_stream(req), extra,
                                     lambda: sum(len(m.text()) for m in req.messages))
        return await self._guarded(t, work)

    async def completions(self, request: Request) -> Response:
        who = self._caller(request)
        req = decode(await read_body(request, self.limit), CompletionRequest)
        t = self.recorder.track("completions", req.model, bool(req.stream), req.user,
                                who.key_id)

        async def work() -> Response:
            check_completion(req)
            self.recorder.check()
            provider = self.models.get(req.model, who.allowed, self._local_only(request))
            return await self._serve(t, provider, bool(req.stream), req.wants_usage_chunk,
                                     lambda: provider.complete(req),
                                     lambda: provider.complete_stream(req), None,
                                     lambda: len(str(req.prompt)))
        return await self._guarded(t, work)

    async def embeddings(self, request: Request) -> Response:
        who = self._caller(request)
        req = decode(await read_body(request, self.limit), EmbeddingRequest)
        t = self.recorder.track("embeddings", req.model, False, req.user, who.key_id)

        async def work() -> Response:
            check_embedding(req)
            self.recorder.check()
            provider = self.models.get(req.model, who.allowed, self._local_only(request))
            return await self._serve(t, provider, False, False, lambda: provider.embed(req),
                                     None)
        return await self._guarded(t, work)

    async def feedback(self, request: Request) -> Response:
        """POST /v1/feedback {request_id, score?, preferred_route?}: stored with the row."""
        who = self._caller(request)
        fb = decode(await read_body(request, self.limit), Feedback)
        if fb.score is None and fb.preferred_route is None:
            raise InvalidRequest("give a score, a preferred_route, or both", param="score")
        if self.recorder.ledger is None:
            raise InvalidRequest("the ledger is off, so feedback cannot be stored",
                                 code="ledger_disabled")
        if not await self.recorder.ledger.feedback(fb.request_id, fb.score,
                                                   fb.preferred_route, who.key_id):
            raise NotFound(f"no request with id '{fb.request_id}'", param="request_id")
        return _json(b'{"ok":true}')

    def _cards(self, who: Principal) -> dict[str, ModelCard]:
        """The models and route names this caller may use, by id."""
        providers, groups = self.models.visible(who.allowed)
        cards = {p.name: ModelCard(id=p.name, created=_STARTED, owned_by=p.owned_by)
                 for p in providers}
        cards.update((g, ModelCard(id=g, created=_STARTED, owned_by="hybridgate"))
                     for g in groups)
        default = self.models.default
        if AUTO not in cards and default is not None and default in cards:
            cards[AUTO] = ModelCard(id=AUTO, created=_STARTED, owned_by="hybridgate")
        return cards

    async def list_models(self, request: Request) -> Response:
        cards = self._cards(self._caller(request))
        return _json(encode(ModelList(data=list(cards.values()))))

    async def get_model(self, request: Request) -> Response:
        name = request.path_params["model"]
        card = self._cards(self._caller(request)).get(name)
        if card is None:
            raise ModelNotFound(f"the model '{name}' does not exist", param="model")
        return _json(encode(card))
