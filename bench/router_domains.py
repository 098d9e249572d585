"""How the router does on requests from domains it was not trained on.

1. MMLU, leave one category out: for each of MMLU's four categories (Hendrycks et al.:
   STEM, humanities, social sciences, other), train a router on the fixed train split
   without that category's subjects and score the category's test questions; then with
   300 of the category's training questions added back (a team's own labels). Beside
   them: the shipped router (which saw every subject), prompt length, random.
2. MT-Bench (80 questions x 2 turns, GPT-4 judge scores 1-10 for Mixtral-8x7B and
   GPT-4-1106, from RouteLLM's files): a new domain (open-ended writing, roleplay,
   coding, maths) with graded rather than right/wrong answers. The labels go through
   ``hybridgate router eval``'s own reader (scores rescaled to 0..1). Then the same
   with a few of the domain's own labels mixed into training (what feedback retraining
   does), scored by 5-fold cross-validation over questions.

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

from hybridgate.routing.labels import Labels, read_labels
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


def mt_bench_csv(data: Path, out: Path) -> int:
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
    n = 0
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "mixtral_score", "gpt4_score", "category"])
        for key, s in sorted(scores.items()):
            if "weak" in s and "strong" in s and key in turns:
                w.writerow([turns[key][0], s["weak"], s["strong"], turns[key][1]])
                n += 1
    return n


def with_own_labels(base: Labels, domain: Labels, folds: int = 5,
                    weight: float = 5.0) -> np.ndarray:
    """What ``router train --from-ledger`` does with a domain's own labels: train on the
    MMLU split plus the other folds of the domain (weighted like feedback), score the
    held-out fold. Folds are by question (rows come in turn pairs)."""
    fold = (np.arange(len(domain)) // 2) % folds
    scores = np.zeros(len(domain))
    for k in range(folds):
        own = domain.subset(np.nonzero(fold != k)[0])
        both = Labels(base.prompts + own.prompts, np.concatenate([base.weak, own.weak]),
                      np.concatenate([base.strong, own.strong]), base.groups + own.groups)
        w = np.concatenate([np.ones(len(base)), np.full(len(own), weight)])
        held = np.nonzero(fold == k)[0]
        scores[held] = train(both, w).score_many([domain.prompts[i] for i in held])
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--csv", help="also keep the MT-Bench labels CSV here")
    args = ap.parse_args()
    data = Path(args.data)
    rng = np.random.default_rng(0)
    shipped = Router.load()
    tr, te = fixed_split(data)
    cat_tr = np.array([category(g) for g in tr.groups])
    cat_te = np.array([category(g) for g in te.groups])
    print("MMLU, leave one category out (train split without it -> its test questions)")
    for name in ("STEM", "humanities", "social sciences", "other"):
        held = te.subset(np.nonzero(cat_te == name)[0])
        router = train(tr.subset(np.nonzero(cat_tr != name)[0]))
        print(f"{name}: {len(held)} test questions, {int((cat_tr != name).sum())} "
              "training questions from the other categories")
        print(row("router, category unseen", router.score_many(held.prompts), held))
        few = rng.choice(np.nonzero(cat_tr == name)[0], FEW, replace=False)
        mixed = train(tr.subset(np.concatenate([np.nonzero(cat_tr != name)[0], few])))
        print(row(f"router, unseen + {FEW} of its labels", mixed.score_many(held.prompts),
                  held))
        print(row("shipped router (saw it)", shipped.score_many(held.prompts), held))
        print(row("prompt length", np.array([len(p) for p in held.prompts], float), held))
        print(random_row(held, rng))

    out = Path(args.csv) if args.csv else Path(tempfile.mkdtemp()) / "mt_bench.csv"
    n = mt_bench_csv(data, out)
    mt = read_labels([out])
    print(f"\nMT-Bench: {n} turns, judge scores rescaled to 0..1; weak mean "
          f"{mt.weak.mean():.3f}, strong mean {mt.strong.mean():.3f}")
    print(row("shipped router", shipped.score_many(mt.prompts), mt))
    print(row("prompt length", np.array([len(p) for p in mt.prompts], float), mt))
    print(random_row(mt, rng))
    print(row("router + MT-Bench labels (5-fold)", with_own_labels(tr, mt), mt))
    oracle = curve(mt.strong - mt.weak, mt.weak, mt.strong)
    print(f"  {'oracle':<34} APGR {oracle.apgr:6.3f}   CPT(50%) {oracle.cpt(0.5):6.1%}")


if __name__ == "__main__":
    main()
