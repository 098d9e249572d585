"""Names of people, places and organisations: both shipped readers (the encoder and the
small spaCy model) find them in sentences they were not trained on, leave ordinary
requests alone, read hostile input in bounded pieces (linear time), and yield to the
identifier patterns where both claim a span."""

from __future__ import annotations

import time

import pytest

from hybridgate.guard import names
from hybridgate.guard.pii import find


@pytest.fixture(autouse=True, params=names.READERS)
def reader(request):
    if request.param == "encoder":
        pytest.importorskip("torch")
    names.use(request.param)
    yield request.param
    names.use("encoder")


# Written for this test, unlike any training template (bench/data/names_templates.txt).
NAMED = [
    ("Could you forward the minutes to Ingrid Halvorsen before noon?",
     {("PERSON", "Ingrid Halvorsen")}),
    ("Our auditor, Tomasz Wieczorek, flagged two invoices last quarter.",
     {("PERSON", "Tomasz Wieczorek")}),
    ("Kenji Watanabe will fly from Osaka to Toronto on the 4th.",
     {("PERSON", "Kenji Watanabe"), ("LOCATION", "Osaka"), ("LOCATION", "Toronto")}),
]
PLAIN = [
    "Write a Python function that merges two sorted lists.",
    "Explain the difference between a mutex and a semaphore.",
    "What are the main causes of inflation? Answer in three bullet points.",
]


@pytest.mark.parametrize(("text", "want"), NAMED)
def test_names_in_sentences_it_never_saw(text, want):
    got = {(f.kind, f.value) for f in find(text, names=True)}
    assert want <= got, got


@pytest.mark.parametrize("text", PLAIN)
def test_ordinary_requests_have_no_names(text):
    assert find(text, names=True) == []


def test_a_language_is_not_a_place(reader, request):
    if reader == "small":
        request.applymarker(pytest.mark.xfail(
            reason="the small model sometimes takes a language or nationality for a place: "
                   "over-redaction (harmless to privacy, shown in docs/benchmarks.md)"))
    assert find("Translate 'good evening' into Italian.", names=True) == []


def test_names_only_when_asked():
    assert find(NAMED[0][0]) == []


def test_an_identifier_keeps_its_span():
    found = find("Mail ingrid.halvorsen@example.com, Ingrid Halvorsen's address.", names=True)
    kinds = [(f.kind, f.value) for f in found]
    assert ("EMAIL_ADDRESS", "ingrid.halvorsen@example.com") in kinds
    assert all(not (k == "PERSON" and "@" in v) for k, v in kinds)


def test_pieces_cover_the_text_in_bounded_cuts_at_spaces():
    text = ("word " * 900) + ("x" * 5000) + "\n" + ("tail " * 10)
    got = list(names.pieces(text))
    assert "".join(p for _, p in got) == text
    assert all(len(p) <= names.PIECE for _, p in got)
    assert all(text[off:off + len(p)] == p for off, p in got)
    assert got[0][1].endswith(" ")  # cut after a space, not inside a word


@pytest.mark.parametrize("shape", ["Ab " * 333_334, "a" * 1_000_000, "(" * 1_000_000,
                                   "Mr. " * 250_000])
def test_a_hostile_megabyte_is_read_in_linear_time(shape, reader):
    # the encoder reads ~10x slower: a tenth of the sizes (10x apart all the same)
    n = 1_000_000 if reader == "small" else 100_000
    names.load()
    t0 = time.perf_counter()
    find(shape[:n // 10], names=True)
    small = time.perf_counter() - t0
    t0 = time.perf_counter()
    find(shape[:n], names=True)
    big = time.perf_counter() - t0
    assert big < 60 and big < 10 * 2.5 * max(small, 0.02), (small, big)


def test_a_piece_seen_before_gives_the_same_names_at_its_new_offset():
    text = NAMED[2][0]
    first = find(text, names=True)
    again = find("Note:\n" + text, names=True)  # the same line, now a later piece
    assert [(f.kind, f.value) for f in again] == [(f.kind, f.value) for f in first]
    assert all(("Note:\n" + text)[f.start:f.end] == f.value for f in again)


def test_once_a_person_is_found_their_other_mentions_are_too():
    text = "Ask Ingrid Halvorsen about it; Ingrid said yes, and Halvorsen agreed."
    got = [(f.kind, f.value) for f in find(text, names=True)]
    assert got == [("PERSON", "Ingrid Halvorsen"), ("PERSON", "Ingrid"),
                   ("PERSON", "Halvorsen")], got


def test_a_remembered_piece_is_not_read_by_the_model_again(monkeypatch):
    text = "Please book a table for Rosalind Okonkwo-Baptiste at eight."
    first = find(text, names=True)

    def no_model(texts):  # noqa: ANN001, ANN202
        raise AssertionError(f"the model read {texts} again")

    monkeypatch.setattr(names, "_read", no_model)
    assert find(text, names=True) == first


def test_an_escaped_line_break_separates_a_name_from_the_next_line():
    text = r'{"note": "Signed,\nIngrid Halvorsen\nAccounts"}'
    assert ("PERSON", "Ingrid Halvorsen") in {(f.kind, f.value)
                                              for f in find(text, names=True)}


def test_only_the_encoder_finds_street_addresses(reader):
    text = "Please send the replacement card to 4417 Larkspur Avenue, Apt 12, Denver."
    kinds = {f.kind for f in find(text, names=True)}
    assert ("STREET_ADDRESS" in kinds) == (reader == "encoder"), kinds
