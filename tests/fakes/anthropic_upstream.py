"""A fake Anthropic Messages API (/v1/messages), streaming events included.

Same script as the OpenAI fake: text "echo: <last user text>", or a tool_use block
when ``tool_choice`` asks for one (``any`` / ``tool``) or the user says "use a tool".
With ``thinking`` on, a thinking block (with its signature) comes first, streamed with
``thinking_delta`` and ``signature_delta`` as Anthropic does.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer, write_events


def _event(name: str, doc: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(doc)}\n\n".encode()


def _user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m["role"] == "user":
            c = m["content"]
            if isinstance(c, str):
                return c
            texts = [b.get("text", "") for b in c if b.get("type") == "text"]
            if texts:
                return " ".join(texts)
    return ""


class FakeAnthropic(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.tool_input: dict[str, Any] = {"city": "Paris", "unit": "celsius"}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)

    def _error(self, status: int) -> dict[str, Any]:
        kind = {529: "overloaded_error", 429: "rate_limit_error",
                400: "invalid_request_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": f"fake {kind}"}}

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"path": request.path, "body": body,
                              "headers": dict(request.headers)})
        if self.api_key and request.headers.get("x-api-key") != self.api_key:
            return web.json_response({"type": "error", "error": {
                "type": "authentication_error", "message": "invalid x-api-key"}}, status=401)
        if "max_tokens" not in body or not body.get("messages"):
            return web.json_response(self._error(400), status=400)
        fault = self.next_fault()
        failed = await self.apply_fault(request, fault, self._error(fault.status or 500))
        if failed is not None:
            return failed
        text = _user_text(body["messages"])
        choice = body.get("tool_choice") or {"type": "auto"}
        tools = body.get("tools") or []
        tool = None
        if tools and choice["type"] != "none" and (
                choice["type"] in ("any", "tool") or "use a tool" in text):
            tool = choice.get("name") or tools[0]["name"]
        content: list[dict[str, Any]]
        if tool:
            content = [{"type": "tool_use", "id": "toolu_fake1", "name": tool,
                        "input": self.tool_input}]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": f"echo: {text}"}]
            stop = "end_turn"
        if (body.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
            content.insert(0, {"type": "thinking", "thinking": f"thinking about {text}",
                               "signature": "sig-fake-1"})
        usage = {"input_tokens": 11, "output_tokens": 7, "cache_read_input_tokens": 2,
                 "cache_creation_input_tokens": 0}
        msg = {"id": "msg_fake", "type": "message", "role": "assistant",
               "model": body["model"], "content": content, "stop_reason": stop,
               "stop_sequence": None, "usage": usage}
        if not body.get("stream"):
            return web.json_response(msg)
        events = [_event("message_start", {"type": "message_start", "message": {
            **msg, "content": [], "stop_reason": None,
            "usage": {**usage, "output_tokens": 1}}}), _event("ping", {"type": "ping"})]
        index = 0
        if content[0]["type"] == "thinking":
            events += [
                _event("content_block_start", {
                    "type": "content_block_start", "index": 0,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
                _event("content_block_delta", {
                    "type": "content_block_delta", "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": content[0]["thinking"]}}),
                _event("content_block_delta", {
                    "type": "content_block_delta", "index": 0,
                    "delta": {"type": "signature_delta",
                              "signature": content[0]["signature"]}}),
                _event("content_block_stop", {"type": "content_block_stop", "index": 0})]
            index = 1
        block = content[index]
        if block["type"] == "text":
            events.append(_event("content_block_start", {
                "type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": ""}}))
            words = block["text"].split(" ")
            for i, w in enumerate(words):
                piece = w if i == 0 else " " + w
                events.append(_event("content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": piece}}))
        else:
            events.append(_event("content_block_start", {
                "type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"],
                                  "input": {}}}))
            raw = json.dumps(block["input"])
            for i in range(0, len(raw), 6):
                events.append(_event("content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": raw[i:i + 6]}}))
        events.append(_event("content_block_stop", {"type": "content_block_stop",
                                                     "index": index}))
        events.append(_event("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": 7}}))
        events.append(_event("message_stop", {"type": "message_stop"}))
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await write_events(resp, events, fault, self)
        return resp
