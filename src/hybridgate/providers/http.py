"""Shared upstream HTTP plumbing: one pooled aiohttp session per upstream, error mapping.

aiohttp, not httpx: measured on this 2-core box (shared/DESIGN.md) it is 5-10x faster
under concurrency, and the upstream client is the hot path.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from hybridgate.core.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)


def upstream_message(body: bytes) -> str:
    """Pull the human message out of an upstream error body (OpenAI or Anthropic shape)."""
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body[:200].decode("utf-8", "replace").strip() or "no body"
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
        if isinstance(doc.get("message"), str):
            return doc["message"]
    return "unrecognised error body"


# An upstream's content-policy refusal (OpenAI images, Azure's content filter, Bedrock...):
# not retried on the same model; `content_policy_fallbacks` may take it.
_POLICY_CODES = frozenset({"content_filter", "content_policy_violation",
                           "content_policy", "responsible_ai_policy_violation"})
_POLICY_MARKERS = ("content management policy", "content policy", "content filter",
                   "safety system")


def _is_policy_refusal(body: bytes, message: str) -> bool:
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        doc = None
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict) and (err.get("code") in _POLICY_CODES
                                  or err.get("type") in _POLICY_CODES):
        return True
    low = message.lower()
    return any(m in low for m in _POLICY_MARKERS)


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def status_error(provider: str, status: int, body: bytes,
                 headers: Any = None) -> GatewayError:
    """Map an upstream HTTP error to ours.

    The client's own mistakes (400/404/413/422) keep their 4xx so clients can fix them;
    the gateway's credentials failing (401/403) is our problem, so 502; 429 passes
    through with Retry-After; 5xx become 502 (503 stays 503). The upstream's own status
    and Retry-After stay on the error for the retry loop (``execute``).
    """
    err = _mapped(provider, status, body, headers)
    err.upstream_status = status
    err.retry_after = _retry_after(headers)
    return err


def _mapped(provider: str, status: int, body: bytes, headers: Any) -> GatewayError:
    text = upstream_message(body)
    msg = f"upstream {provider} returned {status}: {text}"
    if status == 400 and _is_policy_refusal(body, text):
        return InvalidRequest(msg, code="content_filter")
    if status in (400, 404, 409, 413, 422):
        return InvalidRequest(msg, code="upstream_rejected", status=400 if status != 413 else 413)
    if status == 429:
        extra = {}
        if headers is not None and headers.get("retry-after"):
            extra["retry-after"] = headers["retry-after"]
        return RateLimited(msg, headers=extra)
    if status in (503, 529):  # 529: Anthropic's "overloaded"
        return UpstreamUnavailable(msg)
    if status == 504:
        return UpstreamTimeout(msg)
    return UpstreamError(msg)


def transport_error(provider: str, exc: BaseException) -> GatewayError:
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamTimeout(f"upstream {provider} timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnavailable(f"upstream {provider} is unreachable: {exc.os_error}")
    return UpstreamError(f"upstream {provider} connection failed: {type(exc).__name__}")


class Upstream:
    """A base URL, default headers and one pooled session; made on the running loop."""

    def __init__(self, provider: str, base_url: str, headers: dict[str, str],
                 timeout: float, connect_timeout: float) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        # Every call posts JSON: as a session default, aiohttp merges no per-call headers.
        self.headers = dict(headers)
        if not any(k.lower() == "content-type" for k in headers):
            self.headers["content-type"] = "application/json"
        self._urls: dict[str, URL] = {}  # parsed once per path, not per request
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout,
                                             sock_read=timeout)
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=self.timeout, headers=self.headers,
            skip_auto_headers=("User-Agent",), auto_decompress=True)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            raise UpstreamUnavailable(f"upstream {self.provider} is not started")
        return self.session

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self.base_url + path)
        return url

    async def post_json(self, path: str, body: bytes) -> bytes:
        """POST and return the 2xx body; every failure becomes a GatewayError."""
        try:
            async with self._session().post(self._url(path), data=body) as resp:
                data = await resp.read()
                if resp.status >= 300:
                    raise status_error(self.provider, resp.status, data, resp.headers)
                return data
        except GatewayError:
            raise
        except (TimeoutError, aiohttp.ClientError) as e:
            raise transport_error(self.provider, e) from None

    @asynccontextmanager
    async def post_stream(self, path: str, body: bytes) -> AsyncIterator[AsyncIterator[bytes]]:
        """POST and yield the body as it arrives, in whatever blocks the socket gives;
        closing the context closes the connection.

        Leaving the context early (client went away) releases the connection without
        reading the rest, so the upstream sees the disconnect and stops generating.
        """
        try:
            resp = await self._session().post(self._url(path), data=body,
                                              headers={"accept": "text/event-stream"})
        except (TimeoutError, aiohttp.ClientError) as e:
            raise transport_error(self.provider, e) from None
        try:
            if resp.status >= 300:
                raise status_error(self.provider, resp.status, await resp.read(), resp.headers)
            yield _blocks(self.provider, resp)
        finally:
            resp.close()


async def _blocks(provider: str, resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for block in resp.content.iter_any():
            yield block
    except (TimeoutError, aiohttp.ClientError) as e:
        raise transport_error(provider, e) from None
