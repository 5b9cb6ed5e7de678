"""Inner cross-validation (``selection``): candidates scored on the training samples only, the best one fitted."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold

from sptgnn import SpTGNNRegressor
from sptgnn.config import Config
from sptgnn.data.samples import SamplesError
from sptgnn.estimator.selection import select_config
from sptgnn.evaluate.crossval import cross_validate
from sptgnn.train.ensemble import DeepEnsemble

CANDIDATES = [{"train": {"epochs": 1, "patience": 1}}, {"train": {"epochs": 40, "patience": 40}}]


def test_the_better_candidate_wins_and_its_score_is_the_pooled_inner_r2(samples_factory, config_factory):
    data = samples_factory(n=45, seed=8)
    cfg = config_factory(model={"label_inputs": False}, selection={"candidates": CANDIDATES, "folds": 3})
    chosen, report = select_config(cfg, data)
    assert report["selected"] == 1
    assert chosen.train.epochs == 40
    assert chosen.selection.candidates == []
    assert report["inner_scores"][1] > report["inner_scores"][0]
    # the reported score of candidate 0 recomputed by hand: K-fold of the training samples, pooled sklearn R²
    inner = cfg.updated(selection={"candidates": []}, train=CANDIDATES[0]["train"], calibration={"method": "none"})
    y, mean = [], []
    for tr, te in KFold(3, shuffle=True, random_state=cfg.train.seed).split(np.arange(len(data))):
        y.append(data.subset(te).target("soc_g_kg"))
        mean.append(DeepEnsemble(inner).fit(data.subset(tr)).predict(data.subset(te)).mean)
    assert report["inner_scores"][0] == pytest.approx(r2_score(np.concatenate(y), np.concatenate(mean)), abs=1e-4)


def test_cross_validation_records_the_choice_of_each_fold(samples_factory, config_factory):
    data = samples_factory(n=40, seed=9, folds=2)
    cfg = config_factory(model={"label_inputs": False}, selection={"candidates": CANDIDATES, "folds": 2})
    result = cross_validate({"sptgnn": SpTGNNRegressor.from_config(cfg, area_of_applicability=False)}, data,
                            [f for f in _shipped(data)])
    per_fold = result.metrics["sptgnn"]["choices_per_fold"]
    assert set(per_fold) == {"1", "2"}
    assert all(c["selection_selected"] in (0, 1) and len(c["selection_inner_scores"]) == 2 for c in per_fold.values())


def _shipped(samples):
    from sptgnn.splits import Fold

    return [Fold(k, np.flatnonzero(samples.folds != k), np.flatnonzero(samples.folds == k), np.array([], dtype=int))
            for k in (1, 2)]


def test_bad_candidates_and_too_few_samples_are_clear_errors(samples_factory, config_factory):
    with pytest.raises(ValidationError, match=r"candidates\[1\] is not a valid override.*model.hiden"):
        Config.model_validate({"selection": {"candidates": [{}, {"model": {"hiden": 8}}]}})
    with pytest.raises(ValidationError, match="not the evaluation or the selection"):
        Config.model_validate({"selection": {"candidates": [{}, {"evaluate": {"n_folds": 3}}]}})
    cfg = config_factory(selection={"candidates": CANDIDATES, "folds": 5})
    with pytest.raises(SamplesError, match="too few for a 5-fold inner selection"):
        select_config(cfg, samples_factory(n=8, seed=1))
