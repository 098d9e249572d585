"""How the local model writes tool calls under ``tool_choice: auto``, and how many of
them the gateway recognises as calls (a small probe, not BFCL: ten hand-written
questions over three tools, greedy decoding).

    python bench/local_tool_calls.py [--model qwen2.5-coder-0.5b-instruct]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections import Counter

import msgspec

from hybridgate.config.settings import LocalModel
from hybridgate.core.types import ChatRequest
from hybridgate.providers.local import LocalProvider
from hybridgate.providers.local.toolcalls import FENCE, parse_tool_calls

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather for a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "unit": {"type": "string",
                                                 "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "convert_currency", "description": "Convert an amount between currencies",
        "parameters": {"type": "object", "properties": {
            "amount": {"type": "number"}, "from": {"type": "string"},
            "to": {"type": "string"}}, "required": ["amount", "from", "to"]}}},
    {"type": "function", "function": {
        "name": "send_email", "description": "Send an email",
        "parameters": {"type": "object", "properties": {
            "to": {"type": "string"}, "subject": {"type": "string"},
            "body": {"type": "string"}}, "required": ["to", "subject"]}}},
]
QUESTIONS = [
    "What's the weather in Paris?", "How warm is it in Tokyo right now, in fahrenheit?",
    "Convert 100 USD to EUR.", "How many yen is 50 pounds?",
    "Email bob@example.com that the meeting moved to 3pm, subject: meeting",
    "Is it raining in London?", "Change 20 euros into dollars please",
    "Weather for Berlin in celsius", "Send an email to alice@corp.io with subject Hello",
    "What is the temperature in Madrid?"]


def form(text: str) -> str:
    s = text.strip()
    if "<tool_call>" in s:
        return "<tool_call> markup"
    if s.startswith(FENCE):
        return "fenced JSON"
    if s.startswith("["):
        return "JSON list"
    if s.startswith("{"):
        return "bare JSON object"
    return "text"


async def run(model: str) -> None:
    p = LocalProvider(LocalModel(name="m", model=model, n_threads=os.cpu_count() or 2,
                                 n_ctx=4096))
    await p.start()
    forms: Counter[str] = Counter()
    recognised = 0
    try:
        for q in QUESTIONS:
            req = msgspec.convert({"model": "m", "messages": [{"role": "user", "content": q}],
                                   "tools": TOOLS, "tool_choice": "auto", "temperature": 0,
                                   "max_tokens": 128}, ChatRequest)
            resp = await p.chat(req)
            msg = resp.choices[0].message
            calls = msg.tool_calls if isinstance(msg.tool_calls, list) else []
            recognised += bool(calls)
            # the raw form, from a second parse of the text the model wrote
            plan = await p._plan(lambda r=req: p._plan_chat(r))
            raw = (await p._generate(plan.tokens, plan.params)).text
            forms[form(raw)] += 1
            assert bool(calls) == bool(parse_tool_calls(raw, plan.tools or [])[1])
    finally:
        await p.close()
    print(f"\n{model}, {len(QUESTIONS)} questions, tool_choice auto, greedy\n")
    for f, n in forms.most_common():
        print(f"  written as {f:<20} {n:>3}")
    print(f"\n  returned as tool_calls: {recognised} of {len(QUESTIONS)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    asyncio.run(run(ap.parse_args().model))


if __name__ == "__main__":
    main()
