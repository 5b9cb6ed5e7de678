"""Covariate trend (model.trend): members learn the out-of-fold residual, predictions add the trend back."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import KFold

from sptgnn.data.samples import SamplesError
from sptgnn.estimator.manifest import write_manifest
from sptgnn.estimator.run import Run, RunError
from sptgnn.train.ensemble import DeepEnsemble
from sptgnn.train.trend import TREND_FILE, CovariateTrend


@pytest.fixture(scope="module")
def data(samples_factory):
    samples = samples_factory(n=48, seed=5)
    query = np.zeros(len(samples), dtype=bool)
    query[::4] = True
    return samples.subset(~query), samples.subset(query)


@pytest.fixture(scope="module")
def trend_config(config_factory):
    return config_factory(model={"trend": "random_forest", "trend_trees": 20, "label_inputs": False},
                          data={"target_transform": "none"})


@pytest.fixture(scope="module")
def fitted(data, trend_config):
    return DeepEnsemble(trend_config).fit(data[0])


def test_out_of_fold_trend_of_a_node_comes_from_a_forest_that_never_saw_it(data):
    lab, _ = data
    z = np.random.default_rng(0).normal(size=len(lab))
    trend = CovariateTrend(trees=15, folds=4, seed=3).fit(lab, z)
    x = lab.frame[lab.feature_columns].to_numpy()
    for train_idx, test_idx in KFold(4, shuffle=True, random_state=3).split(x):
        forest = RandomForestRegressor(15, random_state=3, n_jobs=1).fit(x[train_idx], z[train_idx])
        np.testing.assert_allclose(trend.oof[test_idx], forest.predict(x[test_idx]))
    np.testing.assert_allclose(trend.predict(lab), RandomForestRegressor(15, random_state=3, n_jobs=1).fit(x, z).predict(x))


def test_prediction_adds_the_trend_in_standardised_space(data, fitted):
    _, query = data
    base = fitted.predict(query, calibrated=False)
    forest = fitted.trend.forest

    class Shifted:
        def predict(self, x):
            return forest.predict(x) + 0.5

    fitted.trend.forest = Shifted()
    try:
        shifted = fitted.predict(query, calibrated=False)
    finally:
        fitted.trend.forest = forest
    scale = fitted.target_transform.scale  # g/kg per standardised unit (target_transform none)
    np.testing.assert_allclose(shifted.mean - base.mean, 0.5 * scale, rtol=1e-5)
    np.testing.assert_allclose(shifted.aleatoric_sd, base.aleatoric_sd, rtol=1e-6)


def test_trend_run_reloads_to_identical_predictions_and_needs_its_trend_file(data, fitted, tmp_path):
    _, query = data
    run = Run(fitted).save(tmp_path / "run").path
    assert (run / TREND_FILE).is_file()
    a, b = fitted.predict(query), Run.load(run).ensemble.predict(query)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.sd, b.sd)
    (run / TREND_FILE).unlink()
    with pytest.raises(RunError, match=TREND_FILE):  # the manifest names the missing file
        Run.load(run)
    write_manifest(run, {"format": 3})
    with pytest.raises(RunError, match=TREND_FILE):  # and so does the load behind a consistent manifest
        Run.load(run)
    (run / TREND_FILE).write_bytes(b"not a skops file")
    write_manifest(run, {"format": 3})
    with pytest.raises(RunError, match="corrupt"):
        Run.load(run)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_planted_trend_is_refused_and_never_run(fitted, tmp_path):
    import pickle

    import skops.io as sio

    run = Run(fitted).save(tmp_path / "run").path
    marker = tmp_path / "pwned"
    for planted in ("pickle", "skops"):
        if planted == "pickle":  # a raw pickle under the trend's name
            (run / TREND_FILE).write_bytes(pickle.dumps(_Payload(marker)))
        else:  # a valid skops file holding a type a trend never has (a callable that would write the marker)
            sio.dump({"forest": _Payload(marker), "columns": []}, run / TREND_FILE)
        write_manifest(run, {"format": 3})  # a hostile sender rewrites the manifest too
        with pytest.raises(RunError, match="corrupt|never has"):
            Run.load(run)
        assert not marker.exists()
    old = run / "trend.joblib"  # a run of an earlier version: its pickled trend is not opened
    (run / TREND_FILE).rename(old)
    write_manifest(run, {"format": 3})
    with pytest.raises(RunError, match="pickle"):
        Run.load(run)


def test_trend_errors_name_the_missing_covariates(data, fitted):
    _, query = data
    column = fitted.trend.columns[0]
    broken = query.subset(np.arange(len(query)))
    broken.frame = broken.frame.drop(columns=[column])
    with pytest.raises(SamplesError, match=column):
        fitted.trend.predict(broken)
    lab = data[0].subset(np.arange(len(data[0])))
    lab.feature_groups = {"imagery": [], "environment": []}
    with pytest.raises(SamplesError, match="model.trend"):
        CovariateTrend().fit(lab, np.zeros(len(lab)))


def test_auto_uses_the_trend_only_when_its_out_of_fold_r2_reaches_the_threshold(data, trend_config):
    lab, _ = data
    z = DeepEnsemble(trend_config).target_transform.fit(lab.target()).transform(lab.target())
    trend = CovariateTrend(trend_config.model.trend_trees, seed=trend_config.train.seed).fit(lab, z)
    r2, oof = trend.oof_r2, trend.oof
    assert r2 == pytest.approx(1 - np.sum((z - oof) ** 2) / np.sum((z - z.mean()) ** 2))
    for threshold, used in ((r2 - 0.05, True), (r2 + 0.05, False)):
        model = trend_config.model.model_copy(update={"trend": "auto", "trend_min_r2": threshold})
        train = trend_config.train.model_copy(update={"members": 1})
        ens = DeepEnsemble(trend_config.model_copy(update={"model": model, "train": train})).fit(lab)
        assert (ens.trend is not None) is used


def test_blocked_out_of_fold_trend_matches_sklearn_on_the_same_spatial_parts(data):
    from sklearn.model_selection import PredefinedSplit, cross_val_predict

    from sptgnn.train.trend import trend_parts

    lab, _ = data
    z = np.random.default_rng(1).normal(size=len(lab))
    parts = trend_parts(lab.metric_coords(), "blocks", 4, 12, seed=2)
    assert len(np.unique(parts)) == 4
    assert trend_parts(lab.metric_coords(), "random", 4, 12, seed=2) is None
    trend = CovariateTrend(trees=15, folds=4, seed=3).fit(lab, z, parts)
    x = lab.frame[lab.feature_columns].to_numpy()
    reference = cross_val_predict(RandomForestRegressor(15, random_state=3, n_jobs=1), x, z, cv=PredefinedSplit(parts))
    np.testing.assert_allclose(trend.oof, reference)


@pytest.mark.parametrize("split", ["random", "blocks"])
def test_calibration_twins_never_learn_from_the_calibration_labels_through_the_trend(data, config_factory, split):
    """The twins' raw outputs on the calibration part (what the calibrator is fitted to) must not move when only the
    calibration part's labels move: the twin's trend is refitted without them. The labels are permuted within the
    part, so the target's standardisation (fitted on every label) stays the same."""
    lab, _ = data
    # integer labels with an integer mean: the target's standardisation is exact in any order, so a permutation
    # within the part leaves every other input bit-identical
    soc = np.round(lab.frame["soc_g_kg"].to_numpy())
    soc[-1] += (-soc.sum()) % len(soc)
    lab = type(lab)(**{**lab.__dict__, "frame": lab.frame.assign(soc_g_kg=soc)})
    cfg = config_factory(model={"trend": "random_forest", "trend_trees": 15, "trend_split": split,
                                "label_inputs": False},
                         data={"target_transform": "none"},
                         train={"members": 1, "epochs": 1},  # a twin trains for its member's best epochs: fix them
                         calibration={"method": "isotonic", "fraction": 0.3, "min_samples": 5, "blocks": 6})
    first = DeepEnsemble(cfg).fit(lab)
    cal = np.isin(lab.sample_ids, first.calibration_ids)
    assert 0 < cal.sum() < len(lab)
    moved_soc = soc.copy()
    moved_soc[cal] = np.random.default_rng(0).permutation(soc[cal])
    moved = DeepEnsemble(cfg).fit(type(lab)(**{**lab.__dict__, "frame": lab.frame.assign(soc_g_kg=moved_soc)}))
    np.testing.assert_allclose(moved.calibration_data[0].member_loc, first.calibration_data[0].member_loc, rtol=1e-6)
    assert not np.allclose(moved.calibration_data[1], first.calibration_data[1])
