"""Personal-data detection over everything a request would send upstream.

Client text is hostile, so every pattern here runs in linear time on any input: a match
may only *start* where a run of its characters starts (a negative lookbehind), and every
quantifier is bounded, so each position of the text is looked at a bounded number of
times. An unanchored ``[\\w.+-]+@`` (what this replaced) rescans the rest of a long word
from every position: 40,000 characters took 4 s, a megabyte would take hours.

Structured identifiers are found here by pattern and checksum; names of people, places
and organisations (no pattern finds them) by ``guard/names``' model, when asked for.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hybridgate.core.types import ChatRequest
from hybridgate.guard.names import find as find_names

# RFC 5321 limits: local part <= 64, a label <= 63, the whole domain <= 253 characters.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
_SSN = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
_IBAN = re.compile(r"(?<!\w)[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?(?!\w)")
# 12-19 digits (12: Maestro), optionally grouped by single spaces or dashes, not inside a
# longer run.
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d])")
_NON_DIGIT = re.compile(r"\D")


def _luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


# Phone numbers, in the shapes people write them (bare digit groups are too often
# amounts or years): international with +country code (grouped or not); (area) 555-0132;
# 415-555-0132 or 415.555.0132; a national number with its trunk 0 (020 7946 0958).
# Bounded, and never inside a longer run of digits or word characters.
_PHONE = re.compile(
    r"(?<![\w+-])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,4}){1,4}"
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"
    r"|\d{3}[.-]\d{3}[.-]\d{4}"
    r"|0\d{2,4}[ .-]\d{3,4}[ .-]\d{3,4}"
    r"|\+\d{7,15}"
    r")(?![\w-])")
# Any run of 6-15 digits in groups, with a country code, an area code in brackets or an
# extension: a phone number only where a word near it says so ("call me on", "Fax:").
_PHONE_LOOSE = re.compile(
    r"(?<![\w+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{2,10}(?:[ .-]\d{2,8}){0,4}"
    r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?!\w)")
# Words that say a number is a phone's (not "number", "home" or "order": too common).
_PHONE_WORDS = re.compile(
    r"(?i)\b(?:phone|tel|telephone|mobile|cell|cellphone|fax|office|desk|call|calling|"
    r"called|reach|contact|dial|answering|whatsapp|sms|texts? to|messages? to)\b")
# IPv6: eight groups, or fewer around one "::"; checked by the ipaddress module.
_IPV6 = re.compile(r"(?<![\w:.])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}"
                   r"|(?:[0-9A-Fa-f]{1,4}:){1,6}(?::[0-9A-Fa-f]{1,4}){1,6})(?![\w:])")
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                   r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\w|\.\d)")
_SPACE = re.compile(r"\s")


def _iban_ok(m: re.Match[str]) -> bool:
    """ISO 13616's mod-97 check: a typo (or a random string of that shape) fails it."""
    s = _SPACE.sub("", m.group())
    n = "".join(str(int(c, 36)) for c in s[4:] + s[:4])
    return int(n) % 97 == 1


def _phone_ok(m: re.Match[str]) -> bool:
    digits = _NON_DIGIT.sub("", m.group())
    return 7 <= len(digits) <= 15 and not (len(digits) in (13, 14, 15, 16) and
                                           _luhn(digits))


def _phone_said(m: re.Match[str]) -> bool:
    """A loose phone-shaped run counts where a phone word is just before or after it."""
    digits = _NON_DIGIT.sub("", m.group())
    if not 6 <= len(digits) <= 15 or (len(digits) >= 12 and _luhn(digits)):
        return False
    text = m.string
    return bool(_PHONE_WORDS.search(text, max(0, m.start() - 40), m.start())
                or _PHONE_WORDS.search(text, m.end(), m.end() + 12))


def _card_ok(m: re.Match[str]) -> bool:
    digits = _NON_DIGIT.sub("", m.group())
    return _luhn(digits) and (len(digits) > 12 or digits[0] in "56")


def _ipv6_ok(m: re.Match[str]) -> bool:
    """A valid address, and not C++'s ``a::b`` (two short groups)."""
    groups = [g for g in m.group().split(":") if g]
    if len(groups) < 3 and len(groups[0]) < 3:
        return False
    try:
        ipaddress.IPv6Address(m.group())
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Found:
    kind: str  # EMAIL_ADDRESS, PHONE_NUMBER, US_SSN, IBAN_CODE, CREDIT_CARD, IP_ADDRESS,
    # and with names: PERSON, LOCATION, ORGANIZATION, STREET_ADDRESS
    start: int
    end: int
    value: str


# Presidio's entity names, so counts and placeholders read the same as theirs; checked in
# this order, a span taken by an earlier kind is not taken again.
_KINDS: tuple[tuple[str, re.Pattern[str], Any], ...] = (
    ("EMAIL_ADDRESS", _EMAIL, None),
    ("IBAN_CODE", _IBAN, _iban_ok),
    ("CREDIT_CARD", _CARD, _card_ok),
    ("US_SSN", _SSN, None),
    ("IP_ADDRESS", _IPV4, None),
    ("IP_ADDRESS", _IPV6, _ipv6_ok),
    ("PHONE_NUMBER", _PHONE, _phone_ok),
    ("PHONE_NUMBER", _PHONE_LOOSE, _phone_said),
)


def find(text: str, names: bool = False) -> list[Found]:
    """Every piece of personal data in ``text``, in order, none overlapping. Linear in
    the text (each pattern is, and the names model reads bounded pieces); the patterns
    scan a megabyte in milliseconds, the names model takes longer (docs/benchmarks.md).
    A name that overlaps an identifier (the name in an e-mail address) is left to it."""
    taken: list[Found] = []  # disjoint, sorted by start (so by end too)
    scan = scan_text(text)
    for kind, pattern, valid in _KINDS:
        if kind == "EMAIL_ADDRESS" and "@" not in text:
            continue
        found = (Found(kind, m.start(), m.end(), text[m.start():m.end()])
                 for m in pattern.finditer(scan) if valid is None or valid(m))
        taken = _add(taken, found)
    if names:
        taken = _add(taken, (Found(k, a, b, text[a:b]) for k, a, b in find_names(scan)))
    return taken


def scan_text(text: str) -> str:
    """``text`` as the detectors read it: an escaped line break or tab ("\\n" in a JSON
    string or code) separates like the real one; the same length, so offsets hold and
    values come from the text itself."""
    return text.replace("\\n", " \n").replace("\\t", " \t") if "\\" in text else text


def _add(taken: list[Found], new: Iterable[Found]) -> list[Found]:
    """``taken`` and those of ``new`` (disjoint among themselves) that overlap none of
    it. Only the taken span starting last before a new one ends can overlap it, so each
    check is a bisection: many findings in a large body stay n log n, not n squared."""
    starts = [f.start for f in taken]
    keep = []
    for f in new:
        i = bisect.bisect_left(starts, f.end) - 1
        if i < 0 or taken[i].end <= f.start:
            keep.append(f)
    return sorted(taken + keep, key=lambda f: f.start) if keep else taken


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
        if _card_ok(m):
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
