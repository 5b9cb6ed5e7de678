"""SpTGNNRegressor: scikit-learn's estimator contract, config round trip, the three ways to give X, and errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from sptgnn import Config, ConfigError, SamplesError, SpTGNNRegressor, load_run
from sptgnn.estimator.regressor import FLAT
from sptgnn.splits import BlockKFold

TINY = dict(members=2, epochs=5, patience=3, hidden=16, num_layers=1, num_experts=3, heads=2, k_spatial=4,
            k_spectral=3, k_elevation=2)


@pytest.fixture(scope="module")
def frames(samples_factory):
    s = samples_factory(n=60, seed=2)
    gdf = s.frame
    return gdf.iloc[:48].reset_index(drop=True), gdf.iloc[48:].reset_index(drop=True)


def _est(**kw) -> SpTGNNRegressor:
    return SpTGNNRegressor(**(TINY | {"imagery_columns": ["B02", "B04", "NDVI"], "environment_columns": ["Slope", "Altitude"],
                                      "elevation_column": "Altitude", "date_column": "date", "id_column": "sample_id"} | kw))


@pytest.fixture(scope="module")
def fitted(frames):
    train, _ = frames
    return _est().fit(train, train["soc_g_kg"])


def test_init_only_stores_and_clone_keeps_params():
    est = SpTGNNRegressor(members=3, relations=("spatial",), calibration="variance")
    params = est.get_params()
    assert params["members"] == 3
    assert params["relations"] == ("spatial",)
    assert params["calibration"] == "variance"
    twin = clone(est)
    assert twin is not est
    assert twin.get_params() == params
    assert twin.set_params(hidden=8).hidden == 8
    assert est.hidden != 8


def test_defaults_are_the_config_schema_defaults():
    cfg, default = SpTGNNRegressor().to_config(), Config()
    assert cfg == default


def test_to_config_from_config_round_trip():
    est = SpTGNNRegressor(members=3, hidden=24, relations=("spatial", "elevation"), target_transform="log1p",
                          calibration="isotonic", k_spatial=6, loss="gaussian_nll", seed=7)
    cfg = est.to_config()
    assert (cfg.train.members, cfg.model.hidden, cfg.graph.relations, cfg.data.target_transform) == \
        (3, 24, ["spatial", "elevation"], "log1p")
    assert (cfg.calibration.method, cfg.graph.k_spatial, cfg.loss.kind, cfg.train.seed) == ("isotonic", 6, "gaussian_nll", 7)
    back = SpTGNNRegressor.from_config(cfg)
    for name in FLAT:
        assert getattr(back, name) == getattr(est, name), name
    assert back.to_config() == cfg


def test_from_config_keeps_sections_without_flat_parameters():
    cfg = Config().updated(calibration={"method": "isotonic", "folds": 3}, graph={"feature_clip": 4.0})
    est = SpTGNNRegressor.from_config(cfg, members=2)
    out = est.to_config()
    assert out.calibration.folds == 3
    assert out.graph.feature_clip == 4.0
    assert out.train.members == 2


def test_bad_parameter_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="members"):
        SpTGNNRegressor(members=0).to_config()
    with pytest.raises(ConfigError, match="calibration"):
        SpTGNNRegressor(calibration="platt").to_config()


def test_fit_predict_shapes_and_consistency(fitted, frames):
    _, test = frames
    dist = fitted.predict_dist(test)
    mean, sd = fitted.predict(test, return_std=True)
    q = fitted.predict(test, quantiles=[0.05, 0.5, 0.95])
    assert mean.shape == sd.shape == (len(test),)
    assert q.shape == (len(test), 3)
    np.testing.assert_array_equal(mean, dist.mean)
    np.testing.assert_allclose(sd, np.sqrt(dist.aleatoric_sd**2 + dist.epistemic_sd**2))
    assert (np.diff(q, axis=1) > 0).all()
    assert fitted.score(test, test["soc_g_kg"]) == pytest.approx(r2_score(test["soc_g_kg"], mean))
    assert fitted.feature_groups_ == {"imagery": ["B02", "B04", "NDVI"], "environment": ["Slope", "Altitude"]}
    with pytest.raises(ValueError, match="not both"):
        fitted.predict(test, return_std=True, quantiles=[0.5])


def test_same_prediction_from_a_dataframe_with_coordinate_columns(fitted, frames):
    _, test = frames
    plain = pd.DataFrame(test.drop(columns="geometry")).assign(east=test.geometry.x, north=test.geometry.y)
    est = clone(fitted).set_params(coords=("east", "north"), crs="EPSG:32633")
    est.run_, est.feature_groups_ = fitted.run_, fitted.feature_groups_
    np.testing.assert_allclose(est.predict(plain), fitted.predict(test), rtol=1e-12)


def test_default_streams_take_every_other_numeric_column(frames):
    train, test = frames
    est = SpTGNNRegressor(**TINY, relations=("spatial", "spectral"), target="soc_g_kg").fit(train[["soc_g_kg", "Slope", "NDVI", "geometry"]])
    assert est.feature_groups_ == {"imagery": [], "environment": ["Slope", "NDVI"]}
    assert est.predict(test).shape == (len(test),)


def test_save_is_what_load_run_reads(fitted, frames, tmp_path):
    _, test = frames
    run = fitted.save(tmp_path / "run")
    assert run.path == tmp_path / "run"
    assert {"config.yaml", "ensemble.pt", "labelled.gpkg", "run.json", "aoa.npz"} <= {p.name for p in run.path.iterdir()}
    loaded = load_run(tmp_path / "run")
    np.testing.assert_array_equal(loaded.predict(test).mean, fitted.predict(test))


def test_unfitted_estimator_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SpTGNNRegressor().predict(pd.DataFrame({"x": [0.0], "y": [0.0]}))


@pytest.mark.parametrize(("X", "kw", "match"), [
    (pd.DataFrame({"a": [1.0, 2.0]}), {"crs": "EPSG:32633"}, "no coordinate column"),
    (pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 2.0], "a": [1.0, 2.0]}), {}, "no CRS"),
    (np.ones((3, 1)), {"crs": "EPSG:32633"}, "x, y first"),
])
def test_bad_inputs_raise_one_clear_error(X, kw, match):
    with pytest.raises(SamplesError, match=match):
        SpTGNNRegressor(**TINY, **kw).fit(X, np.ones(len(X)))


def test_y_of_another_length_is_refused(frames):
    train, _ = frames
    with pytest.raises(SamplesError, match="y has 3 values"):
        _est().fit(train, np.ones(3))


def test_grid_search_over_the_estimator(frames):
    train, _ = frames
    search = GridSearchCV(_est(members=1, relations=("spatial",)), {"hidden": [8, 16]}, cv=BlockKFold(2, block_size_km=1.0),
                          error_score="raise")
    search.fit(train, train["soc_g_kg"])
    assert search.best_params_["hidden"] in (8, 16)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


# -- scikit-learn's own checks --------------------------------------------------------------------------------------------
# Like verde's gridders, SpTGNN needs coordinates: an array X is read as (x, y, features...) in the given CRS (lon/lat
# here: the checks' small values are refused as metres spanning a few metres, which is how degrees declared as metres
# look). The checks below cannot pass for such reasons, and are declared here.
EXPECTED_FAILED = {
    "check_complex_data": "complex X is refused with sptgnn's own message (no coordinates)",
    "check_estimators_empty_data_messages": "empty X is refused with sptgnn's own message",
    "check_estimators_nan_inf": "NaN and inf are refused with sptgnn's own message naming the rows",
    "check_estimator_sparse_tag": "sparse X has no coordinates",
    "check_estimator_sparse_array": "sparse X has no coordinates",
    "check_estimator_sparse_matrix": "sparse X has no coordinates",
    "check_regressors_train": "two epochs on the check's data do not reach its R² threshold",
    "check_regressor_data_not_an_array": "a DataFrame X needs named coordinate columns",
    "check_supervised_y_2d": "a single target per estimator (multi-task heads are a config section)",
    "check_fit2d_1sample": "a graph needs two labelled samples; sptgnn's own message",
    "check_fit2d_1feature": "an array X needs x and y before any covariate; sptgnn's own message",
    "check_fit2d_predict1d": "a 1-d X has no coordinates; sptgnn's own message",
    "check_requires_y_none": "y=None reads the target column of X",
    "check_fit_idempotent": "the check's X holds values beyond ±90, which are no latitudes (and too close for metres)",
    "check_fit_check_is_fitted": "the check's X holds values beyond ±90, which are no latitudes (and too close for metres)",
    "check_n_features_in": "the check's X holds values beyond ±90, which are no latitudes (and too close for metres)",
}


@parametrize_with_checks([SpTGNNRegressor(members=1, epochs=2, patience=2, hidden=8, num_layers=1, num_experts=2,
                                          heads=1, crs="EPSG:4326", relations=("spatial",), target="y")],
                         expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_checks(estimator, check):
    check(estimator)
