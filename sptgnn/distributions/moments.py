"""A forecast given by its moments only: a point forecast (mean) or a Gaussian (mean and sd), as the tree baselines
and regression kriging give, with its median (the mean for a symmetric forecast; ``expm1`` of the log-scale prediction
for a model fitted on ``log1p`` targets). It has no distribution functions: :func:`sptgnn.scores.metrics.score` scores a mean
and sd by the closed-form Gaussian CRPS (Gneiting & Raftery 2007) and a point forecast by CRPS = MAE."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MomentForecast:
    """Mean and (optionally) sd per query sample, in target units.

    Attributes:
        mean: Mean of the predictive distribution ``(n,)``, target units (for a model fitted on ``log1p`` targets, the
            back-transformed mean, e.g. Duan's smearing estimate, not ``expm1`` of its prediction).
        sd: Predictive sd ``(n,)``, or ``None`` for a point forecast.
        mean_log: The model's own ``log1p``-scale prediction ``(n,)`` when it was fitted on ``log1p`` targets, else
            ``None``.
        median: Median of the predictive distribution ``(n,)``, target units; default ``mean``.
    """

    mean: np.ndarray
    sd: np.ndarray | None = None
    mean_log: np.ndarray | None = None
    median: np.ndarray | None = None

    def __post_init__(self):
        if self.median is None:
            self.median = self.mean

    def __len__(self) -> int:
        return int(np.shape(self.mean)[0])


__all__ = ["MomentForecast"]
