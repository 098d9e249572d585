"""Stored chat completions: ``store: true`` on ``POST /v1/chat/completions`` keeps the
request's messages and the answer (``ledger/stored``: opt-in, per tenant), and
``GET /v1/chat/completions``, ``GET`` / ``POST`` (metadata) / ``DELETE
/v1/chat/completions/{id}`` and ``GET .../{id}/messages`` read them back, as OpenAI's
API does. A streamed answer is assembled from its chunks and kept before ``[DONE]``.

``store`` and ``metadata`` are the gateway's to act on: they are never sent upstream
(keeping the data is the operator's decision, not a side effect at a provider).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from hybridgate.api.body import decode, read_body
from hybridgate.core.assemble import Assembler
from hybridgate.core.errors import InvalidRequest, NotFound
from hybridgate.core.ids import new_id
from hybridgate.core.types import ChatRequest
from hybridgate.gate.auth import Principal
from hybridgate.ledger.stored import Keeper, Kept

KIND = "chat.completion"
Metadata = dict[str, str]


class MetadataUpdate(msgspec.Struct, forbid_unknown_fields=True):
    metadata: Metadata | None


def _json(doc: Any) -> Response:
    return Response(msgspec.json.encode(doc), media_type="application/json")


def page_params(request: Request, default_order: str) -> tuple[str | None, int, bool]:
    """``after``, ``limit`` (1-100, default 20) and ``order`` of a list request."""
    q = request.query_params
    raw = q.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise InvalidRequest("limit must be an integer from 1 to 100", param="limit")
    order = q.get("order", default_order)
    if order not in ("asc", "desc"):
        raise InvalidRequest("order must be 'asc' or 'desc'", param="order")
    return q.get("after") or None, int(raw), order == "desc"


def page(data: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": more}


def page_of(items: list[dict[str, Any]], after: str | None, limit: int,
            newest_first: bool) -> dict[str, Any]:
    """A page of an object's items (a conversation), after the item ``after``."""
    if newest_first:
        items = items[::-1]
    if after is not None:
        ids = [i.get("id") for i in items]
        if after not in ids:
            raise InvalidRequest(f"no item with id '{after}'", param="after")
        items = items[ids.index(after) + 1:]
    return page(items[:limit], len(items) > limit)


def metadata_of(extra: dict[str, Any]) -> Metadata:
    """OpenAI's limits: up to 16 pairs, keys ≤ 64 characters, values ≤ 512."""
    raw = extra.get("metadata")
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > 16 or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
            for k, v in raw.items()):
        raise InvalidRequest("metadata must be an object of at most 16 string pairs (keys "
                             "up to 64 characters, values up to 512)", param="metadata")
    return raw


def stored_id() -> str:
    return new_id("chatcmpl")


def _rename(item: Any, cid: str) -> None:
    for chunk in item if isinstance(item, list) else (item,):
        chunk.id = cid


class StoredCompletions:
    def __init__(self, kept: Keeper, admit: Callable[[Request], Principal],
                 limit: int) -> None:
        self.kept = kept
        self.admit = admit
        self.limit = limit

    # ------------------------------------------------------------------ keeping

    def wanted(self, who: Principal, req: ChatRequest) -> Metadata | None:
        """The metadata to keep the answer with, or None when it is not to be kept.
        ``store`` and ``metadata`` leave the request here (never sent upstream)."""
        store = req.extra.pop("store", None)
        meta = metadata_of(req.extra)
        req.extra.pop("metadata", None)
        if store is not True or not self.kept.allowed(who):
            return None
        return meta

    async def keep(self, who: Principal, req: ChatRequest, meta: Metadata,
                   doc: dict[str, Any]) -> None:
        """``doc`` carries an id of the gateway's (``stored_id``), not the upstream's: a
        kept object's id must be unique, whatever the upstream sends."""
        doc["metadata"] = meta
        await self.kept.put(who, Kept(doc["id"], KIND, time.time(), doc.get("model", ""),
                                      meta, msgspec.to_builtins(req.messages), doc))

    def keeping(self, who: Principal, req: ChatRequest, meta: Metadata,
                rest: AsyncIterator[Any], held: list[Any]
                ) -> tuple[AsyncIterator[Any], Callable[[], Awaitable[None]]]:
        """A stream seen on its way out (its chunks under the kept object's id), and
        what keeps it once it ended."""
        whole = Assembler()
        cid = stored_id()
        for item in held:
            _rename(item, cid)
            whole.see(item)

        async def seen() -> AsyncIterator[Any]:
            try:
                async for item in rest:
                    _rename(item, cid)
                    whole.see(item)
                    yield item
            finally:
                await rest.aclose()  # type: ignore[attr-defined]

        async def end() -> None:
            await self.keep(who, req, meta, whole.response())

        return seen(), end

    # ------------------------------------------------------------------ routes

    async def _get(self, request: Request) -> tuple[Principal, Kept]:
        who = self.admit(request)
        cid = request.path_params["completion_id"]
        kept = await self.kept.get(who, KIND, cid) if self.kept.allowed(who) else None
        if kept is None:
            raise NotFound(f"no stored chat completion with id '{cid}'",
                           param="completion_id")
        return who, kept

    async def list(self, request: Request) -> Response:
        who = self.admit(request)
        after, limit, newest_first = page_params(request, "asc")
        q = request.query_params
        meta = {k[len("metadata["):-1]: v for k, v in q.items()
                if k.startswith("metadata[") and k.endswith("]")}
        if not self.kept.allowed(who):
            return _json(page([], False))
        found, more = await self.kept.list(who, KIND, after=after, limit=limit,
                                           newest_first=newest_first,
                                           model=q.get("model") or None, metadata=meta)
        return _json(page([k.body for k in found], more))

    async def retrieve(self, request: Request) -> Response:
        return _json((await self._get(request))[1].body)

    async def update(self, request: Request) -> Response:
        """Only ``metadata`` may change, as in OpenAI's API."""
        who, kept = await self._get(request)
        upd = decode(await read_body(request, self.limit), MetadataUpdate)
        meta = metadata_of({"metadata": upd.metadata})
        changed = await self.kept.set_metadata(who, KIND, kept.id, meta)
        assert changed is not None
        return _json(changed.body)

    async def delete(self, request: Request) -> Response:
        who, kept = await self._get(request)
        await self.kept.delete(who, KIND, kept.id)
        return _json({"object": "chat.completion.deleted", "id": kept.id, "deleted": True})

    async def messages(self, request: Request) -> Response:
        after, limit, newest_first = page_params(request, "asc")
        kept = (await self._get(request))[1]
        msgs = [{"id": f"{kept.id}-{i}", "content_parts": None, "name": None, **m}
                for i, m in enumerate(kept.input)]
        return _json(page_of(msgs, after, limit, newest_first))
