import numpy as np
import pytest

from hybridgate.turboquant import TurboQuantMixed, TurboQuantMSE


def kv_like(n, d=128, n_out=32, seed=0):
    """Vectors whose first n_out channels carry 10x the scale of the rest."""
    rng = np.random.default_rng(30_000 + seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[:, :n_out] *= 10
    return x


def rel_err(x, xh):
    return float(((x - xh) ** 2).sum() / (x ** 2).sum())


def test_effective_bits_include_norms():
    q = TurboQuantMixed(128, np.arange(32), outlier_bits=3, bits=2)
    assert q.bits_per_coordinate == pytest.approx((32 * 3 + 96 * 2 + 2 * 32) / 128)  # 2.75


def test_outliers_found_from_a_sample_and_reconstructed():
    x = kv_like(3000)
    mixed = TurboQuantMixed.from_sample(x[:200], 32, outlier_bits=3, bits=2)
    assert set(mixed.outliers) == set(range(32))
    err_mixed = rel_err(x, mixed.decode(mixed.encode(x)))
    # each group is a TurboQuant_mse vector: relative errors near 0.0345 (3 bits) on the
    # outliers, which hold most of the energy, and 0.1175 (2 bits) on the rest
    share = 32 * 100 / (32 * 100 + 96)
    assert err_mixed == pytest.approx(share * 0.0345 + (1 - share) * 0.1175, rel=0.1)
    uniform = TurboQuantMSE(128, 2)  # 2.25 bits, but spends them evenly
    assert err_mixed < 0.5 * rel_err(x, uniform.decode(uniform.encode(x)))


def test_bad_outliers():
    with pytest.raises(ValueError):
        TurboQuantMixed(64, [1, 1, 2])
    with pytest.raises(ValueError):
        TurboQuantMixed(64, [70])
