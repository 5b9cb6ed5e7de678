"""DSM baselines on the same folds and features as SpTGNN, behind the same protocol: ``fit(samples)`` and
``predict_dist(samples)``.

XGBoost and random forest, each with a ``+xy`` variant that adds the coordinates as features (the usual "coordinates as
covariates" trick of DSM, e.g. Hengl et al. 2018) and a ``+fm`` variant that adds the location foundation model's
features (GeoCLIP embeddings of the coordinates, PCA fitted on the training fold; :mod:`sptgnn.imagery.location`), the
same the ``location_fm`` stream gives SpTGNN; the quantile baselines ``qrf`` (quantile regression forest) and
``xgboost_quantile`` (XGBoost with the quantile loss), which give a distribution as quantiles at
:data:`QUANTILE_LEVELS`; and ``regression_kriging`` (:mod:`sptgnn.models.kriging`). Each is a scikit-learn estimator
(``clone`` gives a fresh one per fold) that reads the imagery and environment streams of
:class:`~sptgnn.data.samples.SoilSamples`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestRegressor
from xgboost import XGBRegressor

from sptgnn.threads import tree_threads

from sptgnn.data.samples import SoilSamples
from sptgnn.models.protocol import ModelHooks
from sptgnn.distributions import MomentForecast, QuantileForecast
from sptgnn.models.backtransform import duan_smearing, out_of_fold_residuals, smeared_forecast

BASELINES = ("xgboost", "random_forest", "xgboost+xy", "random_forest+xy")
QUANTILE_BASELINES = ("qrf", "xgboost_quantile", "qrf+xy", "xgboost_quantile+xy")
#: The ``+fm`` variants (they need the ``geoclip`` package): trees and quantile models plus location-FM features.
TREE_FM_BASELINES = ("xgboost+fm", "random_forest+fm")
QUANTILE_FM_BASELINES = ("qrf+fm", "xgboost_quantile+fm")
FM_BASELINES = TREE_FM_BASELINES + QUANTILE_FM_BASELINES
LOCATION_FM_DIMS = 16  #: Principal components of the ``+fm`` variants' GeoCLIP embeddings (``model.location_fm.dims``).
QUANTILE_LEVELS = tuple(round(0.025 * i, 3) for i in range(1, 40))  # 0.025 … 0.975: holds every interval end point
SPATIAL_BASELINES = ("regression_kriging", "kpr_random_forest")  # in sptgnn.models.kriging and .kriging_prior
#: Boosting rounds and learning rate of ``xgboost_quantile``. Every round grows one tree per quantile level (39), so
#: 500 rounds were 19,500 trees and 16 % of the main job's CPU; 100 rounds at 0.2 cost a fifth and scored a lower CRPS
#: on BB.250, SC.50, G.150 and B.204 (R² within 0.01; ``scripts/benchmark_baseline_size.py``).
XGB_QUANTILE_ROUNDS, XGB_QUANTILE_LR = 100, 0.2
MEAN_GRID = tuple((np.arange(100) + 0.5) / 100)  # midpoint levels of a quantile forest's mean in target units


def baseline_features(samples: SoilSamples, with_xy: bool) -> np.ndarray:
    """Imagery and environment features (the SpTGNN streams' columns), plus coordinates (m) for ``+xy``.

    Shapes:
        ``(num_samples, num_features [+ d])``.
    """
    x = samples.frame[samples.feature_columns].to_numpy(dtype=float)
    return np.c_[x, samples.metric_coords()] if with_xy else x


def base_name(name: str) -> str:
    """A baseline's learner without its input suffixes (``+xy``, ``+fm``): ``random_forest+fm`` → ``random_forest``."""
    return name.removesuffix("+fm").removesuffix("+xy")


class BaselineInputs:
    """The inputs of a baseline by its name: :func:`baseline_features`, plus with ``+fm`` the location foundation
    model's features (:class:`~sptgnn.imagery.location.LocationFM`, fitted on the training samples' locations, never on
    a label). Needs ``name`` and ``fm_dims`` attributes."""

    name: str
    fm_dims: int = LOCATION_FM_DIMS

    def features(self, samples: SoilSamples, fitting: bool = False) -> np.ndarray:
        """The model's inputs ``(n, num_features)`` (``fitting``: of the training samples, which fit the ``+fm``
        projection).

        Raises:
            LocationEncoderMissing: A ``+fm`` variant without the ``geoclip`` package.
        """
        x = baseline_features(samples, "+xy" in self.name)
        if not self.name.endswith("+fm"):
            return x
        if fitting:
            from sptgnn.imagery.location import LocationFM

            self.location_ = LocationFM(self.fm_dims).fit(samples.lonlat())
        return np.c_[x, self.location_.transform(samples.lonlat())]


def n_jobs() -> int:
    """Threads of the tree baselines: the project's one thread policy (:func:`sptgnn.threads.tree_threads`)."""
    return tree_threads()


def make_regressor(name: str, seed: int = 0, trees: int | None = None, max_features: float | None = None):
    """A fresh scikit-learn-compatible regressor for a baseline name (``+xy`` is handled by the features); ``trees``
    and ``max_features`` (share of features per split) set the random forest's, ``None`` keeping its default."""
    base = base_name(name)
    if base == "xgboost":
        return XGBRegressor(n_estimators=500, learning_rate=0.05, max_depth=4, subsample=0.8, colsample_bytree=0.8,
                            n_jobs=n_jobs(), random_state=seed)
    if base == "random_forest":
        forest = RandomForestRegressor(n_estimators=500, n_jobs=n_jobs(), random_state=seed)
        if trees is not None:
            forest.set_params(n_estimators=trees)
        if max_features is not None:
            forest.set_params(max_features=max_features)
        return forest
    raise ValueError(f"unknown baseline '{name}'; valid: {', '.join(BASELINES + TREE_FM_BASELINES)}")


class TreeBaseline(BaselineInputs, ModelHooks, BaseEstimator):
    """XGBoost or random forest on the samples' covariates (``name`` ending in ``+xy``: plus the coordinates).

    The random forest's sd is ``sqrt(tree spread² + out-of-bag MSE)``: the spread of its trees' predictions (a common
    DSM proxy of the model's own uncertainty, far too narrow alone, e.g. with one covariate) plus the noise variance
    estimated from its out-of-bag residuals; XGBoost gives a point forecast. With ``transform="log1p"`` the model is
    fitted on ``log1p(target)`` (as SpTGNN with ``data.target_transform: log1p``) and back-transformed as every model
    is (:mod:`sptgnn.models.backtransform`): its ``mean`` is Duan's smearing estimate from out-of-bag (random forest) or 5-fold cross-fitted (XGBoost)
    log-scale residuals, its ``median`` ``expm1(prediction)``, its sd the delta-method ``(1 + mean) · sd_log`` and its
    ``mean_log`` the raw prediction.

    Args:
        name: One of :data:`BASELINES` or :data:`TREE_FM_BASELINES`.
        target: Target column (SOC in g/kg for ``soc_g_kg``).
        transform: ``"none"`` or ``"log1p"``.
        seed: Seed of the model.
        trees, max_features: Random forest size and share of features per split (``None``: defaults).
        fm_dims: Principal components of the ``+fm`` features.
    """

    def __init__(self, name: str = "random_forest", target: str = "soc_g_kg", transform: str = "none", seed: int = 0,
                 trees: int | None = None, max_features: float | None = None, fm_dims: int = LOCATION_FM_DIMS):
        self.name, self.target, self.transform, self.seed = name, target, transform, seed
        self.trees, self.max_features, self.fm_dims = trees, max_features, fm_dims

    def fit(self, samples: SoilSamples, y=None, progress: Callable[[str], None] | None = None) -> "TreeBaseline":
        """Fit on the training samples (their ``target`` column, or ``y`` ``(n,)`` in target units)."""
        self.model_ = make_regressor(self.name, self.seed, self.trees, self.max_features)
        y = samples.target(self.target) if y is None else np.asarray(y, dtype=float)
        x = self.features(samples, fitting=True)
        logged, forest = self.transform == "log1p", isinstance(self.model_, RandomForestRegressor)
        sites = samples.sites()
        if forest and sites is None:  # out-of-bag residuals for the sd and the smearing, at no extra fit (profile
            self.model_.set_params(oob_score=True)  # layers: their out-of-bag predictions saw the same profile)
        yt = np.log1p(y) if logged else y
        self.model_.fit(x, yt)
        residuals = out_of_fold_residuals(self.model_, x, yt, self.seed, sites=sites) if (forest or logged) else None
        self.oob_mse_ = float(np.mean(residuals**2)) if forest else None
        self.smearing_ = duan_smearing(residuals) if logged else None
        if progress is not None:
            progress("fitted")
        return self

    def predict_dist(self, samples: SoilSamples) -> MomentForecast:
        """Mean (and the forest's tree sd) of each query sample, target units."""
        x = self.features(samples)
        mean = np.asarray(self.model_.predict(x), dtype=float)
        sd = None
        if isinstance(self.model_, RandomForestRegressor):
            spread = np.stack([t.predict(x) for t in self.model_.estimators_]).std(0)
            sd = np.maximum(np.sqrt(spread**2 + self.oob_mse_), 1e-6)
        if self.transform == "log1p":
            return smeared_forecast(mean, self.smearing_, sd)
        return MomentForecast(mean, sd)


def make_quantile_regressor(name: str, levels=QUANTILE_LEVELS, seed: int = 0, trees: int | None = None,
                            max_features: float | None = None):
    """A fresh quantile regressor: ``qrf`` (Meinshausen 2006, ``quantile_forest.RandomForestQuantileRegressor``, 500
    trees or ``trees``, all features per split or the share ``max_features``) or ``xgboost_quantile`` (one XGBoost model
    with the pinball loss at every level, ``reg:quantileerror``: :data:`XGB_QUANTILE_ROUNDS` rounds at learning rate
    :data:`XGB_QUANTILE_LR`, the ``xgboost`` baseline's depth and subsampling)."""
    base = base_name(name)
    if base == "qrf":
        from quantile_forest import RandomForestQuantileRegressor

        return RandomForestQuantileRegressor(n_estimators=trees or 500, max_features=max_features or 1.0,
                                             n_jobs=n_jobs(), random_state=seed)
    if base == "xgboost_quantile":
        return XGBRegressor(objective="reg:quantileerror", quantile_alpha=np.asarray(levels),
                            n_estimators=XGB_QUANTILE_ROUNDS, learning_rate=XGB_QUANTILE_LR, max_depth=4, subsample=0.8, colsample_bytree=0.8, n_jobs=n_jobs(),
                            random_state=seed)
    raise ValueError(f"unknown quantile baseline '{name}'; valid: {', '.join(QUANTILE_BASELINES + QUANTILE_FM_BASELINES)}")


class QuantileBaseline(BaselineInputs, ModelHooks, BaseEstimator):
    """Quantile regression forest (``qrf``) or XGBoost quantile regression (``xgboost_quantile``), ``+xy`` variants too.

    :meth:`predict_dist` gives a :class:`~sptgnn.distributions.QuantileForecast` at ``levels`` (crossing quantiles
    sorted); its CRPS is the quantile-grid approximation (:func:`~sptgnn.distributions.crps_from_quantiles`). Its
    ``mean`` is the mean of the model's predictive distribution: the forest's conditional mean (``qrf``, no
    transform), ``∫₀¹ expm1(Q_log(p)) dp`` on :data:`MEAN_GRID` midpoint levels (``qrf``, ``log1p``), or the integral
    over ``levels`` (``xgboost_quantile``, which predicts no other levels). With ``transform="log1p"`` the model is
    fitted on ``log1p(target)`` and its quantiles are ``expm1`` of the log-scale ones (exact: quantiles follow a
    monotone transform); ``mean_log`` is then its log-scale point prediction (the forest's conditional mean, or the
    median quantile).

    Args:
        name: One of :data:`QUANTILE_BASELINES` or :data:`QUANTILE_FM_BASELINES`.
        target: Target column.
        seed: Seed of the model.
        levels: Quantile levels in (0, 1).
        transform: ``"none"`` or ``"log1p"``.
        trees, max_features: The quantile forest's size and share of features per split (``None``: 500, all).
        fm_dims: Principal components of the ``+fm`` features.
    """

    def __init__(self, name: str = "qrf", target: str = "soc_g_kg", seed: int = 0, levels=QUANTILE_LEVELS,
                 transform: str = "none", trees: int | None = None, max_features: float | None = None,
                 fm_dims: int = LOCATION_FM_DIMS):
        self.name, self.target, self.seed, self.levels = name, target, seed, levels
        self.transform, self.trees, self.max_features, self.fm_dims = transform, trees, max_features, fm_dims

    def fit(self, samples: SoilSamples, y=None, progress: Callable[[str], None] | None = None) -> "QuantileBaseline":
        """Fit on the training samples (their ``target`` column, or ``y``)."""
        self.model_ = make_quantile_regressor(self.name, self.levels, self.seed, self.trees, self.max_features)
        y = samples.target(self.target) if y is None else np.asarray(y, dtype=float)
        self.model_.fit(self.features(samples, fitting=True), np.log1p(y) if self.transform == "log1p" else y)
        if progress is not None:
            progress("fitted")
        return self

    def predict_dist(self, samples: SoilSamples) -> QuantileForecast:
        """Quantiles ``(n, L)`` of each query sample, target units."""
        x = self.features(samples)
        levels, logged = list(self.levels), self.transform == "log1p"
        back = np.expm1 if logged else (lambda a: a)
        if self.name.startswith("qrf"):
            q = np.asarray(self.model_.predict(x, quantiles=levels), dtype=float)
            forest_mean = np.asarray(self.model_.predict(x, quantiles="mean"), dtype=float)
            if not logged:
                return QuantileForecast(levels, q, forest_mean)
            dense = np.asarray(self.model_.predict(x, quantiles=list(MEAN_GRID)), dtype=float)
            return QuantileForecast(levels, np.expm1(q), np.expm1(dense).mean(1), mean_log=forest_mean)
        q = np.sort(np.asarray(self.model_.predict(x), dtype=float).reshape(len(samples), len(levels)), axis=1)
        median_log = np.array([np.interp(0.5, levels, row) for row in q])
        return QuantileForecast(levels, back(q), mean_log=median_log if logged else None)


__all__ = ["BASELINES", "FM_BASELINES", "QUANTILE_FM_BASELINES", "TREE_FM_BASELINES", "LOCATION_FM_DIMS", "BaselineInputs", "base_name", "MEAN_GRID", "QUANTILE_BASELINES", "QUANTILE_LEVELS", "SPATIAL_BASELINES", "QuantileBaseline", "TreeBaseline",
           "baseline_features", "make_quantile_regressor", "make_regressor", "n_jobs"]
