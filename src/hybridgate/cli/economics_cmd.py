"""``hybridgate economics``: API cost vs self-hosting, break-even per hardware profile."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import click
from rich.console import Console

from hybridgate.cli.tables import print_table
from hybridgate.config.settings import load_config
from hybridgate.economics.costs import (
    HOURS_PER_MONTH,
    Hardware,
    break_even,
    defaults,
    load_hardware,
    monthly_self_hosted,
    rates,
)
from hybridgate.ledger.prices import PriceBook


def _tokens(text: str) -> float:
    """12M, 1.5B, 250k or a plain number."""
    t = text.strip().lower().replace(",", "").replace("_", "")
    scale = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}.get(t[-1:], 1)
    try:
        return float(t[:-1] if scale != 1 else t) * scale
    except ValueError:
        raise click.BadParameter(f"not a token count: {text!r}") from None


class _Ledger(NamedTuple):
    tokens_month: float
    input_share: float
    local_tokens: int  # prompt + output tokens the local engines served
    local_joules: float  # their recorded energy: the hardware's watts x engine seconds
    local_requests: int


def _from_ledger(config_path: str | None) -> _Ledger:
    """Volume and input share from the last 30 days of the ledger, and what the local
    engines really did in that time."""
    from hybridgate.cli.report_cmd import ledger_url, open_store

    store = open_store(ledger_url(config_path, None))
    try:
        since = time.time() - 30 * 86400
        (p, c, first), = store.query(
            "SELECT COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
            "MIN(ts) FROM requests WHERE ts >= ? AND status < 400", (since,))
        (lt, lj, ln), = store.query(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0), "
            "COALESCE(SUM(energy_j), 0), COUNT(*) FROM requests WHERE ts >= ? AND "
            "status < 400 AND provider IN ('local', 'transformers') AND energy_j > 0 "
            "AND endpoint != 'embeddings'", (since,))
    finally:
        store.close()
    if not p and not c:
        raise click.ClickException("the ledger has no requests in the last 30 days")
    days = max(1.0, (time.time() - first) / 86400)
    return _Ledger((p + c) * 30 / days, p / (p + c), int(lt), float(lj), int(ln))


def measured_tps(ledger: _Ledger, watts: float) -> float | None:
    """Tokens/s (prompt and output together) the local engines delivered per second of
    engine time: with batching, each request's seconds are its share of the engine
    (providers/local/server.py's ShareClock), so this is the throughput at the
    concurrency the engine really ran. None with too little to go on."""
    if ledger.local_requests < 10 or ledger.local_joules <= 0 or watts <= 0:
        return None
    return ledger.local_tokens / (ledger.local_joules / watts)


@click.command()
@click.option("--tokens-per-month", "tokens_text", default=None,
              help="Monthly volume (e.g. 50M, 2B); or use --from-ledger.")
@click.option("--from-ledger", is_flag=True, help="Volume and input share from the last 30 days.")
@click.option("--model", default=None, help="API model priced (default: the ledger baseline).")
@click.option("--hardware", default=None, help="One hardware profile (default: all).")
@click.option("--input-share", type=click.FloatRange(0, 1), default=0.75, show_default=True,
              help="Share of tokens that are input (prompt) tokens.")
@click.option("--tokens-per-second", type=float, default=None,
              help="Your measured output (decode) tokens/s, instead of the profile's.")
@click.option("--prefill-tokens-per-second", "prefill_tps", type=float, default=None,
              help="Your measured prompt (prefill) tokens/s, instead of the profile's.")
@click.option("--kwh", "usd_per_kwh", type=float, default=None, help="Electricity USD/kWh.")
@click.option("--mode", type=click.Choice(["auto", "owned", "rented"]), default="auto",
              show_default=True, help="Buy the hardware or rent it by the hour.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG of monthly cost vs volume.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False))
def economics(tokens_text: str | None, from_ledger: bool, model: str | None,
              hardware: str | None, input_share: float, tokens_per_second: float | None,
              prefill_tps: float | None, usd_per_kwh: float | None, mode: str,
              plot_out: str | None, fmt: str, config_path: str | None) -> None:
    """When does self-hosting pay? API cost vs owning or renting each hardware profile."""
    cfg = load_config(config_path) if config_path else None
    measured: float | None = None
    local_hw = cfg.ledger.local_hardware if cfg else "cpu-2core"
    if from_ledger:
        ledger = _from_ledger(config_path)
        tokens, input_share = ledger.tokens_month, ledger.input_share
        hw_local = load_hardware(cfg.ledger.hardware if cfg else None).get(local_hw)
        if hw_local is not None and tokens_per_second is None and prefill_tps is None:
            measured = measured_tps(ledger, hw_local.watts)
    elif tokens_text:
        tokens = _tokens(tokens_text)
    else:
        raise click.UsageError("give --tokens-per-month N or --from-ledger")
    book = PriceBook(cfg.prices if cfg else None)
    model = model or (cfg.ledger.baseline_model if cfg else "gpt-4.1")
    price = book.lookup(model)
    if price is None:
        raise click.ClickException(f"no price for {model!r}; known: {', '.join(book.prices)}")
    per_token = (input_share * price.input + (1 - input_share) * price.output) / 1e6
    kwh = usd_per_kwh if usd_per_kwh is not None else (
        cfg.ledger.electricity_usd_per_kwh if cfg else defaults()["electricity_usd_per_kwh"])
    profiles = load_hardware(cfg.ledger.hardware if cfg else None)
    if hardware:
        if hardware not in profiles:
            raise click.ClickException(f"unknown hardware {hardware!r}; known: "
                                       f"{', '.join(profiles)}")
        profiles = {hardware: profiles[hardware]}
    api_month = tokens * per_token
    rows = []
    def rates_of(hw: Hardware) -> tuple[float | None, float | None]:
        """The machine that served the ledger's local requests: its measured rate (one
        blended tokens/s, so prompt and output alike); the others: the flags or their
        profile's."""
        if measured and hw.name == local_hw:
            return measured, measured
        return tokens_per_second, prefill_tps

    for hw in profiles.values():
        tps, ptps = rates_of(hw)
        try:
            cost, units = monthly_self_hosted(hw, tokens, kwh, tps, mode, input_share, ptps)
            be = break_even(hw, per_token, kwh, tps, mode, input_share, ptps)
        except ValueError:
            continue  # e.g. --mode owned for a rent-only profile
        rows.append({"hardware": hw.name, "mode": be.mode, "units": units,
                     "self_hosted_usd_month": cost, "api_usd_month": api_month,
                     "saving_usd_month": api_month - cost,
                     "break_even_tokens_month": be.break_even_tokens,
                     "utilization_needed": be.utilization_needed,
                     "capacity_tokens_month": be.capacity_tokens,
                     **dict(zip(("tokens_per_second", "prefill_tokens_per_second"),
                                rates(hw, tps, ptps), strict=True)),
                     "measured": bool(measured and hw.name == local_hw),
                     "pays": cost < api_month, "reference_model": hw.reference_model})
    if plot_out:
        _plot(plot_out, tokens, per_token, profiles, kwh, rates_of, mode, model, input_share)
    if fmt == "json":
        sys.stdout.write(json.dumps({"tokens_per_month": tokens, "model": model,
                                     "usd_per_1m_blended": per_token * 1e6,
                                     "input_share": input_share, "usd_per_kwh": kwh,
                                     "hours_per_month": HOURS_PER_MONTH, "rows": rows},
                                    indent=2) + "\n")
        return
    console = Console()
    console.print(f"{tokens:,.0f} tokens/month on [bold]{model}[/] at "
                  f"${per_token * 1e6:.3f} per 1M (input share {input_share:.0%}): "
                  f"[bold]${api_month:,.2f}[/] a month via the API.")
    cells = []
    for r in rows:
        be = r["break_even_tokens_month"]
        cells.append([r["hardware"], r["mode"], str(r["units"]),
                      f"{r['self_hosted_usd_month']:,.2f}", f"{r['api_usd_month']:,.2f}",
                      f"{r['saving_usd_month']:,.2f}",
                      "never (one unit)" if be is None else f"{be:,.0f}",
                      "-" if r["utilization_needed"] is None
                      else f"{r['utilization_needed']:.1%}"])
    print_table(["hardware", "mode", "units", "self-hosted $/mo", "API $/mo", "saving $/mo",
                 "break-even tokens/mo", "utilization needed"], cells,
                styles=["green" if r["pays"] else "red" for r in rows])
    for r in rows:
        if not r["pays"]:
            be = r["break_even_tokens_month"]
            why = ("one unit never pays at this API price" if be is None else
                   f"break-even is {be:,.0f} tokens/month")
            console.print(f"[red]{r['hardware']}: your volume is below break-even; the API "
                          f"is cheaper ({why}).[/]")
    if measured:
        console.print(f"{local_hw}: {measured:,.1f} tokens/s measured from the ledger's "
                      f"local requests (prompt and output, per second of engine time, at "
                      f"the concurrency the engine ran), instead of the profile's rates.")
    console.print("Throughputs (prompt and output tokens/s, each at its own rate) are the "
                  "profiles' reference models (see `hardware.yaml`); pass "
                  "--tokens-per-second and --prefill-tokens-per-second for your own.")


def _plot(path: str, tokens: float, per_token: float, profiles: dict, kwh: float,
          rates_of: Callable[[Hardware], tuple[float | None, float | None]], mode: str,
          model: str, input_share: float) -> None:
    """The table's curves: each profile at the rates the table used for it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = 1e6, max(tokens * 100, 1e10)
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    fig, ax = plt.subplots(figsize=(9, 5))
    ax.plot(xs, [x * per_token for x in xs], color="black", lw=2, label=f"API ({model})")
    for hw in profiles.values():
        try:
            tps, ptps = rates_of(hw)
            ax.plot(xs, [monthly_self_hosted(hw, x, kwh, tps, mode, input_share, ptps)[0]
                         for x in xs], label=hw.name)
        except ValueError:
            continue
    ax.axvline(tokens, color="grey", ls="--", label="your volume")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tokens per month")
    ax.set_ylabel("USD per month")
    ax.set_title("Monthly cost vs volume: API vs self-hosted")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
