"""Regression kriging (Hengl, Heuvelink & Rossiter 2007, "About regression-kriging: from equations to case studies",
Computers & Geosciences 33): a random forest on the covariates plus ordinary kriging of its residuals (PyKrige), on the
baselines' protocol (``fit(samples)``, ``predict_dist(samples)``)."""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.base import BaseEstimator

from sptgnn.data.samples import SoilSamples
from sptgnn.models.protocol import ModelHooks
from sptgnn.distributions import LognormalForecast, MomentForecast
from sptgnn.models.baselines import baseline_features, make_regressor
from sptgnn.splits import planar_coords, planar_crs


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


def merge_duplicates(xy: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average the values of points that share their coordinates (repeated samples of a plot).

    Two kriging points at one location make the kriging matrix singular (its two rows are equal), and the solver's
    answer is then noise: sds near 0 and predictions far outside the data. Kriging the location means avoids it.

    Shapes:
        ``xy`` ``(n, 2)``, ``values`` ``(n,)`` → ``(u, 2)``, ``(u,)`` with ``u`` unique locations (first-seen order).
    """
    xy, values = np.asarray(xy, dtype=float), np.asarray(values, dtype=float)
    unique, first, inverse = np.unique(xy, axis=0, return_index=True, return_inverse=True)
    if len(unique) == len(xy):
        return xy, values
    order = np.argsort(first)  # keep the points' first-seen order
    means = np.bincount(inverse.reshape(-1), weights=values) / np.bincount(inverse.reshape(-1))
    return unique[order], means[order]


class RegressionKriging(ModelHooks, BaseEstimator):
    """Random-forest trend plus ordinary kriging of its residuals.

    The trend is a random forest on the imagery and environment features (no coordinates); its out-of-bag residuals on
    the training samples (in-bag residuals of a forest are shrunk towards zero) are kriged to the query points with
    PyKrige's :class:`~pykrige.ok.OrdinaryKriging` (exponential variogram fitted by :func:`fit_variogram`, moving window
    of the ``neighbours`` nearest residuals) and added to the trend. Coordinates are planar metres
    (:func:`sptgnn.splits.planar_coords`, lon/lat projected to the training samples' equal-area CRS). The sd is the
    kriging standard error of the residual (the trend's own error is not included). The nugget is kriged as
    measurement error (PyKrige's ``exact_values=False``): a query at a training sample's location (repeated samples of
    a plot, common in random folds of clustered data) gets the nugget variance, not the exact interpolator's zero.
    Training samples that share coordinates are kriged as one point with their mean residual
    (:func:`merge_duplicates`).

    Args:
        target: Target column.
        transform: ``"log1p"`` works on ``log1p(target)``; the forecast is then the lognormal of the log-scale
            prediction and kriging sd (:class:`~sptgnn.distributions.LognormalForecast`: mean
            ``exp(μ + σ²/2) − 1``, median ``expm1(μ)``).
        seed: Seed of the forest and the variogram's point draw.
        neighbours: Residuals used at each query point.
        trees, max_features: Random forest size and share of features per split (``None``: defaults).
    """

    def __init__(self, target: str = "soc_g_kg", transform: str = "none", seed: int = 0, neighbours: int = 64,
                 trees: int | None = None, max_features: float | None = None):
        self.target, self.transform, self.seed, self.neighbours = target, transform, seed, neighbours
        self.trees, self.max_features = trees, max_features

    def fit(self, samples: SoilSamples, y=None, progress: Callable[[str], None] | None = None) -> "RegressionKriging":
        """Fit the forest, its out-of-bag residuals' variogram and the kriging system on the training samples."""
        from pykrige.ok import OrdinaryKriging

        forest = make_regressor("random_forest", self.seed, self.trees, self.max_features).set_params(oob_score=True)
        y = samples.target(self.target) if y is None else np.asarray(y, dtype=float)
        yt = np.log1p(y) if self.transform == "log1p" else y
        forest.fit(baseline_features(samples, False), yt)
        residual = yt - forest.oob_prediction_
        self.crs_ = planar_crs(samples)
        xy, residual = merge_duplicates(planar_coords(samples, self.crs_), residual)
        self.variogram_ = fit_variogram(xy, residual, seed=self.seed)
        self.forest_, self.n_train_ = forest, len(samples)
        self.kriging_ = OrdinaryKriging(xy[:, 0], xy[:, 1], residual, variogram_model="exponential",
                                        variogram_parameters=self.variogram_, enable_statistics=False, exact_values=False,
                                        nlags=1)  # the unused experimental variogram: one O(n²) pass, not six
        if progress is not None:
            progress("fitted")
        return self

    def predict_dist(self, samples: SoilSamples) -> MomentForecast | LognormalForecast:
        """Trend plus kriged residual and the kriging sd of each query sample, target units."""
        trend = self.forest_.predict(baseline_features(samples, False))
        xy = planar_coords(samples, self.crs_)
        z, ss = self.kriging_.execute("points", xy[:, 0], xy[:, 1], n_closest_points=min(self.neighbours, self.n_train_),
                                      backend="C")
        mean = trend + np.asarray(z, dtype=float)
        sd = np.sqrt(np.maximum(np.asarray(ss, dtype=float), 1e-12))
        if self.transform == "log1p":
            return LognormalForecast(mean, sd)
        return MomentForecast(mean, np.maximum(sd, 1e-6))


__all__ = ["RegressionKriging", "fit_variogram", "merge_duplicates"]
