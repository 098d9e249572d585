"""RFC 6962 / RFC 9162 Merkle trees over audit records: leaf and node hashes, a compact
frontier that extends a tree one leaf at a time, inclusion and consistency proofs, and
their verification. Standard library only, so an outside script can copy it whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def chain_hash(prev: bytes, leaf: bytes) -> bytes:
    """The hash chain's link: each record's hash covers the one before it."""
    return hashlib.sha256(prev + leaf).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()
GENESIS = bytes(32)  # the chain's "previous hash" before the first record


class Frontier:
    """The perfect subtrees a tree of ``size`` leaves decomposes into, left to right
    (one per set bit of ``size``): enough to add leaves and compute the root without
    the leaves themselves."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        self.size = size
        self.hashes = list(hashes)

    def add(self, leaf: bytes) -> None:
        self.hashes.append(leaf)
        self.size += 1
        n = self.size
        while n % 2 == 0:  # equal-sized neighbours merge, like a binary carry
            right = self.hashes.pop()
            self.hashes[-1] = node_hash(self.hashes[-1], right)
            n //= 2

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        r = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            r = node_hash(h, r)
        return r

    def to_hex(self) -> list[str]:
        return [h.hex() for h in self.hashes]

    @classmethod
    def from_hex(cls, size: int, hashes: Sequence[str]) -> Frontier:
        return cls(size, [bytes.fromhex(h) for h in hashes])


def _split(n: int) -> int:
    """The largest power of two below ``n`` (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Tree:
    """All leaves in memory, for proofs (the export and the checks)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = list(leaves)
        self.mth = lru_cache(maxsize=None)(self._mth)

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n == 1:
            return self.leaves[lo]
        k = _split(n)
        return node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def root(self, size: int) -> bytes:
        return self.mth(0, size)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """PATH(m, D[n]) of RFC 6962 section 2.1.1."""
        def path(m: int, lo: int, hi: int) -> list[bytes]:
            n = hi - lo
            if n <= 1:
                return []
            k = _split(n)
            if m < k:
                return [*path(m, lo, lo + k), self.mth(lo + k, hi)]
            return [*path(m - k, lo + k, hi), self.mth(lo, lo + k)]
        return path(index, 0, size)

    def consistency(self, old: int, new: int) -> list[bytes]:
        """PROOF(m, D[n]) of RFC 6962 section 2.1.2."""
        def sub(m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
            n = hi - lo
            if m == n:
                return [] if whole else [self.mth(lo, hi)]
            k = _split(n)
            if m <= k:
                return [*sub(m, lo, lo + k, whole), self.mth(lo + k, hi)]
            return [*sub(m - k, lo + k, hi, False), self.mth(lo, lo + k)]
        if old == 0 or old == new:
            return []
        return sub(old, 0, new, True)


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2 (sizes 0 < old <= new)."""
    if old == new:
        return not proof and old_root == new_root
    if old == 0 or old > new or not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
