"""TransformersProvider: the local provider's request handling over a transformers engine.

Everything but the engine is inherited from ``LocalProvider``: one worker thread per
model, FIFO requests, streaming through the same bridge, cancellation per token. Requests
that need llama.cpp's grammars (forced tool calls, JSON response formats) get a clear 400.
"""

from __future__ import annotations

from pathlib import Path

from hybridgate.config.settings import TransformersModel
from hybridgate.providers.local.provider import LocalProvider


class TransformersProvider(LocalProvider):
    kind = "transformers"

    def __init__(self, cfg: TransformersModel) -> None:  # type: ignore[override]
        super().__init__(cfg)  # type: ignore[arg-type]

    def _load(self, path: Path, threads: int):  # type: ignore[override]
        from hybridgate.providers.local.hf_engine import TransformersEngine  # torch: lazily

        cfg: TransformersModel = self.cfg  # type: ignore[assignment]
        return TransformersEngine(path, n_ctx=cfg.n_ctx, n_threads=threads,
                                  kv_cache=cfg.kv_cache, kv_bits=cfg.kv_bits,
                                  kv_residual=cfg.kv_residual,
                                  default_max_tokens=cfg.default_max_tokens)
