"""Anthropic Messages API provider (HTTP); the translation lives in anthropic_wire.

A request that came in Anthropic's own dialect (``ChatRequest.native``) is sent as it
came, with only the model name swapped for the upstream's, and its answer (the message,
or every stream event) rides back beside the translated one for the Messages encoder:
thinking blocks, cache-control marks, citations and whatever Anthropic adds next make
the round trip. The translation still runs, so the ledger, the output checks and a
fallback to another kind of model see the answer like any other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from hybridgate.config.settings import AnthropicModel
from hybridgate.core.errors import InvalidRequest, UpstreamError
from hybridgate.core.types import ChatChunk, ChatRequest, ChatResponse
from hybridgate.providers.anthropic_wire import (
    StreamTranslator,
    from_messages_response,
    to_messages_request,
)
from hybridgate.providers.base import Provider
from hybridgate.providers.http import Upstream
from hybridgate.providers.sse import iter_event_batches


class AnthropicProvider(Provider):
    kind = "anthropic"
    owned_by = "anthropic"
    supports_chat = True

    def __init__(self, cfg: AnthropicModel) -> None:
        super().__init__(cfg.name)
        self.cfg = cfg
        self.upstream_model = cfg.model or cfg.name
        headers = {"anthropic-version": cfg.anthropic_version}
        if cfg.api_key:
            headers["x-api-key"] = cfg.api_key
        self.http = Upstream(cfg.name, cfg.base_url, headers, cfg.timeout, cfg.connect_timeout)

    async def start(self) -> None:
        await self.http.start()

    async def close(self) -> None:
        await self.http.close()

    def _native(self, req: ChatRequest, stream: bool) -> bytes | None:
        """The client's own Messages body, for this upstream's model name."""
        raw = req.native.get("anthropic") if isinstance(req.native, dict) else None
        if raw is None:
            return None
        doc: dict[str, Any] = msgspec.json.decode(raw)
        doc["model"] = self.upstream_model
        if stream:
            doc["stream"] = True
        else:
            doc.pop("stream", None)
        return msgspec.json.encode(doc)

    def _request(self, req: ChatRequest, stream: bool) -> tuple[bytes, bool]:
        native = self._native(req, stream)
        if native is not None:
            return native, False
        if req.n is not None and req.n > 1:
            raise InvalidRequest("n > 1 is not supported by Anthropic models", param="n")
        body, json_mode = to_messages_request(req, self.upstream_model,
                                              self.cfg.default_max_tokens, stream)
        return msgspec.json.encode(body), json_mode

    async def chat(self, req: ChatRequest) -> ChatResponse:
        body, json_mode = self._request(req, stream=False)
        data = await self.http.post_json("/v1/messages", body)
        try:
            doc = msgspec.json.decode(data)
        except msgspec.DecodeError:
            raise UpstreamError("upstream anthropic sent invalid JSON") from None
        resp = from_messages_response(doc, json_mode)
        if isinstance(req.native, dict):
            resp.native = doc
        return resp

    async def chat_stream(self, req: ChatRequest) -> AsyncIterator[list[ChatChunk]]:
        body, json_mode = self._request(req, stream=True)
        state = StreamTranslator(self.upstream_model, json_mode)
        native = isinstance(req.native, dict)
        frames: list[tuple[str, bytes]] = []  # the upstream's events not yet handed on
        async with self.http.post_stream("/v1/messages", body) as blocks:
            async for events in iter_event_batches(blocks):
                batch: list[ChatChunk] = []
                for event in events:
                    try:
                        data = msgspec.json.decode(event.data)
                    except msgspec.DecodeError:
                        raise UpstreamError("upstream anthropic sent an invalid event") from None
                    try:
                        chunks = state.feed(event.event, data)
                    except (KeyError, TypeError) as e:
                        raise UpstreamError(f"malformed Anthropic event: missing {e}") from None
                    if native:
                        frames.append((data.get("type", event.event) if isinstance(data, dict)
                                       else event.event,
                                       f"event: {event.event}\ndata: {event.data}\n\n".encode()))
                        if chunks:
                            chunks[0].native, frames = frames, []
                    batch += chunks
                    if state.done:
                        yield batch
                        return
                if batch:
                    yield batch
        raise UpstreamError("upstream anthropic ended the stream before message_stop",
                            code="truncated_stream")
