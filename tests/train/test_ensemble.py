"""Deep ensemble: mixture moments, the lognormal back-transform, fit/predict."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy import stats

from sptgnn.data.samples import SoilSamples
from sptgnn.distributions import Prediction
from sptgnn.train.ensemble import DeepEnsemble, EnsembleStateError
from sptgnn.train.target import TargetTransform

from helpers import assert_same_prediction, split_every_fourth


@pytest.fixture(scope="module")
def data(samples_factory):
    return split_every_fourth(samples_factory(n=48, seed=11))


@pytest.fixture(scope="module")
def fitted(data, config_factory):
    lab, _ = data
    return DeepEnsemble(config_factory(model={"num_layers": 2})).fit(lab)


# -- mixture moments ----------------------------------------------------------------------------------------------------
def test_prediction_from_members_matches_hand_computation():
    rng = np.random.default_rng(0)
    M, n = 4, 7
    means = rng.normal(20, 3, (M, n))
    variances = rng.uniform(0.5, 4, (M, n))
    p = Prediction.from_members(means, variances)
    for i in range(n):
        mu = sum(means[m, i] for m in range(M)) / M
        alea = np.sqrt(sum(variances[m, i] for m in range(M)) / M)
        epi = np.sqrt(sum((means[m, i] - mu) ** 2 for m in range(M)) / M)  # population sd
        assert p.mean[i] == pytest.approx(mu, rel=1e-12)
        assert p.aleatoric_sd[i] == pytest.approx(alea, rel=1e-12)
        assert p.epistemic_sd[i] == pytest.approx(epi, rel=1e-12)
        assert p.sd[i] == pytest.approx(np.sqrt(alea**2 + epi**2), rel=1e-12)
    # the total variance is the variance of the equally weighted Gaussian mixture
    mixture_var = (variances + means**2).mean(0) - p.mean**2
    np.testing.assert_allclose(p.sd**2, mixture_var, rtol=1e-9)
    np.testing.assert_array_equal(p.member_mean, means)
    np.testing.assert_array_equal(p.member_var, variances)


def test_single_member_has_no_epistemic_sd():
    p = Prediction.from_members(np.array([[1.0, 2.0]]), np.array([[4.0, 9.0]]))
    np.testing.assert_array_equal(p.epistemic_sd, [0.0, 0.0])
    np.testing.assert_array_equal(p.sd, [2.0, 3.0])


# -- target transform ---------------------------------------------------------------------------------------------------
def test_target_transform_none_standardises_and_inverts():
    y = np.array([3.0, 7.0, 11.0, 19.0])
    tt = TargetTransform("none").fit(y)
    z = tt.transform(y)
    assert z.mean() == pytest.approx(0.0, abs=1e-12)
    assert z.std() == pytest.approx(1.0, rel=1e-12)
    m, v = tt.inverse(z, np.full(4, 0.25))
    np.testing.assert_allclose(m, y, rtol=1e-12)
    np.testing.assert_allclose(v, 0.25 * y.std() ** 2, rtol=1e-12)


def test_target_transform_log1p_standardises_log1p():
    y = np.array([5.0, 8.0, 12.0, 30.0, 9.5])
    tt = TargetTransform("log1p").fit(y)
    assert tt.mean == pytest.approx(np.log1p(y).mean(), rel=1e-12)
    assert tt.scale == pytest.approx(np.log1p(y).std(), rel=1e-12)
    np.testing.assert_allclose(tt.transform(y), (np.log1p(y) - np.log1p(y).mean()) / np.log1p(y).std(), rtol=1e-12)


def test_log1p_inverse_equals_lognormal_moments():
    y = np.array([5.0, 8.0, 12.0, 30.0, 9.5])
    tt = TargetTransform("log1p").fit(y)
    mean_std = np.array([-1.2, 0.0, 0.4, 1.7])
    var_std = np.array([0.05, 0.3, 1.0, 2.5])
    m, v = tt.inverse(mean_std, var_std)
    for i in range(4):
        mu_log = mean_std[i] * tt.scale + tt.mean
        sd_log = np.sqrt(var_std[i]) * tt.scale
        dist = stats.lognorm(s=sd_log, scale=np.exp(mu_log))  # distribution of 1 + Y
        assert m[i] == pytest.approx(dist.mean() - 1.0, rel=1e-10)
        assert v[i] == pytest.approx(dist.var(), rel=1e-10)


def test_log1p_inverse_matches_monte_carlo():
    tt = TargetTransform("log1p", mean=2.5, scale=0.4)
    m, v = tt.inverse(np.array([0.3]), np.array([0.8]))
    rng = np.random.default_rng(0)
    z = rng.normal(0.3, np.sqrt(0.8), 2_000_000)
    y = np.expm1(z * 0.4 + 2.5)
    assert m[0] == pytest.approx(y.mean(), rel=2e-3)
    assert v[0] == pytest.approx(y.var(), rel=2e-2)


def test_target_transform_errors_and_constant_targets():
    with pytest.raises(ValueError, match="non-negative"):
        TargetTransform("log1p").fit(np.array([1.0, -0.5]))
    assert TargetTransform("log1p").fit(np.array([0.0, 3.0])).mean == pytest.approx(np.log1p(3.0) / 2)  # zero SOC is fine
    with pytest.raises(ValueError, match="finite"):
        TargetTransform("none").fit(np.array([1.0, np.nan]))
    tt = TargetTransform("none").fit(np.array([4.0, 4.0]))
    assert tt.scale == 1.0
    assert tt.mean == 4.0
    assert TargetTransform(**tt.state()) == tt


# -- fit / predict ------------------------------------------------------------------------------------------------------
def test_fit_and_predict(fitted, data):
    lab, query = data
    assert len(fitted.members) == 2
    assert len(fitted.best_epochs) == 2
    assert all(0 <= e < 5 for e in fitted.best_epochs)
    assert all(not m.training for m in fitted.members)
    p = fitted.predict(query)
    assert p.mean.shape == p.aleatoric_sd.shape == p.epistemic_sd.shape == (len(query),)
    assert p.member_mean.shape == p.member_var.shape == (2, len(query))
    assert np.isfinite(p.mean).all()
    assert (p.aleatoric_sd > 0).all()
    assert (p.epistemic_sd > 0).all()
    # log1p back-transform: the mean is the members' lognormal mean, computed here from their log-space Gaussians
    lognormal = np.exp(p.member_loc + p.member_scale**2 / 2) - 1
    np.testing.assert_allclose(p.mean, lognormal.mean(0), rtol=1e-10)
    assert_same_prediction(p, fitted.predict(query))


def test_the_fit_time_is_the_wall_time_of_the_fit(data, config_factory):
    lab, _ = data
    start = time.perf_counter()
    ens = DeepEnsemble(config_factory(train={"members": 1, "epochs": 2})).fit(lab)
    elapsed = time.perf_counter() - start
    assert 0.5 * elapsed <= ens.fit_seconds <= elapsed


def test_the_state_gives_back_the_same_ensemble(fitted, data):
    lab, query = data
    again = DeepEnsemble.from_state(fitted.config, fitted.state(), lab, fitted.trend)
    assert again.best_epochs == fitted.best_epochs
    assert_same_prediction(again.predict(query), fitted.predict(query))


def test_a_state_of_another_model_is_refused_by_member(fitted, data, config_factory):
    lab, _ = data
    wider = config_factory(model={"num_layers": 2, "hidden": 24})
    with pytest.raises(EnsembleStateError, match=r"member 0 weights do not match the config's model"):
        DeepEnsemble.from_state(wider, fitted.state(), lab)


def test_member_moments_are_the_back_transformed_member_outputs(fitted, data):
    lab, query = data
    graph = fitted.builder.build(query, "soc_g_kg")
    n_lab = len(lab)
    labels = fitted._labelled_inputs(len(query))
    assert torch.isnan(labels[n_lab:]).all()
    np.testing.assert_allclose(labels[:n_lab].numpy(), fitted.target_transform.transform(lab.target()), rtol=1e-6)
    p = fitted.predict(query)
    with torch.no_grad():
        out = fitted.members[1](graph, labels)
    m, v = fitted.target_transform.inverse(out.mean[n_lab:].numpy(), out.var[n_lab:].numpy())
    np.testing.assert_allclose(p.member_mean[1], m, rtol=1e-6)
    np.testing.assert_allclose(p.member_var[1], v, rtol=1e-6)


def test_query_targets_are_never_used(fitted, data):
    _, query = data
    frame = query.frame.copy()
    frame["soc_g_kg"] = 1e6
    changed = SoilSamples(frame=frame, targets=query.targets, feature_groups=query.feature_groups, elevation=query.elevation,
                          date_column=query.date_column, name=query.name)
    assert_same_prediction(fitted.predict(query), fitted.predict(changed))


def test_a_query_is_predicted_the_same_alone_or_with_others(fitted, data):
    _, query = data
    together = fitted.predict(query)
    for i in (0, 5):
        alone = fitted.predict(query.subset(np.array([i])))
        np.testing.assert_allclose(alone.mean, together.mean[i:i + 1], rtol=1e-6)
        np.testing.assert_allclose(alone.sd, together.sd[i:i + 1], rtol=1e-6)


def test_gates(fitted, data):
    _, query = data
    gates = fitted.gates(query)
    assert gates.shape == (len(query), 3)
    np.testing.assert_allclose(gates.sum(1), 1.0, rtol=1e-6)


def test_gates_from_streams_equal_the_gates_of_the_graph_forward(fitted, data):
    _, query = data
    graph = fitted.builder.build(query, fitted.target)
    n_lab = len(fitted.builder.labelled)
    labels = fitted._labelled_inputs(len(query))
    ref = np.mean([m.eval().embed(graph, labels)[2][n_lab:].detach().numpy() for m in fitted.members], axis=0)
    np.testing.assert_allclose(fitted.gates(query), ref, atol=1e-6)


def test_predict_before_fit(config_factory, data):
    with pytest.raises(RuntimeError, match="before fit"):
        DeepEnsemble(config_factory()).predict(data[1])


def test_same_seed_gives_identical_ensembles(data, config_factory):
    lab, query = data
    cfg = config_factory(train={"members": 1, "epochs": 3})
    assert_same_prediction(DeepEnsemble(cfg).fit(lab).predict(query), DeepEnsemble(cfg).fit(lab).predict(query))
