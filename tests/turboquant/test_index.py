"""The compressed index: scores equal the codes' inner products, adds are online, recall."""

from __future__ import annotations

import numpy as np
import pytest

from hybridgate.turboquant import TurboQuantIndex, TurboQuantMSE, TurboQuantProd


def clustered(n, d=64, seed=0):
    rng = np.random.default_rng(20_000 + seed)
    centers = rng.standard_normal((20, d))
    return (centers[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, d))).astype(
        np.float32)


def recall(found, exact):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact, strict=True)])


# 4-bit and 2-bit codes (and prod's 4-bit part at 5 bits) decode a byte at a time
@pytest.mark.parametrize(("method", "bits"), [("mse", 3), ("mse", 4), ("mse", 2),
                                              ("prod", 3), ("prod", 5), ("prod", 1)])
def test_scores_are_the_codes_inner_products(method, bits):
    x, q = clustered(300), clustered(5, seed=1)
    index = TurboQuantIndex(64, bits, method)
    index.add(x)
    ref = TurboQuantProd(64, bits) if method == "prod" else TurboQuantMSE(64, bits)
    expected = (ref.inner(q, ref.encode(x)) if method == "prod"
                else q @ ref.decode(ref.encode(x)).T)
    assert index._scores(q) == pytest.approx(expected, abs=1e-3)


def test_online_adds_and_ids():
    x = clustered(2000)
    index = TurboQuantIndex(64, 4)
    index.add(x[:1000])
    ids = index.add(x[1000:], ids=np.arange(5000, 6000))
    assert len(index) == 2000 and ids[0] == 5000
    _, found = index.search(x[1500], k=1)
    assert found[0, 0] == 5500  # a vector added in the second batch is found


def test_recall_and_exact_rerank():
    x, q = clustered(5000), clustered(50, seed=2)
    exact = np.argsort(-(q @ x.T), axis=1)[:, :10]
    index = TurboQuantIndex(64, 4, keep_vectors=True)
    index.add(x)
    _, approx = index.search(q, 10)
    assert recall(approx, exact) > 0.6
    scores, reranked = index.search(q, 10, rerank=100)
    assert recall(reranked, exact) > 0.97
    assert scores[:, 0] == pytest.approx(np.sort(q @ x.T, axis=1)[:, -1], rel=1e-4)


def test_memory_is_the_codes():
    index = TurboQuantIndex(64, 4)
    index.add(clustered(1000))
    assert index.nbytes == 1000 * (64 * 4 // 8 + 4)  # 36 bytes a vector instead of 256


def test_bad_use():
    index = TurboQuantIndex(64, 2)
    assert index.search(clustered(2), 5)[1].shape == (2, 0)
    with pytest.raises(ValueError, match="dimensions"):
        index.add(np.zeros((3, 32), np.float32))
    index.add(clustered(100))
    with pytest.raises(ValueError, match="keep_vectors"):
        index.search(clustered(1), 5, rerank=50)


def test_inverted_file_keeps_recall_and_scores_few_rows():
    x, q = clustered(6000), clustered(50, seed=3)
    flat = TurboQuantIndex(64, 4)
    ivf = TurboQuantIndex(64, 4, lists=32, train_at=2000, nprobe=4)
    for part in np.array_split(x, 6):  # trained once 2,000 are in; later adds are filed
        flat.add(part)
        ivf.add(part)
    assert ivf.centroids is not None and sum(m.n for m in ivf._members) == 6000
    _, a = flat.search(q, 10)
    _, b = ivf.search(q, 10)
    assert recall(b, a) > 0.9
    assert len(ivf._candidates(q[:1], None)) < 6000 / 2  # only the probed lists


@pytest.mark.parametrize("lists", [0, 16])
def test_delete_compact_and_tags(lists):
    x = clustered(3000)
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # a vector's own nearest is itself
    index = TurboQuantIndex(64, 4, lists=lists, train_at=1000)
    index.add(x[:1500], tags=1)
    index.add(x[1500:], tags=2)
    _, found = index.search(x[10], k=1, tag=2)
    assert found[0, 0] >= 1500  # only rows of that tag
    assert index.delete([10, 11, 2000]) == 3 and len(index) == 2997
    _, found = index.search(x[10], k=5, tag=1)
    assert 10 not in found[0] and 11 not in found[0]
    index.compact()
    assert len(index) == 2997 and index._ids.n == 2997
    if lists:  # every live row in exactly one list, at its new position
        rows = np.sort(np.concatenate([m.view for m in index._members]))
        assert (rows == np.arange(2997)).all()
    _, found = index.search(x[12], k=1, tag=1)
    assert found[0, 0] == 12  # ids survive the compaction
    _, found = index.search(x[2001], k=1)
    assert found[0, 0] == 2001


def test_a_growing_inverted_file_doubles_its_lists_and_keeps_recall():
    x, q = clustered(6000), clustered(50, seed=4)
    flat = TurboQuantIndex(64, 4)
    grow = TurboQuantIndex(64, 4, lists=32, train_at=150, nprobe=4, per_list=16)
    sizes = []
    for part in np.array_split(x, 60):  # 100 at a time
        flat.add(part)
        grow.add(part)
        sizes.append(0 if grow.centroids is None else len(grow.centroids))
    # untrained below 150 rows; then one list per 16 rows, retrained at each doubling
    # (200 rows: 12 lists, 400: 25, 800: the most, 32)
    assert sizes[:8] == [0, 12, 12, 25, 25, 25, 25, 32] and set(sizes[8:]) == {32}
    assert grow._pending == []  # the raw vectors are dropped once the lists are all in
    rows = np.sort(np.concatenate([m.view for m in grow._members]))
    assert (rows == np.arange(6000)).all()  # every row in exactly one list
    _, a = flat.search(q, 10)
    _, b = grow.search(q, 10)
    once = TurboQuantIndex(64, 4, lists=32, train_at=800, nprobe=4)  # the same last training
    for part in np.array_split(x, 60):
        once.add(part)
    _, c = once.search(q, 10)
    assert recall(b, a) > 0.85 and abs(recall(b, a) - recall(c, a)) < 0.03
    assert len(grow._candidates(q[:1], None)) < 6000 / 2  # only the probed lists


def test_short_lists_are_probed_until_min_rows():
    x = clustered(2000)
    few = TurboQuantIndex(64, 4, lists=64, train_at=2000, nprobe=2)
    more = TurboQuantIndex(64, 4, lists=64, train_at=2000, nprobe=2, min_rows=600)
    few.add(x)
    more.add(x)
    assert len(few._candidates(x[:1], None)) < 300 <= 600 <= len(more._candidates(x[:1], None))
