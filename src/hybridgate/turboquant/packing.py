"""Pack b-bit indices densely: n vectors of d indices take ceil(d * b / 8) bytes each.

Bit j of index i lands at bit position i * b + j of the row (little-endian within
bytes), so unpacking is the exact inverse for any b in 1..8.
"""

from __future__ import annotations

import numpy as np


def pack(indices: np.ndarray, bits: int) -> np.ndarray:
    """(n, d) integer indices < 2^bits -> (n, ceil(d * bits / 8)) uint8."""
    idx = np.asarray(indices, dtype=np.uint8)
    n, d = idx.shape
    planes = (idx[:, :, None] >> np.arange(bits, dtype=np.uint8)) & 1  # (n, d, bits)
    return np.packbits(planes.reshape(n, d * bits), axis=1, bitorder="little")


def byte_table(values: np.ndarray, bits: int) -> np.ndarray:
    """(256, 8 // bits) table: the values of the indices one byte holds, in order, for a
    bit width that divides 8 (a byte's indices never straddle into the next byte)."""
    per = 8 // bits
    v = np.arange(256)[:, None] >> (np.arange(per) * bits)
    return np.asarray(values)[v & ((1 << bits) - 1)]


_INDEX_TABLES = {b: byte_table(np.arange(1 << b, dtype=np.uint8), b) for b in (1, 2, 4, 8)}


def unpack(packed: np.ndarray, d: int, bits: int) -> np.ndarray:
    """Inverse of ``pack``: (n, bytes) uint8 -> (n, d) uint8 indices."""
    n = packed.shape[0]
    if bits in _INDEX_TABLES:  # one table lookup per byte: ~70x faster than bit planes
        out = np.take(_INDEX_TABLES[bits], packed, axis=0).reshape(n, -1)
        return out if out.shape[1] == d else np.ascontiguousarray(out[:, :d])
    flat = np.unpackbits(packed, axis=1, count=d * bits, bitorder="little")
    planes = flat.reshape(n, d, bits).astype(np.uint8)
    return (planes << np.arange(bits, dtype=np.uint8)).sum(axis=2, dtype=np.uint8)
