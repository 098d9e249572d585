"""Run an aiohttp app on a loopback port in a background thread, with scripted faults.

The fakes are real HTTP servers: the gateway talks to them over TCP exactly as it
would talk to OpenAI or Anthropic. Tests script failures by queueing ``Fault``s;
each request takes the next one.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Fault:
    status: int | None = None          # answer with this HTTP status and an error body
    delay: float = 0.0                 # wait this long before answering
    drop: bool = False                 # close the connection without any response
    truncate_after: int | None = None  # stream: close after this many events, no end marker
    chunk_delay: float = 0.0           # stream: wait this long between events
    garbage: bool = False              # answer 200 with a body that is not JSON
    headers: dict[str, str] = field(default_factory=dict)
    message: str | None = None         # the error body's message (with ``status``)
    code: str | None = None            # the error body's code (with ``status``)
    no_done: bool = False              # stream: everything but the final [DONE]
    bad_chunk_at: int | None = None    # stream: an unparseable event at this position
    stall_at: int | None = None        # stream: before this event, go silent for `stall` s
    stall: float = 0.0


class FakeServer:
    """Base: subclasses add routes in ``routes``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.default_fault = Fault()  # applies whenever ``faults`` is empty
        # with ``faults`` empty, this share of requests fails with one of ``fail_with``
        self.fail_rate = 0.0
        self.fail_with = [Fault(status=500), Fault(status=503), Fault(status=429),
                          Fault(drop=True)]
        self.disconnects = 0
        self.api_key: str | None = None
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def next_fault(self) -> Fault:
        if self.faults:
            return self.faults.pop(0)
        if self.fail_rate and random.random() < self.fail_rate:
            return random.choice(self.fail_with)
        return self.default_fault

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            self.routes(app)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name=type(self).__name__)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop
        runner = self._runner

        async def shutdown() -> None:
            if runner is not None:
                await runner.cleanup()
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        if self._thread is not None:
            self._thread.join(5)

    def reset(self) -> None:
        if hasattr(self, "usage_override"):
            self.usage_override = None
            self.omit_usage = False
        if hasattr(self, "tool_arguments"):
            from tests.fakes.openai_upstream import TOOL_ARGUMENTS
            self.tool_arguments = TOOL_ARGUMENTS
            self.content = None
            self.by_model = {}
        self.requests.clear()
        self.faults.clear()
        self.default_fault = Fault()
        self.fail_rate = 0.0
        self.disconnects = 0

    async def apply_fault(self, request: web.Request, fault: Fault,
                          error_body: dict[str, Any]) -> web.StreamResponse | None:
        """Returns a response when the fault answers instead of the normal handler."""
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never reaches the client
        if fault.status is not None:
            if fault.message is not None or fault.code is not None:
                error_body = {**error_body, "error": {
                    **error_body["error"], "message": fault.message or "refused",
                    "code": fault.code}}
            return web.json_response(error_body, status=fault.status, headers=fault.headers)
        if fault.garbage:
            return web.Response(body=b"<html>not json", content_type="text/html")
        return None


async def write_events(resp: web.StreamResponse, events: list[bytes], fault: Fault,
                       server: FakeServer) -> bool:
    """Write SSE frames; returns False when the client went away (counted)."""
    if fault.no_done and events and events[-1] == b"data: [DONE]\n\n":
        events = events[:-1]
    if fault.bad_chunk_at is not None:
        events = [*events[:fault.bad_chunk_at], b"data: {not json at all\n\n",
                  *events[fault.bad_chunk_at:]]
    for i, frame in enumerate(events):
        if fault.truncate_after is not None and i >= fault.truncate_after:
            return True
        if fault.stall_at == i:
            await asyncio.sleep(fault.stall)
        try:
            await resp.write(frame)
        except (ConnectionResetError, RuntimeError):
            server.disconnects += 1
            return False
        if fault.chunk_delay:
            await asyncio.sleep(fault.chunk_delay)
            transport = resp._req.transport if resp._req else None  # type: ignore[attr-defined]
            if transport is None or transport.is_closing():
                server.disconnects += 1
                return False
    return True
