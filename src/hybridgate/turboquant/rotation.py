"""Random rotations. Both are orthogonal, so ||R x|| = ||x|| and R^T undoes R.

Dense: Q from the QR decomposition of a Gaussian matrix, with the signs of R's diagonal
folded in so Q is Haar-distributed (uniform over rotations). O(d^2) per vector.

Randomized Hadamard: x -> H D x / sqrt(d), D a random +-1 diagonal, H the
Walsh-Hadamard matrix applied by the fast transform in O(d log d). It is not a uniform
rotation, but it spreads any vector's energy across coordinates the same way in
practice; d must be a power of two.
"""

from __future__ import annotations

import numpy as np


class DenseRotation:
    def __init__(self, d: int, seed: int = 0) -> None:
        g = np.random.default_rng(seed).standard_normal((d, d))
        q, r = np.linalg.qr(g)
        self.matrix = (q * np.sign(np.diag(r))).astype(np.float32)  # Haar: fix the signs

    def apply(self, x: np.ndarray) -> np.ndarray:  # rows of x are vectors
        return x @ self.matrix.T

    def invert(self, y: np.ndarray) -> np.ndarray:
        return y @ self.matrix


def fwht(x: np.ndarray) -> np.ndarray:
    """Unnormalised fast Walsh-Hadamard transform along the last axis (length 2^k)."""
    y = np.array(x, dtype=np.float32, copy=True)
    n = y.shape[-1]
    h = 1
    while h < n:
        y = y.reshape(*y.shape[:-1], n // (2 * h), 2, h)
        a, b = y[..., 0, :].copy(), y[..., 1, :]
        y[..., 0, :] += b
        y[..., 1, :] = a - b
        y = y.reshape(*y.shape[:-3], n)
        h *= 2
    return y


class HadamardRotation:
    def __init__(self, d: int, seed: int = 0) -> None:
        if d & (d - 1):
            raise ValueError(f"the Hadamard rotation needs a power-of-two dimension, got {d}")
        self.d = d
        self.signs = np.random.default_rng(seed).choice([-1.0, 1.0], d).astype(np.float32)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return fwht(x * self.signs) / np.sqrt(self.d)

    def invert(self, y: np.ndarray) -> np.ndarray:
        return fwht(y) / np.sqrt(self.d) * self.signs  # H is symmetric and H H = d I


def make_rotation(kind: str, d: int, seed: int = 0) -> DenseRotation | HadamardRotation:
    if kind == "dense":
        return DenseRotation(d, seed)
    if kind == "hadamard":
        return HadamardRotation(d, seed)
    raise ValueError("rotation must be 'dense' or 'hadamard'")
