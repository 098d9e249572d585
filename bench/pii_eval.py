"""How well the ``pii:`` modes find personal data, on sentences nobody here wrote.

The labelled set comes from presidio-evaluator's sentence faker (its templates and its
FakeNameGenerator records; seeded), none of which the names model was trained on
(``bench/train_names.py``). For each entity type the gateway claims to find:

- recall: the share of labelled values that a finding of the same type overlaps;
- precision: the share of findings that overlap a labelled value of the same type, and
  ("any") of any labelled type at all (a street named after a person, redacted as a
  PERSON, still keeps the address in);
- leaks: the share of requests in which some labelled value (of a type we claim) still
  appears, whole, in what ``pii: redact`` would send upstream.

Also the scan's cost per KB of text, on ordinary sentences and on adversarial input.

Usage: ``python bench/pii_eval.py [--samples 2000] [--seed 42]`` (``bench`` extra:
presidio-evaluator).
"""

from __future__ import annotations

import argparse
import random
import string
import time
from collections import Counter

from presidio_evaluator.data_generator import PresidioSentenceFaker

from hybridgate.guard import names as names_model
from hybridgate.guard.pii import find
from hybridgate.guard.scrub import Pseudonyms

# presidio-evaluator's types -> ours (GPE: cities, states, countries)
TYPES = {"PERSON": "PERSON", "GPE": "LOCATION", "ORGANIZATION": "ORGANIZATION",
         "EMAIL_ADDRESS": "EMAIL_ADDRESS", "PHONE_NUMBER": "PHONE_NUMBER",
         "CREDIT_CARD": "CREDIT_CARD", "IBAN_CODE": "IBAN_CODE", "US_SSN": "US_SSN",
         "IP_ADDRESS": "IP_ADDRESS", "STREET_ADDRESS": "STREET_ADDRESS"}


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def accuracy(samples: list) -> None:
    tp_gold: Counter[str] = Counter()
    gold_n: Counter[str] = Counter()
    tp_found: Counter[str] = Counter()
    found_n: Counter[str] = Counter()
    any_found: Counter[str] = Counter()
    not_ours: Counter[str] = Counter()
    leaked = leaked_names = with_pii = 0
    misses: list[str] = []
    for s in samples:
        text = s.full_text
        gold = [(TYPES.get(sp.entity_type), sp.start_position, sp.end_position)
                for sp in s.spans]
        every = [(sp.start_position, sp.end_position) for sp in s.spans]
        for sp in s.spans:
            if sp.entity_type not in TYPES:
                not_ours[sp.entity_type] += 1
        gold = [g for g in gold if g[0] is not None]
        got = [(f.kind, f.start, f.end) for f in find(text, names=True)]
        for k, a, b in gold:
            gold_n[k] += 1
            if any(k == k2 and overlaps((a, b), (a2, b2)) for k2, a2, b2 in got):
                tp_gold[k] += 1
            elif k == "PERSON" and len(misses) < 12:
                misses.append(f"{text[a:b]!r} in {text[:90]!r}")
        for k, a, b in got:
            found_n[k] += 1
            if any(k == k2 and overlaps((a, b), (a2, b2)) for k2, a2, b2 in gold):
                tp_found[k] += 1
            if any(overlaps((a, b), e) for e in every):
                any_found[k] += 1
        if gold:
            with_pii += 1
            sent = Pseudonyms("redact", names=True).scrub(text)
            values = [text[a:b] for _, a, b in gold]
            if any(v.strip() and v in sent for v in values):
                leaked += 1
            if any(text[a:b] in sent for k, a, b in gold if k == "PERSON"):
                leaked_names += 1
    print("| type | labelled | recall | found | precision | precision (any) |\n"
          "|---|---:|---:|---:|---:|---:|")
    for k in sorted(set(gold_n) | set(found_n), key=lambda k: -gold_n[k]):
        r = tp_gold[k] / gold_n[k] if gold_n[k] else float("nan")
        p = tp_found[k] / found_n[k] if found_n[k] else float("nan")
        pa = any_found[k] / found_n[k] if found_n[k] else float("nan")
        print(f"| {k} | {gold_n[k]} | {r:.3f} | {found_n[k]} | {p:.3f} | {pa:.3f} |")
    print(f"\nrequests with labelled personal data (of these types): {with_pii}; "
          f"some value reached the upstream whole under redact: {leaked} "
          f"({leaked / max(1, with_pii):.1%}); a person's name: {leaked_names}")
    print("labelled types no detector claims: "
          + ", ".join(f"{k} {n}" for k, n in not_ours.most_common()))
    print("\nsome missed names:")
    for m in misses:
        print("  ", m)


def cost() -> None:
    """Milliseconds per KB: ordinary prose with names, and hostile shapes."""
    rng = random.Random(0)

    def prose(n: int) -> str:  # no two sentences alike: nothing is read from memory
        return " ".join(f"Please ask Maria Keller from Northwind Traders whether shipment "
                        f"{i} to Lisbon left on Monday, and copy Dr. Okafor."
                        for i in range(n // 100 + 1))[:n]

    shapes = {
        "prose with names": prose,
        "one word, no spaces": lambda n: "a" * n,
        "punctuation run": lambda n: ("(" * n),
        "random printable": lambda n: "".join(rng.choice(string.printable) for _ in range(n)),
        "capitalised words": lambda n: " ".join(
            rng.choice(["Alpha", "Bravo", "Charlie", "Delta"]) for _ in range(n // 6))[:n],
    }
    names_model.load()
    print("\n| input | 1 KB | 100 KB | 1 MB | ms per KB at 1 MB |\n|---|---:|---:|---:|---:|")
    for label, make in shapes.items():
        row = []
        for n in (1_000, 100_000, 1_000_000):
            text = make(n)
            t = time.perf_counter()
            find(text, names=True)
            row.append(time.perf_counter() - t)
        print(f"| {label} | {row[0] * 1e3:.1f} ms | {row[1] * 1e3:.0f} ms | "
              f"{row[2]:.2f} s | {row[2] * 1e3 / 1000:.2f} |")
    short = "Hi, I'm Maria Keller. Can you move my appointment to Thursday #{}?"
    for i in range(20):
        find(short.format(-i), names=True)
    t = time.perf_counter()
    for i in range(200):  # each one new: a message read before costs nothing
        find(short.format(i), names=True)
    with_names = (time.perf_counter() - t) / 200
    t = time.perf_counter()
    for i in range(2000):
        find(short.format(i))
    without = (time.perf_counter() - t) / 2000
    t = time.perf_counter()
    for i in range(200):
        find(short.format(i), names=True)
    again = (time.perf_counter() - t) / 200
    print(f"\na {len(short)}-character message: {without * 1e3:.3f} ms patterns only, "
          f"{with_names * 1e3:.3f} ms with names when new, {again * 1e3:.3f} ms seen before")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--skip-cost", action="store_true")
    ap.add_argument("--reader", choices=names_model.READERS, default="encoder",
                    help="the names model (config pii_names_reader)")
    args = ap.parse_args()
    names_model.use(args.reader)
    faker = PresidioSentenceFaker("en_US", lower_case_ratio=0.05, random_seed=args.seed)
    samples = faker.generate_new_fake_sentences(num_samples=args.samples)
    print(f"{len(samples)} sentences, presidio-evaluator seed {args.seed}\n")
    accuracy(samples)
    if not args.skip_cost:
        cost()


if __name__ == "__main__":
    main()
