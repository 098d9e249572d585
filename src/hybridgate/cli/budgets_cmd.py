"""``hybridgate budgets``: every budget and rate limit in the config, and where it stands."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click

from hybridgate.cli.tables import print_table
from hybridgate.config.settings import ConfigError, load_config
from hybridgate.gate.budgets import redis_client, standings
from hybridgate.ledger.recorder import ledger_url
from hybridgate.ledger.report import fmt_usd


def _of(used: int | None, limit: int | None) -> str:
    if limit is None:
        return "-"
    return f"{'?' if used is None else used}/{limit}"


@click.command()
@click.option("--config", "config_path", required=True,
              type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def budgets(config_path: str, fmt: str) -> None:
    """Spend against every budget (from the ledger), and what is held and counted in
    Redis right now: requests and tokens this minute, requests in flight."""
    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    url = ledger_url(cfg)
    redis = redis_client(cfg)
    try:
        rows = standings(cfg, url, redis)
    except Exception as e:
        raise click.ClickException(f"cannot read the ledger at {url}: {e}") from None
    if fmt == "json":
        sys.stdout.write(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
        return
    if not rows:
        click.echo("No budgets or rate limits are configured (tenants[] / keys[]: "
                   "max_budget_usd, rpm_limit, tpm_limit, max_parallel_requests).")
        return
    cells = []
    for r in rows:
        share = r.used_share
        cells.append([
            r.scope,
            "-" if r.budget_usd is None else f"{fmt_usd(r.budget_usd)} / {r.period or 'ever'}",
            "-" if r.budget_usd is None else fmt_usd(r.spent_usd),
            "-" if share is None else f"{share:.0%}",
            "-" if r.budget_usd is None else ("?" if r.held_usd is None
                                              else fmt_usd(r.held_usd)),
            "-" if r.left_usd is None else fmt_usd(r.left_usd),
            _of(r.rpm_used, r.rpm_limit), _of(r.tpm_used, r.tpm_limit),
            _of(r.in_flight, r.parallel_limit)])
    print_table(["scope", "budget", "spent", "used", "held", "left", "requests/min",
                 "tokens/min", "in flight"], cells, title="hybridgate budgets and limits")
    if redis is not None and any(r.in_flight is None for r in rows):
        click.echo("Redis is unreachable: held, per-minute and in-flight figures are "
                   "unknown (?).", err=True)
