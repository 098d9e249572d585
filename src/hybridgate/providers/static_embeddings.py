"""Static sentence vectors distilled from MiniLM: the semantic cache's fast embedder.

The full MiniLM (``providers/embeddings``) costs ~14 ms a question on two cores, and the
semantic cache must cost next to nothing when it misses. Model2Vec's recipe (Tulkens and
van Dongen, 2024) keeps most of what the cache needs for about 1/200 of the time: run
each of the model's word pieces through it alone (``[CLS] piece [SEP]``, mean-pooled as
MiniLM pools a sentence), centre the table, weight each piece by SIF (``a / (a + p)``,
``p`` its Zipf probability from its rank, since WordPiece vocabularies are ordered by
frequency), and embed a sentence as the mean of its pieces' rows. A bag of pieces
cannot tell "sort a list" from "reverse a list", so the cache only picks candidates with
these vectors and asks the full model to confirm them (docs/benchmarks.md). (The
``model2vec`` package itself pins transformers < 5.4, below ours.)

The table is distilled once per model (~30 s on two cores) and kept under
``$HYBRIDGATE_HOME/embeddings``, named by the weights' digest, so later starts load it.
Client text is tokenized as text: ``[CLS]`` typed by a client is five characters.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from hybridgate.config.settings import hybridgate_home
from hybridgate.providers.embeddings import model_dir

log = logging.getLogger("hybridgate.embeddings")

SIF = 1e-4  # model2vec's default; 1e-3 and 1e-5 gave less recall on bench/data/cache_pairs
BATCH = 1024


def weights_digest(folder: Path) -> str:
    """Names the table after the weights it came from (a new model, a new table)."""
    h = hashlib.sha256()
    for name in ("model.safetensors", "pytorch_model.bin", "tokenizer.json"):
        path = folder / name
        if path.exists():
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
    return h.hexdigest()[:16]


def distill(folder: Path) -> np.ndarray:
    """(vocabulary, d) float16 rows: each piece's MiniLM vector, centred and SIF-weighted
    (float16 halves the file and moves cosines by ~1e-3)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    size = len(tok)
    rows = []
    with torch.inference_mode():
        for start in range(0, size, BATCH):
            ids = torch.arange(start, min(start + BATCH, size))
            x = torch.stack([torch.full_like(ids, tok.cls_token_id), ids,
                             torch.full_like(ids, tok.sep_token_id)], 1)
            hidden = model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state
            rows.append(hidden.mean(1).float().numpy())
    table = np.concatenate(rows)
    table -= table.mean(0)
    inv_rank = 1.0 / np.arange(2, size + 2)
    table *= (SIF / (SIF + inv_rank / inv_rank.sum()))[:, None]
    return table.astype(np.float16)


def load_table(folder: Path) -> np.ndarray:
    """The distilled table from disk, distilling (and saving it atomically) if absent."""
    path = hybridgate_home() / "embeddings" / f"static-{weights_digest(folder)}.npy"
    if path.exists():
        return np.load(path)
    log.info("distilling static vectors from %s (once; about 30 s on two cores)", folder)
    table = distill(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        np.save(f, table)
    tmp.replace(path)  # several workers may distill at once; each rename is whole
    return table


class StaticEmbedder:
    """Unit vectors from the distilled table: a tokenizer pass and a mean, in-line."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.table: np.ndarray | None = None
        self.tokenizer: Any = None

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.load)

    def load(self) -> None:
        from tokenizers import Tokenizer

        folder = model_dir(self.model)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        tokenizer.encode_special_tokens = True  # "[SEP]" in client text is text
        # float16 on disk, float32 in memory (47 MB): a gather then sums at full speed
        self.table, self.tokenizer = load_table(folder).astype(np.float32), tokenizer

    async def close(self) -> None:
        self.table = None

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), d) unit vectors (a text with no pieces gets zeros)."""
        assert self.table is not None, "StaticEmbedder.load() first"
        out = np.zeros((len(texts), self.table.shape[1]), np.float32)
        for i, text in enumerate(texts):  # one at a time: encode_batch's threads cost more
            ids = self.tokenizer.encode(text, add_special_tokens=False).ids
            if ids:
                v = self.table.take(ids, axis=0).sum(0)  # the mean's direction
                norm = float(np.linalg.norm(v))
                if norm > 0:
                    out[i] = v / norm
        return out

    async def vectors(self, texts: list[str]) -> np.ndarray:
        """The cache's embedder interface. In-line on the event loop: the cache's
        questions are at most 1,000 characters, ~0.2 ms."""
        return self.encode(texts)
