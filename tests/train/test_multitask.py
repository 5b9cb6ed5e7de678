"""Multi-task heads (``data.targets``): masked per-target NLL, task weighting, and the targets through fit, predict,
save/load, maps and cross-validation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from scipy.stats import norm

from sptgnn import SpTGNNRegressor, load_run
from sptgnn.config import Config
from sptgnn.data.samples import SamplesError, SoilSamples
from sptgnn.evaluate.crossval import cross_validate
from sptgnn.losses import masked_gaussian_nll, multitask_loss
from sptgnn.splits import BlockKFold


def _with_aux(samples: SoilSamples, missing_every: int = 4) -> SoilSamples:
    """``ph`` (a smooth function of NDVI) at every sample and ``bd`` missing at every ``missing_every``-th."""
    f = samples.frame.copy()
    rng = np.random.default_rng(1)
    f["ph"] = 5.5 + 2.0 * f["NDVI"] + rng.normal(0, 0.05, len(f))
    bd = 1.2 + 0.01 * f["Slope"] + rng.normal(0, 0.02, len(f))
    bd[np.arange(len(f)) % missing_every == 0] = np.nan
    f["bd"] = bd
    return SoilSamples(frame=f, targets=["soc_g_kg", "ph", "bd"], feature_groups=samples.feature_groups,
                       elevation=samples.elevation, date_column=samples.date_column, folds=samples.folds,
                       name=samples.name)


def test_masked_nll_equals_scipy_over_present_entries_and_ignores_missing_ones():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(7, 2))
    y[[1, 4], 0] = np.nan
    y[:, 1][[0, 2, 3]] = np.nan
    mean = torch.tensor(rng.normal(size=(7, 2)), requires_grad=True)
    var = torch.tensor(rng.uniform(0.2, 2.0, size=(7, 2)), requires_grad=True)
    got = masked_gaussian_nll(torch.tensor(y), mean, var)
    for t in range(2):
        ok = np.isfinite(y[:, t])
        ref = -norm.logpdf(y[ok, t], mean.detach().numpy()[ok, t], np.sqrt(var.detach().numpy()[ok, t])).mean()
        assert got[t].item() == pytest.approx(ref, rel=1e-10)
    got.sum().backward()
    missing = ~np.isfinite(y)
    assert np.all(mean.grad.numpy()[missing] == 0)
    assert np.all(var.grad.numpy()[missing] == 0)
    assert np.all(mean.grad.numpy()[~missing] != 0)


def test_masked_nll_of_a_target_missing_everywhere_is_zero():
    y = torch.full((4, 1), float("nan"))
    assert masked_gaussian_nll(y, torch.zeros(4, 1), torch.ones(4, 1)).item() == 0.0


def test_fixed_weighting_is_the_weighted_sum():
    losses = torch.tensor([0.5, 2.0, -1.0])
    assert multitask_loss(losses, "fixed").item() == pytest.approx(1.5)
    assert multitask_loss(losses, "fixed", weights=torch.tensor([1.0, 0.5, 2.0])).item() == pytest.approx(-0.5)


def test_uncertainty_weighting_is_kendalls_and_its_weight_settles_at_the_shifted_loss():
    losses, floors = torch.tensor([1.3, -0.4]), torch.tensor([-1.0, -3.0])
    s = torch.tensor([0.2, -0.7], requires_grad=True)
    value = multitask_loss(losses, "uncertainty", log_vars=s, floors=floors)
    shifted = (losses - floors).numpy()
    ref = sum(0.5 * math.exp(-si) * li + 0.5 * si for si, li in zip([0.2, -0.7], shifted))
    assert value.item() == pytest.approx(ref, rel=1e-6)
    # Kendall's objective is minimal in s_t at exp(s_t) = L_t − f_t: zero gradient there
    s_opt = torch.tensor(np.log(shifted), requires_grad=True)
    multitask_loss(losses, "uncertainty", log_vars=s_opt, floors=floors).backward()
    assert torch.allclose(s_opt.grad, torch.zeros(2), atol=1e-7)


def test_unknown_weighting_and_missing_log_vars_are_errors():
    with pytest.raises(ValueError, match="unknown task weighting"):
        multitask_loss(torch.ones(2), "softmax")
    with pytest.raises(ValueError, match="log-variances"):
        multitask_loss(torch.ones(2), "uncertainty")


def test_config_names_the_primary_and_checks_task_weights():
    c = Config.model_validate({"data": {"targets": ["soc_g_kg", "ph"]}})
    assert c.data.target == "soc_g_kg"
    assert c.data.aux_targets == ["ph"]
    assert Config.model_validate({"data": {"targets": ["ph", "soc_g_kg"]}}).data.target == "ph"
    with pytest.raises(ValidationError, match="differs from the first of data.targets"):
        Config.model_validate({"data": {"target": "ph", "targets": ["soc_g_kg", "ph"]}})
    with pytest.raises(ValidationError, match="one weight per target"):
        Config.model_validate({"data": {"targets": ["soc_g_kg", "ph"]}, "loss": {"task_weights": [1.0, 2.0]}})
    with pytest.raises(ValidationError, match="duplicates"):
        Config.model_validate({"data": {"targets": ["soc_g_kg", "soc_g_kg"]}})


def test_secondary_targets_may_be_missing_but_the_primary_may_not(samples):
    aux = _with_aux(samples)
    assert np.isnan(aux.target("bd")).sum() == len(aux) // 4 + (len(aux) % 4 > 0)
    f = aux.frame.copy()
    f.loc[f.index[3], "soc_g_kg"] = np.nan
    with pytest.raises(SamplesError, match="soc_g_kg' is NaN"):
        SoilSamples(frame=f, targets=aux.targets, feature_groups=aux.feature_groups)
    f = aux.frame.copy()
    f["ph"] = f["ph"].astype(object)
    f.loc[f.index[2], "ph"] = "acid"
    with pytest.raises(SamplesError, match="'ph' is NaN or not numeric"):
        SoilSamples(frame=f, targets=aux.targets, feature_groups=aux.feature_groups)


def _estimator(**kw):
    return SpTGNNRegressor(members=2, hidden=16, num_layers=1, num_experts=2, top_k=1, heads=2, epochs=40,
                           patience=40, k_spatial=4, k_spectral=4, k_elevation=2, area_of_applicability=False, **kw)


def test_every_target_is_predicted_saved_reloaded_and_mapped(split, tmp_path):
    train, test = _with_aux(split[0]), _with_aux(split[1])
    est = _estimator(targets=("soc_g_kg", "ph", "bd")).fit(train)
    soc, ph = est.predict_dist(test), est.predict_dist(test, target="ph")
    assert soc.mean.shape == ph.mean.shape == (len(test),)
    assert np.all(np.isfinite(ph.sd))
    assert np.all(ph.sd > 0)
    # the pH head lives on the pH scale (training range 6-7.5), not SOC's g/kg
    assert 5.0 < ph.mean.mean() < 8.0
    assert abs(ph.mean.mean() - soc.mean.mean()) > 1.0
    assert set(est.target_forecasts(test)) == {"ph", "bd"}
    with pytest.raises(ValueError, match="was not trained"):
        est.predict_dist(test, target="clay")
    run = load_run(est.save(tmp_path / "run").path)
    np.testing.assert_allclose(run.predict(test, target="bd").mean, est.predict_dist(test, target="bd").mean, rtol=1e-5)
    assert run.targets == ["soc_g_kg", "ph", "bd"]
    values = {c: test.frame[c].to_numpy() for c in run.needed}
    bands = run.predict_arrays(values, test.xy(), test.frame[test.date_column])
    assert list(bands) == run.map_bands
    assert bands["ph_mean"].shape == (len(test),)
    np.testing.assert_allclose(bands["ph_mean"], ph.mean, rtol=1e-5)


def test_a_missing_auxiliary_column_is_a_clear_error(split):
    with pytest.raises(SamplesError, match="'ph' not found"):
        _estimator(targets=("soc_g_kg", "ph")).fit(split[0])


def test_cross_validation_scores_each_target_where_it_was_measured(samples):
    data = _with_aux(samples)
    result = cross_validate({"sptgnn": _estimator(targets=("soc_g_kg", "ph", "bd"))}, data,
                            BlockKFold(n_splits=2, block_size_km=0.7, seed=0))
    p = result.predictions
    assert set(p["model"]) == {"sptgnn", "sptgnn@ph", "sptgnn@bd"}
    bd = p[p["model"] == "sptgnn@bd"].set_index("sample_id")
    truth = data.frame.set_index("sample_id")["bd"]
    assert len(bd) == int(truth.notna().sum())  # scored only where bulk density was measured
    np.testing.assert_allclose(bd["y_true"], truth.loc[bd.index])
    assert np.isfinite(result.metrics["sptgnn@ph"]["r2"])
    assert np.isfinite(result.metrics["sptgnn@bd"]["crps"])
