"""DSM baselines on the same folds and features as SpTGNN: XGBoost and random forest, with a ``+xy`` variant that adds
the coordinates as features (the usual "coordinates as covariates" trick of DSM, e.g. Hengl et al. 2018)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from xgboost import XGBRegressor

from sptgnn.data.samples import SoilSamples

BASELINES = ("xgboost", "random_forest", "xgboost+xy", "random_forest+xy")


def baseline_features(samples: SoilSamples, with_xy: bool) -> np.ndarray:
    """Imagery and environment features (the SpTGNN streams' columns), plus coordinates (m) for ``+xy``.

    Shapes:
        ``(num_samples, num_features [+ d])``.
    """
    x = samples.frame[samples.feature_columns].to_numpy(dtype=float)
    return np.c_[x, samples.metric_coords()] if with_xy else x


@dataclass
class BaselineResult:
    """Predictions of one baseline on one fold: ``mean`` and ``sd`` (``None`` for point forecasts), target units."""

    mean: np.ndarray
    sd: np.ndarray | None
    fit_seconds: float


def make_regressor(name: str, seed: int = 0):
    """A fresh scikit-learn-compatible regressor for a baseline name (``+xy`` is handled by the features)."""
    base = name.removesuffix("+xy")
    if base == "xgboost":
        return XGBRegressor(n_estimators=500, learning_rate=0.05, max_depth=4, subsample=0.8, colsample_bytree=0.8,
                            n_jobs=2, random_state=seed)
    if base == "random_forest":
        return RandomForestRegressor(n_estimators=500, n_jobs=2, random_state=seed)
    raise ValueError(f"unknown baseline '{name}'; valid: {', '.join(BASELINES)}")


def fit_predict_baseline(name: str, train: SoilSamples, test: SoilSamples, target: str, seed: int = 0) -> BaselineResult:
    """Fit a baseline on the training fold and predict the test fold.

    The random forest's sd is the spread of its trees' predictions (a common, uncalibrated DSM proxy); XGBoost gives a
    point forecast.
    """
    with_xy = name.endswith("+xy")
    model = make_regressor(name, seed)
    start = time.perf_counter()
    model.fit(baseline_features(train, with_xy), train.target(target))
    fit_seconds = time.perf_counter() - start
    x_test = baseline_features(test, with_xy)
    mean = model.predict(x_test)
    sd = None
    if isinstance(model, RandomForestRegressor):
        trees = np.stack([t.predict(x_test) for t in model.estimators_])
        sd = np.maximum(trees.std(0), 1e-6)
    return BaselineResult(mean=np.asarray(mean, dtype=float), sd=sd, fit_seconds=fit_seconds)
