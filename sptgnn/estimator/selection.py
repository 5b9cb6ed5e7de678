"""Inner cross-validation of the training samples: which candidate configuration (``selection.candidates``) to fit.

The choices that decide small datasets (teacher on or off, teacher inputs, multi-task heads, width, members) are
selected inside each training fold, never by its test fold, as the published LimeSoDa benchmark tunes its baselines
by nested cross-validation (Schmidinger et al. 2025). Each candidate is trained on ``K − 1`` random parts of the
training samples and predicts the remaining part; the candidate with the best pooled score (R² of the mean, or mean
CRPS) is then fitted on every training sample. The report says what was chosen and every candidate's score.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold

from sptgnn.config import Config
from sptgnn.data.samples import SamplesError, SoilSamples
from sptgnn.estimator.query import QueryPredictor
from sptgnn.train.ensemble import DeepEnsemble


def candidate_configs(config: Config) -> list[Config]:
    """Each of ``selection.candidates`` applied to ``config`` (whose selection is then emptied)."""
    base = config.updated(selection={"candidates": []})
    return [base.updated(**cand) if cand else base for cand in config.selection.candidates]


def select_config(config: Config, samples: SoilSamples,
                  progress: Callable[[str], None] | None = None) -> tuple[Config, dict]:
    """The candidate configuration an inner K-fold of ``samples`` scores best, and the report.

    Args:
        config: Run configuration with ``selection.candidates`` (fewer than two: ``config`` itself, empty report).
        samples: The training samples (an outer fold's training part).
        progress: Called with ``"inner candidate c/C fold k/K"`` after each inner fit.

    Returns:
        The chosen configuration (its ``selection`` emptied) and ``{"selected", "candidate", "metric",
        "inner_scores"}``.

    Raises:
        SamplesError: Too few samples for ``selection.folds`` parts.
    """
    sc = config.selection
    if len(sc.candidates) < 2:
        return config, {}
    if len(samples) < 2 * sc.folds:
        raise SamplesError(f"{samples.name}: {len(samples)} training samples are too few for a {sc.folds}-fold inner "
                           "selection; lower selection.folds or give one candidate")
    folds = list(KFold(sc.folds, shuffle=True, random_state=config.train.seed).split(np.arange(len(samples))))
    target, scores = config.data.target, []
    candidates = candidate_configs(config)
    for c, cand in enumerate(candidates):
        inner = cand if sc.metric == "crps" else cand.updated(calibration={"method": "none"}, student={"enabled": False})
        y, mean, crps = [], [], []
        for k, (train, test) in enumerate(folds):
            held = samples.subset(test)
            # the cached query path every other prediction of a run takes (tests/estimator/test_query.py)
            pred = QueryPredictor(DeepEnsemble(inner).fit(samples.subset(train))).predict(held)
            y.append(held.target(target))
            mean.append(pred.mean)
            if sc.metric == "crps":  # the mixture's CRPS only where it is the score
                crps.append(pred.crps(y[-1]))
            if progress is not None:
                progress(f"inner candidate {c + 1}/{len(candidates)} fold {k + 1}/{len(folds)}")
        y_all = np.concatenate(y)
        score = r2_score(y_all, np.concatenate(mean)) if sc.metric == "r2" else -float(np.concatenate(crps).mean())
        scores.append(float(score))
    best = int(np.argmax(scores))  # ties keep the earlier candidate
    report = {"selected": best, "candidate": sc.candidates[best], "metric": sc.metric,
              "inner_scores": [round(s if sc.metric == "r2" else -s, 4) for s in scores]}
    return candidates[best], report


__all__ = ["candidate_configs", "select_config"]
