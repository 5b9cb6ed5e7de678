"""The forecast protocol every model's prediction follows, and the level and score helpers the forecasts share.

A *forecast* is a predictive distribution per query sample, in target units (g/kg for SOC): SpTGNN's Gaussian mixture
(:class:`~sptgnn.distributions.mixture.Prediction`) and the quantile baselines'
(:class:`~sptgnn.distributions.quantile.QuantileForecast`) both satisfy :class:`Forecast`, so that one scoring
function (:func:`sptgnn.scores.metrics.distribution_columns`) serves every model.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Forecast(Protocol):
    """A predictive distribution of ``n`` query samples in target units.

    Methods:
        cdf: ``(n,)`` values → ``(n,)`` probabilities (the PIT values when given the observations).
        quantiles: levels ``(L,)`` in (0, 1) → ``(n, L)`` quantiles.
        crps: observations ``(n,)`` → ``(n,)`` continuous ranked probability scores (target units).
        logpdf: observations ``(n,)`` → ``(n,)`` log densities (nats), or ``None`` when the forecast has no density.
    """

    def __len__(self) -> int: ...

    def cdf(self, y: np.ndarray) -> np.ndarray: ...

    def quantiles(self, levels) -> np.ndarray: ...

    def crps(self, y: np.ndarray) -> np.ndarray: ...

    def logpdf(self, y: np.ndarray) -> np.ndarray | None: ...


def check_levels(levels) -> np.ndarray:
    """Quantile levels as a 1-d float array; each must lie strictly inside (0, 1).

    Raises:
        ValueError: A level is not finite or lies outside (0, 1), or no level is given.
    """
    lv = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    if lv.ndim != 1 or lv.size == 0:
        raise ValueError(f"quantile levels must be a non-empty list of numbers, got {levels!r}")
    bad = lv[~(np.isfinite(lv) & (lv > 0) & (lv < 1))]
    if bad.size:
        raise ValueError(f"quantile levels must lie strictly between 0 and 1, got {bad.tolist()}; e.g. [0.05, 0.5, 0.95]")
    return lv


def pinball_loss(y: np.ndarray, q: np.ndarray, level) -> np.ndarray:
    """Pinball (quantile) loss ``ρ_p(y − q) = (y − q)(p − 1{y < q})``, broadcast over ``y`` ``(n, 1)``, ``q`` ``(n, L)``."""
    r = y - q
    return r * (np.asarray(level) - (r < 0))


def level_weights(levels) -> np.ndarray:
    """Width of each level's cell on [0, 1] (cells split halfway between adjacent levels, the end cells reaching 0 and
    1), ``(L,)`` summing to 1: the midpoint-rule weights of ``∫₀¹ g(Q(p)) dp`` over quantiles at ``levels``."""
    lv = np.asarray(levels, dtype=float)
    return np.diff(np.r_[0.0, (lv[1:] + lv[:-1]) / 2, 1.0])


def crps_from_quantiles(y: np.ndarray, levels, q: np.ndarray) -> np.ndarray:
    """CRPS approximated from quantiles: ``CRPS = 2 ∫₀¹ ρ_p(y − Q(p)) dp`` (Gneiting & Ranjan 2011) with each level's
    pinball loss weighted by the width of its cell on [0, 1] (cells split halfway between adjacent levels; the end cells
    reach 0 and 1, i.e. the tails beyond the outer levels are taken as the outer quantiles).

    With the midpoints of ``K`` equal cells this is the midpoint rule. With the baselines' 39 levels 0.025 … 0.975 the
    tails are coarse and the result is an approximation (within a few % of the closed form for a Gaussian, tested).

    Shapes:
        ``y`` ``(n,)``, ``levels`` ``(L,)`` increasing, ``q`` ``(n, L)`` → ``(n,)``.
    """
    lv = np.asarray(levels, dtype=float)
    w = level_weights(lv)
    return 2 * (pinball_loss(np.asarray(y, dtype=float)[:, None], np.asarray(q, dtype=float), lv) * w).sum(1)


__all__ = ["Forecast", "check_levels", "crps_from_quantiles", "level_weights", "pinball_loss"]
