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


def test_any_block_boundaries_give_the_same_events():
    from hybridgate.providers.sse import EventParser

    stream = (b"event: a\ndata: 1\n\ndata: {\"x\":\ndata: 2}\n\n: ping\n\ndata: \xc3\xa9\n\n"
              b"data: last")
    whole = EventParser()
    expected = whole.feed(stream) + whole.close()
    for size in (1, 2, 3, 7):
        p = EventParser()
        got = []
        for i in range(0, len(stream), size):
            got += p.feed(stream[i:i + size])
        got += p.close()
        assert got == expected
    assert [(e.event, e.data) for e in expected] == [("a", "1"), ("message", '{"x":\n2}'),
                                                     ("message", "é"), ("message", "last")]
