"""``hybridgate report --html``: one self-contained page (plots inlined as PNG)."""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to memory
import matplotlib.pyplot as plt  # noqa: E402

from hybridgate.ledger.report import Report, Row, fmt_ms, fmt_usd  # noqa: E402


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _spend_over_time(rows: list[Row]) -> str:
    days: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in rows:
        if r.cost_usd is None:
            continue
        d = datetime.fromtimestamp(r.ts, UTC).strftime("%Y-%m-%d")
        days[d][0] += r.cost_usd
        days[d][1] += r.baseline_cost_usd or 0.0
    keys = sorted(days)
    spend, base = [], []
    s = b = 0.0
    for k in keys:
        s += days[k][0]
        b += days[k][1]
        spend.append(s)
        base.append(b)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    x = [datetime.fromisoformat(k) for k in keys]
    ax.plot(x, base, marker="o", label="baseline (frontier) cost", color="#c0392b")
    ax.plot(x, spend, marker="o", label="actual spend", color="#27ae60")
    ax.fill_between(x, spend, base, color="#27ae60", alpha=0.12, label="saved")
    ax.set_ylabel("cumulative USD")
    ax.set_title("Spend vs baseline over time")
    ax.legend()
    fig.autofmt_xdate()
    return _png(fig)


def _route_mix(report: Report) -> str:
    mix = report.total.route_mix
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.4 * max(1, len(mix))))
    names = list(mix)[::-1]
    ax.barh(names, [mix[n] for n in names], color="#2980b9")
    ax.set_xlabel("requests")
    ax.set_title("Route mix")
    return _png(fig)


def _cost_distribution(rows: list[Row]) -> str:
    costs = [r.cost_usd for r in rows if r.cost_usd is not None and r.cost_usd > 0]
    fig, ax = plt.subplots(figsize=(8, 3))
    if costs:
        lo, hi = min(costs), max(costs)
        bins = [lo * (hi / lo) ** (i / 30) for i in range(31)] if hi > lo else 10
        ax.hist(costs, bins=bins, color="#8e44ad")
        if hi > lo:
            ax.set_xscale("log")
    ax.set_xlabel("USD per request")
    ax.set_ylabel("requests")
    ax.set_title("Cost per request")
    return _png(fig)


def _budgets(standings: list[Any]) -> str:
    """Spend against every budget and rate limit (``gate/budgets``), when configured."""
    if not standings:
        return ""
    out = ["<h2>Budgets and limits</h2><table id='budgets'><tr><th>scope</th><th>budget</th>"
           "<th>spent</th><th>used</th><th>left</th><th>requests/min</th><th>tokens/min</th>"
           "<th>parallel</th></tr>"]
    for b in standings:
        budget = "-" if b.budget_usd is None else \
            f"{fmt_usd(b.budget_usd)} / {html.escape(b.period or 'ever')}"
        used = "-" if b.used_share is None else f"{b.used_share:.0%}"
        out.append(
            f"<tr><td>{html.escape(b.scope)}</td><td>{budget}</td>"
            f"<td>{'-' if b.budget_usd is None else fmt_usd(b.spent_usd)}</td><td>{used}</td>"
            f"<td>{'-' if b.left_usd is None else fmt_usd(b.left_usd)}</td>"
            f"<td>{b.rpm_limit or '-'}</td><td>{b.tpm_limit or '-'}</td>"
            f"<td>{b.parallel_limit or '-'}</td></tr>")
    return "".join(out) + "</table>"


def render(report: Report, rows: list[Row], standings: list[Any] | None = None) -> str:
    t = report.total
    head = (f"<tr><th>{html.escape(report.by)}</th><th>requests</th><th>errors</th>"
            "<th>tokens in / out</th><th>spend</th><th>baseline</th><th>savings</th>"
            "<th>local share</th>"
            "<th>p50 / p95 latency ms</th><th>p50 / p95 TTFT ms</th></tr>")
    body = []
    for g in [*report.groups, t]:
        pct = "-" if g.savings_pct is None else f"{g.savings_pct:.1f}%"
        cls = ' class="total"' if g is t else ""
        body.append(
            f"<tr{cls}><td>{html.escape(g.name)}</td><td>{g.requests:,}</td><td>{g.errors:,}"
            f"</td><td>{g.prompt_tokens:,} / {g.completion_tokens:,}</td>"
            f"<td>{fmt_usd(g.spend_usd)}</td><td>{fmt_usd(g.baseline_usd)}</td><td>{pct}</td>"
            f"<td>{g.local_share:.0%}</td><td>{fmt_ms(g.p50_latency_ms)} / "
            f"{fmt_ms(g.p95_latency_ms)}</td><td>{fmt_ms(g.p50_ttft_ms)} / "
            f"{fmt_ms(g.p95_ttft_ms)}</td></tr>")
    unpriced = ""
    if report.unpriced_models:
        names = ", ".join(html.escape(m) for m in report.unpriced_models)
        unpriced = (f"<p class='warn'>No known price for: {names}. Their requests are "
                    "counted but left out of spend and savings; add them under "
                    "<code>prices:</code> in the config.</p>")
    since = datetime.fromtimestamp(report.since, UTC).strftime("%Y-%m-%d %H:%M UTC")
    pct = "-" if t.savings_pct is None else f"{t.savings_pct:.1f}%"
    plots = [("Spend vs baseline", _spend_over_time(rows)), ("Route mix", _route_mix(report)),
             ("Cost per request", _cost_distribution(rows))]
    imgs = "\n".join(f'<figure><img alt="{a}" src="data:image/png;base64,{p}"></figure>'
                     for a, p in plots)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hybridgate report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1100px; }}
.kpis {{ display: flex; gap: 1rem; margin: 1rem 0; }}
.kpi {{ background: #f4f6f8; border-radius: 8px; padding: .8rem 1.2rem; }}
.kpi b {{ display: block; font-size: 1.5rem; }}
table {{ border-collapse: collapse; width: 100%; font-size: .9rem; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .35rem .5rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
tr.total td {{ font-weight: bold; border-top: 2px solid #555; }}
.warn {{ background: #fff4e5; padding: .6rem; border-radius: 6px; }}
figure {{ margin: 1.5rem 0; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>hybridgate: cost and savings</h1>
<p>Since {since}, grouped by {html.escape(report.by)}.</p>
<div class="kpis">
<div class="kpi">requests<b>{t.requests:,}</b></div>
<div class="kpi">spend<b>{fmt_usd(t.spend_usd)}</b></div>
<div class="kpi">baseline<b>{fmt_usd(t.baseline_usd)}</b></div>
<div class="kpi">saved<b>{fmt_usd(t.savings_usd)} ({pct})</b></div>
<div class="kpi">served locally<b>{t.local_share:.0%}</b></div>
</div>
{unpriced}
<table>{head}{"".join(body)}</table>
{_budgets(standings or [])}
{imgs}
</body></html>
"""
