"""DSM baselines on the same folds and features as SpTGNN: XGBoost and random forest, with a ``+xy`` variant that adds
the coordinates as features (the usual "coordinates as covariates" trick of DSM, e.g. Hengl et al. 2018), and the
quantile baselines ``qrf`` (quantile regression forest) and ``xgboost_quantile`` (XGBoost with the quantile loss),
which give a distribution as quantiles at :data:`QUANTILE_LEVELS`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from xgboost import XGBRegressor

from sptgnn.data.samples import SoilSamples

BASELINES = ("xgboost", "random_forest", "xgboost+xy", "random_forest+xy")
QUANTILE_BASELINES = ("qrf", "xgboost_quantile", "qrf+xy", "xgboost_quantile+xy")
QUANTILE_LEVELS = tuple(round(0.025 * i, 3) for i in range(1, 40))  # 0.025 … 0.975: holds every interval end point


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
    forecast: object | None = None  # a distribution (``cdf``/``quantiles``/``crps``/``logpdf``) for quantile baselines


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
    point forecast. Quantile baselines (:data:`QUANTILE_BASELINES`) go to :func:`fit_predict_quantile_baseline`.
    """
    if name in QUANTILE_BASELINES:
        return fit_predict_quantile_baseline(name, train, test, target, seed)
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


def make_quantile_regressor(name: str, levels=QUANTILE_LEVELS, seed: int = 0):
    """A fresh quantile regressor: ``qrf`` (Meinshausen 2006, ``quantile_forest.RandomForestQuantileRegressor``, 500
    trees) or ``xgboost_quantile`` (one XGBoost model with the pinball loss at every level, ``reg:quantileerror``,
    the same trees and learning rate as the ``xgboost`` baseline)."""
    base = name.removesuffix("+xy")
    if base == "qrf":
        from quantile_forest import RandomForestQuantileRegressor

        return RandomForestQuantileRegressor(n_estimators=500, n_jobs=2, random_state=seed)
    if base == "xgboost_quantile":
        return XGBRegressor(objective="reg:quantileerror", quantile_alpha=np.asarray(levels), n_estimators=500,
                            learning_rate=0.05, max_depth=4, subsample=0.8, colsample_bytree=0.8, n_jobs=2,
                            random_state=seed)
    raise ValueError(f"unknown quantile baseline '{name}'; valid: {', '.join(QUANTILE_BASELINES)}")


def fit_predict_quantile_baseline(name: str, train: SoilSamples, test: SoilSamples, target: str, seed: int = 0,
                                  levels=QUANTILE_LEVELS) -> BaselineResult:
    """Fit a quantile baseline on the training fold and predict quantiles of the test fold.

    Returns:
        :class:`BaselineResult` whose ``forecast`` is a :class:`~sptgnn.evaluate.metrics.QuantileForecast` at
        ``levels`` (crossing quantiles sorted) and whose ``mean`` is the forest's conditional mean (``qrf``) or the
        median (``xgboost_quantile``); ``sd`` is ``None``. CRPS is then the quantile-grid approximation
        (:func:`~sptgnn.evaluate.metrics.crps_from_quantiles`).
    """
    from sptgnn.evaluate.metrics import QuantileForecast

    with_xy = name.endswith("+xy")
    model = make_quantile_regressor(name, levels, seed)
    start = time.perf_counter()
    model.fit(baseline_features(train, with_xy), train.target(target))
    fit_seconds = time.perf_counter() - start
    x_test = baseline_features(test, with_xy)
    if name.startswith("qrf"):
        q = np.asarray(model.predict(x_test, quantiles=list(levels)), dtype=float)
        mean = np.asarray(model.predict(x_test, quantiles="mean"), dtype=float)
    else:
        q = np.asarray(model.predict(x_test), dtype=float).reshape(len(test), len(levels))
        mean = None
    forecast = QuantileForecast(levels, q)
    if mean is None:
        mean = forecast.quantiles([0.5])[:, 0]
    return BaselineResult(mean=mean.reshape(-1), sd=None, fit_seconds=fit_seconds, forecast=forecast)
