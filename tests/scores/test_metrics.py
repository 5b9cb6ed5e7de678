"""Scores against scikit-learn, scoringrules, closed forms and esda."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scoringrules as sr
from esda.moran import Moran
from libpysal.weights import KNN
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error, r2_score

from sptgnn.scores.metrics import picp, residual_morans_i, score


@pytest.fixture
def forecast():
    rng = np.random.default_rng(0)
    n = 80
    y = rng.gamma(4, 4, n) + 1
    mean = y + rng.normal(0, 2, n)
    sd = rng.uniform(1, 4, n)
    coords = rng.uniform(0, 1000, (n, 2))
    return y, mean, sd, coords


def _crps_normal_closed_form(y, mu, sd):
    z = (y - mu) / sd
    return sd * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))


def test_point_scores_equal_sklearn(forecast):
    y, mean, sd, _ = forecast
    s = score(y, mean, sd)
    assert s["r2"] == pytest.approx(r2_score(y, mean), rel=1e-12)
    assert s["r2"] == pytest.approx(1 - np.sum((y - mean) ** 2) / np.sum((y - y.mean()) ** 2), rel=1e-12)
    assert s["rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, mean)), rel=1e-12)
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean((y - mean) ** 2)), rel=1e-12)
    assert s["mae"] == pytest.approx(mean_absolute_error(y, mean), rel=1e-12)
    assert s["mape"] == pytest.approx(100 * mean_absolute_percentage_error(y, mean), rel=1e-12)
    assert s["mape"] == pytest.approx(100 * np.mean(np.abs((y - mean) / y)), rel=1e-12)


def test_crps_equals_scoringrules_and_the_closed_form(forecast):
    y, mean, sd, _ = forecast
    s = score(y, mean, sd)
    assert s["crps"] == pytest.approx(float(np.mean(sr.crps_normal(y, mean, sd))), rel=1e-10)
    assert s["crps"] == pytest.approx(float(np.mean(_crps_normal_closed_form(y, mean, sd))), rel=1e-8)
    # a sharper, equally centred forecast has a lower CRPS when it is right
    assert score(y, y, sd / 10)["crps"] < score(y, y, sd)["crps"]


def test_nll_equals_scipy(forecast):
    y, mean, sd, _ = forecast
    expected = -np.mean(stats.norm.logpdf(y, mean, sd))
    assert score(y, mean, sd)["nll"] == pytest.approx(expected, rel=1e-12)


def test_picp90_of_a_calibrated_gaussian_is_about_ninety_percent():
    rng = np.random.default_rng(1)
    n = 200_000
    mean = rng.normal(0, 5, n)
    sd = rng.uniform(0.5, 3, n)
    y = mean + sd * rng.normal(size=n)
    s = score(y, mean, sd)
    assert s["picp90"] == pytest.approx(0.9, abs=0.005)
    assert picp(y, mean, sd, 0.5) == pytest.approx(0.5, abs=0.005)
    # a too narrow forecast under-covers, a too wide one over-covers
    assert picp(y, mean, sd / 2, 0.9) < 0.7
    assert picp(y, mean, sd * 2, 0.9) > 0.99


def test_picp_hand_count():
    y = np.array([0.0, 1.0, 1.7, -2.0])
    mean = np.zeros(4)
    sd = np.ones(4)
    # central 90 % interval: ±1.6449
    assert picp(y, mean, sd, 0.9) == 0.5


def test_point_forecast_has_crps_equal_mae_and_no_nll(forecast):
    y, mean, _, _ = forecast
    s = score(y, mean, None)
    assert s["crps"] == pytest.approx(mean_absolute_error(y, mean), rel=1e-12)
    assert s["crps"] == s["mae"]
    assert s["nll"] is None
    assert s["picp90"] is None
    # the CRPS of a Gaussian tends to the absolute error as its sd shrinks
    assert score(y, mean, np.full_like(y, 1e-9))["crps"] == pytest.approx(s["mae"], rel=1e-6)


def test_morans_i_of_residuals_equals_esda(forecast):
    y, mean, sd, coords = forecast
    s = score(y, mean, sd, coords, moran_k=6, moran_permutations=99)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = KNN(coords, k=6)
    w.transform = "r"
    expected = Moran(y - mean, w, permutations=0).I
    assert s["morans_i"] == pytest.approx(expected, abs=1e-12)
    assert 0 < s["morans_i_p"] <= 1
    assert s["morans_i_p"] >= 1 / 100


def test_moran_p_value_is_reproducible_and_detects_a_spatial_residual():
    rng = np.random.default_rng(2)
    coords = rng.uniform(0, 1000, (100, 2))
    smooth = np.sin(coords[:, 0] / 150) + np.cos(coords[:, 1] / 200)
    i1, p1 = residual_morans_i(smooth, coords, k=8, permutations=99)
    i2, p2 = residual_morans_i(smooth, coords, k=8, permutations=99)
    assert (i1, p1) == (i2, p2)
    assert i1 > 0.5
    assert p1 == pytest.approx(1 / 100)
    i0, p0 = residual_morans_i(smooth, coords, k=8, permutations=0)
    assert i0 == i1
    assert math.isnan(p0)


def test_moran_k_is_capped_for_few_samples():
    """With 4 samples k = 8 is capped at 3, so every sample's row-standardised weights are 1/3 on the other three and
    I = (1/3)((Σz)² − Σz²)/Σz² = −1/3 for any residuals (Σz = 0 after centring): a hand computation."""
    coords = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [7.0, 1.0]])
    i, _ = residual_morans_i(np.array([1.0, 2.0, 0.5, 3.0]), coords, k=8, permutations=0)
    assert i == pytest.approx(-1 / 3, rel=1e-12)


def test_no_coords_gives_no_morans_i(forecast):
    y, mean, sd, _ = forecast
    s = score(y, mean, sd)
    assert s["morans_i"] is None
    assert s["morans_i_p"] is None


@pytest.mark.parametrize(
    ("y", "mean", "sd", "fragment"),
    [
        (np.ones(3), np.ones(4), None, "equal length"),
        (np.ones((3, 1)), np.ones((3, 1)), None, "1-d"),
        (np.array([1.0, np.nan]), np.ones(2), None, "finite"),
        (np.ones(2), np.array([1.0, np.inf]), None, "finite"),
        (np.ones(2), np.ones(2), np.array([1.0, 0.0]), "positive"),
        (np.ones(2), np.ones(2), np.array([1.0, np.nan]), "positive"),
        (np.ones(2), np.ones(2), np.ones(3), "shaped"),
    ],
)
def test_invalid_inputs(y, mean, sd, fragment):
    with pytest.raises(ValueError, match=fragment):
        score(y, mean, sd)


def test_mean_error_and_ccc_against_hand_computations():
    y = np.array([10.0, 12.0, 20.0, 30.0])
    pred = np.array([11.0, 13.0, 19.0, 35.0])
    s = score(y, pred)
    # ME = mean(pred − y) = (1 + 1 − 1 + 5) / 4 = 1.5 g/kg; observed mean 18 → 8.333 %
    assert s["me"] == pytest.approx(1.5)
    assert s["me_percent"] == pytest.approx(100 * 1.5 / 18)
    # Lin (1989): 2 s_xy / (s_x² + s_y² + (x̄ − ȳ)²), moments over n
    xb, yb = 18.0, 19.5
    sxy = ((10 - xb) * (11 - yb) + (12 - xb) * (13 - yb) + (20 - xb) * (19 - yb) + (30 - xb) * (35 - yb)) / 4
    sx2 = ((10 - xb) ** 2 + (12 - xb) ** 2 + (20 - xb) ** 2 + (30 - xb) ** 2) / 4
    sy2 = ((11 - yb) ** 2 + (13 - yb) ** 2 + (19 - yb) ** 2 + (35 - yb) ** 2) / 4
    assert s["ccc"] == pytest.approx(2 * sxy / (sx2 + sy2 + (xb - yb) ** 2))
    # perfect agreement is 1; a constant offset lowers CCC but not the Pearson correlation
    assert score(y, y.copy())["ccc"] == pytest.approx(1.0)
    assert score(y, y + 5)["ccc"] < 1.0
    assert score(y, y + 5)["me"] == pytest.approx(5.0)
