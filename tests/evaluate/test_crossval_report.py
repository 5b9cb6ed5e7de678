"""Cross-validation runner on configurable splits, r2_log and per-fold scores, regression kriging, the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import r2_score

from sptgnn.distributions import Prediction
from sptgnn.models.baselines import TreeBaseline
from sptgnn.evaluate.crossval import cross_validate, cross_validate_config
from sptgnn.models.kriging import RegressionKriging, fit_variogram
from sptgnn.evaluate.reports import write_report
from sptgnn.train.target import TargetTransform


def test_mean_log_is_the_members_log_space_mean_behind_their_lognormal_moments():
    rng = np.random.default_rng(0)
    m, v = rng.normal(0, 1, (3, 50)), rng.uniform(0.01, 0.5, (3, 50))
    t = TargetTransform("log1p").fit(np.exp(rng.normal(2, 1, 100)))
    loc, var = t.gaussian_space(m, v)
    pred = Prediction.from_gaussian_space(loc, np.sqrt(var), log1p=True)
    # invert the members' lognormal moments by hand: v = log(1 + Var / (1 + E)²), m = log(1 + E) − v / 2
    one = 1 + pred.member_mean
    v_log = np.log1p(pred.member_var / one**2)
    np.testing.assert_allclose(pred.mean_log, (np.log(one) - v_log / 2).mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(pred.mean_log, (m * t.scale + t.mean).mean(0), rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def cv(config_factory, samples_factory):
    samples = samples_factory(n=80, folds=None)
    cfg = config_factory(evaluate={"baselines": ["xgboost", "regression_kriging"], "split": "blocks", "block_size_km": 0.5,
                                   "n_folds": 4, "moran_permutations": 0, "forest_trees": 20},
                         train={"members": 2, "epochs": 3})
    return samples, cfg, cross_validate_config(samples, cfg)


def test_every_model_sees_the_same_blocked_folds(cv):
    samples, cfg, res = cv
    pred = res.predictions
    assert set(pred["model"]) == {"sptgnn", "xgboost", "regression_kriging"}
    by_model = {m: dict(zip(g["sample_id"], g["fold"])) for m, g in pred.groupby("model")}
    assert by_model["sptgnn"] == by_model["xgboost"] == by_model["regression_kriging"]
    cells = np.floor(samples.metric_coords() / 500.0)
    fold_of = by_model["sptgnn"]
    folds = np.array([fold_of[s] for s in samples.sample_ids])
    for c in np.unique(cells, axis=0):  # a 500 m block never spans two folds
        assert len(set(folds[(cells == c).all(1)])) == 1
    assert [f["n_test"] for f in res.folds]
    assert sum(f["n_test"] for f in res.folds) == len(samples)


def test_r2_log_and_per_fold_scores(cv):
    _, _, res = cv
    for name, m in res.metrics.items():
        g = res.predictions[res.predictions["model"] == name]
        assert m["r2_log"] == pytest.approx(r2_score(np.log1p(g["y_true"]), g["mean_log"]), rel=1e-9)
        assert set(m["per_fold"]) == {str(f) for f in g["fold"].unique()}
        for fold, scores in m["per_fold"].items():
            gf = g[g["fold"] == int(fold)]
            assert scores["n"] == len(gf)
            assert scores["rmse"] == pytest.approx(np.sqrt(np.mean((gf["y_true"] - gf["mean"]) ** 2)), rel=1e-9)
    # log1p baselines: the median is expm1(mean_log), the mean lies above it (smearing); both are scored
    xg = res.predictions[res.predictions["model"] == "xgboost"]
    np.testing.assert_allclose(xg["median"], np.expm1(xg["mean_log"]), rtol=1e-9)
    assert (xg["mean"] > xg["median"]).all()
    assert res.metrics["xgboost"]["r2_median"] == pytest.approx(r2_score(xg["y_true"], xg["median"]), rel=1e-9)
    assert res.gates is not None
    assert len(res.gates) == 80
    assert res.stream_usage
    assert sum(res.stream_usage.values()) == pytest.approx(1.0)


def test_report_lists_every_model_and_writes_figures(cv, tmp_path):
    samples, cfg, res = cv
    metrics = {"dataset": "synthetic", "target": "soc_g_kg", "n_samples": len(samples), "n_folds": 4, "members": 2,
               "split": {"split": "blocks", "block_size_km": 0.5}, "fold_sizes": res.folds, "models": res.metrics,
               "stream_usage": res.stream_usage}
    path = write_report(tmp_path, metrics, res.predictions)
    text = path.read_text()
    for name in ("sptgnn", "xgboost", "regression_kriging", "R² log", "0.5 km blocks"):
        assert name in text
    for fig in ("pred_vs_obs.png", "residual_map.png", "per_fold_r2_log.png"):
        assert (tmp_path / fig).stat().st_size > 1000
        assert f"]({fig})" in text


def test_variogram_separates_noise_from_structure():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 100_000, (600, 2))
    noise = fit_variogram(xy, rng.normal(0, 1, 600))
    assert noise["nugget"] / noise["sill"] > 0.7  # no spatial structure: mostly nugget
    smooth = np.sin(xy[:, 0] / 20_000) + np.cos(xy[:, 1] / 25_000) + rng.normal(0, 0.05, 600)
    field = fit_variogram(xy, smooth)
    assert field["nugget"] / field["sill"] < 0.2


def test_regression_kriging_recovers_a_spatial_residual(samples_factory):
    s = samples_factory(n=150, folds=None)
    xy = s.metric_coords()
    # a target with a covariate trend plus a smooth spatial field the covariates do not explain
    trend = 2 * s.frame["NDVI"].to_numpy()
    field = np.sin((xy[:, 0] - xy[:, 0].min()) / 300) * np.cos((xy[:, 1] - xy[:, 1].min()) / 400)
    s.frame["soc_g_kg"] = 10 + trend + 3 * field
    test = np.zeros(len(s), bool)
    test[::4] = True
    train, tst = s.subset(~test), s.subset(test)
    y = tst.target()
    rk = RegressionKriging(trees=50, neighbours=24).fit(train).predict_dist(tst)
    rf = TreeBaseline("random_forest", trees=50).fit(train).predict_dist(tst)
    rmse = lambda p: np.sqrt(np.mean((y - p) ** 2))  # noqa: E731
    assert rmse(rk.mean) < 0.7 * rmse(rf.mean)
    assert rk.sd is not None
    assert (rk.sd > 0).all()
    logged = RegressionKriging(transform="log1p", trees=20, neighbours=24).fit(train).predict_dist(tst)
    np.testing.assert_allclose(logged.median, np.expm1(logged.mean_log))
    np.testing.assert_allclose(logged.mean, np.exp(logged.mean_log + logged.sd_log**2 / 2) - 1)
    pd.testing.assert_index_equal(pd.Index(range(len(y))), pd.RangeIndex(len(logged.mean)))


def test_regression_kriging_gives_the_nugget_variance_at_a_training_location(samples_factory):
    # repeated samples of a plot: a test sample at a training sample's location must not get the exact interpolator's
    # zero variance (random folds of clustered data scored NLL ~1e10 that way)
    s = samples_factory(n=120, folds=None)
    rng = np.random.default_rng(0)
    s.frame["soc_g_kg"] = 10 + 2 * s.frame["NDVI"].to_numpy() + rng.normal(0, 1.0, len(s))
    train, tst = s.subset(np.arange(len(s)) >= 20), s.subset(np.arange(len(s)) < 20)
    tst.frame.geometry = train.frame.geometry.iloc[:20].to_numpy()  # at training locations
    rk = RegressionKriging(trees=30, neighbours=24).fit(train).predict_dist(tst)
    assert (rk.sd > 0.05).all()
    assert np.isfinite(rk.sd).all()
    assert (rk.sd < 10).all()



def test_metrics_say_what_each_fold_chose(samples_factory, config_factory):
    """model.trend: auto decides per fold from the training fold; metrics.json records the decision per fold."""
    from sptgnn.estimator.regressor import SpTGNNRegressor
    from sptgnn.splits import BlockKFold

    s = samples_factory(n=60, seed=3)
    cfg = config_factory(model={"trend": "auto", "trend_min_r2": -10.0, "trend_trees": 10},
                         train={"members": 1, "epochs": 2})
    res = cross_validate({"sptgnn": SpTGNNRegressor.from_config(cfg, area_of_applicability=False)}, s,
                         BlockKFold(3, block_size_km=0.5), moran_permutations=0)
    chosen = res.metrics["sptgnn"]["choices_per_fold"]
    assert set(chosen) == {"1", "2", "3"}
    assert all(c["trend"] == "random_forest" and c["trend_oof_r2"] > -10 for c in chosen.values())
