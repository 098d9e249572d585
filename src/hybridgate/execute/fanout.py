"""Fan-out: one question to several models at once, and their answers merged by a
synthesizer into what they agree on, what only some of them say, and where they
contradict each other, each point attributed to the members that made it.

A route group ``mode: fanout`` names its ``members`` and its ``synthesizer``. The
members are asked in parallel under the request's deadline; one that fails or is too
slow is left out and named (``x-hybridgate-fanout-left-out``). Each member call and the
synthesis are requests of their own through the whole pipeline (keys, limits, routing,
reliability, ledger rows pointing at the client's row with ``parent_id``), and the
answer's ``usage.cost`` is their sum. ``x-hybridgate-fanout: raw`` returns the members'
answers as choices, unmerged. A ``response_format`` asks the synthesizer for JSON with
the three fields; streaming streams the synthesis.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from hybridgate.config.settings import RouteGroup
from hybridgate.core.errors import UpstreamUnavailable
from hybridgate.core.ids import new_id, now
from hybridgate.core.types import (
    AssistantMessage,
    ChatRequest,
    ChatResponse,
    Choice,
    JsonSchemaFormat,
    Message,
    ResponseFormat,
    Usage,
)

SECTIONS = ("consensus", "unique_insights", "contradictions")

SYSTEM = (
    "You are given a question and the answers several AI models gave to it, each headed "
    "by the model's name. Merge them into exactly three Markdown sections:\n"
    "## Consensus\nWhat the answers agree on.\n"
    "## Unique insights\nWhat only some answers say that is worth keeping.\n"
    "## Contradictions\nWhere the answers disagree, each side stated.\n"
    "After every point, name in square brackets the models that made it, for example "
    "[alpha, beta]. Use only what the answers say; under a heading with nothing to say, "
    "write \"None.\"")

SYSTEM_JSON = (
    "You are given a question and the answers several AI models gave to it, each headed "
    "by the model's name. Merge them into JSON with three lists: consensus (what the "
    "answers agree on), unique_insights (what only some answers say that is worth "
    "keeping) and contradictions (where they disagree, each side stated). Each item is "
    "{\"point\": ..., \"members\": [the names of the models that made it]}. Use only "
    "what the answers say.")

_POINT = {"type": "object", "additionalProperties": False, "required": ["point", "members"],
          "properties": {"point": {"type": "string"},
                         "members": {"type": "array", "items": {"type": "string"}}}}
SCHEMA = {"type": "object", "additionalProperties": False, "required": list(SECTIONS),
          "properties": {s: {"type": "array", "items": _POINT} for s in SECTIONS}}


@dataclasses.dataclass
class Answers:
    """What the members said (in the group's order), who was left out, and the cost."""

    said: list[tuple[str, str]]  # (member, answer text)
    left_out: list[str]
    cost: float
    usage: tuple[int, int]  # prompt, completion tokens over the members


def member_request(req: ChatRequest, member: str) -> ChatRequest:
    """The question as each member gets it: free text, whole (the synthesizer is the
    one that streams and follows the response format)."""
    return msgspec.structs.replace(req, model=member, stream=None, stream_options=None,
                                   response_format=None, n=None, native=msgspec.UNSET)


def _text(resp: Any) -> str:
    msg = resp.choices[0].message
    out = msg.content or ""
    for call in msg.tool_calls or ():
        out += f"\n{call.function.name}({call.function.arguments})"
    return out.strip()


def synthesis_request(req: ChatRequest, group: RouteGroup, said: list[tuple[str, str]]
                      ) -> ChatRequest:
    question = "\n".join(f"{m.role}: {m.text()}" for m in req.messages
                         if m.role != "system" and m.text())
    body = "\n\n".join(f"### Answer from {name}\n{text}" for name, text in said)
    wants_json = req.response_format is not None and req.response_format.type != "text"
    fmt = ResponseFormat(type="json_schema", json_schema=JsonSchemaFormat(
        name="fanout", schema=SCHEMA, strict=True)) if wants_json else None
    assert group.synthesizer is not None
    return ChatRequest(model=group.synthesizer, messages=[
        Message(role="system", content=SYSTEM_JSON if wants_json else SYSTEM),
        Message(role="user", content=f"Question:\n{question}\n\n{body}")],
        stream=req.stream, stream_options=req.stream_options, temperature=req.temperature,
        max_tokens=req.token_limit, response_format=fmt, user=req.user)


async def ask_members(group: RouteGroup, req: ChatRequest, seconds: float,
                      ask: Callable[[ChatRequest], Awaitable[Any]]) -> Answers:
    """Every member at once; whoever has not answered within ``seconds`` is left out."""
    tasks = {m: asyncio.ensure_future(ask(member_request(req, m))) for m in group.members}
    done, pending = await asyncio.wait(tasks.values(), timeout=max(0.001, seconds))
    for task in pending:
        task.cancel()
    said, left_out, cost, prompt, completion = [], [], 0.0, 0, 0
    for member, task in tasks.items():
        if task in done and task.exception() is None:
            out = task.result()
            said.append((member, _text(out.response)))
            cost += out.cost or 0.0
            usage = out.response.usage
            if not isinstance(usage, msgspec.UnsetType):
                prompt += usage.prompt_tokens
                completion += usage.completion_tokens
        else:
            left_out.append(member)
    if not said:
        raise UpstreamUnavailable(f"no member of the fan-out '{group.name}' answered "
                                  f"({', '.join(left_out)})", code="fanout_failed")
    return Answers(said, left_out, cost, (prompt, completion))


def raw_response(group: RouteGroup, answers: Answers) -> ChatResponse:
    """``x-hybridgate-fanout: raw``: one choice per member that answered, in order."""
    usage = Usage.of(*answers.usage)
    usage.cost = answers.cost
    return ChatResponse(id=new_id("chatcmpl"), created=now(), model=group.name, choices=[
        Choice(index=i, message=AssistantMessage(content=text), finish_reason="stop")
        for i, (_, text) in enumerate(answers.said)], usage=usage)
