"""Spend, baseline spend and savings from the ledger, grouped by model, route, key or day.

Savings compare what was paid with what the same tokens would have cost on the baseline
(frontier) model. Requests whose model has no known price are left out of both sums and
listed, rather than priced at a guess.
"""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from hybridgate.core.types import LOCAL_KINDS
from hybridgate.ledger.store import Store

GROUPS = ("model", "route", "key", "tenant", "day")

_SINCE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """``7d`` / ``24h`` / ``90m`` ago, or an ISO date; returns unix seconds."""
    now = time.time() if now is None else now
    m = _SINCE.match(text.strip())
    if m:
        return now - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since: use a span like 7d, 24h, 30m, or a date like 2026-11-01; "
                         f"got {text!r}") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


@dataclass
class Row:
    ts: float
    requested_model: str
    route: str | None
    key_id: str | None
    provider: str | None
    status: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    latency_ms: float
    ttft_ms: float | None
    cost_usd: float | None
    baseline_cost_usd: float | None
    energy_j: float | None


COLS = ", ".join(Row.__dataclass_fields__)


def load_rows(store: Store, since: float, until: float | None = None) -> list[Row]:
    sql = f"SELECT {COLS} FROM requests WHERE ts >= ?"
    params: tuple = (since,)
    if until is not None:
        sql += " AND ts < ?"
        params = (since, until)
    return [Row(*r) for r in store.query(sql + " ORDER BY ts", params)]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


@dataclass
class Group:
    name: str
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    spend_usd: float = 0.0
    baseline_usd: float = 0.0
    savings_usd: float = 0.0
    savings_pct: float | None = None
    unpriced_requests: int = 0
    local_share: float = 0.0
    energy_j: float = 0.0
    p50_latency_ms: float | None = None
    p95_latency_ms: float | None = None
    p99_latency_ms: float | None = None
    p50_ttft_ms: float | None = None
    p95_ttft_ms: float | None = None
    route_mix: dict[str, int] = field(default_factory=dict)


def _summarize(name: str, rows: list[Row]) -> Group:
    g = Group(name=name, requests=len(rows))
    local = 0
    lat: list[float] = []
    ttft: list[float] = []
    mix: dict[str, int] = defaultdict(int)
    for r in rows:
        g.errors += r.status >= 400
        g.prompt_tokens += r.prompt_tokens
        g.cached_tokens += r.cached_tokens
        g.completion_tokens += r.completion_tokens
        g.energy_j += r.energy_j or 0.0
        mix[r.route or "-"] += 1
        local += r.provider in LOCAL_KINDS
        if r.status < 400:
            lat.append(r.latency_ms)
            if r.ttft_ms is not None:
                ttft.append(r.ttft_ms)
        if r.cost_usd is None:
            if r.status < 400:
                g.unpriced_requests += 1
            continue
        g.spend_usd += r.cost_usd
        g.baseline_usd += r.baseline_cost_usd or 0.0
    g.savings_usd = g.baseline_usd - g.spend_usd
    g.savings_pct = 100 * g.savings_usd / g.baseline_usd if g.baseline_usd > 0 else None
    g.local_share = local / len(rows) if rows else 0.0
    g.p50_latency_ms, g.p95_latency_ms = _pct(lat, 50), _pct(lat, 95)
    g.p99_latency_ms = _pct(lat, 99)
    g.p50_ttft_ms, g.p95_ttft_ms = _pct(ttft, 50), _pct(ttft, 95)
    g.route_mix = dict(sorted(mix.items(), key=lambda kv: -kv[1]))
    return g


def _key(by: str, r: Row, tenants: dict[str, str]) -> str:
    if by == "model":
        return r.requested_model
    if by == "route":
        return r.route or "-"
    if by == "key":
        return r.key_id or "-"
    if by == "tenant":
        return tenants.get(r.key_id or "", "-")
    return datetime.fromtimestamp(r.ts, UTC).strftime("%Y-%m-%d")


@dataclass
class Report:
    since: float
    by: str
    groups: list[Group]
    total: Group
    unpriced_models: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"since": datetime.fromtimestamp(self.since, UTC).isoformat(), "by": self.by,
                "groups": [asdict(g) for g in self.groups], "total": asdict(self.total),
                "unpriced_models": self.unpriced_models}


def build(rows: list[Row], since: float, by: str = "model",
          tenants: dict[str, str] | None = None) -> Report:
    """``tenants``: key id -> tenant name (from the config), for ``by="tenant"``."""
    if by not in GROUPS:
        raise ValueError(f"--by must be one of {', '.join(GROUPS)}")
    grouped: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        grouped[_key(by, r, tenants or {})].append(r)
    groups = [_summarize(k, v) for k, v in sorted(grouped.items())]
    unpriced = sorted({r.route or r.requested_model for r in rows
                       if r.cost_usd is None and r.status < 400})
    return Report(since, by, groups, _summarize("total", rows), unpriced)


# ----------------------------------------------------------------------- formats

CSV_FIELDS = ["name", "requests", "errors", "prompt_tokens", "cached_tokens",
              "completion_tokens", "spend_usd", "baseline_usd", "savings_usd", "savings_pct",
              "unpriced_requests", "local_share", "energy_j", "p50_latency_ms",
              "p95_latency_ms", "p50_ttft_ms", "p95_ttft_ms"]


def to_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2)


def to_csv(report: Report) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[report.by] + CSV_FIELDS[1:])
    w.writeheader()
    for g in [*report.groups, report.total]:
        d = asdict(g)
        w.writerow({report.by: g.name, **{k: d[k] for k in CSV_FIELDS[1:]}})
    return buf.getvalue()


def fmt_usd(v: float) -> str:
    return f"${v:,.4f}" if abs(v) < 100 else f"${v:,.2f}"


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"
