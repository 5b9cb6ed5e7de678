"""Target space: optional ``log1p`` then standardisation, and the exact back-transform of Gaussian predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TargetTransform:
    """Maps targets (e.g. SOC in g/kg) to standardised model space and predictions back.

    Attributes:
        kind: ``"none"`` or ``"log1p"``.
        mean: Mean of the (log1p-)targets of the labelled nodes.
        scale: Their standard deviation.
    """

    kind: str = "none"
    mean: float = 0.0
    scale: float = 1.0

    def fit(self, y: np.ndarray) -> "TargetTransform":
        """Fit mean and scale on labelled targets, shape ``(num_labelled,)``.

        Raises:
            ValueError: Non-finite targets, or ``log1p`` with a negative target (``log1p`` is meant for non-negative,
                right-skewed targets such as SOC; a zero is fine, ``log1p(0) = 0``).
        """
        z = self._forward(np.asarray(y, dtype=np.float64))
        self.mean = float(z.mean())
        sd = float(z.std())
        self.scale = sd if sd > 0 else 1.0
        return self

    def _forward(self, y: np.ndarray) -> np.ndarray:
        if not np.isfinite(y).all():
            raise ValueError("targets must be finite")
        if self.kind == "log1p":
            if (y < 0).any():
                rows = np.flatnonzero(y < 0)
                raise ValueError(
                    f"log1p target transform needs non-negative targets; {len(rows)} negative value(s), minimum "
                    f"{y.min():g} at row(s) {(rows[:5] + 1).tolist()} (counted from 1): fix the data or set data.target_transform: none"
                )
            return np.log1p(y)
        return y

    def transform(self, y: np.ndarray) -> np.ndarray:
        """Standardised model-space targets, same shape as ``y``."""
        return (self._forward(np.asarray(y, dtype=np.float64)) - self.mean) / self.scale

    def gaussian_space(self, mean: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Location and variance of the model's Gaussian in the space where it is Gaussian, in target units.

        ``none``: target units (``m·s + c``, ``v·s²``). ``log1p``: ``log(1 + y)`` units, where the prediction is
        ``N(m·s + c, v·s²)``; its distribution in target units is a shifted lognormal, whose quantiles are
        ``expm1`` of the Gaussian's quantiles (a monotone map keeps quantiles) — this is how
        :meth:`sptgnn.distributions.Prediction.quantiles` and ``cdf`` treat it, exactly and not by moments.

        Shapes:
            ``mean``, ``var``: ``(num_nodes,)`` → two arrays ``(num_nodes,)``.
        """
        m = np.asarray(mean, dtype=np.float64) * self.scale + self.mean
        v = np.asarray(var, dtype=np.float64) * self.scale**2
        return m, v

    def inverse(self, mean: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance in target units of a Gaussian ``N(mean, var)`` given in standardised model space.

        ``none``: ``μ = m·s + c``, ``σ² = v·s²``. ``log1p``: ``log(1 + Y) ~ N(m', v')`` with ``m' = m·s + c``,
        ``v' = v·s²``, so ``1 + Y`` is lognormal: ``E[Y] = exp(m' + v'/2) − 1`` and
        ``Var[Y] = (exp(v') − 1) · exp(2m' + v')`` (lognormal moments; Aitchison & Brown 1957).

        Shapes:
            ``mean``, ``var``: ``(num_nodes,)`` → two arrays ``(num_nodes,)``.
        """
        m, v = self.gaussian_space(mean, var)
        if self.kind == "log1p":
            return np.exp(m + v / 2) - 1.0, np.expm1(v) * np.exp(2 * m + v)
        return m, v

    def state(self) -> dict:
        """Plain-dict state for saving."""
        return {"kind": self.kind, "mean": self.mean, "scale": self.scale}
