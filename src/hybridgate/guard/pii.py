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
from dataclasses import dataclass
from typing import Any

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


# Phone numbers, in the shapes people write them (bare digit groups are too often
# amounts or years): international with +country code; (area) 555-0132; 415-555-0132 or
# 415.555.0132; a national number with its trunk 0 (020 7946 0958). Bounded, and never
# inside a longer run of digits or word characters.
_PHONE = re.compile(
    r"(?<![\w+-])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,4}){1,4}"
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"
    r"|\d{3}[.-]\d{3}[.-]\d{4}"
    r"|0\d{2,4}[ .-]\d{3,4}[ .-]\d{3,4}"
    r")(?![\w-])")
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                   r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\w|\.\d)")
_SPACE = re.compile(r"\s")


def _iban_ok(raw: str) -> bool:
    """ISO 13616's mod-97 check: a typo (or a random string of that shape) fails it."""
    s = _SPACE.sub("", raw)
    n = "".join(str(int(c, 36)) for c in s[4:] + s[:4])
    return int(n) % 97 == 1


def _phone_ok(raw: str) -> bool:
    digits = _NON_DIGIT.sub("", raw)
    return 7 <= len(digits) <= 15 and not (len(digits) in (13, 14, 15, 16) and
                                           _luhn(digits))


@dataclass(frozen=True, slots=True)
class Found:
    kind: str  # EMAIL_ADDRESS, PHONE_NUMBER, US_SSN, IBAN_CODE, CREDIT_CARD, IP_ADDRESS
    start: int
    end: int
    value: str


# Presidio's entity names, so counts and placeholders read the same as theirs; checked in
# this order, a span taken by an earlier kind is not taken again.
_KINDS: tuple[tuple[str, re.Pattern[str], Any], ...] = (
    ("EMAIL_ADDRESS", _EMAIL, None),
    ("IBAN_CODE", _IBAN, _iban_ok),
    ("CREDIT_CARD", _CARD, lambda m: _luhn(_NON_DIGIT.sub("", m))),
    ("US_SSN", _SSN, None),
    ("IP_ADDRESS", _IPV4, None),
    ("PHONE_NUMBER", _PHONE, _phone_ok),
)


def find(text: str) -> list[Found]:
    """Every piece of personal data in ``text``, in order, none overlapping. Linear in
    the text (each pattern is), so a megabyte scans in milliseconds."""
    taken: list[Found] = []
    for kind, pattern, valid in _KINDS:
        if kind == "EMAIL_ADDRESS" and "@" not in text:
            continue
        for m in pattern.finditer(text):
            if valid is not None and not valid(m.group()):
                continue
            if any(m.start() < f.end and f.start < m.end() for f in taken):
                continue
            taken.append(Found(kind, m.start(), m.end(), m.group()))
    return sorted(taken, key=lambda f: f.start)


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
