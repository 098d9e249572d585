"""``hybridgate router train | eval``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np
from rich.console import Console

from hybridgate.cli.tables import print_table
from hybridgate.routing.labels import (
    Labels,
    LabelsError,
    concat,
    drop_contaminated,
    read_labels,
    split,
)
from hybridgate.routing.metrics import curve, oracle_scores, random_curve
from hybridgate.routing.router import Router, RouterFileError, train

console = Console()


def _labels(paths: tuple[str, ...], which: str, exclude: str | None) -> Labels:
    try:
        labels = read_labels(list(paths))
    except LabelsError as e:
        raise click.ClickException(str(e)) from None
    if exclude:
        labels = drop_contaminated(labels, Path(exclude))
    if which == "all":
        return labels
    tr, te = split(labels)
    return tr if which == "train" else te


@click.group("router")
def router() -> None:
    """Train and evaluate the learned router (RouteLLM's metrics)."""


@router.command("train")
@click.option("--labels", "paths", multiple=True, type=click.Path(exists=True),
              help="CSV files or directories in RouteLLM's format (repeatable).")
@click.option("--split", "which", type=click.Choice(["all", "train", "test"]), default="all",
              show_default=True, help="Train on the fixed split's train half, or everything.")
@click.option("--exclude", type=click.Path(exists=True, dir_okay=False), default=None,
              help="RouteLLM's contaminated-prompts JSONL to drop.")
@click.option("--with-labels", "extra", multiple=True, type=click.Path(exists=True),
              help="More labels used whole (not split), e.g. another domain's (repeatable).")
@click.option("--from-ledger", is_flag=True,
              help="Add the gateway's own traffic with feedback (POST /v1/feedback).")
@click.option("--feedback-weight", type=float, default=5.0, show_default=True)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--ledger", "ledger", default=None, help="Ledger URL (default: from the config).")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def train_cmd(paths: tuple[str, ...], which: str, exclude: str | None,
              extra: tuple[str, ...], from_ledger: bool,
              feedback_weight: float, config_path: str | None, ledger: str | None,
              out: str) -> None:
    """Fit a router and write it to OUT (.npz)."""
    if not paths and not extra and not from_ledger:
        raise click.UsageError("give --labels, --with-labels and/or --from-ledger")
    parts: list[Labels] = []
    weights: list[np.ndarray] = []
    if paths:
        base = _labels(paths, which, exclude)
        parts.append(base)
        weights.append(np.ones(len(base)))
    if extra:
        more = _labels(extra, "all", None)
        parts.append(more)
        weights.append(np.ones(len(more)))
    if from_ledger:
        from hybridgate.cli.report_cmd import ledger_url, open_store
        from hybridgate.routing.feedback import feedback_labels

        store = open_store(ledger_url(config_path, ledger))
        try:
            fb = feedback_labels(store)
        finally:
            store.close()
        if not len(fb):
            raise click.ClickException("the ledger holds no routed requests with feedback yet")
        console.print(f"{len(fb)} labelled requests from the ledger's feedback")
        parts.append(fb)
        weights.append(np.full(len(fb), feedback_weight))
    labels = concat(*parts)
    r = train(labels, np.concatenate(weights))
    r.save(out)
    console.print(f"trained on {len(labels):,} prompts in {r.meta['seconds']}s -> {out}")


@router.command("eval")
@click.option("--router", "router_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="A router file (default: the one shipped in the package).")
@click.option("--labels", "paths", multiple=True, required=True, type=click.Path(exists=True))
@click.option("--split", "which", type=click.Choice(["all", "train", "test"]), default="all",
              show_default=True)
@click.option("--exclude", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the PGR vs strong-share plot to this PNG.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def eval_cmd(router_path: str | None, paths: tuple[str, ...], which: str, exclude: str | None,
             plot_out: str | None, fmt: str) -> None:
    """APGR, CPT(50%), CPT(80%) against the random and oracle routers."""
    labels = _labels(paths, which, exclude)
    try:
        r = Router.load(router_path)
    except RouterFileError as e:
        raise click.ClickException(str(e)) from None
    t0 = time.perf_counter()
    scores = r.score_many(labels.prompts)
    per_ms = (time.perf_counter() - t0) * 1000 / max(1, len(labels))
    curves = {"router": curve(scores, labels.weak, labels.strong),
              "random": random_curve(labels.weak, labels.strong),
              "oracle": curve(oracle_scores(labels.weak, labels.strong), labels.weak,
                              labels.strong)}
    rows = {k: {"apgr": c.apgr, "cpt50": c.cpt(0.5), "cpt80": c.cpt(0.8)}
            for k, c in curves.items()}
    if plot_out:
        _plot(plot_out, curves)
    if fmt == "json":
        click.echo(json.dumps({"n": len(labels), "weak_accuracy": curves["router"].weak_acc,
                               "strong_accuracy": curves["router"].strong_acc,
                               "ms_per_prompt": per_ms, "results": rows}, indent=2))
        return
    c = curves["router"]
    console.print(f"{len(labels):,} prompts; weak accuracy {c.weak_acc:.1%}, strong "
                  f"{c.strong_acc:.1%}; scoring {per_ms:.2f} ms/prompt")
    print_table(["router", "APGR", "CPT(50%)", "CPT(80%)"],
                [[name, f"{v['apgr']:.3f}", f"{v['cpt50']:.1%}", f"{v['cpt80']:.1%}"]
                 for name, v in rows.items()])
    if plot_out:
        console.print(f"plot: {plot_out}")


def _plot(path: str, curves: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, c in curves.items():
        ax.plot(c.share * 100, c.pgr, label=f"{name} (APGR {c.apgr:.3f})")
    ax.axhline(0.5, color="grey", lw=0.5)
    ax.axhline(0.8, color="grey", lw=0.5)
    ax.set_xlabel("strong model calls (%)")
    ax.set_ylabel("PGR")
    ax.set_ylim(-0.1, 1.4)
    ax.legend()
    ax.set_title("Performance gap recovered vs share of strong calls")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
