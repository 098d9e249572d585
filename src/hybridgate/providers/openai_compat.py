"""Any OpenAI-compatible upstream: the request passes through nearly untouched.

We re-encode the parsed request (so unknown fields the client sent still reach the
upstream via ``extra``), swap in the upstream's model name, and always ask a stream
for its usage chunk so usage stays exact; ``api/`` drops that chunk when the client
did not ask for it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET

from hybridgate.config.settings import OpenAIModel
from hybridgate.core.errors import UpstreamError
from hybridgate.core.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
)
from hybridgate.providers.base import Provider
from hybridgate.providers.http import Upstream, upstream_message
from hybridgate.providers.sse import iter_event_batches

T = TypeVar("T")
log = logging.getLogger("hybridgate.providers")


class OpenAIProvider(Provider):
    kind = "openai"
    supports_completions = True

    def __init__(self, cfg: OpenAIModel) -> None:
        super().__init__(cfg.name)
        self.cfg = cfg
        self.upstream_model = cfg.model or cfg.name
        self.supports_chat = not cfg.embeddings
        self.supports_embeddings = cfg.embeddings
        self.owned_by = "openai-compatible"
        headers = dict(cfg.headers)
        if cfg.api_key:
            headers["authorization"] = f"Bearer {cfg.api_key}"
        self.http = Upstream(cfg.name, cfg.base_url, headers, cfg.timeout, cfg.connect_timeout)
        self.malformed_chunks = 0  # stream events skipped because they did not parse

    async def start(self) -> None:
        await self.http.start()

    async def close(self) -> None:
        await self.http.close()

    def _body(self, req: Any, stream: bool = False) -> bytes:
        doc = msgspec.to_builtins(req)
        doc.pop("native", None)  # another dialect's request: not for this upstream
        doc.update(doc.pop("extra", None) or {})
        doc["model"] = self.upstream_model
        if stream:
            doc["stream"] = True
            doc["stream_options"] = {**(doc.get("stream_options") or {}), "include_usage": True}
        return msgspec.json.encode(doc)

    def _decode(self, data: bytes | str, kind: type[T]) -> T:
        try:
            return msgspec.json.decode(data, type=kind)
        except msgspec.ValidationError:
            err = _error_in(self.name, data)
            if err is not None:
                raise err from None
            raise UpstreamError(f"upstream {self.name} sent a malformed {kind.__name__}",
                                code="invalid_upstream_response") from None
        except msgspec.DecodeError:
            raise UpstreamError(f"upstream {self.name} sent invalid JSON",
                                code="invalid_upstream_response") from None

    async def _events(self, path: str, body: bytes, kind: type[T]) -> AsyncIterator[list[T]]:
        """Chunks in batches: every event one socket read completed (often just one).

        An event that does not parse is skipped and counted (``malformed_chunks``), not
        fatal: if the stream then completes, the answer stands. A stream that delivered
        its finish reason and its usage but lost the final ``[DONE]`` is complete; one
        that ends earlier is truncated (an error)."""
        finished = counted = False
        async with self.http.post_stream(path, body) as blocks:
            async for events in iter_event_batches(blocks):
                batch: list[T] = []
                for event in events:
                    if event.data.strip() == "[DONE]":
                        if batch:
                            yield batch
                        return
                    try:
                        item: Any = self._decode(event.data, kind)
                    except UpstreamError as e:
                        if e.code != "invalid_upstream_response":
                            raise  # an error object mid-stream: a real failure
                        self.malformed_chunks += 1
                        log.warning("upstream %s sent an unparseable stream event; skipped",
                                    self.name)
                        continue
                    finished = finished or any(c.finish_reason for c in item.choices)
                    counted = counted or (not item.choices and item.usage is not None)
                    batch.append(item)
                if batch:
                    yield batch
        if finished and counted:
            return  # everything arrived but the [DONE] marker
        raise UpstreamError(f"upstream {self.name} ended the stream before [DONE]",
                            code="truncated_stream")

    async def chat(self, req: ChatRequest) -> ChatResponse:
        resp = self._decode(await self.http.post_json("/chat/completions", self._body(req)),
                            ChatResponse)
        for c in resp.choices:
            if c.message.tool_calls is None:
                c.message.tool_calls = UNSET
        return resp

    async def chat_stream(self, req: ChatRequest) -> AsyncIterator[list[ChatChunk]]:
        async for batch in self._events("/chat/completions", self._body(req, True), ChatChunk):
            yield batch

    async def complete(self, req: CompletionRequest) -> CompletionResponse:
        return self._decode(await self.http.post_json("/completions", self._body(req)),
                            CompletionResponse)

    async def complete_stream(self, req: CompletionRequest
                              ) -> AsyncIterator[list[CompletionResponse]]:
        async for batch in self._events("/completions", self._body(req, True),
                                        CompletionResponse):
            yield batch

    async def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        if not self.supports_embeddings:
            raise self._unsupported("embeddings")
        return self._decode(await self.http.post_json("/embeddings", self._body(req)),
                            EmbeddingResponse)


def _error_in(provider: str, data: bytes | str) -> UpstreamError | None:
    """An ``{"error": ...}`` object where a result was expected (mid-stream failures)."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    if isinstance(doc, dict) and "error" in doc:
        return UpstreamError(f"upstream {provider} sent an error: {upstream_message(raw)}")
    return None
