"""The Merkle tree against RFC 6962's definitions: the frontier's root equals the
recursive tree hash at every size, and every inclusion and consistency proof verifies
while any altered one does not."""

from __future__ import annotations

import hashlib

from hybridgate.ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    Tree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, written as the RFC writes it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


LEAVES = [leaf_hash(f"record {i}".encode()) for i in range(40)]


def test_the_frontier_root_is_the_tree_hash_at_every_size():
    f = Frontier()
    assert f.root() == EMPTY_ROOT
    for n, leaf in enumerate(LEAVES, start=1):
        f.add(leaf)
        assert f.root() == mth(LEAVES[:n]), n
        again = Frontier.from_hex(f.size, f.to_hex())
        assert again.root() == f.root() and len(f.hashes) == bin(n).count("1")


def test_inclusion_proofs_verify_and_tampered_ones_do_not():
    tree = Tree(LEAVES)
    for size in (1, 2, 3, 7, 8, 13, 40):
        root = tree.root(size)
        assert root == mth(LEAVES[:size])
        for i in range(size):
            path = tree.inclusion(i, size)
            assert verify_inclusion(LEAVES[i], i, size, path, root)
            assert not verify_inclusion(leaf_hash(b"forged"), i, size, path, root)
            if path:
                bad = [bytes(32), *path[1:]]
                assert not verify_inclusion(LEAVES[i], i, size, bad, root)
            assert not verify_inclusion(LEAVES[i], (i + 1) % size, size, path, root) or \
                size == 1


def test_consistency_proofs_verify_and_tampered_ones_do_not():
    tree = Tree(LEAVES)
    for old in range(1, 41):
        for new in (old, old + 1, 17, 32, 40):
            if new < old or new > len(LEAVES):
                continue
            proof = tree.consistency(old, new)
            assert verify_consistency(old, new, tree.root(old), tree.root(new), proof), \
                (old, new)
            if new > old:
                other = Tree([*LEAVES[:old - 1], leaf_hash(b"rewritten"), *LEAVES[old:]])
                assert not verify_consistency(old, new, other.root(old), tree.root(new),
                                              proof)
