"""The kriging-prior teacher (model.trend: kpr_random_forest): leak-free out-of-fold trend, the same trend for samples
and raster rows, saved and reloaded."""

from __future__ import annotations

import numpy as np
import pytest

from sptgnn.estimator.run import Run, fit_run, load_run
from sptgnn.train.trend import CovariateTrend


@pytest.fixture(scope="module")
def data(samples_factory):
    s = samples_factory(n=80, seed=6)
    xy = s.metric_coords()
    s.frame["soc_g_kg"] = 12 + 3 * np.sin((xy[:, 0] - xy[:, 0].min()) / 400) + s.frame["NDVI"]
    query = np.zeros(len(s), dtype=bool)
    query[::4] = True
    return s.subset(~query), s.subset(query)


def test_a_labelled_nodes_trend_does_not_move_with_its_own_label(data):
    lab, _ = data
    z = (lab.target() - lab.target().mean()) / lab.target().std()
    before = CovariateTrend(trees=20, folds=4, seed=1, kind="kpr_random_forest", neighbours=12).fit(lab, z)
    for i in (0, 17):
        moved = z.copy()
        moved[i] += 5.0
        after = CovariateTrend(trees=20, folds=4, seed=1, kind="kpr_random_forest", neighbours=12).fit(lab, moved)
        assert after.oof[i] == pytest.approx(before.oof[i], abs=1e-12)
        assert np.abs(after.oof - before.oof).max() > 1e-6


def test_kriging_features_lift_the_trend_on_a_spatial_target(data):
    lab, query = data
    z = (lab.target() - lab.target().mean()) / lab.target().std()
    rf = CovariateTrend(trees=50, folds=4, seed=1).fit(lab, z)
    kpr = CovariateTrend(trees=50, folds=4, seed=1, kind="kpr_random_forest", neighbours=12).fit(lab, z)
    assert kpr.oof_r2 > rf.oof_r2 + 0.1
    # the raster path (raw covariate rows and coordinates in the samples' CRS) gives the samples' trend
    x = query.frame[kpr.columns].to_numpy(dtype=float)
    np.testing.assert_allclose(kpr.predict_features(x, query.xy()), kpr.predict(query), rtol=1e-12)
    with pytest.raises(ValueError, match="coordinates"):
        kpr.predict_features(x)


def test_a_run_with_the_kpr_teacher_saves_and_reloads(data, config_factory, tmp_path):
    lab, query = data
    cfg = config_factory(model={"trend": "kpr_random_forest", "trend_trees": 20}, data={"target_transform": "none"},
                         train={"members": 1, "epochs": 3})
    run = fit_run(cfg, lab, aoa=False)
    run.save(tmp_path / "run")
    again = load_run(tmp_path / "run")
    assert isinstance(again, Run)
    assert again.ensemble.trend.kind == "kpr_random_forest"
    np.testing.assert_allclose(again.predict(query).mean, run.predict(query).mean, rtol=1e-6)


def test_the_soft_target_term_pulls_the_members_to_their_teacher(data, config_factory):
    """loss.teacher_weight penalises the members' departure from the teacher (the trend), so a large weight leaves
    predictions close to the teacher's and no weight does not."""
    from sptgnn.train.ensemble import DeepEnsemble

    lab, query = data
    gaps = {}
    for weight in (0.0, 100.0):
        cfg = config_factory(model={"trend": "random_forest", "trend_trees": 20, "label_inputs": False},
                             data={"target_transform": "none"}, loss={"teacher_weight": weight},
                             train={"members": 1, "epochs": 30, "patience": 30})
        ens = DeepEnsemble(cfg).fit(lab)
        loc = ens.predict(query, calibrated=False).member_loc[0]  # teacher + member output, target units
        teacher, _ = ens.target_transform.gaussian_space(ens.trend.predict(query), np.zeros(len(query)))
        gaps[weight] = float(np.abs(loc - teacher).mean())
    assert gaps[100.0] < 0.5 * gaps[0.0]


def test_auto_keeps_the_teacher_with_the_best_out_of_fold_r2(data, config_factory):
    from sptgnn.train.ensemble import DeepEnsemble

    lab, _ = data
    cfg = config_factory(model={"trend": "auto", "trend_min_r2": -10.0, "trend_trees": 20,
                                "trend_candidates": ["random_forest", "kpr_random_forest"]},
                         data={"target_transform": "none"}, train={"members": 1, "epochs": 2})
    ens = DeepEnsemble(cfg).fit(lab)
    z = ens.target_transform.transform(lab.target())
    rf = CovariateTrend(20, seed=cfg.train.seed).fit(lab, z)
    assert ens.trend.kind == "kpr_random_forest"
    assert ens.trend.oof_r2 > rf.oof_r2
