"""``hybridgate chat "question"``: a one-shot, streamed answer in the terminal.

With ``--url`` it asks a running gateway; otherwise it loads the configured (or
default) local model in-process, no server needed.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import click
import msgspec

from hybridgate.config.settings import default_config, load_config
from hybridgate.core.errors import GatewayError
from hybridgate.core.types import ChatChunk, ChatRequest, Message
from hybridgate.providers.registry import Registry
from hybridgate.providers.sse import iter_events
from hybridgate.routing.resolve import Routes


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


async def _remote(url: str, body: dict, api_key: str | None) -> None:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    async with aiohttp.ClientSession(headers=headers) as session, \
            session.post(url.rstrip("/") + "/chat/completions", json=body) as resp:
        if resp.status >= 300:
            raise click.ClickException(f"{resp.status}: {(await resp.text())[:500]}")
        async for event in iter_events(resp.content):
            if event.data == "[DONE]":
                break
            doc = msgspec.json.decode(event.data)
            if "error" in doc:
                raise click.ClickException(doc["error"].get("message", "stream error"))
            chunk = msgspec.convert(doc, ChatChunk)
            for c in chunk.choices:
                if c.delta.content:
                    _out(c.delta.content)


async def _local(config_path: str | None, req: ChatRequest) -> None:
    # The in-process path needs only the chat model, not the embedding model, and no
    # ledger: the routing and execute stages without the gate and the record.
    config = load_config(config_path) if config_path else default_config(embeddings=False)
    registry = Registry(config)
    routes = Routes(config, registry.local_names)
    await registry.start()
    try:
        await registry.wait_loaded()
        if registry.load_errors:
            raise click.ClickException("; ".join(registry.load_errors.values()))
        provider = registry.get(routes.choose(req).model)
        async for chunk in provider.chat_stream(req):
            for c in chunk.choices:
                if c.delta.content:
                    _out(c.delta.content)
    finally:
        await registry.close()


@click.command()
@click.argument("question")
@click.option("--model", default="auto", show_default=True, help="Model name.")
@click.option("--system", default=None, help="A system prompt.")
@click.option("--max-tokens", type=int, default=512, show_default=True)
@click.option("--temperature", type=float, default=None)
@click.option("--url", envvar="HYBRIDGATE_URL", default=None,
              help="A running gateway's /v1 URL; without it the model runs in-process.")
@click.option("--api-key", envvar="HYBRIDGATE_API_KEY", default=None)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Config file for in-process use.")
def chat(question: str, model: str, system: str | None, max_tokens: int,
         temperature: float | None, url: str | None, api_key: str | None,
         config_path: str | None) -> None:
    """Ask one question and stream the answer."""
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}]
    body: dict = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": True}
    if temperature is not None:
        body["temperature"] = temperature
    try:
        if url:
            asyncio.run(_remote(url, body, api_key))
        else:
            req = ChatRequest(model=model, messages=[msgspec.convert(m, Message)
                                                     for m in messages],
                              max_tokens=max_tokens, temperature=temperature, stream=True)
            asyncio.run(_local(config_path, req))
    except GatewayError as e:
        raise click.ClickException(e.message) from None
    except aiohttp.ClientError as e:
        raise click.ClickException(f"cannot reach {url}: {e}") from None
    _out("\n")
