"""Equal-area (mass-preserving) quadratic splines of soil properties over depth, and their means over standard depth
intervals (Bishop, McBratney & Laslett 1999, Geoderma 91, 27–45; Malone et al. 2009, Geoderma 154, 138–152).

A profile's horizons ``i = 1 … n`` span ``[u_i, v_i]`` cm with measured means ``y_i``. The spline ``f`` is quadratic
within each horizon and linear across a gap between horizons, continuous with a continuous first derivative, flat at
the top of the first and the bottom of the last horizon, and minimises

    (1/n) Σ_i (y_i − f̄_i)² + λ ∫ f′(x)² dx,

where ``f̄_i`` is the mean of ``f`` over horizon ``i``. The fitted horizon means solve ``(I + 6 n λ Qᵀ R⁻¹ Q) f̄ = y``,
with ``R`` the ``(n−1) × (n−1)`` tridiagonal matrix of horizon thicknesses and gaps and ``Q`` the ``(n−1) × n``
difference matrix (Bishop et al. 1999, eqs. 9–12); the slopes at the horizon boundaries are ``b = 6 R⁻¹ Q f̄``.
Each horizon's mean of ``f`` is ``f̄_i`` exactly, and ``f̄ = y`` for ``λ = 0``: the spline preserves the mass of
every horizon. Means over any interval are exact integrals of the piecewise polynomial (no 1-cm discretisation).
Written from the paper's equations; ``mpspline`` (GPL-3) serves only as a reference in the tests when installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sptgnn.errors import UserError

#: GlobalSoilMap's standard depth intervals (cm).
GSM_DEPTHS = ((0, 5), (5, 15), (15, 30), (30, 60), (60, 100), (100, 200))


class SplineError(UserError):
    """Horizons a spline cannot be fitted to (overlapping, inverted, or without a finite value)."""


@dataclass
class EqualAreaSpline:
    """A fitted equal-area spline of one profile.

    Attributes:
        top_cm: Horizon tops ``(n,)`` (cm below the surface), sorted.
        bottom_cm: Horizon bottoms ``(n,)`` (cm).
        horizon_means: The spline's mean over each horizon ``(n,)`` (``y`` for ``λ = 0``), in the property's units.
        alpha: Value at each horizon's top ``(n,)``.
        slope_top: Slope at each horizon's top ``(n,)`` (units per cm; 0 at the first).
        slope_bottom: Slope at each horizon's bottom ``(n,)`` (0 at the last).
        curvature: Quadratic coefficient of each horizon ``(n,)`` (units per cm²).
    """

    top_cm: np.ndarray
    bottom_cm: np.ndarray
    horizon_means: np.ndarray
    alpha: np.ndarray
    slope_top: np.ndarray
    slope_bottom: np.ndarray
    curvature: np.ndarray

    @classmethod
    def fit(cls, top_cm: Sequence[float], bottom_cm: Sequence[float], values: Sequence[float],
            lam: float = 0.1) -> "EqualAreaSpline":
        """Fit the spline to a profile's horizons (in any order).

        Args:
            top_cm, bottom_cm: Horizon depths ``(n,)`` in cm.
            values: Measured horizon means ``(n,)`` (e.g. SOC in g/kg).
            lam: Smoothing ``λ ≥ 0`` (0.1 in Malone et al. 2009; 0 interpolates the horizon means).

        Raises:
            SplineError: No horizon, a non-finite value or depth, a horizon whose bottom is not below its top,
                overlapping horizons, or a negative ``lam``.
        """
        u, v, y = (np.asarray(a, dtype=np.float64).ravel() for a in (top_cm, bottom_cm, values))
        if not len(u) or not (len(u) == len(v) == len(y)):
            raise SplineError(f"a spline needs one top, bottom and value per horizon, got {len(u)}, {len(v)}, {len(y)}")
        if not (np.isfinite(u).all() and np.isfinite(v).all() and np.isfinite(y).all()):
            raise SplineError("horizon depths and values must be finite; drop horizons without a measurement first")
        if lam < 0:
            raise SplineError(f"the spline's smoothing lambda must be >= 0, got {lam}")
        order = np.argsort(u, kind="stable")
        u, v, y = u[order], v[order], y[order]
        if np.any(v <= u):
            i = int(np.flatnonzero(v <= u)[0])
            raise SplineError(f"horizon {u[i]:g}-{v[i]:g} cm: its bottom must lie below its top")
        if np.any(u[1:] < v[:-1] - 1e-9):
            i = int(np.flatnonzero(u[1:] < v[:-1] - 1e-9)[0])
            raise SplineError(f"horizons {u[i]:g}-{v[i]:g} and {u[i + 1]:g}-{v[i + 1]:g} cm overlap")
        n = len(y)
        delta = v - u
        if n == 1:
            zero = np.zeros(1)
            return cls(u, v, y.copy(), y.copy(), zero, zero, zero)
        gap = u[1:] - v[:-1]  # (n-1,) gaps between horizons (0 when contiguous)
        r = np.diag(2 * delta[:-1] + 2 * delta[1:] + 6 * gap)
        r += np.diag(delta[1:-1], 1) + np.diag(delta[1:-1], -1)
        q = np.zeros((n - 1, n))
        q[np.arange(n - 1), np.arange(n - 1)] = -1.0
        q[np.arange(n - 1), np.arange(1, n)] = 1.0
        rinv_q = np.linalg.solve(r, q)
        means = np.linalg.solve(np.eye(n) + 6 * n * lam * q.T @ rinv_q, y)
        b = 6 * rinv_q @ means  # slopes at the n-1 inner boundaries
        slope_top, slope_bottom = np.r_[0.0, b], np.r_[b, 0.0]
        curvature = (slope_bottom - slope_top) / (2 * delta)
        alpha = means - slope_top * delta / 2 - curvature * delta**2 / 3
        return cls(u, v, means, alpha, slope_top, slope_bottom, curvature)

    def _pieces(self) -> list[tuple[float, float, float, float, float, float]]:
        """``(start, end, origin, c0, c1, c2)``: ``f(x) = c0 + c1 (x − origin) + c2 (x − origin)²`` on each piece."""
        pieces = []
        for i in range(len(self.top_cm)):
            u, v = self.top_cm[i], self.bottom_cm[i]
            pieces.append((u, v, u, self.alpha[i], self.slope_top[i], self.curvature[i]))
            if i + 1 < len(self.top_cm) and self.top_cm[i + 1] > v:  # a gap: linear into the next horizon's top
                nxt = self.top_cm[i + 1]
                value_at_v = self.alpha[i + 1] - self.slope_bottom[i] * (nxt - v)
                pieces.append((v, nxt, v, value_at_v, self.slope_bottom[i], 0.0))
        return pieces

    def __call__(self, depth_cm) -> np.ndarray:
        """The spline at depths ``(k,)`` cm: the first horizon's top value above it, NaN below the last horizon."""
        x = np.atleast_1d(np.asarray(depth_cm, dtype=np.float64))
        out = np.full(x.shape, np.nan)
        out[x < self.top_cm[0]] = self.alpha[0]
        for start, end, o, c0, c1, c2 in self._pieces():
            inside = (x >= start) & (x <= end)
            out[inside] = c0 + c1 * (x[inside] - o) + c2 * (x[inside] - o) ** 2
        return out

    def mean(self, top_cm: float, bottom_cm: float) -> float:
        """The spline's exact mean over ``[top_cm, bottom_cm]``; NaN when the interval reaches below the last horizon
        (no extrapolation below the profile). Above the first horizon the spline is flat at its top value.

        Raises:
            SplineError: ``bottom_cm`` not below ``top_cm``.
        """
        a, b = float(top_cm), float(bottom_cm)
        if b <= a:
            raise SplineError(f"interval {a:g}-{b:g} cm: its bottom must lie below its top")
        if b > self.bottom_cm[-1] + 1e-9:
            return float("nan")
        total = max(0.0, min(b, self.top_cm[0]) - a) * self.alpha[0]
        for start, end, o, c0, c1, c2 in self._pieces():
            s, e = max(a, start), min(b, end)
            if e > s:
                total += (c0 * (e - s) + c1 / 2 * ((e - o) ** 2 - (s - o) ** 2)
                          + c2 / 3 * ((e - o) ** 3 - (s - o) ** 3))
        return total / (b - a)

    def interval_means(self, intervals: Sequence[tuple[float, float]] = GSM_DEPTHS) -> np.ndarray:
        """Means over each interval ``(top, bottom)`` cm, ``(k,)`` (NaN for intervals below the profile)."""
        return np.array([self.mean(a, b) for a, b in intervals])


def harmonise(frame, site: str, top: str, bottom: str, value: str,
              intervals: Sequence[tuple[float, float]] = GSM_DEPTHS, lam: float = 0.1, lower: float | None = 0.0):
    """Horizons of many profiles harmonised to standard depth intervals: one row per site, one column
    ``<value>_<top>_<bottom>cm`` per interval (NaN below a profile's deepest horizon). Horizons without a value are
    left out; a site without any is left out.

    Args:
        frame: A table (pandas) of horizons, several rows per site.
        site, top, bottom, value: Its columns: site id, horizon top and bottom (cm), the property.
        intervals: Standard intervals in cm (default GlobalSoilMap's six).
        lam: The spline's smoothing (see :meth:`EqualAreaSpline.fit`).
        lower: Interval means below it are set to it (a spline can dip below zero between a rich and a poor
            horizon; SOC cannot), ``None`` keeps them.

    Raises:
        SplineError: A missing column, or a profile with overlapping or inverted horizons (its site named).
    """
    import pandas as pd

    missing = [c for c in (site, top, bottom, value) if c not in frame.columns]
    if missing:
        raise SplineError(f"the horizon table lacks column(s) {missing}; it has {list(frame.columns)[:12]}")
    names = [f"{value}_{a:g}_{b:g}cm" for a, b in intervals]
    rows, sites = [], []
    for sid, h in frame.dropna(subset=[value]).groupby(site, sort=False):
        try:
            spline = EqualAreaSpline.fit(h[top], h[bottom], h[value], lam)
        except SplineError as exc:
            raise SplineError(f"site {sid}: {exc}") from None
        means = spline.interval_means(intervals)
        rows.append(means if lower is None else np.where(np.isnan(means), np.nan, np.maximum(means, lower)))
        sites.append(sid)
    return pd.DataFrame(np.array(rows).reshape(len(rows), len(names)), columns=names,
                        index=pd.Index(sites, name=site))


__all__ = ["EqualAreaSpline", "GSM_DEPTHS", "SplineError", "harmonise"]
