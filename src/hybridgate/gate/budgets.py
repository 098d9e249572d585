"""Where every budget and rate limit stands: spend from the ledger (the truth), and what
Redis holds right now (reservations in flight, this minute's requests and tokens).
``hybridgate budgets``, the dashboard and /metrics read it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from hybridgate.config.settings import Config
from hybridgate.gate.limits import (
    MICRO,
    PREFIX,
    Scope,
    ledger_spend,
    scopes_of,
    window_start,
)

PERIOD_NAMES = {3600: "1h", 86400: "1d", 7 * 86400: "7d", 30 * 86400: "30d"}


@dataclass
class Standing:
    scope: str  # "tenant:research", "key:ci"
    budget_usd: float | None
    period: str | None  # "1d"; None: the budget never resets
    spent_usd: float  # this period, from the ledger
    held_usd: float | None  # reserved by requests in flight (None: Redis unreachable)
    left_usd: float | None
    rpm_limit: int | None
    rpm_used: int | None
    tpm_limit: int | None
    tpm_used: int | None
    parallel_limit: int | None
    in_flight: int | None

    @property
    def used_share(self) -> float | None:
        if not self.budget_usd:
            return None
        return min(1.0, self.spent_usd / self.budget_usd)


def _live(redis: Any, scope: Scope, now: float) -> tuple[int, int, int, int] | None:
    """held micro-dollars, requests and tokens this minute, in flight (sync client)."""
    p = PREFIX + scope.name
    minute = math.floor(now / 60)
    try:
        held, rpm, tpm, par = redis.mget(f"{p}:held", f"{p}:rpm:{minute}",
                                         f"{p}:tpm:{minute}", f"{p}:par")
    except Exception:  # noqa: BLE001 - Redis down: the ledger's figures still stand
        return None
    return tuple(int(v or 0) for v in (held, rpm, tpm, par))  # type: ignore[return-value]


def standings(config: Config, ledger_url: str | None, redis: Any = None,
              now: float | None = None) -> list[Standing]:
    now = time.time() if now is None else now
    out = []
    for s in scopes_of(config)[0]:
        spent = ledger_spend(ledger_url, s.key_ids, window_start(s, now)) \
            if s.budget is not None else 0.0
        live = _live(redis, s, now) if redis is not None else None
        held = live[0] / MICRO if live else None
        budget = s.budget / MICRO if s.budget is not None else None
        out.append(Standing(
            s.name, budget, PERIOD_NAMES.get(s.period) if s.budget is not None else None,
            spent, held,
            None if budget is None else max(0.0, budget - spent - (held or 0.0)),
            s.rpm, live[1] if live else None, s.tpm, live[2] if live else None,
            s.parallel, live[3] if live else None))
    return out


def redis_client(config: Config) -> Any:
    """A short-timeout sync client, or None without ``redis:``."""
    if config.redis is None:
        return None
    from redis import Redis

    return Redis.from_url(config.redis, socket_timeout=0.5, socket_connect_timeout=0.5)
