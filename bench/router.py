"""Router quality and speed on the fixed MMLU split, side by side with baselines.

Re-runs, on the same split (by question, stratified by subject, seed 0, contaminated
prompts dropped): random, oracle, prompt length, TF-IDF (1-2 grams) + logistic
regression, knowing the true subject, optionally MiniLM embeddings + 50-nearest-
neighbours (--minilm; slow on CPU), and our shipped router. Then the router's decision
latency for a 200-token prompt (p50 / p99 over 500 calls, one thread, no network).

    python bench/router.py [--data ../shared/data/routellm] [--minilm]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from hybridgate.routing.labels import Labels, drop_contaminated, read_labels, split
from hybridgate.routing.metrics import curve, oracle_scores, random_curve
from hybridgate.routing.router import Router

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routellm"


def fixed_split(data: Path) -> tuple[Labels, Labels]:
    """The documented MMLU train/test split, contaminated prompts dropped."""
    labels = drop_contaminated(read_labels([data / "mmlu"]),
                               data / "mmlu-contaminated_prompts.jsonl")
    return split(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--minilm", action="store_true")
    args = ap.parse_args()
    tr, te = fixed_split(Path(args.data))
    gain_tr = tr.strong.astype(float) - tr.weak.astype(float)
    results: dict[str, np.ndarray | None] = {}

    results["oracle"] = oracle_scores(te.weak, te.strong)
    results["prompt length"] = np.array([len(p) for p in te.prompts], float)

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    xtr, xte = vec.fit_transform(tr.prompts), vec.transform(te.prompts)
    # a classifier needs 0/1: a prompt that appeared twice with different outcomes has a
    # merged label of 0.5 (routing/labels.dedupe); count it as right
    ps = LogisticRegression(max_iter=3000).fit(xtr, tr.strong >= 0.5).predict_proba(xte)[:, 1]
    pw = LogisticRegression(max_iter=3000).fit(xtr, tr.weak >= 0.5).predict_proba(xte)[:, 1]
    results["TF-IDF 1-2g + LR, P(strong)-P(weak)"] = ps - pw
    results["TF-IDF 1-2g + LR, P(weak wrong)"] = 1 - pw
    groups = np.array(tr.groups)
    prior = {g: gain_tr[groups == g].mean() for g in set(tr.groups)}
    results["true MMLU subject (mean gain)"] = np.array([prior[g] for g in te.groups])
    if args.minilm:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from sklearn.neighbors import NearestNeighbors

        from hybridgate.providers.embeddings import model_dir

        st = SentenceTransformer(str(model_dir("all-MiniLM-L6-v2")), device="cpu")
        etr = st.encode(tr.prompts, batch_size=64, normalize_embeddings=True)
        ete = st.encode(te.prompts, batch_size=64, normalize_embeddings=True)
        _, idx = NearestNeighbors(n_neighbors=50).fit(etr).kneighbors(ete)
        results["MiniLM + 50-NN (mean gain)"] = gain_tr[idx].mean(1)
    router = Router.load()
    results["hybridgate router (shipped)"] = router.score_many(te.prompts)

    print(f"\nMMLU test split: {len(te):,} questions (train {len(tr):,}); weak (Mixtral) "
          f"accuracy {te.weak.mean():.1%}, strong (GPT-4) {te.strong.mean():.1%}\n")
    print(f"{'router':<40} | {'APGR':>6} | {'CPT(50%)':>8} | {'CPT(80%)':>8}")
    print("-" * 72)
    rc = random_curve(te.weak, te.strong)
    print(f"{'random':<40} | {rc.apgr:6.3f} | {rc.cpt(0.5):8.1%} | {rc.cpt(0.8):8.1%}")
    for name, s in results.items():
        c = curve(s, te.weak, te.strong)
        print(f"{name:<40} | {c.apgr:6.3f} | {c.cpt(0.5):8.1%} | {c.cpt(0.8):8.1%}")

    words = " ".join(te.prompts).split()
    prompt = " ".join(words[1000:1000 + 150])  # ~200 tokens of real MMLU text
    for _ in range(20):
        router.score(prompt)
    times = []
    for _ in range(500):
        t0 = time.perf_counter()
        router.score(prompt)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    print(f"\ndecision latency, {len(prompt)} chars (~200 tokens): p50 "
          f"{statistics.median(times):.3f} ms, p99 {times[int(0.99 * len(times))]:.3f} ms")


if __name__ == "__main__":
    main()
