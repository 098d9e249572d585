"""Personal-data detection: what it finds, everywhere an upstream would look, in linear
time on hostile input."""

from __future__ import annotations

import time

import pytest

from hybridgate.core.types import ChatRequest, ContentPart, FunctionCall, Message, ToolCall
from hybridgate.guard.pii import detect, outbound_text


@pytest.mark.parametrize(("text", "kind"), [
    ("write to ann.lee+x@example.co.uk today", "email"),
    ("my SSN is 078-05-1120", "ssn"),
    ("IBAN DE89 3704 0044 0532 0130 00 please", "iban"),
    ("card 4111 1111 1111 1111 exp 12/29", "card"),
    ("card 4111-1111-1111-1111", "card"),
    ("order 4111 1111 1111 1112 (not Luhn)", None),
    ("no personal data here, just 12345 and an @ sign", None),
])
def test_detects_the_obvious_kinds(text, kind):
    assert detect(text) == kind


# One megabyte of each shape that made the old patterns backtrack (an unanchored
# ``[\w.+-]+@`` rescans a long word from every position: quadratic).
ADVERSARIAL = {
    "word run": "a" * 1_000_000,
    "dotted word run": "a." * 500_000,
    "digit run": "1" * 1_000_000,
    "spaced digits": "1 " * 500_000,
    "dashed digits": "12-" * 333_333,
    "iban-ish": "AB12" * 250_000,
    "ats": "a@" * 500_000,
    "at then word": "x@" + "a" * 999_998,
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_a_megabyte_of_hostile_text_is_scanned_in_linear_time(name):
    text = ADVERSARIAL[name]
    t0 = time.perf_counter()
    detect(text)
    big = time.perf_counter() - t0
    t0 = time.perf_counter()
    detect(text[:100_000])
    small = time.perf_counter() - t0
    # Quadratic would take hours on 1 MB (4 s on 40 kB before the fix); linear is well
    # under a second here, and 10x the input costs about 10x, not 100x.
    assert big < 2.0, f"{name}: {big:.2f} s for 1 MB"
    assert big < 40 * max(small, 1e-3), f"{name}: 1 MB {big:.3f} s vs 100 kB {small:.3f} s"


def test_outbound_text_covers_everything_that_leaves():
    req = ChatRequest(model="auto", messages=[
        Message(role="system", content="system prompt sys@example.org"),
        Message(role="user", content=[ContentPart(type="text", text="part one@example.org")]),
        Message(role="assistant", content=None, tool_calls=[ToolCall(
            id="c1", function=FunctionCall(name="f", arguments='{"to": "arg@example.org"}'))]),
        Message(role="tool", tool_call_id="c1", content="tool result 078-05-1120"),
        Message(role="user", content="last turn, clean"),
    ])
    text = outbound_text(req)
    for piece in ("sys@example.org", "one@example.org", "arg@example.org", "078-05-1120"):
        assert piece in text
    assert detect("last turn, clean") is None and detect(text) == "email"


def test_residency_routes_on_identifiers_not_names():
    assert detect("Please forward the minutes to Ingrid Halvorsen in Oslo.") is None
