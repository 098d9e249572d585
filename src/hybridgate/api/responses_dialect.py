"""OpenAI's Responses API as an ingress dialect: its request (``input`` items,
``instructions``, function tools, ``text.format``) into the gateway's one internal chat
request, and the answer back as a ``response`` object, whole or as Responses events.

Pure translation, no I/O. A conversation continued with ``previous_response_id`` is the
stored conversation's items followed by this request's (``api/responses_routes`` loads
them). What the Responses API has and Chat Completions lacks (hosted tools, reasoning
items of earlier turns) is refused (hosted tools: 400) or dropped (reasoning).
"""

from __future__ import annotations

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
    Usage,
)

# --------------------------------------------------------------------------- request


class Content(Struct, omit_defaults=True):
    type: str  # input_text | output_text | input_image | refusal | input_file
    text: str | None = None
    image_url: str | None = None
    detail: str | None = None
    refusal: str | None = None
    file_id: str | None = None


class Item(Struct, omit_defaults=True):
    """One input item: a message (``role``), a ``function_call`` or its
    ``function_call_output``."""

    type: str | None = None  # "message" when absent and a role is given
    role: Literal["user", "assistant", "system", "developer"] | None = None
    content: str | list[Content] | None = None
    id: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | list[Content] | None = None
    status: str | None = None


class FunctionTool(Struct, omit_defaults=True):
    type: str
    name: Annotated[str, Meta(min_length=1, max_length=64,
                              pattern=r"^[a-zA-Z0-9_-]+$")] | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolChoiceObject(Struct, omit_defaults=True):
    type: str
    name: str | None = None


class TextFormat(Struct, omit_defaults=True):
    type: Literal["text", "json_object", "json_schema"]
    name: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextConfig(Struct, omit_defaults=True):
    format: TextFormat | None = None
    verbosity: str | None = None


class ResponsesRequest(Struct, kw_only=True, omit_defaults=True):
    model: str
    input: str | list[Item] | None = None
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceObject | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: Annotated[int, Meta(ge=1)] | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    stream: bool | None = None
    store: bool | None = None  # OpenAI's default is true
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    # Accepted and not acted on: they have no Chat Completions twin.
    reasoning: Any = None
    include: Any = None
    truncation: Any = None
    service_tier: Any = None
    prompt_cache_key: Any = None
    safety_identifier: Any = None
    stream_options: Any = None
    background: bool | None = None


def items_of(req: ResponsesRequest) -> list[dict[str, Any]]:
    """This request's input as items (plain JSON, as they are stored), each with an id."""
    if req.input is None:
        return []
    if isinstance(req.input, str):
        items: list[dict[str, Any]] = [{"type": "message", "role": "user",
                                        "content": req.input}]
    else:
        items = [msgspec.to_builtins(i) for i in req.input]
    for it in items:
        if "role" in it:
            it.setdefault("type", "message")
            if isinstance(it.get("content"), str):  # as OpenAI lists it: parts
                part = "output_text" if it["role"] == "assistant" else "input_text"
                it["content"] = [{"type": part, "text": it["content"]}]
        if not it.get("id"):
            it["id"] = new_id({"function_call": "fc", "function_call_output": "fco"}.get(
                it.get("type", ""), "msg"), sep="_")
    return items


def _text(content: str | list[Content] | None, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    out = []
    for j, c in enumerate(content):
        if c.type in ("input_text", "output_text", "text"):
            out.append(c.text or "")
        elif c.type == "refusal":
            out.append(c.refusal or "")
        else:
            raise InvalidRequest(f"{where}[{j}]: only text is allowed here",
                                 param=f"{where}[{j}].type")
    return "".join(out)


def _user_content(content: str | list[Content] | None, where: str) -> str | list[ContentPart]:
    if not isinstance(content, list) or all(c.type != "input_image" for c in content):
        return _text(content, where)
    parts = []
    for j, c in enumerate(content):
        if c.type == "input_image":
            if not c.image_url:
                raise InvalidRequest(f"{where}[{j}]: input_image needs an image_url "
                                     "(file ids are not supported)",
                                     param=f"{where}[{j}].image_url")
            url: dict[str, Any] = {"url": c.image_url}
            if c.detail:
                url["detail"] = c.detail
            parts.append(ContentPart(type="image_url", image_url=url))
        else:
            parts.append(ContentPart(type="text", text=_text([c], f"{where}[{j}]")))
    return parts


def _messages(instructions: str | None, items: list[Item]) -> list[Message]:
    out: list[Message] = []
    if instructions:
        out.append(Message(role="system", content=instructions))
    for i, it in enumerate(items):
        where = f"input[{i}]"
        kind = it.type or ("message" if it.role else None)
        if kind == "message":
            if it.role in ("system", "developer"):
                out.append(Message(role="system", content=_text(it.content, where + ".content")))
            elif it.role == "assistant":
                out.append(Message(role="assistant",
                                   content=_text(it.content, where + ".content")))
            elif it.role == "user":
                out.append(Message(role="user",
                                   content=_user_content(it.content, where + ".content")))
            else:
                raise InvalidRequest(f"{where}: a message needs a role", param=where + ".role")
        elif kind == "function_call":
            if not it.call_id or not it.name:
                raise InvalidRequest(f"{where}: a function_call needs call_id and name",
                                     param=where)
            call = ToolCall(id=it.call_id, function=FunctionCall(
                name=it.name, arguments=it.arguments or "{}"))
            if out and out[-1].role == "assistant":  # the same turn's text or calls
                out[-1].tool_calls = [*(out[-1].tool_calls or []), call]
            else:
                out.append(Message(role="assistant", tool_calls=[call]))
        elif kind == "function_call_output":
            if not it.call_id:
                raise InvalidRequest(f"{where}: a function_call_output needs call_id",
                                     param=where + ".call_id")
            out.append(Message(role="tool", tool_call_id=it.call_id,
                               content=_text(it.output, where + ".output")))
        elif kind == "reasoning":
            continue  # an earlier turn's reasoning: not replayed to other models
        else:
            raise InvalidRequest(f"{where}: unsupported input item type '{kind}'",
                                 param=where + ".type")
    return out


def _tools(req: ResponsesRequest) -> tuple[list[Tool] | None, Any]:
    tools = []
    for i, t in enumerate(req.tools or ()):
        if t.type != "function":
            raise InvalidRequest(f"tools[{i}]: hosted tools ('{t.type}') are not supported; "
                                 "only function tools", param=f"tools[{i}].type")
        if not t.name:
            raise InvalidRequest(f"tools[{i}]: a function tool needs a name",
                                 param=f"tools[{i}].name")
        tools.append(Tool(function=FunctionDef(name=t.name, description=t.description,
                                               parameters=t.parameters, strict=t.strict)))
    choice: Any = req.tool_choice
    if isinstance(choice, ToolChoiceObject):
        if choice.type != "function" or not choice.name:
            raise InvalidRequest("tool_choice: only {'type': 'function', 'name': ...} is "
                                 "supported", param="tool_choice")
        choice = NamedToolChoice(function=NamedFunction(name=choice.name))
    return tools or None, choice if tools else None


def _format(req: ResponsesRequest) -> ResponseFormat | None:
    fmt = req.text.format if req.text else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return ResponseFormat(type="json_object")
    if not fmt.name or fmt.schema is None:
        raise InvalidRequest("text.format of type json_schema needs a name and a schema",
                             param="text.format")
    return ResponseFormat(type="json_schema", json_schema=JsonSchemaFormat(
        name=fmt.name, schema=fmt.schema, description=fmt.description, strict=fmt.strict))


class CountRequest(ResponsesRequest, kw_only=True, omit_defaults=True):
    """``POST /v1/responses/input_tokens``: a request that is counted, not answered."""

    model: str | None = None  # type: ignore[assignment]


def prompt_messages(req: ResponsesRequest, history: list[dict[str, Any]]) -> list[Message]:
    """``history``: the stored conversation before this request (previous_response_id)."""
    earlier = msgspec.convert(history, list[Item]) if history else []
    msgs = _messages(req.instructions, [*earlier, *(req.input if isinstance(req.input, list)
                                                    else [])])
    if isinstance(req.input, str):
        msgs.append(Message(role="user", content=req.input))
    return msgs


def to_chat(req: ResponsesRequest, history: list[dict[str, Any]]) -> ChatRequest:
    msgs = prompt_messages(req, history)
    if not any(m.role != "system" for m in msgs):
        raise InvalidRequest("input is empty: give text or at least one item", param="input")
    tools, choice = _tools(req)
    return ChatRequest(model=req.model, messages=msgs, tools=tools, tool_choice=choice,
                       parallel_tool_calls=req.parallel_tool_calls,
                       response_format=_format(req), max_tokens=req.max_output_tokens,
                       temperature=req.temperature, top_p=req.top_p,
                       stream=bool(req.stream) or None, user=req.user)


# --------------------------------------------------------------------------- answers


def _usage(u: Usage | None) -> dict[str, Any] | None:
    if u is None:
        return None
    return {"input_tokens": u.prompt_tokens,
            "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": u.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u.prompt_tokens + u.completion_tokens}


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [],
                         "logprobs": []}] if status == "completed" else []}


def _call_item(item_id: str, call_id: str, name: str, arguments: str,
               status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id,
            "name": name, "arguments": arguments}


INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


class Shell:
    """The response object's fields that echo the request, for the whole answer and for
    every streamed event that carries the response."""

    def __init__(self, req: ResponsesRequest, resp_id: str, created: int, stored: bool
                 ) -> None:
        fmt = req.text.format if req.text and req.text.format else TextFormat(type="text")
        self.req = req
        self.doc: dict[str, Any] = {
            "id": resp_id, "object": "response", "created_at": created,
            "status": "in_progress", "background": False, "error": None,
            "incomplete_details": None, "instructions": req.instructions,
            "max_output_tokens": req.max_output_tokens, "model": req.model, "output": [],
            "parallel_tool_calls": req.parallel_tool_calls is not False,
            "previous_response_id": req.previous_response_id,
            "reasoning": {"effort": None, "summary": None}, "store": stored,
            "temperature": 1.0 if req.temperature is None else req.temperature,
            "text": {"format": msgspec.to_builtins(fmt)},
            "tool_choice": msgspec.to_builtins(req.tool_choice) if req.tool_choice
            is not None else "auto",
            "tools": [msgspec.to_builtins(t) for t in req.tools or ()],
            "top_p": 1.0 if req.top_p is None else req.top_p,
            "truncation": "disabled", "usage": None, "user": req.user,
            "metadata": req.metadata or {}}

    def with_(self, **fields: Any) -> dict[str, Any]:
        return {**self.doc, **fields}

    def finished(self, model: str, output: list[dict[str, Any]], finish: str | None,
                 usage: Usage | None) -> dict[str, Any]:
        reason = INCOMPLETE.get(finish or "")
        return self.with_(model=model, output=output,
                          status="incomplete" if reason else "completed",
                          incomplete_details={"reason": reason} if reason else None,
                          usage=_usage(usage))


def to_response(resp: ChatResponse, shell: Shell) -> dict[str, Any]:
    choice = resp.choices[0]
    msg = choice.message
    output: list[dict[str, Any]] = []
    if msg.content:
        output.append(_message_item(new_id("msg", sep="_"), msg.content))
    for call in msg.tool_calls if isinstance(msg.tool_calls, list) else ():
        output.append(_call_item(new_id("fc", sep="_"), call.id, call.function.name,
                                 call.function.arguments))
    usage = resp.usage if isinstance(resp.usage, Usage) else None
    return shell.finished(resp.model, output, choice.finish_reason, usage)


def _event(doc: dict[str, Any]) -> bytes:
    return b"event: " + doc["type"].encode() + b"\ndata: " + msgspec.json.encode(doc) + \
        b"\n\n"


class StreamEncoder:
    """Chat chunks in, the Responses event sequence out: ``response.created`` and
    ``.in_progress``; per output item ``output_item.added``, its deltas
    (``output_text.delta`` in a ``content_part``, or ``function_call_arguments.delta``),
    their ``.done`` events and ``output_item.done``; then ``response.completed`` (or
    ``.incomplete``) carrying the whole response, which ``final`` keeps for storing."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self.seq = 0
        self.started = False
        self.output: list[dict[str, Any]] = []
        self.open: tuple[str, int] | None = None  # ("text", -1) | ("call", chat index)
        self.text: list[str] = []
        self.args: list[str] = []
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.model = shell.req.model
        self.final: dict[str, Any] | None = None

    def _ev(self, kind: str, **fields: Any) -> bytes:
        doc = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return _event(doc)

    def start(self) -> bytes:
        self.started = True
        doc = self.shell.doc
        return self._ev("response.created", response=doc) + \
            self._ev("response.in_progress", response=doc)

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        i = len(self.output) - 1
        item = self.output[i]
        if self.open[0] == "text":
            text = "".join(self.text)
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            item.update(status="completed", content=[part])
            out = self._ev("response.output_text.done", item_id=item["id"], output_index=i,
                           content_index=0, text=text, logprobs=[]) + \
                self._ev("response.content_part.done", item_id=item["id"], output_index=i,
                         content_index=0, part=part)
        else:
            item.update(status="completed", arguments="".join(self.args))
            out = self._ev("response.function_call_arguments.done", item_id=item["id"],
                           output_index=i, name=item["name"], arguments=item["arguments"])
        self.open = None
        return out + self._ev("response.output_item.done", output_index=i, item=item)

    def feed(self, item: Any) -> bytes:
        out = [] if self.started else [self.start()]
        for chunk in item if isinstance(item, list) else (item,):
            self.model = chunk.model or self.model
            if chunk.usage:
                self.usage = chunk.usage
            for c in chunk.choices[:1]:
                d = c.delta
                if d.content:
                    if self.open != ("text", -1):
                        out.append(self._close())
                        msg = _message_item(new_id("msg", sep="_"), "", "in_progress")
                        self.output.append(msg)
                        self.open, self.text = ("text", -1), []
                        i = len(self.output) - 1
                        out.append(self._ev("response.output_item.added", output_index=i,
                                            item=msg))
                        out.append(self._ev("response.content_part.added", item_id=msg["id"],
                                            output_index=i, content_index=0, part={
                                                "type": "output_text", "text": "",
                                                "annotations": [], "logprobs": []}))
                    self.text.append(d.content)
                    out.append(self._ev("response.output_text.delta",
                                        item_id=self.output[-1]["id"],
                                        output_index=len(self.output) - 1, content_index=0,
                                        delta=d.content, logprobs=[]))
                for t in d.tool_calls or ():
                    if self.open != ("call", t.index):
                        out.append(self._close())
                        fn = t.function
                        call = _call_item(new_id("fc", sep="_"),
                                          t.id or new_id("call", sep="_"),
                                          fn.name if fn and fn.name else "", "",
                                          "in_progress")
                        self.output.append(call)
                        self.open, self.args = ("call", t.index), []
                        out.append(self._ev("response.output_item.added",
                                            output_index=len(self.output) - 1, item=call))
                    if t.function and t.function.arguments:
                        self.args.append(t.function.arguments)
                        out.append(self._ev("response.function_call_arguments.delta",
                                            item_id=self.output[-1]["id"],
                                            output_index=len(self.output) - 1,
                                            delta=t.function.arguments))
                if c.finish_reason:
                    self.finish = c.finish_reason
        return b"".join(out)

    def end(self) -> bytes:
        """After the whole stream was read (and its record committed)."""
        out = [] if self.started else [self.start()]
        out.append(self._close())
        self.final = self.shell.finished(self.model, self.output, self.finish, self.usage)
        kind = "response.completed" if self.final["status"] == "completed" else \
            "response.incomplete"
        out.append(self._ev(kind, response=self.final))
        return b"".join(out)

    def error(self, err: GatewayError) -> bytes:
        """A failure after the stream started: an ``error`` event, then
        ``response.failed``."""
        out = [] if self.started else [self.start()]
        out.append(self._ev("error", code=err.code or err.type, message=err.message,
                            param=err.param))
        out.append(self._ev("response.failed", response=self.shell.with_(
            status="failed", output=self.output,
            error={"code": "server_error", "message": err.message})))
        return b"".join(out)


def new_response_id() -> str:
    return new_id("resp", sep="_")

