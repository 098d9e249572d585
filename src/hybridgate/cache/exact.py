"""The exact answer cache: a chat request seen before, answered from memory.

The key is a SHA-256 of everything that changes the answer: the tenant, the model or
route group asked for, the whole request as the pipeline will send it (messages, system
prompt, tools, tool_choice, response_format, sampling parameters, unknown fields passed
through) and the personal-data mode that shaped it; only ``stream``, ``stream_options``
and ``user`` are left out, so a streamed request hits a non-streamed answer and the
other way round. Shared by every process and replica through Redis when ``redis:`` is
configured (an in-process LRU otherwise), each entry with a TTL.

Opt-in per tenant or route group (``cache: true``), and only for requests that allow it:
``temperature: 0``, or the header ``x-hybridgate-cache: on``. ``Cache-Control:
no-cache`` skips the lookup (the answer is still stored), ``no-store`` skips both.
Pseudonymized requests are never cached (their answers carry placeholders that only
their own request can restore).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from typing import Any

import msgspec

from hybridgate.config.settings import Config
from hybridgate.core.types import ChatRequest, ChatResponse

log = logging.getLogger("hybridgate.cache")

PREFIX = "hybridgate:cache:"
_LEFT_OUT = ("stream", "stream_options", "user", "native")
_decode = msgspec.json.Decoder(ChatResponse).decode


def request_key(tenant: str | None, req: ChatRequest, pii_mode: str | None,
                question: bool = True) -> str:
    """SHA-256 of what changes the answer; ``question=False`` leaves out the last
    message's content (the semantic tier's context: everything but the question)."""
    doc = msgspec.to_builtins(req)
    for name in _LEFT_OUT:
        doc.pop(name, None)
    if not question:
        doc["messages"][-1]["content"] = None
    blob = msgspec.json.encode({"tenant": tenant, "pii": pii_mode, "request": doc},
                               order="sorted")
    return hashlib.sha256(blob).hexdigest()


class ExactCache:
    def __init__(self, config: Config) -> None:
        self.tenants = {t.name for t in config.tenants if t.cache}
        self.groups = {g.name for g in config.routes if g.cache}
        self.enabled = bool(self.tenants or self.groups)
        self.ttl = config.cache.ttl
        self.max_entries = config.cache.max_entries
        self.redis: Any = None
        self.memory: OrderedDict[str, bytes] = OrderedDict()
        if self.enabled and config.redis is not None:
            from redis.asyncio import BlockingConnectionPool, Redis

            self.redis = Redis(connection_pool=BlockingConnectionPool.from_url(
                config.redis, max_connections=32, timeout=0.5, socket_timeout=0.5,
                socket_connect_timeout=0.5))

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    def applies(self, tenant: str | None, req: Any, want: str | None,
                pii_mode: str | None) -> bool:
        """``want``: the request's own say ("on", "no-cache", "no-store" or None)."""
        if not isinstance(req, ChatRequest) or want == "no-store" or pii_mode == "pseudonymize":
            return False
        if tenant not in self.tenants and req.model not in self.groups:
            return False
        return req.temperature == 0 or want == "on"

    @staticmethod
    def key(tenant: str | None, req: ChatRequest, pii_mode: str | None) -> str:
        return request_key(tenant, req, pii_mode)

    async def get(self, key: str) -> ChatResponse | None:
        try:
            if self.redis is not None:
                raw = await self.redis.get(PREFIX + key)
            else:
                raw = self.memory.get(key)
                if raw is not None:
                    self.memory.move_to_end(key)
            return _decode(raw) if raw is not None else None
        except Exception as e:  # noqa: BLE001 - a cache that fails is a miss
            log.warning("cache: lookup failed (%s); answering from upstream", type(e).__name__)
            return None

    async def put(self, key: str, raw: bytes) -> None:
        try:
            if self.redis is not None:
                await self.redis.set(PREFIX + key, raw, ex=self.ttl)
                return
            self.memory[key] = raw
            self.memory.move_to_end(key)
            while len(self.memory) > self.max_entries:
                self.memory.popitem(last=False)
        except Exception as e:  # noqa: BLE001
            log.warning("cache: store failed (%s)", type(e).__name__)


async def clear(redis_url: str) -> int:
    """Drop every cached answer in a shared (Redis) cache; returns how many."""
    from redis.asyncio import Redis

    r = Redis.from_url(redis_url)
    n = 0
    try:
        async for k in r.scan_iter(match=PREFIX + "*", count=1000):
            n += await r.delete(k)
    finally:
        await r.aclose()
    return n
