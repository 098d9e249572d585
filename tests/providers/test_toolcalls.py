import json

import msgspec

from hybridgate.core.types import Tool
from hybridgate.providers.local.toolcalls import ToolMarkupSplitter, parse_tool_calls

TOOLS = [msgspec.convert({"type": "function", "function": {"name": "f"}}, Tool)]


def test_parses_markup_blocks():
    text = 'Sure.\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>' \
           '<tool_call>{"name": "f", "arguments": {"a": 2}}</tool_call>'
    content, calls = parse_tool_calls(text, TOOLS)
    assert content == "Sure."
    assert [json.loads(c.function.arguments) for c in calls] == [{"a": 1}, {"a": 2}]
    assert all(c.id.startswith("call_") for c in calls)


def test_bare_json_call():
    content, calls = parse_tool_calls('{"name": "f", "arguments": {"x": "y"}}', TOOLS)
    assert content == "" and calls[0].function.name == "f"


def test_unknown_function_or_bad_json_stays_content():
    for text in ['<tool_call>{"name": "g", "arguments": {}}</tool_call>',
                 '<tool_call>{"name": "f", "arguments": </tool_call>', '{"a": 1}']:
        content, calls = parse_tool_calls(text, TOOLS)
        assert calls == [] and content == text


def test_splitter_holds_partial_marker_and_json():
    s = ToolMarkupSplitter()
    assert s.feed("Hello <tool") == "Hello "
    assert s.feed("_call>{") == ""
    assert s.markup == "<tool_call>{"
    s2 = ToolMarkupSplitter()
    assert s2.feed("  {") == "" and s2.markup == "  {"
    s3 = ToolMarkupSplitter()
    assert s3.feed("Hi <to") == "Hi " and s3.feed("day") == "<today"


def test_parsing_is_linear_on_long_whitespace():
    """Model output is scanned at every answer: a megabyte of one character is quick."""
    import time

    t0 = time.perf_counter()
    text, calls = parse_tool_calls("<tool_call>" + " " * 1_000_000 + "x", TOOLS)
    assert calls == [] and time.perf_counter() - t0 < 0.5


WEATHER = [msgspec.convert({"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object"}}}, Tool)]


def test_fenced_json_calls_are_calls():
    """Qwen2.5-Coder-0.5B writes its calls as fenced JSON (the reliability issue saw 19
    of 20 BFCL answers come back with no call because of it)."""
    for text in ('```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
                 '```\n{"name": "get_weather", "parameters": {"city": "Paris"}}\n```\n',
                 '  {"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}'):
        content, calls = parse_tool_calls(text, WEATHER)
        assert content == "" and len(calls) == 1, text
        assert json.loads(calls[0].function.arguments) == {"city": "Paris"}


def test_several_calls_in_a_list_and_text_after_the_fence():
    text = ('```json\n[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
            '{"name": "get_weather", "arguments": {"city": "Rome"}}]\n```\nChecking both.')
    content, calls = parse_tool_calls(text, WEATHER)
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Rome"]
    assert content == "Checking both."


def test_fenced_code_that_is_not_a_call_stays_content():
    for text in ('```python\nprint("hi")\n```', '```json\n{"name": "other"}\n```',
                 '```json\n{"name": "get_weather", "arguments": 5}\n```', '```json\n{broken'):
        content, calls = parse_tool_calls(text, WEATHER)
        assert calls == [] and content == text


def test_streaming_holds_a_leading_fence_for_parsing():
    s = ToolMarkupSplitter()
    out = "".join(s.feed(p) for p in ["`", "``json\n", '{"name": "get_weather", ',
                                      '"arguments": {}}\n```'])
    assert out == "" and s.markup is not None and s.markup.startswith("```json")
    plain = ToolMarkupSplitter()
    assert plain.feed("Hello ") == "Hello " and plain.markup is None


def test_consecutive_fenced_calls_are_all_calls_and_repeats_are_one():
    """Parallel calls written as one fenced block each; a model repeating the same call
    (SmolLM2 under the auto grammar does) gives that call once."""
    paris = '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```'
    rome = '```json\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n```'
    content, calls = parse_tool_calls(f"{paris}\n\n{rome}\n{paris}\nDone.", WEATHER)
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Rome"]
    assert content == "Done."
    block = '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'
    assert len(parse_tool_calls(block * 3, TOOLS)[1]) == 1
