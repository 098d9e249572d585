"""Anthropic's dialect: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

The same stages as every other API (``pipeline``: keys, routing, reliability, ledger):
the Messages request becomes the internal chat request, and the answer goes back in
Anthropic's shape, streamed with its event sequence. Keys come as ``x-api-key`` (or
``Authorization: Bearer``); ``anthropic-version`` is accepted and not needed. Errors use
Anthropic's shape, ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hybridgate.api import anthropic_dialect as wire
from hybridgate.api.body import decode, read_body
from hybridgate.api.openai_routes import OpenAIRoutes, response_headers
from hybridgate.api.sse import EventStream
from hybridgate.api.validate import check_chat
from hybridgate.core.errors import GatewayError
from hybridgate.ledger.recorder import StreamRecord
from hybridgate.pipeline import Call


def error_response(err: GatewayError) -> Response:
    return Response(msgspec.json.encode(wire.error_doc(err)), status_code=err.status,
                    media_type="application/json", headers=err.headers or None)


async def _frames(held: list[Any], rest: AsyncIterator[Any], record: StreamRecord,
                  enc: wire.StreamEncoder) -> AsyncIterator[bytes]:
    """Like the OpenAI writer (api/sse): the record sees every chunk and is committed
    before ``message_stop``; a failure after the start is a final ``error`` event."""
    try:
        for item in held:
            record.see(item)
            yield enc.feed(item)
        async for item in rest:
            record.see(item)
            frame = enc.feed(item)
            if frame:
                yield frame
        await record.finish()
        yield enc.end()
    except GatewayError as e:
        await record.fail(e)
        yield wire.error_event(e)
    except BaseException:
        record.abandon()
        raise
    finally:
        await rest.aclose()  # type: ignore[attr-defined]


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
        req = wire.to_chat(areq)
        out = await self.pipeline.run(Call("chat", req, who, self.api._local_only(request),
                                           len(body), check_chat, deadline))
        msg_id = wire.new_message_id()
        headers = response_headers(out)
        if out.rest is not None:
            assert out.held is not None and out.record is not None
            record, rest = out.record, out.rest
            enc = wire.StreamEncoder(areq.model, msg_id)

            async def abort() -> None:
                record.abandon()
                await rest.aclose()  # type: ignore[attr-defined]

            return EventStream(_frames(out.held, rest, record, enc), headers, abort)
        return Response(msgspec.json.encode(wire.to_message(out.response, areq.model, msg_id)),
                        media_type="application/json", headers=headers)

    async def count_tokens(self, request: Request) -> Response:
        """An estimate (about four characters a token, as the gateway estimates elsewhere):
        what the prompt, system and tool definitions will take."""
        try:
            who = self.api._caller(request)
            creq = decode(await read_body(request, self.api.limit), wire.CountRequest)
            self.pipeline.routes.pinned(creq.model, who.allowed)  # 404 / 403 as /messages
            chars = sum(len(m.text()) + sum(len(c.function.arguments)
                                            for c in m.tool_calls or ())
                        for m in wire.messages(creq.system, creq.messages))
            chars += sum(len(msgspec.json.encode(t)) for t in creq.tools or ())
            return Response(msgspec.json.encode({"input_tokens": -(-chars // 4)}),
                            media_type="application/json")
        except GatewayError as e:
            return error_response(e)
