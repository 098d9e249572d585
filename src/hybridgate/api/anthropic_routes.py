"""Anthropic's dialect: ``POST /v1/messages``, ``POST /v1/messages/count_tokens``, and
``GET /v1/models`` in Anthropic's shape for clients that send ``anthropic-version``.

The same stages as every other API (``pipeline``: keys, routing, reliability, ledger):
the Messages request becomes the internal chat request, and the answer goes back in
Anthropic's shape, streamed with its event sequence. Keys come as ``x-api-key`` (or
``Authorization: Bearer``); ``anthropic-version`` is accepted and not needed. Errors use
Anthropic's shape, ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

import time

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hybridgate.api import anthropic_dialect as wire
from hybridgate.api.body import decode, read_body
from hybridgate.api.openai_routes import OpenAIRoutes, response_headers
from hybridgate.api.sse import encoded_response
from hybridgate.api.validate import check_chat, estimate_input_tokens
from hybridgate.core.errors import GatewayError, InvalidRequest, ModelNotFound


def error_response(err: GatewayError) -> Response:
    return Response(msgspec.json.encode(wire.error_doc(err)), status_code=err.status,
                    media_type="application/json", headers=err.headers or None)


class AnthropicRoutes:
    def __init__(self, openai: OpenAIRoutes) -> None:
        self.api = openai  # the caller, residency and deadline headers are the same
        self.pipeline = openai.pipeline

    async def messages(self, request: Request) -> Response:
        try:
            return await self._messages(request)
        except GatewayError as e:
            return error_response(e)

    async def _messages(self, request: Request) -> Response:
        who = self.api._caller(request)
        deadline = self.api._deadline(request)
        body = await read_body(request, self.api.limit)
        areq = decode(body, wire.MessagesRequest)
        req = wire.to_chat(areq, body)
        out = await self.pipeline.run(self.api.call(request, "messages", req, who, body,
                                                    check_chat, deadline))
        msg_id = wire.new_message_id()
        headers = response_headers(out)
        if out.rest is not None:
            assert out.held is not None and out.record is not None
            return encoded_response(out.held, out.rest, out.record,
                                    wire.StreamEncoder(areq.model, msg_id), headers)
        return Response(msgspec.json.encode(wire.to_message(out.response, areq.model, msg_id)),
                        media_type="application/json", headers=headers)

    async def count_tokens(self, request: Request) -> Response:
        """An estimate (``estimate_input_tokens``): what the prompt, system and tool
        definitions will take."""
        try:
            who = self.api._caller(request)
            creq = decode(await read_body(request, self.api.limit), wire.CountRequest)
            self.pipeline.routes.pinned(creq.model, who.allowed)  # 404 / 403 as /messages
            n = estimate_input_tokens(wire.messages(creq.system, creq.messages), creq.tools)
            return Response(msgspec.json.encode({"input_tokens": n}),
                            media_type="application/json")
        except GatewayError as e:
            return error_response(e)

    # ------------------------------------------------------------------ models

    @staticmethod
    def speaks(request: Request) -> bool:
        """The anthropic SDK (and Claude Code) send ``anthropic-version`` on every call;
        OpenAI clients never do. ``/v1/models`` answers each in its own shape."""
        return "anthropic-version" in request.headers

    def _models(self, request: Request) -> list[dict[str, str | None]]:
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.api.started))
        return [{"type": "model", "id": c.id, "display_name": c.id, "created_at": created,
                 "lifecycle": "active", "deprecated_at": None, "retires_at": None}
                for c in self.api.cards(self.api._caller(request)).values()]

    async def list_models(self, request: Request) -> Response:
        """Anthropic's page: ``limit`` (1-1000, default 20), ``after_id`` / ``before_id``
        cursors, ``has_more``, ``first_id`` and ``last_id``."""
        try:
            q = request.query_params
            try:
                limit = int(q.get("limit", "20"))
            except ValueError:
                limit = 0
            if not 1 <= limit <= 1000:
                raise InvalidRequest("limit must be an integer from 1 to 1000", param="limit")
            models = self._models(request)
            ids = [m["id"] for m in models]
            start, end = 0, len(models)
            for cursor, is_after in ((q.get("after_id"), True), (q.get("before_id"), False)):
                if cursor is None:
                    continue
                if cursor not in ids:
                    raise InvalidRequest(f"no model with id '{cursor}'", param="after_id"
                                         if is_after else "before_id")
                if is_after:
                    start = ids.index(cursor) + 1
                else:
                    end = ids.index(cursor)
            if q.get("before_id") is not None and q.get("after_id") is None:
                start = max(start, end - limit)  # the page just before the cursor
            page = models[start:end][:limit]
            doc = {"data": page, "has_more": start + len(page) < end,
                   "first_id": page[0]["id"] if page else None,
                   "last_id": page[-1]["id"] if page else None}
            return Response(msgspec.json.encode(doc), media_type="application/json")
        except GatewayError as e:
            return error_response(e)

    async def get_model(self, request: Request) -> Response:
        try:
            name = request.path_params["model"]
            for m in self._models(request):
                if m["id"] == name:
                    return Response(msgspec.json.encode(m), media_type="application/json")
            raise ModelNotFound(f"the model '{name}' does not exist", param="model")
        except GatewayError as e:
            return error_response(e)
