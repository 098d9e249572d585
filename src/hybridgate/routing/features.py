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
_DIGIT = re.compile(r"\d")
_SYMBOL = re.compile(r"[=+^/*<>()\[\]{}|\\$%]")


def terms(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    return words + list(map(" ".join, zip(words, words[1:], strict=False)))


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


def tfidf_one(text: str, vocab: dict[str, int], idf: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """One text's sparse tf-idf row as (column indices, L2-normalised weights)."""
    get = vocab.get
    counts = Counter([i for i in map(get, terms(text)) if i is not None])
    if not counts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
    tf = 1 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
    w = tf * idf[idx]
    return idx, w / np.linalg.norm(w)


def tfidf(texts: list[str], vocab: dict[str, int], idf: np.ndarray) -> csr_matrix:
    rows, cols, vals = [], [], []
    for r, text in enumerate(texts):
        idx, w = tfidf_one(text, vocab, idf)
        rows.extend([r] * len(idx))
        cols.extend(idx.tolist())
        vals.extend(w.tolist())
    return csr_matrix((vals, (rows, cols)), shape=(len(texts), len(vocab)), dtype=np.float32)


N_STRUCT = 8


def _structure(p: str) -> list[float]:
    words = p.split()
    n = max(1, len(p))
    return [math.log1p(len(p)), math.log1p(len(words)), len(_DIGIT.findall(p)) / n,
            math.log1p(len(_SYMBOL.findall(p))), math.log1p(p.count("\n")),
            float("Statement 1" in p or "statement 1" in p),
            math.log1p(len(p.rsplit("\nA.", 1)[0])), sum(map(len, words)) / max(1, len(words))]


def structure(texts: list[str]) -> np.ndarray:
    return np.array([_structure(p) for p in texts], dtype=np.float32).reshape(-1, N_STRUCT)
