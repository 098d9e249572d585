"""``hybridgate report``: spend, baseline spend and savings from the ledger."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from hybridgate.cli.tables import print_table
from hybridgate.config.settings import ConfigError, load_config
from hybridgate.ledger.recorder import default_url
from hybridgate.ledger.report import (
    GROUPS,
    build,
    fmt_ms,
    fmt_usd,
    load_rows,
    parse_since,
    to_csv,
    to_json,
)
from hybridgate.ledger.store import Store


def ledger_url(config_path: str | None, url: str | None) -> str:
    if url:
        return url
    if config_path:
        try:
            cfg = load_config(config_path)
        except ConfigError as e:
            raise click.ClickException(str(e)) from None
        if cfg.ledger.url:
            return cfg.ledger.url
    return default_url()


def open_store(url: str) -> Store:
    store = Store(url)
    try:
        store.connect()
    except Exception as e:
        raise click.ClickException(f"cannot open the ledger at {url}: {e}") from None
    return store


@click.command()
@click.option("--since", default="7d", show_default=True,
              help="A span (7d, 24h, 30m) or a date (2026-11-01).")
@click.option("--by", type=click.Choice(GROUPS), default="model", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@click.option("--html", "html_out", type=click.Path(dir_okay=False), default=None,
              help="Also write a self-contained HTML report with plots.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--ledger", "url", default=None, help="Ledger URL (sqlite:///... or postgresql://...).")
def report(since: str, by: str, fmt: str, html_out: str | None, config_path: str | None,
           url: str | None) -> None:
    """Spend vs baseline, savings, tokens, route mix, latency and TTFT percentiles."""
    try:
        start = parse_since(since)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since") from None
    store = open_store(ledger_url(config_path, url))
    try:
        rows = load_rows(store, start)
    finally:
        store.close()
    if by == "tenant" and not config_path:
        raise click.BadParameter("--by tenant needs --config (it maps keys to tenants)",
                                 param_hint="--by")
    tenants = {k.id: k.tenant for k in load_config(config_path).keys if k.tenant} \
        if by == "tenant" and config_path else {}
    rep = build(rows, start, by, tenants)
    if html_out:
        from hybridgate.ledger.html import render

        budgets = []
        if config_path:  # spend against every budget, as `hybridgate budgets` shows it
            from hybridgate.gate.budgets import redis_client, standings

            cfg = load_config(config_path)
            budgets = standings(cfg, ledger_url(config_path, url), redis_client(cfg))
        Path(html_out).write_text(render(rep, rows, budgets), encoding="utf-8")
        Console(stderr=True).print(f"wrote {html_out}")
    if fmt == "json":
        sys.stdout.write(to_json(rep) + "\n")
        return
    if fmt == "csv":
        sys.stdout.write(to_csv(rep))
        return
    groups = [*rep.groups, rep.total]
    cells = []
    for g in groups:
        pct = "-" if g.savings_pct is None else f"{g.savings_pct:.1f}%"
        cells.append([g.name, f"{g.requests:,}", f"{g.errors:,}", f"{g.prompt_tokens:,}",
                      f"{g.completion_tokens:,}", fmt_usd(g.spend_usd), fmt_usd(g.baseline_usd),
                      pct, f"{g.local_share:.0%}",
                      f"{fmt_ms(g.p50_latency_ms)}/{fmt_ms(g.p95_latency_ms)}",
                      f"{fmt_ms(g.p50_ttft_ms)}/{fmt_ms(g.p95_ttft_ms)}"])
    print_table([by, "requests", "errors", "tokens in", "tokens out", "spend", "baseline",
                 "savings", "local", "p50/p95 ms", "TTFT p50/p95 ms"], cells,
                title=f"hybridgate spend since {since}",
                styles=["bold" if g is rep.total else None for g in groups])
    console = Console()
    if rep.unpriced_models:
        console.print(f"[yellow]No known price for: {', '.join(rep.unpriced_models)} — "
                      "their requests are left out of spend and savings; add them under "
                      "`prices:` in the config.[/]")
