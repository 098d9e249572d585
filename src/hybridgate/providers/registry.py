"""Every configured provider, built once from the config, by name, with its lifecycle.

The only place that constructs providers: routing decides *names*, ``execute`` asks this
registry for the provider behind a name. Imports are local so that a gateway without
local models never loads llama.cpp or torch.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hybridgate.config.settings import (
    AnthropicModel,
    Config,
    EmbeddingModel,
    LocalModel,
    ModelEntry,
    OpenAIModel,
    TransformersModel,
)
from hybridgate.core.errors import GatewayError, ModelNotFound, UpstreamUnavailable
from hybridgate.providers.base import Provider

log = logging.getLogger("hybridgate.models")


def build_provider(entry: ModelEntry) -> Provider:
    if isinstance(entry, LocalModel):
        from hybridgate.providers.local import LocalProvider
        return LocalProvider(entry)
    if isinstance(entry, TransformersModel):
        from hybridgate.providers.local.hf_provider import TransformersProvider
        return TransformersProvider(entry)
    if isinstance(entry, OpenAIModel):
        from hybridgate.providers.openai_compat import OpenAIProvider
        return OpenAIProvider(entry)
    if isinstance(entry, AnthropicModel):
        from hybridgate.providers.anthropic import AnthropicProvider
        return AnthropicProvider(entry)
    if isinstance(entry, EmbeddingModel):
        from hybridgate.providers.embeddings import EmbeddingProvider
        return EmbeddingProvider(entry)
    raise TypeError(f"unknown model entry {entry!r}")


class Registry:
    def __init__(self, config: Config) -> None:
        self.providers: dict[str, Provider] = {m.name: build_provider(m) for m in config.models}
        self.optional = frozenset(m.name for m in config.models if m.optional)
        self.load_errors: dict[str, str] = {}
        self._loading: asyncio.Task[None] | None = None

    def observe(self, metrics: Any) -> None:
        for p in self.providers.values():
            p.observe(metrics)

    @property
    def local_names(self) -> frozenset[str]:
        """The models that run on this machine (``Provider.local``)."""
        return frozenset(n for n, p in self.providers.items() if p.local)

    async def start(self) -> None:
        """Remote providers start at once (pools); local weights load in the background,
        so /healthz answers while a big model loads and /readyz says when it is done."""
        for p in self.providers.values():
            if not p.local:
                await p.start()
        self._loading = asyncio.create_task(self._load_local())

    async def _load_local(self) -> None:
        for p in self.providers.values():
            if not p.local:
                continue
            try:
                await p.start()
                log.info("model %s loaded", p.name)
            except GatewayError as e:
                self.load_errors[p.name] = e.message
                log.error("model %s failed to load: %s", p.name, e.message)
            except Exception as e:  # a broken GGUF, an out-of-memory: report, keep serving
                self.load_errors[p.name] = f"{type(e).__name__}: {e}"
                log.error("model %s failed to load: %s: %s", p.name, type(e).__name__, e)

    async def wait_loaded(self) -> None:
        if self._loading is not None:
            await self._loading

    async def close(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        for p in self.providers.values():
            await p.close()

    @property
    def ready(self) -> bool:
        """Every model is loaded, except those marked ``optional`` that failed to."""
        return all(p.ready or (p.name in self.optional and p.name in self.load_errors)
                   for p in self.providers.values())

    def get(self, name: str) -> Provider:
        """The provider behind ``name``, ready to serve (503 while loading or failed)."""
        p = self.providers.get(name)
        if p is None:
            raise ModelNotFound(f"the model '{name}' does not exist", param="model")
        if not p.ready:
            why = self.load_errors.get(name)
            raise UpstreamUnavailable(
                f"model '{name}' failed to load: {why}" if why else
                f"model '{name}' is still loading; retry shortly", code="model_not_ready")
        return p
