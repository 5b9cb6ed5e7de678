"""Quantiles of the ensemble's equal-weight Gaussian mixture (members' means and variances in target units).

# TODO(merge): replace with helper 3's ``Prediction.quantiles(levels)`` (sptgnn/train/ensemble.py, branch issue-3).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

_SQRT_2PI = np.sqrt(2 * np.pi)


def mixture_quantiles(member_mean: np.ndarray, member_var: np.ndarray, levels, iterations: int = 30, tol: float = 1e-7) -> np.ndarray:
    """Quantiles of ``(1/M) Σ_m N(μ_m, σ²_m)`` per query.

    Safeguarded Newton iterations on the mixture CDF, started at the normal approximation with the mixture's mean and
    total sd and kept inside a bracket ``[min_m μ_m − 10 σ_m, max_m μ_m + 10 σ_m]`` that shrinks at every step (a step
    leaving the bracket becomes a bisection step), until every point's CDF is within ``tol`` of its level.

    Args:
        member_mean: ``(M, n)``.
        member_var: ``(M, n)``, positive.
        levels: Probabilities in ``(0, 1)``, e.g. ``(0.05, 0.95)``.

    Returns:
        ``(len(levels), n)`` quantiles in target units.
    """
    mu = np.asarray(member_mean, dtype=np.float64)
    sd = np.sqrt(np.asarray(member_var, dtype=np.float64))
    M, n = mu.shape
    mean = mu.mean(0)
    total_sd = np.sqrt((sd**2).mean(0) + mu.var(0))
    out = np.empty((len(levels), n))
    for li, p in enumerate(levels):
        if not 0 < p < 1:
            raise ValueError(f"quantile levels must lie in (0, 1), got {p}")
        lo = (mu - 10 * sd).min(0)
        hi = (mu + 10 * sd).max(0)
        x = np.clip(mean + ndtri(p) * total_sd, lo, hi)
        for _ in range(iterations):
            z = (x - mu) / sd
            cdf = ndtr(z).mean(0)
            pdf = (np.exp(-0.5 * z * z) / (sd * _SQRT_2PI)).mean(0)
            err = cdf - p
            if np.all(np.abs(err) < tol):
                break
            hi = np.where(err > 0, x, hi)
            lo = np.where(err <= 0, x, lo)
            with np.errstate(divide="ignore", invalid="ignore"):
                step = x - err / pdf
            bad = ~np.isfinite(step) | (step <= lo) | (step >= hi)
            x = np.where(bad, 0.5 * (lo + hi), step)
        out[li] = x
    return out


def ensemble_quantiles(member_mean: np.ndarray, member_var: np.ndarray, levels, transform: str = "none") -> np.ndarray:
    """Quantiles ``(len(levels), n)`` of the ensemble's predictive mixture in target units.

    ``transform="none"``: members are Gaussians ``N(μ_m, σ²_m)`` (:func:`mixture_quantiles`). ``"log1p"``: each member
    is Gaussian in ``log(1 + y)`` (a shifted lognormal in target units), so its log-space parameters are recovered
    exactly from the lognormal moments, ``v = log(1 + σ²/(μ + 1)²)``, ``m = log(μ + 1) − v/2``, the mixture quantile is
    taken in log space and mapped back with ``expm1`` (quantiles commute with monotone maps): never below −1, and
    exact for the lognormal members instead of a Gaussian approximation.
    """
    mu, var = np.asarray(member_mean, dtype=np.float64), np.asarray(member_var, dtype=np.float64)
    if transform == "log1p":
        v = np.log1p(var / (mu + 1.0) ** 2)
        m = np.log(mu + 1.0) - v / 2
        return np.expm1(mixture_quantiles(m, v, levels))
    return mixture_quantiles(mu, var, levels)


__all__ = ["ensemble_quantiles", "mixture_quantiles"]
