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


# -- auto: calibration that does no harm ---------------------------------------------------------------------------------
def test_auto_keeps_a_candidate_that_helps_on_held_out_parts():
    pred, y = _skewed(0, 300, log1p=True)  # intervals 1.7× too narrow
    cal = Calibrator.fit("auto", pred, y)
    sel = cal.selection
    assert cal.method == sel["chosen"] != "identity"
    base, kept = sel["scores"]["identity"], sel["scores"][cal.method]
    assert kept["calibration_error"] < base["calibration_error"]
    assert kept["crps"] <= 1.01 * base["crps"]
    # the kept one has the lowest held-out calibration error of those that qualify
    qualifying = [m for m, s in sel["scores"].items() if m != "identity" and s["calibration_error"] < base["calibration_error"]
                  and s["crps"] <= 1.01 * base["crps"]]
    assert kept["calibration_error"] == min(sel["scores"][m]["calibration_error"] for m in qualifying)
    # it is the same calibrator as fitting that method on the whole part
    direct = Calibrator.fit(cal.method, pred, y)
    np.testing.assert_allclose(cal.apply(pred).quantiles([0.05, 0.95]), direct.apply(pred).quantiles([0.05, 0.95]))
    np.testing.assert_allclose(cal.apply(pred).mean, pred.mean, rtol=1e-10)


def test_auto_held_out_score_of_identity_is_the_raw_forecasts():
    from sptgnn.distributions.pit import calibration_scores

    pred, y = _skewed(2, 120, log1p=False)
    sel = Calibrator.fit("auto", pred, y).selection
    assert sel["scores"]["identity"]["calibration_error"] == pytest.approx(calibration_scores(pred.cdf(y))[0], abs=1e-6)
    assert sel["scores"]["identity"]["crps"] == pytest.approx(float(np.mean(pred.crps(y))), rel=1e-5)


def test_auto_falls_back_to_identity_when_no_candidate_qualifies():
    pred, y = _skewed(0, 200, log1p=False)
    cal = Calibrator.select(pred, y, crps_tolerance=-1.0)  # no candidate can lower the CRPS below zero
    assert cal.method == "identity"
    assert cal.selection["chosen"] == "identity"
    assert cal.apply(pred) is pred
    again = Calibrator.from_state(cal.state())
    assert again.method == "identity"
    assert again.selection == cal.selection


def test_auto_leaves_a_forecast_alone_whose_miscalibration_is_within_chance():
    from sptgnn.distributions.calibration import chance_calibration_error
    from sptgnn.distributions.pit import calibration_scores

    rng = np.random.default_rng(5)
    loc, scale = rng.normal(20.0, 3.0, (3, 60)), rng.uniform(0.5, 2.5, (3, 60))
    pred = Prediction.from_gaussian_space(loc, scale, log1p=False)
    m = rng.integers(0, 3, 60)
    y = loc[m, np.arange(60)] + scale[m, np.arange(60)] * rng.normal(size=60)  # drawn from the forecast itself
    assert calibration_scores(pred.cdf(y))[0] < chance_calibration_error(60)
    cal = Calibrator.fit("auto", pred, y)
    assert cal.method == "identity"
    assert "within chance" in cal.selection["reason"]
    # the same data with the gate off may pick a candidate fitted to noise; the gate is what keeps identity
    assert Calibrator.select(pred, y, evidence=None).selection["chance_calibration_error"] is None


def test_chance_calibration_error_shrinks_like_one_over_root_n():
    from sptgnn.distributions.calibration import chance_calibration_error

    small, large = chance_calibration_error(50, 0.5), chance_calibration_error(800, 0.5)
    assert small / large == pytest.approx(4.0, rel=0.15)  # sqrt(800 / 50)


@pytest.mark.parametrize("method", ["isotonic", "conformal"])
def test_the_mapped_mean_in_chunks_of_queries_is_the_mean_in_one_pass(method, monkeypatch):
    """Chunking bounds memory (an isotonic map has about as many knots as calibration samples); it changes nothing."""
    import sptgnn.distributions.mixture as mixture

    pred_cal, y_cal = _skewed(0, 300, True)
    pit_map = Calibrator.fit(method, pred_cal, y_cal).pit_map
    raw, _ = _skewed(2, 50, True)
    whole = raw.mapped_mean(pit_map)
    monkeypatch.setattr(mixture, "MAPPED_MEAN_CELLS", 3 * np.size(pit_map.x) * 2 * 7)  # chunks of 7 queries
    np.testing.assert_array_equal(raw.mapped_mean(pit_map), whole)
