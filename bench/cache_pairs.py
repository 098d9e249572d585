"""Build the semantic cache's labelled set: questions that should hit a cached one, and near
misses that must not.

Base questions (each cached once in the evaluation, bench/semantic_cache.py):
  - MMLU question stems (the text before the options) from ../shared/data/routellm/mmlu,
    25-220 characters, stems that lean on their options ("the following", blanks) left
    out, a few per subject (seeded);
  - MT-Bench first turns up to 400 characters (../shared/data/routellm);
  - unit conversions and code requests from the templates below (everyday cache traffic
    that MMLU lacks), with seeded numbers, units, tasks and languages.

For each base, queries that SHOULD hit it:
  - paraphrase-model: Qwen2.5-Coder-1.5B-Instruct asked (greedy, few-shot) to reword it
    keeping every number, name, unit and language; outputs that are empty, identical,
    over three times as long, or an answer rather than a question are dropped;
  - paraphrase-surface: how people retype a question (a lead-in such as "Quick question:",
    case, a dropped question mark, "please"), seeded.
and queries that must NOT hit (the near misses embeddings confuse), each made by one
edit of the base where the base allows it:
  - number (one number changed), negation (a "not" added or removed), antonym (a polar
    word flipped: largest / smallest, ...), entity (two names swapped, or one replaced
    by a name from another base), unit (a conversion's units swapped or changed),
    language (the code language changed);
  - neighbour: the MMLU stem nearest the base by MiniLM cosine among stems that are not
    bases: a different real question on the same subject, made by no rule (the 60
    closest read by hand: 6 ask the same thing and are labelled hit, neighbour-same).

Every pair keeps its base's split (calibration or test, by base, seeded 50/50), so the
thresholds are chosen on one half and reported on the other.

    python bench/cache_pairs.py [--bases 520]   # -> bench/data/cache_pairs/pairs.jsonl
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import re
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data" / "routellm"
OUT = ROOT / "data" / "cache_pairs"
PARAPHRASER = "qwen2.5-coder-1.5b-instruct"

UNIT_PAIRS = [("miles", "kilometers"), ("kilometers", "miles"), ("pounds", "kilograms"),
              ("kilograms", "pounds"), ("feet", "meters"), ("meters", "feet"),
              ("inches", "centimeters"), ("gallons", "liters"), ("liters", "gallons"),
              ("ounces", "grams"), ("Fahrenheit", "Celsius"), ("Celsius", "Fahrenheit"),
              ("hours", "minutes"), ("days", "hours"), ("megabytes", "kilobytes"),
              ("yards", "meters"), ("acres", "hectares"), ("euros", "dollars")]
UNIT_TEMPLATES = ["Convert {n} {a} to {b}.", "How many {b} is {n} {a}?",
                  "What is {n} {a} in {b}?", "I have {n} {a}. How much is that in {b}?"]
LANGUAGES = ["Python", "JavaScript", "Java", "Rust", "Go", "C++", "Ruby", "TypeScript",
             "C#", "Kotlin", "PHP", "Swift"]
CODE_TASKS = ["reverses a string", "checks whether a number is prime",
              "returns the n-th Fibonacci number", "removes duplicates from a list",
              "counts the words in a sentence", "merges two sorted arrays",
              "finds the largest element of an array", "converts a string to title case",
              "checks whether a string is a palindrome", "computes the factorial of n",
              "flattens a nested list", "parses a date string in ISO format",
              "reads a CSV file and sums the second column", "sorts a list of tuples by "
              "their second element", "validates an email address with a regex",
              "computes the greatest common divisor of two integers",
              "returns the smallest element of an array",
              "splits a list into chunks of size k", "counts vowels in a string",
              "implements binary search on a sorted array"]
CODE_TEMPLATES = ["Write a {lang} function that {task}.",
                  "How do I write a function in {lang} that {task}?",
                  "Show me {lang} code that {task}."]

NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
AUX = re.compile(r"\b(is|are|was|were|does|do|did|can|could|should|would|will|has|have)\b"
                 r"(?! not)")
NOT = re.compile(r"\b(not|n't)\b ?")
ANTONYMS = {"largest": "smallest", "smallest": "largest", "most": "least", "least": "most",
            "increase": "decrease", "decrease": "increase", "before": "after",
            "after": "before", "higher": "lower", "lower": "higher", "maximum": "minimum",
            "minimum": "maximum", "more": "less", "less": "more", "first": "last",
            "last": "first", "best": "worst", "worst": "best", "true": "false",
            "false": "true", "positive": "negative", "negative": "positive",
            "advantages": "disadvantages", "disadvantages": "advantages", "above": "below",
            "below": "above", "longest": "shortest", "shortest": "longest",
            "greater": "smaller", "larger": "smaller", "smaller": "larger",
            "highest": "lowest", "lowest": "highest", "inside": "outside",
            "outside": "inside", "early": "late", "late": "early"}
ANTONYM = re.compile(r"\b(" + "|".join(ANTONYMS) + r")\b")
NAME = re.compile(r"(?<![.?!:]\s)(?<!^)\b[A-Z][a-z]+(?: [A-Z][a-z]+)?\b", re.M)
LEADS = ["Quick question: ", "Can you tell me: ", "Hey, ", "I was wondering, ", "",
         "Please answer: "]

# The 60 most similar neighbour pairs were read by hand; these neighbours ask the same
# thing as their base (MMLU repeats questions with other options) and are labelled hit.
SAME_QUESTION = {
    "Protons used in cancer therapy are typically accelerated to about 0.6c . How much",
    "What is the main difference between the short-run and long-run Phillips curve?",
    "Which numbers are in order from least to greatest?",
    "Which statement is false?",
    "Which of these is the smallest unit that natural selection can change?",
    "According to the author, what did the Olmec have in common that bound them together",
}

FEW_SHOT = [
    ("What is the boiling point of water at sea level?",
     "At sea level, at what temperature does water boil?"),
    ("Write a Python function that returns the sum of a list.",
     "Can you write a function in Python to add up all the numbers in a list?"),
    ("How many centimeters are in 3 inches?", "3 inches equals how many centimeters?"),
    ("Who painted the Mona Lisa?", "Which artist created the painting the Mona Lisa?"),
]
SYSTEM = ("You reword questions. Reply with one question that asks for exactly the same "
          "thing in different words. Keep every number, name, unit and programming "
          "language. Do not answer it.")


def mmlu_stems() -> dict[str, str]:
    """stem -> subject, for stems a cache would see on their own."""
    out: dict[str, str] = {}
    for f in sorted((DATA / "mmlu").glob("*.csv")):
        subject = f.stem.removeprefix("mmlu_")
        with f.open() as fh:
            for row in list(csv.reader(fh))[1:]:
                stem = row[0].split("\nA.")[0].strip()
                if (25 <= len(stem) <= 220 and "\n" not in stem and "following" not in stem
                        and "_" not in stem and "?" in stem[-2:]):
                    out.setdefault(stem, subject)
    return out


def bases(n: int, rng: random.Random) -> tuple[list[dict], list[str]]:
    stems = mmlu_stems()
    by_subject: dict[str, list[str]] = {}
    for stem, subject in stems.items():
        by_subject.setdefault(subject, []).append(stem)
    picked: list[dict] = []
    n_mmlu = n - 80 - 40 - 40
    per = max(1, -(-n_mmlu // len(by_subject)))
    for subject in sorted(by_subject):
        pool = by_subject[subject][:]
        rng.shuffle(pool)
        picked += [{"text": s, "source": f"mmlu:{subject}"} for s in pool[:per]]
    rng.shuffle(picked)
    picked = picked[:n_mmlu]
    for line in (DATA / "mt_bench-question.jsonl").read_text().splitlines():
        q = json.loads(line)
        if len(q["turns"][0]) <= 400:
            picked.append({"text": q["turns"][0], "source": f"mt-bench:{q['category']}"})
    meanings: set[tuple] = set()  # one base per meaning: no two templates ask the same
    while len(meanings) < 40:
        a, b = rng.choice(UNIT_PAIRS)
        num = rng.choice([2, 3, 5, 7, 10, 12, 15, 20, 25, 40, 50, 100, 250])
        template = rng.choice(UNIT_TEMPLATES)
        if (num, a, b) not in meanings:
            meanings.add((num, a, b))
            picked.append({"text": template.format(n=num, a=a, b=b),
                           "source": "template:units"})
    while len(meanings) < 80:
        lang, task, template = (rng.choice(LANGUAGES), rng.choice(CODE_TASKS),
                                rng.choice(CODE_TEMPLATES))
        if (lang, task) not in meanings:
            meanings.add((lang, task))
            picked.append({"text": template.format(lang=lang, task=task),
                           "source": "template:code"})
    seen: set[str] = set()
    out = []
    for b in picked:
        if b["text"] not in seen:
            seen.add(b["text"])
            out.append(b)
    rest = [s for s in stems if s not in seen]
    return out, rest


def meaning(text: str) -> tuple | None:
    """What a template question asks, however it is phrased: (number, from, to) for a
    conversion, (language, task) for code; None for other text."""
    for lang in LANGUAGES:
        if re.search(rf"(?<![\w+#]){re.escape(lang)}(?![\w+#])", text):
            for task in CODE_TASKS:
                if task in text:
                    return (lang, task)
    m = re.search(r"\b(\d+) (\w+)", text)
    units = {u for pair in UNIT_PAIRS for u in pair}
    if m and m.group(2) in units:
        rest = [u for u in units if u != m.group(2) and re.search(rf"\b{u}\b", text)]
        if len(rest) == 1:
            return (m.group(1), m.group(2), rest[0])
    return None


def near_misses(text: str, names: list[str], rng: random.Random) -> list[tuple[str, str]]:
    """(kind, edited text) for each edit the base allows."""
    out = []
    nums = list(NUMBER.finditer(text))
    if nums:
        m = rng.choice(nums)
        v = m.group()
        new = str(int(v) + rng.choice([1, 2, 3, 10]) if v.isdigit() else float(v) * 2)
        out.append(("number", text[:m.start()] + new + text[m.end():]))
    if NOT.search(text):
        out.append(("negation", NOT.sub("", text, count=1)))
    else:
        m = AUX.search(text)
        if m:
            out.append(("negation", text[:m.end()] + " not" + text[m.end():]))
    m = ANTONYM.search(text)
    if m:
        out.append(("antonym", text[:m.start()] + ANTONYMS[m.group()] + text[m.end():]))
    found = [m for m in NAME.finditer(text) if m.group() not in LANGUAGES]
    if len(found) >= 2 and found[0].group() != found[1].group():
        a, b = found[0], found[1]
        out.append(("entity", text[:a.start()] + b.group() + text[a.end():b.start()]
                    + a.group() + text[b.end():]))
    elif found:
        a = found[0]
        other = rng.choice([x for x in names if x != a.group()])
        out.append(("entity", text[:a.start()] + other + text[a.end():]))
    for a, b in UNIT_PAIRS:
        if f" {a} " in f" {text} ".replace("?", " ").replace(".", " ") and b in text:
            swapped = text.replace(a, "\0").replace(b, a).replace("\0", b)
            out.append(("unit", swapped))
            break
    for lang in LANGUAGES:
        if re.search(rf"(?<![\w+#]){re.escape(lang)}(?![\w+#])", text):
            other = rng.choice([x for x in LANGUAGES if x != lang])
            out.append(("language", re.sub(rf"(?<![\w+#]){re.escape(lang)}(?![\w+#])",
                                           other, text, count=1)))
            break
    return out


def surface(text: str, rng: random.Random) -> str:
    t = text.strip()
    lead = rng.choice(LEADS)
    if lead:
        t = lead + t[0].lower() + t[1:]
    if rng.random() < 0.4:
        t = t.rstrip("?.")
    if rng.random() < 0.3:
        t = t.lower()
    if (rng.random() < 0.3 and not lead) or t == text.strip():  # never the base itself
        t = t.rstrip("?.") + ", please?"
    return t


def key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def paraphrases(texts: list[str], cache: Path) -> dict[str, str]:
    """base text -> the model's rewording (cached in ``cache`` by text hash)."""
    done: dict[str, str] = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            r = json.loads(line)
            done[r["key"]] = r["reply"]
    todo = [t for t in texts if key(t) not in done]
    if todo:
        from llama_cpp import Llama

        from hybridgate.models.store import resolve_gguf

        llm = Llama(str(resolve_gguf(PARAPHRASER)), n_ctx=2048, n_threads=2, n_batch=512,
                    verbose=False)
        shots = []
        for q, a in FEW_SHOT:
            shots += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        t0 = time.time()
        with cache.open("a") as f:
            for i, text in enumerate(todo, 1):
                out = llm.create_chat_completion(
                    [{"role": "system", "content": SYSTEM}, *shots,
                     {"role": "user", "content": text}],
                    temperature=0.0, max_tokens=min(200, len(text) // 2 + 40))
                reply = (out["choices"][0]["message"]["content"] or "").strip()
                done[key(text)] = reply
                f.write(json.dumps({"key": key(text), "reply": reply}) + "\n")
                f.flush()
                if i % 50 == 0:
                    print(f"  paraphrased {i}/{len(todo)} ({time.time() - t0:.0f} s)",
                          flush=True)
    return {t: done[key(t)] for t in texts}


def usable(base: str, para: str) -> bool:
    p = para.strip().strip('"')
    if not p or p.lower() == base.lower() or len(p) > 3 * len(base) + 20:
        return False
    return "?" in p or base.rstrip()[-1:] not in "?" or p.endswith(".")


def neighbours(texts: list[str], pool: list[str]) -> list[str]:
    """For each text, the nearest pool text by MiniLM cosine."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from hybridgate.providers.embeddings import model_dir

    model = SentenceTransformer(str(model_dir("all-MiniLM-L6-v2")), device="cpu")
    a = model.encode(texts, batch_size=64, normalize_embeddings=True)
    b = model.encode(pool, batch_size=64, normalize_embeddings=True)
    return [pool[i] for i in (a @ b.T).argmax(axis=1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bases", type=int, default=520)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    base_list, rest = bases(args.bases, rng)
    names = sorted({m.group() for b in base_list for m in NAME.finditer(b["text"])}
                   - set(LANGUAGES))
    paras = paraphrases([b["text"] for b in base_list], out / "paraphrases.jsonl")
    mmlu = [b for b in base_list if b["source"].startswith("mmlu:")]
    near = dict(zip([b["text"] for b in mmlu], neighbours([b["text"] for b in mmlu], rest),
                    strict=True))
    pairs = []
    texts = {b["text"] for b in base_list}
    meanings = {meaning(t) for t in texts} - {None}
    for i, b in enumerate(base_list):
        text = b["text"]
        split = "calibration" if random.Random(f"split:{text}").random() < 0.5 else "test"
        row = {"base_id": i, "base": text, "source": b["source"], "split": split}
        para = paras[text].strip().strip('"')
        if usable(text, para):
            pairs.append({**row, "query": para, "label": "hit", "kind": "paraphrase-model"})
        pairs.append({**row, "query": surface(text, rng), "label": "hit",
                      "kind": "paraphrase-surface"})
        for kind, edited in near_misses(text, names, rng):
            # an edit that asks what another base asks is no near miss
            if edited not in texts and (kind == "negation" or meaning(edited) not in meanings):
                pairs.append({**row, "query": edited, "label": "miss", "kind": kind})
        if text in near:
            same = any(near[text].startswith(q) for q in SAME_QUESTION)
            pairs.append({**row, "query": near[text], "label": "hit" if same else "miss",
                          "kind": "neighbour-same" if same else "neighbour"})
    with (out / "pairs.jsonl").open("w") as f:
        for p in pairs:
            f.write(json.dumps(p) + "\n")
    print(f"{len(base_list)} bases, {len(pairs)} pairs -> {out / 'pairs.jsonl'}")
    for (kind, label), n in sorted(Counter((p["kind"], p["label"]) for p in pairs).items()):
        print(f"  {label:5} {kind:20} {n}")


if __name__ == "__main__":
    main()
