"""OpenAI's Responses API: ``POST /v1/responses``, ``GET`` / ``DELETE
/v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items``.

The same stages as every other API (``pipeline``): the request becomes the internal
chat request, and the answer goes back as a ``response`` object or Responses events.
With ``store`` (OpenAI's default, and allowed for the caller: ``ledger/stored``) the
response and the conversation that led to it are kept in the ledger's database before
the client has them, so ``previous_response_id`` continues it on any replica.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hybridgate.api import responses_dialect as wire
from hybridgate.api.body import decode, read_body
from hybridgate.api.openai_routes import OpenAIRoutes, response_headers
from hybridgate.api.sse import encoded_response
from hybridgate.api.stored_routes import page_of, page_params
from hybridgate.api.validate import check_chat, estimate_input_tokens
from hybridgate.core.errors import InvalidRequest, NotFound
from hybridgate.core.ids import now
from hybridgate.gate.auth import Principal
from hybridgate.ledger.stored import Kept

KIND = "response"


def _json(doc: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(doc), media_type="application/json", headers=headers)


class ResponsesRoutes:
    def __init__(self, openai: OpenAIRoutes) -> None:
        self.api = openai
        self.pipeline = openai.pipeline
        self.kept = openai.pipeline.kept

    async def _history(self, who: Principal, previous: str | None) -> list[dict[str, Any]]:
        """The conversation before this request: the previous response's input and
        output items."""
        if previous is None:
            return []
        if not self.kept.allowed(who):
            raise InvalidRequest("previous_response_id needs stored responses, which are "
                                 "off for this caller (ledger.store / tenants[].store)",
                                 param="previous_response_id", code="store_disabled")
        prev = await self.kept.get(who, KIND, previous)
        if prev is None:
            raise NotFound(f"no stored response with id '{previous}'",
                           param="previous_response_id")
        return [*prev.input, *prev.body.get("output", [])]

    async def create(self, request: Request) -> Response:
        who = self.api._caller(request)
        deadline = self.api._deadline(request)
        body = await read_body(request, self.api.limit)
        rreq = decode(body, wire.ResponsesRequest)
        if rreq.background:
            raise InvalidRequest("background responses are not supported", param="background")
        history = await self._history(who, rreq.previous_response_id)
        req = wire.to_chat(rreq, history)
        store = rreq.store is not False and self.kept.allowed(who)
        shell = wire.Shell(rreq, wire.new_response_id(), now(), store)
        conversation = [*history, *wire.items_of(rreq)]

        async def keep(doc: dict[str, Any] | None) -> None:
            if store and doc is not None:
                await self.kept.put(who, Kept(doc["id"], KIND, time.time(), doc["model"],
                                              rreq.metadata or {}, conversation, doc))

        out = await self.pipeline.run(self.api.call(request, "responses", req, who,
                                                    body, check_chat, deadline))
        headers = response_headers(out)
        if out.rest is not None:
            assert out.held is not None and out.record is not None
            enc = wire.StreamEncoder(shell)
            return encoded_response(out.held, out.rest, out.record, enc, headers,
                                    lambda: keep(enc.final))
        doc = wire.to_response(out.response, shell)
        await keep(doc)
        return _json(doc, headers)

    async def input_tokens(self, request: Request) -> Response:
        """``POST /v1/responses/input_tokens``: what the input would take
        (``estimate_input_tokens``), with the conversation a previous_response_id
        names; nothing is answered or recorded."""
        who = self.api._caller(request)
        creq = decode(await read_body(request, self.api.limit), wire.CountRequest)
        if creq.model is not None:
            self.pipeline.routes.pinned(creq.model, who.allowed)  # 404 / 403 as create
        msgs = wire.prompt_messages(creq, await self._history(who, creq.previous_response_id))
        return _json({"object": "response.input_tokens",
                      "input_tokens": estimate_input_tokens(msgs, creq.tools)})

    async def _get(self, request: Request) -> tuple[Principal, Kept]:
        who = self.api._caller(request)
        rid = request.path_params["response_id"]
        kept = await self.kept.get(who, KIND, rid) if self.kept.allowed(who) else None
        if kept is None:
            raise NotFound(f"no stored response with id '{rid}'", param="response_id")
        return who, kept

    async def retrieve(self, request: Request) -> Response:
        return _json((await self._get(request))[1].body)

    async def input_items(self, request: Request) -> Response:
        """The items that led to the response (the whole conversation), newest first
        unless ``order=asc``."""
        after, limit, newest_first = page_params(request, "desc")
        items = (await self._get(request))[1].input
        return _json(page_of(items, after, limit, newest_first))

    async def delete(self, request: Request) -> Response:
        who, kept = await self._get(request)
        await self.kept.delete(who, KIND, kept.id)
        return _json({"id": kept.id, "object": "response.deleted", "deleted": True})
