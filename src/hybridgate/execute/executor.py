"""Call the provider behind a chosen model, once.

Routing hands over a model *name*; this stage resolves it through the provider registry
(a model still loading or failed to load is a 503 here) and makes the call. It is the
one place that calls providers, so the reliability work (retries, fallbacks, breakers,
deadlines, output checks) wraps ``call`` / ``stream`` here and nowhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from hybridgate.core.types import ChatRequest, CompletionRequest, EmbeddingRequest
from hybridgate.providers.base import Provider
from hybridgate.providers.registry import Registry

Request = ChatRequest | CompletionRequest | EmbeddingRequest


class Executor:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def provider(self, model: str) -> Provider:
        return self.registry.get(model)

    async def call(self, provider: Provider, req: Request) -> Any:
        """One non-streamed answer: a chat, completion or embedding response."""
        if isinstance(req, ChatRequest):
            return await provider.chat(req)
        if isinstance(req, CompletionRequest):
            return await provider.complete(req)
        return await provider.embed(req)

    def stream(self, provider: Provider, req: ChatRequest | CompletionRequest
               ) -> AsyncIterator[Any]:
        """One streamed answer: chunks (or lists of chunks that arrived together), the
        last one carrying the usage (providers/base.py)."""
        if isinstance(req, ChatRequest):
            return provider.chat_stream(req)
        return provider.complete_stream(req)
