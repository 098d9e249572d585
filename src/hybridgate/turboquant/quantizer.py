"""TurboQuant_mse and TurboQuant_prod (paper, Algorithms 1 and 2).

TurboQuant_mse, b bits per coordinate:
    store n = ||x||                                    (one float32 per vector)
    t = sqrt(d) * R (x / n)                            rotate; t_i ~ f_d, close to N(0, 1)
    k_i = index of the codebook cell holding t_i       b bits each, packed
    decode: x_hat = n * R^T (c[k] / sqrt(d))

    E||x - x_hat||^2 = n^2 * mse(b)  with mse(b) ~ 0.363, 0.118, 0.0345, 0.0095 (b = 1..4)

TurboQuant_prod, b bits per coordinate, for inner products <y, x>:
    x_mse = TurboQuant_mse at b - 1 bits; r = x - x_mse         the residual
    store sign(S r) (d bits, S a d x d Gaussian matrix) and ||r||
    <y, x> ~ <y, x_mse> + ||r|| * sqrt(pi / 2) / d * <S y, sign(S r)>

The QJL term is unbiased because, for a Gaussian row s, E[sign(<s, r>) <s, y>] =
sqrt(2 / pi) <r, y> / ||r||; so the whole estimate is unbiased, where the mse-only
estimate is biased toward zero (quantization shrinks vectors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridgate.turboquant.codebook import lloyd_max
from hybridgate.turboquant.packing import pack, unpack
from hybridgate.turboquant.rotation import make_rotation


@dataclass
class MSECodes:
    packed: np.ndarray  # (n, ceil(d * bits / 8)) uint8
    norms: np.ndarray  # (n,) float32

    @property
    def nbytes(self) -> int:
        return self.packed.nbytes + self.norms.nbytes


class TurboQuantMSE:
    def __init__(self, d: int, bits: int, rotation: str = "dense", seed: int = 0) -> None:
        self.d = d
        self.bits = bits
        self.codebook = lloyd_max(bits, d)
        self.rotation = make_rotation(rotation, d, seed)
        self._sqrt_d = np.float32(np.sqrt(d))
        self._bounds = self.codebook.boundaries.astype(np.float32)
        self._centroids = (self.codebook.centroids / np.sqrt(d)).astype(np.float32)

    @property
    def bits_per_coordinate(self) -> float:
        """Honest storage per coordinate: the indices plus the float32 norm."""
        return self.bits + 32 / self.d

    def encode(self, x: np.ndarray) -> MSECodes:
        x = np.atleast_2d(np.asarray(x, dtype=np.float32))
        norms = np.linalg.norm(x, axis=1)
        unit = x / np.where(norms > 0, norms, 1)[:, None]
        t = self.rotation.apply(unit) * self._sqrt_d  # coordinates ~ N(0, 1)
        idx = np.searchsorted(self._bounds, t)  # cell of each coordinate
        return MSECodes(pack(idx, self.bits), norms.astype(np.float32))

    def decode(self, codes: MSECodes) -> np.ndarray:
        idx = unpack(codes.packed, self.d, self.bits)
        y = self._centroids[idx]  # back to the unit sphere's scale
        return self.rotation.invert(y) * codes.norms[:, None]


@dataclass
class ProdCodes:
    mse: MSECodes | None  # None at 1 bit: the sketch alone
    signs: np.ndarray  # (n, ceil(d / 8)) uint8: sign(S r) >= 0
    residual_norms: np.ndarray  # (n,) float32

    @property
    def nbytes(self) -> int:
        base = self.mse.nbytes if self.mse is not None else 0
        return base + self.signs.nbytes + self.residual_norms.nbytes


class TurboQuantProd:
    def __init__(self, d: int, bits: int, rotation: str = "dense", seed: int = 0) -> None:
        if bits < 1:
            raise ValueError("bits must be >= 1")
        self.d = d
        self.bits = bits
        self.mse = TurboQuantMSE(d, bits - 1, rotation, seed) if bits > 1 else None
        self.sketch = np.random.default_rng(seed + 1).standard_normal((d, d)).astype(
            np.float32)
        self._scale = np.float32(np.sqrt(np.pi / 2) / d)

    @property
    def bits_per_coordinate(self) -> float:
        base = self.mse.bits_per_coordinate if self.mse is not None else 0.0
        return base + 1 + 32 / self.d

    def _coarse(self, x: np.ndarray) -> tuple[MSECodes | None, np.ndarray]:
        if self.mse is None:
            return None, np.zeros_like(x)
        codes = self.mse.encode(x)
        return codes, self.mse.decode(codes)

    def encode(self, x: np.ndarray) -> ProdCodes:
        x = np.atleast_2d(np.asarray(x, dtype=np.float32))
        codes, x_mse = self._coarse(x)
        r = x - x_mse
        signs = (r @ self.sketch.T) >= 0
        return ProdCodes(codes, pack(signs.astype(np.uint8), 1),
                         np.linalg.norm(r, axis=1).astype(np.float32))

    def inner(self, y: np.ndarray, codes: ProdCodes) -> np.ndarray:
        """Unbiased estimates of <y_j, x_i>: (m, d) queries against n codes -> (m, n)."""
        y = np.atleast_2d(np.asarray(y, dtype=np.float32))
        base = (y @ self.mse.decode(codes.mse).T if codes.mse is not None and
                self.mse is not None else 0.0)
        s = unpack(codes.signs, self.d, 1).astype(np.float32) * 2 - 1  # +-1
        qjl = (y @ self.sketch.T) @ s.T  # <S y, sign(S r)>
        return base + self._scale * qjl * codes.residual_norms[None, :]
