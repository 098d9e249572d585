"""The encoder-based names reader: client text stays text (no control tokens), a long
text is read whole in overlapping windows, spans stop at line breaks, and concurrent
requests' new text is read in one batch, off the event loop."""

from __future__ import annotations

import asyncio

import pytest

from hybridgate.guard import names
from hybridgate.guard.names_encoder import TAGS, decode, tagger
from hybridgate.guard.pii import find

pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _encoder():
    names.use("encoder")
    yield
    names.use("encoder")


def test_special_token_strings_are_read_as_text():
    enc = tagger().encoder
    text = "Ingrid wrote [SEP] [CLS] [PAD] [MASK] then left."
    ids, offsets, owner = enc.windows([text])
    specials = [o for o in offsets[0] if o[0] == o[1]]
    assert specials == [(0, 0), (0, 0)]  # the model's own [CLS] and [SEP], no others
    assert owner == [0]


def test_a_long_text_is_read_whole_in_windows():
    filler = "the quarterly report lists every invoice and its due date. " * 60
    text = filler + "Please forward it to Ingrid Halvorsen in Oslo."
    _, _, owner = tagger().encoder.windows([text])
    assert len(owner) > 1  # more than one window
    got = {f.value for f in find(text, names=True)}
    assert {"Ingrid Halvorsen", "Oslo"} <= got, got


def test_a_span_ends_at_a_line_break():
    text = "Ann\nBerg"
    tags = [0, TAGS.index("B-PERSON"), TAGS.index("I-PERSON"), 0]
    assert decode(text, tags, [(0, 0), (0, 3), (4, 8), (0, 0)]) == [
        ("PERSON", 0, 3), ("PERSON", 4, 8)]


def test_a_street_address_is_found():
    text = "Please send the replacement card to 4417 Larkspur Avenue, Apt 12, Denver."
    got = [(f.kind, f.value) for f in find(text, names=True)]
    assert any(k == "STREET_ADDRESS" and "Larkspur" in v for k, v in got), got


def test_concurrent_requests_share_one_model_call(monkeypatch):
    calls: list[list[str]] = []
    real = names._read

    def counting(texts: list[str]):  # noqa: ANN202
        calls.append(list(texts))
        return real(texts)

    monkeypatch.setattr(names, "_read", counting)
    a = "Could Tomasz Wieczorek check the figures once more?"
    b = "Kenji Watanabe lands in Toronto at nine."

    async def both() -> None:
        reader = names.Reader()
        await asyncio.gather(reader.prefetch([a]), reader.prefetch([b]))

    asyncio.run(both())
    assert len(calls) == 1 and sorted(calls[0]) == sorted([a, b])
    before = len(calls)
    assert ("PERSON", "Tomasz Wieczorek") in {(f.kind, f.value) for f in find(a, names=True)}
    assert len(calls) == before  # find took what prefetch read


def test_a_short_message_does_not_wait_behind_a_long_one(monkeypatch):
    import time

    def slow(texts: list[str]):  # noqa: ANN202 - a model call of fixed cost
        time.sleep(0.05)
        return [() for _ in texts]

    monkeypatch.setattr(names, "_read", slow)
    long = [f"Line {i} of a long report by Ingrid Halvorsen." for i in range(200)]

    async def race() -> list[str]:
        reader, order = names.Reader(), []

        async def go(label: str, texts: list[str]) -> None:
            await reader.prefetch(texts)
            order.append(label)

        first = asyncio.create_task(go("long", long))
        await asyncio.sleep(0.01)  # the long one is being read
        await go("short", ["Could Tomasz Wieczorek call me back?"])
        await first
        return order

    assert asyncio.run(race()) == ["short", "long"]


def test_without_the_embeddings_extra_loading_says_what_to_install(monkeypatch):
    import hybridgate.guard.names_encoder as encoder

    def missing():  # noqa: ANN202 - as if torch were not installed
        raise ImportError("No module named 'torch'")

    monkeypatch.setattr(encoder, "tagger", missing)
    with pytest.raises(RuntimeError, match=r"embeddings extra.*pii_names_model: small"):
        names.load()
    # and a gateway with a pii: mode does not start (README)
    from hybridgate.config.settings import parse_config
    from hybridgate.pipeline import Pipeline

    pipeline = Pipeline(parse_config({
        "tenants": [{"name": "t", "pii": "redact"}], "ledger": {"enabled": False},
        "models": [{"name": "m", "provider": "openai", "base_url": "http://127.0.0.1:9/v1"}]}))
    with pytest.raises(RuntimeError, match="embeddings extra"):
        asyncio.run(pipeline.start())


def test_the_encoder_runs_four_layers_and_reads_two():
    enc = tagger().encoder  # README: "its first 4 layers, frozen"
    assert len(enc.model.encoder.layer) == 4 and enc.layers == (2, 4)
