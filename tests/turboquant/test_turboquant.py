"""TurboQuant against the paper's numbers (arXiv 2504.19874) and its own promises."""

from __future__ import annotations

import numpy as np
import pytest

from hybridgate.turboquant import TurboQuantMSE, TurboQuantProd, lloyd_max, pack, unpack

# Gaussian Lloyd-Max distortion for b = 1..4 (the d -> infinity limit). The paper rounds
# these to 0.36 / 0.117 / 0.03 / 0.009; its upper bound is (sqrt(3) * pi / 2) * 4^-b.
LLOYD = {1: 1 - 2 / np.pi, 2: 0.1175, 3: 0.03455, 4: 0.009497}
PAPER = {1: 0.36, 2: 0.117, 3: 0.03, 4: 0.009}


def unit(n, d, seed=0):
    # Data seeds stay clear of the quantizers' own seeds (0, 1, d): data drawn from the
    # same stream as the rotation would line up with it and quantize badly.
    x = np.random.default_rng(10_000 + seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_codebooks_match_the_paper():
    d = 1536
    assert lloyd_max(1, d).centroids == pytest.approx([-0.7979, 0.7979], abs=2e-3)
    assert lloyd_max(2, d).centroids == pytest.approx([-1.5104, -0.4528, 0.4528, 1.5104],
                                                      abs=2e-3)


@pytest.mark.parametrize("d", [64, 128, 256, 1536])
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_mse_distortion(d, bits):
    n = 3000 if d < 1536 else 1000
    q = TurboQuantMSE(d, bits, "hadamard" if d & (d - 1) == 0 else "dense", seed=d)
    x = unit(n, d, seed=bits)
    err = float(((x - q.decode(q.encode(x))) ** 2).sum(1).mean())
    assert err == pytest.approx(LLOYD[bits], rel=0.08)  # small d has lighter tails
    assert err < np.sqrt(3) * np.pi / 2 * 4.0 ** -bits  # the paper's upper bound
    if bits <= 2:
        assert err == pytest.approx(PAPER[bits], rel=0.05)


def test_norms_are_kept():
    q = TurboQuantMSE(128, 4)
    x = unit(200, 128) * 7.5
    norms = np.linalg.norm(q.decode(q.encode(x)), axis=1)
    assert norms.mean() == pytest.approx(7.5 * np.sqrt(1 - LLOYD[4]), rel=0.01)
    assert norms == pytest.approx(7.5, rel=0.06)


@pytest.mark.parametrize("bits", range(1, 9))  # 1, 2, 4, 8 unpack through a byte table
def test_packing_is_exact_and_dense(bits):
    rng = np.random.default_rng(bits)
    idx = rng.integers(0, 2 ** bits, size=(7, 77), dtype=np.uint8)
    packed = pack(idx, bits)
    assert packed.shape == (7, -(-77 * bits // 8))
    assert (unpack(packed, 77, bits) == idx).all()


def test_prod_is_unbiased_and_mse_is_not():
    d = 128
    x, y = unit(2000, d, 1), unit(40, d, 2)
    y = y + 2 * x[:40]  # correlated queries: large true inner products
    true = y @ x.T
    prod = TurboQuantProd(d, 2)
    est = prod.inner(y, prod.encode(x))
    mse = TurboQuantMSE(d, 2)
    est_mse = y @ mse.decode(mse.encode(x)).T
    big = np.abs(true) > 1
    # regression slope through the origin: 1 when unbiased, < 1 when shrunk toward 0
    slope = (est[big] @ true[big]) / (true[big] @ true[big])
    slope_mse = (est_mse[big] @ true[big]) / (true[big] @ true[big])
    assert slope == pytest.approx(1.0, abs=0.02)
    assert slope_mse < 0.97  # TurboQuant_mse shrinks by about (1 - D_mse)
    err = est - true
    assert abs(err.mean()) < 4 * err.std() / np.sqrt(err.size)  # mean error ~ 0


def test_bits_per_coordinate_is_honest():
    assert TurboQuantMSE(128, 3).bits_per_coordinate == pytest.approx(3.25)
    assert TurboQuantProd(128, 3).bits_per_coordinate == pytest.approx(3.5)
    codes = TurboQuantMSE(128, 3).encode(unit(10, 128))
    assert codes.nbytes == 10 * (128 * 3 // 8 + 4)


def test_hadamard_needs_power_of_two():
    with pytest.raises(ValueError, match="power-of-two"):
        TurboQuantMSE(1536, 2, "hadamard")
