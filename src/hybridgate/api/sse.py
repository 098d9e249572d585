"""Server-Sent Events out: OpenAI's framing (``data: {json}\\n\\n`` ... ``data: [DONE]``).

The stream's record (``ledger.recorder.StreamRecord``) is committed before ``[DONE]``:
a client that saw the end of its stream is guaranteed a ledger row. If the commit fails
in required mode, the stream ends with a 503 error event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from hybridgate.api.errors import error_body
from hybridgate.core.errors import GatewayError
from hybridgate.core.types import encode
from hybridgate.ledger.recorder import StreamRecord

log = logging.getLogger("hybridgate.api")

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def _frames(held: list[Any], rest: AsyncIterator[Any], include_usage: bool,
                  record: StreamRecord, on_end: Callable[[], Awaitable[None]] | None
                  ) -> AsyncIterator[bytes]:
    """OpenAI's framing: ``held`` (what the pipeline read before answering), then the
    rest of the stream; the usage chunk only if the client asked for it; ``[DONE]`` only
    after the record is committed; a mid-stream failure as a final error event without
    ``[DONE]``. ``record`` sees every item on the way (no extra generator per chunk);
    ``on_end`` (storing the answer) runs after the commit, before ``[DONE]``."""
    see = record.see
    try:
        for item in held:
            see(item)
            frame = _frame(item, include_usage)
            if frame:
                yield frame
        async for item in rest:
            see(item)
            frame = _frame(item, include_usage)
            if frame:  # chunks that arrived together leave in one write
                yield frame
        await record.finish()
        if on_end is not None:
            await on_end()
        yield DONE
    except GatewayError as e:
        # Headers are gone; OpenAI reports a mid-stream failure as an error event.
        await record.fail(e)
        yield b"data: " + error_body(e) + b"\n\n"
    except BaseException:  # the client went away
        record.abandon()
        raise
    finally:
        await rest.aclose()  # type: ignore[attr-defined]


def _frame(item: Any, include_usage: bool) -> bytes:
    out = []
    for chunk in item if isinstance(item, list) else (item,):
        if not include_usage and not chunk.choices and chunk.usage:
            continue
        out.append(b"data: " + encode(chunk) + b"\n\n")
    return b"".join(out)


class EventStream(Response):
    """Send ``frames`` as they come; stop them the moment the client goes away.

    Starlette's StreamingResponse does the same with an anyio task group per response
    (uvicorn speaks ASGI 2.3); in a py-spy profile of streaming at 100 in flight that
    machinery cost more than our own per-chunk work. Here one waiter on ``receive``
    cancels this task on ``http.disconnect``, and the cancellation runs the frames'
    cleanup (the ledger row, closing the upstream connection).
    """

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncIterator[bytes], headers: dict[str, str],
                 on_abort: Callable[[], Awaitable[None]] | None = None) -> None:
        self.frames = frames
        self.on_abort = on_abort  # cleanup when the frames never started
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
        started = False
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": self.raw_headers})
            started = True  # from here the frames' own cleanup runs on aclose
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
            if not started and self.on_abort is not None:
                await self.on_abort()  # an unstarted generator's cleanup never runs


def sse_response(held: list[Any], rest: AsyncIterator[Any], include_usage: bool,
                 record: StreamRecord, headers: dict[str, str],
                 on_end: Callable[[], Awaitable[None]] | None = None) -> EventStream:
    async def abort() -> None:  # the client left before the first frame
        record.abandon()
        await rest.aclose()  # type: ignore[attr-defined]

    return EventStream(_frames(held, rest, include_usage, record, on_end), headers, abort)


class Encoder(Protocol):
    """A dialect's stream encoder: chat chunks in, its events out."""

    def feed(self, item: Any) -> bytes: ...
    def end(self) -> bytes: ...
    def error(self, err: GatewayError) -> bytes: ...


async def _encoded(held: list[Any], rest: AsyncIterator[Any], record: StreamRecord,
                   enc: Encoder, on_end: Callable[[], Awaitable[None]] | None
                   ) -> AsyncIterator[bytes]:
    """Like ``_frames`` for dialects with their own events: the record sees every chunk
    and is committed (and ``on_end`` run: storing the answer) before the final event; a
    failure after the start is the dialect's error event."""
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
        tail = enc.end()
        if on_end is not None:
            await on_end()
        yield tail
    except GatewayError as e:
        await record.fail(e)
        yield enc.error(e)
    except BaseException:
        record.abandon()
        raise
    finally:
        await rest.aclose()  # type: ignore[attr-defined]


def encoded_response(held: list[Any], rest: AsyncIterator[Any], record: StreamRecord,
                     enc: Encoder, headers: dict[str, str],
                     on_end: Callable[[], Awaitable[None]] | None = None) -> EventStream:
    """A stream in another dialect's events (Anthropic's, Responses')."""
    async def abort() -> None:
        record.abandon()
        await rest.aclose()  # type: ignore[attr-defined]

    return EventStream(_encoded(held, rest, record, enc, on_end), headers, abort)
