"""RouteLLM's routing metrics (Ong et al., arXiv 2406.18665, section 5.1).

A router gives each question a score s; above a threshold the question goes to the
strong model. Sweeping the threshold from "nothing strong" to "everything strong"
traces accuracy against the share of strong calls:

    acc(share)  = mean over questions of (strong_correct if routed strong else weak_correct)
    PGR(share)  = (acc(share) - acc_weak) / (acc_strong - acc_weak)
    APGR        = area under PGR(share) for share in [0, 1]
    CPT(x)      = the smallest share of strong calls with PGR >= x

Questions are routed strong in score order, highest first, one at a time, so the curve
has n + 1 points (ties broken by input order, which is fixed per dataset).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Curve:
    share: np.ndarray  # share of strong calls, 0 .. 1
    pgr: np.ndarray
    weak_acc: float
    strong_acc: float

    @property
    def apgr(self) -> float:
        return float(np.trapezoid(self.pgr, self.share))

    def cpt(self, target: float) -> float:
        """Smallest share of strong calls reaching PGR >= target (as a fraction)."""
        hit = np.nonzero(self.pgr >= target - 1e-12)[0]
        return float(self.share[hit[0]]) if len(hit) else 1.0


def curve(scores: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> Curve:
    weak = weak.astype(float)
    strong = strong.astype(float)
    n = len(scores)
    order = np.argsort(-scores, kind="stable")
    gain = (strong - weak)[order]  # what sending each question strong adds
    acc = (weak.sum() + np.concatenate([[0.0], np.cumsum(gain)])) / n
    wa, sa = weak.mean(), strong.mean()
    return Curve(np.arange(n + 1) / n, (acc - wa) / (sa - wa), float(wa), float(sa))


def oracle_scores(weak: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """Strong first exactly where only it is right."""
    return (strong.astype(float) - weak.astype(float))


def random_curve(weak: np.ndarray, strong: np.ndarray) -> Curve:
    """The expected random router: PGR rises linearly with the share (APGR 0.5)."""
    share = np.linspace(0, 1, 101)
    return Curve(share, share.copy(), float(weak.mean()), float(strong.mean()))
