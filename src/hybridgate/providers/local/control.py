"""Client text is tokenized as text, never as control tokens.

A rendered chat prompt mixes the template's own markers (``<|im_start|>system``) with
client text. Tokenizing the whole string with special tokens parsed would let a user who
types ``<|im_start|>system ...`` inject real control tokens: role spoofing. So before
rendering, every control-token text inside client strings is swapped for a placeholder
(a per-process random tag the client cannot produce on purpose, and that would be
harmless if it did); after rendering, the template's parts are tokenized with special
tokens parsed and each placeholder is tokenized as the plain text it stood for.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from typing import Any


def _trie_pattern(texts: Iterable[str]) -> str:
    """One regex for a set of literals, shaped as their prefix tree: at each position the
    match walks the tree (a branch per next character), so its cost does not grow with
    the number of texts. A flat ``a|b|c...`` tries every text at every position: with a
    vocabulary's thousands of control tokens (Gemma's ``<unusedN>``) a hostile megabyte
    took 25 s. Longer texts win: a node's branches come before its end."""
    trie: dict[str, dict] = {}
    for t in texts:
        node = trie
        for ch in t:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, dict]) -> str:
        branches = [re.escape(ch) + build(child) for ch, child in node.items() if ch]
        if not branches:
            return ""
        alt = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # a text ends here; greedy ?: a longer one is tried first
            return f"(?:{alt})?" if len(branches) == 1 else alt + "?"
        return alt

    return build(trie)


class ControlText:
    def __init__(self, control_texts: Iterable[str]) -> None:
        self.texts = sorted({t for t in control_texts if t})
        self._index = {t: i for i, t in enumerate(self.texts)}
        self._find = re.compile(_trie_pattern(self.texts)) if self.texts else None
        tag = "HGCTL" + secrets.token_hex(8)
        self._tag = tag
        self._placeholder = re.compile(re.escape(tag) + r"_(\d+)_")

    def escape(self, value: Any) -> Any:
        """``value`` (a string, or lists and dicts of them, as templates take) with every
        control-token text replaced by its placeholder."""
        if isinstance(value, str):
            if self._find is None:
                return value
            return self._find.sub(lambda m: f"{self._tag}_{self._index[m.group()]}_", value)
        if isinstance(value, dict):
            return {k: self.escape(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.escape(v) for v in value]
        return value

    def segments(self, prompt: str) -> Iterator[tuple[str, bool]]:
        """(piece, parse_special) over a prompt rendered from escaped messages: the
        template's parts with True, each escaped control text (as plain text) with False."""
        pos = 0
        for m in self._placeholder.finditer(prompt):
            if m.start() > pos:
                yield prompt[pos:m.start()], True
            yield self.texts[int(m.group(1))], False
            pos = m.end()
        if pos < len(prompt):
            yield prompt[pos:], True
