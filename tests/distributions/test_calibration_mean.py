"""Calibration changes the spread, never the mean (DESIGN.md rule 9): for every method and target transform the
recalibrated forecast's mean in target units equals the uncalibrated mixture's, checked against the mean of the
recalibrated distribution integrated by hand from its quantile function (``E[Y] = ∫₀¹ Q(p) dp``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sptgnn.distributions import Prediction
from sptgnn.distributions.calibration import Calibrator

METHODS = ("variance", "isotonic", "isotonic_central", "conformal")


def _skewed(seed: int, n: int, log1p: bool):
    """An ensemble of 3 members and observations from the same mixture widened 1.7× and shifted (miscalibrated)."""
    rng = np.random.default_rng(seed)
    loc = rng.normal(2.8 if log1p else 20.0, 0.25 if log1p else 3.0, (3, n))
    scale = rng.uniform(0.15, 0.45, (3, n)) if log1p else rng.uniform(0.5, 2.5, (3, n))
    pred = Prediction.from_gaussian_space(loc, scale, log1p)
    m = rng.integers(0, 3, n)
    g = loc[m, np.arange(n)] + 0.1 * scale.mean() + 1.7 * scale[m, np.arange(n)] * rng.normal(size=n)
    return pred, (np.expm1(g) if log1p else g)


def _mean_by_quantile_integral(pred: Prediction, num: int = 400_000) -> np.ndarray:
    """``∫₀¹ Q(p) dp`` by the midpoint rule on ``num`` levels (the hand computation), ``(n,)``."""
    levels = (np.arange(num) + 0.5) / num
    return pred.quantiles(levels).mean(1)


@pytest.mark.parametrize("log1p", [False, True], ids=["none", "log1p"])
@pytest.mark.parametrize("method", METHODS)
def test_calibrated_mean_equals_the_uncalibrated_mean(method, log1p):
    pred_cal, y_cal = _skewed(0, 300, log1p)
    cal = Calibrator.fit(method, pred_cal, y_cal)
    raw, _ = _skewed(1, 4, log1p)
    out = cal.apply(raw)
    assert cal.factor != pytest.approx(1.0, abs=0.05) if method == "variance" else cal.pit_map is not None
    np.testing.assert_allclose(out.mean, raw.mean, rtol=1e-10)  # the reported point prediction
    # the mean of the distribution that is scored (quantiles, CRPS, PICP) is the same number
    np.testing.assert_allclose(_mean_by_quantile_integral(out), raw.mean, rtol=2e-3)
    # the recalibrated distribution is not the raw one: the spread did change
    lo, hi = out.interval(0.9)
    lo_raw, hi_raw = raw.interval(0.9)
    assert np.abs((hi - lo) / (hi_raw - lo_raw) - 1).max() > 0.1


@pytest.mark.parametrize("log1p", [False, True], ids=["none", "log1p"])
def test_the_uncorrected_pit_map_would_have_moved_the_mean(log1p):
    """The reference case the shift corrects: the map alone moves the mean (else the test above could not fail)."""
    pred_cal, y_cal = _skewed(0, 300, log1p)
    cal = Calibrator.fit("isotonic", pred_cal, y_cal)
    raw, _ = _skewed(1, 4, log1p)
    unshifted = raw.uncalibrated()
    unshifted.recalibration = cal.pit_map
    assert np.abs(_mean_by_quantile_integral(unshifted) / raw.mean - 1).max() > 5e-3


def test_variance_scaling_of_a_lognormal_by_hand():
    """One member, ``log(1 + Y) ~ N(μ, σ²)`` scaled by ``c``: ``σ' = cσ`` and ``μ' = μ + σ²/2 − c²σ²/2`` keep
    ``E[Y] = exp(μ + σ²/2) − 1``; the median becomes ``expm1(μ')``."""
    mu, sigma, c = np.array([[2.5, 3.0]]), np.array([[0.3, 0.5]]), 1.48
    out = Prediction.from_gaussian_space(mu, sigma, log1p=True).scaled(c)
    mu_hand = mu + sigma**2 / 2 - (c * sigma) ** 2 / 2
    np.testing.assert_allclose(out.member_loc, mu_hand, rtol=1e-12)
    np.testing.assert_allclose(out.member_scale, c * sigma, rtol=1e-12)
    np.testing.assert_allclose(out.mean, np.exp(mu + sigma**2 / 2)[0] - 1, rtol=1e-12)
    np.testing.assert_allclose(out.median, np.expm1(mu_hand[0]), rtol=1e-8)
    lo, hi = out.interval(0.9)
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(hi, np.expm1(mu_hand[0] + z * c * sigma[0]), rtol=1e-8)
    np.testing.assert_allclose(lo, np.expm1(mu_hand[0] - z * c * sigma[0]), rtol=1e-8)


def test_symmetric_map_keeps_the_median_of_a_gaussian():
    """A central (symmetric) map on a symmetric forecast needs no shift: the median stays where it was."""
    pred_cal, y_cal = _skewed(0, 300, False)
    cal = Calibrator.fit("isotonic_central", pred_cal, y_cal)
    raw = Prediction.from_gaussian_space(np.array([[10.0, 20.0]]), np.array([[1.0, 2.0]]), log1p=False)
    out = cal.apply(raw)
    np.testing.assert_allclose(out.loc_shift, 0.0, atol=1e-9)
    np.testing.assert_allclose(out.median, [10.0, 20.0], atol=1e-8)
