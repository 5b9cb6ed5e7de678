"""kNNDM folds (Linnenbrink et al. 2024): distances against brute force, CAST's fold assignment, the paper's check
that clustered samples get folds matching the prediction area better than random folds, the domain readers and the
config path into cross-validation."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from helpers import X0, Y0, write_tif
from scipy.spatial.distance import cdist
from shapely.geometry import box

from sptgnn.splits import SplitError
from sptgnn.splits.domain import knndm_folds, polygon_points, raster_points
from sptgnn.splits.knndm import _merge, cv_distances, knndm


def _clustered(n_clusters=10, per=20, seed=0, extent=100_000.0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, extent, (n_clusters, 2))
    return np.concatenate([c + rng.normal(0, extent / 100, (per, 2)) for c in centres])


def _grid(extent=100_000.0, n=40):
    g = (np.arange(n) + 0.5) * extent / n
    return np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)


def test_cv_distances_are_the_nearest_sample_in_another_fold():
    rng = np.random.default_rng(1)
    X, folds = rng.normal(size=(60, 2)), rng.integers(1, 4, 60)
    d = cdist(X, X)
    d[folds[:, None] == folds[None, :]] = np.inf
    np.testing.assert_allclose(cv_distances(X, folds), d.min(1))


def test_merge_keeps_big_clusters_alone_and_deals_the_rest_along_pc1():
    # 10 samples, k = 2: cluster 0 (6 samples >= n/k) is a fold; clusters 1..4 (1 each) all go to the other fold
    X = np.r_[np.zeros((6, 2)), [[1, 0], [2, 0], [3, 0], [4, 0]]]
    labels = np.array([0] * 6 + [1, 2, 3, 4])
    folds = _merge(labels, X, np.array([1.0, 0.0]), 2)
    assert len(set(folds[:6])) == 1
    assert len(set(folds[6:])) == 1
    assert folds[0] != folds[6]
    # k = 3, no big cluster: clusters dealt 1, 2, 3, 1, ... in the order of their centroids along pc1
    labels = np.array([3, 0, 2, 1, 4, 5])
    folds = _merge(labels, np.c_[labels.astype(float), np.zeros(6)], np.array([1.0, 0.0]), 3)
    np.testing.assert_array_equal(folds, [(c % 3) + 1 for c in labels])


def test_clustered_samples_get_folds_that_match_the_prediction_area_better_than_random():
    X, area = _clustered(), _grid()
    res = knndm(X, area, k=5, seed=0)
    assert res.clusters is not None
    assert sorted(np.unique(res.folds)) == [1, 2, 3, 4, 5]
    assert res.W < 0.5 * res.W_random  # Fig. 3-type check: kNNDM's W well below random folds'
    assert np.bincount(res.folds).max() / len(X) <= 0.5
    assert np.median(res.Gjstar) > 3 * np.median(res.Gj)  # test samples are now far from their training samples


def test_samples_as_spread_as_the_area_keep_random_folds():
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 100_000, (200, 2))
    res = knndm(X, _grid(), k=5, seed=3)
    assert res.clusters is None
    assert res.W == res.W_random
    assert sorted(np.bincount(res.folds)[1:]) == [40] * 5


def test_too_few_samples_and_an_empty_domain_are_refused():
    with pytest.raises(SplitError, match="at least k \\+ 2"):
        knndm(np.zeros((5, 2)), _grid(), k=5)
    with pytest.raises(SplitError, match="no point"):
        knndm(_clustered(), np.zeros((0, 2)), k=5)


def test_domain_points_of_a_raster_and_of_polygons(tmp_path):
    data = np.ones((100, 80), dtype="float32")
    data[:50] = -9999.0  # the upper half is nodata
    write_tif(tmp_path / "d.tif", data, 100.0, nodata=-9999.0, descriptions=["elev"])
    xy, values, _ = raster_points(tmp_path / "d.tif", 400, ["elev"])
    assert 300 <= len(xy) <= 500
    assert (values == 1).all()
    assert (xy[:, 1] < Y0 - 50 * 100.0).all()  # only valid (lower-half) cells
    gpd.GeoDataFrame(geometry=[box(X0, Y0 - 2000, X0 + 1000, Y0)], crs="EPSG:32633").to_file(tmp_path / "p.gpkg")
    xy, _ = polygon_points(tmp_path / "p.gpkg", 200)
    assert 150 <= len(xy) <= 250
    assert (xy[:, 0] > X0).all()
    assert (xy[:, 0] < X0 + 1000).all()
    assert (xy[:, 1] > Y0 - 2000).all()


def test_knndm_folds_of_samples_for_a_raster_domain(samples_factory, tmp_path):
    samples = samples_factory(80, extent=2_000.0)  # 2 km square, inside a 20 km domain: extrapolation
    write_tif(tmp_path / "d.tif", np.ones((200, 200), "float32"), 100.0, origin=(X0 - 9000, Y0 + 11000))
    res = knndm_folds(samples, tmp_path / "d.tif", k=4)
    assert res.space == "geographical"
    assert len(res.folds) == 80
    assert np.median(res.Gij) > np.median(res.Gj)
    with pytest.raises(SplitError, match="not found"):
        knndm_folds(samples, tmp_path / "missing.tif", k=4)
    with pytest.raises(SplitError, match="needs a raster domain"):
        gpd.GeoDataFrame(geometry=[box(X0, Y0 - 2000, X0 + 1000, Y0)], crs="EPSG:32633").to_file(tmp_path / "p.gpkg")
        knndm_folds(samples, tmp_path / "p.gpkg", k=4, space="feature")


def test_evaluate_split_knndm_cross_validates_and_reports_w(samples_factory, config_factory, tmp_path):
    from pydantic import ValidationError

    from sptgnn.evaluate.crossval import cross_validate_config

    with pytest.raises(ValidationError, match="needs evaluate.knndm.domain"):
        config_factory(evaluate={"split": "knndm"})
    write_tif(tmp_path / "d.tif", np.ones((200, 200), "float32"), 100.0, origin=(X0 - 9000, Y0 + 11000))
    cfg = config_factory(evaluate={"split": "knndm", "n_folds": 3, "baselines": ["xgboost"],
                                   "knndm": {"domain": str(tmp_path / "d.tif"), "samplesize": 300}})
    samples = samples_factory(60)
    result = cross_validate_config(samples, cfg)
    info = result.split_info
    assert info["space"] == "geographical"
    assert sum(info["fold_sizes"].values()) == 60
    assert info["W"] <= info["W_random"]
    assert sorted(result.predictions["sample_id"][result.predictions["model"] == "sptgnn"]) == sorted(samples.sample_ids)
