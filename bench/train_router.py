"""Train the router shipped in the package (src/hybridgate/routing/router.npz).

Training data, none of it from the MMLU test split the router is measured on:
- RouteLLM's MMLU labels, the fixed train split (bench/router.py; contaminated prompts
  dropped, de-duplicated), Mixtral-8x7B weak / GPT-4-1106 strong;
- RouteLLM's MT-Bench judge scores for the same pair (bench/router_domains.py);
- the local labels: BIG-bench tasks answered by Qwen2.5-Coder-0.5B (weak) and -1.5B
  (strong), graded automatically (bench/router_labels.py; bench/data/local_labels).

The same with the CLI: ``hybridgate router train --labels $D/mmlu --split train
--exclude $D/mmlu-contaminated_prompts.jsonl --with-labels mt_bench.csv
--with-labels bench/data/local_labels --out router.npz``.

    python bench/train_router.py [--out src/hybridgate/routing/router.npz]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from router import DATA, fixed_split
from router_domains import LOCAL_LABELS, mt_bench_csv

from hybridgate.routing.labels import concat, read_labels
from hybridgate.routing.router import train

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "hybridgate" / "routing" / "router.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default=str(SHIPPED))
    args = ap.parse_args()
    tr, _ = fixed_split(Path(args.data))
    mt_csv = Path(tempfile.mkdtemp()) / "mt_bench.csv"
    mt_bench_csv(Path(args.data), mt_csv)
    labels = concat(tr, read_labels([mt_csv]), read_labels([LOCAL_LABELS]))
    router = train(labels)
    router.meta["data"] = "MMLU train split + MT-Bench + local BIG-bench labels"
    router.save(args.out)
    print(f"trained on {len(labels):,} prompts ({router.meta['features']:,} terms) in "
          f"{router.meta['seconds']} s -> {args.out}")


if __name__ == "__main__":
    main()
