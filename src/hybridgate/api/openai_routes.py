"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/completions, /v1/embeddings,
/v1/models. Each handler: read + validate the body once, pick a provider, call it,
encode the answer."""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hybridgate.api.body import decode, read_body
from hybridgate.api.sse import open_stream, sse_response
from hybridgate.api.validate import check_chat, check_completion, check_embedding
from hybridgate.core.types import (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    ModelCard,
    ModelList,
    encode,
)
from hybridgate.routing.resolve import AUTO, Models

log = logging.getLogger("hybridgate.request")

_STARTED = int(time.time())


def _json(body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, media_type="application/json", headers=headers)


class OpenAIRoutes:
    def __init__(self, models: Models, max_body_bytes: int) -> None:
        self.models = models
        self.limit = max_body_bytes

    def _log(self, path: str, model: str, served: str, t0: float, status: Any,
             usage: Any = None) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        tokens = ""
        if usage:  # None, or UNSET when an upstream sent no usage
            tokens = f" prompt_tokens={usage.prompt_tokens}"
            if hasattr(usage, "completion_tokens"):
                tokens += f" completion_tokens={usage.completion_tokens}"
        log.info("%s model=%s served=%s status=%s ms=%.1f%s", path, model, served, status,
                 (time.perf_counter() - t0) * 1000, tokens)

    async def chat_completions(self, request: Request) -> Response:
        t0 = time.perf_counter()
        req = decode(await read_body(request, self.limit), ChatRequest)
        check_chat(req)
        provider = self.models.pick_chat(req)
        headers = {"x-hybridgate-model": provider.name}
        if not req.stream:
            resp = await provider.chat(req)
            self._log("chat", req.model, provider.name, t0, 200, resp.usage)
            return _json(encode(resp), headers)
        first, rest = await open_stream(provider.chat_stream(req))
        return sse_response(first, rest, req.wants_usage_chunk,
                            lambda usage, status: self._log("chat", req.model, provider.name,
                                                            t0, status, usage), headers)

    async def completions(self, request: Request) -> Response:
        t0 = time.perf_counter()
        req = decode(await read_body(request, self.limit), CompletionRequest)
        check_completion(req)
        provider = self.models.get(req.model)
        headers = {"x-hybridgate-model": provider.name}
        if not req.stream:
            resp = await provider.complete(req)
            self._log("completions", req.model, provider.name, t0, 200, resp.usage)
            return _json(encode(resp), headers)
        first, rest = await open_stream(provider.complete_stream(req))
        return sse_response(first, rest, req.wants_usage_chunk,
                            lambda usage, status: self._log("completions", req.model,
                                                            provider.name, t0, status, usage),
                            headers)

    async def embeddings(self, request: Request) -> Response:
        t0 = time.perf_counter()
        req = decode(await read_body(request, self.limit), EmbeddingRequest)
        check_embedding(req)
        provider = self.models.get(req.model)
        resp = await provider.embed(req)
        self._log("embeddings", req.model, provider.name, t0, 200, resp.usage)
        return _json(encode(resp), {"x-hybridgate-model": provider.name})

    async def list_models(self, request: Request) -> Response:
        cards = [ModelCard(id=p.name, created=_STARTED, owned_by=p.owned_by)
                 for p in self.models.providers.values()]
        if self.models.default is not None:
            cards.append(ModelCard(id=AUTO, created=_STARTED, owned_by="hybridgate"))
        return _json(encode(ModelList(data=cards)))

    async def get_model(self, request: Request) -> Response:
        name = request.path_params["model"]
        if name == AUTO and self.models.default is not None:
            return _json(encode(ModelCard(id=AUTO, created=_STARTED, owned_by="hybridgate")))
        p = self.models.providers.get(name)
        if p is None:
            from hybridgate.core.errors import ModelNotFound
            raise ModelNotFound(f"the model '{name}' does not exist", param="model")
        return _json(encode(ModelCard(id=p.name, created=_STARTED, owned_by=p.owned_by)))
