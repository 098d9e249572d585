"""The router's report card: how it does on kinds of request it was not trained on.

Every held-out domain is scored by a router trained on everything *except* that domain
(the shipped router's recipe, bench/train_router.py, minus the domain), next to the
prompt-length baseline and random:

1. MMLU, leave one category out (Hendrycks et al.'s four: STEM, humanities, social
   sciences, other): trained on the fixed train split without the category's subjects
   (plus MT-Bench and the local labels), scored on the category's test questions; then
   with 300 of the category's training questions added back (a team's own labels).
2. MT-Bench (80 questions x 2 turns, GPT-4 judge scores 1-10 for Mixtral-8x7B and
   GPT-4-1106, from RouteLLM's files; rescaled to 0..1 by ``router eval``'s reader):
   held out whole, reported overall and by category; then with its own labels mixed
   into training (what feedback retraining does), by 5-fold cross-validation.
3. Each BIG-bench task labelled with the two local models (bench/router_labels.py;
   Qwen2.5-Coder-0.5B weak, -1.5B strong), held out whole; scored where the strong
   model is better by at least ``MIN_GAP`` (the others are printed, and counted in a
   second mean).

Then the summary the routing issue's goals are stated in: per held-out domain, the
router against prompt length; the mean over held-out domains; and the shipped router on
the MMLU test split.

    python bench/router_domains.py [--data ../shared/data/routellm] [--csv mt_bench.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from router import DATA, fixed_split

from hybridgate.routing.labels import Labels, concat, read_labels
from hybridgate.routing.metrics import curve
from hybridgate.routing.router import Router, train

HUMANITIES = {"formal_logic", "high_school_european_history", "high_school_us_history",
              "high_school_world_history", "international_law", "jurisprudence",
              "logical_fallacies", "moral_disputes", "moral_scenarios", "philosophy",
              "prehistory", "professional_law", "world_religions"}
SOCIAL = {"econometrics", "high_school_geography", "high_school_government_and_politics",
          "high_school_macroeconomics", "high_school_microeconomics",
          "high_school_psychology", "human_sexuality", "professional_psychology",
          "public_relations", "security_studies", "sociology", "us_foreign_policy"}
STEM = {"abstract_algebra", "astronomy", "college_biology", "college_chemistry",
        "college_computer_science", "college_mathematics", "college_physics",
        "computer_security", "conceptual_physics", "electrical_engineering",
        "elementary_mathematics", "high_school_biology", "high_school_chemistry",
        "high_school_computer_science", "high_school_mathematics", "high_school_physics",
        "high_school_statistics", "machine_learning"}


LOCAL_LABELS = Path(__file__).resolve().parent / "data" / "local_labels"
# A held-out task is scored only where the strong model is right on at least 5 points more
# of the questions than the weak one: PGR divides by that gap, and on 100 questions a gap of
# two or three answers makes APGR swing by tenths either way (or flip sign when negative).
MIN_GAP = 0.05
FEW = 300  # labelled questions of the unseen category, as a team's feedback might give


def category(group: str) -> str:
    subject = group.removeprefix("mmlu_")
    for name, members in (("STEM", STEM), ("humanities", HUMANITIES),
                          ("social sciences", SOCIAL)):
        if subject in members:
            return name
    return "other"


def row(name: str, scores: np.ndarray, labels: Labels) -> str:
    c = curve(scores, labels.weak, labels.strong)
    return f"  {name:<34} APGR {c.apgr:6.3f}   CPT(50%) {c.cpt(0.5):6.1%}   " \
           f"CPT(80%) {c.cpt(0.8):6.1%}"


def random_row(labels: Labels, rng: np.random.Generator, draws: int = 200) -> str:
    """Random routing's APGR is 0.5 in expectation; on a few hundred questions one draw
    lands anywhere in the band printed here."""
    a = [curve(rng.random(len(labels)), labels.weak, labels.strong).apgr
         for _ in range(draws)]
    return (f"  {'random (' + str(draws) + ' draws)':<34} APGR {np.mean(a):6.3f}   "
            f"5-95%: {np.percentile(a, 5):.3f}-{np.percentile(a, 95):.3f}")


def mt_bench_csv(data: Path, out: Path) -> list[str]:
    """One row per (question, turn): the turn's user message, Mixtral's and GPT-4's
    judge scores. The gateway scores the last user message, so each turn stands alone."""
    turns = {}
    for line in (data / "mt_bench-question.jsonl").read_text().splitlines():
        q = json.loads(line)
        for i, text in enumerate(q["turns"], 1):
            turns[(q["question_id"], i)] = (text, q["category"])
    scores: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)
    for line in (data / "mt_bench-judgements.jsonl").read_text().splitlines():
        j = json.loads(line)
        if j["score"] >= 1:  # -1: the judge gave no score
            side = "strong" if j["model"].startswith("gpt-4") else "weak"
            scores[(j["question_id"], j["turn"])][side] = float(j["score"])
    categories = []
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "mixtral_score", "gpt4_score", "category"])
        for key, s in sorted(scores.items()):
            if "weak" in s and "strong" in s and key in turns:
                w.writerow([turns[key][0], s["weak"], s["strong"], turns[key][1]])
                categories.append(turns[key][1])
    return categories


def with_own_labels(base: Labels, domain: Labels, folds: int = 5,
                    weight: float = 5.0) -> np.ndarray:
    """What ``router train --from-ledger`` does with a domain's own labels: train on the
    MMLU split plus the other folds of the domain (weighted like feedback), score the
    held-out fold. Folds are by question (rows come in turn pairs)."""
    fold = (np.arange(len(domain)) // 2) % folds
    scores = np.zeros(len(domain))
    for k in range(folds):
        own = domain.subset(np.nonzero(fold != k)[0])
        both = concat(base, own)
        w = np.concatenate([np.ones(len(base)), np.full(len(own), weight)])
        held = np.nonzero(fold == k)[0]
        scores[held] = train(both, w).score_many([domain.prompts[i] for i in held])
    return scores


def apgr(scores: np.ndarray, labels: Labels) -> float:
    return curve(scores, labels.weak, labels.strong).apgr


def length(labels: Labels) -> np.ndarray:
    return np.array([len(p) for p in labels.prompts], float)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--local-labels", default=str(LOCAL_LABELS))
    ap.add_argument("--csv", help="also keep the MT-Bench labels CSV here")
    args = ap.parse_args()
    data = Path(args.data)
    rng = np.random.default_rng(0)
    tr, te = fixed_split(data)
    out = Path(args.csv) if args.csv else Path(tempfile.mkdtemp()) / "mt_bench.csv"
    mt_categories = np.array(mt_bench_csv(data, out))
    mt = read_labels([out])
    local = {f.stem: read_labels([f]) for f in sorted(Path(args.local_labels).glob("*.csv"))}
    summary: list[tuple[str, float, float]] = []  # held-out domain, router, length
    unscored: list[tuple[str, float, float]] = []

    cat_tr = np.array([category(g) for g in tr.groups])
    cat_te = np.array([category(g) for g in te.groups])
    print("MMLU, leave one category out (trained without it -> its test questions)")
    for name in ("STEM", "humanities", "social sciences", "other"):
        held = te.subset(np.nonzero(cat_te == name)[0])
        rest = tr.subset(np.nonzero(cat_tr != name)[0])
        router = train(concat(rest, mt, *local.values()))
        print(f"{name}: {len(held)} test questions, {len(rest)} MMLU training questions "
              "from the other categories")
        scores = router.score_many(held.prompts)
        print(row("router, category unseen", scores, held))
        few = rng.choice(np.nonzero(cat_tr == name)[0], FEW, replace=False)
        mixed = train(concat(rest, tr.subset(few), mt, *local.values()))
        print(row(f"router, unseen + {FEW} of its labels", mixed.score_many(held.prompts),
                  held))
        print(row("prompt length", length(held), held))
        print(random_row(held, rng))
        summary.append((f"MMLU {name}", apgr(scores, held), apgr(length(held), held)))

    print(f"\nMT-Bench: {len(mt)} turns, judge scores rescaled to 0..1; weak mean "
          f"{mt.weak.mean():.3f}, strong mean {mt.strong.mean():.3f}")
    router = train(concat(tr, *local.values()))
    scores = router.score_many(mt.prompts)
    print(row("router, MT-Bench unseen", scores, mt))
    print(row("prompt length", length(mt), mt))
    print(random_row(mt, rng))
    print(row("router + MT-Bench labels (5-fold)",
              with_own_labels(concat(tr, *local.values()), mt), mt))
    oracle = curve(mt.strong - mt.weak, mt.weak, mt.strong)
    print(f"  {'oracle':<34} APGR {oracle.apgr:6.3f}   CPT(50%) {oracle.cpt(0.5):6.1%}")
    print("  by category (20 turns each; one draw of random spans about 0.3-0.7):")
    for c in sorted(set(mt_categories)):
        m = np.nonzero(mt_categories == c)[0]
        sub = mt.subset(m)
        if sub.strong.mean() != sub.weak.mean():
            print(f"    {c:<12} router {apgr(scores[m], sub):6.3f}   "
                  f"length {apgr(length(sub), sub):6.3f}")
    summary.append(("MT-Bench", apgr(scores, mt), apgr(length(mt), mt)))

    print(f"\nLocal labels ({len(local)} BIG-bench tasks, Qwen2.5-Coder 0.5B weak / 1.5B "
          "strong), each held out whole")
    for name, held in local.items():
        others = [v for k, v in local.items() if k != name]
        router = train(concat(tr, mt, *others))
        s = router.score_many(held.prompts)
        gap = held.strong.mean() - held.weak.mean()
        note = "" if gap >= MIN_GAP else "   (not scored: strong - weak < 0.05)"
        print(f"  {name:<34} n={len(held):4d} weak {held.weak.mean():.2f} strong "
              f"{held.strong.mean():.2f}   router {apgr(s, held):6.3f}   "
              f"length {apgr(length(held), held):6.3f}{note}")
        if not note:
            summary.append((name, apgr(s, held), apgr(length(held), held)))
        else:
            unscored.append((name, apgr(s, held), apgr(length(held), held)))

    print("\nSummary: every held-out domain, router vs prompt length (APGR)")
    for name, r, n in summary:
        print(f"  {name:<32} {r:6.3f}  {n:6.3f}  {'>=' if r >= n else '< '} length")
    r_mean = float(np.mean([r for _, r, _ in summary]))
    n_mean = float(np.mean([n for _, _, n in summary]))
    wins = sum(r >= n for _, r, n in summary)
    print(f"  {'mean over ' + str(len(summary)) + ' held-out domains':<32} {r_mean:6.3f}  "
          f"{n_mean:6.3f}   router >= length on {wins} of {len(summary)}")
    if unscored:
        every = summary + unscored
        print(f"  {'(with the unscored ones too)':<32} "
              f"{np.mean([r for _, r, _ in every]):6.3f}  "
              f"{np.mean([n for _, _, n in every]):6.3f}   router >= length on "
              f"{sum(r >= n for _, r, n in every)} of {len(every)}")
    shipped = Router.load()
    print(row("shipped router, MMLU test split", shipped.score_many(te.prompts), te))


if __name__ == "__main__":
    main()
