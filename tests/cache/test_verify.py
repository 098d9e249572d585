"""A semantic hit's verification: paraphrases keep the signature, the near misses that
embeddings confuse change it, and any input is scanned in one linear pass."""

from __future__ import annotations

import pytest

from hybridgate.cache.verify import fingerprint, signature


@pytest.mark.parametrize(("a", "b"), [
    ("What is the capital of France?", "Tell me the capital city of France."),
    ("How many legs do five spiders have?", "how many legs do 5 spiders have"),
    ("Which of these isn't true?", "Which of the following is not true?"),
    ("What is the largest planet?", "Which planet is the biggest?"),
    ("Who wrote \"Hamlet\"?", "Who is the author of \"Hamlet\"?"),
    ("Write a Python function to sort a list", "Quick question: write a python function "
     "that sorts a list"),
    ("How much is 1,000 dollars in euros?", "What's 1000 USD in euros?"),
    ("Convert 5 miles to km", "How many km is 5 miles?"),  # given and asked, any order
    ("Convert 15 Fahrenheit to Celsius", "What is 15 degrees Fahrenheit in Celsius?"),
])
def test_paraphrases_keep_the_signature(a, b):
    assert signature(a) == signature(b)
    assert fingerprint(a) == fingerprint(b)


@pytest.mark.parametrize(("a", "b"), [
    ("Convert 5 miles to km", "Convert 5 km to miles"),  # a conversion's direction
    ("Convert 5 miles to km", "Convert 6 miles to km"),  # a number
    ("Convert 5 miles to km", "Convert 5 miles to feet"),  # a unit
    ("Which of the following is true?", "Which of the following is not true?"),
    ("Is Paris bigger than London?", "Is London bigger than Paris?"),  # names swapped
    ("Who was the first president of Kenya?", "Who was the first president of Ghana?"),
    ("What is the largest planet?", "What is the smallest planet?"),  # polar words
    ("What happened before the war?", "What happened after the war?"),
    ("Write a Python function to sort a list", "Write a Rust function to sort a list"),
    ("Write a function in C to sort a list", "Write a function in Go to sort a list"),
    ("Who wrote \"Hamlet\"?", "Who wrote \"Macbeth\"?"),
])
def test_near_misses_change_it(a, b):
    assert fingerprint(a) != fingerprint(b)


def test_hostile_input_is_one_pass():
    # unclosed quotes, long digit runs, apostrophes: each position is matched at most once
    # (quotes look ahead at most 200 characters), so a megabyte finishes at once
    for body in ('"' * 1_000_000, "1," * 500_000, "a'" * 500_000, "Aa " * 333_333):
        assert isinstance(fingerprint(body), int)
