"""A fast fake OpenAI upstream for benchmarks: a fixed chat completion, or a fixed SSE
stream, from a bare asyncio protocol on uvloop (httptools parses the requests).

It must never be the bottleneck: bench/overhead.py loads it directly first.

    python bench/fake_upstream.py --port 9100 [--delay-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json

import httptools
import uvloop

CHAT = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000,
    "model": "bench", "choices": [{"index": 0, "message": {
        "role": "assistant", "content": "Hello! How can I help you today?", "refusal": None},
        "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}}).encode()


def _sse() -> bytes:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "bench"}
    frames = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]}]
    for word in ["Hello!", " How", " can", " I", " help", " you", " today?"]:
        frames.append({**base, "choices": [{"index": 0, "delta": {"content": word},
                                            "finish_reason": None}]})
    frames.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    frames.append({**base, "choices": [], "usage": {"prompt_tokens": 12,
                                                    "completion_tokens": 7,
                                                    "total_tokens": 19}})
    body = b"".join(b"data: " + json.dumps(f).encode() + b"\n\n" for f in frames)
    return body + b"data: [DONE]\n\n"


def _response(body: bytes, ctype: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: " + ctype + b"\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


JSON_RESPONSE = _response(CHAT, b"application/json")
SSE_RESPONSE = _response(_sse(), b"text/event-stream")


class Upstream(asyncio.Protocol):
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.parser = httptools.HttpRequestParser(self)
        self.body = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        reply = SSE_RESPONSE if b'"stream":true' in self.body.replace(b" ", b"") \
            else JSON_RESPONSE
        self.body.clear()
        assert self.transport is not None
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self._send, reply)
        else:
            self.transport.write(reply)

    def _send(self, reply: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply)


async def main(port: int, delay: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Upstream(delay), "127.0.0.1", port,
                                      reuse_port=True, backlog=4096)
    print(f"fake upstream on 127.0.0.1:{port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    args = ap.parse_args()
    uvloop.run(main(args.port, args.delay_ms / 1000))
