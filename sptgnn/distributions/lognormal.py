"""A shifted lognormal forecast: the back-transform of a Gaussian prediction on the ``log(1 + y)`` scale, as regression
kriging of ``log1p`` targets gives (log-normal kriging, e.g. Webster & Oliver 2007, §8.8)."""

from __future__ import annotations

import numpy as np
import scoringrules as sr
from scipy.stats import norm

from sptgnn.distributions.base import check_levels


class LognormalForecast:
    """``1 + Y = exp(L)`` with ``L ~ N(loc_log, sd_log²)`` per query sample.

    Args:
        loc_log: Mean of ``L``, ``(n,)``.
        sd_log: Sd of ``L``, ``(n,)``, positive (floored at 1e-9).

    Attributes:
        mean: ``exp(μ + σ²/2) − 1``, ``(n,)``, target units.
        median: ``expm1(μ)``, ``(n,)``.
        sd: ``(1 + mean) · sqrt(exp(σ²) − 1)``, ``(n,)``.
        mean_log: ``μ``, the log-scale point prediction.
    """

    def __init__(self, loc_log: np.ndarray, sd_log: np.ndarray):
        self.mean_log = np.asarray(loc_log, dtype=float).reshape(-1)
        self.sd_log = np.maximum(np.asarray(sd_log, dtype=float).reshape(-1), 1e-9)
        if self.sd_log.shape != self.mean_log.shape:
            raise ValueError(f"loc_log and sd_log must have one value per sample, got {self.mean_log.shape} and "
                             f"{self.sd_log.shape}")
        self.mean = np.exp(self.mean_log + self.sd_log**2 / 2) - 1.0
        self.median = np.expm1(self.mean_log)
        self.sd = (1.0 + self.mean) * np.sqrt(np.expm1(self.sd_log**2))

    def __len__(self) -> int:
        return self.mean_log.size

    def cdf(self, y: np.ndarray) -> np.ndarray:
        """``Φ((log(1 + y) − μ) / σ)``, 0 at and below ``y = −1``, ``(n,)``."""
        y = np.asarray(y, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (np.log1p(np.maximum(y, -1.0)) - self.mean_log) / self.sd_log
        return norm.cdf(z)

    def quantiles(self, levels) -> np.ndarray:
        """``expm1(μ + σ Φ⁻¹(p))``, ``(n, L)``."""
        lv = check_levels(levels)
        return np.expm1(self.mean_log[:, None] + self.sd_log[:, None] * norm.ppf(lv)[None, :])

    def crps(self, y: np.ndarray) -> np.ndarray:
        """Closed-form lognormal CRPS (Baran & Lerch 2015, ``scoringrules.crps_lognormal``) of ``1 + y``, ``(n,)``."""
        y = np.asarray(y, dtype=float)
        return np.asarray(sr.crps_lognormal(np.maximum(1.0 + y, 1e-12), self.mean_log, self.sd_log), dtype=float)

    def logpdf(self, y: np.ndarray) -> np.ndarray:
        """Log density in target units, ``log φ(log(1 + y); μ, σ) − log(1 + y)``, ``(n,)``."""
        ly = np.log1p(np.asarray(y, dtype=float))
        return norm.logpdf(ly, self.mean_log, self.sd_log) - ly


__all__ = ["LognormalForecast"]
