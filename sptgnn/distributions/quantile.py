"""A forecast given by quantiles at fixed levels: the quantile regression forest and XGBoost quantile baselines."""

from __future__ import annotations

import numpy as np

from sptgnn.distributions.base import check_levels, crps_from_quantiles, level_weights


class QuantileForecast:
    """A forecast given by quantiles at fixed levels (quantile regression forest, XGBoost quantile objective).

    Crossing quantiles are sorted per sample (monotone rearrangement, Chernozhukov et al. 2010). The CDF and other
    quantiles are linear interpolations between the given ones; beyond the outer levels the CDF is put halfway into the
    unknown tail (``l₁/2`` below the lowest quantile, ``(1 + l_L)/2`` above the highest) and quantiles are clamped to the
    outer ones. It has no density, so no NLL.

    Args:
        levels: Increasing levels in (0, 1), ``(L,)``.
        values: Quantiles, ``(num_samples, L)``, target units.
        mean: The mean of the model's predictive distribution ``(num_samples,)`` where it knows it more finely (a quantile
            forest's conditional mean); default the mean of this forecast, ``∫₀¹ Q(p) dp`` over the quantiles with the
            weights of :func:`~sptgnn.distributions.base.level_weights` (the tails taken as the outer quantiles).
        mean_log: The model's own ``log1p``-scale point prediction ``(num_samples,)`` when it was fitted on ``log1p``
            targets, else ``None``.

    Attributes:
        mean: Mean of the predictive distribution ``(num_samples,)``, target units.
        median: Its median (interpolated), ``(num_samples,)``.
        sd: ``None`` (the spread is in the quantiles).
        mean_log: As given.
    """

    sd = None

    def __init__(self, levels, values: np.ndarray, mean: np.ndarray | None = None, mean_log: np.ndarray | None = None):
        self.levels = np.asarray(levels, dtype=float)
        self.values = np.sort(np.asarray(values, dtype=float), axis=1)
        if self.values.ndim != 2 or self.values.shape[1] != self.levels.size:
            raise ValueError(f"quantiles must be (num_samples, {self.levels.size}), got {self.values.shape}")
        self.mean = (self.values @ level_weights(self.levels) if mean is None
                     else np.asarray(mean, dtype=float).reshape(-1))
        self.mean_log = None if mean_log is None else np.asarray(mean_log, dtype=float).reshape(-1)

    @property
    def median(self) -> np.ndarray:
        """Interpolated median ``(num_samples,)``, target units."""
        return self.quantiles([0.5])[:, 0]

    def __len__(self) -> int:
        return self.values.shape[0]

    def cdf(self, y: np.ndarray) -> np.ndarray:
        """Interpolated CDF at ``y`` ``(num_samples,)``."""
        y = np.asarray(y, dtype=float)
        q, lv = self.values, self.levels
        k = (q <= y[:, None]).sum(1)  # quantiles at or below y
        inner = (k > 0) & (k < lv.size)
        j = np.clip(k - 1, 0, lv.size - 2)
        rows = np.arange(len(y))
        q0, q1 = q[rows, j], q[rows, j + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(q1 > q0, (y - q0) / (q1 - q0), 1.0)
        u = lv[j] + np.clip(t, 0, 1) * (lv[j + 1] - lv[j])
        return np.where(inner, u, np.where(k == 0, lv[0] / 2, (1 + lv[-1]) / 2))

    def quantiles(self, levels) -> np.ndarray:
        """Quantiles at ``levels`` by linear interpolation in the level, ``(num_samples, len(levels))``."""
        want = check_levels(levels)
        return np.stack([np.interp(want, self.levels, row) for row in self.values])

    def crps(self, y: np.ndarray) -> np.ndarray:
        """Quantile-grid CRPS (:func:`crps_from_quantiles`), ``(num_samples,)``."""
        return crps_from_quantiles(y, self.levels, self.values)

    def logpdf(self, y: np.ndarray) -> None:
        """No density: a finite set of quantiles does not define one."""
        return None


__all__ = ["QuantileForecast"]
