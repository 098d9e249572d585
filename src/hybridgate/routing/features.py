"""Text features for the router: cheap enough for every request (well under 1 ms).

1. TF-IDF over word unigrams and bigrams (sublinear tf, L2-normalised), with our own
   tokenizer and vocabulary, so training and serving featurize identically and the
   artefact is plain arrays (no pickles).
2. Structure: length, digits, maths symbols, lines, question shape (fed to the
   in-domain models next to the words).
3. Cross-domain features (``cross``): length and shape of the prompt and of what it asks
   for — sentences, numbers, options, code, reasoning and multi-step markers,
   constraints, requested output length. These are what the router falls back on far
   from its training prompts, where the words mean nothing to it.

Every scan is a regular expression without nested quantifiers: linear in the text.
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


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_OPTION = re.compile(r"(?m)^[ \t]*\(?[A-Ja-j1-9][.)][ \t]")
_CODE = re.compile(r"```|\bdef |\breturn\b|;[ \t]*$|[{}]|==|\bimport\b|\bfunction\b",
                   re.M)
_REASONING = re.compile(r"\b(?:why|how|explain|prove|derive|calculate|compute|solve|steps?|"
                        r"reason|therefore|because|if|then|suppose|assume|given|first|next)\b",
                        re.I)
_CONSTRAINT = re.compile(r"\b(?:must|exactly|at least|at most|only|without|do not|don't|"
                         r"never|each|every|none|except)\b", re.I)
_LONG_OUTPUT = re.compile(r"\b(?:write|essay|story|poem|blog|article|paragraphs?|describe|"
                          r"detailed|draft|compose|list|words|sentences|plan|email|letter)\b",
                          re.I)
_NEGATION = re.compile(r"\b(?:not|no|never|least|false|incorrect|except)\b", re.I)
_QUESTION = re.compile(r"\?")

CROSS = ("log_chars", "log_words", "log_sentences", "digit_share", "log_numbers",
         "log_symbols", "log_lines", "log_options", "log_code", "reasoning", "constraints",
         "long_output", "negation", "log_questions", "word_length", "long_words",
         "log_last_paragraph")


def _cross(p: str, s: list[float]) -> list[float]:
    """The cross-domain row, given the text's structure row ``s``: length, words, digits,
    symbols, lines and word length are the same numbers there, scanned once."""
    words = p.split()
    nw = max(1, len(words))
    per_word = 10 / nw
    last = p.strip().rsplit("\n\n", 1)[-1]
    return [s[0], s[1], math.log1p(len(_SENTENCE_END.findall(p))), s[2],
            math.log1p(len(_NUMBER.findall(p))), s[3], s[4],
            math.log1p(len(_OPTION.findall(p))), math.log1p(len(_CODE.findall(p))),
            len(_REASONING.findall(p)) * per_word, len(_CONSTRAINT.findall(p)) * per_word,
            len(_LONG_OUTPUT.findall(p)) * per_word, len(_NEGATION.findall(p)) * per_word,
            math.log1p(len(_QUESTION.findall(p))), s[7],
            sum(len(w) > 8 for w in words) / nw, math.log1p(len(last))]


def rows(text: str) -> tuple[list[float], list[float]]:
    """One text's structure and cross-domain rows (the serving path: one scan of each
    kind for both)."""
    s = _structure(text)
    return s, _cross(text, s)


def cross(texts: list[str]) -> np.ndarray:
    return np.array([rows(p)[1] for p in texts], dtype=np.float64).reshape(-1, len(CROSS))
