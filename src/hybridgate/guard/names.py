"""People's, places' and organisations' names, and street addresses, in client text, for
the ``pii:`` modes.

Names have no shape a pattern can check, so a model finds them, one of two
(``pii_names_model``): ``encoder`` (``guard/names_encoder``: MiniLM and a tagging head
trained here, the default) or ``small`` (a spaCy pipeline, a hash-embedding CNN and a
transition-based recogniser, about 4 MB, shipped in ``names_model/``; no English spaCy
pipeline loads here from a package whose provenance holds up). Both were trained for this
project (``bench/train_names_encoder.py``, ``bench/train_names.py``) on sentences made
from Faker's name and address lists, GeoNames and templates written here, and measured
on presidio-evaluator's sentences, which share none of that (``bench/pii_eval.py``).

Client text is hostile: the model sees it in pieces of at most ``PIECE`` characters cut
at line breaks or spaces, so its work on any one run of text is bounded and the whole
scan stays linear in the input; ``Reader`` runs it off the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

MODEL = Path(__file__).with_name("names_model")
KINDS = frozenset({"PERSON", "LOCATION", "ORGANIZATION", "STREET_ADDRESS"})
PIECE = 2_000
_LETTER = re.compile(r"[^\W\d_]")


READERS = ("small", "encoder")
_reader = "encoder"  # as the config default, pii_names_model


@functools.cache
def _model() -> Any:
    """The pipeline, loaded once per process (about 0.3 s) from the package itself."""
    import spacy  # imported here: only a gateway with pii: modes pays for it

    return spacy.load(MODEL)


def _read_small(texts: list[str]) -> list[tuple[tuple[str, int, int], ...]]:
    return [tuple((e.label_, e.start_char, e.end_char) for e in doc.ents
                  if e.label_ in KINDS) for doc in _model().pipe(texts)]


def _read_encoder(texts: list[str]) -> list[tuple[tuple[str, int, int], ...]]:
    try:
        from hybridgate.guard.names_encoder import tagger

        model = tagger()
    except Exception as e:  # noqa: BLE001 - said once, at start-up, in plain words
        raise RuntimeError(
            "pii_names_model: encoder needs the embeddings extra (pip install "
            f"'hybridgate[embeddings]'), or set pii_names_model: small ({e})") from e
    return [tuple(found) for found in model.find(texts)]


def use(reader: str) -> None:
    """Which model reads names in this process: ``small`` (the spaCy model) or
    ``encoder`` (``guard/names_encoder``: needs the embeddings extra)."""
    global _reader
    if reader not in READERS:
        raise ValueError(f"names reader must be one of {READERS}, not {reader!r}")
    if reader != _reader:
        with _lock:
            _seen.clear()
        _reader = reader


def load() -> None:
    """Load the model now (at start-up) rather than on the first request."""
    _read(["Ann"])


def _read(texts: list[str]) -> list[tuple[tuple[str, int, int], ...]]:
    return (_read_encoder if _reader == "encoder" else _read_small)(texts)


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


def _fresh(texts: Iterable[str]) -> list[str]:
    """The distinct pieces of ``texts`` that hold a letter and are not remembered."""
    out = dict.fromkeys(p for t in texts for _, p in pieces(t) if _LETTER.search(p))
    return [p for p in out if p not in _seen]


class Reader:
    """Reads the new pieces of concurrent requests together, off the event loop: the
    model runs on a worker thread, and requests that arrive while it is busy share its
    next call (a batch of 16 short messages costs the encoder far less than 16 calls of
    one). Each call takes a bounded share of text from the waiting requests in turn, so
    a short message waits one short call, not behind a megabyte that came first.
    ``find`` then takes what was read from memory."""

    BATCH = 16  # pieces per model call
    BATCH_CHARS = 8_000  # and characters (~0.25 s of prose, ~1 s of random characters)

    def __init__(self) -> None:
        self._jobs: list[tuple[deque[str], asyncio.Future[None]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def prefetch(self, texts: Iterable[str]) -> None:
        """Read the names in ``texts`` (as ``guard.pii.find`` will hand them to ``find``)
        now, so that ``find`` on them does no model work."""
        fresh = _fresh(texts)
        if not fresh:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._jobs.append((deque(fresh), done))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        await done

    def _next_batch(self) -> list[str]:
        """Up to ``BATCH`` pieces and ``BATCH_CHARS`` characters (at least one piece),
        one from each waiting request in turn."""
        take: list[str] = []
        size = 0
        while len(take) < self.BATCH and any(q for q, _ in self._jobs):
            for q, _ in self._jobs:
                if not q or len(take) >= self.BATCH:
                    continue
                if take and size + len(q[0]) > self.BATCH_CHARS:
                    return take
                size += len(q[0])
                take.append(q.popleft())
        return take

    async def _drain(self) -> None:
        while self._jobs:
            self._jobs = [(q, d) for q, d in self._jobs if not d.done()]  # gone: cancelled
            take = self._next_batch()
            try:
                if take:
                    await asyncio.to_thread(_read_and_remember, take)
            except Exception as e:  # noqa: BLE001 - every waiter hears of it
                jobs, self._jobs = self._jobs, []
                for _, d in jobs:
                    if not d.done():
                        d.set_exception(e)
                continue
            for q, d in self._jobs:
                if not q and not d.done():
                    d.set_result(None)
            self._jobs = [(q, d) for q, d in self._jobs if q]


def _read_and_remember(fresh: list[str]) -> None:
    fresh = [p for p in dict.fromkeys(fresh) if p not in _seen]  # read since it waited
    if fresh:
        for p, ents in zip(fresh, _read(fresh), strict=True):
            _remember(p, ents)


def find(text: str) -> list[tuple[str, int, int]]:
    """Every name in ``text`` as (kind, start, end), in order. Pieces seen lately are not
    read again: a chat resends its whole history (and its system prompt) every turn.
    ``guard.pii.find`` hands it the text with escaped line breaks already made real."""
    parts = [(off, p) for off, p in pieces(text) if _LETTER.search(p)]
    known = {p: e for _, p in parts if (e := _seen.get(p)) is not None}
    fresh = [p for p in dict.fromkeys(p for _, p in parts) if p not in known]
    if fresh:
        for p, ents in zip(fresh, _read(fresh), strict=True):
            known[p] = ents
            _remember(p, ents)
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
