"""Scores of out-of-fold predictions, the same function for SpTGNN and every baseline (rule 4 of DESIGN.md).

R² is pooled over all out-of-fold predictions (``1 − SSE/SST``, rule 5), RMSE and MAE are in target units, MAPE in %
over the observations that are not zero (LimeSoDa B.204 and BB.72 hold SOC = 0 g/kg).
Distributional scores use a Gaussian with the predicted mean and sd: NLL (nats), CRPS (closed form for the normal,
Gneiting & Raftery 2007, via ``scoringrules``) and PICP90, the share of observations inside the central 90 % interval.
A point forecast (no sd) gets CRPS = MAE (the CRPS of a point mass) and no NLL or PICP. Moran's I of residuals uses
``esda.Moran`` on row-standardised k-nearest-neighbour weights with a permutation p-value.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scoringrules as sr
from scipy.stats import norm
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error, r2_score


def _mape(y: np.ndarray, mean: np.ndarray) -> float | None:
    """MAPE (%) over samples with ``y != 0`` (a zero observation has no percentage error); ``None`` if all are zero."""
    nz = y != 0
    return float(100 * mean_absolute_percentage_error(y[nz], mean[nz])) if nz.any() else None


def gaussian_nll_np(y: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> float:
    """Mean Gaussian negative log-likelihood (nats) of ``y`` under ``N(mean, sd²)``."""
    return float(np.mean(0.5 * np.log(2 * math.pi * sd**2) + 0.5 * ((y - mean) / sd) ** 2))


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


def score(
    y: np.ndarray,
    mean: np.ndarray,
    sd: np.ndarray | None = None,
    coords: np.ndarray | None = None,
    moran_k: int = 8,
    moran_permutations: int = 199,
) -> dict[str, float | None]:
    """All metrics of pooled out-of-fold predictions.

    Args:
        y: Observed targets (e.g. SOC, g/kg), shape ``(num_samples,)``.
        mean: Predicted means, same shape and unit.
        sd: Predicted sds, same shape and unit, or ``None`` for a point forecast.
        coords: Metric coordinates ``(num_samples, d)`` for Moran's I of residuals, or ``None`` to skip it.
        moran_k: Neighbours of the kNN weights.
        moran_permutations: Permutations of the p-value.

    Returns:
        ``r2``, ``rmse``, ``mae`` (target units), ``mape`` (%), ``nll``, ``crps`` (target units), ``picp90``,
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
        "mape": _mape(y, mean),
        "nll": None,
        "crps": float(mean_absolute_error(y, mean)),
        "picp90": None,
    }
    if sd is not None:
        sd = np.asarray(sd, dtype=float)
        if sd.shape != y.shape or not np.isfinite(sd).all() or (sd <= 0).any():
            raise ValueError("sd must be finite, positive and shaped like y")
        out["nll"] = gaussian_nll_np(y, mean, sd)
        out["crps"] = float(np.mean(sr.crps_normal(y, mean, sd)))
        out["picp90"] = picp(y, mean, sd, 0.9)
    out["morans_i"], out["morans_i_p"] = (None, None)
    if coords is not None and len(y) > 2:
        i, p = residual_morans_i(y - mean, coords, moran_k, moran_permutations)
        out["morans_i"], out["morans_i_p"] = i, (p if moran_permutations else None)
    return out
