"""Mixed precision for outlier channels (the paper's KV-cache setting).

Some channels of key/value vectors carry much more energy than the rest. Quantize the
outlier channels and the others as two separate vectors, each with TurboQuant_mse (its
own rotation, codebook and norm), at different bit widths, e.g. for head dim 128:
32 outlier channels at 3 bits and 96 at 2 bits. Effective storage, norms included:

    bits per channel = (sum over groups of channels_g * bits_g + 32 * groups) / d
                     = (32 * 3 + 96 * 2 + 2 * 32) / 128 = 2.75
"""

from __future__ import annotations

import numpy as np

from hybridgate.turboquant.quantizer import MSECodes, TurboQuantMSE


class TurboQuantMixed:
    def __init__(self, d: int, outliers: np.ndarray, outlier_bits: int = 3,
                 bits: int = 2, rotation: str = "dense", seed: int = 0) -> None:
        self.d = d
        self.outliers = np.sort(np.asarray(outliers, dtype=np.int64))
        if len(np.unique(self.outliers)) != len(self.outliers) or (
                len(self.outliers) and (self.outliers.min() < 0 or self.outliers.max() >= d)):
            raise ValueError("outliers must be distinct channel indices in [0, d)")
        self.rest = np.setdiff1d(np.arange(d), self.outliers)
        # each non-empty group gets its own rotation (seed, seed + 1); no outliers: one group
        groups = [(ch, b) for ch, b in ((self.outliers, outlier_bits), (self.rest, bits))
                  if len(ch)]
        self.groups = [(ch, TurboQuantMSE(len(ch), b, rotation, seed + i))
                       for i, (ch, b) in enumerate(groups)]

    @classmethod
    def from_sample(cls, sample: np.ndarray, n_outliers: int, **kw: object) -> TurboQuantMixed:
        """Pick the channels with the largest mean magnitude in a sample of vectors."""
        energy = np.abs(np.asarray(sample, dtype=np.float32)).mean(axis=0)
        return cls(sample.shape[1], np.argsort(-energy)[:n_outliers], **kw)  # type: ignore[arg-type]

    @property
    def bits_per_coordinate(self) -> float:
        return sum(len(ch) * q.bits + 32 for ch, q in self.groups) / self.d

    def encode(self, x: np.ndarray) -> list[MSECodes]:
        x = np.atleast_2d(np.asarray(x, dtype=np.float32))
        return [q.encode(x[:, ch]) for ch, q in self.groups]

    def decode(self, codes: list[MSECodes]) -> np.ndarray:
        out = np.zeros((len(codes[0].norms), self.d), dtype=np.float32)
        for (ch, q), c in zip(self.groups, codes, strict=True):
            out[:, ch] = q.decode(c)
        return out
