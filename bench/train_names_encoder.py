"""Train the head of the encoder-based names recogniser (``guard/names_encoder.py``)
and write it to ``src/hybridgate/guard/names_head.safetensors``.

The sentences are ``bench/train_names.py``'s (Faker's name lists, GeoNames, MMLU
sentences and templates written here; none of presidio-evaluator's, which
``bench/pii_eval.py`` measures on). The encoder (all-MiniLM-L6-v2) stays frozen: its
features are computed once, then only the head (a BiLSTM over them and each word
piece's capitalisation) is trained.

Usage: ``python bench/train_names_encoder.py [--sentences 40000] [--epochs 8]
[--layers 2,4] [--long 0.15]`` (about 35 minutes on 2 cores; needs the ``embeddings``
and ``bench`` extras).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.nn.utils.rnn import pad_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_names import corpus, span_scores  # noqa: E402

from hybridgate.guard.names_encoder import HEAD, TAGS, Encoder, build_head, decode  # noqa: E402

TAG = {t: i for i, t in enumerate(TAGS)}


def token_labels(offsets: list[tuple[int, int]], spans: list[tuple[int, int, str]]
                 ) -> list[int]:
    """B-/I- per word piece inside a labelled span, O outside, -100 for special tokens."""
    out = []
    for a, b in offsets:
        if a == b:
            out.append(-100)
            continue
        lab = "O"
        for s, e, kind in spans:
            if s <= a < e:
                first = not any(s <= a2 < a and a2 != b2 for a2, b2 in offsets)
                lab = f"{'B' if first else 'I'}-{kind}"
                break
        out.append(TAG[lab])
    return out


def featurize(enc: Encoder, data: list, batch: int = 64) -> list[tuple]:
    """(features fp16, case, labels, text, offsets) per sentence, in data order."""
    order = sorted(range(len(data)), key=lambda i: len(data[i][0]))
    out: list = [None] * len(data)
    t0 = time.time()
    for k in range(0, len(order), batch):
        idx = order[k:k + batch]
        texts = [data[i][0] for i in idx]
        ids, offsets, owner = enc.windows(texts)
        first = [j for j, w in enumerate(owner) if j == 0 or owner[j - 1] != w]
        # a rare text longer than a window: its first window only
        feats, case, lengths = enc.run([texts[owner[j]] for j in first],
                                       [ids[j] for j in first], [offsets[j] for j in first])
        for row, j in enumerate(first):
            i, n = idx[owner[j]], int(lengths[row])
            out[i] = (feats[row, :n].half(), case[row, :n],
                      torch.tensor(token_labels(offsets[j], data[i][1])),
                      data[i][0], offsets[j])
        if k // batch % 50 == 0:
            print(f"  features {k + len(idx)}/{len(data)} ({time.time() - t0:.0f} s)",
                  flush=True)
    return out


def batches(rows: list, size: int, rng: random.Random | None) -> list[list]:
    idx = list(range(len(rows)))
    if rng:
        rng.shuffle(idx)
    return [[rows[i] for i in idx[k:k + size]] for k in range(0, len(idx), size)]


def collate(rows: list) -> tuple:
    feats = pad_sequence([r[0].float() for r in rows], batch_first=True)
    case = pad_sequence([r[1] for r in rows], batch_first=True)
    labels = pad_sequence([r[2] for r in rows], batch_first=True, padding_value=-100)
    lengths = torch.tensor([len(r[2]) for r in rows])
    return feats, case, labels, lengths


def score(head: torch.nn.Module, rows: list, data: list) -> dict[str, tuple[float, float]]:
    """Exact-span precision and recall per label on the dev sentences."""
    pairs = []
    head.eval()
    with torch.inference_mode():
        for b in batches(rows, 256, None):
            feats, case, _, lengths = collate(b)
            tags = head(feats, case, lengths).argmax(-1).tolist()
            pairs += [{(a, e, k) for k, a, e in decode(r[3], tg[:len(r[4])], r[4])}
                      for r, tg in zip(b, tags, strict=True)]
    head.train()
    return span_scores(zip(pairs, (set(spans) for _, spans in data), strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=40000)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", default="2,4", help="encoder layers whose outputs are read")
    ap.add_argument("--long", type=float, default=0.15,
                    help="share of training texts of 3-8 sentences")
    ap.add_argument("--out", type=Path, default=HEAD)
    args = ap.parse_args()
    torch.manual_seed(0)
    layers = tuple(int(x) for x in args.layers.split(","))
    enc = Encoder(layers)
    train_data = corpus(args.sentences, seed=1, long_share=args.long, addresses=True)
    dev_data = corpus(2000, seed=2, addresses=True)
    print(f"{len(train_data)} training sentences; encoder layers {layers}", flush=True)
    train, dev = featurize(enc, train_data), featurize(enc, dev_data)
    head = build_head(enc.dim, args.hidden)
    opt = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * ((len(train) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100)
    rng = random.Random(0)
    for epoch in range(args.epochs):
        t0, total = time.time(), 0.0
        for b in batches(train, 64, rng):
            feats, case, labels, lengths = collate(b)
            # the encoder is frozen; a little noise on its features stands in for dropout
            feats = torch.nn.functional.dropout(feats, 0.2)
            logits = head(feats, case, lengths)
            loss = loss_fn(logits.reshape(-1, len(TAGS)), labels.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        s = score(head, dev, dev_data)
        print(f"epoch {epoch + 1}: loss {total:.1f}, {time.time() - t0:.0f} s, dev "
              + ", ".join(f"{k} P {p:.3f} R {r:.3f}" for k, (p, r) in s.items()), flush=True)
    cfg = {"layers": list(layers), "hidden": args.hidden, "encoder": "all-MiniLM-L6-v2",
           "trained_by": "bench/train_names_encoder.py", "sentences": args.sentences,
           "epochs": args.epochs, "long": args.long}
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(args.out),
              metadata={"config": json.dumps(cfg)})
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
