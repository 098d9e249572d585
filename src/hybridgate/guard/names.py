"""People's, places' and organisations' names in client text, for the ``pii:`` modes.

Names have no shape a pattern can check, so a named-entity model finds them: a small
spaCy pipeline (a hash-embedding CNN and a transition-based recogniser, about 4 MB)
shipped in ``names_model/``. No English spaCy pipeline loads here from a package whose
provenance holds up, so it was trained for this project by ``bench/train_names.py``, on
sentences made from Faker's name lists, GeoNames and templates written here, and measured
on presidio-evaluator's sentences, which share none of that (``bench/pii_eval.py``).

Client text is hostile: the model sees it in pieces of at most ``PIECE`` characters cut
at line breaks or spaces, so the tokenizer's work on any one run of text is bounded and
the whole scan stays linear in the input.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MODEL = Path(__file__).with_name("names_model")
KINDS = frozenset({"PERSON", "LOCATION", "ORGANIZATION"})
PIECE = 2_000
_LETTER = re.compile(r"[^\W\d_]")


@functools.cache
def _model() -> Any:
    """The pipeline, loaded once per process (about 0.3 s) from the package itself."""
    import spacy  # imported here: only a gateway with pii: modes pays for it

    return spacy.load(MODEL)


def load() -> None:
    """Load the model now (at start-up) rather than on the first request."""
    _model()


def pieces(text: str, size: int = PIECE) -> Iterator[tuple[int, str]]:
    """``text`` in consecutive pieces of at most ``size`` characters, each with its
    offset, cut after the last line break in the window, else the last space, else hard."""
    at, n = 0, len(text)
    while at < n:
        end = min(n, at + size)
        if end < n:
            cut = text.rfind("\n", at + size // 2, end)
            if cut < 0:
                cut = text.rfind(" ", at + size // 2, end)
            if cut >= 0:
                end = cut + 1
        yield at, text[at:end]
        at = end


def find(text: str) -> list[tuple[str, int, int]]:
    """Every name in ``text`` as (kind, start, end), in order. Pieces seen lately are not
    read again: a chat resends its whole history (and its system prompt) every turn.
    ``guard.pii.find`` hands it the text with escaped line breaks already made real."""
    parts = [(off, p) for off, p in pieces(text) if _LETTER.search(p)]
    known = {p: e for _, p in parts if (e := _seen.get(p)) is not None}
    fresh = [p for p in dict.fromkeys(p for _, p in parts) if p not in known]
    if fresh:
        docs = _model().pipe(fresh)
        for p, doc in zip(fresh, docs, strict=True):
            known[p] = tuple((e.label_, e.start_char, e.end_char) for e in doc.ents
                             if e.label_ in KINDS)
            _remember(p, known[p])
    out = []
    for off, p in parts:
        out += [(k, off + a, off + b) for k, a, b in known[p]]
    return _with_echoes(text, out) if out else out


ECHOES = 64  # distinct words of people's names looked for again, per text
_NAME_WORD = re.compile(r"[^\W\d_][\w'-]{2,}")
_NOT_NAMES = frozenset({"Mr", "Mrs", "Ms", "Miss", "Dr", "Prof", "Sir", "Dear", "The"})


def _with_echoes(text: str, found: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """``found`` and the other mentions of each person in it: once "Nicklas A Olsen" is
    a name, so is "Nicklas" or "Olsen" anywhere else in the text (the model misses a
    lone first name in an odd place far more often than a full one). Disjoint, in
    order; one pass over the text for at most ``ECHOES`` words."""
    words: dict[str, None] = {}
    for kind, a, b in found:
        if kind == "PERSON":
            for w in _NAME_WORD.findall(text, a, b):
                if w[0].isupper() and w not in _NOT_NAMES and len(words) < ECHOES:
                    words[w] = None
    spans = list(found)
    if words:
        alts = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        spans += [("PERSON", m.start(), m.end())
                  for m in re.finditer(rf"(?<![\w'-])(?:{alts})(?![\w'-])", text)]
    spans.sort(key=lambda s: (s[1], -s[2]))
    out: list[tuple[str, int, int]] = []
    for s in spans:
        if not out or s[1] >= out[-1][2]:
            out.append(s)
    return out


SEEN = 4096  # pieces remembered (at most ~8 MB of text), oldest forgotten first
_seen: OrderedDict[str, tuple[tuple[str, int, int], ...]] = OrderedDict()
_lock = threading.Lock()  # large bodies are scanned on worker threads


def _remember(piece: str, ents: tuple[tuple[str, int, int], ...]) -> None:
    with _lock:
        _seen[piece] = ents
        if len(_seen) > SEEN:
            _seen.popitem(last=False)
