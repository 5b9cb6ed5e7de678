"""DSM baselines on the same folds and features as SpTGNN: XGBoost and random forest, with a ``+xy`` variant that adds
the coordinates as features (the usual "coordinates as covariates" trick of DSM, e.g. Hengl et al. 2018), and the
quantile baselines ``qrf`` (quantile regression forest) and ``xgboost_quantile`` (XGBoost with the quantile loss),
which give a distribution as quantiles at :data:`QUANTILE_LEVELS`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from xgboost import XGBRegressor

from sptgnn.data.samples import SoilSamples

BASELINES = ("xgboost", "random_forest", "xgboost+xy", "random_forest+xy")
QUANTILE_BASELINES = ("qrf", "xgboost_quantile", "qrf+xy", "xgboost_quantile+xy")
QUANTILE_LEVELS = tuple(round(0.025 * i, 3) for i in range(1, 40))  # 0.025 … 0.975: holds every interval end point
#: Baselines that are not a single regressor, run by their own function (:func:`regression_kriging`).
SPATIAL_BASELINES = ("regression_kriging",)


def baseline_features(samples: SoilSamples, with_xy: bool) -> np.ndarray:
    """Imagery and environment features (the SpTGNN streams' columns), plus coordinates (m) for ``+xy``.

    Shapes:
        ``(num_samples, num_features [+ d])``.
    """
    x = samples.frame[samples.feature_columns].to_numpy(dtype=float)
    return np.c_[x, samples.metric_coords()] if with_xy else x


@dataclass
class BaselineResult:
    """Predictions of one baseline on one fold: ``mean`` and ``sd`` (``None`` for point forecasts), target units.

    ``mean_log``: the point prediction of ``log1p(target)`` when the baseline was fitted on ``log1p`` targets (its raw
    output), else ``None``.
    """

    mean: np.ndarray
    sd: np.ndarray | None
    fit_seconds: float
    forecast: object | None = None  # a distribution (``cdf``/``quantiles``/``crps``/``logpdf``) for quantile baselines
    mean_log: np.ndarray | None = None


def n_jobs() -> int:
    """Threads of the tree baselines: ``$OMP_NUM_THREADS`` when set (1 on a shared machine, where spinning threads
    slow every process down), else 2."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "2")))
    except ValueError:
        return 2


def make_regressor(name: str, seed: int = 0):
    """A fresh scikit-learn-compatible regressor for a baseline name (``+xy`` is handled by the features)."""
    base = name.removesuffix("+xy")
    if base == "xgboost":
        return XGBRegressor(n_estimators=500, learning_rate=0.05, max_depth=4, subsample=0.8, colsample_bytree=0.8,
                            n_jobs=n_jobs(), random_state=seed)
    if base == "random_forest":
        return RandomForestRegressor(n_estimators=500, n_jobs=n_jobs(), random_state=seed)
    raise ValueError(f"unknown baseline '{name}'; valid: {', '.join(BASELINES)}")


def fit_predict_baseline(name: str, train: SoilSamples, test: SoilSamples, target: str, seed: int = 0,
                         transform: str = "none", forest_trees: int | None = None,
                         forest_max_features: float | None = None) -> BaselineResult:
    """Fit a baseline on the training fold and predict the test fold.

    The random forest's sd is the spread of its trees' predictions (a common, uncalibrated DSM proxy); XGBoost gives a
    point forecast. Quantile baselines (:data:`QUANTILE_BASELINES`) go to :func:`fit_predict_quantile_baseline`.

    Args:
        transform: ``"log1p"`` fits on ``log1p(target)`` (as SpTGNN with ``data.target_transform: log1p``) and returns
            ``mean = expm1(prediction)`` (the back-transformed median) and the delta-method sd ``(1 + mean) · sd_log``.
        forest_trees: Trees of the random forests (``None``: the default of :func:`make_regressor`).
        forest_max_features: Share of features tried per split of the random forests (``None``: all).
    """
    if name in QUANTILE_BASELINES:
        return fit_predict_quantile_baseline(name, train, test, target, seed)
    with_xy = name.endswith("+xy")
    model = make_regressor(name, seed)
    if isinstance(model, RandomForestRegressor):
        if forest_trees is not None:
            model.set_params(n_estimators=forest_trees)
        if forest_max_features is not None:
            model.set_params(max_features=forest_max_features)
    y = train.target(target)
    start = time.perf_counter()
    model.fit(baseline_features(train, with_xy), np.log1p(y) if transform == "log1p" else y)
    fit_seconds = time.perf_counter() - start
    x_test = baseline_features(test, with_xy)
    mean = np.asarray(model.predict(x_test), dtype=float)
    sd = None
    if isinstance(model, RandomForestRegressor):
        trees = np.stack([t.predict(x_test) for t in model.estimators_])
        sd = np.maximum(trees.std(0), 1e-6)
    if transform == "log1p":
        back = np.expm1(mean)
        return BaselineResult(mean=back, sd=None if sd is None else np.maximum((1 + back) * sd, 1e-6),
                              fit_seconds=fit_seconds, mean_log=mean)
    return BaselineResult(mean=mean, sd=sd, fit_seconds=fit_seconds)


def make_quantile_regressor(name: str, levels=QUANTILE_LEVELS, seed: int = 0):
    """A fresh quantile regressor: ``qrf`` (Meinshausen 2006, ``quantile_forest.RandomForestQuantileRegressor``, 500
    trees) or ``xgboost_quantile`` (one XGBoost model with the pinball loss at every level, ``reg:quantileerror``,
    the same trees and learning rate as the ``xgboost`` baseline)."""
    base = name.removesuffix("+xy")
    if base == "qrf":
        from quantile_forest import RandomForestQuantileRegressor

        return RandomForestQuantileRegressor(n_estimators=500, n_jobs=n_jobs(), random_state=seed)
    if base == "xgboost_quantile":
        return XGBRegressor(objective="reg:quantileerror", quantile_alpha=np.asarray(levels), n_estimators=500,
                            learning_rate=0.05, max_depth=4, subsample=0.8, colsample_bytree=0.8, n_jobs=n_jobs(),
                            random_state=seed)
    raise ValueError(f"unknown quantile baseline '{name}'; valid: {', '.join(QUANTILE_BASELINES)}")


def fit_predict_quantile_baseline(name: str, train: SoilSamples, test: SoilSamples, target: str, seed: int = 0,
                                  levels=QUANTILE_LEVELS) -> BaselineResult:
    """Fit a quantile baseline on the training fold and predict quantiles of the test fold.

    Returns:
        :class:`BaselineResult` whose ``forecast`` is a :class:`~sptgnn.distributions.QuantileForecast` at
        ``levels`` (crossing quantiles sorted) and whose ``mean`` is the forest's conditional mean (``qrf``) or the
        median (``xgboost_quantile``); ``sd`` is ``None``. CRPS is then the quantile-grid approximation
        (:func:`~sptgnn.distributions.crps_from_quantiles`).
    """
    from sptgnn.distributions import QuantileForecast

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


# -- regression kriging ------------------------------------------------------------------------------------------------

def fit_variogram(coords_m: np.ndarray, values: np.ndarray, max_points: int = 3000, bins: int = 30, seed: int = 0) -> dict:
    """Fit an exponential variogram to values at planar coordinates (weighted least squares, Cressie 1985).

    The empirical semivariance (Matheron's estimator) is taken on geometrically spaced distance bins from the 1st
    percentile of pair distances to half the largest one, over at most ``max_points`` randomly drawn points (so the
    cost stays ``O(max_points²)``), and PyKrige's exponential model ``γ(h) = psill · (1 − exp(−3h / range)) + nugget``
    is fitted with bin weights ``N(h) / γ(h)²``.

    Args:
        coords_m: Planar coordinates (m), shape ``(num_points, 2)``.
        values: Values, shape ``(num_points,)``.

    Returns:
        ``{"sill": psill + nugget, "range": range_m, "nugget": nugget}``, the dict PyKrige's ``variogram_parameters``
        takes for the exponential model.
    """
    from scipy.optimize import curve_fit
    from scipy.spatial.distance import pdist

    rng = np.random.default_rng(seed)
    idx = rng.choice(len(values), size=min(max_points, len(values)), replace=False)
    d = pdist(coords_m[idx])
    g = 0.5 * pdist(values[idx, None], metric="sqeuclidean")
    var = float(np.var(values)) or 1.0
    pos = d > 0
    if pos.sum() < 10:
        return {"sill": var, "range": float(d.max() if d.size else 1.0) or 1.0, "nugget": 0.0}
    lo, hi = np.quantile(d[pos], 0.01), d.max() / 2
    edges = np.geomspace(max(lo, 1e-6), max(hi, lo * 1.01), bins + 1)
    which = np.digitize(d, edges) - 1
    ok = (which >= 0) & (which < bins)
    counts = np.bincount(which[ok], minlength=bins)
    gsum = np.bincount(which[ok], weights=g[ok], minlength=bins)
    hsum = np.bincount(which[ok], weights=d[ok], minlength=bins)
    keep = counts >= 10
    h, gamma, n = hsum[keep] / counts[keep], gsum[keep] / counts[keep], counts[keep]

    def model(hh, psill, rng_, nugget):
        return psill * (1.0 - np.exp(-3.0 * hh / rng_)) + nugget

    try:
        (psill, range_m, nugget), _ = curve_fit(
            model, h, gamma, p0=[var / 2, float(np.median(h)), var / 2],
            sigma=np.maximum(gamma, 1e-12) / np.sqrt(n), bounds=([0, h.min() / 10, 0], [10 * var, 10 * hi, 10 * var]),
            maxfev=20000,
        )
    except (RuntimeError, ValueError):
        psill, range_m, nugget = var / 2, float(np.median(h)), var / 2
    return {"sill": float(psill + nugget), "range": float(range_m), "nugget": float(nugget)}


def regression_kriging(train: SoilSamples, test: SoilSamples, target: str, seed: int = 0, transform: str = "none",
                       neighbours: int = 64, forest_trees: int | None = None,
                       forest_max_features: float | None = None) -> BaselineResult:
    """Regression kriging: a random forest on the covariates plus ordinary kriging of its residuals.

    The trend is a random forest on the imagery and environment features (no coordinates); its out-of-bag residuals on
    the training fold (in-bag residuals of a forest are shrunk towards zero) are kriged to the test points with PyKrige's
    :class:`~pykrige.ok.OrdinaryKriging` (exponential variogram fitted by :func:`fit_variogram`, moving window of the
    ``neighbours`` nearest residuals) and added to the trend (Hengl, Heuvelink & Rossiter 2007, "About regression-kriging:
    from equations to case studies", Computers & Geosciences 33). Coordinates are planar metres
    (:func:`sptgnn.splits.planar_coords`, lon/lat projected to an equal-area CRS). The sd is the kriging standard
    error of the residual (the trend's own error is not included). The nugget is kriged as measurement error
    (PyKrige's ``exact_values=False``): a test sample at a training sample's location (repeated samples of a plot,
    common in random folds of clustered data) gets the nugget variance, not the exact interpolator's zero variance.

    Args:
        transform: ``"log1p"`` works on ``log1p(target)`` and back-transforms as :func:`fit_predict_baseline`.
        neighbours: Residuals used at each test point.

    Returns:
        :class:`BaselineResult`; ``fit_seconds`` covers the forest, the variogram and the kriging.
    """
    from pykrige.ok import OrdinaryKriging

    from sptgnn.splits import planar_coords, planar_crs

    start = time.perf_counter()
    forest = make_regressor("random_forest", seed)
    forest.set_params(oob_score=True)
    if forest_trees is not None:
        forest.set_params(n_estimators=forest_trees)
    if forest_max_features is not None:
        forest.set_params(max_features=forest_max_features)
    y = train.target(target)
    yt = np.log1p(y) if transform == "log1p" else y
    forest.fit(baseline_features(train, False), yt)
    residual = yt - forest.oob_prediction_
    trend = forest.predict(baseline_features(test, False))
    crs = planar_crs(train)
    xy_train, xy_test = planar_coords(train, crs), planar_coords(test, crs)
    params = fit_variogram(xy_train, residual, seed=seed)
    ok = OrdinaryKriging(xy_train[:, 0], xy_train[:, 1], residual, variogram_model="exponential",
                         variogram_parameters=params, enable_statistics=False, exact_values=False)
    k = min(neighbours, len(train))
    z, ss = ok.execute("points", xy_test[:, 0], xy_test[:, 1], n_closest_points=k, backend="loop")
    mean = trend + np.asarray(z, dtype=float)
    sd = np.sqrt(np.maximum(np.asarray(ss, dtype=float), 1e-12))
    fit_seconds = time.perf_counter() - start
    if transform == "log1p":
        back = np.expm1(mean)
        return BaselineResult(mean=back, sd=np.maximum((1 + back) * sd, 1e-6), fit_seconds=fit_seconds, mean_log=mean)
    return BaselineResult(mean=mean, sd=np.maximum(sd, 1e-6), fit_seconds=fit_seconds)
