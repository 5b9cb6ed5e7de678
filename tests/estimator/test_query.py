"""The cached-labelled-state query path equals the full-graph ensemble prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sptgnn.estimator.query import QueryPredictor
from sptgnn.train.ensemble import DeepEnsemble


@pytest.mark.parametrize("model", [
    {"label_inputs": True, "num_layers": 2, "linear_skip": True},
    {"label_inputs": False, "num_layers": 1},
])
def test_fast_path_equals_full_graph(split, config_factory, model):
    lab, query = split
    ens = DeepEnsemble(config_factory(model=model, train={"epochs": 3})).fit(lab)
    full = ens.predict(query)
    fast = QueryPredictor(ens, chunk=5).predict(query)  # several chunks
    np.testing.assert_allclose(fast.member_mean, full.member_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast.member_var, full.member_var, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast.mean, full.mean, rtol=1e-5, atol=1e-5)


def test_fast_path_geographic_and_arrays(geo_samples_factory, config_factory):
    s = geo_samples_factory(n=40)
    lab, query = s.subset(np.arange(30)), s.subset(np.arange(30, 40))
    ens = DeepEnsemble(config_factory(train={"epochs": 2})).fit(lab)
    full = ens.predict(query)
    pred = QueryPredictor(ens)
    np.testing.assert_allclose(pred.predict(query).mean, full.mean, rtol=1e-5, atol=1e-5)
    # the same queries given as raw feature arrays and coordinates (the raster path)
    feats = {c: query.frame[c].to_numpy() for c in query.feature_columns}
    q = pred.array_inputs(feats, query.xy(), elevation_column="Altitude")
    np.testing.assert_allclose(pred.predict_inputs(q).member_mean, full.member_mean, rtol=1e-5, atol=1e-5)


def test_arrays_with_dates(split, config_factory):
    lab, query = split
    ens = DeepEnsemble(config_factory(train={"epochs": 2})).fit(lab)
    feats = {c: query.frame[c].to_numpy() for c in query.feature_columns}
    pred = QueryPredictor(ens)
    q = pred.array_inputs(feats, query.xy(), dates=pd.Series(query.frame["date"]), elevation_column="Altitude")
    np.testing.assert_allclose(pred.predict_inputs(q).mean, ens.predict(query).mean, rtol=1e-5, atol=1e-5)


def test_fast_path_adds_the_trend_and_applies_the_calibrator(samples_factory, config_factory):
    s = samples_factory(n=80, seed=3)
    lab, query = s.subset(np.arange(64)), s.subset(np.arange(64, 80))
    config = config_factory(model={"trend": "random_forest", "trend_trees": 10}, train={"epochs": 3},
                            calibration={"method": "isotonic", "fraction": 0.3, "min_samples": 5, "blocks": 8})
    ens = DeepEnsemble(config).fit(lab)
    assert ens.trend is not None
    assert ens.calibrator is not None
    full = ens.predict(query, quantiles=[0.05, 0.95])
    pred = QueryPredictor(ens, chunk=7)
    fast = pred.predict(query)
    np.testing.assert_allclose(fast.mean, full.mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast.quantiles([0.05, 0.95]), full.quantile_values, rtol=1e-4, atol=1e-4)
    feats = {c: query.frame[c].to_numpy() for c in query.feature_columns}
    dates = None if query.date_column is None else pd.Series(query.frame[query.date_column])
    arrays = pred.predict_inputs(pred.array_inputs(feats, query.xy(), dates=dates, elevation_column=query.elevation))
    np.testing.assert_allclose(arrays.mean, full.mean, rtol=1e-5, atol=1e-5)
    assert not np.allclose(pred.predict(query, calibrated=False).quantiles([0.05]), full.quantile_values[:, :1])


def test_fast_path_clips_features_as_the_builder_does(split, config_factory):
    lab, query = split
    query = query.subset(np.arange(len(query)))
    column = query.feature_groups["environment"][0]
    query.frame[column] = query.frame[column] * 50.0  # far outside the training range: clipped at ±0.5 sd
    ens = DeepEnsemble(config_factory(graph={"feature_clip": 0.5}, train={"epochs": 2})).fit(lab)
    full = ens.predict(query)
    pred = QueryPredictor(ens)
    np.testing.assert_allclose(pred.predict(query).mean, full.mean, rtol=1e-5, atol=1e-5)
    feats = {c: query.frame[c].to_numpy() for c in query.feature_columns}
    dates = None if query.date_column is None else pd.Series(query.frame[query.date_column])
    arrays = pred.predict_inputs(pred.array_inputs(feats, query.xy(), dates=dates, elevation_column=query.elevation))
    np.testing.assert_allclose(arrays.mean, full.mean, rtol=1e-5, atol=1e-5)


def test_full_graph_mini_batch_and_cached_paths_give_one_prediction(split, config_factory):
    """The three ways to predict query nodes agree: the full graph, mini-batches of in-neighbour subgraphs
    (``train.batch_size``) and the cached labelled states of ``Run.predict`` (cross-validation, points, maps)."""
    from sptgnn.estimator.run import Run

    lab, query = split
    model = {"label_inputs": True, "num_layers": 2}
    ens = DeepEnsemble(config_factory(model=model, train={"batch_size": 8, "epochs": 3, "members": 2})).fit(lab)
    batched, cached = ens.predict(query), Run(ens).predict(query)
    ens.config = config_factory(model=model, train={"batch_size": None, "members": 2})  # same members, whole graph
    full = ens.predict(query)
    for other in (batched, cached):
        np.testing.assert_allclose(other.member_mean, full.member_mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(other.member_var, full.member_var, rtol=1e-5, atol=1e-5)


def test_spectral_features_reach_pixels_and_samples_alike(split, config_factory):
    """A run with ``graph.spectral_features`` queries the spectral relation in the same space whether a location comes
    as a sample or as raw columns (a raster pixel, a point table): the two paths give one set of inputs."""
    lab, query = split
    names = lab.feature_groups["environment"][:2]
    ens = DeepEnsemble(config_factory(graph={"spectral_features": names}, train={"epochs": 2})).fit(lab)
    pred = QueryPredictor(ens)
    feats = {c: query.frame[c].to_numpy() for c in query.feature_columns}
    dates = None if query.date_column is None else pd.Series(query.frame[query.date_column])
    arrays = pred.array_inputs(feats, query.xy(), dates=dates, elevation_column=query.elevation)
    samples = pred.inputs(query)
    assert arrays.spectral.shape == (len(query), 2)
    np.testing.assert_array_equal(arrays.spectral, samples.spectral)
    np.testing.assert_allclose(pred.predict_inputs(arrays).mean, pred.predict(query).mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(pred.predict(query).mean, ens.predict(query).mean, rtol=1e-5, atol=1e-5)
