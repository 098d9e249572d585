"""Lloyd-Max codebooks for the coordinates of a randomly rotated unit vector.

Rotate a unit vector x in R^d by a uniformly random rotation: each coordinate y of the
result has the density (a Beta distribution stretched onto [-1, 1])

    f_d(y) = Gamma(d/2) / (sqrt(pi) Gamma((d-1)/2)) * (1 - y^2)^((d-3)/2),

which tends to N(0, 1/d) as d grows. We work in the scaled variable t = sqrt(d) * y,
so one codebook shape serves every d (t is close to N(0, 1)), and find the 2^b
centroids that minimise E[(t - q(t))^2] by Lloyd-Max iteration:

    boundaries  = midpoints between neighbouring centroids
    centroid_k  = E[t | t in cell k]

Cell masses and first moments come from cumulative sums over a fine grid, so each
iteration is a couple of vector operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import gammaln
from scipy.stats import norm

GRID = 400_001
TAIL = 12.0  # in standard deviations: the mass beyond is below 1e-30


@dataclass(frozen=True)
class Codebook:
    """Centroids and decision boundaries for t = sqrt(d) * y (divide by sqrt(d) to use)."""

    bits: int
    d: int
    centroids: np.ndarray  # (2^bits,), increasing
    boundaries: np.ndarray  # (2^bits - 1,), the midpoints
    mse: float  # E[(t - q(t))^2] = d * E[(y - q(y))^2] = E||x - x_hat||^2 for unit x


def _density(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid and normalised density of t = sqrt(d) * y for a rotated unit vector."""
    lim = min(np.sqrt(d), TAIL)
    t = np.linspace(-lim, lim, GRID)
    if d <= 2:
        raise ValueError("TurboQuant needs d >= 3")
    # log f(t) up to a constant: ((d - 3) / 2) * log(1 - t^2 / d)
    with np.errstate(divide="ignore"):
        logf = 0.5 * (d - 3) * np.log1p(-np.minimum(t * t / d, 1.0))
    f = np.exp(logf - logf.max())
    f /= np.trapezoid(f, t)
    return t, f


def _log_norm_const(d: int) -> float:
    """log of Gamma(d/2) / (sqrt(pi) Gamma((d-1)/2)), for reference and tests."""
    return float(gammaln(d / 2) - 0.5 * np.log(np.pi) - gammaln((d - 1) / 2))


@lru_cache(maxsize=64)
def lloyd_max(bits: int, d: int, iters: int = 300) -> Codebook:
    if not 1 <= bits <= 8:
        raise ValueError("bits must be 1..8")
    t, f = _density(d)
    dt = t[1] - t[0]
    mass = np.concatenate([[0.0], np.cumsum(f) * dt])  # P(t <= grid point), roughly
    moment = np.concatenate([[0.0], np.cumsum(t * f) * dt])
    k = 2 ** bits
    c = norm.ppf((np.arange(k) + 0.5) / k)  # start from Gaussian quantiles
    for _ in range(iters):
        b = (c[1:] + c[:-1]) / 2
        idx = np.searchsorted(t, b)  # cell edges on the grid
        edges = np.concatenate([[0], idx, [len(t)]])
        m = mass[edges[1:]] - mass[edges[:-1]]
        mu = moment[edges[1:]] - moment[edges[:-1]]
        new = np.where(m > 0, mu / np.maximum(m, 1e-300), c)
        if np.max(np.abs(new - c)) < 1e-10:
            c = new
            break
        c = new
    b = (c[1:] + c[:-1]) / 2
    q = c[np.searchsorted(b, t)]
    mse = float(np.trapezoid((t - q) ** 2 * f, t))
    return Codebook(bits, d, c.astype(np.float64), b.astype(np.float64), mse)
