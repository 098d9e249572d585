"""TurboQuant on random unit vectors, against the paper (arXiv 2504.19874).

1. MSE distortion E||x - x_hat||^2 for b = 1..4 and d in {64, 128, 256, 1536}, next to
   the paper's rounded figures and its upper bound (sqrt(3) pi / 2) 4^-b.
2. Inner products over 10^5 (query, vector) pairs: TurboQuant_prod's mean error
   (unbiased: ~0) and variance, against TurboQuant_mse at the same total bits.
3. Quantize throughput (vectors/s), one BLAS thread and two.
4. The compressed index: recall@10 against exact search, with and without re-ranking.

    python bench/turboquant_distortion.py
"""

from __future__ import annotations

import time

import numpy as np
from threadpoolctl import threadpool_limits

from hybridgate.turboquant import TurboQuantIndex, TurboQuantMSE, TurboQuantProd

PAPER = {1: 0.36, 2: 0.117, 3: 0.03, 4: 0.009}


def unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(10_000 + seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    print("MSE distortion E||x - x_hat||^2 (unit vectors; dense rotation; 4,000 vectors)\n")
    print(f"{'d':>5} | " + " | ".join(f"b={b}: ours / paper / bound" for b in (1, 2, 3, 4)))
    for d in (64, 128, 256, 1536):
        x = unit(4000 if d < 1536 else 2000, d, d)
        cells = []
        for b in (1, 2, 3, 4):
            q = TurboQuantMSE(d, b)
            err = float(((x - q.decode(q.encode(x))) ** 2).sum(1).mean())
            cells.append(f"{err:.4f} / {PAPER[b]} / {np.sqrt(3) * np.pi / 2 * 4.0 ** -b:.4f}")
        print(f"{d:>5} | " + " | ".join(f"{c:>24}" for c in cells))
    hadamard = []
    for b in (1, 2, 3, 4):
        q = TurboQuantMSE(256, b, "hadamard")
        x = unit(4000, 256, 7)
        hadamard.append(f"{float(((x - q.decode(q.encode(x))) ** 2).sum(1).mean()):.4f}")
    print(f"  256 with the randomized Hadamard rotation: {' / '.join(hadamard)}")

    d = 128
    print(f"\ninner products, d={d}, 500 vectors x 200 queries = 10^5 pairs "
          "(error = estimate - true)\n")
    print(f"{'bits':>4} | {'prod mean err':>13} | {'prod var':>9} | {'mse mean err':>12} | "
          f"{'mse var':>9} | {'mse MSE':>9} | {'prod MSE':>9} | better")
    x = unit(500, d, 1)
    y = unit(200, d, 2) + 0.5 * x[:200]  # some correlation: inner products are not all ~0
    true = y @ x.T
    for b in (2, 3, 4):
        prod = TurboQuantProd(d, b, seed=5)
        e_p = prod.inner(y, prod.encode(x)) - true
        mse = TurboQuantMSE(d, b, seed=5)
        e_m = y @ mse.decode(mse.encode(x)).T - true
        better = "mse" if (e_m ** 2).mean() < (e_p ** 2).mean() else "prod"
        print(f"{b:>4} | {e_p.mean():>13.2e} | {e_p.var():>9.2e} | {e_m.mean():>12.2e} | "
              f"{e_m.var():>9.2e} | {(e_m ** 2).mean():>9.2e} | {(e_p ** 2).mean():>9.2e} | "
              f"{better}")

    print("\nquantize throughput, TurboQuant_mse b=4 (encode), vectors/s")
    for d in (128, 1536):
        x = unit(20000 if d == 128 else 4000, d, 3)
        q = TurboQuantMSE(d, 4, "hadamard" if d == 128 else "dense")
        for threads in (1, 2):
            with threadpool_limits(threads):
                q.encode(x[:100])
                t0 = time.perf_counter()
                q.encode(x)
                rate = len(x) / (time.perf_counter() - t0)
            print(f"  d={d:<5} {threads} thread(s): {rate:>10,.0f}")

    print("\nindex: 20,000 clustered vectors, d=128, 100 queries, recall@10 vs exact")
    rng = np.random.default_rng(5)
    centers = rng.standard_normal((50, 128))
    x = (centers[rng.integers(0, 50, 20000)] + 0.5 * rng.standard_normal((20000, 128))
         ).astype(np.float32)
    q = (centers[rng.integers(0, 50, 100)] + 0.5 * rng.standard_normal((100, 128))
         ).astype(np.float32)
    exact = np.argsort(-(q @ x.T), axis=1)[:, :10]
    for method, bits in (("mse", 2), ("mse", 4), ("prod", 4)):
        index = TurboQuantIndex(128, bits, method, keep_vectors=True)
        index.add(x)
        t0 = time.perf_counter()
        _, found = index.search(q, 10)
        ms = (time.perf_counter() - t0) * 1000 / len(q)
        _, reranked = index.search(q, 10, rerank=100)
        rec = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)])
        rec2 = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(reranked, exact,
                                                                 strict=True)])
        per = (index.nbytes - x.nbytes) / len(x)
        print(f"  {method} b={bits}: {per:.0f} bytes/vector (float32: 512), recall@10 {rec:.3f},"
              f" re-ranked top 100 {rec2:.3f}; {ms:.2f} ms/query")


if __name__ == "__main__":
    main()
