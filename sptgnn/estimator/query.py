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
see ``tests/estimator/test_query.py``) at a cost linear in the number of queries, in chunks of bounded memory.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from sptgnn.data.samples import SoilSamples
from sptgnn.train.student import student_mixture
from sptgnn.nn.relational_attention import attend
from sptgnn.graph.inputs import QueryInputs

#: Query nodes per forward batch: the attention step's (chunk, k, heads, channels) buffers of 4096 queries stay in the
#: CPU caches (one-off timing of the in-place step alone: 90–99 ms per 65,536 queries in chunks of 4,096, 105–151 ms in
#: chunks of 16,384; the map path before and after is in ``scripts/benchmark_scale.py``, part ``map``).
PREDICT_CHUNK = 4096


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
        found = self.builder.index.query(q.metric, q.spectral, q.elevation, workers=self.workers, sites=q.sites)
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
            yield sl, part, {"streams": {s: f32(a) for s, a in part.streams().items()},
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
        trend = self.ensemble.trend
        return self.builder.sample_inputs(query, None if trend is None else trend.teacher(query))

    def array_inputs(self, features: dict[str, np.ndarray], xy: np.ndarray, dates=None,
                     elevation_column: str | None = None) -> QueryInputs:
        """Queries given as raw feature columns ``{name: (n,)}`` at ``xy`` ``(n, 2)`` in the training CRS (raster
        windows, point tables) in the members' input space, the teacher's features included: the one path of
        :meth:`GraphBuilder.inputs <sptgnn.graph.builder.GraphBuilder.inputs>`.

        Raises:
            KeyError: A fitted feature column (or a teacher's) is missing from ``features``.
        """
        trend = self.ensemble.trend
        teacher = None if trend is None else trend.teacher_features(
            np.stack([np.asarray(features[c], dtype=np.float64) for c in trend.columns], 1), xy)
        return self.builder.inputs(features, xy, dates, elevation_column, teacher)

    def predict(self, query: SoilSamples, calibrated: bool = True, target: str | None = None, student: bool = False):
        """Ensemble prediction of query samples (same result as :meth:`DeepEnsemble.predict`), or the student's."""
        return self.predict_inputs(self.inputs(query), calibrated, target, student)


__all__ = ["PREDICT_CHUNK", "QueryPredictor"]
