import asyncio

from hybridgate.providers.sse import iter_events


async def _collect(lines):
    async def gen():
        for line in lines:
            yield line
    return [(e.event, e.data) async for e in iter_events(gen())]


def test_sse_framing():
    lines = [b": comment\n", b"event: message_start\n", b"data: {\"a\":\n", b"data: 1}\n",
             b"\n", b"data:no-space\r\n", b"\r\n", b"data: tail\n"]
    assert asyncio.run(_collect(lines)) == [("message_start", '{"a":\n1}'),
                                            ("message", "no-space"), ("message", "tail")]
