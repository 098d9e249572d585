"""The static embedder distilled from MiniLM: close for paraphrases, far for other topics,
client text read as text, and distilled once per model, then loaded."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from hybridgate.providers import static_embeddings
from hybridgate.providers.embeddings import model_dir
from hybridgate.providers.static_embeddings import StaticEmbedder, load_table


@pytest.fixture(scope="module")
def static() -> StaticEmbedder:
    e = StaticEmbedder("all-MiniLM-L6-v2")
    asyncio.run(e.start())  # distils into $HYBRIDGATE_HOME/embeddings the first time
    return e


def test_paraphrases_sit_closer_than_other_questions(static):
    q, para, other, near = static.encode([
        "How do I reverse a list in Python?",
        "What is the way to reverse a Python list?",
        "Who painted the ceiling of the Sistine Chapel?",
        "How do I sort a list in Python?"])
    assert np.allclose(np.linalg.norm([q, para, other, near], axis=1), 1, atol=1e-5)
    assert q @ para > 0.76 > q @ other  # the default prefilter keeps one, not the other
    # a bag of word pieces: another action is as close as a paraphrase, which is why
    # the cache asks the full MiniLM to confirm what the prefilter lets through
    assert q @ near > 0.76
    assert (static.encode([""]) == 0).all()  # nothing to embed: a zero vector, no error


def test_control_tokens_in_client_text_are_text(static):
    ids = static.tokenizer.encode("[CLS] hi [SEP] [MASK]", add_special_tokens=False).ids
    special = {static.tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[MASK]")}
    assert ids and not special & set(ids)


def test_vectors_is_the_cache_interface(static):
    v = asyncio.run(static.vectors(["one question", "another one"]))
    assert v.shape == (2, 384) and v.dtype == np.float32
    assert np.allclose(v, static.encode(["one question", "another one"]))


def test_the_table_is_distilled_once_per_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDGATE_HOME", str(tmp_path))
    calls = []

    def fake_distill(folder):  # the recipe itself is what the tests above check
        calls.append(folder)
        return np.ones((8, 4), np.float16)

    monkeypatch.setattr(static_embeddings, "distill", fake_distill)
    folder = model_dir("all-MiniLM-L6-v2")
    first = load_table(folder)
    again = load_table(folder)
    assert len(calls) == 1 and (first == again).all()
    saved = list((tmp_path / "embeddings").iterdir())
    assert len(saved) == 1 and saved[0].suffix == ".npy"  # no temporary file left
    other = tmp_path / "other-model"  # other weights: another table
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"other weights")
    load_table(other)
    assert len(calls) == 2 and len(list((tmp_path / "embeddings").iterdir())) == 2
