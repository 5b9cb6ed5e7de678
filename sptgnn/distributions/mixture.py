"""The ensemble's predictive distribution: an equally weighted mixture of member Gaussians, optionally recalibrated.

Lakshminarayanan et al. (2017): the members' Gaussians form a mixture with ``mean = mean_m μ_m``, aleatoric variance
``= mean_m σ²_m`` and epistemic variance ``= var_m μ_m``; total variance = aleatoric + epistemic (DESIGN.md, "Terms").
Moments are in target units (g/kg for SOC), after each member's back-transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scoringrules as sr
import torch
from scipy.special import logsumexp, ndtri
from scipy.stats import norm

from sptgnn.distributions.base import check_levels, crps_from_quantiles

CRPS_GRID = 199  # midpoint levels of the quantile-grid CRPS of a recalibrated (non-Gaussian-mixture) prediction


#: Member × query × knot cells of one chunk of :meth:`Prediction.mapped_mean` (about 160 MB per float64 array).
MAPPED_MEAN_CELLS = 20_000_000


@dataclass
class Prediction:
    """Ensemble prediction in target units (g/kg for SOC): the equally weighted mixture of the members' Gaussians.

    Each member ``m`` predicts a Gaussian ``N(loc_m, scale_m²)`` in the *Gaussian space*: target units for the
    ``none`` target transform, ``log(1 + y)`` for ``log1p`` (then the member is a shifted lognormal in target units).
    The moments (``mean``, ``aleatoric_sd``, ``epistemic_sd``) are in target units (lognormal moments for ``log1p``,
    see :meth:`sptgnn.train.target.TargetTransform.inverse`). The distribution functions (:meth:`cdf`,
    :meth:`quantiles`, :meth:`logpdf`, :meth:`crps`) are those of the exact mixture, not of a Gaussian with the
    mixture's moments; for ``log1p`` they are evaluated in the Gaussian space and mapped through ``expm1`` (quantiles)
    or with the Jacobian ``1 / (1 + y)`` (density). After isotonic or conformal recalibration (``recalibration``, see
    :mod:`sptgnn.distributions.calibration`) the CDF is ``R(F(y − δ))`` and the quantile at level ``p`` is
    ``δ + F⁻¹(R⁻¹(p))`` (Kuleshov et al. 2018), where ``δ`` (``loc_shift``, in the Gaussian space) is chosen so that
    the recalibrated distribution has the members' mean: calibration changes the spread, never the mean (DESIGN.md
    rule 9; :meth:`recalibrated`). The moments stay those of the members.

    Attributes:
        mean: Mixture mean, ``(num_query,)``.
        aleatoric_sd: sqrt of the mean member variance, ``(num_query,)``.
        epistemic_sd: sd of member means, ``(num_query,)``.
        member_mean: ``(M, num_query)``, target units.
        member_var: ``(M, num_query)``, target units².
        member_loc: ``(M, num_query)`` Gaussian-space locations (defaults to ``member_mean``).
        member_scale: ``(M, num_query)`` Gaussian-space sds (defaults to ``sqrt(member_var)``).
        log1p: True when the Gaussian space is ``log(1 + y)``.
        recalibration: Monotone map of PIT values applied to the CDF, or ``None``.
        quantile_levels: Levels asked for in :meth:`DeepEnsemble.predict`, ``(L,)``, or ``None``.
        quantile_values: Their quantiles, ``(num_query, L)``, target units, or ``None``.
        loc_shift: Gaussian-space shift ``δ`` ``(num_query,)`` of the distribution functions that keeps the mean of a
            recalibrated mixture (see :meth:`recalibrated`), or ``None`` (no shift).
    """

    mean: np.ndarray
    aleatoric_sd: np.ndarray
    epistemic_sd: np.ndarray
    member_mean: np.ndarray
    member_var: np.ndarray
    member_loc: np.ndarray | None = None
    member_scale: np.ndarray | None = None
    log1p: bool = False
    recalibration: object | None = None
    quantile_levels: np.ndarray | None = None
    quantile_values: np.ndarray | None = None
    loc_shift: np.ndarray | None = None

    def __post_init__(self):
        if self.member_loc is None:
            self.member_loc = np.asarray(self.member_mean, dtype=np.float64)
        if self.member_scale is None:
            self.member_scale = np.sqrt(np.asarray(self.member_var, dtype=np.float64))

    @property
    def sd(self) -> np.ndarray:
        """Total predictive sd, ``sqrt(aleatoric² + epistemic²)``, ``(num_query,)``."""
        return np.sqrt(self.aleatoric_sd**2 + self.epistemic_sd**2)

    @property
    def mean_log(self) -> np.ndarray | None:
        """The mean over members of their ``log1p``-space Gaussian means, ``(num_query,)``, when the Gaussian space is
        ``log(1 + y)`` (the ensemble's own log-scale point prediction), else ``None``."""
        return np.asarray(self.member_loc, dtype=np.float64).mean(0) if self.log1p else None

    @property
    def median(self) -> np.ndarray:
        """Median of the (recalibrated) mixture ``(num_query,)``, target units."""
        return self.quantiles([0.5])[:, 0]

    def __len__(self) -> int:
        return int(np.shape(self.mean)[0])

    @classmethod
    def from_members(cls, member_mean: np.ndarray, member_var: np.ndarray, **extra) -> "Prediction":
        """Combine member means and variances ``(M, num_query)`` (target units) into the mixture moments."""
        return cls(
            mean=member_mean.mean(0),
            aleatoric_sd=np.sqrt(member_var.mean(0)),
            epistemic_sd=member_mean.std(0),
            member_mean=member_mean,
            member_var=member_var,
            **extra,
        )

    @classmethod
    def from_gaussian_space(cls, loc: np.ndarray, scale: np.ndarray, log1p: bool, recalibration=None) -> "Prediction":
        """Mixture of members ``N(loc, scale²)`` given in the Gaussian space, ``(M, num_query)`` each."""
        loc, scale = np.asarray(loc, dtype=np.float64), np.asarray(scale, dtype=np.float64)
        if log1p:  # moments of the shifted lognormal 1 + Y = exp(L), L ~ N(loc, scale²)
            var = scale**2
            mean, member_var = np.exp(loc + var / 2) - 1.0, np.expm1(var) * np.exp(2 * loc + var)
        else:
            mean, member_var = loc, scale**2
        return cls.from_members(mean, member_var, member_loc=loc, member_scale=scale, log1p=log1p,
                                recalibration=recalibration)

    def subset(self, index) -> "Prediction":
        """The prediction of the query samples selected by ``index`` (boolean mask or integer indices)."""
        pick = lambda a: None if a is None else a[..., index]  # noqa: E731
        return Prediction(
            mean=self.mean[index], aleatoric_sd=self.aleatoric_sd[index], epistemic_sd=self.epistemic_sd[index],
            member_mean=pick(self.member_mean), member_var=pick(self.member_var), member_loc=pick(self.member_loc),
            member_scale=pick(self.member_scale), log1p=self.log1p, recalibration=self.recalibration,
            quantile_levels=self.quantile_levels,
            quantile_values=None if self.quantile_values is None else self.quantile_values[index],
            loc_shift=None if self.loc_shift is None else self.loc_shift[index],
        )

    def scaled(self, factor: float) -> "Prediction":
        """The mixture widened by ``factor`` about its Gaussian-space mean, with its mean in target units kept.

        Member locations become ``l̄ + c (l_m − l̄)`` and sds ``c · s_m`` (variance scaling, Levi et al. 2022;
        Kuleshov et al. 2018 §3). With the ``none`` transform the total, aleatoric and epistemic sds are all
        multiplied by ``c`` and the mean is unchanged. With ``log1p`` the lognormal mean ``exp(l + s²/2) − 1`` would
        rise with ``s``; every location is therefore shifted by ``δ = log Σ_m exp(l_m + s_m²/2) − log Σ_m
        exp(l'_m + s'_m²/2)`` (per query sample), which keeps the mixture mean in target units exactly and moves the
        median by ``δ`` on the log scale (DESIGN.md rule 9: calibration changes the spread, never the mean).
        """
        centre = self.member_loc.mean(0, keepdims=True)
        loc, scale = centre + factor * (self.member_loc - centre), factor * self.member_scale
        if self.log1p:
            loc = loc + (logsumexp(self.member_loc + self.member_scale**2 / 2, axis=0)
                         - logsumexp(loc + scale**2 / 2, axis=0))[None]
        return Prediction.from_gaussian_space(loc, scale, self.log1p, self.recalibration)

    def uncalibrated(self) -> "Prediction":
        """The same mixture without its PIT recalibration map (and without the shift that kept its mean)."""
        return Prediction.from_gaussian_space(self.member_loc, self.member_scale, self.log1p)

    def recalibrated(self, pit_map) -> "Prediction":
        """The mixture with the PIT map ``R`` applied to its CDF (isotonic, conformal), shifted to keep its mean.

        ``R`` alone changes the mean of the distribution (an asymmetric map, or a symmetric map on a skewed mixture).
        The recalibrated variable is therefore ``X' = δ + F⁻¹(R⁻¹(V))``, ``V ~ U(0, 1)``, in the Gaussian space, with
        ``δ`` per query sample such that ``E[h(X')] = E[h(X)]`` (``h`` the back-transform): ``δ = m − m_R`` for the
        ``none`` transform and ``δ = log(1 + m) − log(1 + m_R)`` for ``log1p``, where ``m_R`` is the mean of
        ``F⁻¹(R⁻¹(V))`` in target units (:meth:`mapped_mean`). The moments (``mean``, sds) stay those of the members.

        Args:
            pit_map: A :class:`~sptgnn.distributions.calibration.PitMap` (``forward``, ``inverse``, ``derivative``
                and its knots ``x``, ``y``, ``symmetric``).
        """
        raw = self.uncalibrated()
        mapped = raw.mapped_mean(pit_map)
        shift = np.log1p(raw.mean) - np.log1p(mapped) if self.log1p else raw.mean - mapped
        raw.recalibration, raw.loc_shift = pit_map, shift
        return raw

    def mapped_mean(self, pit_map) -> np.ndarray:
        """Mean in target units ``(num_query,)`` of the mixture whose CDF is mapped by ``pit_map`` (no shift).

        A piecewise-linear ``R`` with knots ``(u_j, p_j)`` makes ``F⁻¹(R⁻¹(V))`` the mixture ``X`` conditioned on
        ``F(X) ∈ [u_j, u_{j+1}]`` with probability ``p_{j+1} − p_j``, so ``E[h] = Σ_j (p_{j+1} − p_j) / (u_{j+1} − u_j)
        · E[h(X) 1{q_j < X < q_{j+1}}]`` with ``q_j = F⁻¹(u_j)``, and the partial expectations of the member Gaussians
        are closed forms: ``E[X 1{a<X<b}] = μ (Φ(β) − Φ(α)) − σ (φ(β) − φ(α))`` and ``E[e^X 1{a<X<b}] =
        e^{μ+σ²/2} (Φ(β − σ) − Φ(α − σ))`` with ``α = (a − μ)/σ``, ``β = (b − μ)/σ``. A knot where ``u`` stays and
        ``p`` jumps is a point mass ``(p_{j+1} − p_j) h(q_j)``.

        Queries are taken in chunks of at most :data:`MAPPED_MEAN_CELLS` member × query × knot cells: an isotonic map
        has about as many knots as its calibration part has samples, so one pass over 10,000 queries and knots held
        ``(M, n, K)`` arrays of 4 GB each (61,512 Africa profile layers ran out of 24 GiB).
        """
        rows = max(1, MAPPED_MEAN_CELLS // max(1, self.member_loc.shape[0] * np.size(pit_map.x) * 2))
        if len(self) > rows:
            return np.concatenate([self.subset(np.arange(i, min(i + rows, len(self)))).mapped_mean(pit_map)
                                   for i in range(0, len(self), rows)])
        u, p = pit_map.x, pit_map.y
        if pit_map.symmetric:  # half-width ↦ central coverage, mirrored about the median
            u, p = np.r_[0.5 - u[::-1], 0.5 + u], np.r_[0.5 - p[::-1] / 2, 0.5 + p / 2]
        u, p = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0), np.asarray(p, dtype=np.float64)
        inner = (u > 0) & (u < 1)
        q = np.full((len(self), u.size), np.nan)
        q[:, u <= 0], q[:, u >= 1] = -np.inf, np.inf
        if inner.any():
            q[:, inner] = self._raw_quantile_gauss(np.broadcast_to(u[inner], (len(self), int(inner.sum()))).copy())
        loc, scale = self.member_loc[:, :, None], self.member_scale[:, :, None]  # (M, n, 1)
        a, b = (q[:, :-1][None] - loc) / scale, (q[:, 1:][None] - loc) / scale  # (M, n, K − 1)
        if self.log1p:
            partial = (np.exp(loc + scale**2 / 2) * (norm.cdf(b - scale) - norm.cdf(a - scale))).mean(0)
        else:
            partial = (loc * (norm.cdf(b) - norm.cdf(a)) - scale * (norm.pdf(b) - norm.pdf(a))).mean(0)
        du, dp = np.diff(u), np.diff(p)
        weight = np.where(du > 0, dp / np.where(du > 0, du, 1.0), 0.0)
        total = (partial * weight[None]).sum(1)
        jumps = (du <= 0) & (dp > 0)
        if jumps.any():
            h = np.exp(q[:, :-1][:, jumps]) if self.log1p else q[:, :-1][:, jumps]
            total = total + (h * dp[jumps][None]).sum(1)
        return total - 1.0 if self.log1p else total

    # -- distribution functions ----------------------------------------------------------------------------------------
    def _gauss(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if not self.log1p:
            return y
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(y > -1, np.log1p(np.maximum(y, -1 + 1e-300)), -np.inf)

    def _expand(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``y`` ``(num_query,)`` or ``(num_query, K)`` as ``(M, num_query, K)`` with the member parameters."""
        y = np.asarray(y, dtype=np.float64)
        if y.shape[0] != len(self):
            raise ValueError(f"{y.shape[0]} values for a prediction of {len(self)} query samples")
        yk = y.reshape(len(self), -1)
        return yk, self._loc()[:, :, None], self.member_scale[:, :, None]

    def _loc(self) -> np.ndarray:
        """Member locations of the distribution functions ``(M, num_query)``: ``member_loc`` plus ``loc_shift``."""
        loc = np.asarray(self.member_loc, dtype=np.float64)
        return loc if self.loc_shift is None else loc + np.asarray(self.loc_shift, dtype=np.float64)[None]

    def raw_cdf(self, y: np.ndarray) -> np.ndarray:
        """Mixture CDF ``F(y) = mean_m Φ((g(y) − loc_m) / scale_m)`` before recalibration; ``y`` shaped
        ``(num_query,)`` or ``(num_query, K)``, same shape out."""
        yk, loc, scale = self._expand(y)
        return norm.cdf((self._gauss(yk)[None] - loc) / scale).mean(0).reshape(np.shape(y))

    def cdf(self, y: np.ndarray) -> np.ndarray:
        """Predictive CDF at ``y`` (the PIT value when ``y`` is the observation), recalibrated when a map is set."""
        u = self.raw_cdf(y)
        return u if self.recalibration is None else self.recalibration.forward(u)

    def logpdf(self, y: np.ndarray) -> np.ndarray | None:
        """Log predictive density at ``y`` ``(num_query,)`` in target units (nats); ``None`` when the recalibrated
        distribution has no density (conformal map)."""
        yk, loc, scale = self._expand(y)
        g = self._gauss(yk)[None]
        lp = logsumexp(norm.logpdf(g, loc, scale), axis=0) - np.log(loc.shape[0])
        if self.log1p:
            with np.errstate(divide="ignore", invalid="ignore"):
                lp = lp - np.log1p(yk)
        lp = lp.reshape(np.shape(y))
        if self.recalibration is not None:
            if not getattr(self.recalibration, "has_density", True):
                return None
            with np.errstate(divide="ignore"):
                lp = lp + np.log(self.recalibration.derivative(self.raw_cdf(y)))
        return lp

    def _raw_quantile(self, u: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`raw_cdf` at probabilities ``u`` ``(num_query, K)``, target units."""
        shift = 0.0 if self.loc_shift is None else np.asarray(self.loc_shift, dtype=np.float64)[:, None]
        x = self._raw_quantile_gauss(u) + shift
        return np.expm1(x) if self.log1p else x

    def _raw_quantile_gauss(self, u: np.ndarray, tol: float = 1e-10, xtol: float = 1e-12,
                            iterations: int = 100) -> np.ndarray:
        """Quantiles ``(num_query, K)`` in the Gaussian space of the members (without ``loc_shift``) at
        probabilities ``u`` ``(num_query, K)``.

        Safeguarded Newton iterations on the mixture CDF in the Gaussian space (Press et al., Numerical Recipes,
        ``rtsafe``): started at the normal approximation of the mixture and kept inside the bracket of the smallest and
        largest member quantile (the mixture quantile lies between them), which shrinks at every step. A Newton step
        that leaves the bracket, or follows one that did not halve the CDF error, becomes a bisection step. Each
        quantile stops on its own (active set) once its CDF is within ``tol`` of its level or its bracket is narrower
        than ``xtol`` relative to it, so the cost is that of the few slow ones, not of all for the slowest's count.
        """
        u = np.clip(np.asarray(u, dtype=np.float64), 1e-12, 1 - 1e-12)
        n, k = u.shape
        z = ndtri(u)[None]  # (1, N, K)
        loc, scale = self.member_loc[:, :, None], self.member_scale[:, :, None]
        comp = loc + scale * z
        lo, hi = comp.min(0).ravel(), comp.max(0).ravel()
        x = np.clip(loc.mean(0) + np.sqrt((scale**2).mean(0) + loc.var(0)) * z[0], lo.reshape(n, k), hi.reshape(n, k)).ravel()
        # the iterations run in float64 torch, whose ndtr/exp use every intra-op thread (numpy's use one)
        T = torch.from_numpy
        x, lo, hi, target = T(x), T(lo), T(hi), T(np.ascontiguousarray(u).ravel())
        rows = torch.arange(n).repeat_interleave(k)  # query of each flattened (query, level) entry
        # copies: a prediction that came back from a worker holds read-only arrays, which torch refuses to share
        member_loc, member_scale = T(np.array(self.member_loc, dtype=np.float64)), \
            T(np.array(self.member_scale, dtype=np.float64))
        last = torch.full((x.numel(),), float("inf"), dtype=torch.float64)  # |CDF error| before the last Newton step
        active = torch.arange(x.numel())
        for _ in range(iterations):
            if active.numel() == 0:
                break
            xa, ra = x[active], rows[active]
            la, sa = member_loc[:, ra], member_scale[:, ra]
            t = (xa[None] - la) / sa
            err = torch.special.ndtr(t).mean(0) - target[active]
            h, l = torch.where(err > 0, xa, hi[active]), torch.where(err <= 0, xa, lo[active])
            done = (err.abs() < tol) | (h - l < xtol * (1.0 + xa.abs()))
            pdf = (torch.exp(-0.5 * t * t) / sa).mean(0) / np.sqrt(2 * np.pi)
            step = xa - err / pdf
            bisect = ~torch.isfinite(step) | (step <= l) | (step >= h) | (err.abs() > 0.5 * last[active])
            x[active] = torch.where(done, xa, torch.where(bisect, 0.5 * (l + h), step))
            hi[active], lo[active] = h, l
            last[active] = torch.where(bisect, torch.full_like(err, float("inf")), err.abs())
            active = active[~done]
        return x.numpy().reshape(n, k)

    def quantiles(self, levels) -> np.ndarray:
        """Quantiles of the (recalibrated) mixture, ``(num_query, L)`` in target units.

        Args:
            levels: Probability levels, each strictly inside (0, 1), e.g. ``[0.05, 0.5, 0.95]``.

        Raises:
            ValueError: A level outside (0, 1).
        """
        lv = check_levels(levels)
        p = np.broadcast_to(lv, (len(self), lv.size))
        u = p if self.recalibration is None else self.recalibration.inverse(p)
        return self._raw_quantile(np.asarray(u, dtype=np.float64))

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Central prediction interval ``[Q(0.5 − level/2), Q(0.5 + level/2)]``, two arrays ``(num_query,)``."""
        q = self.quantiles([0.5 - level / 2, 0.5 + level / 2])
        return q[:, 0], q[:, 1]

    def crps(self, y: np.ndarray) -> np.ndarray:
        """CRPS per query sample (target units), ``(num_query,)``.

        Gaussian mixture in target units (``none``, no recalibration map): the closed form of Grimit et al. (2006)
        via ``scoringrules.crps_mixnorm``. Otherwise (``log1p`` or a recalibration map):
        ``CRPS = 2 ∫₀¹ ρ_p(y − Q(p)) dp`` (Gneiting & Ranjan 2011, the pinball-loss form) by the midpoint rule on
        :data:`CRPS_GRID` levels, whose error is well below 1 % (tested against the closed form).
        """
        y = np.asarray(y, dtype=np.float64)
        if self.recalibration is None and not self.log1p:
            return np.asarray(sr.crps_mixnorm(y, self._loc().T, self.member_scale.T), dtype=np.float64)
        levels = (np.arange(CRPS_GRID) + 0.5) / CRPS_GRID
        return crps_from_quantiles(y, levels, self.quantiles(levels))


__all__ = ["CRPS_GRID", "Prediction"]
