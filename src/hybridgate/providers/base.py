"""The provider contract every backend implements.

Streams yield content chunks (or lists of chunks that arrived together, which the API
layer forwards in one write) and finish with one chunk whose ``choices`` is empty and
whose ``usage`` is set (OpenAI's ``include_usage`` shape).  Every provider must produce
that usage chunk; ``api/`` drops it when the client did not ask for it.  This keeps
exact usage available to the ledger in both modes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from hybridgate.core.errors import InvalidRequest
from hybridgate.core.types import (
    LOCAL_KINDS,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
)


class Provider:
    """Base class: each capability a backend lacks answers with a clear 400."""

    kind: str = "base"
    owned_by: str = "hybridgate"

    def __init__(self, name: str) -> None:
        self.name = name

    # Capabilities, used by /v1/models and by request validation.
    supports_chat = False
    supports_completions = False
    supports_embeddings = False

    async def start(self) -> None:
        """Acquire resources (connection pools, model weights) on the running loop."""

    async def close(self) -> None:
        """Release everything ``start`` acquired."""

    def observe(self, metrics: Any) -> None:
        """Report to the gateway's metrics (``observe/metrics``); most have nothing to."""

    @property
    def ready(self) -> bool:
        return True

    @property
    def local(self) -> bool:
        """Runs in this process on the operator's hardware (see ``LOCAL_KINDS``)."""
        return self.kind in LOCAL_KINDS

    def _unsupported(self, what: str) -> InvalidRequest:
        return InvalidRequest(f"model '{self.name}' does not support {what}", param="model",
                              code="unsupported_model")

    async def chat(self, req: ChatRequest) -> ChatResponse:
        raise self._unsupported("chat completions")

    def chat_stream(self, req: ChatRequest) -> AsyncIterator[ChatChunk]:
        raise self._unsupported("chat completions")

    async def complete(self, req: CompletionRequest) -> CompletionResponse:
        raise self._unsupported("completions")

    def complete_stream(self, req: CompletionRequest) -> AsyncIterator[CompletionResponse]:
        raise self._unsupported("completions")

    async def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        raise self._unsupported("embeddings")
