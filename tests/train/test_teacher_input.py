"""Teacher inputs (``model.teacher_input``): the teacher's prediction and kriging-prior features as a member input,
out-of-fold for training samples (never their own label), from the whole-fold teacher for queries."""

from __future__ import annotations

import numpy as np
import pytest

from sptgnn.estimator.run import Run
from sptgnn.graph.builder import NODE
from sptgnn.train.ensemble import DeepEnsemble
from sptgnn.train.objective import teacher_weight
from sptgnn.train.trend import CovariateTrend


@pytest.fixture(scope="module")
def data(samples_factory):
    samples = samples_factory(n=60, seed=6)
    query = np.arange(len(samples)) % 5 == 0
    return samples.subset(~query), samples.subset(query)


@pytest.mark.parametrize("kind", ["random_forest", "kpr_random_forest"])
def test_a_training_samples_teacher_features_never_move_with_its_own_label(data, kind):
    lab = data[0]
    z = (lab.target("soc_g_kg") - 12.0) / 3.0
    before = CovariateTrend(trees=15, folds=4, seed=2, kind=kind, neighbours=16).fit(lab, z).oof_features
    i = 7
    bumped = z.copy()
    bumped[i] += 25.0  # a wild label at node i
    after = CovariateTrend(trees=15, folds=4, seed=2, kind=kind, neighbours=16).fit(lab, bumped).oof_features
    assert before.shape == (len(lab), 3 if kind == "kpr_random_forest" else 1)
    np.testing.assert_array_equal(after[i], before[i])
    moved = np.abs(after - before).max(axis=1) > 1e-9
    assert moved.sum() >= 1  # other nodes' features do read node i's label


def test_kriging_features_of_a_query_are_the_whole_fold_kriging(data):
    lab, query = data
    z = (lab.target("soc_g_kg") - 12.0) / 3.0
    trend = CovariateTrend(trees=15, folds=4, seed=2, kind="kpr_random_forest", neighbours=16).fit(lab, z)
    feats = trend.teacher(query)
    np.testing.assert_allclose(feats[:, 1:], trend.kriging.predict(query.xy()))
    np.testing.assert_allclose(feats[:, 0], trend.predict(query))


@pytest.fixture(scope="module")
def fitted(data, config_factory):
    cfg = config_factory(model={"trend": "kpr_random_forest", "trend_trees": 15, "teacher_input": True,
                                "label_inputs": False}, data={"target_transform": "none"})
    return DeepEnsemble(cfg).fit(data[0])


def test_members_read_the_teacher_and_every_prediction_path_agrees(data, fitted, tmp_path):
    lab, query = data
    assert fitted.members[0].teacher_encoder is not None
    assert fitted.members[0].teacher_encoder.in_features == 3
    graph = fitted.builder.build(query, fitted.target)
    fitted.attach_teacher(graph, fitted.trend.teacher(query))
    t = graph[NODE].teacher.numpy()
    np.testing.assert_allclose(t[: len(lab)], fitted.trend.oof_features, rtol=1e-6)
    np.testing.assert_allclose(t[len(lab):], fitted.trend.teacher(query), rtol=1e-6)
    direct = fitted.predict(query).mean
    run = Run(fitted)
    np.testing.assert_allclose(run.predict(query).mean, direct, rtol=1e-4)  # the cached query path
    reloaded = Run(fitted).save(tmp_path / "run")
    np.testing.assert_allclose(Run.load(reloaded.path).predict(query).mean, direct, rtol=1e-4)


def test_the_teacher_moves_the_prediction(data, fitted):
    # the members' input includes the teacher's features: a changed query teacher changes the output
    lab, query = data
    model = fitted.members[0]
    graph = fitted.builder.build(query, fitted.target)
    fitted.attach_teacher(graph, fitted.trend.teacher(query))
    base = model(graph).mean[len(lab):].detach()
    graph[NODE].teacher[len(lab):, 1] += 3.0
    assert (model(graph).mean[len(lab):].detach() - base).abs().max() > 1e-4


def test_soft_target_weight_anneals_linearly(config_factory):
    cfg = config_factory(loss={"teacher_weight": 4.0, "teacher_anneal_epochs": 10})
    assert [teacher_weight(cfg, e) for e in (0, 5, 10, 20)] == [4.0, 2.0, 0.0, 0.0]
    assert teacher_weight(config_factory(loss={"teacher_weight": 4.0}), 50) == 4.0


def test_xgboost_teacher_is_out_of_fold_and_reloads_without_pickle(data, tmp_path):
    from sklearn.model_selection import KFold

    from sptgnn.models.baselines import make_regressor

    lab, query = data
    z = (lab.target("soc_g_kg") - 12.0) / 3.0
    trend = CovariateTrend(folds=4, seed=2, kind="xgboost").fit(lab, z)
    x = lab.frame[trend.columns].to_numpy(dtype=float)
    for tr, te in KFold(4, shuffle=True, random_state=2).split(x):  # the out-of-fold trend never saw its own label
        np.testing.assert_allclose(trend.oof[te], make_regressor("xgboost", 2).fit(x[tr], z[tr]).predict(x[te]),
                                   rtol=1e-5, atol=1e-6)
    trend.save(tmp_path)
    back = CovariateTrend.load(tmp_path)
    np.testing.assert_allclose(back.predict(query), trend.predict(query), rtol=1e-6)


def test_an_auxiliary_target_is_predicted_with_the_teacher_inputs(data, config_factory):
    # the members read the teacher's features for every target, not only the primary (the trend is added to it alone)
    lab, query = data
    def with_ph(s):
        f = s.frame.copy()
        f["ph"] = 6.0 + f["NDVI"]
        return type(s)(frame=f, targets=["soc_g_kg", "ph"], feature_groups=s.feature_groups, elevation=s.elevation,
                       date_column=s.date_column, name=s.name)
    cfg = config_factory(model={"trend": "random_forest", "trend_trees": 10, "teacher_input": True,
                                "label_inputs": False},
                         data={"targets": ["soc_g_kg", "ph"], "target_transform": "none"})
    ens = DeepEnsemble(cfg).fit(with_ph(lab))
    direct = ens.predict(with_ph(query), target="ph").mean
    np.testing.assert_allclose(Run(ens).predict(with_ph(query), target="ph").mean, direct, rtol=1e-4)
    assert 6.0 < direct.mean() < 7.5  # on the pH scale, not SOC's
