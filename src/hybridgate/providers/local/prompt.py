"""Turn OpenAI messages into what a GGUF chat template expects.

Templates follow Hugging Face conventions: tool-call ``arguments`` are objects, not
JSON strings. For templates that know nothing of tools (SmolLM2's, for one) we
describe the tools in the system message in the widespread Hermes/Qwen markup and
render calls and results as text, so every chat model can take part in tool use.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from hybridgate.core.errors import InvalidRequest
from hybridgate.core.types import Message, Tool

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"


def tools_system_text(tools: list[dict[str, Any]]) -> str:
    sigs = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    return ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n"
            f"<tools>\n{sigs}\n</tools>\n\nFor each function call, return a json object with "
            "function name and arguments within <tool_call></tool_call> XML tags:\n"
            '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
            "</tool_call>")


def _arguments(raw: str, where: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidRequest(f"{where}.function.arguments is not valid JSON",
                             param=f"{where}.function.arguments") from None


def _text(msg: Message, i: int) -> str:
    if isinstance(msg.content, list):
        for part in msg.content:
            if part.type != "text":
                raise InvalidRequest(
                    f"content part type '{part.type}' is not supported by local models",
                    param=f"messages[{i}].content")
    return msg.text()


def template_messages(messages: list[Message], tools: list[Tool] | None,
                      native_tools: bool) -> tuple[list[dict[str, Any]], list[dict] | None]:
    """Returns (messages for the template, tools for the template or None)."""
    tool_dicts = [msgspec.to_builtins(t) for t in tools] if tools else None
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        role = "system" if m.role == "developer" else m.role
        text = _text(m, i)
        if role == "assistant" and m.tool_calls:
            calls = [{"name": c.function.name,
                      "arguments": _arguments(c.function.arguments,
                                              f"messages[{i}].tool_calls[{j}]")}
                     for j, c in enumerate(m.tool_calls)]
            if native_tools:
                out.append({"role": "assistant", "content": text,
                            "tool_calls": [{"type": "function", "function": c} for c in calls]})
            else:
                blocks = "\n".join(f"{TOOL_CALL_OPEN}\n{json.dumps(c, ensure_ascii=False)}\n"
                                   f"{TOOL_CALL_CLOSE}" for c in calls)
                out.append({"role": "assistant", "content": (text + "\n" + blocks).strip()})
        elif role == "tool" and not native_tools:
            out.append({"role": "user",
                        "content": f"<tool_response>\n{text}\n</tool_response>"})
        else:
            out.append({"role": role, "content": text})
    if tool_dicts and not native_tools:
        desc = tools_system_text(tool_dicts)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + desc}
        else:
            out.insert(0, {"role": "system", "content": desc})
        return out, None
    return out, tool_dicts
