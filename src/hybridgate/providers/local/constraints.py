"""Grammars that make the local model's output well-formed by construction.

llama.cpp samples only tokens its GBNF grammar allows. We build grammars for
``response_format`` (any JSON, or a JSON Schema) and for forced tool calls
(``tool_choice: required`` or a named function): the model must write
``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` with arguments that
match the tool's parameter schema.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from llama_cpp import LlamaGrammar
from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from hybridgate.core.types import Tool
from hybridgate.providers.local.prompt import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

_ROOT = re.compile(r"^root\s*::=", re.M)


@lru_cache(maxsize=256)
def _grammar(text: str) -> LlamaGrammar:
    return LlamaGrammar.from_string(text, verbose=False)


# The converter's string character admits raw control characters (a newline...), which
# JSON forbids and which small models repeat until max_tokens; llama.cpp's own JSON
# grammar (and its later converter) exclude them.
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'
# Strings the schema does not bound are bounded here, to as many characters as the
# answer may have tokens (at most MAX_STRING): a model caught repeating itself inside a
# JSON value must close it, so the answer still parses (and is checked) rather than
# running to max_tokens. A schema's own maxLength stays as it is.
MAX_STRING = 2000
_OPEN_STRING = 'string ::= "\\"" char* "\\"" space'
_OPEN_JSON_STRING = ')* "\\"" ws'  # the end of JSON_GBNF's string rule


def string_bound(max_tokens: int) -> int:
    return max(16, min(MAX_STRING, max_tokens))


def any_json(max_string: int = MAX_STRING) -> LlamaGrammar:
    assert JSON_GBNF.count(_OPEN_JSON_STRING) == 1  # llama-cpp-python's text, pinned
    return _grammar(JSON_GBNF.replace(_OPEN_JSON_STRING,
                                      f'){{0,{max_string}}} "\\"" ws'))


def _schema_gbnf(schema: dict[str, Any], max_string: int) -> str | None:
    """GBNF for a schema, or None when llama.cpp's converter cannot express it."""
    try:
        text = json_schema_to_gbnf(json.dumps(schema))  # declared order: what models write
    except Exception:
        return None
    return text.replace(_LOOSE_CHAR, _JSON_CHAR).replace(
        _OPEN_STRING, f'string ::= "\\"" char{{0,{max_string}}} "\\"" space')


def json_schema(schema: dict[str, Any], max_string: int = MAX_STRING) -> LlamaGrammar:
    """Schema-exact grammar; falls back to any JSON (the output is validated after)."""
    text = _schema_gbnf(schema, max_string)
    return _grammar(text) if text is not None else any_json(max_string)


def _call_rule(tools: list[Tool], max_string: int) -> str:
    """GBNF whose ``call`` rule is one ``{"name", "arguments"}`` object for one of
    ``tools``, its arguments matching that tool's parameters where the converter can say
    so (else only the name is constrained)."""
    options = []
    for t in tools:
        params = t.function.parameters or {"type": "object"}
        options.append({"type": "object",
                        "properties": {"name": {"const": t.function.name},
                                       "arguments": params},
                        "required": ["name", "arguments"], "additionalProperties": False})
    schema: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
    body = _schema_gbnf(schema, max_string)
    if body is None:  # a schema the converter cannot express: constrain the name only
        names = [{"type": "object", "properties": {"name": {"const": t.function.name},
                                                    "arguments": {"type": "object"}},
                  "required": ["name", "arguments"], "additionalProperties": False}
                 for t in tools]
        body = _schema_gbnf(names[0] if len(names) == 1 else {"anyOf": names},
                            max_string) or JSON_GBNF
    return _ROOT.sub("call ::=", body, count=1)


def tool_call(tools: list[Tool], max_string: int = MAX_STRING) -> LlamaGrammar:
    """Exactly one call to one of ``tools``, wrapped in the tool-call markup."""
    wrapper = (f'root ::= {json.dumps(TOOL_CALL_OPEN)} "\\n" call "\\n" '
               f"{json.dumps(TOOL_CALL_CLOSE)}\n")
    return _grammar(wrapper + _call_rule(tools, max_string))


def text_or_calls(tools: list[Tool], max_string: int = MAX_STRING) -> LlamaGrammar:
    """``tool_choice: auto``: free text, or up to 8 valid calls in any of the forms small
    models write (the template's markup, a fenced JSON block, a bare object). Text may
    not start like a call, so a call, once begun, is a valid one."""
    open_, close = json.dumps(TOOL_CALL_OPEN), json.dumps(TOOL_CALL_CLOSE)
    wrapper = (
        "root ::= hg-calls | hg-text\n"
        'hg-calls ::= hg-one ("\\n" "\\n"? hg-one){0,7}\n'
        f'hg-one ::= {open_} "\\n" call "\\n" {close} | "```json\\n" call "\\n```" | call\n'
        # text: anything but a call's start; a fence is text unless it says ```json
        'hg-text ::= [^<{`\\x00] hg-any | "`" ([^`] hg-any)? | "``" ([^`] hg-any)? | '
        '"```" [^j`] hg-any\n'
        'hg-any ::= [^\\x00]*\n')
    return _grammar(wrapper + _call_rule(tools, max_string))
