"""What a tenant's (or route group's) ``pii:`` mode does to a chat request before it can
leave, and to the answer on its way back.

- ``detect``: count what is found (the audit record keeps the counts, never values);
- ``redact``: each value becomes its type, ``<EMAIL_ADDRESS>``, for good;
- ``pseudonymize``: each distinct value becomes a numbered placeholder,
  ``<PERSON_1>``, one map per request, and the answer gets the real values back, in
  text and in tool-call arguments (JSON-escaped there), streamed answers included even
  when a placeholder arrives split across chunks;
- ``block``: a 400 naming the types found;
- ``local``: the request is served as if tagged ``x-hybridgate-residency: local``.

Everything an upstream would see is scanned: every message's text and text parts, tool
results, and tool-call arguments in the history.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from hybridgate.core.types import (
    ChatRequest,
    ChunkChoice,
    ContentPart,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    Message,
    ToolCall,
    ToolCallDelta,
)
from hybridgate.guard.pii import find

MODES = ("off", "detect", "pseudonymize", "redact", "local", "block")
STRICTNESS = {m: i for i, m in enumerate(MODES)}
_TOKEN = re.compile(r"<[A-Z_]{2,40}_\d{1,6}>")
_PARTIAL = re.compile(r"<[A-Z_]{0,40}(?:_\d{0,6})?")  # what a split placeholder starts as
MAX_TOKEN = 50


def stricter(*modes: str | None) -> str | None:
    found = [m for m in modes if m is not None]
    return max(found, key=STRICTNESS.__getitem__) if found else None


def texts(req: ChatRequest) -> list[str]:
    """Each text of the request that ``count`` and ``Pseudonyms.request`` scan, as they
    scan it: content strings, text parts one by one, tool-call arguments, message names
    and tool descriptions (counted; a tool's description is the developer's, not sent
    redacted)."""
    out: list[str] = []
    for m in req.messages:
        if isinstance(m.content, str):
            out.append(m.content)
        elif isinstance(m.content, list):
            out += [p.text for p in m.content if isinstance(p, ContentPart) and p.text]
        if m.name:
            out.append(m.name)
        out += [c.function.arguments for c in m.tool_calls or ()]
    out += [t.function.description for t in req.tools or () if t.function.description]
    return out


def count(req: ChatRequest, names: bool = False) -> Counter[str]:
    """How many of each kind of personal data the request would send out."""
    return Counter(f.kind for text in texts(req) for f in find(text, names))


class Pseudonyms:
    """One request's values and their placeholders."""

    def __init__(self, mode: str, names: bool = False) -> None:
        self.mode = mode  # "redact" | "pseudonymize"
        self.names = names  # people's, places' and organisations' names too
        self.token: dict[str, str] = {}  # value -> placeholder
        self.value: dict[str, str] = {}  # placeholder -> value
        self.counts: Counter[str] = Counter()
        self._n: Counter[str] = Counter()

    def _placeholder(self, kind: str, value: str) -> str:
        if self.mode == "redact":
            return f"<{kind}>"
        tok = self.token.get(value)
        if tok is None:
            self._n[kind] += 1
            tok = f"<{kind}_{self._n[kind]}>"
            self.token[value], self.value[tok] = tok, value
        return tok

    def scrub(self, text: str) -> str:
        found = find(text, self.names)
        if not found:
            return text
        out, at = [], 0
        for f in found:
            self.counts[f.kind] += 1
            out += [text[at:f.start], self._placeholder(f.kind, f.value)]
            at = f.end
        out.append(text[at:])
        return "".join(out)

    def restore(self, text: str) -> str:
        if not self.value or "<" not in text:
            return text
        return _TOKEN.sub(lambda m: self.value.get(m.group(), m.group()), text)

    def restore_json(self, text: str) -> str:
        """Inside tool-call arguments (JSON): the value, escaped as a JSON string."""
        if not self.value or "<" not in text:
            return text
        return _TOKEN.sub(lambda m: json.dumps(self.value[m.group()])[1:-1]
                          if m.group() in self.value else m.group(), text)

    # ------------------------------------------------------------------ requests

    def request(self, req: ChatRequest) -> ChatRequest:
        """The request as it may leave; the client's own body (``native``) no longer
        describes it, so it is dropped."""
        msgs = [self._message(m) for m in req.messages]
        return msgspec.structs.replace(req, messages=msgs, native=msgspec.UNSET)

    def _message(self, m: Message) -> Message:
        content = m.content
        if isinstance(content, str):
            content = self.scrub(content)
        elif isinstance(content, list):
            content = [msgspec.structs.replace(p, text=self.scrub(p.text))
                       if isinstance(p, ContentPart) and p.text else p for p in content]
        calls = [ToolCall(id=c.id, function=FunctionCall(
            name=c.function.name, arguments=self.scrub(c.function.arguments)))
                 for c in m.tool_calls] if m.tool_calls else m.tool_calls
        return msgspec.structs.replace(m, content=content, tool_calls=calls)

    # ------------------------------------------------------------------ answers

    def answer(self, resp: Any) -> None:
        """A whole answer, restored in place."""
        if self.mode != "pseudonymize":
            return
        for c in resp.choices:
            msg = c.message
            if msg.content:
                msg.content = self.restore(msg.content)
            for call in msg.tool_calls or ():
                call.function.arguments = self.restore_json(call.function.arguments)

    def stream(self, held: list[Any], rest: AsyncIterator[Any]
               ) -> tuple[list[Any], AsyncIterator[Any]]:
        if self.mode != "pseudonymize" or not self.value:
            return held, rest
        r = _StreamRestorer(self)
        return [r.item(i) for i in held], r.wrap(rest)


class _Tail:
    """Holds back the end of a text that might be the start of a split placeholder."""

    def __init__(self, restore: Callable[[str], str]) -> None:
        self.restore = restore
        self.buf = ""

    def feed(self, piece: str) -> str:
        s = self.buf + piece
        cut = s.rfind("<")
        if cut != -1 and len(s) - cut <= MAX_TOKEN and _PARTIAL.fullmatch(s, cut):
            self.buf, s = s[cut:], s[:cut]
        else:
            self.buf = ""
        return self.restore(s)

    def flush(self) -> str:
        out, self.buf = self.restore(self.buf), ""
        return out


class _StreamRestorer:
    def __init__(self, p: Pseudonyms) -> None:
        self.p = p
        self.tails: dict[tuple[int, int], _Tail] = {}  # (choice, -1 text | tool index)

    def _tail(self, key: tuple[int, int]) -> _Tail:
        t = self.tails.get(key)
        if t is None:
            t = self.tails[key] = _Tail(self.p.restore if key[1] < 0 else self.p.restore_json)
        return t

    def _choice(self, c: ChunkChoice) -> None:
        d = c.delta
        if d.content:
            d.content = self._tail((c.index, -1)).feed(d.content)
        for t in d.tool_calls or ():
            if t.function is not None and t.function.arguments:
                t.function.arguments = self._tail((c.index, t.index)).feed(t.function.arguments)
        if c.finish_reason is not None:
            self._flush(c)

    def _flush(self, c: ChunkChoice) -> None:
        """The choice ends: whatever was held back goes out with its last chunk."""
        d = c.delta if c.delta is not None else Delta()
        c.delta = d
        for (ci, idx), tail in list(self.tails.items()):
            if ci != c.index or not tail.buf:
                continue
            rest = tail.flush()
            if idx < 0:
                d.content = (d.content or "") + rest
            else:
                d.tool_calls = [*(d.tool_calls or ()), ToolCallDelta(
                    index=idx, function=FunctionCallDelta(arguments=rest))]

    def item(self, item: Any) -> Any:
        for chunk in item if isinstance(item, list) else (item,):
            for c in getattr(chunk, "choices", ()) or ():
                if getattr(c, "delta", None) is not None:
                    self._choice(c)
        return item

    async def wrap(self, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
        try:
            async for item in rest:
                yield self.item(item)
        finally:  # the client left: the upstream stream is closed too
            close = getattr(rest, "aclose", None)
            if close is not None:
                await close()
