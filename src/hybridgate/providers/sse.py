"""Read Server-Sent Events from an upstream response body.

The W3C event-stream rules: ``data:`` lines join with "\\n", ``event:`` names the event,
a blank line dispatches, ``:`` lines are comments. The parser takes bytes in whatever
blocks the socket delivers and returns every event completed by each block, so a
proxy can forward a burst of events in one write instead of one write per event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True)
class Event:
    event: str
    data: str


class EventParser:
    def __init__(self) -> None:
        self._buf = b""
        self._event = "message"
        self._data: list[str] = []

    def feed(self, block: bytes) -> list[Event]:
        self._buf += block
        *lines, self._buf = self._buf.split(b"\n")
        out: list[Event] = []
        for raw in lines:
            self._line(raw.decode("utf-8").rstrip("\r"), out)
        return out

    def close(self) -> list[Event]:
        """End of stream: a final event without its blank line still counts."""
        out: list[Event] = []
        if self._buf:
            self._line(self._buf.decode("utf-8").rstrip("\r"), out)
            self._buf = b""
        self._line("", out)
        return out

    def _line(self, line: str, out: list[Event]) -> None:
        if not line:
            if self._data:
                out.append(Event(self._event, "\n".join(self._data)))
            self._event, self._data = "message", []
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value


async def iter_event_batches(blocks: AsyncIterator[bytes]) -> AsyncIterator[list[Event]]:
    parser = EventParser()
    async for block in blocks:
        events = parser.feed(block)
        if events:
            yield events
    tail = parser.close()
    if tail:
        yield tail


async def iter_events(blocks: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    async for batch in iter_event_batches(blocks):
        for event in batch:
            yield event
