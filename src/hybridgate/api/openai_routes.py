"""OpenAI's dialect: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models,
/v1/feedback. Each handler turns the wire format into a ``Call`` (read the body once,
decode into core types), hands it to the pipeline, and encodes the ``Outcome`` back:
JSON, or SSE for streams, with the gateway's headers."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hybridgate.api.body import decode, read_body
from hybridgate.api.sse import sse_response
from hybridgate.api.stored_routes import StoredCompletions, stored_id
from hybridgate.api.validate import check_chat, check_completion, check_embedding
from hybridgate.core.errors import InvalidRequest, ModelNotFound, NotFound
from hybridgate.core.types import (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    Feedback,
    ModelCard,
    ModelList,
    encode,
)
from hybridgate.gate.auth import Principal
from hybridgate.pipeline import Call, Outcome, Pipeline
from hybridgate.routing.resolve import AUTO


def _json(body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, media_type="application/json", headers=headers)


def _cost_header(cost: float | None) -> str:
    return "unknown" if cost is None else f"{cost:.10f}".rstrip("0").rstrip(".") or "0"


def response_headers(out: Outcome) -> dict[str, str]:
    """The gateway's headers on an answer, whichever dialect asked."""
    h = {"x-hybridgate-model": out.model, "x-request-id": out.request_id,
         "x-hybridgate-attempts": str(out.attempts)}
    if out.route is not None:
        h["x-hybridgate-route"] = out.route
    if out.confidence is not None:
        h["x-hybridgate-confidence"] = f"{out.confidence:.4f}"
    if out.priced:
        h["x-hybridgate-cost"] = _cost_header(out.cost)
    if out.estimated:
        h["x-hybridgate-tokens"] = "estimated"
    if out.limits:
        h.update(out.limits)
    if out.cache is not None:
        h["x-hybridgate-cache"] = out.cache
    if out.headers:
        h.update(out.headers)
    return h


def _cache_wish(request: Request) -> str | None:
    """``Cache-Control: no-store`` / ``no-cache``, or ``x-hybridgate-cache: on``."""
    cc = request.headers.get("cache-control", "").lower()
    if "no-store" in cc:
        return "no-store"
    if "no-cache" in cc:
        return "no-cache"
    return "on" if request.headers.get("x-hybridgate-cache", "").strip().lower() == "on" \
        else None


class OpenAIRoutes:
    def __init__(self, pipeline: Pipeline, max_body_bytes: int) -> None:
        self.pipeline = pipeline
        self.limit = max_body_bytes
        self.started = int(time.time())  # the models' "created": when this gateway began
        self.stored = StoredCompletions(pipeline.kept, self._caller, max_body_bytes)

    def _caller(self, request: Request) -> Principal:
        h = request.headers
        return self.pipeline.admit(h.get("authorization"), h.get("x-api-key"))

    @staticmethod
    def _local_only(request: Request) -> bool:
        """``x-hybridgate-residency: local``: the request must not leave the premises."""
        return request.headers.get("x-hybridgate-residency", "").strip().lower() == "local"

    @staticmethod
    def _deadline(request: Request) -> float | None:
        """``x-hybridgate-deadline: <seconds>``: this request's own, shorter deadline."""
        raw = request.headers.get("x-hybridgate-deadline")
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not (0 < value < float("inf")):
            raise InvalidRequest("x-hybridgate-deadline must be a positive number of seconds",
                                 param="x-hybridgate-deadline")
        return value

    def call(self, request: Request, endpoint: str, req: Any, who: Principal, body: bytes,
             check: Any, deadline: float | None) -> Call:
        """The pipeline's view of a decoded request, with the headers every dialect
        shares (residency, deadline, the caller's trace context) and, for the audit log,
        the body's digest."""
        digest = hashlib.sha256(body).hexdigest() if self.pipeline.recorder.audit else None
        h = request.headers
        return Call(endpoint, req, who, local_only=self._local_only(request), size=len(body),
                    check=check, deadline=deadline, traceparent=h.get("traceparent"),
                    digest=digest, cache=_cache_wish(request),
                    fanout_raw=h.get("x-hybridgate-fanout", "").lower() == "raw")

    async def _serve(self, request: Request, endpoint: str, kind: type,
                     check: Any) -> Response:
        who = self._caller(request)
        deadline = self._deadline(request)
        body = await read_body(request, self.limit)
        req = decode(body, kind)
        meta = self.stored.wanted(who, req) if isinstance(req, ChatRequest) else None
        out = await self.pipeline.run(self.call(request, endpoint, req, who, body,
                                                check, deadline))
        if out.rest is not None:
            assert out.held is not None and out.record is not None
            rest, on_end = out.rest, None
            if meta is not None:  # store: true, allowed
                rest, on_end = self.stored.keeping(who, req, meta, rest, out.held)
            return sse_response(out.held, rest, req.wants_usage_chunk, out.record,
                                response_headers(out), on_end)
        if meta is not None:
            doc = msgspec.to_builtins(out.response)
            doc["id"] = stored_id()
            await self.stored.keep(who, req, meta, doc)
            return _json(msgspec.json.encode(doc), response_headers(out))
        return _json(encode(out.response), response_headers(out))

    async def chat_completions(self, request: Request) -> Response:
        return await self._serve(request, "chat", ChatRequest, check_chat)

    async def completions(self, request: Request) -> Response:
        return await self._serve(request, "completions", CompletionRequest, check_completion)

    async def embeddings(self, request: Request) -> Response:
        return await self._serve(request, "embeddings", EmbeddingRequest, check_embedding)

    async def feedback(self, request: Request) -> Response:
        """POST /v1/feedback {request_id, score?, preferred_route?}: stored with the row."""
        who = self._caller(request)
        fb = decode(await read_body(request, self.limit), Feedback)
        if fb.score is None and fb.preferred_route is None:
            raise InvalidRequest("give a score, a preferred_route, or both", param="score")
        ledger = self.pipeline.recorder.ledger
        if ledger is None:
            raise InvalidRequest("the ledger is off, so feedback cannot be stored",
                                 code="ledger_disabled")
        if not await ledger.feedback(fb.request_id, fb.score, fb.preferred_route, who.key_id):
            raise NotFound(f"no request with id '{fb.request_id}'", param="request_id")
        return _json(b'{"ok":true}')

    def cards(self, who: Principal) -> dict[str, ModelCard]:
        """The models and route names this caller may use, by id."""
        names, groups = self.pipeline.routes.visible(who.allowed)
        providers = self.pipeline.registry.providers
        cards = {n: ModelCard(id=n, created=self.started, owned_by=providers[n].owned_by)
                 for n in names}
        cards.update((g, ModelCard(id=g, created=self.started, owned_by="hybridgate"))
                     for g in groups)
        default = self.pipeline.routes.default
        if AUTO not in cards and default is not None and default in cards:
            cards[AUTO] = ModelCard(id=AUTO, created=self.started, owned_by="hybridgate")
        return cards

    async def list_models(self, request: Request) -> Response:
        cards = self.cards(self._caller(request))
        return _json(encode(ModelList(data=list(cards.values()))))

    async def get_model(self, request: Request) -> Response:
        name = request.path_params["model"]
        card = self.cards(self._caller(request)).get(name)
        if card is None:
            raise ModelNotFound(f"the model '{name}' does not exist", param="model")
        return _json(encode(card))
