"""CEG estimators recover a known compute multiplier from synthetic noisy curves (the issue's must-show test)."""

from __future__ import annotations

import numpy as np
import pytest

from shoestring.errors import ShoestringError
from shoestring.scaling import PowerLaw, ceg_curve, fit_power_laws, log_slope, readoff_ceg

TRUE = PowerLaw(E=2.0, A=4000.0, alpha=0.25)  # loss 6.0 at 1e12 FLOPs down to 2.4 at 1e16


def curves(multiplier: float, seed: int, noise: float = 0.003):
    rng = np.random.default_rng(seed)
    C = np.logspace(12, 16, 9)
    base = TRUE.loss(C) * (1 + noise * rng.standard_normal(C.shape))
    var = TRUE.loss(multiplier * C) * (1 + noise * rng.standard_normal(C.shape))  # the variant is `multiplier` x compute
    return C, base, var


@pytest.mark.parametrize("m", [1.5, 2.0, 3.5])
def test_fitted_ceg_recovers_a_known_multiplier_within_10_percent(m):
    got = []
    for seed in range(3):
        C, base, var = curves(m, seed)
        b, v = fit_power_laws([(C, base), (C, var)])
        got.append(float(np.median(ceg_curve(b, v, C[2:-2]))))
    assert np.mean(got) == pytest.approx(m, rel=0.10)
    C, base, var = curves(m, 0)
    b, v = fit_power_laws([(C, base), (C, var)])
    assert abs(log_slope(C, ceg_curve(b, v, C))) < 0.05  # a constant multiplier is compute-independent


def test_a_growing_gain_has_a_rising_slope():
    C = np.logspace(12, 16, 9)
    base = TRUE.loss(C)
    var = PowerLaw(E=2.0, A=4000.0 * 10 ** 0.6, alpha=0.3).loss(C)  # a steeper curve: its gain grows with compute
    b, v = fit_power_laws([(C, base), (C, var)])
    assert log_slope(C, ceg_curve(b, v, C)) > 0.1


def test_readoff_recovers_the_multiplier_and_says_never():
    C, base, var = curves(2.0, 1, noise=0.0)
    assert readoff_ceg(C, base, C, var) == pytest.approx(2.0, rel=0.05)
    assert np.isnan(readoff_ceg(C, base, C, base + 1.0))


def test_bad_curves_are_one_clear_error():
    with pytest.raises(ShoestringError, match="at least 3"):
        fit_power_laws([([1.0, 2.0], [3.0, 2.0])])
    with pytest.raises(ShoestringError, match="positive"):
        fit_power_laws([([1.0, 2.0, -3.0], [3.0, 2.0, 1.0])])


def test_bootstrap_interval_over_seeds_covers_the_truth():
    from shoestring.scaling import bootstrap_ceg

    runs = [curves(2.0, seed, noise=0.01) for seed in range(4)]
    C = runs[0][0]
    got = bootstrap_ceg(C, [r[1] for r in runs], [r[2] for r in runs], at=C[3:6], n_boot=60)
    assert (got["low"] <= 2.0).all() and (got["high"] >= 2.0).all()
    assert (got["high"] - got["low"] > 0).all() and (got["low"] > 1.2).all()  # an interval, and it excludes 1
    with pytest.raises(ShoestringError, match="at least 2 seeds"):
        bootstrap_ceg(C, [runs[0][1]], [runs[0][2]], at=C[3:6])
