"""The gateway's own request and response types (msgspec structs).

They mirror OpenAI's wire format because that is our lingua franca: parsing a body
into these structs *is* validation (msgspec names the offending field), and encoding
them back is one C call.  Fields a provider does not understand travel in
``extra`` so an OpenAI-compatible upstream still receives them untouched.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType, field

Temperature = Annotated[float, Meta(ge=0, le=2)]
TopP = Annotated[float, Meta(ge=0, le=1)]
PositiveInt = Annotated[int, Meta(ge=1)]
Penalty = Annotated[float, Meta(ge=-2, le=2)]

# Provider kinds that run in this process on the operator's hardware: priced by hardware
# time, counted as local in reports, loaded in the background, allowed for data that must
# stay on-premises. One list, so that "local" means the same everywhere.
LOCAL_KINDS = frozenset({"local", "transformers", "embeddings"})


# --------------------------------------------------------------------------- requests


class ContentPart(Struct, omit_defaults=True):
    type: str
    text: str | None = None
    image_url: Any = None
    input_audio: Any = None
    file: Any = None


class FunctionCall(Struct):
    name: str
    arguments: str


class ToolCall(Struct):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class Message(Struct, omit_defaults=True):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None

    def text(self) -> str:
        """The message's text; parts are joined, non-text parts are rejected by providers."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text or "" for p in self.content if p.type == "text")


class FunctionDef(Struct, omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Struct):
    function: FunctionDef
    type: Literal["function"] = "function"


class NamedFunction(Struct):
    name: str


class NamedToolChoice(Struct):
    function: NamedFunction
    type: Literal["function"] = "function"


class JsonSchemaFormat(Struct, omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(Struct, omit_defaults=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(Struct, omit_defaults=True):
    include_usage: bool | None = None


class _Generation(Struct, kw_only=True, omit_defaults=True):
    """Fields chat and text completions share."""

    model: str
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    n: PositiveInt | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    # Unknown fields, kept verbatim for OpenAI-compatible upstreams.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatRequest(_Generation, kw_only=True, omit_defaults=True):
    messages: Annotated[list[Message], Meta(min_length=1)]
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    # Internal, never taken from a client (api/body.decode drops it) and never sent to an
    # OpenAI-compatible upstream: the client's own request in another dialect, by dialect
    # ({"anthropic": <the Messages body>}), for a provider that speaks it to send as it
    # came (no lossy round trip). Anything that rewrites the messages must drop it.
    native: dict[str, bytes] | UnsetType = UNSET

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Generation, kw_only=True, omit_defaults=True):
    # str, list of str, token list, or list of token lists (msgspec allows one array type
    # per union, so items are a union; api/validate.py checks they are homogeneous).
    prompt: str | list[str | int | list[int]]
    max_tokens: Annotated[int, Meta(ge=0)] | None = None
    echo: bool | None = None
    suffix: str | None = None


class EmbeddingRequest(Struct, kw_only=True, omit_defaults=True):
    model: str
    input: str | list[str | int | list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: PositiveInt | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Feedback(Struct, kw_only=True):
    """POST /v1/feedback: how good an answer was, or which route should have served it."""

    request_id: Annotated[str, Meta(min_length=1)]
    score: Annotated[float, Meta(ge=0, le=1)] | None = None
    preferred_route: Annotated[str, Meta(min_length=1)] | None = None


# --------------------------------------------------------------------------- responses


class Usage(Struct, omit_defaults=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: dict[str, Any] | None = None
    completion_tokens_details: dict[str, Any] | None = None
    cost: float | None | UnsetType = UNSET  # USD, like OpenRouter's usage.cost
    # Internal, never sent: seconds a local engine spent on this request (not the time it
    # queued), which prices it. The ledger's Tracker reads it and resets it to UNSET.
    engine_seconds: float | UnsetType = UNSET

    @property
    def cached_tokens(self) -> int:
        details = self.prompt_tokens_details or {}
        return int(details.get("cached_tokens") or 0)

    @classmethod
    def of(cls, prompt: int, completion: int,
           engine_seconds: float | UnsetType = UNSET) -> Usage:
        return cls(prompt_tokens=prompt, completion_tokens=completion,
                   total_tokens=prompt + completion, engine_seconds=engine_seconds)


class AssistantMessage(Struct):
    # content and refusal are always sent (as null when empty), like OpenAI does;
    # tool_calls is left out unless there are some.
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None | UnsetType = UNSET
    role: Literal["assistant"] = "assistant"


class Choice(Struct):
    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: Any = None


class ChatResponse(Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | UnsetType = UNSET
    system_fingerprint: str | None | UnsetType = UNSET
    object: Literal["chat.completion"] = "chat.completion"
    # Internal, never sent: the local engine's mean token log-probability for this
    # answer (a cascade's confidence). execute reads it and resets it to UNSET.
    confidence: float | UnsetType = UNSET
    # Internal: the upstream's own answer, for a request that came in its dialect
    # (``ChatRequest.native``); only that dialect's encoder reads it.
    native: dict[str, Any] | UnsetType = UNSET


class FunctionCallDelta(Struct, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(Struct, omit_defaults=True):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None


class Delta(Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(Struct, omit_defaults=True):
    index: int
    delta: Delta
    finish_reason: str | None  # always sent, null until the last chunk
    logprobs: Any = None


class ChatChunk(Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None | UnsetType = UNSET
    system_fingerprint: str | None | UnsetType = UNSET
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    # Internal, like ChatResponse.native: the upstream's own events (type, SSE frame) up
    # to and including the one this chunk came from.
    native: list[tuple[str, bytes]] | UnsetType = UNSET


class CompletionChoice(Struct):
    index: int
    text: str
    finish_reason: str | None
    logprobs: Any = None


class CompletionResponse(Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None | UnsetType = UNSET
    system_fingerprint: str | None | UnsetType = UNSET
    object: Literal["text_completion"] = "text_completion"


class Embedding(Struct):
    index: int
    embedding: list[float] | str
    object: Literal["embedding"] = "embedding"


class EmbeddingUsage(Struct):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(Struct, kw_only=True):
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
    object: Literal["list"] = "list"


class ModelCard(Struct):
    id: str
    created: int
    owned_by: str
    object: Literal["model"] = "model"


class ModelList(Struct):
    data: list[ModelCard]
    object: Literal["list"] = "list"


encode = msgspec.json.Encoder().encode
