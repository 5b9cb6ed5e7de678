"""One contract for SpTGNN and every baseline: what cross_validate relies on (fit, predict_dist, clone, seeds) and what
the leak-free design promises (a query's forecast does not depend on the other queries)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from sptgnn import SamplesError, SpTGNNRegressor, cross_validate
from sptgnn.models.baselines import QuantileBaseline, TreeBaseline
from sptgnn.models.kriging import RegressionKriging
from sptgnn.models.kriging_prior import KrigingPriorForest
from sptgnn.splits import BlockKFold

MODELS = {
    "sptgnn": SpTGNNRegressor(members=2, epochs=5, patience=3, hidden=16, num_layers=1, num_experts=3, heads=2, k_spatial=4,
                              k_spectral=3, k_elevation=2, area_of_applicability=False),
    "xgboost": TreeBaseline("xgboost"),
    "random_forest": TreeBaseline("random_forest", trees=30),
    "xgboost+xy": TreeBaseline("xgboost+xy"),
    "random_forest+xy": TreeBaseline("random_forest+xy", trees=30, transform="log1p"),
    "qrf": QuantileBaseline("qrf"),
    "xgboost_quantile": QuantileBaseline("xgboost_quantile"),
    "regression_kriging": RegressionKriging(trees=30, neighbours=16),
    "kpr_random_forest": KrigingPriorForest(trees=30, neighbours=16, transform="log1p"),
    "qrf_log1p": QuantileBaseline("qrf", transform="log1p", trees=30),
}


@pytest.fixture(scope="module")
def data(samples_factory):
    s = samples_factory(n=70, seed=9)
    return s.subset(np.arange(56)), s.subset(np.arange(56, 70))


@pytest.fixture(scope="module", params=list(MODELS))
def fitted(request, data):
    train, _ = data
    calls = []
    model = clone(MODELS[request.param])
    assert model.fit(train, progress=calls.append) is model
    return request.param, model, calls


def test_fit_reports_progress_and_predict_dist_gives_moments(fitted, data):
    name, model, calls = fitted
    _, test = data
    assert calls, f"{name} never called progress"
    f = model.predict_dist(test)
    assert np.shape(f.mean) == (len(test),)
    assert np.isfinite(f.mean).all()
    assert f.sd is None or (np.shape(f.sd) == (len(test),) and (np.asarray(f.sd) > 0).all())
    assert f.mean_log is None or np.shape(f.mean_log) == (len(test),)


def test_a_query_does_not_depend_on_the_other_queries(fitted, data):
    name, model, _ = fitted
    _, test = data
    whole = model.predict_dist(test).mean
    order = np.random.default_rng(0).permutation(len(test))
    np.testing.assert_allclose(model.predict_dist(test.subset(order)).mean, whole[order], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict_dist(test.subset(order[:3])).mean, whole[order[:3]], rtol=1e-5, atol=1e-6)


def test_clone_refits_to_the_same_forecast(fitted, data):
    name, model, _ = fitted
    train, test = data
    again = clone(model)
    assert again.get_params() == model.get_params()
    assert again is not model
    np.testing.assert_allclose(again.fit(train).predict_dist(test).mean, model.predict_dist(test).mean, rtol=1e-6)


@pytest.mark.parametrize("name", list(MODELS))
def test_a_missing_target_is_a_samples_error(name, data):
    train, _ = data
    model = clone(MODELS[name]).set_params(target="clay_percent")
    with pytest.raises(SamplesError, match="clay_percent"):
        model.fit(train)


def test_cross_validate_scores_every_model_on_the_same_folds(samples_factory):
    s = samples_factory(n=70, seed=9, folds=None)
    res = cross_validate(MODELS, s, BlockKFold(3, block_size_km=0.5), moran_permutations=0)
    assert set(res.metrics) == set(MODELS)
    by_model = {m: dict(zip(g["sample_id"], g["fold"])) for m, g in res.predictions.groupby("model")}
    assert all(v == by_model["sptgnn"] for v in by_model.values())
    assert len(by_model["sptgnn"]) == len(s)
    assert res.gates is not None
    assert len(res.gates) == len(s)


class _MeanModel:
    """A user's model with only fit and predict_dist (no hooks, no scikit-learn base): the training mean."""

    def __init__(self):
        self.mean_ = None

    def get_params(self, deep=True):
        return {}

    def set_params(self, **params):
        return self

    def fit(self, samples, progress=None):
        self.mean_ = float(samples.target("soc_g_kg").mean())
        return self

    def predict_dist(self, samples):
        from sptgnn.distributions import MomentForecast

        return MomentForecast(np.full(len(samples), self.mean_), None)


def test_a_model_with_only_fit_and_predict_dist_is_scored_like_the_others(data):
    train, test = data
    samples = train.subset(np.arange(len(train)))
    result = cross_validate({"mean": _MeanModel(), "xgboost": TreeBaseline("xgboost")}, samples,
                            BlockKFold(3, block_size_km=0.5))
    rows = result.predictions[result.predictions["model"] == "mean"]
    assert len(rows) == len(samples)
    for fold, group in rows.groupby("fold"):  # each fold forecasts its own training mean
        train_mean = samples.subset(~np.isin(samples.sample_ids, group["sample_id"])).target("soc_g_kg").mean()
        np.testing.assert_allclose(group["mean"], train_mean)
    assert "choices_per_fold" not in result.metrics["mean"]


def test_an_object_without_predict_dist_is_refused_by_name(data):
    train, _ = data
    with pytest.raises(TypeError, match=r"model 'broken' \(object\) needs fit\(samples, progress=None\) and predict_dist"):
        cross_validate({"broken": object()}, train, BlockKFold(3, block_size_km=0.5))
