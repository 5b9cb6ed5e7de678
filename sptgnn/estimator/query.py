"""Fast prediction of query nodes with cached labelled hidden states (DESIGN.md, "Prediction").

No edge leaves a query node (rule 1), so the labelled nodes' hidden states at every layer do not depend on the queries.
:class:`QueryPredictor` computes them once per member on the labelled-only graph, caches each layer's source
projection ``Θ_l h_j`` per relation (:meth:`~sptgnn.nn.relational_attention.RelationalAttentionLayer.cache_sources`),
and predicts a batch of query nodes with :meth:`~sptgnn.nn.model.SpTGNN.forward_cached`: the stream encoders, the MoE,
and per layer one GATv2 attention step over their ``k`` labelled neighbours in each relation (Brody et al. 2022, eq. 7):

``e_ij = aᵀ LeakyReLU(Θ_l h_j + Θ_r h_i + Θ_e a_ij)``, ``α_ij = softmax_j(e_ij)``, ``m_i = Σ_j α_ij Θ_l h_j + b``,
summed over relations, then ``h_i ← LayerNorm(h_i + GELU(Σ_r m_i^r))``.

Neighbours come from cKDTrees over the fitted builder's spaces (metric coordinates, the spectral space, elevation among
spatial candidates), built once. The result equals :meth:`DeepEnsemble.predict` on the full graph (up to float error,
see ``tests/predict/test_query.py``) at a cost linear in the number of queries, in chunks of bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import warnings

import numpy as np
import pandas as pd
import torch

from sptgnn.data.samples import SoilSamples
from sptgnn.train.student import student_mixture
from sptgnn.geo import metric_coords
from sptgnn.nn.relational_attention import attend
from sptgnn.graph.features import TIME_FEATURES

#: Query nodes per forward batch: the attention step's (chunk, k, heads, channels) buffers of 4096 queries stay in the
#: CPU caches (one-off timing of the in-place step alone: 90–99 ms per 65,536 queries in chunks of 4,096, 105–151 ms in
#: chunks of 16,384; the map path before and after is in ``scripts/benchmark_scale.py``, part ``map``).
PREDICT_CHUNK = 4096


def time_features(dates: pd.Series | None, n: int, reference_year: float) -> np.ndarray:
    """Time stream ``(n, 3)`` as :meth:`NodeFeatureTransform.time`: decades since the reference year, sin/cos day of year."""
    if dates is None:
        return np.zeros((n, TIME_FEATURES))
    dates = pd.to_datetime(pd.Series(dates)).reset_index(drop=True)
    if len(dates) == 1 and n != 1:
        dates = pd.Series(np.repeat(dates.to_numpy(), n))
    doy = 2 * np.pi * (dates.dt.day_of_year.to_numpy() - 1) / 365.25
    return np.c_[(dates.dt.year.to_numpy() - reference_year) / 10.0, np.sin(doy), np.cos(doy)]


@dataclass
class QueryInputs:
    """Query nodes as arrays in the model's input space.

    Attributes:
        imagery: Standardised imagery stream ``(n, F_img)``.
        environment: Standardised environment stream ``(n, F_env)``.
        pos: Position stream ``(n, d)`` (offsets from the labelled centroid in labelled-spread units).
        time: Time stream ``(n, 3)``.
        metric: Metric coordinates ``(n, d)`` (m) for the spatial and elevation relations.
        spectral: Spectral relation space ``(n, F_s)``.
        elevation: Elevation (m) ``(n,)`` or ``None``.
        trend: Covariate trend ``(n,)`` in standardised target units (``model.trend``), or ``None``.
        teacher: The teacher's features ``(n, F)`` (trend, then kriging prediction and sd for ``kpr_random_forest``;
            :meth:`~sptgnn.train.trend.CovariateTrend.teacher_features`), read by members with ``model.teacher_input``.
    """

    imagery: np.ndarray
    environment: np.ndarray
    pos: np.ndarray
    time: np.ndarray
    metric: np.ndarray
    spectral: np.ndarray
    elevation: np.ndarray | None
    trend: np.ndarray | None = None
    teacher: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.metric)

    def take(self, sl: slice) -> "QueryInputs":
        """Rows ``sl`` of every array."""
        return QueryInputs(*(None if a is None else a[sl] for a in (self.imagery, self.environment, self.pos, self.time,
                                                                     self.metric, self.spectral, self.elevation,
                                                                     self.trend, self.teacher)))

    @classmethod
    def from_samples(cls, builder, samples: SoilSamples, trend=None) -> "QueryInputs":
        """Inputs of query samples with the fitted builder's transforms (same as :meth:`GraphBuilder.build`);
        ``trend`` is the ensemble's fitted :class:`~sptgnn.train.trend.CovariateTrend` or ``None``."""
        t = builder.transform
        teacher = None if trend is None else trend.teacher(samples)
        return cls(
            imagery=builder.stream(samples, "imagery"), environment=builder.stream(samples, "environment"),
            pos=t.position(samples),
            time=t.time(samples), metric=samples.metric_coords(), spectral=builder.spectral_space(samples),
            elevation=samples.elevation_m(), trend=None if teacher is None else teacher[:, 0], teacher=teacher,
        )

    @classmethod
    def from_arrays(cls, builder, features: dict[str, np.ndarray], xy: np.ndarray, dates=None,
                    elevation_column: str | None = None, trend=None) -> "QueryInputs":
        """Inputs from raw feature columns and coordinates, e.g. the valid pixels of a raster window.

        Args:
            builder: Fitted :class:`~sptgnn.graph.builder.GraphBuilder`.
            features: Raw (unstandardised) values per feature column, each ``(n,)``; every fitted column is needed.
            xy: ``(n, 2)`` coordinates in the training samples' CRS.
            dates: Sampling dates (one for all or ``(n,)``) or ``None`` (time stream at the labelled mean year).
            elevation_column: Feature holding elevation (m) for the elevation relation.
            trend: The ensemble's fitted :class:`~sptgnn.train.trend.CovariateTrend` (reads its columns from
                ``features``) or ``None``.

        Raises:
            KeyError: A fitted feature column is missing from ``features``.
        """
        t = builder.transform
        n = len(xy)
        streams = {}
        for s, cols in t.columns.items():
            raw = np.stack([np.asarray(features[c], dtype=np.float64) for c in cols], axis=1) if cols else np.zeros((n, 0))
            streams[s] = (raw - t.mean[s]) / t.scale[s]
            if builder.config.feature_clip is not None:  # as GraphBuilder.stream
                streams[s] = np.clip(streams[s], -builder.config.feature_clip, builder.config.feature_clip)
        metric = metric_coords(xy, builder.labelled.crs)
        spec_streams = [s for s in builder.config.spectral_streams if t.columns.get(s)] or ["environment"]
        has_dates = dates is not None and builder.labelled.date_column is not None
        teacher = None if trend is None else trend.teacher_features(np.stack([features[c] for c in trend.columns], 1), xy)
        return cls(
            imagery=streams.get("imagery", np.zeros((n, 0))), environment=streams.get("environment", np.zeros((n, 0))),
            pos=(metric - t.centre_m) / t.spread_m,
            time=time_features(dates if has_dates else None, n, t.reference_year),
            metric=metric, spectral=np.concatenate([streams[s] for s in spec_streams], axis=1),
            elevation=None if elevation_column is None else np.asarray(features[elevation_column], dtype=np.float64),
            trend=None if teacher is None else teacher[:, 0], teacher=teacher,
        )


class QueryPredictor:
    """Predicts query nodes of a fitted :class:`~sptgnn.train.ensemble.DeepEnsemble` with cached labelled states.

    Args:
        ensemble: A fitted or loaded ensemble.
        chunk: Query nodes per forward batch; memory is ``O(chunk · k · d)`` whatever the number of queries.
        compile: Fuse the attention step with ``torch.compile`` (about 3× faster on CPU once compiled; the first
            compilation takes tens of seconds and needs a C++ compiler; falls back to eager mode with a warning).
        workers: Threads of the cKDTree neighbour queries.

    Shapes:
        :meth:`predict_inputs` of ``n`` queries → :class:`Prediction` with ``(n,)`` arrays and ``(M, n)`` members.
    """

    def __init__(self, ensemble, chunk: int = PREDICT_CHUNK, compile: bool = False, workers: int = 1):
        if not ensemble.members or ensemble.builder is None:
            raise RuntimeError("QueryPredictor needs a fitted or loaded ensemble")
        self._attend = attend
        self.workers = int(workers)
        if compile:
            self.enable_compile()
        self.ensemble = ensemble
        self.builder = ensemble.builder
        self.chunk = int(chunk)
        graph = self.builder.build(None, ensemble.target)
        ensemble.attach_teacher(graph)
        labels = ensemble._labelled_inputs(0) if ensemble.config.model.label_inputs else None
        # per member, per layer: the labelled nodes' source projections and edge weights per relation
        self._caches: list[list] = [self._cache(model, graph, labels) for model in ensemble.members]
        self._student_cache: list | None = None
        if ensemble.student is not None:
            self._student_cache = self._cache(ensemble.student, graph, labels)

    @staticmethod
    @torch.no_grad()
    def _cache(model, graph, labels) -> list:
        """Per layer, the labelled nodes' source projections and edge weights of ``model``."""
        model.eval()
        states = model.layer_states(graph, labels)
        return [layer.cache_sources(h) for layer, h in zip(model.layers, states[:-1])]

    @property
    def compiled(self) -> bool:
        """Whether the attention step is fused by ``torch.compile``."""
        return self._attend is not attend

    def enable_compile(self) -> None:
        """Fuse the attention step with ``torch.compile`` (eager mode stays, with a warning, if it is unavailable).

        Only the attention step: compiling the whole :meth:`SpTGNN.forward_cached` made inductor's CPU kernels about 10×
        slower (benchmarked on a 1000 × 1000 stack), while the fused attention step is about 3× faster than eager."""
        if self.compiled:
            return
        try:
            self._attend = torch.compile(attend, dynamic=True)
        except Exception as exc:  # noqa: BLE001 - any backend failure: eager mode is correct, only slower
            warnings.warn(f"torch.compile unavailable ({type(exc).__name__}); prediction runs in eager mode", stacklevel=2)

    # -- neighbours -----------------------------------------------------------------------------------------------
    def neighbours(self, q: QueryInputs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Labelled neighbours of each query per relation: indices ``(n, k)`` and edge attributes ``(n, k)``
        (``log1p(distance / distance_scale)``), from the builder's :class:`~sptgnn.graph.relations.RelationIndex`, the
        trees :meth:`GraphBuilder.build` attaches queries with."""
        scale = self.builder.distance_scale
        found = self.builder.index.query(q.metric, q.spectral, q.elevation, workers=self.workers)
        return {r: (idx, np.log1p(dist / scale[r])) for r, (idx, dist) in found.items()}

    # -- forward --------------------------------------------------------------------------------------------------
    def _member(self, m: int, model, q: QueryInputs, tensors: dict, task: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Member ``m``'s Gaussian-space location and variance ``(n,)`` of the query chunk for target ``task`` (the
        trend added to the primary)."""
        args = (tensors["streams"], self._caches[m], tensors["nbr"])
        try:
            mean, var = model.forward_cached(*args, attend_fn=self._attend, task=task)
        except Exception as exc:  # noqa: BLE001 - a compiled pass that fails at its first call: go eager
            if not self.compiled:
                raise
            warnings.warn(f"torch.compile failed ({type(exc).__name__}: {exc}); prediction runs in eager mode",
                          stacklevel=2)
            self._attend = attend
            mean, var = model.forward_cached(*args, task=task)
        return self.ensemble.member_gaussian(mean.numpy(), var.numpy(), None if task else q.trend, task)

    def _chunks(self, q: QueryInputs):
        """The query inputs in chunks of :attr:`chunk`: ``(slice, part, tensors)`` with the streams and the labelled
        neighbours per relation as tensors."""
        f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        for start in range(0, len(q), self.chunk):
            sl = slice(start, min(len(q), start + self.chunk))
            part = q.take(sl)
            nb = self.neighbours(part)
            streams = {"imagery": f32(part.imagery), "environment": f32(part.environment), "position": f32(part.pos),
                       "time": f32(part.time)}
            if part.teacher is not None:
                streams["teacher"] = f32(part.teacher)
            yield sl, part, {"streams": streams,
                             "nbr": {r: (torch.from_numpy(i.astype(np.int64)), f32(a)) for r, (i, a) in nb.items()}}

    @torch.no_grad()
    def predict_inputs(self, q: QueryInputs, calibrated: bool = True, target: str | None = None,
                       student: bool = False):
        """Ensemble prediction of query inputs, in target units, recalibrated by the run's calibrator (if any and
        ``calibrated``), as :meth:`DeepEnsemble.predict`; ``target`` picks one of ``data.targets`` (``None``: the
        primary); ``student`` uses the distilled student instead of the members (primary target only).

        Returns:
            :class:`~sptgnn.distributions.Prediction` with ``(n,)`` moments and ``(M, n)`` member means/variances.

        Raises:
            ValueError: ``student`` for a run without one, or with an auxiliary ``target``.
        """
        task = self.ensemble.task_index(target)
        if student:
            if self._student_cache is None:
                raise ValueError("this run has no student; train it with student.enabled: true")
            if task:
                raise ValueError("the student predicts the primary target only")
            return self._predict_student(q, calibrated)
        n, M = len(q), len(self.ensemble.members)
        means, variances = np.empty((M, n)), np.empty((M, n))  # Gaussian-space location and variance per member
        for sl, part, tensors in self._chunks(q):
            for m, model in enumerate(self.ensemble.members):
                means[m, sl], variances[m, sl] = self._member(m, model, part, tensors, task)
        return self.ensemble.mixture(means, variances, calibrated, task)

    def _predict_student(self, q: QueryInputs, calibrated: bool):
        model, n = self.ensemble.student, len(q)
        heads = 1 + len(model.aux_heads)
        means, variances = np.empty((heads, n)), np.empty((heads, n))
        for sl, part, tensors in self._chunks(q):
            h = model.cached_state(tensors["streams"], self._student_cache, tensors["nbr"], self._attend)
            for k in range(heads):
                m, v = model.read_out(h, tensors["streams"], k)
                means[k, sl], variances[k, sl] = m.numpy(), v.numpy()
        return student_mixture(self.ensemble, means, variances, q.trend, calibrated)

    def inputs(self, query: SoilSamples) -> QueryInputs:
        """Query samples in the members' input space (streams, relation spaces, teacher features): built once, they
        serve several :meth:`predict_inputs` calls (targets, student, raw and calibrated)."""
        return QueryInputs.from_samples(self.builder, query, self.ensemble.trend)

    def predict(self, query: SoilSamples, calibrated: bool = True, target: str | None = None, student: bool = False):
        """Ensemble prediction of query samples (same result as :meth:`DeepEnsemble.predict`), or the student's."""
        return self.predict_inputs(self.inputs(query), calibrated, target, student)


__all__ = ["PREDICT_CHUNK", "QueryInputs", "QueryPredictor", "time_features"]
