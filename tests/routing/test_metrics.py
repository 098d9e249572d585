import numpy as np
import pytest

from hybridgate.routing.metrics import curve, oracle_scores, random_curve

# four questions: weak right on 0 and 1; strong right on 0, 2 and 3
WEAK = np.array([1, 1, 0, 0], bool)
STRONG = np.array([1, 0, 1, 1], bool)


def test_curve_by_hand():
    # weak acc 0.5, strong acc 0.75; scores send 2, then 3, then 1, then 0 strong
    c = curve(np.array([0.1, 0.5, 0.9, 0.8]), WEAK, STRONG)
    # accuracies after 0..4 strong calls: .5, .75, 1.0, .75, .75 -> PGR 0, 1, 2, 1, 1
    assert c.pgr.tolist() == pytest.approx([0, 1, 2, 1, 1])
    assert c.apgr == pytest.approx((0.5 + 1.5 + 1.5 + 1) / 4)
    assert c.cpt(0.5) == 0.25 and c.cpt(2.0) == 0.5


def test_random_and_oracle():
    assert random_curve(WEAK, STRONG).apgr == pytest.approx(0.5)
    o = curve(oracle_scores(WEAK, STRONG), WEAK, STRONG)
    # the two questions only strong gets right go first: PGR 1 after one, 2 after both
    assert o.cpt(1.0) == 0.25 and o.cpt(2.0) == 0.5
