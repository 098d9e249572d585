"""Anthropic's Messages API as an ingress dialect: its request into the gateway's one
internal chat request, and the answer (whole or streamed) back into its wire format.

Pure translation, no I/O. ``providers/anthropic_wire`` does the opposite direction (our
request out to an Anthropic upstream); here a client speaks Anthropic and any
configured model may answer. What the Messages API has and Chat Completions lacks is
dropped with no error, as other gateways do: ``top_k``, ``thinking``, cache control
marks, citations.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from hybridgate.core.errors import GatewayError, InvalidRequest
from hybridgate.core.ids import new_id
from hybridgate.core.types import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    FunctionCall,
    FunctionDef,
    JsonSchemaFormat,
    Message,
    NamedFunction,
    NamedToolChoice,
    ResponseFormat,
    Tool,
    ToolCall,
)

# --------------------------------------------------------------------------- request


class Block(Struct, omit_defaults=True):
    type: str
    text: str | None = None
    source: dict[str, Any] | None = None  # image
    id: str | None = None  # tool_use
    name: str | None = None
    input: Any = None
    tool_use_id: str | None = None  # tool_result
    content: str | list[Block] | None = None
    is_error: bool | None = None


class AMessage(Struct):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ATool(Struct, omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")]
    input_schema: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object"})
    description: str | None = None
    type: str | None = None  # "custom"; server tools are refused below


class AToolChoice(Struct, omit_defaults=True):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class OutputFormat(Struct):
    type: Literal["json_schema"]
    schema: dict[str, Any]


class OutputConfig(Struct, omit_defaults=True):
    """Structured outputs (``format``); ``effort`` has no Chat Completions twin."""

    format: OutputFormat | None = None
    effort: str | None = None


class MessagesRequest(Struct, kw_only=True, omit_defaults=True):
    model: str
    max_tokens: Annotated[int, Meta(ge=1)]
    messages: Annotated[list[AMessage], Meta(min_length=1)]
    system: str | list[Block] | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    tools: list[ATool] | None = None
    tool_choice: AToolChoice | None = None
    metadata: dict[str, Any] | None = None
    output_config: OutputConfig | None = None


class CountRequest(Struct, kw_only=True, omit_defaults=True):
    """POST /v1/messages/count_tokens: a Messages request without max_tokens."""

    model: str
    messages: Annotated[list[AMessage], Meta(min_length=1)]
    system: str | list[Block] | None = None
    tools: list[ATool] | None = None
    tool_choice: AToolChoice | None = None


def _text_of(blocks: str | list[Block] | None, where: str) -> str:
    if blocks is None:
        return ""
    if isinstance(blocks, str):
        return blocks
    out = []
    for j, b in enumerate(blocks):
        if b.type != "text":
            raise InvalidRequest(f"{where}[{j}]: only text blocks are allowed here",
                                 param=f"{where}[{j}].type")
        out.append(b.text or "")
    return "\n".join(out)


def _image(b: Block, where: str) -> ContentPart:
    src = b.source or {}
    if src.get("type") == "base64" and src.get("media_type") and src.get("data"):
        url = f"data:{src['media_type']};base64,{src['data']}"
    elif src.get("type") == "url" and src.get("url"):
        url = src["url"]
    else:
        raise InvalidRequest(f"{where}: an image needs a base64 or url source",
                             param=f"{where}.source")
    return ContentPart(type="image_url", image_url={"url": url})


def _user(m: AMessage, i: int) -> list[Message]:
    """A user turn: tool results become tool messages (first, as Chat Completions wants
    them right after the assistant's calls); the rest one user message."""
    if isinstance(m.content, str):
        return [Message(role="user", content=m.content)]
    tools: list[Message] = []
    parts: list[ContentPart] = []
    for j, b in enumerate(m.content):
        where = f"messages[{i}].content[{j}]"
        if b.type == "text":
            parts.append(ContentPart(type="text", text=b.text or ""))
        elif b.type == "image":
            parts.append(_image(b, where))
        elif b.type == "tool_result":
            if not b.tool_use_id:
                raise InvalidRequest(f"{where}: tool_result needs tool_use_id",
                                     param=f"{where}.tool_use_id")
            text = _text_of(b.content, f"{where}.content")
            if b.is_error:
                text = f"Error: {text}"
            tools.append(Message(role="tool", tool_call_id=b.tool_use_id, content=text))
        else:
            raise InvalidRequest(f"{where}: unsupported block type '{b.type}' in a user turn",
                                 param=f"{where}.type")
    out = tools
    if parts:
        text_only = all(p.type == "text" for p in parts)
        out.append(Message(role="user", content="\n".join(p.text or "" for p in parts)
                           if text_only else parts))
    return out


def _assistant(m: AMessage, i: int) -> Message:
    if isinstance(m.content, str):
        return Message(role="assistant", content=m.content)
    text: list[str] = []
    calls: list[ToolCall] = []
    for j, b in enumerate(m.content):
        where = f"messages[{i}].content[{j}]"
        if b.type == "text":
            text.append(b.text or "")
        elif b.type == "tool_use":
            if not b.id or not b.name:
                raise InvalidRequest(f"{where}: tool_use needs id and name", param=where)
            calls.append(ToolCall(id=b.id, function=FunctionCall(
                name=b.name, arguments=json.dumps(b.input if b.input is not None else {},
                                                  ensure_ascii=False))))
        elif b.type in ("thinking", "redacted_thinking"):
            continue  # reasoning of an earlier turn: not replayed to other models
        else:
            raise InvalidRequest(f"{where}: unsupported block type '{b.type}' in an "
                                 "assistant turn", param=f"{where}.type")
    return Message(role="assistant", content="".join(text) or None,
                   tool_calls=calls or None)


def _tools(tools: list[ATool] | None, choice: AToolChoice | None
           ) -> tuple[list[Tool] | None, Any, bool | None]:
    if not tools:
        return None, None, None
    for i, t in enumerate(tools):
        if t.type not in (None, "custom"):
            raise InvalidRequest(f"tools[{i}]: server tools ('{t.type}') are not supported",
                                 param=f"tools[{i}].type")
    out = [Tool(function=FunctionDef(name=t.name, description=t.description,
                                     parameters=t.input_schema)) for t in tools]
    if choice is None:
        return out, None, None
    parallel = False if choice.disable_parallel_tool_use else None
    if choice.type == "tool":
        if not choice.name:
            raise InvalidRequest("tool_choice of type 'tool' needs a name",
                                 param="tool_choice.name")
        return out, NamedToolChoice(function=NamedFunction(name=choice.name)), parallel
    return out, {"auto": "auto", "any": "required", "none": "none"}[choice.type], parallel


def messages(system: str | list[Block] | None, turns: list[AMessage]) -> list[Message]:
    out: list[Message] = []
    if system:
        out.append(Message(role="system", content=_text_of(system, "system")))
    for i, m in enumerate(turns):
        out.extend(_user(m, i) if m.role == "user" else [_assistant(m, i)])
    return out


def to_chat(req: MessagesRequest, body: bytes | None = None) -> ChatRequest:
    """``body``: the request as it came, kept for an Anthropic upstream to receive
    unchanged (``ChatRequest.native``); every other model gets the translation."""
    tools, choice, parallel = _tools(req.tools, req.tool_choice)
    user = (req.metadata or {}).get("user_id")
    fmt = req.output_config.format if req.output_config else None
    return ChatRequest(
        response_format=ResponseFormat(type="json_schema", json_schema=JsonSchemaFormat(
            name="output", schema=fmt.schema)) if fmt is not None else None,
        model=req.model, messages=messages(req.system, req.messages), tools=tools,
        tool_choice=choice, parallel_tool_calls=parallel, max_tokens=req.max_tokens,
        temperature=req.temperature, top_p=req.top_p,
        stop=list(req.stop_sequences) if req.stop_sequences else None,
        stream=bool(req.stream) or None, user=user if isinstance(user, str) else None,
        native={"anthropic": body} if body is not None else msgspec.UNSET)


# --------------------------------------------------------------------------- answers

STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
        "function_call": "tool_use", "content_filter": "refusal"}


def _input(arguments: str) -> Any:
    try:
        return json.loads(arguments or "{}")
    except ValueError:  # only with output checks off: say it as it came
        return {"_raw": arguments}


def _stop(finish: str | None) -> str:
    """Anthropic's stop_reason. Chat Completions does not say whether a stop string
    ended the answer, so that is end_turn too (and stop_sequence null)."""
    return STOP.get(finish or "stop", "end_turn")


def to_message(resp: ChatResponse, model: str, msg_id: str) -> dict[str, Any]:
    if isinstance(resp.native, dict):  # an Anthropic upstream's own answer, unchanged
        return resp.native
    choice = resp.choices[0]
    msg = choice.message
    content: list[dict[str, Any]] = []
    if msg.content:
        content.append({"type": "text", "text": msg.content})
    for call in msg.tool_calls if isinstance(msg.tool_calls, list) else ():
        content.append({"type": "tool_use", "id": call.id, "name": call.function.name,
                        "input": _input(call.function.arguments)})
    usage = resp.usage if not isinstance(resp.usage, msgspec.UnsetType) else None
    return {"id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": _stop(choice.finish_reason),
            "stop_sequence": None,
            "usage": {"input_tokens": usage.prompt_tokens if usage else 0,
                      "output_tokens": usage.completion_tokens if usage else 0}}


def new_message_id() -> str:
    return new_id("msg", sep="_")


ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
               413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error",
               529: "overloaded_error"}


def error_doc(err: GatewayError) -> dict[str, Any]:
    """Anthropic's error shape; our own code rides along for the curious."""
    kind = ERROR_TYPES.get(err.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": err.message},
            "request_id": err.headers.get("x-request-id")}


def _event(name: str, doc: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(doc) + b"\n\n"


def error_event(err: GatewayError) -> bytes:
    return _event("error", error_doc(err))


class StreamEncoder:
    """Chat chunks in, Anthropic's event sequence out: ``message_start``, ``ping``, then
    per content block ``content_block_start`` / ``_delta`` (``text_delta`` or
    ``input_json_delta``) / ``_stop``, then ``message_delta`` (stop reason, usage) and
    ``message_stop`` (``end``)."""

    def __init__(self, model: str, msg_id: str) -> None:
        self.model = model
        self.id = msg_id
        self.started = False
        # an Anthropic upstream's own events pass through (ChatChunk.native), all but
        # the closing ones, which wait for end(): after the ledger row is committed
        self.native: bool | None = None
        self.tail: list[bytes] = []
        self.block: tuple[str, int] | None = None  # ("text", -1) or ("tool", call index)
        self.index = -1
        self.finish: str | None = None
        self.usage: Any = None

    def _start(self) -> bytes:
        self.started = True
        return _event("message_start", {"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}}) + \
            _event("ping", {"type": "ping"})

    def _close(self) -> bytes:
        if self.block is None:
            return b""
        self.block = None
        return _event("content_block_stop", {"type": "content_block_stop",
                                             "index": self.index})

    def _open(self, kind: tuple[str, int], block: dict[str, Any]) -> bytes:
        out = self._close()
        self.index += 1
        self.block = kind
        return out + _event("content_block_start", {"type": "content_block_start",
                                                    "index": self.index,
                                                    "content_block": block})

    def _passed(self, chunks: Any) -> bytes:
        out = []
        for chunk in chunks:
            for kind, frame in chunk.native or ():
                (self.tail if kind in ("message_delta", "message_stop") else out).append(frame)
        return b"".join(out)

    def feed(self, item: Any) -> bytes:
        chunks = item if isinstance(item, list) else (item,)
        if self.native is None and chunks:
            self.native = isinstance(chunks[0].native, list)
        if self.native:
            return self._passed(chunks)
        out = [] if self.started else [self._start()]
        for chunk in chunks:
            if chunk.usage:
                self.usage = chunk.usage
            for c in chunk.choices[:1]:
                d = c.delta
                if d.content:
                    if self.block != ("text", -1):
                        out.append(self._open(("text", -1), {"type": "text", "text": ""}))
                    out.append(_event("content_block_delta", {
                        "type": "content_block_delta", "index": self.index,
                        "delta": {"type": "text_delta", "text": d.content}}))
                for t in d.tool_calls or ():
                    if self.block != ("tool", t.index):
                        fn = t.function
                        out.append(self._open(("tool", t.index), {
                            "type": "tool_use", "id": t.id or new_id("toolu", sep="_"),
                            "name": fn.name if fn and fn.name else "", "input": {}}))
                    if t.function and t.function.arguments:
                        out.append(_event("content_block_delta", {
                            "type": "content_block_delta", "index": self.index,
                            "delta": {"type": "input_json_delta",
                                      "partial_json": t.function.arguments}}))
                if c.finish_reason:
                    self.finish = c.finish_reason
        return b"".join(out)

    def error(self, err: GatewayError) -> bytes:
        return error_event(err)

    def end(self) -> bytes:
        """After the whole stream was read (and its record committed)."""
        if self.native and self.tail:
            return b"".join(self.tail)
        out = [] if self.started else [self._start()]
        out.append(self._close())
        u = self.usage
        out.append(_event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": _stop(self.finish), "stop_sequence": None},
            "usage": {"input_tokens": u.prompt_tokens if u else 0,
                      "output_tokens": u.completion_tokens if u else 0}}))
        out.append(_event("message_stop", {"type": "message_stop"}))
        return b"".join(out)
