"""Baselines on the shared protocol: features (with coordinates for ``+xy``), the random forest's tree spread as sd,
point forecasts, and the same forecast through ``clone`` (what cross-validation does per fold)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestRegressor
from xgboost import XGBRegressor

from sptgnn.models.baselines import BASELINES, TreeBaseline, baseline_features, make_regressor


@pytest.fixture
def folds(samples):
    test = samples.folds == 1
    return samples.subset(~test), samples.subset(test)


def test_features_are_the_stream_columns_plus_coordinates(samples):
    plain = baseline_features(samples, with_xy=False)
    xy = baseline_features(samples, with_xy=True)
    assert plain.shape == (60, len(samples.feature_columns)) == (60, 5)
    assert xy.shape == (60, 5 + 2)
    np.testing.assert_array_equal(plain, samples.frame[["B02", "B04", "NDVI", "Slope", "Altitude"]].to_numpy())
    np.testing.assert_array_equal(xy[:, :5], plain)
    np.testing.assert_array_equal(xy[:, 5:], samples.xy())


@pytest.mark.parametrize("name", BASELINES)
def test_each_baseline_sees_features_plus_two_coordinates_for_xy(folds, name):
    train, test = folds
    model = TreeBaseline(name, seed=0, trees=25).fit(train)
    res = model.predict_dist(test)
    expected = 5 + (2 if name.endswith("+xy") else 0)
    assert model.model_.n_features_in_ == expected
    assert res.mean.shape == (len(test),)
    assert np.isfinite(res.mean).all()
    np.testing.assert_allclose(res.mean, model.model_.predict(baseline_features(test, name.endswith("+xy"))), rtol=1e-6)
    np.testing.assert_allclose(clone(model).fit(train).predict_dist(test).mean, res.mean, rtol=1e-12)  # seeded: same forecast


def test_xgboost_is_a_point_forecast(folds):
    train, test = folds
    model = TreeBaseline("xgboost+xy").fit(train)
    assert isinstance(model.model_, XGBRegressor)
    assert model.predict_dist(test).sd is None


def test_random_forest_sd_is_the_tree_spread_plus_the_out_of_bag_noise(folds):
    train, test = folds
    model = TreeBaseline("random_forest", seed=3, trees=25).fit(train)
    res = model.predict_dist(test)
    assert isinstance(model.model_, RandomForestRegressor)
    x = baseline_features(test, False)
    trees = np.array([t.predict(x) for t in model.model_.estimators_])
    assert trees.shape == (25, len(test))
    oob_mse = np.mean((train.target() - model.model_.oob_prediction_) ** 2)
    np.testing.assert_allclose(res.sd, np.sqrt(trees.std(axis=0, ddof=0) ** 2 + oob_mse), rtol=1e-12)
    np.testing.assert_allclose(res.mean, trees.mean(axis=0), rtol=1e-10)
    assert (res.sd > 0).all()


def test_log1p_fits_the_log_target_and_back_transforms(folds):
    train, test = folds
    logged = TreeBaseline("random_forest", transform="log1p", seed=1, trees=25).fit(train)
    res = logged.predict_dist(test)
    raw = logged.model_.predict(baseline_features(test, False))
    np.testing.assert_allclose(res.mean_log, raw)
    ref = RandomForestRegressor(25, random_state=1, n_jobs=1, oob_score=True).fit(baseline_features(train, False),
                                                                                   np.log1p(train.target()))
    np.testing.assert_allclose(res.mean_log, ref.predict(baseline_features(test, False)))
    # the median is expm1 of the log prediction, the mean Duan's smearing with the forest's out-of-bag residuals
    np.testing.assert_allclose(res.median, np.expm1(raw))
    smear = np.mean(np.exp(np.log1p(train.target()) - ref.oob_prediction_))
    np.testing.assert_allclose(res.mean, np.exp(raw) * smear - 1, rtol=1e-10)
    assert smear > 1
    assert (res.mean > res.median).all()


def test_coordinates_help_when_the_target_is_a_function_of_position(samples_factory):
    """The +xy variant really uses the coordinates: with a target that is pure position, it beats the plain model."""
    from sptgnn.data.samples import SoilSamples

    s = samples_factory(n=200, seed=5)
    frame = s.frame.copy()
    x = (s.xy()[:, 0] - s.xy()[:, 0].min()) / 2000
    frame["soc_g_kg"] = 10 + 8 * (x > 0.5)
    frame["B02"] = frame["B04"] = frame["NDVI"] = frame["Slope"] = frame["Altitude"] = np.random.default_rng(0).normal(size=200)
    s = SoilSamples(frame=frame, targets=["soc_g_kg"], feature_groups=s.feature_groups, name="xy")
    train, test = s.subset(np.arange(200) % 4 != 0), s.subset(np.arange(200) % 4 == 0)
    y = test.target()
    err = {n: np.abs(TreeBaseline(n, trees=50).fit(train).predict_dist(test).mean - y).mean()
           for n in ("random_forest", "random_forest+xy")}
    assert err["random_forest+xy"] < 0.5 * err["random_forest"]


def test_regressor_seeds_and_unknown_names():
    assert make_regressor("xgboost", seed=4).get_params()["random_state"] == 4
    assert make_regressor("random_forest+xy", seed=4).random_state == 4
    assert make_regressor("random_forest", trees=7, max_features=0.5).get_params()["n_estimators"] == 7
    with pytest.raises(ValueError, match="unknown baseline 'lightgbm'"):
        make_regressor("lightgbm")


def test_random_forest_intervals_are_sane_with_a_single_covariate(samples_factory):
    """The tree spread alone covers 56 % at the nominal 90 % here; with the out-of-bag noise added, 91 %."""
    from scipy.stats import norm

    from sptgnn.data.samples import SoilSamples

    s = samples_factory(n=400, seed=8)
    rng = np.random.default_rng(1)
    frame = s.frame.copy()
    frame["soc_g_kg"] = 10 + 20 * frame["NDVI"] + rng.normal(0, 2.0, len(frame))
    one = SoilSamples(frame=frame, targets=["soc_g_kg"], feature_groups={"imagery": ["NDVI"], "environment": []},
                      name="one-covariate")
    train, test = one.subset(np.arange(300)), one.subset(np.arange(300, 400))
    f = TreeBaseline("random_forest", trees=100).fit(train).predict_dist(test)
    y = test.target()
    half = norm.ppf(0.95) * f.sd
    picp = np.mean(np.abs(y - f.mean) <= half)
    assert 0.8 <= picp <= 0.98


def test_qrf_honours_forest_size_and_the_target_transform(folds):
    from quantile_forest import RandomForestQuantileRegressor

    from sptgnn.models.baselines import MEAN_GRID, QUANTILE_LEVELS, QuantileBaseline

    train, test = folds
    model = QuantileBaseline("qrf", transform="log1p", trees=40, max_features=0.5, seed=2).fit(train)
    assert model.model_.n_estimators == 40
    assert model.model_.max_features == 0.5
    ref = RandomForestQuantileRegressor(n_estimators=40, max_features=0.5, random_state=2, n_jobs=1).fit(
        baseline_features(train, False), np.log1p(train.target()))
    x = baseline_features(test, False)
    f = model.predict_dist(test)
    # quantiles follow the monotone back-transform exactly; the mean is that of the distribution in g/kg
    np.testing.assert_allclose(f.values, np.sort(np.expm1(ref.predict(x, quantiles=list(QUANTILE_LEVELS))), 1))
    np.testing.assert_allclose(f.mean, np.expm1(ref.predict(x, quantiles=list(MEAN_GRID))).mean(1))
    np.testing.assert_allclose(f.mean_log, ref.predict(x, quantiles="mean"))
