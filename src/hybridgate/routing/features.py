"""Text features for the router: cheap enough for every request (well under 1 ms).

1. TF-IDF over word unigrams and bigrams (sublinear tf, L2-normalised), with our own
   tokenizer and vocabulary, so training and serving featurize identically and the
   artefact is plain arrays (no pickles).
2. Structure: length, digits, maths symbols, lines, question shape — a sense of how hard
   a request is that carries over to domains the vocabulary has never seen.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
from scipy.sparse import csr_matrix

_WORD = re.compile(r"(?u)\b\w\w+\b")
_SYMBOLS = set("=+^/*<>()[]{}|\\$%")


def terms(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]


def build_vocab(texts: list[str], max_features: int, min_df: int = 2
                ) -> tuple[dict[str, int], np.ndarray]:
    """Terms in at least ``min_df`` texts, the ``max_features`` most common; with idf."""
    df: Counter[str] = Counter()
    for t in texts:
        df.update(set(terms(t)))
    kept = sorted((n, term) for term, n in df.items() if n >= min_df)
    kept = sorted(kept, key=lambda x: (-x[0], x[1]))[:max_features]
    vocab = {term: i for i, (_, term) in enumerate(kept)}
    n = len(texts)
    idf = np.array([math.log((1 + n) / (1 + c)) + 1 for c, _ in kept], dtype=np.float32)
    return vocab, idf


def tfidf(texts: list[str], vocab: dict[str, int], idf: np.ndarray) -> csr_matrix:
    rows, cols, vals = [], [], []
    for r, text in enumerate(texts):
        counts = Counter(i for i in (vocab.get(t) for t in terms(text)) if i is not None)
        if not counts:
            continue
        idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = 1 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
        w = tf * idf[idx]
        w /= np.linalg.norm(w)
        rows.extend([r] * len(idx))
        cols.extend(idx.tolist())
        vals.extend(w.tolist())
    return csr_matrix((vals, (rows, cols)), shape=(len(texts), len(vocab)), dtype=np.float32)


N_STRUCT = 8


def structure(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), N_STRUCT), dtype=np.float32)
    for i, p in enumerate(texts):
        words = p.split()
        n = max(1, len(p))
        question = p.rsplit("\nA.", 1)[0]
        out[i] = (math.log1p(len(p)), math.log1p(len(words)),
                  sum(c.isdigit() for c in p) / n,
                  math.log1p(sum(c in _SYMBOLS for c in p)), math.log1p(p.count("\n")),
                  float("Statement 1" in p or "statement 1" in p),
                  math.log1p(len(question)),
                  sum(len(w) for w in words) / max(1, len(words)))
    return out
