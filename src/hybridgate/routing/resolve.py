"""The table of configured models and the choice of one per request.

A request names a model (pinned: that model), a route group from ``routes:`` (the
policies and the learned router pick its weak or strong member), or ``auto`` without
such a group (the default model: the first local chat model unless ``default_model``
says otherwise).
"""

from __future__ import annotations

import asyncio
import logging

from hybridgate.config.settings import (
    AnthropicModel,
    Config,
    EmbeddingModel,
    LocalModel,
    ModelEntry,
    OpenAIModel,
    TransformersModel,
)
from hybridgate.core.errors import (
    GatewayError,
    ModelNotAllowed,
    ModelNotFound,
    ResidencyViolation,
    UpstreamUnavailable,
)
from hybridgate.core.types import ChatRequest
from hybridgate.providers.base import Provider
from hybridgate.routing.policy import Decision, RoutedGroup

log = logging.getLogger("hybridgate.models")

AUTO = "auto"


def build_provider(entry: ModelEntry) -> Provider:
    # Imports are local so that a gateway without local models never loads llama.cpp
    # or torch.
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


class Models:
    """Every configured provider, by name, and their lifecycle."""

    def __init__(self, config: Config) -> None:
        entries = {m.name: m for m in config.models}
        # Route groups load their router file now: a broken file fails start-up, loudly.
        self.groups: dict[str, RoutedGroup] = {
            g.name: RoutedGroup(g, entries[g.weak], entries[g.strong]) for g in config.routes}
        self.providers: dict[str, Provider] = {m.name: build_provider(m) for m in config.models}
        self.optional = {m.name for m in config.models if m.optional}
        self.default = config.default_model or self._first_chat_model(config)
        self.load_errors: dict[str, str] = {}
        self._loading: asyncio.Task[None] | None = None

    @staticmethod
    def _first_chat_model(config: Config) -> str | None:
        chat = [m for m in config.models if not isinstance(m, EmbeddingModel)
                and not (isinstance(m, OpenAIModel) and m.embeddings)]
        local = [m for m in chat if isinstance(m, LocalModel | TransformersModel)]
        return (local or chat)[0].name if (local or chat) else None

    async def start(self) -> None:
        """Remote providers start at once (pools); local weights load in the background,
        so /healthz answers while a big model loads and /readyz says when it is done."""
        for p in self.providers.values():
            if p.local:
                continue
            await p.start()
        self._loading = asyncio.create_task(self._load_local())

    async def _load_local(self) -> None:
        for p in self.providers.values():
            if p.local:
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

    def get(self, name: str, allowed: frozenset[str] | None = None,
            local_only: bool = False) -> Provider:
        """The provider a request naming ``name`` gets; ``allowed``: the models the
        caller's tenant may use (None: any); ``local_only``: the request is tagged
        ``x-hybridgate-residency: local``, so a remote model is refused (403)."""
        if name in self.groups:  # only chat is routed; other endpoints use the weak member
            name = self.groups[name].group.weak
        if name == AUTO:
            if self.default is None:
                raise ModelNotFound("no chat model is configured for 'auto'", param="model")
            name = self.default
        p = self.providers.get(name)
        if p is None:
            raise ModelNotFound(f"the model '{name}' does not exist", param="model")
        if allowed is not None and name not in allowed:
            raise ModelNotAllowed(f"this key's tenant is not allowed to use the model "
                                  f"'{name}'", param="model")
        if local_only and not p.local:
            raise ResidencyViolation(
                f"the request is tagged x-hybridgate-residency: local and the model "
                f"'{name}' is remote; name a local model or a route group with one")
        if not p.ready:
            why = self.load_errors.get(name)
            raise UpstreamUnavailable(
                f"model '{name}' failed to load: {why}" if why else
                f"model '{name}' is still loading; retry shortly")
        return p

    def pick_chat(self, req: ChatRequest, sensitive: bool = False,
                  allowed: frozenset[str] | None = None
                  ) -> tuple[Provider, Decision | None, str]:
        """One provider per chat request: (provider, routing decision, scored text)."""
        group = self.groups.get(req.model)
        if group is None:
            return self.get(req.model, allowed, local_only=sensitive), None, ""
        decision, text = group.decide(req, sensitive, allowed)
        return self.get(group.member(decision), allowed), decision, text

    def visible(self, allowed: frozenset[str] | None) -> tuple[list[Provider], list[str]]:
        """What /v1/models lists for a caller: the models it may use, and the route
        groups with at least one member it may use."""
        if allowed is None:
            return list(self.providers.values()), list(self.groups)
        return ([p for n, p in self.providers.items() if n in allowed],
                [n for n, g in self.groups.items()
                 if g.group.weak in allowed or g.group.strong in allowed])
