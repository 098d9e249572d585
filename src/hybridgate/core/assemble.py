"""A streamed chat answer put back together: what the non-streamed answer would say
(stored completions keep it; the cache stores it); and the way back, an answer as the
chunks of a stream (the cache replays a hit as one)."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from hybridgate.core.types import (
    ChatChunk,
    ChatResponse,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ToolCallDelta,
)


class Assembler:
    """A streamed chat answer put back together: what a non-streamed one would say."""

    def __init__(self) -> None:
        self.head: Any = None
        self.usage: Any = None
        self.text: dict[int, list[str]] = {}
        self.calls: dict[int, dict[int, dict[str, Any]]] = {}
        self.finish: dict[int, str | None] = {}

    def see(self, item: Any) -> None:
        for chunk in item if isinstance(item, list) else (item,):
            self.head = self.head or chunk
            if chunk.usage:
                self.usage = chunk.usage
            for c in chunk.choices:
                self.finish.setdefault(c.index, None)
                if c.delta.content:
                    self.text.setdefault(c.index, []).append(c.delta.content)
                for t in c.delta.tool_calls or ():
                    call = self.calls.setdefault(c.index, {}).setdefault(t.index, {
                        "id": "", "type": "function", "function": {"name": "",
                                                                    "arguments": ""}})
                    call["id"] = t.id or call["id"]
                    if t.function:
                        call["function"]["name"] += t.function.name or ""
                        call["function"]["arguments"] += t.function.arguments or ""
                if c.finish_reason:
                    self.finish[c.index] = c.finish_reason

    def response(self) -> dict[str, Any]:
        choices = []
        for i in sorted(self.finish):
            msg: dict[str, Any] = {"role": "assistant",
                                   "content": "".join(self.text.get(i, [])) or None,
                                   "refusal": None}
            if self.calls.get(i):
                msg["tool_calls"] = [self.calls[i][k] for k in sorted(self.calls[i])]
            choices.append({"index": i, "message": msg, "finish_reason": self.finish[i],
                            "logprobs": None})
        head = self.head
        doc = {"id": head.id if head else "", "object": "chat.completion",
               "created": head.created if head else int(time.time()),
               "model": head.model if head else "", "choices": choices}
        if self.usage:
            doc["usage"] = msgspec.to_builtins(self.usage)
        return doc


def as_chunks(resp: ChatResponse) -> list[ChatChunk]:
    """One answer as a stream: a role chunk, its content, its tool calls, the finish,
    and the usage chunk (which the writer passes on only when the client asked)."""
    out = []

    def chunk(choices: list[ChunkChoice]) -> ChatChunk:
        return ChatChunk(id=resp.id, created=resp.created, model=resp.model, choices=choices)

    for c in resp.choices:
        msg = c.message
        out.append(chunk([ChunkChoice(index=c.index, delta=Delta(role="assistant",
                                                                  content=""),
                                      finish_reason=None)]))
        if msg.content:
            out.append(chunk([ChunkChoice(index=c.index, delta=Delta(content=msg.content),
                                          finish_reason=None)]))
        for i, call in enumerate(msg.tool_calls or ()):
            out.append(chunk([ChunkChoice(index=c.index, delta=Delta(tool_calls=[
                ToolCallDelta(index=i, id=call.id, type="function", function=FunctionCallDelta(
                    name=call.function.name, arguments=call.function.arguments))]),
                finish_reason=None)]))
        out.append(chunk([ChunkChoice(index=c.index, delta=Delta(),
                                      finish_reason=c.finish_reason)]))
    if not isinstance(resp.usage, msgspec.UnsetType):
        last = chunk([])
        last.usage = resp.usage
        out.append(last)
    return out
