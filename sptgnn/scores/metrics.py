"""Scores of out-of-fold predictions, the same function for SpTGNN and every baseline (rule 4 of DESIGN.md).

R² is pooled over all out-of-fold predictions (``1 − SSE/SST``, rule 5), RMSE and MAE are in target units, MAPE in %
over the observations that are not zero (LimeSoDa B.204 and BB.72 hold SOC = 0 g/kg).

Distributional scores are computed per sample from the forecast's own distribution and then averaged (pooled):

* a forecast object with ``cdf``, ``quantiles``, ``crps`` and ``logpdf`` (the SpTGNN Gaussian mixture,
  :class:`sptgnn.distributions.Prediction`, or :class:`QuantileForecast` of a quantile baseline) gives the per-sample
  columns of :func:`distribution_columns`;
* a mean and sd only: a Gaussian (CRPS in closed form, Gneiting & Raftery 2007, via ``scoringrules``);
* a point forecast (no sd): CRPS = MAE (the CRPS of a point mass), no NLL, PICP or calibration error.

NLL is in nats (mean negative log predictive density in target units). Calibration error and miscalibration area are
interval-based (Kuleshov et al. 2018, as defined in ``uncertainty-toolbox``): for 100 nominal levels
``p = linspace(0, 1, 100)`` the observed proportion is the share of observations inside the central ``p`` interval of
their forecast, i.e. whose PIT value ``u = F(y)`` satisfies ``|u − 0.5| ≤ p/2``; the calibration error is the mean of
``|observed − p|`` and the miscalibration area the area between the observed-proportion curve and the diagonal.
PICPxx is the share inside the central xx % interval and MPIWxx its mean width (target units), for 50/80/90/95 %.
Moran's I of residuals uses ``esda.Moran`` on row-standardised k-nearest-neighbour weights with a permutation p-value.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scoringrules as sr
from scipy.stats import norm
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error, r2_score

from sptgnn.distributions.pit import (  # noqa: F401  (re-exported: the scores of every model live here)
    CALIBRATION_BINS,
    calibration_scores,
    interval_calibration_curve,
    miscalibration_area,
)



def mape(y: np.ndarray, mean: np.ndarray) -> float | None:
    """MAPE (%) over samples with ``y != 0`` (a zero observation has no percentage error); ``None`` if all are zero."""
    nz = y != 0
    return float(100 * mean_absolute_percentage_error(y[nz], mean[nz])) if nz.any() else None


def mean_error(y: np.ndarray, mean: np.ndarray) -> tuple[float, float | None]:
    """Mean error (bias) ``ME = mean(ŷ − y)`` in target units (positive: over-prediction) and as % of the observed
    mean ``100 · ME / mean(y)`` (``None`` when the observed mean is 0)."""
    me = float(np.mean(np.asarray(mean, dtype=float) - np.asarray(y, dtype=float)))
    ybar = float(np.mean(y))
    return me, (100.0 * me / ybar if ybar != 0 else None)


def lins_ccc(y: np.ndarray, mean: np.ndarray) -> float | None:
    """Lin's concordance correlation coefficient (Lin 1989, Biometrics 45, 255–268, eq. 2a):
    ``ρc = 2 s_xy / (s_x² + s_y² + (x̄ − ȳ)²)`` with moments over ``n`` (not ``n − 1``); 1 is perfect agreement with the
    1:1 line. ``None`` when both are constant and equal."""
    x, z = np.asarray(y, dtype=float), np.asarray(mean, dtype=float)
    denom = x.var() + z.var() + (x.mean() - z.mean()) ** 2
    return float(2 * np.mean((x - x.mean()) * (z - z.mean())) / denom) if denom > 0 else None


def picp(y: np.ndarray, mean: np.ndarray, sd: np.ndarray, level: float = 0.9) -> float:
    """Prediction interval coverage probability of the central ``level`` Gaussian interval."""
    half = norm.ppf(0.5 + level / 2) * sd
    return float(np.mean((y >= mean - half) & (y <= mean + half)))


def knn_weights(coords: np.ndarray, k: int):
    """Row-standardised libpysal k-nearest-neighbour weights over metric coordinates ``(num_samples, d)``."""
    from libpysal.weights import KNN

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = KNN(np.asarray(coords, dtype=float), k=min(k, len(coords) - 1))
    w.transform = "r"
    return w


def residual_morans_i(residuals: np.ndarray, coords: np.ndarray, k: int = 8, permutations: int = 199, seed: int = 0) -> tuple[float, float]:
    """Moran's I of residuals and its permutation p-value (``esda.Moran``), kNN weights, row-standardised."""
    from esda.moran import Moran

    np.random.seed(seed)  # esda draws permutations from numpy's global generator
    m = Moran(np.asarray(residuals, dtype=float), knn_weights(coords, k), permutations=permutations)
    return float(m.I), float(m.p_sim) if permutations else float("nan")  # no permutations: no p-value


INTERVAL_LEVELS = (0.5, 0.8, 0.9, 0.95)


def _interval_columns(lower: dict, upper: dict) -> dict[str, np.ndarray]:
    out = {}
    for level in INTERVAL_LEVELS:
        tag = round(100 * level)
        out[f"lower{tag}"], out[f"upper{tag}"] = lower[level], upper[level]
    return out


def gaussian_columns(y: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample distributional columns of Gaussian forecasts ``N(mean, sd²)``: ``pit``, ``crps``, ``nll`` and the
    central interval bounds ``lowerXX``/``upperXX`` for XX in 50, 80, 90, 95; each ``(num_samples,)``."""
    y, mean, sd = (np.asarray(a, dtype=float) for a in (y, mean, sd))
    half = {lv: norm.ppf(0.5 + lv / 2) * sd for lv in INTERVAL_LEVELS}
    return {
        "pit": norm.cdf((y - mean) / sd),
        "crps": np.asarray(sr.crps_normal(y, mean, sd), dtype=float),
        "nll": 0.5 * np.log(2 * math.pi * sd**2) + 0.5 * ((y - mean) / sd) ** 2,
        **_interval_columns({lv: mean - h for lv, h in half.items()}, {lv: mean + h for lv, h in half.items()}),
    }


def distribution_columns(y: np.ndarray, forecast) -> dict[str, np.ndarray]:
    """Per-sample distributional columns of a forecast object (``cdf``, ``quantiles``, ``crps``, ``logpdf``).

    Returns:
        ``pit`` (``F(y)``), ``crps`` (target units), ``nll`` (nats; NaN when the forecast has no density),
        ``median`` and ``lowerXX``/``upperXX`` (central XX % interval), target units, each ``(num_samples,)``; the
        median and the interval bounds come from one ``quantiles`` call.
    """
    y = np.asarray(y, dtype=float)
    levels = sorted({round(0.5 - lv / 2, 6) for lv in INTERVAL_LEVELS} | {round(0.5 + lv / 2, 6) for lv in INTERVAL_LEVELS}
                    | {0.5})
    q = forecast.quantiles(levels)
    col = {lv: q[:, i] for i, lv in enumerate(levels)}
    logpdf = forecast.logpdf(y)
    return {
        "pit": np.asarray(forecast.cdf(y), dtype=float),
        "median": col[0.5],
        "crps": np.asarray(forecast.crps(y), dtype=float),
        "nll": np.full(len(y), np.nan) if logpdf is None else -np.asarray(logpdf, dtype=float),
        **_interval_columns({lv: col[round(0.5 - lv / 2, 6)] for lv in INTERVAL_LEVELS},
                            {lv: col[round(0.5 + lv / 2, 6)] for lv in INTERVAL_LEVELS}),
    }


def score(
    y: np.ndarray,
    mean: np.ndarray,
    sd: np.ndarray | None = None,
    coords: np.ndarray | None = None,
    moran_k: int = 8,
    moran_permutations: int = 199,
    columns=None,
) -> dict[str, float | None]:
    """All metrics of pooled out-of-fold predictions.

    Args:
        y: Observed targets (e.g. SOC, g/kg), shape ``(num_samples,)``.
        mean: Predicted means, same shape and unit.
        sd: Predicted sds, same shape and unit, or ``None`` for a point forecast.
        coords: Metric coordinates ``(num_samples, d)`` for Moran's I of residuals, or ``None`` to skip it.
        moran_k: Neighbours of the kNN weights.
        moran_permutations: Permutations of the p-value.
        columns: Per-sample distributional columns (a mapping or DataFrame with ``pit``, ``crps``, ``nll``,
            ``lowerXX``, ``upperXX``, as from :func:`distribution_columns`) of a forecast that is not Gaussian; when
            given with finite ``pit`` values they are used instead of the Gaussian ``N(mean, sd²)``.

    Returns:
        ``r2``, ``rmse``, ``mae`` (target units), ``me`` (mean error ``mean(ŷ − y)``, target units), ``me_percent``
        (% of the observed mean), ``ccc`` (Lin's concordance), ``mape`` (%), ``nll``, ``crps`` (target units),
        ``calibration_error``, ``miscalibration_area``, ``picp50`` … ``picp95``, ``mpiw50`` … ``mpiw95`` (target units),
        ``morans_i``, ``morans_i_p``; ``None`` where undefined.

    Raises:
        ValueError: Shapes differ, values are not finite, or an sd is not positive.
    """
    y, mean = np.asarray(y, dtype=float), np.asarray(mean, dtype=float)
    if y.shape != mean.shape or y.ndim != 1:
        raise ValueError(f"y and mean must be 1-d of equal length, got {y.shape} and {mean.shape}")
    if not (np.isfinite(y).all() and np.isfinite(mean).all()):
        raise ValueError("y and mean must be finite")
    out: dict[str, float | None] = {
        "r2": float(r2_score(y, mean)),
        "rmse": float(math.sqrt(mean_squared_error(y, mean))),
        "mae": float(mean_absolute_error(y, mean)),
        **dict(zip(("me", "me_percent"), mean_error(y, mean))),
        "ccc": lins_ccc(y, mean),
        "mape": mape(y, mean),
        "nll": None,
        "crps": float(mean_absolute_error(y, mean)),
        "calibration_error": None,
        "miscalibration_area": None,
        **{f"picp{round(100 * lv)}": None for lv in INTERVAL_LEVELS},
        **{f"mpiw{round(100 * lv)}": None for lv in INTERVAL_LEVELS},
    }
    cols = None
    if columns is not None and "pit" in columns and np.isfinite(np.asarray(columns["pit"], dtype=float)).all():
        cols = {k: np.asarray(columns[k], dtype=float) for k in ("pit", "crps", "nll")}
        for lv in INTERVAL_LEVELS:
            for side in ("lower", "upper"):
                cols[f"{side}{round(100 * lv)}"] = np.asarray(columns[f"{side}{round(100 * lv)}"], dtype=float)
        if any(c.shape != y.shape for c in cols.values()):
            raise ValueError("distribution columns must be shaped like y")
    elif sd is not None:
        sd = np.asarray(sd, dtype=float)
        if sd.shape != y.shape or not np.isfinite(sd).all() or (sd <= 0).any():
            raise ValueError("sd must be finite, positive and shaped like y")
        cols = gaussian_columns(y, mean, sd)
    if cols is not None:
        out["nll"] = float(np.mean(cols["nll"])) if np.isfinite(cols["nll"]).all() else None
        out["crps"] = float(np.mean(cols["crps"]))
        out["calibration_error"], out["miscalibration_area"] = calibration_scores(cols["pit"])
        for lv in INTERVAL_LEVELS:
            tag = round(100 * lv)
            lo, hi = cols[f"lower{tag}"], cols[f"upper{tag}"]
            out[f"picp{tag}"] = float(np.mean((y >= lo) & (y <= hi)))
            out[f"mpiw{tag}"] = float(np.mean(hi - lo))
    out["morans_i"], out["morans_i_p"] = (None, None)
    if coords is not None and len(y) > 2:
        i, p = residual_morans_i(y - mean, coords, moran_k, moran_permutations)
        out["morans_i"], out["morans_i_p"] = i, (p if moran_permutations else None)
    return out
