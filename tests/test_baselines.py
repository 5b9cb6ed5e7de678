"""Baselines: features (with coordinates for ``+xy``), the random forest's tree spread as sd, point forecasts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor
from xgboost import XGBRegressor

import sptgnn.evaluate.baselines as baselines
from sptgnn.evaluate.baselines import BASELINES, baseline_features, fit_predict_baseline, make_regressor


@pytest.fixture
def captured(monkeypatch):
    """Baselines with few trees (fast) whose fitted regressors are kept for inspection."""
    models = []
    original = baselines.make_regressor

    def small(name, seed=0):
        model = original(name, seed)
        model.set_params(n_estimators=25)
        models.append(model)
        return model

    monkeypatch.setattr(baselines, "make_regressor", small)
    return models


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
def test_each_baseline_sees_features_plus_two_coordinates_for_xy(captured, folds, name):
    train, test = folds
    res = fit_predict_baseline(name, train, test, "soc_g_kg", seed=0)
    model = captured[-1]
    expected = 5 + (2 if name.endswith("+xy") else 0)
    assert model.n_features_in_ == expected
    assert res.mean.shape == (len(test),)
    assert np.isfinite(res.mean).all()
    assert res.fit_seconds >= 0
    np.testing.assert_allclose(res.mean, model.predict(baseline_features(test, name.endswith("+xy"))), rtol=1e-6)


def test_xgboost_is_a_point_forecast(captured, folds):
    train, test = folds
    res = fit_predict_baseline("xgboost+xy", train, test, "soc_g_kg")
    assert isinstance(captured[-1], XGBRegressor)
    assert res.sd is None


def test_random_forest_sd_is_the_tree_spread(captured, folds):
    train, test = folds
    res = fit_predict_baseline("random_forest", train, test, "soc_g_kg", seed=3)
    model = captured[-1]
    assert isinstance(model, RandomForestRegressor)
    x = baseline_features(test, False)
    trees = np.array([t.predict(x) for t in model.estimators_])
    assert trees.shape == (25, len(test))
    np.testing.assert_allclose(res.sd, np.maximum(trees.std(axis=0, ddof=0), 1e-6), rtol=1e-12)
    np.testing.assert_allclose(res.mean, trees.mean(axis=0), rtol=1e-10)
    assert (res.sd > 0).all()


def test_coordinates_help_when_the_target_is_a_function_of_position(monkeypatch, samples_factory):
    """The +xy variant really uses the coordinates: with a target that is pure position, it beats the plain model."""
    from sptgnn.data.samples import SoilSamples

    s = samples_factory(n=200, seed=5)
    frame = s.frame.copy()
    x = (s.xy()[:, 0] - s.xy()[:, 0].min()) / 2000
    frame["soc_g_kg"] = 10 + 8 * (x > 0.5)
    frame["B02"] = frame["B04"] = frame["NDVI"] = frame["Slope"] = frame["Altitude"] = np.random.default_rng(0).normal(size=200)
    s = SoilSamples(frame=frame, targets=["soc_g_kg"], feature_groups=s.feature_groups, name="xy")
    train, test = s.subset(np.arange(200) % 4 != 0), s.subset(np.arange(200) % 4 == 0)
    original = baselines.make_regressor
    monkeypatch.setattr(baselines, "make_regressor", lambda n, seed=0: original(n, seed).set_params(n_estimators=50))
    y = test.target()
    err = {n: np.abs(fit_predict_baseline(n, train, test, "soc_g_kg").mean - y).mean() for n in ("random_forest", "random_forest+xy")}
    assert err["random_forest+xy"] < 0.5 * err["random_forest"]


def test_regressor_seeds_and_unknown_names():
    assert make_regressor("xgboost", seed=4).get_params()["random_state"] == 4
    assert make_regressor("random_forest+xy", seed=4).random_state == 4
    with pytest.raises(ValueError, match="unknown baseline 'lightgbm'"):
        make_regressor("lightgbm")
