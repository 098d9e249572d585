"""Read Server-Sent Events from an upstream response body.

Upstream streams are small and line-oriented; aiohttp already splits lines, so the
parser is the W3C event-stream rules in a dozen lines: ``data:`` lines join with
"\\n", ``event:`` names the event, a blank line dispatches, ``:`` lines are comments.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True)
class Event:
    event: str
    data: str


async def iter_events(lines: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    event = "message"
    data: list[str] = []
    async for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield Event(event, "\n".join(data))
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:  # a final event without its blank line: still dispatch it
        yield Event(event, "\n".join(data))
