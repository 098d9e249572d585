"""A circuit breaker per model, in this process.

Closed: requests flow, outcomes are counted over a sliding window. Open (at least
``min_requests`` outcomes in the window and ``failure_ratio`` of them failures): the
model is skipped at once, so a dead upstream costs its callers nothing but a fallback.
After ``cooldown`` one probe request is let through (half-open); its success closes the
breaker, its failure opens it for another cooldown.

State is per process: with ``--workers N`` or several replicas each keeps its own
(sharing it through Redis is later work).
"""

from __future__ import annotations

import time
from collections import deque

from hybridgate.config.settings import BreakerConfig


class Breaker:
    def __init__(self, cfg: BreakerConfig) -> None:
        self.cfg = cfg
        self._outcomes: deque[tuple[float, bool]] = deque()  # (time, ok)
        self._failures = 0
        self.opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self._probing else "open"

    def allow(self, now: float | None = None) -> bool:
        """May a request go to this model now? (Takes the half-open probe slot.)"""
        if not self.cfg.enabled or self.opened_at is None:
            return True
        now = time.monotonic() if now is None else now
        if not self._probing and now - self.opened_at >= self.cfg.cooldown:
            self._probing = True
            return True
        return False

    def record(self, ok: bool, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._probing:  # the probe decides
            self._probing = False
            if ok:
                self.opened_at = None
                self._outcomes.clear()
                self._failures = 0
            else:
                self.opened_at = now
            return
        self._outcomes.append((now, ok))
        self._failures += not ok
        while self._outcomes and now - self._outcomes[0][0] > self.cfg.window:
            _, was_ok = self._outcomes.popleft()
            self._failures -= not was_ok
        n = len(self._outcomes)
        if (self.opened_at is None and n >= self.cfg.min_requests
                and self._failures / n >= self.cfg.failure_ratio):
            self.opened_at = now
