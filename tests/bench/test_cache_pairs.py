"""The semantic cache's labelled set (bench/data/cache_pairs): big enough, every kind of
near miss present, each base on one side of the calibration / test split; and the rule
edits change what they say they change."""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import cache_pairs  # noqa: E402

KINDS = {"paraphrase-model", "paraphrase-surface", "number", "negation", "antonym",
         "entity", "unit", "language", "neighbour", "neighbour-same"}


def test_the_committed_set():
    pairs = [json.loads(x) for x in (cache_pairs.OUT / "pairs.jsonl").read_text()
             .splitlines()]
    assert len(pairs) >= 1000
    kinds = Counter(p["kind"] for p in pairs)
    assert set(kinds) == KINDS and min(kinds[k] for k in KINDS - {"neighbour-same"}) >= 20
    labels = Counter(p["label"] for p in pairs)
    assert labels["hit"] >= 500 and labels["miss"] >= 500
    split_of: dict[str, set[str]] = {}
    for p in pairs:
        split_of.setdefault(p["base"], set()).add(p["split"])
        assert p["query"] != p["base"]
    assert all(len(s) == 1 for s in split_of.values())
    assert 0.4 < sum(s == {"test"} for s in split_of.values()) / len(split_of) < 0.6


def test_rule_edits():
    rng = random.Random(0)
    names = ["Paris", "Kenya"]
    edits = dict(cache_pairs.near_misses("Convert 5 miles to kilometers.", names, rng))
    assert edits["number"] != "Convert 5 miles to kilometers." and " 5 " not in edits["number"]
    assert edits["unit"] == "Convert 5 kilometers to miles."
    edits = dict(cache_pairs.near_misses("Which planet is the largest?", names, rng))
    assert edits["negation"] == "Which planet is not the largest?"
    assert edits["antonym"] == "Which planet is the smallest?"
    edits = dict(cache_pairs.near_misses("Write a Python function that sorts a list.",
                                         names, rng))
    assert "Python" not in edits["language"] and "function that sorts" in edits["language"]
    edits = dict(cache_pairs.near_misses("Is it colder in Oslo than in Rome?", names, rng))
    assert edits["entity"] == "Is it colder in Rome than in Oslo?"
