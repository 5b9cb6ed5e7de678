"""Profile layers in the graph: a layer is never the neighbour of a layer of its own site (the leakage rule of
profiles: a query profile is predicted from other sites' labelled layers only, and training sees the same), and with
``graph.depth_scale_m`` a layer's neighbours are layers of nearby profiles at similar depths."""

from __future__ import annotations

from dataclasses import replace

import geopandas as gpd
import numpy as np
import pytest

from sptgnn.graph.builder import GraphBuilder
from sptgnn.graph.relations import RelationIndex
from sptgnn.train.ensemble import DeepEnsemble


def _profiles(samples_factory, sites: int = 20, layers: int = 4):
    base = samples_factory(sites * layers, seed=7, folds=None)
    frame = base.frame.copy()
    first = np.repeat(np.arange(sites) * layers, layers)
    frame = frame.set_geometry(gpd.points_from_xy(frame.geometry.x.to_numpy()[first],
                                                  frame.geometry.y.to_numpy()[first]), crs=frame.crs)
    frame["site"] = [f"p{i // layers}" for i in range(len(frame))]
    frame["top"] = np.tile([0.0, 10.0, 30.0, 60.0][:layers], sites)
    frame["bottom"] = np.tile([10.0, 30.0, 60.0, 100.0][:layers], sites)
    frame["soc_g_kg"] = frame["soc_g_kg"] * np.exp(-frame["top"] / 40.0)  # SOC falls with depth
    return replace(base, frame=frame, site="site", depth=("top", "bottom"))


def test_no_edge_joins_two_layers_of_one_site():
    rng = np.random.default_rng(0)
    coords = np.repeat(rng.uniform(0, 1000, (10, 2)), 3, axis=0)  # 10 sites of 3 layers at one point each
    sites = np.repeat(np.arange(10), 3)
    index = RelationIndex(["spatial"], {"spatial": 4}, 4, geographic=False).fit(coords, sites=sites)
    src, dst, dist = index.edges(coords, exclude_self=True)["spatial"]
    assert np.bincount(dst, minlength=30).tolist() == [4] * 30
    assert not np.any(sites[src] == sites[dst])
    assert (dist > 0).all()  # the same site's layers (distance 0) are never chosen
    plain = RelationIndex(["spatial"], {"spatial": 4}, 4, geographic=False).fit(coords)
    src, dst, _ = plain.edges(coords, exclude_self=True)["spatial"]
    assert np.any(sites[src] == sites[dst])  # without sites, a layer's nearest neighbours are its own profile's


def test_a_query_of_a_labelled_site_is_not_attached_to_its_own_layers():
    coords = np.repeat(np.array([[0.0, 0.0], [10.0, 0.0], [500.0, 0.0]]), 2, axis=0)
    sites = np.repeat(["a", "b", "c"], 2)
    index = RelationIndex(["spatial"], {"spatial": 2}, 2, geographic=False).fit(coords, sites=sites)
    idx, _ = index.query(np.array([[0.0, 0.0]]), sites=np.array(["a"]))["spatial"]
    assert sorted(idx[0].tolist()) == [2, 3]  # site b's layers, not a's
    idx, _ = index.query(np.array([[0.0, 0.0]]))["spatial"]  # a map pixel belongs to no site
    assert sorted(idx[0].tolist()) == [0, 1]


def test_depth_joins_the_relation_coordinates(samples_factory, config_factory):
    samples = _profiles(samples_factory)
    graph = config_factory(graph={"depth_scale_m": 100.0, "relations": ["spatial"], "k_spatial": 4}).graph
    builder = GraphBuilder(graph).fit(samples)
    src, dst, _ = builder.labelled_edges("spatial")
    top = samples.frame["top"].to_numpy()
    site = samples.sites()
    assert not np.any(site[src] == site[dst])
    same_depth = np.mean(top[src] == top[dst])
    flat = GraphBuilder(graph.model_copy(update={"depth_scale_m": None})).fit(samples)
    s2, d2, _ = flat.labelled_edges("spatial")
    assert same_depth > 0.9  # with depth as a coordinate, neighbours are layers of the same depth
    assert same_depth > np.mean(top[s2] == top[d2]) + 0.3


def test_perturbing_the_label_of_a_querys_own_site_leaves_its_prediction_unchanged(samples_factory, config_factory):
    """The leakage rule, tested by perturbing a label: a query layer's prediction does not move when the labels of
    its own site's labelled layers change (they are never its neighbours), and does move for a neighbour site's."""
    samples = _profiles(samples_factory)
    labelled = samples.subset(np.arange(len(samples)) % 4 != 3)  # the deepest layer of every site is the query
    query = samples.subset(np.arange(len(samples)) % 4 == 3)
    config = config_factory(model={"label_inputs": True}, train={"epochs": 3, "members": 1},
                            graph={"relations": ["spatial"], "k_spatial": 4, "depth_scale_m": 10.0})
    ens = DeepEnsemble(config).fit(labelled)
    before = ens.predict(query).mean
    frame = ens.builder.labelled.frame
    own = np.flatnonzero(frame["site"].to_numpy() == "p0")
    frame.loc[own, "soc_g_kg"] = frame.loc[own, "soc_g_kg"] * 50.0
    after = ens.predict(query).mean
    assert after[0] == pytest.approx(before[0], rel=1e-9)  # p0's deepest layer: its own labels unused
    assert not np.allclose(after, before)  # some other site's query has p0's layers as neighbours


def test_the_estimator_and_a_saved_run_keep_the_profiles(samples_factory, config_factory, tmp_path):
    from sptgnn import SpTGNNRegressor, load_run

    samples = _profiles(samples_factory, sites=12)
    config = config_factory(train={"epochs": 2, "members": 1}, graph={"depth_scale_m": 10.0})
    est = SpTGNNRegressor.from_config(config).fit(samples)
    assert est.run_.labelled.site == "site"
    assert est.run_.labelled.depth == ("top", "bottom")
    assert est.run_.ensemble.builder.uses_depth
    run = load_run(est.save(tmp_path / "run").path)
    assert run.labelled.site == "site"
    assert run.labelled.depth == ("top", "bottom")
    np.testing.assert_array_equal(run.predict(samples).mean, est.run_.predict(samples).mean)


def test_a_profile_run_predicts_the_layer_asked_for(samples_factory, config_factory):
    from sptgnn import SpTGNNRegressor
    from sptgnn.estimator.run import RunError
    from sptgnn.predict.points import PredictError, predict_points

    samples = _profiles(samples_factory, sites=16)
    config = config_factory(train={"epochs": 3, "members": 1}, graph={"depth_scale_m": 10.0})
    config = config.updated(data={"target": "soc_g_kg"})
    samples.feature_groups["environment"] += ["top", "bottom"]  # depth as a covariate, as the profile configs do
    run = SpTGNNRegressor.from_config(config).fit(samples).run_
    assert "top" not in run.needed  # rasters and point tables need not hold the depth columns
    points = samples.frame.iloc[::4].drop(columns=["top", "bottom"])
    shallow, _ = predict_points(run, points, depth=(0, 10))
    deep, _ = predict_points(run, points, depth=(60, 100))
    assert not np.allclose(shallow["soc_mean"], deep["soc_mean"])
    values = {f: points[f].to_numpy(float) for f in run.needed}
    xy = np.c_[points.geometry.x, points.geometry.y]
    dates = points[samples.date_column]
    np.testing.assert_allclose(run.predict_arrays(values, xy, dates, depth=(0, 10))["mean"], shallow["soc_mean"])
    own, _ = predict_points(run, samples.frame.iloc[::4])  # each point's own depth columns: the 0-10 cm layers
    np.testing.assert_allclose(own["soc_mean"], shallow["soc_mean"], rtol=1e-12)
    several, _ = predict_points(run, points, depth=[(0, 10), (60, 100)])  # one column set per layer
    np.testing.assert_allclose(several["soc_mean_0-10cm"], shallow["soc_mean"], rtol=1e-12)
    np.testing.assert_allclose(several["soc_sd_60-100cm"], deep["soc_sd"], rtol=1e-12)
    assert "soc_mean" not in several and "aoa_60-100cm" in several
    gsm, _ = predict_points(run, points)  # no depth columns, no interval: the six GlobalSoilMap layers
    assert [c for c in gsm.columns if c.startswith("soc_mean_")] == [
        "soc_mean_0-5cm", "soc_mean_5-15cm", "soc_mean_15-30cm", "soc_mean_30-60cm", "soc_mean_60-100cm",
        "soc_mean_100-200cm"]
    np.testing.assert_allclose(gsm["soc_mean_5-15cm"], predict_points(run, points, depth=(5, 15))[0]["soc_mean"])
    with pytest.raises(PredictError, match="the bottom must lie below the top"):
        predict_points(run, points, depth=[(0, 10), (30, 10)])
    with pytest.raises(RunError, match="the bottom must lie below the top"):
        run.predict_arrays(values, xy, depth=(30, 10))


def test_a_profile_map_has_one_band_set_per_layer(samples_factory, config_factory, tmp_path):
    import rasterio

    from helpers import X0, Y0, write_tif
    from sptgnn import SpTGNNRegressor
    from sptgnn.predict.raster import predict_raster

    samples = _profiles(samples_factory, sites=12)
    samples.feature_groups["environment"] += ["top", "bottom"]
    config = config_factory(train={"epochs": 2, "members": 1}, graph={"depth_scale_m": 10.0})
    run = SpTGNNRegressor.from_config(config).fit(samples).run_
    bands = ["B02", "B04", "NDVI", "Slope", "Altitude"]
    rng = np.random.default_rng(0)
    f = samples.frame
    data = np.stack([np.full((6, 5), f[b].mean()) + rng.normal(0, f[b].std() / 4, (6, 5)) for b in bands])
    tif = write_tif(tmp_path / "cov.tif", data, 400.0, descriptions=bands)
    out = tmp_path / "map.tif"
    predict_raster(run, [tif], out, quicklook=False, depth=[(0, 10), (30, 60)])
    with rasterio.open(out) as src:
        names = list(src.descriptions)
        assert names[:8] == [f"{b}_0-10cm" for b in run.map_bands][:8]
        assert names[len(run.map_bands)] == "mean_30-60cm" and len(names) == 2 * len(run.map_bands)
        assert src.tags()["depth_cm"] == "0-10,30-60"
        deep = src.read(names.index("mean_30-60cm") + 1)
        shallow = src.read(1)
    x = X0 + 400.0 * (np.arange(5) + 0.5)
    y = Y0 - 400.0 * (np.arange(6) + 0.5)
    xx, yy = np.meshgrid(x, y)
    values = {b: data[i].ravel().astype(np.float32).astype(float) for i, b in enumerate(bands)}
    expected = run.predict_arrays(values, np.c_[xx.ravel(), yy.ravel()], depth=(30, 60))["mean"]
    np.testing.assert_allclose(deep.ravel(), expected, rtol=1e-5)
    assert not np.allclose(deep, shallow)
