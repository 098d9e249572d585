"""Server-Sent Events out: OpenAI's framing (``data: {json}\\n\\n`` ... ``data: [DONE]``).

The stream's record is committed before ``[DONE]``: a client that saw the end of its
stream is guaranteed a ledger row. If the commit fails in required mode, the stream
ends with a 503 error event instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from hybridgate.api.errors import error_body
from hybridgate.core.errors import GatewayError
from hybridgate.core.types import encode
from hybridgate.ledger.recorder import Tracker

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


def _chars(chunk: Any) -> int:
    """Characters of generated output in a chunk: > 0 marks the first token, and the sum
    feeds a token estimate should the upstream send no usage."""
    n = 0
    for c in chunk.choices:
        delta = getattr(c, "delta", None)
        if delta is None:
            n += len(getattr(c, "text", "") or "")
            continue
        n += len(delta.content or "")
        for call in delta.tool_calls or ():
            if call.function is not None:
                n += len(call.function.name or "") + len(call.function.arguments or "")
    return n


async def _frames(first: Any, rest: AsyncIterator[Any], include_usage: bool,
                  tracker: Tracker, on_end: Callable[[Any, str], None],
                  prompt_chars: Callable[[], int] | None) -> AsyncIterator[bytes]:
    usage = None
    status = "200"
    completion_chars = 0  # for an estimate, should the upstream send no usage
    try:
        item = first
        while True:
            out: list[bytes] = []
            for chunk in item if isinstance(item, list) else (item,):
                if not chunk.choices and chunk.usage:
                    usage = chunk.usage
                    usage.cost = tracker.set_usage(usage).cost_usd
                    if not include_usage:
                        continue
                else:
                    n = _chars(chunk)
                    completion_chars += n
                    if n and tracker.ttft is None:
                        tracker.first_token()
                out.append(b"data: " + encode(chunk) + b"\n\n")
            if out:  # chunks that arrived together leave in one write
                yield b"".join(out)
            try:
                item = await rest.__anext__()
            except StopAsyncIteration:
                break
        if usage is None and prompt_chars is not None:
            tracker.estimate_usage(prompt_chars(), completion_chars)
        await tracker.commit(200)
        yield DONE
    except GatewayError as e:
        # Headers are gone; OpenAI reports a mid-stream failure as an error event.
        status = f"error:{e.status}"
        await tracker.commit(e.status, e.message)
        yield b"data: " + error_body(e) + b"\n\n"
    except BaseException:
        status = "cancelled"
        tracker.commit_nowait(499, "client disconnected")
        raise
    finally:
        await rest.aclose()  # type: ignore[attr-defined]
        on_end(usage, status)


class EventStream(Response):
    """Send ``frames`` as they come; stop them the moment the client goes away.

    Starlette's StreamingResponse does the same with an anyio task group per response
    (uvicorn speaks ASGI 2.3); in a py-spy profile of streaming at 100 in flight that
    machinery cost more than our own per-chunk work. Here one waiter on ``receive``
    cancels this task on ``http.disconnect``, and the cancellation runs the frames'
    cleanup (the ledger row, closing the upstream connection).
    """

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncIterator[bytes], headers: dict[str, str]) -> None:
        self.frames = frames
        self.status_code = 200
        self.background = None
        self.init_headers({**SSE_HEADERS, **headers})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None  # ASGI apps run in tasks
        streaming, gone = True, False

        def on_message(waiter: asyncio.Future[Message]) -> None:
            # uvicorn also answers http.disconnect once the response is complete: only a
            # disconnect while we are still streaming is the client leaving.
            nonlocal gone
            if waiter.cancelled() or waiter.exception() is not None or not streaming:
                return
            if waiter.result()["type"] == "http.disconnect":
                gone = True
                task.cancel()

        waiter = asyncio.ensure_future(receive())
        waiter.add_done_callback(on_message)
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": self.raw_headers})
            async for frame in self.frames:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            streaming = False
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone:
                raise
            task.uncancel()  # we cancelled ourselves because the client left: done
        finally:
            streaming = False
            if not waiter.done():
                waiter.cancel()
            # Left early (cancelled between frames): finish the frames' own cleanup now
            # rather than whenever the generator is collected. A no-op once exhausted.
            await self.frames.aclose()  # type: ignore[attr-defined]


def sse_response(first: Any, rest: AsyncIterator[Any], include_usage: bool, tracker: Tracker,
                 on_end: Callable[[Any, str], None], headers: dict[str, str],
                 prompt_chars: Callable[[], int] | None = None) -> EventStream:
    return EventStream(_frames(first, rest, include_usage, tracker, on_end, prompt_chars),
                       headers)
