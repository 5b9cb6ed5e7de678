"""Nodes as arrays in the model's input space: the standardised streams, positional and temporal embeddings and the
relation spaces of query nodes (:class:`QueryInputs`), built by :meth:`sptgnn.graph.builder.GraphBuilder.inputs`
(raw feature columns: raster windows, point tables) or :meth:`~sptgnn.graph.builder.GraphBuilder.sample_inputs`
(samples) through one path, so that a pixel and the same point given as a sample get the same inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class QueryInputs:
    """Query nodes as arrays in the model's input space.

    Attributes:
        imagery: Standardised imagery stream ``(n, F_img)``.
        environment: Standardised environment stream ``(n, F_env)``.
        pos: Position stream ``(n, d)`` (offsets from the labelled centroid in labelled-spread units).
        time: Time stream ``(n, 3)``.
        metric: Coordinates of the spatial and elevation relations ``(n, d)`` (m; with ``graph.depth_scale_m`` the
            layer's scaled mid depth as one more).
        spectral: Spectral relation space ``(n, F_s)``.
        elevation: Elevation (m) ``(n,)`` or ``None``.
        trend: Covariate trend ``(n,)`` in standardised target units (``model.trend``), or ``None``.
        teacher: The teacher's features ``(n, F)`` (trend, then kriging prediction and sd for ``kpr_random_forest``;
            :meth:`~sptgnn.train.trend.CovariateTrend.teacher_features`), read by members with ``model.teacher_input``.
        sites: Site ids ``(n,)`` of query layers (never attached to labelled layers of their own site), or ``None``.
        location_fm: Location foundation-model stream ``(n, k)`` (``(n, 0)`` or ``None`` without it).
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
    sites: np.ndarray | None = None
    location_fm: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.metric)

    def streams(self) -> dict[str, np.ndarray]:
        """The stream inputs by the model's stream names (:meth:`SpTGNN.embed_streams
        <sptgnn.nn.model.SpTGNN.embed_streams>`): ``imagery``, ``environment``, ``position``, ``time``, and ``teacher``
        and ``location_fm`` where the queries have them."""
        out = {"imagery": self.imagery, "environment": self.environment, "position": self.pos, "time": self.time}
        if self.teacher is not None:
            out["teacher"] = self.teacher
        if self.location_fm is not None and self.location_fm.shape[1]:
            out["location_fm"] = self.location_fm
        return out

    def take(self, sl: slice) -> "QueryInputs":
        """Rows ``sl`` of every array."""
        return QueryInputs(*(None if a is None else a[sl] for a in (self.imagery, self.environment, self.pos, self.time,
                                                                     self.metric, self.spectral, self.elevation,
                                                                     self.trend, self.teacher, self.sites,
                                                                     self.location_fm)))


__all__ = ["QueryInputs"]
