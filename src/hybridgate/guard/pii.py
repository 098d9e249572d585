"""Personal-data detection over everything a request would send upstream.

Client text is hostile, so every pattern here runs in linear time on any input: a match
may only *start* where a run of its characters starts (a negative lookbehind), and every
quantifier is bounded, so each position of the text is looked at a bounded number of
times. An unanchored ``[\\w.+-]+@`` (what this replaced) rescans the rest of a long word
from every position: 40,000 characters took 4 s, a megabyte would take hours.

Deliberately simple (email, US SSN, IBAN, Luhn-valid card numbers): it keeps the obvious
cases on-premises; the governance work brings a fuller detector.
"""

from __future__ import annotations

import re

from hybridgate.core.types import ChatRequest

# RFC 5321 limits: local part <= 64, a label <= 63, the whole domain <= 253 characters.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
_SSN = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
_IBAN = re.compile(r"(?<!\w)[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?(?!\w)")
# 13-19 digits, optionally grouped by single spaces or dashes, not inside a longer run.
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")
_NON_DIGIT = re.compile(r"\D")


def _luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def detect(text: str) -> str | None:
    """The kind of personal data found in ``text`` ("email", "ssn", "iban", "card"), or
    None."""
    if "@" in text and _EMAIL.search(text):
        return "email"
    if _SSN.search(text):
        return "ssn"
    if _IBAN.search(text):
        return "iban"
    for m in _CARD.finditer(text):
        if _luhn(_NON_DIGIT.sub("", m.group())):
            return "card"
    return None


def outbound_text(req: ChatRequest) -> str:
    """Every piece of client text that an upstream would receive: all messages of every
    role (content strings and text parts, names, tool-call arguments, tool results) and
    the tool definitions. Joined by newlines so that no two pieces fuse into a match."""
    parts: list[str] = []
    for m in req.messages:
        parts.append(m.text())
        if m.name:
            parts.append(m.name)
        for call in m.tool_calls or ():
            parts.append(call.function.arguments)
    for t in req.tools or ():
        if t.function.description:
            parts.append(t.function.description)
    return "\n".join(parts)
