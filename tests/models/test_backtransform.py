"""Like-for-like scoring of models fitted on log1p targets: every model's g/kg point prediction is the mean of its own
predictive distribution (the median beside it), checked on data where the two differ by a known factor."""

import numpy as np
import pytest
from scipy import integrate, stats

from sptgnn.distributions import LognormalForecast, QuantileForecast
from sptgnn.models.backtransform import duan_smearing, out_of_fold_residuals, smeared_forecast
from sptgnn.models.baselines import QuantileBaseline, TreeBaseline
from sptgnn.evaluate.crossval import cross_validate
from sptgnn.models.kriging import RegressionKriging
from sptgnn.splits import BlockKFold

SIGMA = 0.5  # log-scale noise: mean / median of 1 + SOC = exp(σ²/2) ≈ 1.13


@pytest.fixture(scope="module")
def lognormal_samples(samples_factory):
    s = samples_factory(n=400, seed=11, folds=None)
    rng = np.random.default_rng(4)
    f = 2.5 + 5.0 * (s.frame["NDVI"].to_numpy() - 0.5) + 0.04 * (s.frame["Altitude"].to_numpy() - 60)
    s.frame["soc_g_kg"] = np.expm1(f + rng.normal(0, SIGMA, len(s)))
    return s


def test_every_model_is_scored_by_the_mean_of_its_own_distribution(lognormal_samples, config_factory):
    from sptgnn.estimator.regressor import SpTGNNRegressor

    cfg = config_factory(train={"members": 1, "epochs": 25, "patience": 25}, calibration={"method": "none"})
    models = {
        "sptgnn": SpTGNNRegressor.from_config(cfg, area_of_applicability=False),
        "random_forest": TreeBaseline("random_forest", transform="log1p", trees=60),
        "xgboost": TreeBaseline("xgboost", transform="log1p"),
        "qrf": QuantileBaseline("qrf", transform="log1p", trees=60),
        "xgboost_quantile": QuantileBaseline("xgboost_quantile", transform="log1p"),
        "regression_kriging": RegressionKriging(transform="log1p", trees=40, neighbours=24),
    }
    res = cross_validate(models, lognormal_samples, BlockKFold(n_splits=4, block_size_km=0.5, seed=0),
                         moran_permutations=0)
    p = res.predictions
    for name in models:
        g = p[p["model"] == name]
        y, mean, median = g["y_true"].to_numpy(), g["mean"].to_numpy(), g["median"].to_numpy()
        ratio = float(np.mean((1 + mean) / (1 + median)))
        # each model's g/kg prediction is its distribution's mean, above its median by about the lognormal factor
        # exp(σ²/2) (each model estimates σ itself; before like-for-like scoring the tree models' ratio was 1)
        assert 1.05 < ratio < 1.40, (name, ratio)
        assert np.mean(mean > median) > 0.7, name  # a quantile forest's distribution may be left-skewed at a sample
        m = res.metrics[name]
        assert m["rmse"] == pytest.approx(np.sqrt(np.mean((y - mean) ** 2)), rel=1e-9)
        assert m["mae_median"] == pytest.approx(np.mean(np.abs(y - median)), rel=1e-9)


def test_smearing_by_hand():
    r = np.array([-0.5, 0.0, 0.5])
    factor = duan_smearing(r)
    assert factor == pytest.approx((np.exp(-0.5) + 1 + np.exp(0.5)) / 3)
    f = smeared_forecast(np.log1p([9.0, 19.0]), factor, sd_log=np.array([0.1, 0.2]))
    np.testing.assert_allclose(f.mean, [10 * factor - 1, 20 * factor - 1])
    np.testing.assert_allclose(f.median, [9.0, 19.0])
    np.testing.assert_allclose(f.sd, [10 * factor * 0.1, 20 * factor * 0.2])
    with pytest.raises(ValueError, match="finite"):
        duan_smearing(np.array([np.nan]))


def test_out_of_fold_residuals_use_oob_or_cross_fitting():
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold, cross_val_predict

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(80, 3)), rng.normal(size=80)
    forest = RandomForestRegressor(30, oob_score=True, random_state=0).fit(x, y)
    np.testing.assert_allclose(out_of_fold_residuals(forest, x, y), y - forest.oob_prediction_)
    lin = LinearRegression().fit(x, y)
    ref = y - cross_val_predict(LinearRegression(), x, y, cv=KFold(5, shuffle=True, random_state=3))
    np.testing.assert_allclose(out_of_fold_residuals(lin, x, y, seed=3), ref)
    # cross-fitted residuals are larger than in-sample ones
    assert np.mean(ref**2) > np.mean((y - lin.predict(x)) ** 2)


def test_lognormal_forecast_against_scipy():
    mu, s = np.array([2.0, 1.0]), np.array([0.5, 0.8])
    f = LognormalForecast(mu, s)
    ref = stats.lognorm(s=s, scale=np.exp(mu), loc=-1.0)
    y = np.array([6.0, 1.5])
    np.testing.assert_allclose(f.mean, ref.mean(), rtol=1e-12)
    np.testing.assert_allclose(f.median, ref.median(), rtol=1e-12)
    np.testing.assert_allclose(f.sd, ref.std(), rtol=1e-12)
    np.testing.assert_allclose(f.cdf(y), ref.cdf(y), rtol=1e-12)
    np.testing.assert_allclose(f.logpdf(y), ref.logpdf(y), rtol=1e-12)
    np.testing.assert_allclose(f.quantiles([0.1, 0.9]), np.stack([ref.ppf(0.1), ref.ppf(0.9)], 1), rtol=1e-12)
    # CRPS = ∫ (F(t) − 1{t ≥ y})² dt
    for i in range(2):
        d = stats.lognorm(s=s[i], scale=np.exp(mu[i]), loc=-1.0)
        lo = integrate.quad(lambda t: d.cdf(t) ** 2, -1, y[i])[0]
        hi = integrate.quad(lambda t: (1 - d.cdf(t)) ** 2, y[i], np.inf)[0]
        assert f.crps(y)[i] == pytest.approx(lo + hi, rel=1e-6)


def test_quantile_forecast_mean_is_the_integral_of_its_quantiles():
    levels = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    q = np.array([[1.0, 2.0, 3.0, 4.0, 10.0]])
    f = QuantileForecast(levels, q)
    # cells [0, .2], [.2, .4], [.4, .6], [.6, .8], [.8, 1]: equal weights
    assert f.mean[0] == pytest.approx(np.mean(q))
    assert f.median[0] == pytest.approx(3.0)
