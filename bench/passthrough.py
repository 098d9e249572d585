"""The reference floor: a 50-line passthrough (Starlette on uvicorn with uvloop and
httptools, one pooled aiohttp session) that forwards /v1/chat/completions untouched.

    python bench/passthrough.py --port 9300 --upstream http://127.0.0.1:9100
"""

from __future__ import annotations

import argparse
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


def make_app(upstream: str) -> Starlette:
    state: dict[str, aiohttp.ClientSession] = {}

    async def chat(request: Request) -> Response:
        body = await request.body()
        session = state["session"]
        resp = await session.post(upstream + "/v1/chat/completions", data=body,
                                  headers={"content-type": "application/json"})
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            async def relay():
                try:
                    async for chunk in resp.content.iter_any():
                        yield chunk
                finally:
                    resp.release()
            return StreamingResponse(relay(), media_type="text/event-stream")
        data = await resp.read()
        resp.release()
        return Response(data, status_code=resp.status, media_type="application/json")

    @asynccontextmanager
    async def lifespan(app: Starlette):
        state["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await state["session"].close()

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])],
                     lifespan=lifespan)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=9300)
    ap.add_argument("--upstream", default="http://127.0.0.1:9100")
    args = ap.parse_args()
    uvicorn.run(make_app(args.upstream), host="127.0.0.1", port=args.port, loop="uvloop",
                http="httptools", access_log=False, log_level="warning")
