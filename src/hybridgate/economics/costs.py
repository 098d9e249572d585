"""The cost model, in the order docs/economics.md derives it.

Prompt tokens go through prefill many times faster than output tokens are decoded, so a
token mix with input share ``s`` is served at the blended rate

    tps       = 1 / (s / prefill_tokens_per_second + (1 - s) / tokens_per_second)

Owned hardware: the purchase is spread over its lifetime; power follows how busy it is.
For one unit serving ``n`` tokens a month, with ``u = n / capacity``:

    capacity  = tps * 3600 * H                          (tokens a month at u = 1; H = 730)
    fixed     = purchase / (lifetime_years * 12)
    power(u)  = (idle_watts + u * (watts - idle_watts)) / 1000 * H * usd_per_kwh
    cost(n)   = fixed + power(n / capacity)

Rented hardware is billed by the hour while it is up (we assume always on):

    cost(n)   = cloud_hourly_usd * H

``N`` tokens a month need ``ceil(N / capacity)`` units, sharing the load evenly.
The API costs ``N * p`` (p = blended USD per token). Break-even on one unit solves
``cost(N) = N * p``; for owned hardware, with k = H / 1000 * usd_per_kwh:

    u* = (fixed + idle_watts * k) / (capacity * p - (watts - idle_watts) * k)
    N* = u* * capacity      (no break-even when u* is negative or above 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

HOURS_PER_MONTH = 730.0  # 8760 / 12


@dataclass(frozen=True)
class Hardware:
    name: str
    description: str
    purchase_usd: float | None
    cloud_hourly_usd: float | None
    lifetime_years: float
    watts: float
    idle_watts: float
    tokens_per_second: float  # output (decode) tokens/s, aggregate
    reference_model: str
    sources: tuple[str, ...] = ()
    # prompt (prefill) tokens/s; None: unknown, so prompt tokens are costed at the decode
    # rate (cautious: it overstates the self-hosted cost)
    prefill_tokens_per_second: float | None = None


@cache
def _data() -> dict[str, Any]:
    text = resources.files("hybridgate.economics").joinpath("hardware.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def load_hardware(extra: list[dict[str, Any]] | None = None) -> dict[str, Hardware]:
    """Shipped profiles, then the user's (same fields) on top."""
    out: dict[str, Hardware] = {}
    for doc in [*_data()["profiles"], *(extra or [])]:
        doc = {**doc, "sources": tuple(doc.get("sources", ()))}
        out[doc["name"]] = Hardware(**doc)
    return out


def defaults() -> dict[str, float]:
    return dict(_data()["defaults"])


def _k(usd_per_kwh: float) -> float:
    return HOURS_PER_MONTH / 1000 * usd_per_kwh


def rates(hw: Hardware, tokens_per_second: float | None = None,
          prefill_tokens_per_second: float | None = None) -> tuple[float, float]:
    """(decode, prefill) tokens/s: the overrides, else the profile's; a profile without
    a prefill rate costs prompt tokens at the decode rate."""
    decode = tokens_per_second or hw.tokens_per_second
    return decode, prefill_tokens_per_second or hw.prefill_tokens_per_second or decode


def blended_tps(hw: Hardware, input_share: float, tokens_per_second: float | None = None,
                prefill_tokens_per_second: float | None = None) -> float:
    """Tokens/s for a mix with ``input_share`` prompt tokens: each kind at its own rate."""
    decode, prefill = rates(hw, tokens_per_second, prefill_tokens_per_second)
    return 1.0 / (input_share / prefill + (1.0 - input_share) / decode)


def capacity_month(hw: Hardware, tokens_per_second: float | None = None,
                   input_share: float = 0.75,
                   prefill_tokens_per_second: float | None = None) -> float:
    """Tokens (prompt + output, in the given mix) one unit serves in a month at u = 1."""
    tps = blended_tps(hw, input_share, tokens_per_second, prefill_tokens_per_second)
    return tps * 3600 * HOURS_PER_MONTH


def _mode(hw: Hardware, mode: str) -> str:
    if mode in ("auto", "owned") and hw.purchase_usd is not None:
        return "owned"
    if mode in ("auto", "rented") and hw.cloud_hourly_usd is not None:
        return "rented"
    raise ValueError(f"{hw.name} cannot be {mode}: no "
                     f"{'purchase price' if mode == 'owned' else 'hourly rate'}")


def unit_month(hw: Hardware, utilization: float, usd_per_kwh: float, mode: str = "auto"
               ) -> tuple[float, str]:
    """Monthly cost of one unit at ``utilization``: (usd, "owned" | "rented")."""
    kind = _mode(hw, mode)
    if kind == "rented":
        assert hw.cloud_hourly_usd is not None
        return hw.cloud_hourly_usd * HOURS_PER_MONTH, kind
    assert hw.purchase_usd is not None
    fixed = hw.purchase_usd / (hw.lifetime_years * 12)
    watts = hw.idle_watts + utilization * (hw.watts - hw.idle_watts)
    return fixed + watts * _k(usd_per_kwh), kind


def hourly_cost(hw: Hardware, usd_per_kwh: float, utilization: float = 0.5) -> float:
    """USD per *busy* hour, used by the ledger to price a local request's seconds:
    the purchase (or rent) is carried by the busy share of hours, plus power at load."""
    u = max(utilization, 1e-9)
    if hw.purchase_usd is not None:
        return hw.purchase_usd / (hw.lifetime_years * 8760) / u + hw.watts / 1000 * usd_per_kwh
    assert hw.cloud_hourly_usd is not None
    return hw.cloud_hourly_usd / u


def monthly_self_hosted(hw: Hardware, tokens: float, usd_per_kwh: float,
                        tokens_per_second: float | None = None,
                        mode: str = "auto", input_share: float = 0.75,
                        prefill_tokens_per_second: float | None = None) -> tuple[float, int]:
    """(USD per month, units needed) to serve ``tokens`` a month."""
    cap = capacity_month(hw, tokens_per_second, input_share, prefill_tokens_per_second)
    units = max(1, math.ceil(tokens / cap))
    cost, _ = unit_month(hw, tokens / (units * cap), usd_per_kwh, mode)
    return cost * units, units


@dataclass(frozen=True)
class BreakEven:
    hardware: str
    mode: str
    capacity_tokens: float
    break_even_tokens: float | None  # None: one unit never pays at this API price
    utilization_needed: float | None
    cost_at_break_even: float | None


def break_even(hw: Hardware, usd_per_token: float, usd_per_kwh: float,
               tokens_per_second: float | None = None, mode: str = "auto",
               input_share: float = 0.75,
               prefill_tokens_per_second: float | None = None) -> BreakEven:
    kind = _mode(hw, mode)
    cap = capacity_month(hw, tokens_per_second, input_share, prefill_tokens_per_second)
    if kind == "rented":
        assert hw.cloud_hourly_usd is not None
        n = hw.cloud_hourly_usd * HOURS_PER_MONTH / usd_per_token
        u = n / cap
    else:
        assert hw.purchase_usd is not None
        fixed = hw.purchase_usd / (hw.lifetime_years * 12)
        k = _k(usd_per_kwh)
        denom = cap * usd_per_token - (hw.watts - hw.idle_watts) * k
        u = (fixed + hw.idle_watts * k) / denom if denom > 0 else math.inf
        n = u * cap
    if not 0 <= u <= 1:
        return BreakEven(hw.name, kind, cap, None, None, None)
    return BreakEven(hw.name, kind, cap, n, u, n * usd_per_token)
