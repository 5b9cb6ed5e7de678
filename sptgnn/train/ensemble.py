"""Deep ensemble of SpTGNN members (Lakshminarayanan et al. 2017) with a save/load run directory.

The members' Gaussians form a mixture: ``mean = mean_m μ_m``, aleatoric variance ``= mean_m σ²_m``, epistemic variance
``= var_m μ_m`` (population variance over members), total variance = aleatoric + epistemic (DESIGN.md, "Terms").
Moments are taken in target units (g/kg for SOC), after each member's back-transform.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import geopandas as gpd
import numpy as np
import pandas as pd
import scoringrules as sr
import torch
from scipy.special import logsumexp, ndtr, ndtri
from scipy.stats import norm

from sptgnn import __version__
from sptgnn.config import Config
from sptgnn.data.samples import SoilSamples
from sptgnn.graph.builder import NODE, GraphBuilder
from sptgnn.graph.features import NodeFeatureTransform
from sptgnn.nn.model import SpTGNN
from sptgnn.train.calibration import Calibrator
from sptgnn.train.splits import calibration_parts, spatial_holdout
from sptgnn.train.target import TargetTransform
from sptgnn.graph.sampler import InNeighbourSampler
from sptgnn.train.trainer import predict_nodes, stream_dims, train_member
from sptgnn.train.trend import TREND_FILE, CovariateTrend

RUN_FORMAT = 1


class RunError(ValueError):
    """A run directory that cannot be written or read back; the message says what is wrong and what to do."""


CRPS_GRID = 199  # midpoint levels of the quantile-grid CRPS of a recalibrated (non-Gaussian-mixture) prediction


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
    :mod:`sptgnn.train.calibration`) the CDF is ``R(F(y))`` and the quantile at level ``p`` is ``F⁻¹(R⁻¹(p))``
    (Kuleshov et al. 2018); the moments stay those of the members.

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

    def __post_init__(self):
        if self.member_loc is None:
            self.member_loc = np.asarray(self.member_mean, dtype=np.float64)
        if self.member_scale is None:
            self.member_scale = np.sqrt(np.asarray(self.member_var, dtype=np.float64))

    @property
    def sd(self) -> np.ndarray:
        """Total predictive sd, ``sqrt(aleatoric² + epistemic²)``, ``(num_query,)``."""
        return np.sqrt(self.aleatoric_sd**2 + self.epistemic_sd**2)

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
        )

    def scaled(self, factor: float) -> "Prediction":
        """The mixture widened by ``factor`` about its Gaussian-space mean: member locations ``l̄ + c (l_m − l̄)`` and
        sds ``c · s_m``, so that with the ``none`` transform the total, aleatoric and epistemic sds are all multiplied
        by ``c`` and the mean is unchanged (variance scaling, Levi et al. 2022; Kuleshov et al. 2018 §3)."""
        centre = self.member_loc.mean(0, keepdims=True)
        return Prediction.from_gaussian_space(centre + factor * (self.member_loc - centre), factor * self.member_scale,
                                              self.log1p, self.recalibration)

    def uncalibrated(self) -> "Prediction":
        """The same mixture without its PIT recalibration map."""
        return Prediction.from_gaussian_space(self.member_loc, self.member_scale, self.log1p)

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
        return yk, self.member_loc[:, :, None], self.member_scale[:, :, None]

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

    def _raw_quantile(self, u: np.ndarray, tol: float = 1e-10, xtol: float = 1e-12, iterations: int = 100) -> np.ndarray:
        """Inverse of :meth:`raw_cdf` at probabilities ``u`` ``(num_query, K)``.

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
        member_loc, member_scale = T(np.ascontiguousarray(self.member_loc, dtype=np.float64)), \
            T(np.ascontiguousarray(self.member_scale, dtype=np.float64))
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
        x = x.numpy()
        x = x.reshape(n, k)
        return np.expm1(x) if self.log1p else x

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
        from sptgnn.evaluate.metrics import crps_from_quantiles  # evaluate imports this module

        y = np.asarray(y, dtype=np.float64)
        if self.recalibration is None and not self.log1p:
            return np.asarray(sr.crps_mixnorm(y, self.member_loc.T, self.member_scale.T), dtype=np.float64)
        levels = (np.arange(CRPS_GRID) + 0.5) / CRPS_GRID
        return crps_from_quantiles(y, levels, self.quantiles(levels))


def _attach_mask_blocks(graph, labelled: SoilSamples, n_query: int | None, block_km: float | None) -> None:
    """Store the square block (``block_km`` side, planar metres) of every labelled node as ``mask_block`` (``-1``
    for query nodes), so that mini-batch training hides whole blocks of labels at once (``train.label_mask_block_km``)."""
    if block_km is None:
        return
    from sptgnn.data.splits import block_ids, planar_coords

    ids = block_ids(planar_coords(labelled), block_km * 1000.0)
    graph[NODE].mask_block = torch.cat([torch.as_tensor(ids, dtype=torch.long),
                                        torch.full((n_query or 0,), -1, dtype=torch.long)])


class DeepEnsemble:
    """``M`` SpTGNN members sharing one graph builder and target transform; a scikit-learn-like ``fit``/``predict``.

    Args:
        config: Run configuration (``train.members`` members, seeds ``train.seed + m``).

    Attributes:
        builder: Graph builder fitted on the training samples (the labelled nodes of every prediction graph).
        target_transform: Target transform fitted on the training targets.
        members: Trained members.
        fit_seconds: Wall-clock seconds of :meth:`fit`.
    """

    def __init__(self, config: Config):
        self.config = config
        self.target = config.data.target
        self.builder: GraphBuilder | None = None
        self.target_transform = TargetTransform(config.data.target_transform)
        self.members: list[SpTGNN] = []
        self.best_epochs: list[int] = []
        self.fit_seconds = 0.0
        self.trend: CovariateTrend | None = None
        self.aoa = None  # AreaOfApplicability reference for prediction (sptgnn.evaluate.aoa), saved as aoa.npz
        self.calibrator: Calibrator | None = None
        self.calibration_ids: list = []
        self.calibration_data: tuple[Prediction, np.ndarray] | None = None

    # -- fit ----------------------------------------------------------------------------------------------------------
    def fit(self, samples: SoilSamples, progress: Callable[[int], None] | None = None) -> "DeepEnsemble":
        """Train every member on ``samples`` (the labelled nodes) and fit the post-hoc calibration.

        Each member holds out its own spatial block part of ``samples`` (``train.val_fraction``) for early stopping.
        With ``train.refit`` the member is then retrained from the same seed on all of ``samples`` for the number of
        epochs found there (full batch: one step per epoch either way), and the refitted model is kept.

        With ``calibration.method`` other than ``none`` a spatially blocked calibration part (``calibration.fraction``
        of ``samples``, k-means blocks as for early stopping) is set aside, and each member gets a *twin*: the same
        seed and number of epochs, trained on ``samples`` minus the calibration part, which then predicts the
        calibration part attached to the rest. The calibrator is fitted on the twins' mixture there
        (:class:`~sptgnn.train.calibration.Calibrator`). The kept members are trained exactly as without calibration
        (same data, seeds and epochs), so calibration does not change the point predictions; it costs one extra
        fixed-epoch training per member. The twins are trained on less data than the members, so the calibrator
        tends to err on the wide side; the epoch count they reuse was chosen on a hold-out that may overlap the
        calibration part (one integer per member; the calibration targets are never trained on). With
        ``calibration.folds = K >= 2`` the calibration is cross-fitted: the fold is cut into ``K`` spatially blocked
        parts, each predicted by twins trained on the others, and the calibrator is fitted on all of them.

        With ``model.trend: random_forest`` (or ``auto`` when its out-of-fold R² reaches ``model.trend_min_r2``) a
        random-forest trend of the standardised target on the covariates is
        fitted first and every member is trained on the residual of the nodes' out-of-fold trend
        (:class:`~sptgnn.train.trend.CovariateTrend`); :meth:`predict` adds the trend back.

        Args:
            samples: Training samples with the configured target.
            progress: Called with the member index after each member.

        Raises:
            SamplesError: The target is missing, or a SOC target (name starting with ``soc``) is negative.
            CalibrationError: The calibration part has fewer than ``calibration.min_samples`` samples.
            ValueError: Too few samples for a graph and a hold-out.
        """
        from sptgnn.data.samples import SamplesError
        from sptgnn.train.calibration import CalibrationError

        start = time.perf_counter()
        y = samples.target(self.target)
        if self.target.lower().startswith("soc") and (y < 0).any():
            bad = np.flatnonzero(y < 0)
            ids = np.asarray(samples.sample_ids)[bad[:5]].tolist()
            raise SamplesError(f"{samples.name}: target '{self.target}' has {len(bad)} negative value(s) (SOC cannot be "
                               f"negative), e.g. samples {ids}; fix or drop those rows")
        self.target_transform.fit(y)
        self.builder = GraphBuilder(self.config.graph, self.config.imagery).fit(samples)
        coords = samples.metric_coords()
        self.members, self.best_epochs, self.calibrator, self.calibration_ids = [], [], None, []
        tc, cc = self.config.train, self.config.calibration
        n = len(samples)
        parts: list[np.ndarray] = []  # boolean masks of the calibration part(s), each predicted by twins without it
        if cc.method != "none":
            if n < 2 * cc.min_samples:
                raise CalibrationError(
                    f"{n} training samples are too few for a calibration part of at least calibration.min_samples = "
                    f"{cc.min_samples}; set calibration.method: none or lower calibration.min_samples"
                )
            parts = calibration_parts(coords, cc.split, cc.fraction, cc.folds, cc.blocks or tc.val_blocks,
                                      tc.seed + 100_003)
            held_out = int(sum(p.sum() for p in parts))
            if held_out < cc.min_samples:
                raise CalibrationError(
                    f"the calibration part holds {held_out} of {n} samples, fewer than calibration.min_samples = "
                    f"{cc.min_samples}: raise calibration.fraction, use more samples, or set calibration.method: none"
                )
        full = self.builder.build(None, self.target) if tc.refit else None
        if full is not None:
            _attach_mask_blocks(full, samples, None, tc.label_mask_block_km)
        z = self.target_transform.transform(y)
        self.trend = None
        mc = self.config.model
        if mc.trend != "none":
            self.trend = CovariateTrend(mc.trend_trees, seed=tc.seed).fit(samples, z)
            if mc.trend == "auto" and self.trend.oof_r2 < mc.trend_min_r2:
                self.trend = None  # the covariates explain too little: the members model the target itself
            else:
                z = z - self.trend.oof  # members learn the residual of the out-of-fold trend
        y_all = torch.tensor(z, dtype=torch.float32)
        twins = []  # per calibration part: graph the twin trains on, its targets, graph it predicts, the part's trend
        for cal in parts:
            rest = samples.subset(~cal)
            rest_builder = self.builder.with_labelled(rest)
            fit_graph = rest_builder.build(None, self.target)
            _attach_mask_blocks(fit_graph, rest, None, tc.label_mask_block_km)
            y_rest = y_all[torch.from_numpy(np.flatnonzero(~cal))]
            twins.append((fit_graph, y_rest, rest_builder.build(samples.subset(cal), self.target),
                          torch.cat([y_rest, torch.full((int(cal.sum()),), torch.nan)]), len(rest),
                          None if self.trend is None else self.trend.oof[cal]))
        cal_loc, cal_var = [], []  # per member: Gaussian-space outputs on the parts, concatenated in part order
        for m in range(tc.members):
            seed = tc.seed + m
            if tc.val_split == "random":  # matches random CV: validation nodes keep near labelled neighbours
                held = np.random.default_rng(seed).random(len(samples)) < tc.val_fraction
                held[np.random.default_rng(seed).integers(len(samples))] = True
            else:
                held = spatial_holdout(coords, tc.val_fraction, tc.val_blocks, seed)
            fit_part, val_part = samples.subset(~held), samples.subset(held)
            graph = self.builder.with_labelled(fit_part).build(val_part, self.target)
            _attach_mask_blocks(graph, fit_part, len(val_part), tc.label_mask_block_km)
            y_std = torch.cat([y_all[torch.from_numpy(~held)], y_all[torch.from_numpy(held)]])  # graph order: fit, then val
            result = train_member(graph, y_std, self.config, seed)
            if twins:
                # twins of the member (same seed and epochs) that never see a calibration part predict it
                outputs = []
                for fit_graph, y_rest, cal_graph, cal_labels, n_rest, cal_trend in twins:
                    twin = train_member(fit_graph, y_rest, self.config, seed, epochs=result.best_epoch + 1)
                    outputs.append(self._member_output(twin.model, cal_graph, cal_labels, n_rest, cal_trend))
                cal_loc.append(np.concatenate([o[0] for o in outputs]))
                cal_var.append(np.concatenate([o[1] for o in outputs]))
            if full is not None:
                result = train_member(full, y_all, self.config, seed, epochs=result.best_epoch + 1)
            self.members.append(result.model)
            self.best_epochs.append(result.best_epoch)
            if progress is not None:
                progress(m)
        if twins:
            order = np.concatenate([np.flatnonzero(cal) for cal in parts])  # sample index of each calibration output
            raw = self.mixture(np.stack(cal_loc), np.stack(cal_var), calibrated=False)
            self.calibrator = Calibrator.fit(cc.method, raw, y[order], cc.min_samples)
            self.calibration_data = (raw, y[order])  # kept (not saved) to compare calibration methods on one fit
            self.calibration_ids = np.asarray(samples.sample_ids)[order].tolist()
        self.fit_seconds = time.perf_counter() - start
        return self

    @torch.no_grad()
    def _member_output(self, model: SpTGNN, graph, label_value: torch.Tensor, n_lab: int,
                       trend: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian-space location and variance of one member's query nodes (see ``TargetTransform.gaussian_space``);
        ``trend`` (standardised, ``(num_query,)``) is added to the member's mean."""
        model.eval()
        out = model(graph, label_value if self.config.model.label_inputs else None)
        return self.member_gaussian(out.mean[n_lab:].numpy(), out.var[n_lab:].numpy(), trend)

    def member_gaussian(self, mean: np.ndarray, var: np.ndarray, trend: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """A member's standardised output ``(n,)`` each, plus the covariate ``trend`` (standardised, or ``None``),
        as Gaussian-space location and variance (``TargetTransform.gaussian_space``). Every prediction path ends here."""
        return self.target_transform.gaussian_space(mean if trend is None else mean + trend, var)

    def mixture(self, locs: np.ndarray, variances: np.ndarray, calibrated: bool = True) -> Prediction:
        """The members' Gaussian-space locations and variances ``(M, n)`` as the ensemble's mixture
        :class:`Prediction`, recalibrated by the fitted calibrator when ``calibrated`` (and one exists)."""
        pred = Prediction.from_gaussian_space(locs, np.sqrt(variances), self.target_transform.kind == "log1p")
        return self.calibrator.apply(pred) if calibrated and self.calibrator is not None else pred

    # -- predict ------------------------------------------------------------------------------------------------------
    def _labelled_inputs(self, n_query: int) -> torch.Tensor:
        lab = self.builder.labelled
        y_std = self.target_transform.transform(lab.target(self.target))
        if self.trend is not None:
            y_std = y_std - self.trend.oof
        return torch.tensor(np.r_[y_std, np.full(n_query, np.nan)], dtype=torch.float32)

    @torch.no_grad()
    def predict(self, query: SoilSamples, quantiles=None, calibrated: bool = True) -> Prediction:
        """Predict query samples attached to the training samples (rule 1: queries only receive messages).

        Args:
            query: Samples with the same feature columns as the training samples.
            quantiles: Levels in (0, 1) whose mixture quantiles to return in ``Prediction.quantile_values``
                (``(num_query, L)``), e.g. ``[0.05, 0.5, 0.95]``; ``None`` for none.
            calibrated: Apply the fitted calibrator (if any); ``False`` gives the raw mixture.

        Returns:
            :class:`Prediction` in target units, one entry per query sample.

        Raises:
            RuntimeError: The ensemble is not fitted.
            ValueError: Query feature columns differ from the training ones, or a quantile level outside (0, 1).
        """
        if not self.members or self.builder is None:
            raise RuntimeError("DeepEnsemble.predict called before fit or load")
        levels = None if quantiles is None else check_levels(quantiles)
        graph = self.builder.build(query, self.target)
        label_value = self._labelled_inputs(len(query))
        n_lab = len(self.builder.labelled)
        trend = None if self.trend is None else self.trend.predict(query)
        bs = self.config.train.batch_size
        sampler = InNeighbourSampler(graph, self.config.model.num_layers) if bs is not None else None
        query_nodes = torch.arange(n_lab, n_lab + len(query))
        locs, variances = [], []
        for model in self.members:
            if sampler is not None:  # large graphs: the query nodes' subgraphs only, in chunks
                model.eval()
                labels = label_value if self.config.model.label_inputs else None
                mean, var = predict_nodes(model, sampler, query_nodes, labels, 4 * bs)
                loc, v = self.member_gaussian(mean.numpy(), var.numpy(), trend)
            else:
                loc, v = self._member_output(model, graph, label_value, n_lab, trend)
            locs.append(loc)
            variances.append(v)
        pred = self.mixture(np.stack(locs), np.stack(variances), calibrated)
        if levels is not None:
            pred.quantile_levels, pred.quantile_values = levels, pred.quantiles(levels)
        return pred

    @torch.no_grad()
    def gates(self, query: SoilSamples) -> np.ndarray:
        """MoE gate weights of the query nodes averaged over members, ``(num_query, E)``."""
        graph = self.builder.build(query, self.target)
        n_lab = len(self.builder.labelled)
        labels = self._labelled_inputs(len(query))
        return np.mean([m.embed(graph, labels)[2][n_lab:].numpy() for m in self.members], axis=0)

    # -- persistence ------------------------------------------------------------------------------------------------
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write a run directory: ``config.yaml``, ``ensemble.pt`` (weights, transforms) and ``labelled.gpkg``.

        Written to a temporary directory beside ``path`` and renamed when complete, so an interrupted save leaves
        nothing under ``path``.

        Raises:
            RunError: ``path`` exists and ``overwrite`` is False, or its parent folder does not exist.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise RunError(f"{path} already exists; choose another --out or remove it")
        if not path.parent.is_dir():
            raise RunError(f"folder {path.parent} does not exist; create it first")
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            self.write_into(tmp)
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    def write_into(self, folder: Path) -> None:
        """Write the run files into an existing folder (used by :meth:`save` and the CLI's atomic output)."""
        b, t = self.builder, self.builder.transform
        lab = b.labelled
        state = {
            "format": RUN_FORMAT,
            "sptgnn_version": __version__,
            "target": self.target,
            "relations": list(b.relations),
            "distance_scale": dict(b.distance_scale),
            "transform": {
                "mean": {k: torch.tensor(v) for k, v in t.mean.items()},
                "scale": {k: torch.tensor(v) for k, v in t.scale.items()},
                "centre_m": torch.tensor(t.centre_m),
                "spread_m": t.spread_m,
                "reference_year": t.reference_year,
                "columns": t.columns,
                "imagery": None if t.imagery is None else t.imagery.state(),
            },
            "target_transform": self.target_transform.state(),
            "samples": {
                "targets": lab.targets, "feature_groups": lab.feature_groups, "elevation": lab.elevation,
                "date_column": lab.date_column, "name": lab.name,
            },
            "members": [m.state_dict() for m in self.members],
            "best_epochs": self.best_epochs,
            "fit_seconds": self.fit_seconds,
            "calibrator": None if self.calibrator is None else self.calibrator.state(),
            "calibration_ids": [str(i) for i in self.calibration_ids],
            "trend": self.trend is not None,
        }
        (folder / "config.yaml").write_text(self.config.to_yaml())
        torch.save(state, folder / "ensemble.pt")
        frame = lab.frame.copy()
        if lab.date_column:
            frame[lab.date_column] = pd.to_datetime(frame[lab.date_column]).dt.strftime("%Y-%m-%d")
        frame.to_file(folder / "labelled.gpkg", driver="GPKG", layer="labelled")
        if self.aoa is not None:
            self.aoa.save(folder / "aoa.npz")
        if self.trend is not None:
            self.trend.save(folder)

    @classmethod
    def load(cls, path: str | Path) -> "DeepEnsemble":
        """Load a run directory written by :meth:`save`; predictions equal those before saving.

        Raises:
            RunError: A missing or incomplete run directory, a run from another format version, or a corrupt checkpoint.
        """
        from sptgnn.config import ConfigError, load_config

        path = Path(path)
        files = [path / "config.yaml", path / "ensemble.pt", path / "labelled.gpkg"]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise RunError(f"{path} is not a complete sptgnn run directory (missing {missing}); train one with `sptgnn train`")
        try:
            config = load_config(files[0])
        except ConfigError as exc:
            raise RunError(f"{path}: {exc}") from None
        try:
            state = torch.load(files[1], map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
            raise RunError(f"{files[1]} is corrupt or not an sptgnn checkpoint ({type(exc).__name__}); retrain the run") from None
        if not isinstance(state, dict) or state.get("format") != RUN_FORMAT:
            raise RunError(
                f"{files[1]} has run format {state.get('format') if isinstance(state, dict) else '?'}, this sptgnn reads "
                f"format {RUN_FORMAT}; retrain with this version"
            )
        s = state["samples"]
        frame = gpd.read_file(files[2], layer="labelled")
        if s["date_column"]:
            frame[s["date_column"]] = pd.to_datetime(frame[s["date_column"]])
        labelled = SoilSamples(frame=frame, targets=s["targets"], feature_groups=s["feature_groups"], elevation=s["elevation"],
                               date_column=s["date_column"], name=s["name"])
        ens = cls(config)
        builder = GraphBuilder(config.graph, config.imagery)
        builder.labelled = labelled
        builder.relations = list(state["relations"])
        builder.distance_scale = dict(state["distance_scale"])
        tr = state["transform"]
        builder.transform = NodeFeatureTransform(
            mean={k: v.numpy() for k, v in tr["mean"].items()}, scale={k: v.numpy() for k, v in tr["scale"].items()},
            centre_m=tr["centre_m"].numpy(), spread_m=tr["spread_m"], reference_year=tr["reference_year"], columns=tr["columns"],
            imagery=builder.transform.imagery, keep_columns=builder.transform.keep_columns,
        )
        if builder.transform.imagery is not None:
            builder.transform.imagery.load_state(tr.get("imagery") or {})
        ens.builder = builder
        ens.target_transform = TargetTransform(**state["target_transform"])
        graph = builder.build(None, ens.target)
        dims = stream_dims(graph)
        for m, weights in enumerate(state["members"]):
            model = SpTGNN(config.model, builder.relations, dims, config.train.seed + m)
            try:
                model.load_state_dict(weights)
            except RuntimeError as exc:
                raise RunError(f"{files[1]}: member {m} weights do not match the config's model ({exc}); retrain the run") from None
            model.eval()
            ens.members.append(model)
        ens.best_epochs = list(state["best_epochs"])
        ens.fit_seconds = float(state["fit_seconds"])
        if state.get("trend", False):
            if not (path / TREND_FILE).is_file():
                raise RunError(f"{path} misses {TREND_FILE}, the covariate trend this run was trained with; retrain the run")
            try:
                ens.trend = CovariateTrend.load(path)
            except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
                raise RunError(f"{path / TREND_FILE} is corrupt ({type(exc).__name__}); retrain the run") from None
        if (path / "aoa.npz").is_file():
            from sptgnn.evaluate.aoa import AOAError, AreaOfApplicability

            try:
                ens.aoa = AreaOfApplicability.load(path / "aoa.npz")
            except AOAError as exc:
                raise RunError(str(exc)) from None
        cal = state.get("calibrator")  # absent in runs saved before calibration existed
        ens.calibrator = None if cal is None else Calibrator.from_state(cal)
        ens.calibration_ids = list(state.get("calibration_ids", []))
        return ens


__all__ = ["DeepEnsemble", "Prediction", "RunError"]
