"""Deep ensemble of SpTGNN members (Lakshminarayanan et al. 2017): training orchestration and prediction routing.

The members' Gaussians form the mixture of :class:`~sptgnn.distributions.Prediction`; the fitted ensemble is saved and
loaded as a :class:`~sptgnn.estimator.run.Run`.
"""

from __future__ import annotations

import functools
import itertools
import time
from typing import Callable

import numpy as np
import torch

from sptgnn.errors import UserError
from sptgnn.config import Config
from sptgnn.data.samples import SoilSamples
from sptgnn.distributions import CalibrationError, Calibrator, Prediction, check_levels
from sptgnn.pretrain.checkpoint import load_pretrained
from sptgnn.graph.builder import GraphBuilder
from sptgnn.graph.sampler import InNeighbourSampler
from sptgnn.nn.model import SpTGNN
from sptgnn.parallel import current_executor
from sptgnn.splits import calibration_parts
from sptgnn.train.checks import check_training_samples, clip_neighbours
from sptgnn.train.student import distil_student, new_student
from sptgnn.train.node_inputs import attach_mask_blocks, attach_teacher_rows
from sptgnn.train.tasks import fit_aux_targets
from sptgnn.train.target import TargetTransform
from sptgnn.train.member_tasks import MemberTasks, Twin, early_stopped, follow_ups, second_stage
from sptgnn.train.trainer import predict_nodes, stream_dims
from sptgnn.train.trend import CovariateTrend, fit_trend, trend_parts

class EnsembleStateError(UserError):
    """A saved ensemble state that does not fit its config (weights of another model); the message says which."""


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
        self.aux_targets: list[str] = list(config.data.aux_targets)
        self.aux_transforms: list[TargetTransform] = []  # per auxiliary target: its standardisation (no log)
        self.members: list[SpTGNN] = []
        self.best_epochs: list[int] = []
        self.fit_seconds = 0.0
        self.trend: CovariateTrend | None = None
        self.calibrator: Calibrator | None = None
        self.calibration_ids: list = []
        self.calibration_data: tuple[Prediction, np.ndarray] | None = None
        self.student: SpTGNN | None = None  # the fast student (``student.enabled``), see sptgnn.train.student
        self.student_info, self.selection = {}, {}  # the student's fit; the inner CV's choice (estimator.selection)

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
        (:class:`~sptgnn.distributions.calibration.Calibrator`). The kept members are trained exactly as without calibration
        (same data, seeds and epochs), so calibration does not change the point predictions; it costs one extra
        fixed-epoch training per member. The twins are trained on less data than the members, so the calibrator
        tends to err on the wide side; the epoch count they reuse was chosen on a hold-out that may overlap the
        calibration part (one integer per member; the calibration targets are never trained on). With
        ``calibration.folds = K >= 2`` the calibration is cross-fitted: the fold is cut into ``K`` spatially blocked
        parts, each predicted by twins trained on the others, and the calibrator is fitted on all of them.

        With ``model.trend`` (the teacher, :class:`~sptgnn.train.trend.CovariateTrend`) the members are trained on the
        residual of each node's out-of-fold trend and :meth:`predict` adds the trend back.

        Args:
            samples: Training samples with the configured target.
            progress: Called with ``k - 1`` when the ``k``-th member has finished all its tasks (early-stopped
                training, refit, twins; the member index when they run in order).

        Raises:
            SamplesError: The target is missing, or a SOC target (name starting with ``soc``) is negative.
            CalibrationError: The calibration part has fewer than ``calibration.min_samples`` samples.
            ValueError: Too few samples for a graph and a hold-out.
        """
        start = time.perf_counter()
        y = check_training_samples(samples, self.config)
        self.target_transform.fit(y)
        self.aux_transforms, aux_all = fit_aux_targets(samples, self.aux_targets)
        self.config = clip_neighbours(self.config, len(samples), samples.name)
        m = self.config.model
        self.builder = GraphBuilder(self.config.graph, self.config.imagery,
                                    m.location_fm if "location_fm" in m.streams else None)
        if self.config.model.pretrained:  # the encoders' inputs standardised as in pre-training
            self.builder.transform.fixed = load_pretrained(self.config.model.pretrained).normalisation
        self.builder.fit(samples)
        coords = samples.metric_coords()
        self.members, self.best_epochs, self.calibrator, self.calibration_ids = [], [], None, []
        tc, cc = self.config.train, self.config.calibration
        n = len(samples)
        parts: list[np.ndarray] = []  # boolean masks of the calibration part(s), each predicted by twins without it
        method = cc.method
        if method != "none":
            parts = [] if n < 2 * cc.min_samples else calibration_parts(
                coords, cc.split, cc.fraction, cc.folds, cc.blocks or tc.val_blocks, tc.seed + 100_003)
            held_out = int(sum(p.sum() for p in parts))
            if held_out < cc.min_samples:
                reason = (f"the calibration part would hold {held_out} of {n} training samples, fewer than "
                          f"calibration.min_samples = {cc.min_samples}")
                if method != "auto":
                    raise CalibrationError(f"{reason}: raise calibration.fraction, use more samples, lower "
                                           f"calibration.min_samples, or set calibration.method: none (or auto)")
                # `auto` calibrates only where the calibration can be checked; here it cannot: said in the record
                self.calibrator = Calibrator(method="identity", selection={"chosen": "identity", "reason": reason})
                parts, method = [], "none"
        full = self.builder.build(None, self.target) if tc.refit else None
        if full is not None:
            attach_mask_blocks(full, samples, None, tc.label_mask_block_km)
        z = self.target_transform.transform(y)
        mc, z_target = self.config.model, z
        split = mc.trend_split if mc.trend_split != "auto" else tc.val_split
        parts_of = functools.partial(trend_parts, split=split, folds=5, num_blocks=tc.val_blocks, seed=tc.seed + 7)
        self.trend = fit_trend(mc, samples, z, tc.seed, parts_of(coords))
        if self.trend is not None:
            z = z - self.trend.oof  # members learn the residual of the out-of-fold trend
        if full is not None:
            attach_teacher_rows(self, full, np.arange(n))
        y_all = torch.tensor(z, dtype=torch.float32)
        twins: list[Twin] = []  # one per calibration part
        for cal in parts:
            rest, query = samples.subset(~cal), samples.subset(cal)
            rest_builder = self.builder.with_labelled(rest)
            fit_graph = rest_builder.build(None, self.target)
            cal_graph = rest_builder.build(query, self.target)
            attach_mask_blocks(fit_graph, rest, None, tc.label_mask_block_km)
            y_rest, cal_trend = y_all[torch.from_numpy(np.flatnonzero(~cal))], None
            if self.trend is not None:  # the twin's own trend, fitted without the calibration part
                twin = self.trend.refit(rest, z_target[~cal], parts_of(coords[~cal]))
                teacher = twin.teacher(query)  # column 0 is the trend
                y_rest, cal_trend = torch.tensor(z_target[~cal] - twin.oof, dtype=torch.float32), teacher[:, 0]
                attach_teacher_rows(self, fit_graph, np.arange(len(rest)), trend=twin)
                attach_teacher_rows(self, cal_graph, np.arange(len(rest)), teacher, trend=twin)
            twins.append(Twin(fit_graph, y_rest, cal_graph, torch.cat([y_rest, torch.full((int(cal.sum()),), torch.nan)]),
                              len(rest), cal_trend,
                              None if aux_all is None else aux_all[torch.from_numpy(np.flatnonzero(~cal))]))
        # member m's early-stopped training, then its refit and twins: tasks of the current executor (sptgnn.parallel)
        ctx, finished = MemberTasks(self, samples, coords, y_all, aux_all, full, twins), itertools.count()
        done = current_executor().stages(early_stopped, lambda m, first: follow_ups(ctx, m, first), second_stage,
                                         range(tc.members), ctx,
                                         on_done=None if progress is None else lambda _m: progress(next(finished)))
        cal_loc, cal_var = [], []  # per member: Gaussian-space outputs on the parts, concatenated in part order
        for (model, best_epoch), rest in done:
            outputs = rest[1:] if full is not None else rest
            if twins:
                cal_loc.append(np.concatenate([o[0] for o in outputs]))
                cal_var.append(np.concatenate([o[1] for o in outputs]))
            self.members.append(rest[0] if full is not None else model)
            self.best_epochs.append(best_epoch)
        if twins:
            order = np.concatenate([np.flatnonzero(cal) for cal in parts])  # sample index of each calibration output
            raw = self.mixture(np.stack(cal_loc), np.stack(cal_var), calibrated=False)
            self.calibrator = Calibrator.fit(method, raw, y[order], cc.min_samples)
            self.calibration_data = (raw, y[order])  # kept (not saved) to compare calibration methods on one fit
            self.calibration_ids = np.asarray(samples.sample_ids)[order].tolist()
        self.student, self.student_info = distil_student(self) if self.config.student.enabled else (None, {})
        self.fit_seconds = time.perf_counter() - start
        return self

    # -- state: what a run folder stores (files are sptgnn.estimator.persistence's) ------------------------------------
    def state(self) -> dict:
        """The fitted ensemble as tensors and plain values (``torch.save``-able, read back with ``weights_only=True``):
        the builder's state, target transforms, members' and student's weights, best epochs, fit time, calibrator,
        calibration ids, whether there is a trend (saved apart, :meth:`CovariateTrend.save
        <sptgnn.train.trend.CovariateTrend.save>`) and the inner selection's choice."""
        return {
            "builder": self.builder.state(), "target_transform": self.target_transform.state(),
            "aux_transforms": [t.state() for t in self.aux_transforms],
            "members": [m.state_dict() for m in self.members], "best_epochs": self.best_epochs,
            "fit_seconds": self.fit_seconds, "calibrator": None if self.calibrator is None else self.calibrator.state(),
            "calibration_ids": [str(i) for i in self.calibration_ids], "trend": self.trend is not None,
            "student": None if self.student is None else self.student.state_dict(), "student_info": self.student_info,
            "selection": self.selection,
        }

    @classmethod
    def from_state(cls, config: Config, state: dict, labelled: SoilSamples,
                   trend: CovariateTrend | None = None) -> "DeepEnsemble":
        """The ensemble :meth:`state` describes, on its labelled samples, with its trend (``None`` when it has none).

        Raises:
            EnsembleStateError: Weights that do not fit the config's model or student section.
            KeyError: The state lacks an entry every ensemble state has.
        """
        ens = cls(config)
        ens.builder = GraphBuilder.from_state(config.graph, config.imagery, state["builder"], labelled)
        ens.target_transform = TargetTransform(**state["target_transform"])
        ens.aux_transforms = [TargetTransform(**t) for t in state.get("aux_transforms", [])]
        ens.trend = trend
        graph = ens.builder.build(None, ens.target)
        ens.attach_teacher(graph)  # model.teacher_input: the members' teacher stream has the trend's width
        dims = stream_dims(graph)
        for m, weights in enumerate(state["members"]):
            model = SpTGNN(config.model, ens.builder.relations, dims, config.train.seed + m, num_aux=len(ens.aux_targets))
            try:
                model.load_state_dict(weights)
            except RuntimeError as exc:
                raise EnsembleStateError(f"member {m} weights do not match the config's model ({exc}); retrain the "
                                         "run") from None
            ens.members.append(model.eval())
        if state.get("student") is not None:
            ens.student = new_student(config, ens.builder.relations, dims, config.train.seed, len(ens.members))
            try:
                ens.student.load_state_dict(state["student"])
            except RuntimeError as exc:
                raise EnsembleStateError(f"the student's weights do not match the config's student section ({exc}); "
                                         "retrain the run") from None
            ens.student.eval()
            ens.student_info = dict(state.get("student_info", {}))
        ens.selection = dict(state.get("selection", {}))
        ens.best_epochs, ens.fit_seconds = list(state["best_epochs"]), float(state["fit_seconds"])
        cal = state.get("calibrator")
        ens.calibrator = None if cal is None else Calibrator.from_state(cal)
        ens.calibration_ids = list(state.get("calibration_ids", []))
        return ens

    @property
    def calibration_choice(self) -> dict:
        """What the calibration did (:meth:`~sptgnn.distributions.calibration.Calibrator.record`)."""
        return {"method": "none"} if self.calibrator is None else self.calibrator.record(self.config.calibration.method)

    def attach_teacher(self, graph, query: np.ndarray | None = None) -> None:
        """With ``model.teacher_input``: the teacher's features ``(N, F)`` on a graph of the training samples (out of
        fold) and query nodes (``query`` ``(n, F)``, :meth:`~sptgnn.train.trend.CovariateTrend.teacher`)."""
        if self.trend is not None:
            attach_teacher_rows(self, graph, np.arange(len(self.trend.oof)), query)

    def task_index(self, target: str | None) -> int:
        """0 for the primary target (or ``None``), ``t`` for the ``t``-th auxiliary target of ``data.targets``.

        Raises:
            ValueError: ``target`` is not one of the run's targets.
        """
        if target is None or target == self.target:
            return 0
        if target not in self.aux_targets:
            raise ValueError(f"target '{target}' was not trained; the run's targets: {[self.target, *self.aux_targets]}")
        return self.aux_targets.index(target) + 1

    @torch.no_grad()
    def member_output(self, model: SpTGNN, graph, label_value: torch.Tensor, n_lab: int,
                       trend: np.ndarray | None = None, task: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian-space location and variance of one member's query nodes (see ``TargetTransform.gaussian_space``)
        for target ``task`` (:meth:`task_index`); ``trend`` (standardised, ``(num_query,)``) is added to the member's
        mean of the primary target."""
        model.eval()
        out = model(graph, label_value if self.config.model.label_inputs else None)
        if task:
            return self.member_gaussian(out.aux_mean[n_lab:, task - 1].numpy(), out.aux_var[n_lab:, task - 1].numpy(),
                                        None, task)
        return self.member_gaussian(out.mean[n_lab:].numpy(), out.var[n_lab:].numpy(), trend)

    def member_gaussian(self, mean: np.ndarray, var: np.ndarray, trend: np.ndarray | None,
                        task: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """A member's standardised output ``(n,)`` each, plus the covariate ``trend`` (standardised, or ``None``;
        primary target only), as Gaussian-space location and variance (``TargetTransform.gaussian_space``) of target
        ``task``. Every prediction path ends here."""
        transform = self.target_transform if task == 0 else self.aux_transforms[task - 1]
        return transform.gaussian_space(mean if trend is None else mean + trend, var)

    def mixture(self, locs: np.ndarray, variances: np.ndarray, calibrated: bool = True, task: int = 0) -> Prediction:
        """The members' Gaussian-space locations and variances ``(M, n)`` as the ensemble's mixture
        :class:`Prediction` of target ``task``, recalibrated by the fitted calibrator when ``calibrated`` (and one
        exists; the calibrator is fitted on the primary target, so auxiliary targets are never recalibrated)."""
        log1p = task == 0 and self.target_transform.kind == "log1p"
        pred = Prediction.from_gaussian_space(locs, np.sqrt(variances), log1p)
        return self.calibrator.apply(pred) if task == 0 and calibrated and self.calibrator is not None else pred

    # -- predict ------------------------------------------------------------------------------------------------------
    def _labelled_inputs(self, n_query: int) -> torch.Tensor:
        lab = self.builder.labelled
        y_std = self.target_transform.transform(lab.target(self.target))
        if self.trend is not None:
            y_std = y_std - self.trend.oof
        return torch.tensor(np.r_[y_std, np.full(n_query, np.nan)], dtype=torch.float32)

    @torch.no_grad()
    def predict(self, query: SoilSamples, quantiles=None, calibrated: bool = True, target: str | None = None) -> Prediction:
        """Predict query samples attached to the training samples (rule 1: queries only receive messages).

        Args:
            query: Samples with the same feature columns as the training samples.
            quantiles: Levels in (0, 1) whose mixture quantiles to return in ``Prediction.quantile_values``
                (``(num_query, L)``), e.g. ``[0.05, 0.5, 0.95]``; ``None`` for none.
            calibrated: Apply the fitted calibrator (if any); ``False`` gives the raw mixture.
            target: Which target (``data.targets``); ``None``: the primary.

        Returns:
            :class:`Prediction` in target units, one entry per query sample.

        Raises:
            RuntimeError: The ensemble is not fitted.
            ValueError: Query feature columns differ from the training ones, a quantile level outside (0, 1), or a
                target the run was not trained on.
        """
        if not self.members or self.builder is None:
            raise RuntimeError("DeepEnsemble.predict called before fit or load")
        task = self.task_index(target)
        levels = None if quantiles is None else check_levels(quantiles)
        graph = self.builder.build(query, self.target)
        teacher = None if self.trend is None else self.trend.teacher(query)  # column 0 is the trend
        self.attach_teacher(graph, teacher)
        label_value = self._labelled_inputs(len(query))
        n_lab = len(self.builder.labelled)
        trend = None if teacher is None or task else teacher[:, 0]
        bs = self.config.train.batch_size
        sampler = InNeighbourSampler(graph, self.config.model.num_layers) if bs is not None else None
        query_nodes = torch.arange(n_lab, n_lab + len(query))
        locs, variances = [], []
        for model in self.members:
            if sampler is not None:  # large graphs: the query nodes' subgraphs only, in chunks
                model.eval()
                labels = label_value if self.config.model.label_inputs else None
                mean, var = predict_nodes(model, sampler, query_nodes, labels, 4 * bs, task)
                loc, v = self.member_gaussian(mean.numpy(), var.numpy(), trend, task)
            else:
                loc, v = self.member_output(model, graph, label_value, n_lab, trend, task)
            locs.append(loc)
            variances.append(v)
        pred = self.mixture(np.stack(locs), np.stack(variances), calibrated, task)
        if levels is not None:
            pred.quantile_levels, pred.quantile_values = levels, pred.quantiles(levels)
        return pred

    @torch.no_grad()
    def gates(self, query: SoilSamples) -> np.ndarray:
        """MoE gate weights of the query nodes averaged over members, ``(num_query, E)``, from their streams alone
        (the router sees no graph, so none is built)."""
        streams = {s: torch.as_tensor(a, dtype=torch.float32)
                   for s, a in self.builder.sample_inputs(query).streams().items()}
        return np.mean([m.eval().gate_weights(streams).numpy() for m in self.members], axis=0)


__all__ = ["DeepEnsemble", "EnsembleStateError"]
