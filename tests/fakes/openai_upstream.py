"""A fake OpenAI API: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models.

Answers are deterministic: the assistant says "echo: <last user text>"; when tools are
offered and ``tool_choice`` asks for a call (or the user text contains "use a tool")
it calls the chosen tool with ``tool_arguments``. Streams follow OpenAI's framing,
including tool-call argument deltas split across chunks and the include_usage chunk.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer, Fault, write_events


def _words(text: str) -> int:
    return max(1, len(text.split()))


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if p.get("type") == "text")
            return c or ""
    return ""


def _frame(doc: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


TOOL_ARGUMENTS = '{"city": "Paris", "unit": "celsius"}'


class FakeOpenAI(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.tool_arguments: str | list[str] = TOOL_ARGUMENTS
        self.usage_override: dict[str, Any] | None = None  # a fixed usage for cost tests
        self.omit_usage = False  # act like an upstream that never reports usage
        # the answer's text instead of "echo: ...": one per request, in order (the last
        # one repeats), like tool_arguments
        self.content: list[str] | None = None
        self.by_model: dict[str, str] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)

    def _error(self, status: int) -> dict[str, Any]:
        return {"error": {"message": f"fake upstream error {status}", "type": "server_error",
                          "param": None, "code": None}}

    async def _begin(self, request: web.Request, faults: bool = True
                     ) -> tuple[dict[str, Any], Fault, web.StreamResponse | None]:
        """Record the request, check the key, apply the next scripted fault.

        Returns (body, fault, response): a response means answer with it right away.
        """
        body = await request.json()
        self.requests.append({"path": request.path, "body": body,
                              "headers": dict(request.headers)})
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return body, Fault(), web.json_response({"error": {
                "message": "Incorrect API key provided", "type": "invalid_request_error",
                "param": None, "code": "invalid_api_key"}}, status=401)
        if not faults:
            return body, Fault(), None
        fault = self.next_fault()
        return body, fault, await self.apply_fault(request, fault,
                                                   self._error(fault.status or 500))

    def _plan(self, body: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        text = _last_user_text(body.get("messages", []))
        tools = body.get("tools") or []
        choice = body.get("tool_choice", "auto")
        if tools and choice != "none" and (choice == "required" or isinstance(choice, dict)
                                           or "use a tool" in text):
            name = (choice["function"]["name"] if isinstance(choice, dict)
                    else tools[0]["function"]["name"])
            args = self.tool_arguments
            if isinstance(args, list):  # one per request, in order (the last one repeats)
                args = args.pop(0) if len(args) > 1 else args[0]
            return "", {"id": "call_fake1", "type": "function",
                        "function": {"name": name, "arguments": args}}
        if body.get("model") in self.by_model:  # a scripted answer per upstream model
            return self.by_model[body["model"]], None
        if self.content:
            return (self.content.pop(0) if len(self.content) > 1 else self.content[0]), None
        return f"echo: {text}", None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, fault, early = await self._begin(request)
        if early is not None:
            return early
        content, call = self._plan(body)
        prompt = sum(_words(json.dumps(m.get("content"))) for m in body.get("messages", []))
        pieces = [p + " " for p in content.split(" ")][:-1] + [content.split(" ")[-1]] \
            if content else []
        completion = len(pieces) + (3 if call else 0)
        usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                                 "total_tokens": prompt + completion}
        if self.usage_override is not None:
            usage = dict(self.usage_override)
        model = body.get("model", "fake")
        finish = "tool_calls" if call else "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": content or None,
                                       "refusal": None}
            if call:
                message["tool_calls"] = [call]
            doc = {"id": "chatcmpl-fake", "object": "chat.completion",
                   "created": int(time.time()), "model": model, "system_fingerprint": "fp_fake",
                   "choices": [{"index": 0, "message": message, "logprobs": None,
                                "finish_reason": finish}], "usage": usage}
            if self.omit_usage:
                del doc["usage"]
            return web.json_response(doc)
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            return _frame({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                "finish_reason": finish_reason}]})

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": p}) for p in pieces]
        if call:
            args = call["function"]["arguments"]
            events.append(chunk({"tool_calls": [{"index": 0, "id": call["id"],
                                                 "type": "function", "function": {
                                                     "name": call["function"]["name"],
                                                     "arguments": ""}}]}))
            events += [chunk({"tool_calls": [{"index": 0,
                                              "function": {"arguments": args[i:i + 7]}}]})
                       for i in range(0, len(args), 7)]
        events.append(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage") and not self.omit_usage:
            events.append(_frame({**base, "choices": [], "usage": usage}))
        return await self._stream(request, events, fault)

    async def _stream(self, request: web.Request, events: list[bytes],
                      fault: Fault) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await write_events(resp, [*events, b"data: [DONE]\n\n"], fault, self)
        return resp

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body, fault, early = await self._begin(request)
        if early is not None:
            return early
        prompt = body.get("prompt", "")
        text = " and so on"
        usage = {"prompt_tokens": _words(str(prompt)), "completion_tokens": 3,
                 "total_tokens": _words(str(prompt)) + 3}
        base = {"id": "cmpl-fake", "object": "text_completion", "created": int(time.time()),
                "model": body.get("model", "fake")}
        if not body.get("stream"):
            return web.json_response({**base, "choices": [
                {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
                "usage": usage})
        events = [_frame({**base, "choices": [{"index": 0, "text": w, "logprobs": None,
                                               "finish_reason": None}]})
                  for w in (" and", " so", " on")]
        events.append(_frame({**base, "choices": [{"index": 0, "text": "", "logprobs": None,
                                                   "finish_reason": "stop"}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(_frame({**base, "choices": [], "usage": usage}))
        return await self._stream(request, events, fault)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body, _, early = await self._begin(request, faults=False)
        if early is not None:
            return early
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i,
                 "embedding": [float(len(t)), 1.0, 0.0]} for i, t in enumerate(inputs)]
        n = sum(_words(t) for t in inputs)
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": n, "total_tokens": n}})

    async def models(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": [
            {"id": "gpt-fake", "object": "model", "created": 0, "owned_by": "fake"}]})
