"""Semantic checks a JSON schema cannot express; every provider relies on them."""

from __future__ import annotations

from typing import Any

import msgspec

from hybridgate.core.errors import InvalidRequest
from hybridgate.core.schemas import check_schema
from hybridgate.core.types import ChatRequest, CompletionRequest, EmbeddingRequest, Message

MAX_STOPS = 4  # OpenAI's own limit
MAX_STOP_CHARS = 1000  # held-back text is matched against every stop prefix per token


def _check_stop(stops: list[str]) -> None:
    """Stop strings are client text the token loop scans at every token: bound them."""
    if len(stops) > MAX_STOPS:
        raise InvalidRequest(f"stop: at most {MAX_STOPS} sequences", param="stop")
    if any(len(s) > MAX_STOP_CHARS for s in stops):
        raise InvalidRequest(f"stop: each sequence may have at most {MAX_STOP_CHARS} "
                             "characters", param="stop")


def check_chat(req: ChatRequest) -> None:
    _check_stop(req.stop_list)
    call_ids: set[str] = set()
    for i, m in enumerate(req.messages):
        if m.role == "assistant" and m.tool_calls:
            call_ids.update(c.id for c in m.tool_calls)
        if m.role == "tool":
            if not m.tool_call_id:
                raise InvalidRequest(f"messages[{i}]: a tool message needs tool_call_id",
                                     param=f"messages[{i}].tool_call_id")
            if m.tool_call_id not in call_ids:
                raise InvalidRequest(
                    f"messages[{i}]: tool_call_id '{m.tool_call_id}' does not match any "
                    "earlier assistant tool call", param=f"messages[{i}].tool_call_id")
        if m.role in ("user", "system", "developer") and m.content is None:
            raise InvalidRequest(f"messages[{i}]: content is required for role '{m.role}'",
                                 param=f"messages[{i}].content")
    names = [t.function.name for t in req.tools or []]
    if len(set(names)) != len(names):
        raise InvalidRequest("tools: function names must be unique", param="tools")
    for i, t in enumerate(req.tools or []):
        if t.function.parameters is not None:
            check_schema(t.function.parameters, f"tools[{i}].function.parameters")
    choice = req.tool_choice
    if choice is not None and choice != "none" and not req.tools:
        raise InvalidRequest("tool_choice is set but no tools were given", param="tool_choice")
    if choice is not None and not isinstance(choice, str) and choice.function.name not in names:
        raise InvalidRequest(f"tool_choice names '{choice.function.name}', which is not in tools",
                             param="tool_choice")
    fmt = req.response_format
    if fmt is not None and fmt.type == "json_schema":
        if fmt.json_schema is None:
            raise InvalidRequest("response_format json_schema needs a json_schema object",
                                 param="response_format.json_schema")
        check_schema(fmt.json_schema.schema or {}, "response_format.json_schema.schema")


def _check_inputs(value: object, param: str) -> None:
    """A string, or a non-empty list of strings, of token ids, or of token-id lists."""
    if isinstance(value, str):
        if not value:
            raise InvalidRequest(f"{param} must not be empty", param=param)
        return
    assert isinstance(value, list)
    if not value:
        raise InvalidRequest(f"{param} must not be empty", param=param)
    kinds = {type(v) for v in value}
    if len(kinds) != 1:
        raise InvalidRequest(f"{param} mixes strings, token ids and token lists", param=param)
    if kinds == {str} and not all(value):
        raise InvalidRequest(f"{param} strings must not be empty", param=param)
    if kinds == {list} and not all(value):
        raise InvalidRequest(f"{param} token lists must not be empty", param=param)


def check_embedding(req: EmbeddingRequest) -> None:
    _check_inputs(req.input, "input")


def check_completion(req: CompletionRequest) -> None:
    _check_stop(req.stop_list)
    _check_inputs(req.prompt, "prompt")


def estimate_input_tokens(messages: list[Message], tools: Any) -> int:
    """What a prompt will take, for the count-tokens endpoints (Anthropic's, Responses'):
    about four characters a token over the text, the tool calls and the tool
    definitions, as the gateway estimates usage elsewhere. No tokenizer: the model may
    be any upstream's."""
    chars = sum(len(m.text()) + sum(len(c.function.arguments) for c in m.tool_calls or ())
                for m in messages)
    chars += sum(len(msgspec.json.encode(t)) for t in tools or ())
    return -(-chars // 4)
