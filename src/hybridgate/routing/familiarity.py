"""How close a prompt is to the router's training prompts, and so how far to trust the
words-based part of its score.

Familiarity = the mean cosine similarity (TF-IDF) between the prompt and its ``K``
nearest training prompts. The training prompts are kept as an inverted index (term ->
the prompts that contain it, with their weight), each reduced to its ``KEEP`` heaviest
terms: one lookup touches only the postings of the prompt's own terms, linear in them,
well under a millisecond for the ~8,000 prompts the shipped router holds.

Terms found in more than half of the training *families* (kinds of request: MMLU, MT-Bench,
each BIG-bench task, ...; at least four of them) are left out of the index: wording that
every kind of request shares ("answer with the letter of the correct option") says
nothing about which kind a request is, and would make any request in that style look
familiar.

The trust weight is a ramp fixed from the training prompts alone (no tuning on any set
it is evaluated on): each training prompt's familiarity to the *other* training prompts
gives the in-domain distribution; at or above its median the router trusts its words
fully, at or below its ``LOW`` quantile not at all, linearly in between.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

K = 5  # neighbours averaged
KEEP = 32  # terms kept per training prompt
LOW = 5  # percentile of in-domain familiarity below which the words are not trusted
HIGH = 50


@dataclass
class Familiarity:
    indptr: np.ndarray  # (terms + 1,) postings of term t: docs[indptr[t]:indptr[t + 1]]
    docs: np.ndarray  # (postings,) int32 training prompt ids
    weights: np.ndarray  # (postings,) float16 tf-idf weights
    n_docs: int
    lo: float
    hi: float

    @classmethod
    def build(cls, x: csr_matrix, families: list[str] | None = None
              ) -> tuple[Familiarity, np.ndarray]:
        """From the training prompts' tf-idf rows (L2-normalised); also returns each
        training prompt's familiarity to the others (what serving traffic of the same
        kind would see, unlike its similarity to itself)."""
        x = x.tocsr()
        if families is not None and len(set(families)) >= 4:
            x = _drop_shared_terms(x, families)
        x = _top_terms(x, KEEP)
        xt = x.T.tocsr()
        fam = cls(xt.indptr.astype(np.int64), xt.indices.astype(np.int32),
                  xt.data.astype(np.float16), x.shape[0], 0.0, 1.0)
        own = fam.of_many(x, exclude_self=True)
        fam.lo, fam.hi = (float(v) for v in np.percentile(own, [LOW, HIGH]))
        return fam, own

    def of(self, idx: np.ndarray, w: np.ndarray) -> float:
        """One prompt, given as its tf-idf (term indices, weights)."""
        if not len(idx) or not self.n_docs:
            return 0.0
        starts, ends = self.indptr[idx], self.indptr[idx + 1]
        lens = ends - starts
        if not lens.sum():
            return 0.0
        # every posting of every query term, without a Python loop
        pos = np.arange(lens.sum()) + np.repeat(starts - np.cumsum(lens) + lens, lens)
        sims = np.bincount(self.docs[pos], weights=np.repeat(w, lens)
                           * self.weights[pos].astype(np.float64), minlength=self.n_docs)
        k = min(K, self.n_docs)
        return float(np.partition(sims, self.n_docs - k)[-k:].mean())

    def of_many(self, x: csr_matrix, exclude_self: bool = False, chunk: int = 512
                ) -> np.ndarray:
        """Many prompts as tf-idf rows; ``exclude_self``: row i is training prompt i."""
        xt = csr_matrix((self.weights.astype(np.float32), self.docs, self.indptr),
                        shape=(len(self.indptr) - 1, self.n_docs))
        out = np.zeros(x.shape[0])
        k = min(K, self.n_docs - (1 if exclude_self else 0))
        if k <= 0:
            return out
        for s in range(0, x.shape[0], chunk):
            sims = (x[s:s + chunk] @ xt).toarray()
            if exclude_self:
                rows = np.arange(sims.shape[0])
                sims[rows, s + rows] = -np.inf
            out[s:s + chunk] = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:].mean(1)
        return out

    def trust(self, f: np.ndarray | float) -> np.ndarray:
        """0 (unlike anything trained on) .. 1 (as close as a typical training prompt)."""
        return np.clip((np.asarray(f, float) - self.lo) / max(self.hi - self.lo, 1e-9), 0, 1)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"fam_indptr": self.indptr, "fam_docs": self.docs, "fam_weights": self.weights,
                "fam_calibration": np.array([self.n_docs, self.lo, self.hi])}

    @classmethod
    def from_arrays(cls, d: dict) -> Familiarity:
        n, lo, hi = d["fam_calibration"]
        return cls(d["fam_indptr"], d["fam_docs"], d["fam_weights"], int(n), float(lo),
                   float(hi))


def _drop_shared_terms(x: csr_matrix, families: list[str]) -> csr_matrix:
    """Zero the columns of terms present in more than half of the families."""
    fam = np.array(families)
    names = sorted(set(families))
    seen = np.zeros(x.shape[1])
    for f in names:
        rows = x[np.nonzero(fam == f)[0]]
        seen += np.bincount(rows.indices, minlength=x.shape[1]) > 0
    shared = seen > len(names) / 2
    x = x.copy()
    x.data[shared[x.indices]] = 0
    x.eliminate_zeros()
    return x


def _top_terms(x: csr_matrix, keep: int) -> csr_matrix:
    """Each row reduced to its ``keep`` largest weights, re-normalised."""
    rows, cols, vals = [], [], []
    for r in range(x.shape[0]):
        a, b = x.indptr[r], x.indptr[r + 1]
        idx, w = x.indices[a:b], x.data[a:b]
        if len(w) > keep:
            top = np.argpartition(-w, keep - 1)[:keep]
            idx, w = idx[top], w[top]
        norm = np.linalg.norm(w)
        rows.extend([r] * len(w))
        cols.extend(idx.tolist())
        vals.extend((w / norm if norm else w).tolist())
    return csr_matrix((vals, (rows, cols)), shape=x.shape, dtype=np.float32)
