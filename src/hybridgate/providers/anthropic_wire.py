"""Translate between OpenAI chat completions and Anthropic's Messages API, both ways.

Pure functions and one small stream-state class; no I/O, so every mapping is easy to
test. ``response_format`` has no direct Messages equivalent: we force a single tool
whose input schema is the requested schema, and hand its input back as the JSON
content, which is what a client asking for JSON expects.
"""

from __future__ import annotations

import json
from typing import Any

from hybridgate.core.errors import InvalidRequest, UpstreamError, UpstreamUnavailable
from hybridgate.core.ids import now
from hybridgate.core.types import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)

JSON_TOOL = "json_response"

STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                "tool_use": "tool_calls", "refusal": "content_filter", "pause_turn": "stop",
                "model_context_window_exceeded": "length"}


def _image_block(url: str, where: str) -> dict[str, Any]:
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        media = head[5:].split(";")[0]
        if ";base64" not in head or not media:
            raise InvalidRequest(f"{where}: only base64 data URLs are supported", param=where)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(msg: Message, i: int) -> list[dict[str, Any]]:
    if msg.content is None:
        return []
    if isinstance(msg.content, str):
        return [{"type": "text", "text": msg.content}] if msg.content else []
    out: list[dict[str, Any]] = []
    for j, part in enumerate(msg.content):
        where = f"messages[{i}].content[{j}]"
        if part.type == "text":
            if part.text:
                out.append({"type": "text", "text": part.text})
        elif part.type == "image_url":
            url = part.image_url.get("url") if isinstance(part.image_url, dict) else None
            if not isinstance(url, str):
                raise InvalidRequest(f"{where}: image_url.url is required", param=where)
            out.append(_image_block(url, where))
        else:
            raise InvalidRequest(f"{where}: content type '{part.type}' is not supported by "
                                 "Anthropic models", param=where)
    return out


def _push(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Append a turn, merging with the previous one of the same role."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def to_messages_request(req: ChatRequest, model: str, default_max_tokens: int,
                        stream: bool) -> tuple[dict[str, Any], bool]:
    """Returns (Messages API body, json_mode)."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for i, m in enumerate(req.messages):
        if m.role in ("system", "developer"):
            system.append(m.text())
        elif m.role == "user":
            _push(messages, "user", _blocks(m, i))
        elif m.role == "assistant":
            blocks = _blocks(m, i)
            for j, call in enumerate(m.tool_calls or []):
                try:
                    args = json.loads(call.function.arguments or "{}")
                except ValueError:
                    raise InvalidRequest(
                        f"messages[{i}].tool_calls[{j}].function.arguments is not valid JSON",
                        param=f"messages[{i}].tool_calls[{j}].function.arguments") from None
                blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name,
                               "input": args})
            _push(messages, "assistant", blocks)
        else:  # tool result: Anthropic carries it in a user turn
            _push(messages, "user", [{"type": "tool_result", "tool_use_id": m.tool_call_id,
                                      "content": m.text()}])
    if not messages:
        raise InvalidRequest("Anthropic models need at least one user or assistant message",
                             param="messages")
    body: dict[str, Any] = {"model": model, "messages": messages,
                            "max_tokens": req.token_limit or default_max_tokens}
    if system:
        body["system"] = "\n\n".join(system)
    if req.temperature is not None:
        body["temperature"] = min(req.temperature, 1.0)  # Anthropic's range is 0..1
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.stop_list:
        body["stop_sequences"] = req.stop_list
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if stream:
        body["stream"] = True
    tools = [{"name": t.function.name, "description": t.function.description or "",
              "input_schema": t.function.parameters or {"type": "object", "properties": {}}}
             for t in req.tools or []]
    choice = req.tool_choice
    tool_choice: dict[str, Any] | None = None
    if choice == "auto":
        tool_choice = {"type": "auto"}
    elif choice == "required":
        tool_choice = {"type": "any"}
    elif choice == "none":
        tool_choice = {"type": "none"}
    elif choice is not None:
        tool_choice = {"type": "tool", "name": choice.function.name}
    json_mode = False
    fmt = req.response_format
    if fmt is not None and fmt.type in ("json_object", "json_schema"):
        schema = (fmt.json_schema.schema if fmt.type == "json_schema" and fmt.json_schema
                  else None) or {"type": "object"}
        tools = [{"name": JSON_TOOL, "description": "Respond with the answer as JSON.",
                  "input_schema": schema}]
        tool_choice = {"type": "tool", "name": JSON_TOOL}
        json_mode = True
    if tools:
        body["tools"] = tools
    if tool_choice is not None and tools:
        if req.parallel_tool_calls is False and tool_choice["type"] != "none":
            tool_choice["disable_parallel_tool_use"] = True
        body["tool_choice"] = tool_choice
    return body, json_mode


def to_usage(u: dict[str, Any]) -> Usage:
    cached = u.get("cache_read_input_tokens") or 0
    prompt = (u.get("input_tokens") or 0) + cached + (u.get("cache_creation_input_tokens") or 0)
    usage = Usage.of(prompt, u.get("output_tokens") or 0)
    if cached:
        usage.prompt_tokens_details = {"cached_tokens": cached}
    return usage


def from_messages_response(doc: dict[str, Any], json_mode: bool) -> ChatResponse:
    try:
        text: list[str] = []
        calls: list[ToolCall] = []
        for block in doc["content"]:
            if block["type"] == "text":
                text.append(block["text"])
            elif block["type"] == "tool_use":
                args = json.dumps(block.get("input", {}), ensure_ascii=False)
                if json_mode and block["name"] == JSON_TOOL:
                    text.append(args)
                else:
                    calls.append(ToolCall(id=block["id"], function=FunctionCall(
                        name=block["name"], arguments=args)))
        finish = STOP_REASONS.get(doc.get("stop_reason") or "", "stop")
        if json_mode and finish == "tool_calls":
            finish = "stop"
        msg = AssistantMessage(content="".join(text) if text else None)
        if calls:
            msg.tool_calls = calls
        return ChatResponse(id=doc["id"], created=now(), model=doc["model"],
                            choices=[Choice(index=0, message=msg, finish_reason=finish)],
                            usage=to_usage(doc.get("usage") or {}))
    except (KeyError, TypeError) as e:
        raise UpstreamError(f"malformed Anthropic response: missing {e}",
                            code="invalid_upstream_response") from None


def stream_error(data: dict[str, Any]) -> Exception:
    err = data.get("error") or {}
    msg = f"upstream anthropic stream error: {err.get('message', 'unknown')}"
    if err.get("type") == "overloaded_error":
        return UpstreamUnavailable(msg)
    return UpstreamError(msg)


class StreamTranslator:
    """Anthropic stream events in, OpenAI chunks out (zero or more per event)."""

    def __init__(self, model: str, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.id = ""
        self.model = model
        self.created = now()
        self.prompt_tokens = 0
        self.output_tokens = 0
        self.finish: str | None = None
        self.done = False
        self._tool_index: dict[int, int] = {}  # content block index -> OpenAI tool index

    def _chunk(self, delta: Delta, finish: str | None = None) -> ChatChunk:
        return ChatChunk(id=self.id, created=self.created, model=self.model,
                         choices=[ChunkChoice(index=0, delta=delta, finish_reason=finish)])

    def feed(self, event: str, data: dict[str, Any]) -> list[ChatChunk]:
        kind = data.get("type", event)
        if kind == "message_start":
            msg = data["message"]
            self.id, self.model = msg["id"], msg.get("model", self.model)
            usage = to_usage(msg.get("usage") or {})
            self.prompt_tokens = usage.prompt_tokens
            self.output_tokens = usage.completion_tokens
            return [self._chunk(Delta(role="assistant", content=""))]
        if kind == "content_block_start":
            block = data["content_block"]
            if block["type"] == "tool_use" and not self.json_mode:
                idx = self._tool_index.setdefault(data["index"], len(self._tool_index))
                return [self._chunk(Delta(tool_calls=[ToolCallDelta(
                    index=idx, id=block["id"], type="function",
                    function=FunctionCallDelta(name=block["name"], arguments=""))]))]
            if block["type"] == "text" and block.get("text"):
                return [self._chunk(Delta(content=block["text"]))]
            return []
        if kind == "content_block_delta":
            delta = data["delta"]
            if delta["type"] == "text_delta":
                return [self._chunk(Delta(content=delta["text"]))]
            if delta["type"] == "input_json_delta":
                if self.json_mode:
                    return [self._chunk(Delta(content=delta["partial_json"]))]
                idx = self._tool_index.get(data["index"], 0)
                return [self._chunk(Delta(tool_calls=[ToolCallDelta(
                    index=idx, function=FunctionCallDelta(arguments=delta["partial_json"]))]))]
            return []  # thinking / signature deltas have no OpenAI equivalent
        if kind == "message_delta":
            reason = (data.get("delta") or {}).get("stop_reason")
            if reason:
                self.finish = STOP_REASONS.get(reason, "stop")
                if self.json_mode and self.finish == "tool_calls":
                    self.finish = "stop"
            usage = data.get("usage") or {}
            if "output_tokens" in usage:  # cumulative, per Anthropic's docs
                self.output_tokens = usage["output_tokens"]
            return []
        if kind == "message_stop":
            self.done = True
            return [self._chunk(Delta(), self.finish or "stop"),
                    ChatChunk(id=self.id, created=self.created, model=self.model, choices=[],
                              usage=Usage.of(self.prompt_tokens, self.output_tokens))]
        if kind == "error":
            raise stream_error(data)
        return []  # ping, content_block_stop
