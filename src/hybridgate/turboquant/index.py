"""A compressed vector index: add vectors online (no training), search by inner product.

Scores come straight from the codes, without decoding the stored vectors: rotate each
query once (q' = R q / sqrt(d) scaled to the codebook), then

    <q, x_hat> = ||x|| * sum_j q'_j * c[k_j]                      TurboQuant_mse codes
    + ||r|| * sqrt(pi/2)/d * <S q, sign(S r)>                      + the QJL term (prod)

Optionally the best ``rerank`` candidates are re-scored exactly against the original
vectors (kept only when ``keep_vectors=True``, which gives up the memory saving).

For a large index a flat scan costs too much per query (100k MiniLM codes: tens of ms on
two cores), so ``lists > 0`` adds an inverted file: once ``train_at`` vectors are in,
spherical k-means on them gives ``lists`` centroids, every vector joins its nearest
centroid's list, and a search scores only the ``nprobe`` lists nearest the query. The
centroids are the only trained part; the codes stay TurboQuant's, data-oblivious.
With ``per_list`` set the file grows with the index instead of waiting for it: the first
training gives one list per ``per_list`` rows, and each doubling of the rows retrains
with twice the lists (from the raw vectors, buffered until ``lists`` is reached), so a
search never scans more than about ``nprobe * 2 * per_list`` rows on the way; and
``min_rows`` probes more lists while they are short (a small file finds less).

Rows can be deleted (skipped at once, dropped by ``compact``) and carry an integer
``tag``; a search with ``tag=`` sees only rows with that tag (the semantic cache keeps
each request context apart this way).
"""

from __future__ import annotations

import numpy as np

from hybridgate.turboquant.packing import byte_table, unpack
from hybridgate.turboquant.quantizer import TurboQuantMSE, TurboQuantProd

CHUNK = 16_384  # vectors scored at a time: bounds the temporary (chunk x d) float array


class Column:
    """A growable array (capacity doubles), so adds are amortised O(1) and a search
    reads one contiguous array instead of concatenating chunks."""

    def __init__(self, width: int | None, dtype: type | np.dtype) -> None:
        shape = (64,) if width is None else (64, width)
        self.data = np.zeros(shape, dtype=dtype)
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.n + len(values)
        if need > len(self.data):
            grown = np.zeros((max(need, 2 * len(self.data)), *self.data.shape[1:]),
                             self.data.dtype)
            grown[:self.n] = self.data[:self.n]
            self.data = grown
        self.data[self.n:need] = values
        self.n = need

    @property
    def view(self) -> np.ndarray:
        return self.data[:self.n]

    def keep(self, mask: np.ndarray) -> None:
        kept = self.view[mask]
        self.data = np.zeros((max(64, len(kept)), *self.data.shape[1:]), self.data.dtype)
        self.data[:len(kept)] = kept
        self.n = len(kept)

    @property
    def nbytes(self) -> int:
        return self.view.nbytes


def spherical_kmeans(x: np.ndarray, k: int, iters: int = 10, seed: int = 0) -> np.ndarray:
    """(k, d) unit centroids of unit-normalised rows (cosine k-means)."""
    rng = np.random.default_rng(seed)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    c = unit[rng.choice(len(unit), size=k, replace=False)].copy()
    for _ in range(iters):
        assign = np.argmax(unit @ c.T, axis=1)
        sums = np.zeros_like(c)
        np.add.at(sums, assign, unit)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        empty = norms[:, 0] == 0  # an empty cell restarts at a random vector
        sums[empty] = unit[rng.choice(len(unit), size=int(empty.sum()))]
        c = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return c.astype(np.float32)


class TurboQuantIndex:
    def __init__(self, d: int, bits: int = 4, method: str = "mse", rotation: str = "dense",
                 keep_vectors: bool = False, seed: int = 0, lists: int = 0,
                 train_at: int = 8192, nprobe: int = 8, per_list: int = 0,
                 min_rows: int = 0) -> None:
        if method not in ("mse", "prod"):
            raise ValueError("method must be 'mse' or 'prod'")
        if lists and train_at < lists:
            raise ValueError("train_at must be at least the number of lists")
        self.d = d
        self.method = method
        self.prod = TurboQuantProd(d, bits, rotation, seed) if method == "prod" else None
        self.mse = self.prod.mse if self.prod is not None else TurboQuantMSE(d, bits, rotation,
                                                                             seed)
        self.keep_vectors = keep_vectors
        self.lists, self.train_at, self.nprobe, self.seed = lists, train_at, nprobe, seed
        self.per_list, self.min_rows = per_list, min_rows
        self._trained_at = 0  # rows at the last training (growing file)
        self._packed = Column((d * self.mse.bits + 7) // 8, np.uint8) if self.mse else None
        self._norms = Column(None, np.float32) if self.mse else None
        self._signs = Column((d + 7) // 8, np.uint8) if self.prod else None
        self._rnorms = Column(None, np.float32) if self.prod else None
        self._vectors = Column(d, np.float32) if keep_vectors else None
        self._ids = Column(None, np.int64)
        self._tags = Column(None, np.int32)  # with id, liveness, list slot: 17 B a row
        self._live = Column(None, np.bool_)
        self._dead = 0
        self._next_id = 0
        # a code byte's coordinates at once (bit widths dividing 8): a search's decode
        # is then one gather per byte instead of unpacking bits and a gather per index
        self._byte_centroids = (byte_table(self.mse._centroids, self.mse.bits)
                                if self.mse is not None and 8 % self.mse.bits == 0 else None)
        # the inverted file: untrained until train_at vectors (raw ones buffered till then)
        self.centroids: np.ndarray | None = None
        self._members: list[Column] = []
        self._pending: list[np.ndarray] = []

    def __len__(self) -> int:
        """Rows that a search can return (deleted ones excluded)."""
        return self._ids.n - self._dead

    @property
    def deleted(self) -> int:
        """Deleted rows still held (until ``compact``)."""
        return self._dead

    @property
    def columns(self) -> list[Column]:
        return [c for c in (self._packed, self._norms, self._signs, self._rnorms,
                            self._vectors, self._ids, self._tags, self._live)
                if c is not None]

    def add(self, vectors: np.ndarray, ids: np.ndarray | None = None,
            tags: np.ndarray | int = 0) -> np.ndarray:
        """Encode and append; returns the ids (given, or consecutive from 0)."""
        x = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if x.shape[1] != self.d:
            raise ValueError(f"vectors have {x.shape[1]} dimensions, the index has {self.d}")
        if ids is None:
            ids = np.arange(self._next_id, self._next_id + len(x))
        ids = np.asarray(ids, dtype=np.int64)
        first = self._ids.n
        if self.prod is not None:
            codes = self.prod.encode(x)
            if codes.mse is not None and self._packed is not None and self._norms is not None:
                self._packed.extend(codes.mse.packed)
                self._norms.extend(codes.mse.norms)
            assert self._signs is not None and self._rnorms is not None
            self._signs.extend(codes.signs)
            self._rnorms.extend(codes.residual_norms)
        else:
            assert self._packed is not None and self._norms is not None
            mcodes = self.mse.encode(x)
            self._packed.extend(mcodes.packed)
            self._norms.extend(mcodes.norms)
        if self._vectors is not None:
            self._vectors.extend(x)
        self._ids.extend(ids)
        self._tags.extend(np.broadcast_to(np.asarray(tags, np.int32), (len(x),)))
        self._live.extend(np.ones(len(x), np.bool_))
        self._next_id = max(self._next_id, int(ids.max()) + 1) if len(ids) else self._next_id
        if self.lists:
            self._file(x, first)
        return ids

    def _file(self, x: np.ndarray, first: int) -> None:
        """Put new rows in their lists (training the centroids once enough are in, and
        again at each doubling while the file grows)."""
        if self.centroids is None or (self.per_list and len(self.centroids) < self.lists):
            self._pending.append(x)
            if self._ids.n >= max(self.train_at, 2 * self._trained_at):
                x, first = self._train(), 0  # every row is filed anew
            elif self.centroids is None:
                return
        assert self.centroids is not None
        cells = np.argmax(x @ self.centroids.T, axis=1).astype(np.int32)
        for c in np.unique(cells):
            self._members[c].extend(first + np.flatnonzero(cells == c))

    def _train(self) -> np.ndarray:
        """New centroids from the live buffered rows; returns every buffered row (all
        rows so far, in order), kept while the file has lists still to grow."""
        raw = np.concatenate(self._pending)
        live = raw[self._live.view]
        n = self._ids.n
        k = min(self.lists, n // self.per_list) if self.per_list else self.lists
        self.centroids = spherical_kmeans(live, max(1, min(k, len(live))), seed=self.seed)
        self._members = [Column(None, np.int32) for _ in range(len(self.centroids))]
        self._trained_at = n
        self._pending = [raw] if len(self.centroids) < self.lists else []
        return raw

    def delete(self, ids: np.ndarray | list[int]) -> int:
        """Hide rows from every later search; returns how many were live."""
        hit = np.isin(self._ids.view, np.asarray(ids, np.int64)) & self._live.view
        self._live.view[hit] = False
        self._dead += int(hit.sum())
        return int(hit.sum())

    def compact(self) -> None:
        """Drop deleted rows (row positions change; ids and tags stay)."""
        if not self._dead:
            return
        keep = self._live.view.copy()
        if self._pending:  # untrained or growing: the buffered raw vectors follow the rows
            self._pending = [np.concatenate(self._pending)[keep]]
        for col in self.columns:
            col.keep(keep)
        self._dead = 0
        if self.centroids is not None:  # each list keeps its live rows, renumbered
            moved = (np.cumsum(keep) - 1).astype(np.int32)
            for m in self._members:
                rows = m.view
                m.keep(keep[rows])
                m.view[:] = moved[m.view]

    @property
    def nbytes(self) -> int:
        """Bytes held for the codes (and the raw vectors, if kept)."""
        return sum(c.nbytes for c in (self._packed, self._norms, self._signs, self._rnorms,
                                      self._vectors) if c is not None)

    @property
    def overhead_nbytes(self) -> int:
        """Bookkeeping beyond the codes: ids, tags, liveness, lists and centroids."""
        cents = self.centroids.nbytes if self.centroids is not None else 0
        return (self._ids.nbytes + self._tags.nbytes + self._live.nbytes
                + sum(m.nbytes for m in self._members) + cents)

    def _scores(self, q: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """(m, len(rows)) estimated inner products for (m, d) queries (all rows if None)."""
        n = self._ids.n if rows is None else len(rows)
        out = np.zeros((len(q), n), dtype=np.float32)
        if self._packed is not None and self._norms is not None and self._packed.n:
            packed, norms = self._packed.view, self._norms.view
            qr = self.mse.rotation.apply(q)  # rotate the query once
            table = self._byte_centroids
            for s in range(0, n, CHUNK):
                part = slice(s, s + CHUNK) if rows is None else rows[s:s + CHUNK]
                if table is not None:  # each code byte straight to its coordinates
                    y = np.take(table, packed[part], axis=0).reshape(
                        len(norms[part]), -1)[:, :self.d]
                else:
                    y = self.mse._centroids[unpack(packed[part], self.d, self.mse.bits)]
                # y: unit-sphere coordinates of x_hat, rotated
                out[:, s:s + CHUNK] = (qr @ y.T) * norms[part]
        if self.prod is not None and self._signs is not None and self._rnorms is not None:
            signs, rnorms = self._signs.view, self._rnorms.view
            sq = q @ self.prod.sketch.T
            for s in range(0, n, CHUNK):
                part = slice(s, s + CHUNK) if rows is None else rows[s:s + CHUNK]
                pm = unpack(signs[part], self.d, 1).astype(np.float32) * 2 - 1
                out[:, s:s + CHUNK] += self.prod._scale * (sq @ pm.T) * rnorms[part]
        return out

    def _candidates(self, q: np.ndarray, tag: int | None) -> np.ndarray | None:
        """Row positions worth scoring for one query; None: every row."""
        if self.centroids is not None:
            # nprobe lists, or more where lists are short: at least ~min_rows rows
            probes = max(self.nprobe, -(-self.min_rows * len(self.centroids)
                                        // max(len(self), 1)))
            near = np.argsort(-(q[0] @ self.centroids.T))[:probes]
            rows = np.concatenate([self._members[c].view for c in near])
        elif tag is None and not self._dead:
            return None
        else:
            rows = np.arange(self._ids.n)
        keep = self._live.view[rows]
        if tag is not None:
            keep &= self._tags.view[rows] == tag
        return rows[keep]

    def search(self, queries: np.ndarray, k: int = 10, rerank: int = 0,
               tag: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; ``rerank`` > k re-scores that many exactly;
        ``tag`` limits the search to rows added with that tag. With lists, queries are
        searched one at a time (each probes its own lists)."""
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if rerank > k and self._vectors is None:
            raise ValueError("exact re-ranking needs keep_vectors=True")
        if self.centroids is not None and len(q) > 1:
            found = [self.search(row, k, rerank, tag) for row in q]
            width = min(len(s[0]) for s, _ in found)
            return (np.stack([s[0, :width] for s, _ in found]),
                    np.stack([i[0, :width] for _, i in found]))
        rows = self._candidates(q, tag)
        n = self._ids.n if rows is None else len(rows)
        if n == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        scores = self._scores(q, rows)
        depth = min(max(k, rerank), n)
        top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        pos = top if rows is None else rows[top]  # row positions of the candidates
        if rerank > k and self._vectors is not None:
            scores = np.einsum("md,mkd->mk", q, self._vectors.view[pos])
        else:
            scores = np.take_along_axis(scores, top, 1)
        order = np.argsort(-scores, axis=1)[:, :k]
        best = np.take_along_axis(pos, order, 1)
        return np.take_along_axis(scores, order, 1), self._ids.view[best]
