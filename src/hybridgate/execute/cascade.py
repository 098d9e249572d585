"""Cascade: the weak member answers first; the strong one only when it must.

A route group with ``cascade: true`` sends a non-streamed chat request to its weak member
first. That answer is escalated to the strong member when it is invalid (the output
checks, after their repair and one re-ask) or when the weak model was unsure of it: the
local engine reports the mean log-probability of the tokens it sampled, and an answer
below the group's threshold goes strong.

The threshold is ``cascade_threshold`` when configured; otherwise it is calibrated like
the router's ``strong_share``, as a share of traffic: the ``cascade_share`` quantile of
the weak member's recent confidences (the last ``WINDOW`` answers in this process), so
that about that share of answers is escalated for low confidence whatever the model's
scale. Until ``WARMUP`` answers were seen, ``PRIOR`` stands in: between the 20th and
the 40th percentile of Qwen2.5-Coder-0.5B's answers on BFCL's simple_python, live_simple
and irrelevance questions (the distribution moves a lot between kinds of question,
which is why the quantile is learned online).
"""

from __future__ import annotations

import bisect
from collections import deque

from hybridgate.core.errors import UpstreamError

WINDOW = 500
WARMUP = 20
PRIOR = -0.1  # mean log-probability of content tokens


class LowConfidence(UpstreamError):
    """The weak member answered, unsure: the strong member should (an attempt's outcome,
    never a client's error: if no one else can answer, the weak answer is returned)."""

    code = "low_confidence"

    def __init__(self, message: str, answer: object) -> None:
        super().__init__(message)
        self.answer = answer
        self.upstream_status = 200
        self.usage = getattr(answer, "usage", None)


class Confidence:
    """One route group's escalation rule."""

    def __init__(self, weak: str, share: float, threshold: float | None) -> None:
        self.weak = weak
        self.share = share
        self.fixed = threshold
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []

    def threshold(self) -> float:
        if self.fixed is not None:
            return self.fixed
        if len(self._sorted) < WARMUP:
            return PRIOR
        i = min(len(self._sorted) - 1, int(self.share * len(self._sorted)))
        return self._sorted[i]

    def escalate(self, confidence: float) -> tuple[bool, float]:
        """(escalate this answer?, the threshold it was held to); learns the answer."""
        limit = self.threshold()
        if self.fixed is None:
            self._recent.append(confidence)
            bisect.insort(self._sorted, confidence)
            if len(self._recent) > WINDOW:
                old = self._recent.popleft()
                del self._sorted[bisect.bisect_left(self._sorted, old)]
        return confidence < limit, limit
