"""Output checks: no malformed tool call or structured answer reaches a client.

Run on every non-streamed chat answer, whatever provider wrote it, and on a stream's
tool calls once the stream has finished them (held back until then). A tool call must name
an offered function and carry a JSON object that validates against that function's
``parameters``; ``tool_choice: required`` or a named function must yield a call (to that
function); a ``json_schema`` or ``json_object`` answer must parse and validate. What is
wrong only in syntax (a trailing comma, single quotes, a fence around the JSON) is
repaired with ``json-repair`` and validated again; anything else raises
``InvalidOutput``, which the executor answers by asking the model once more with the
validation error, then by the fallbacks, and only then with a clear 502.
"""

from __future__ import annotations

import json
from typing import Any

import json_repair
import jsonschema
import msgspec

from hybridgate.core.errors import InvalidOutput
from hybridgate.core.schemas import validator
from hybridgate.core.types import ChatRequest, ChatResponse, FunctionCall, Message, ToolCall


def offered(req: ChatRequest) -> dict[str, Any]:
    """The tools a model may call for this request, by name."""
    return {t.function.name: t for t in req.tools or []} if req.tool_choice != "none" else {}


def _named(req: ChatRequest) -> str | None:
    """The function ``tool_choice`` names, if it names one."""
    choice = req.tool_choice
    return None if choice is None or isinstance(choice, str) else choice.function.name


def _parse(text: str) -> tuple[Any, bool]:
    """(value, repaired?); raises ValueError when not even a repair gives JSON."""
    try:
        return json.loads(text), False
    except ValueError:
        pass
    value = json_repair.loads(text)
    if value == "" and text.strip() not in ('""', "''"):
        raise ValueError("not JSON")
    return value, True


def _check(value: Any, schema: dict[str, Any] | None, what: str) -> None:
    if schema is None:
        return
    try:
        validator(schema).validate(value)
    except jsonschema.ValidationError as e:
        where = "/".join(map(str, e.absolute_path)) or "the top level"
        raise InvalidOutput(f"{what} does not match its schema at {where}: "
                            f"{e.message}") from None


def check_call(call: ToolCall, tools: dict[str, Any]) -> None:
    tool = tools.get(call.function.name)
    if tool is None:
        raise InvalidOutput(f"the model called '{call.function.name}', which is not an "
                            "offered tool")
    what = f"the arguments of the call to '{call.function.name}'"
    try:
        args, repaired = _parse(call.function.arguments or "{}")
    except ValueError:
        raise InvalidOutput(f"{what} are not JSON") from None
    if not isinstance(args, dict):
        raise InvalidOutput(f"{what} are not a JSON object")
    _check(args, tool.function.parameters, what)
    if repaired:
        call.function.arguments = json.dumps(args, ensure_ascii=False)


def _check_calls(calls: list[ToolCall], tools: dict[str, Any], named: str | None) -> None:
    for call in calls:
        check_call(call, tools)
        if named is not None and call.function.name != named:
            raise InvalidOutput(f"tool_choice names '{named}' but the model called "
                                f"'{call.function.name}'")


def _must_call(req: ChatRequest) -> bool:
    """tool_choice required, or a named function, with tools offered."""
    return bool(offered(req)) and (req.tool_choice == "required" or _named(req) is not None)


def _check_text(req: ChatRequest, msg: Any, calls: list[ToolCall]) -> None:
    """An answer without calls: one was required, or it must be response_format's JSON."""
    if calls:
        return
    if _must_call(req):
        raise InvalidOutput("tool_choice requires a tool call and the model answered "
                            "with text")
    _check_format(req, msg)


def check_chat(req: ChatRequest, resp: ChatResponse) -> None:
    """Raises InvalidOutput (its ``answer`` set, for a re-ask); repairs syntax in place."""
    tools, named = offered(req), _named(req)
    for choice in resp.choices:
        if choice.finish_reason == "length":
            continue  # cut off at max_tokens, as asked: returned as it is (like OpenAI)
        msg = choice.message
        calls = msg.tool_calls if isinstance(msg.tool_calls, list) else []
        try:
            _check_calls(calls, tools, named)
            _check_text(req, msg, calls)
        except InvalidOutput as e:
            e.answer = said(msg.content, calls)
            raise


def _check_format(req: ChatRequest, msg: Any) -> None:
    """A text answer against ``response_format`` (json_object / json_schema)."""
    fmt = req.response_format
    if fmt is None or fmt.type == "text":
        return
    try:
        value, repaired = _parse(msg.content or "")
    except ValueError:
        raise InvalidOutput("the answer is not the JSON that response_format asks "
                            "for") from None
    if fmt.type == "json_object" and not isinstance(value, dict):
        raise InvalidOutput("response_format json_object: the answer is not a JSON object")
    if fmt.type == "json_schema" and fmt.json_schema is not None:
        _check(value, fmt.json_schema.schema, "the answer")
    if repaired:
        msg.content = json.dumps(value, ensure_ascii=False)


def hold(req: ChatRequest) -> int:
    """How much of a stream execute holds back to check: ``ALL`` of it when the answer
    must be a call or JSON (tool_choice required / named, response_format json_object /
    json_schema), its ``CALLS`` when tools are offered, else nothing."""
    fmt = req.response_format
    if (fmt is not None and fmt.type != "text") or _must_call(req):
        return ALL
    return CALLS if offered(req) else NOTHING


NOTHING, CALLS, ALL = 0, 1, 2


def _chunks(held: list[Any]) -> Any:
    for item in held:
        yield from item if isinstance(item, list) else (item,)


def check_stream(req: ChatRequest, held: list[Any]) -> None:
    """A held stream (``hold``), checked like a non-streamed answer: its tool calls once
    the stream finished them, and with ``ALL`` its text against response_format and a
    required call's presence. What was repaired is rewritten in the held deltas (the
    first delta carries it all). Raises InvalidOutput, with ``answer`` set."""
    calls = _check_stream_calls(req, held)
    if hold(req) != ALL:
        return
    text: list[Any] = []  # the content deltas, in order
    cut = False
    for chunk in _chunks(held):
        for c in chunk.choices:
            cut = cut or c.finish_reason == "length"
            if c.delta.content:
                text.append(c.delta)
    if cut:
        return  # cut off at max_tokens, as asked: passed on as it is
    content = "".join(d.content for d in text)
    msg = Message(role="assistant", content=content)
    try:
        _check_text(req, msg, calls)
    except InvalidOutput as e:
        e.answer = said(content, calls)
        raise
    if msg.content != content:  # repaired
        for i, d in enumerate(text):
            d.content = msg.content if i == 0 else ""


def _check_stream_calls(req: ChatRequest, held: list[Any]) -> list[ToolCall]:
    """A stream's tool calls, held back until the stream finished them: assembled from
    their deltas and checked like a non-streamed answer's; when only their syntax was
    repaired, the held deltas are rewritten so the client assembles the repaired
    arguments (the first delta of a call carries them all). Raises InvalidOutput, with
    the assembled calls as its ``answer``."""
    parts: dict[tuple[int, int], list[Any]] = {}  # (choice, call) -> its deltas, in order
    for chunk in _chunks(held):
        for c in chunk.choices:
            for d in c.delta.tool_calls or ():
                parts.setdefault((c.index, d.index), []).append(d)
    calls = [ToolCall(id=next((d.id for d in deltas if d.id), ""), function=FunctionCall(
        name=next((d.function.name for d in deltas if d.function and d.function.name), ""),
        arguments="".join(d.function.arguments or "" for d in deltas if d.function)))
        for deltas in parts.values()]
    sent = [c.function.arguments for c in calls]
    try:
        _check_calls(calls, offered(req), _named(req))
    except InvalidOutput as e:
        e.answer = said(None, calls)
        raise
    for call, before, deltas in zip(calls, sent, parts.values(), strict=True):
        if call.function.arguments != before:  # repaired: the first delta carries it all
            with_args = [d for d in deltas if d.function is not None]
            for i, d in enumerate(with_args):
                d.function.arguments = call.function.arguments if i == 0 else ""
    return calls


def said(content: str | None, calls: list[ToolCall] | None) -> str:
    """What the model answered, as text for the feedback of a re-ask."""
    out = content or ""
    out += "".join(f"\n{c.function.name}({c.function.arguments})" for c in calls or ())
    return out.strip()


def with_feedback(req: ChatRequest, error: InvalidOutput) -> ChatRequest:
    """The request once more, with the model's invalid answer (``error.answer``) and
    what was wrong with it, so the model can correct itself (one re-ask)."""
    fix = Message(role="user", content=f"That answer was invalid: {error.message}. "
                  "Answer again, correctly.")
    return msgspec.structs.replace(
        req, messages=[*req.messages, Message(role="assistant",
                                              content=error.answer or "(no answer)"), fix],
        native=msgspec.UNSET)  # the client's own body no longer says what we ask
