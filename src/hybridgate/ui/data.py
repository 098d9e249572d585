"""What the dashboard shows, read from the ledger (SQLite or Postgres).

Each page view opens its own connection on a worker thread (``asyncio.to_thread``), so
the dashboard never waits behind, or holds up, the ledger's writer; nothing here runs on
the event loop. The summaries are ``ledger/report``'s, the same numbers as
``hybridgate report``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from hybridgate.core.types import LOCAL_KINDS
from hybridgate.ledger.report import Report, Row, build, load_rows
from hybridgate.ledger.store import Store

LOG_LIMIT = 100
DETAIL = ("id, ts, key_id, user_id, requested_model, route, provider, endpoint, stream, "
          "attempt, prompt_tokens, cached_tokens, completion_tokens, tokens_source, "
          "latency_ms, ttft_ms, cost_usd, baseline_cost_usd, energy_j, status, error, "
          "route_score, route_decision, attempts, feedback_score")


@dataclass
class Overview:
    since: float
    total: dict[str, Any]
    by: dict[str, list[dict[str, Any]]]  # model / route / key / tenant -> groups
    series: dict[str, list[Any]]  # chart columns: t, spend, baseline, local, remote
    route_mix: list[tuple[str, int]]  # "member:reason" -> requests
    log: list[dict[str, Any]]  # the latest requests, newest first
    unpriced: list[str]


def _bucket(since: float, until: float) -> int:
    """Seconds per point: hours for two days or less, else days."""
    return 3600 if until - since <= 2 * 86400 else 86400


def _series(rows: list[Row], since: float, until: float) -> dict[str, list[Any]]:
    step = _bucket(since, until)
    start = math.floor(since / step) * step
    n = max(1, math.ceil((until - start) / step))
    spend, base, local, remote = ([0.0] * n for _ in range(4))
    for r in rows:
        i = min(n - 1, max(0, int((r.ts - start) // step)))
        if r.cost_usd is not None:
            spend[i] += r.cost_usd
            base[i] += r.baseline_cost_usd or 0.0
        if r.provider in LOCAL_KINDS:
            local[i] += 1
        else:
            remote[i] += 1
    return {"t": [start + i * step for i in range(n)], "spend": spend, "baseline": base,
            "local": local, "remote": remote}


def _groups(rep: Report) -> list[dict[str, Any]]:
    return [asdict(g) for g in rep.groups]


def overview(url: str, since: float, until: float, tenants: dict[str, str]) -> Overview:
    store = Store(url)
    store.connect()
    try:
        rows = load_rows(store, since)
        mix = store.query("SELECT route_decision, COUNT(*) FROM requests WHERE ts >= ? AND "
                          "route_decision IS NOT NULL GROUP BY route_decision", (since,))
        log = store.query(f"SELECT {DETAIL} FROM requests ORDER BY ts DESC LIMIT {LOG_LIMIT}")
    finally:
        store.close()
    names = DETAIL.replace(" ", "").split(",")
    by = {k: _groups(build(rows, since, k, tenants)) for k in ("model", "route", "key",
                                                                "tenant")}
    total = build(rows, since)
    return Overview(since=since, total=asdict(total.total), by=by,
                    series=_series(rows, since, until),
                    route_mix=sorted(((d, int(n)) for d, n in mix), key=lambda x: -x[1]),
                    log=[dict(zip(names, r, strict=True)) for r in log],
                    unpriced=total.unpriced_models)


def request_detail(url: str, request_id: str) -> dict[str, Any] | None:
    """One request's row, its attempts parsed."""
    store = Store(url)
    store.connect()
    try:
        rows = store.query(f"SELECT {DETAIL} FROM requests WHERE id = ?", (request_id,))
    finally:
        store.close()
    if not rows:
        return None
    doc = dict(zip(DETAIL.replace(" ", "").split(","), rows[0], strict=True))
    doc["attempts"] = json.loads(doc["attempts"]) if doc["attempts"] else []
    return doc

