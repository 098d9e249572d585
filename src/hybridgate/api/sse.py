"""Server-Sent Events out: OpenAI's framing (``data: {json}\\n\\n`` ... ``data: [DONE]``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse

from hybridgate.api.errors import error_body
from hybridgate.core.errors import GatewayError
from hybridgate.core.types import encode

log = logging.getLogger("hybridgate.api")

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def open_stream(chunks: AsyncIterator[Any]) -> tuple[Any, AsyncIterator[Any]]:
    """Pull the first chunk before answering, so errors that happen before any output
    (unknown model, upstream refused, prompt too long) are real HTTP errors, not 200s."""
    it = chunks.__aiter__()
    try:
        first = await it.__anext__()
    except BaseException:
        await it.aclose()  # type: ignore[attr-defined]
        raise
    return first, it


def is_usage_chunk(chunk: Any) -> bool:
    return not chunk.choices and chunk.usage is not None


async def _frames(first: Any, rest: AsyncIterator[Any], include_usage: bool,
                  on_end: Callable[[Any, str], None]) -> AsyncIterator[bytes]:
    usage = None
    status = "200"
    try:
        chunk = first
        while True:
            if is_usage_chunk(chunk):
                usage = chunk.usage
                if include_usage:
                    yield b"data: " + encode(chunk) + b"\n\n"
            else:
                yield b"data: " + encode(chunk) + b"\n\n"
            try:
                chunk = await rest.__anext__()
            except StopAsyncIteration:
                break
        yield DONE
    except GatewayError as e:
        # Headers are gone; OpenAI reports a mid-stream failure as an error event.
        status = f"error:{e.status}"
        yield b"data: " + error_body(e) + b"\n\n"
    except BaseException:
        status = "cancelled"
        raise
    finally:
        await rest.aclose()  # type: ignore[attr-defined]
        on_end(usage, status)


def sse_response(first: Any, rest: AsyncIterator[Any], include_usage: bool,
                 on_end: Callable[[Any, str], None], headers: dict[str, str]) -> StreamingResponse:
    return StreamingResponse(_frames(first, rest, include_usage, on_end),
                             media_type="text/event-stream", headers={**SSE_HEADERS, **headers})
