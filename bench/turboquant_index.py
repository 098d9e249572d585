"""TurboQuantIndex against FAISS product quantization on real embeddings, same bits per vector.

Data: all-MiniLM-L6-v2 embeddings (384 dims, normalised) of the MMLU prompts in
../shared/data/routellm/mmlu; 1,000 of them, drawn with seed 0, are the queries and the
rest the database. Ground truth: exact inner-product search. recall@k is the paper's
Recall@1@k: the share of queries whose true nearest neighbour is among the top k returned.

TurboQuant at b bits per coordinate stores d * b bits plus a float32 norm (plus d sign bits
and a norm for _prod); FAISS IndexPQ gets M = d * b / 8 sub-quantizers of 8 bits, the same
code bits, and needs a k-means training pass that TurboQuant does not.

    python bench/turboquant_index.py [--data ../shared/data/routellm/mmlu] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from hybridgate.routing.labels import read_labels
from hybridgate.turboquant import TurboQuantIndex

CACHE = Path.home() / ".cache" / "hybridgate" / "bench" / "minilm-mmlu.npy"


def embeddings(data: Path) -> np.ndarray:
    if CACHE.exists():
        return np.load(CACHE)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from hybridgate.providers.embeddings import model_dir

    prompts = read_labels([data]).prompts
    model = SentenceTransformer(str(model_dir("all-MiniLM-L6-v2")), device="cpu")
    x = model.encode(prompts, batch_size=64, normalize_embeddings=True).astype(np.float32)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.save(CACHE, x)
    return x


def recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    return float(np.mean([truth[i] in found[i, :k] for i in range(len(truth))]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path,
                    default=Path(__file__).resolve().parents[2] / "shared/data/routellm/mmlu")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    import faiss

    faiss.omp_set_num_threads(args.threads)
    x = embeddings(args.data)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    queries, base = x[order[:1000]], x[order[1000:]]
    d = x.shape[1]
    truth = np.argmax(queries @ base.T, axis=1)
    print(f"{len(base):,} database vectors, {len(queries):,} queries, d={d}; "
          f"float32 = {4 * d:,} bytes/vector\n")
    print("| bits/coord | method | bytes/vector | indexing s | search ms/query | "
          "recall@1 | recall@10 |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for bits in (2, 4):
        rows = []
        for method in ("mse", "prod"):
            index = TurboQuantIndex(d, bits, method)
            t = time.perf_counter()
            index.add(base)
            build = time.perf_counter() - t
            t = time.perf_counter()
            _, found = index.search(queries, 10)
            search = (time.perf_counter() - t) / len(queries) * 1e3
            rows.append((f"TurboQuant_{method}", index.nbytes / len(base), build, search, found))
        m = d * bits // 8
        pq = faiss.IndexPQ(d, m, 8, faiss.METRIC_INNER_PRODUCT)
        t = time.perf_counter()
        pq.train(base)
        pq.add(base)
        build = time.perf_counter() - t
        t = time.perf_counter()
        _, found = pq.search(queries, 10)
        search = (time.perf_counter() - t) / len(queries) * 1e3
        rows.append((f"FAISS PQ (M={m}, 8 bits; train + add)", pq.code_size, build, search,
                     found))
        for name, per, build, search, found in rows:
            print(f"| {bits} | {name} | {per:.0f} | {build:.4f} | {search:.3f} | "
                  f"{recall(found, truth, 1):.3f} | {recall(found, truth, 10):.3f} |")


if __name__ == "__main__":
    main()
