"""Find tool calls in the model's own markup (``<tool_call>{json}</tool_call>``)."""

from __future__ import annotations

import json

from hybridgate.core.ids import new_id
from hybridgate.core.types import FunctionCall, Tool, ToolCall
from hybridgate.providers.local.prompt import TOOL_CALL_CLOSE, TOOL_CALL_OPEN


def _blocks(text: str, start: int) -> list[str]:
    """The bodies of ``<tool_call>...</tool_call>`` blocks from ``start`` (an unclosed last
    block runs to the end). A ``str.find`` walk: linear in the text, whatever it holds,
    with no backtracking to reason about."""
    out = []
    while start >= 0:
        body = start + len(TOOL_CALL_OPEN)
        end = text.find(TOOL_CALL_CLOSE, body)
        out.append(text[body:end if end >= 0 else len(text)].strip())
        if end < 0:
            break
        start = text.find(TOOL_CALL_OPEN, end + len(TOOL_CALL_CLOSE))
    return out


def parse_tool_calls(text: str, tools: list[Tool]) -> tuple[str, list[ToolCall]]:
    """Split generated text into (content before the calls, parsed calls).

    A block that is not JSON, or names a function we did not offer, is not a call:
    then the whole text stays content, so nothing malformed is presented as a call.
    """
    start = text.find(TOOL_CALL_OPEN)
    if start < 0:
        return _bare_json_call(text, tools)
    offered = {t.function.name for t in tools}
    calls: list[ToolCall] = []
    for block in _blocks(text, start):
        try:
            call = _as_call(json.loads(block), offered)
        except ValueError:
            call = None
        if call is None:
            return text, []
        calls.append(call)
    return text[:start].strip(), _distinct(calls)


def _as_call(obj: object, offered: set[str]) -> ToolCall | None:
    """``{"name": <offered>, "arguments" | "parameters": {...} or its JSON}`` as a call;
    None for anything else."""
    if not isinstance(obj, dict) or obj.get("name") not in offered:
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    return _call(obj["name"], args) if isinstance(args, dict) else None


def _call(name: str, args: dict) -> ToolCall:
    return ToolCall(id=new_id("call", sep="_"), function=FunctionCall(
        name=name, arguments=json.dumps(args, ensure_ascii=False)))


FENCE = "```"


def _leading_json(text: str) -> tuple[object, str] | None:
    """The JSON value an answer opens with, bare or in a fenced block (```json ... ```),
    and the text after it; None when it opens with anything else."""
    stripped = text.strip()
    rest = ""
    if stripped.startswith(FENCE):
        nl = stripped.find("\n")
        end = stripped.find(FENCE, nl + 1) if nl >= 0 else -1
        if end < 0:
            return None
        stripped, rest = stripped[nl + 1:end].strip(), stripped[end + len(FENCE):].strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        return json.loads(stripped), rest
    except ValueError:
        return None


def _bare_json_call(text: str, tools: list[Tool]) -> tuple[str, list[ToolCall]]:
    """Small models often drop the markup and answer with just the call's JSON: a bare
    ``{"name", "arguments"}`` object, a list of them, or either in a fenced code block
    (Qwen2.5-Coder's habit). Anything that is not wholly calls to offered functions
    stays content."""
    offered = {t.function.name for t in tools}
    calls: list[ToolCall] = []
    rest = text
    while (found := _leading_json(rest)) is not None:  # one block after another
        value, after = found
        batch = [_as_call(obj, offered)
                 for obj in (value if isinstance(value, list) else [value])]
        if not batch or None in batch:
            break
        calls += batch  # type: ignore[arg-type]
        rest = after
    if not calls:
        return text, []
    return rest, _distinct(calls)


def _distinct(calls: list[ToolCall]) -> list[ToolCall]:
    """The same call written twice is a model repeating itself, not two calls."""
    seen: set[tuple[str, str]] = set()
    out = []
    for c in calls:
        key = (c.function.name, c.function.arguments)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


class ToolMarkupSplitter:
    """Streams content until tool-call markup starts, then holds the rest for parsing.

    A tail that might be the start of ``<tool_call>`` is held back, so the client never
    sees half of the markup as content.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._emitted = False
        self.markup: str | None = None  # everything from the marker on, once seen

    def feed(self, text: str) -> str:
        if self.markup is not None:
            self.markup += text
            return ""
        self._pending += text
        head = self._pending.lstrip()
        if not self._emitted and head.startswith(("{", "[", FENCE)):
            # An answer that opens with JSON (bare or fenced) may be a tool call: hold it.
            self.markup, self._pending = self._pending, ""
            return ""
        if not self._emitted and head and FENCE.startswith(head):
            return ""  # one or two backticks: a fence may be starting
        at = self._pending.find(TOOL_CALL_OPEN)
        if at >= 0:
            out, self.markup = self._pending[:at], self._pending[at:]
            self._pending = ""
            return out
        keep = 0
        for n in range(min(len(TOOL_CALL_OPEN) - 1, len(self._pending)), 0, -1):
            if self._pending.endswith(TOOL_CALL_OPEN[:n]):
                keep = n
                break
        out = self._pending[:len(self._pending) - keep]
        self._pending = self._pending[len(self._pending) - keep:]
        if out.strip():
            self._emitted = True
        else:  # leading whitespace: keep holding until we know what the answer is
            self._pending, out = out + self._pending, ""
        return out

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out
