"""TransformersProvider: the local provider's request handling over a transformers engine.

Everything but loading is inherited from ``LocalProvider``: one worker thread per model,
FIFO requests, streaming through the same bridge, cancellation per token. Requests that
need llama.cpp's grammars (forced tool calls, JSON response formats) get a clear 400.
"""

from __future__ import annotations

import asyncio
import os

from hybridgate.config.settings import TransformersModel
from hybridgate.core.errors import UpstreamUnavailable
from hybridgate.models.store import ModelStoreError, resolve_gguf
from hybridgate.providers.local.provider import LocalProvider


class TransformersProvider(LocalProvider):
    kind = "transformers"

    def __init__(self, cfg: TransformersModel) -> None:  # type: ignore[override]
        super().__init__(cfg)  # type: ignore[arg-type]

    async def start(self) -> None:
        from hybridgate.providers.local.hf_engine import TransformersEngine  # torch: lazily

        try:
            path = resolve_gguf(self.cfg.model)
        except ModelStoreError as e:
            raise UpstreamUnavailable(str(e)) from None
        cfg: TransformersModel = self.cfg  # type: ignore[assignment]
        threads = cfg.n_threads or os.cpu_count() or 1
        self.engine = await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: TransformersEngine(
                path, n_ctx=cfg.n_ctx, n_threads=threads, kv_cache=cfg.kv_cache,
                kv_bits=cfg.kv_bits, kv_residual=cfg.kv_residual,
                default_max_tokens=cfg.default_max_tokens))  # type: ignore[assignment]
        if not self.engine.chat_template:
            self.supports_chat = False
