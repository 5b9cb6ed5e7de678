"""Interval-based calibration of PIT values (Kuleshov et al. 2018, as defined in ``uncertainty-toolbox``): for
``num_bins`` nominal levels ``p = linspace(0, 1, num_bins)`` the observed proportion is the share of PIT values
``u = F(y)`` inside the central ``p`` interval (``|u − 0.5| ≤ p/2``); the calibration error is the mean of
``|observed − p|`` and the miscalibration area the area between the observed-proportion curve and the diagonal.

They live in this leaf package because the calibrators select among themselves with them
(:meth:`~sptgnn.distributions.calibration.Calibrator.fit` with ``auto``); :mod:`sptgnn.scores.metrics` scores every
model with the same functions.
"""

from __future__ import annotations

import numpy as np

CALIBRATION_BINS = 100


def interval_calibration_curve(pit: np.ndarray, num_bins: int = CALIBRATION_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Expected and observed proportions inside central intervals (uncertainty-toolbox's ``prop_type="interval"``).

    Args:
        pit: PIT values ``F(y)`` of the observations, ``(num_samples,)``.
        num_bins: Number of nominal levels ``linspace(0, 1, num_bins)``.

    Returns:
        ``expected`` and ``observed``, each ``(num_bins,)``.
    """
    expected = np.linspace(0, 1, num_bins)
    dev = np.abs(np.asarray(pit, dtype=float) - 0.5)[:, None]
    observed = (dev <= expected[None, :] / 2).mean(0)
    observed[-1] = 1.0  # the 100 % interval is the whole line, whatever rounding does to PIT values of 0 or 1
    return expected, observed


def miscalibration_area(expected: np.ndarray, observed: np.ndarray) -> float:
    """Area between the piecewise-linear observed-proportion curve and the diagonal (exact where they cross)."""
    d0, d1 = (observed - expected)[:-1], (observed - expected)[1:]
    h = np.diff(expected)
    same = d0 * d1 >= 0
    a0, a1 = np.abs(d0), np.abs(d1)
    with np.errstate(invalid="ignore", divide="ignore"):
        crossed = np.where(a0 + a1 > 0, (a0**2 + a1**2) / (2 * (a0 + a1)), 0.0)
    return float(np.sum(h * np.where(same, (a0 + a1) / 2, crossed)))


def calibration_scores(pit: np.ndarray, num_bins: int = CALIBRATION_BINS) -> tuple[float, float]:
    """Interval-based mean absolute calibration error and miscalibration area of PIT values ``(num_samples,)``."""
    expected, observed = interval_calibration_curve(pit, num_bins)
    return float(np.mean(np.abs(observed - expected))), miscalibration_area(expected, observed)


__all__ = ["CALIBRATION_BINS", "calibration_scores", "interval_calibration_curve", "miscalibration_area"]
