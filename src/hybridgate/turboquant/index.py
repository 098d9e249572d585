"""A compressed vector index: add vectors online (no training), search by inner product.

Scores come straight from the codes, without decoding the stored vectors: rotate each
query once (q' = R q / sqrt(d) scaled to the codebook), then

    <q, x_hat> = ||x|| * sum_j q'_j * c[k_j]                      TurboQuant_mse codes
    + ||r|| * sqrt(pi/2)/d * <S q, sign(S r)>                      + the QJL term (prod)

Optionally the best ``rerank`` candidates are re-scored exactly against the original
vectors (kept only when ``keep_vectors=True``, which gives up the memory saving).
"""

from __future__ import annotations

import numpy as np

from hybridgate.turboquant.packing import unpack
from hybridgate.turboquant.quantizer import TurboQuantMSE, TurboQuantProd

CHUNK = 16_384  # vectors scored at a time: bounds the temporary (chunk x d) float array


class TurboQuantIndex:
    def __init__(self, d: int, bits: int = 4, method: str = "mse", rotation: str = "dense",
                 keep_vectors: bool = False, seed: int = 0) -> None:
        if method not in ("mse", "prod"):
            raise ValueError("method must be 'mse' or 'prod'")
        self.d = d
        self.method = method
        self.prod = TurboQuantProd(d, bits, rotation, seed) if method == "prod" else None
        self.mse = self.prod.mse if self.prod is not None else TurboQuantMSE(d, bits, rotation,
                                                                             seed)
        self.keep_vectors = keep_vectors
        self._packed: list[np.ndarray] = []
        self._norms: list[np.ndarray] = []
        self._signs: list[np.ndarray] = []
        self._rnorms: list[np.ndarray] = []
        self._vectors: list[np.ndarray] = []
        self._ids: list[np.ndarray] = []
        self._next_id = 0

    def __len__(self) -> int:
        return self._next_id

    def add(self, vectors: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
        """Encode and append; returns the ids (given, or consecutive from 0)."""
        x = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if x.shape[1] != self.d:
            raise ValueError(f"vectors have {x.shape[1]} dimensions, the index has {self.d}")
        if ids is None:
            ids = np.arange(self._next_id, self._next_id + len(x))
        if self.prod is not None:
            codes = self.prod.encode(x)
            if codes.mse is not None:
                self._packed.append(codes.mse.packed)
                self._norms.append(codes.mse.norms)
            self._signs.append(codes.signs)
            self._rnorms.append(codes.residual_norms)
        else:
            mcodes = self.mse.encode(x)
            self._packed.append(mcodes.packed)
            self._norms.append(mcodes.norms)
        if self.keep_vectors:
            self._vectors.append(x)
        self._ids.append(np.asarray(ids))
        self._next_id += len(x)
        return np.asarray(ids)

    @property
    def nbytes(self) -> int:
        """Bytes held for the codes (and the raw vectors, if kept)."""
        return sum(a.nbytes for part in (self._packed, self._norms, self._signs, self._rnorms,
                                         self._vectors) for a in part)

    def _scores(self, q: np.ndarray) -> np.ndarray:
        """(m, n) estimated inner products for (m, d) queries."""
        n = len(self)
        out = np.zeros((len(q), n), dtype=np.float32)
        if self.mse is not None and self._packed:
            packed = np.concatenate(self._packed)
            norms = np.concatenate(self._norms)
            qr = self.mse.rotation.apply(q)  # rotate the query once
            for s in range(0, n, CHUNK):
                idx = unpack(packed[s:s + CHUNK], self.d, self.mse.bits)
                y = self.mse._centroids[idx]  # unit-sphere coordinates of x_hat, rotated
                out[:, s:s + CHUNK] = (qr @ y.T) * norms[s:s + CHUNK]
        if self.prod is not None:
            signs = np.concatenate(self._signs)
            rnorms = np.concatenate(self._rnorms)
            sq = q @ self.prod.sketch.T
            for s in range(0, n, CHUNK):
                pm = unpack(signs[s:s + CHUNK], self.d, 1).astype(np.float32) * 2 - 1
                out[:, s:s + CHUNK] += self.prod._scale * (sq @ pm.T) * rnorms[s:s + CHUNK]
        return out

    def search(self, queries: np.ndarray, k: int = 10, rerank: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; ``rerank`` > k re-scores that many exactly."""
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if len(self) == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        scores = self._scores(q)
        ids = np.concatenate(self._ids)
        depth = min(max(k, rerank), len(self))
        top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        if rerank > k:
            if not self.keep_vectors:
                raise ValueError("exact re-ranking needs keep_vectors=True")
            vectors = np.concatenate(self._vectors)
            exact = np.einsum("md,mkd->mk", q, vectors[top])
            scores = exact
        else:
            scores = np.take_along_axis(scores, top, 1)
        order = np.argsort(-scores, axis=1)[:, :k]
        best = np.take_along_axis(top, order, 1)
        return np.take_along_axis(scores, order, 1), ids[best]

