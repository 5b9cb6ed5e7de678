"""RealMLP and TabM baselines on the shared protocol: point forecasts, Duan's smearing from their early-stopping part
(recomputed by hand), label-free ``+fm`` inputs, and the message when pytabkit is missing."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from sptgnn.models.deep_tabular import DeepTabularBaseline, DeepTabularMissing
from sptgnn.splits.holdouts import inner_folds

pytest.importorskip("pytabkit")


@pytest.mark.parametrize("name", ["realmlp", "tabm"])
def test_log1p_forecast_is_the_smeared_mean_of_its_log_scale_prediction(samples, name):
    train, test = samples.subset(np.arange(48)), samples.subset(np.arange(48, 60))
    model = DeepTabularBaseline(name, transform="log1p", seed=1).fit(train)
    forecast = model.predict_dist(test)
    x_train, y_log = model.features(train), np.log1p(train.target("soc_g_kg"))
    _, val = inner_folds(len(y_log), 5, 1, None)[0]
    smearing = np.mean(np.exp(y_log[val] - model.model_.predict(x_train[val])))
    assert model.smearing_ == pytest.approx(smearing, rel=1e-9)
    pred_log = model.model_.predict(model.features(test))
    np.testing.assert_allclose(forecast.mean, np.exp(pred_log) * smearing - 1.0, rtol=1e-9)
    np.testing.assert_allclose(forecast.median, np.expm1(pred_log), rtol=1e-9)
    assert forecast.sd is None
    # better than the training mean on this smooth synthetic field
    y = test.target("soc_g_kg")
    assert np.mean((forecast.mean - y) ** 2) < np.mean((train.target("soc_g_kg").mean() - y) ** 2)


def test_missing_pytabkit_is_one_clear_error(samples, monkeypatch):
    monkeypatch.setitem(sys.modules, "pytabkit", None)  # import pytabkit raises ImportError
    with pytest.raises(DeepTabularMissing, match=r"pip install 'sptgnn\[tabular\]'"):
        DeepTabularBaseline("realmlp").fit(samples)


def test_unknown_name_lists_the_valid_ones(samples):
    with pytest.raises(ValueError, match="realmlp, tabm"):
        DeepTabularBaseline("mlp").fit(samples)


def test_params_replace_the_learners_defaults(samples):
    model = DeepTabularBaseline("tabm", seed=2, params={"tabm_k": 4, "d_block": 16, "n_epochs": 3}).fit(samples)
    assert model.model_.tabm_k == 4 and model.model_.d_block == 16
    assert model.model_.random_state == 2
