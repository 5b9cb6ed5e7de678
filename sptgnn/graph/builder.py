"""Build the heterogeneous sample graph as a torch_geometric :class:`~torch_geometric.data.HeteroData`.

Node type ``"sample"``; labelled nodes come first (``0 … num_labelled-1``), query nodes after them. Edge types
``("sample", RELATION, "sample")`` for each configured relation. Edges run labelled → labelled (never a self loop) and
labelled → query; no edge leaves a query node and none joins two query nodes (rule 1 of DESIGN.md), so a query node's
prediction depends only on labelled nodes and its own features. Feature statistics, edge-distance scales and kNN indices
come from the labelled nodes passed to :meth:`GraphBuilder.fit`.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch_geometric.data import HeteroData

from sptgnn.config import GraphConfig
from sptgnn.data.samples import STREAMS, SoilSamples
from sptgnn.geo import metric_coords
from sptgnn.geo.coords import transform_xy
from sptgnn.graph.features import NodeFeatureTransform, time_features
from sptgnn.graph.inputs import QueryInputs
from sptgnn.graph.relations import Edges, RelationIndex
from sptgnn.threads import tree_threads

NODE = "sample"


def edge_type(relation: str) -> tuple[str, str, str]:
    """The HeteroData edge type of a relation, e.g. ``("sample", "spatial", "sample")``."""
    return (NODE, relation, NODE)


class GraphBuilder:
    """Fits on labelled samples, then builds graphs that attach query samples to them.

    Args:
        config: Relations and k per relation.
        imagery: The ``imagery`` config section; a chip encoder there makes the imagery stream the chip features,
            fitted on the labelled samples passed to :meth:`fit` (``None`` or ``encoder: columns``: the samples' columns).
        location: The ``model.location_fm`` section when ``location_fm`` is one of the model's streams (its projection
            fitted on the labelled samples' locations), else ``None``.

    Attributes:
        transform: Node feature transform fitted on the labelled samples.
        relations: Relations actually built (``elevation`` is dropped when samples carry no elevation).
        distance_scale: Median labelled→labelled edge distance per relation (its unit: m, or standardised units for
            ``spectral``), used to scale edge attributes.
    """

    def __init__(self, config: GraphConfig, imagery=None, location=None):
        self.config = config
        self.imagery_config = imagery
        self.transform = NodeFeatureTransform()
        if imagery is not None and imagery.encoder != "columns":
            from sptgnn.imagery.stream import ImageryStream

            self.transform = NodeFeatureTransform(imagery=ImageryStream(imagery), keep_columns=imagery.keep_columns)
        if location is not None:
            from sptgnn.imagery.location import LocationFM

            self.transform.location = LocationFM(location.dims, location.projection, location.encoder,
                                                 finetune=location.finetune_lr_scale > 0)
        self.relations: list[str] = []
        self.distance_scale: dict[str, float] = {}
        self.labelled: SoilSamples | None = None
        self.index: RelationIndex | None = None
        self._labelled_edges: dict[str, Edges] = {}  # labelled → labelled edges per relation, searched once

    # -- fitting --------------------------------------------------------------------------------------------------
    def fit(self, labelled: SoilSamples) -> "GraphBuilder":
        """Fit feature statistics and edge scales on the labelled samples.

        Raises:
            ValueError: Fewer than two labelled samples.
        """
        if len(labelled) < 2:
            raise ValueError(f"need at least 2 labelled samples to build a graph, got {len(labelled)}")
        self.labelled = labelled
        self.transform.fit(labelled)
        self.relations = list(self.config.relations)
        if "elevation" in self.relations and labelled.elevation is None:
            warnings.warn(f"{labelled.name} has no elevation: the elevation relation is left out", stacklevel=2)
            self.relations.remove("elevation")
        self.index, self._labelled_edges = self._index(labelled), {}
        for rel in self.relations:
            _, _, dist = self.labelled_edges(rel)
            med = float(np.median(dist)) if len(dist) else 1.0
            self.distance_scale[rel] = med if med > 0 else 1.0
        return self

    def with_labelled(self, labelled: SoilSamples) -> "GraphBuilder":
        """A builder over another labelled set (e.g. the fit part of a training fold) that reuses this builder's
        fitted feature transform, relations and edge scales, so node inputs mean the same in both graphs."""
        if self.labelled is None:
            raise RuntimeError("GraphBuilder.with_labelled called before fit")
        other = GraphBuilder(self.config)
        other.transform, other.relations, other.distance_scale = self.transform, list(self.relations), dict(self.distance_scale)
        other.labelled = labelled
        other.index = other._index(labelled)
        return other

    def state(self) -> dict:
        """The fitted builder without its labelled samples, as tensors, lists and numbers (for
        ``torch.save(weights_only=True)``); :meth:`from_state` with the same labelled samples restores it."""
        if self.labelled is None:
            raise RuntimeError("GraphBuilder.state called before fit")
        t = self.transform
        return {
            "relations": list(self.relations),
            "distance_scale": dict(self.distance_scale),
            "transform": {
                "mean": {k: torch.tensor(v) for k, v in t.mean.items()},
                "scale": {k: torch.tensor(v) for k, v in t.scale.items()},
                "centre_m": torch.tensor(t.centre_m),
                "spread_m": t.spread_m,
                "reference_year": t.reference_year,
                "columns": t.columns,
                "imagery": None if t.imagery is None else t.imagery.state(),
                "location": None if t.location is None else t.location.state(),
            },
        }

    @classmethod
    def from_state(cls, config: GraphConfig, imagery, state: dict, labelled: SoilSamples) -> "GraphBuilder":
        """A fitted builder from :meth:`state` and the labelled samples it was fitted on (no refitting).

        Raises:
            LocationWeightsChanged: The installed GeoCLIP weights differ from those of the run's location stream.
        """
        builder = cls(config, imagery)
        builder.labelled = labelled
        builder.relations = list(state["relations"])
        builder.distance_scale = dict(state["distance_scale"])
        tr = state["transform"]
        imagery_stream = builder.transform.imagery
        builder.transform = NodeFeatureTransform(
            mean={k: v.numpy() for k, v in tr["mean"].items()}, scale={k: v.numpy() for k, v in tr["scale"].items()},
            centre_m=tr["centre_m"].numpy(), spread_m=tr["spread_m"], reference_year=tr["reference_year"],
            columns=tr["columns"], imagery=imagery_stream, keep_columns=builder.transform.keep_columns,
        )
        if tr.get("location") is not None:
            from sptgnn.imagery.location import LocationFM

            builder.transform.location = LocationFM.from_state(tr["location"])
        if imagery_stream is not None:
            imagery_stream.load_state(tr.get("imagery") or {})
        builder.index = builder._index(labelled)
        return builder

    # -- neighbour search -------------------------------------------------------------------------------------------
    def spectral_space(self, samples: SoilSamples) -> np.ndarray:
        """Standardised features of the spectral relation, ``(num_samples, F)`` (see :meth:`spectral_of`).

        Raises:
            ValueError: A name in ``graph.spectral_features`` is no feature of any stream (the valid names are listed).
        """
        return self.spectral_of({s: self.stream(samples, s) for s in STREAMS})

    def spectral_of(self, streams: dict[str, np.ndarray]) -> np.ndarray:
        """The spectral relation's space from standardised streams ``{stream: (n, F_stream)}``, ``(n, F)``: the named
        ``graph.spectral_features`` if set, else the ``graph.spectral_streams`` that have features, or the environment
        stream when none has (e.g. no imagery). Samples, raster pixels and points all pass through here.

        Raises:
            ValueError: A name in ``graph.spectral_features`` is no feature of any stream (the valid names are listed).
        """
        if self.config.spectral_features:
            cols = []
            for stream in ("imagery", "environment"):
                names = self.transform.stream_names(stream)
                if any(f in names for f in self.config.spectral_features):
                    values = streams[stream]
                    cols += [(f, values[:, names.index(f)]) for f in self.config.spectral_features if f in names]
            found = {f for f, _ in cols}
            missing = [f for f in self.config.spectral_features if f not in found]
            if missing:
                valid = self.transform.stream_names("imagery") + self.transform.stream_names("environment")
                raise ValueError(f"graph.spectral_features {missing} are not features; valid: {valid[:20]}"
                                 f"{' …' if len(valid) > 20 else ''}")
            order = {f: i for i, f in enumerate(self.config.spectral_features)}
            return np.stack([v for _, v in sorted(cols, key=lambda fv: order[fv[0]])], axis=1)
        names = [s for s in self.config.spectral_streams if self.transform.stream_names(s)] or ["environment"]
        return np.concatenate([streams[s] for s in names], axis=1)

    def stream(self, samples: SoilSamples, stream: str) -> np.ndarray:
        """Standardised stream features ``(num_samples, F)``, clipped to ``±graph.feature_clip`` standard deviations
        when set (a rare one-hot category standardises to ~100 sd and would dominate a node's input)."""
        return self.clip(self.transform.stream(samples, stream))

    def clip(self, z: np.ndarray) -> np.ndarray:
        """Standardised features clipped to ``±graph.feature_clip`` (unchanged when it is not set)."""
        clip = self.config.feature_clip
        return z if clip is None else np.clip(z, -clip, clip)

    # -- query nodes as arrays: one path for samples, points, maps and zone totals ----------------------------------
    def sample_inputs(self, samples: SoilSamples, teacher: np.ndarray | None = None) -> QueryInputs:
        """Query samples in the model's input space, with the transforms fitted on the labelled samples (the same as
        :meth:`build` gives them).

        Args:
            samples: Query samples with the labelled samples' feature columns.
            teacher: The teacher's features ``(n, F)`` (:meth:`~sptgnn.train.trend.CovariateTrend.teacher`) or ``None``.
        """
        streams = {s: self.stream(samples, s) for s in STREAMS}
        metric = samples.metric_coords()
        q = self._inputs(streams, metric, self.transform.time(samples), samples.elevation_m(), teacher,
                         self.relation_coords(metric, self._sample_depths(samples)), samples.lonlat)
        q.sites = samples.sites()
        return q

    def inputs(self, features: dict[str, np.ndarray], xy: np.ndarray, dates=None, elevation_column: str | None = None,
               teacher: np.ndarray | None = None) -> QueryInputs:
        """Queries given as raw feature columns (raster windows, point tables, zone pixels) in the model's input space.

        Args:
            features: Raw (unstandardised) values per feature column, each ``(n,)``; every fitted column is needed.
            xy: ``(n, 2)`` coordinates in the training samples' CRS.
            dates: Sampling dates (one for all or ``(n,)``) or ``None`` (time stream at the labelled mean year).
            elevation_column: Feature holding elevation (m) for the elevation relation.
            teacher: The teacher's features ``(n, F)`` or ``None``.

        Raises:
            KeyError: A fitted feature column is missing from ``features``.
        """
        t, n = self.transform, len(xy)
        streams = {}
        for s, cols in t.columns.items():
            raw = (np.stack([np.asarray(features[c], dtype=np.float64) for c in cols], axis=1) if cols
                   else np.zeros((n, 0)))
            streams[s] = self.clip((raw - t.mean[s]) / t.scale[s])
        has_dates = dates is not None and self.labelled.date_column is not None
        elevation = None if elevation_column is None else np.asarray(features[elevation_column], dtype=np.float64)
        metric = metric_coords(xy, self.labelled.crs)
        depths = None
        if self.uses_depth:
            top, bottom = self.labelled.depth
            depths = (np.asarray(features[top], dtype=np.float64), np.asarray(features[bottom], dtype=np.float64))
        return self._inputs(streams, metric, time_features(dates if has_dates else None, n, t.reference_year),
                            elevation, teacher, self.relation_coords(metric, depths),
                            lambda: transform_xy(xy, self.labelled.crs, "EPSG:4326"))

    def location_stream(self, lonlat: np.ndarray) -> np.ndarray:
        """The ``location_fm`` stream ``(n, k)`` of locations ``(n, 2)`` (lon, lat in degrees), clipped as the
        other streams (the fine-tuned encoder's input, latitude and longitude in degrees, is not clipped)."""
        z = self.transform.location_fm(lonlat)
        return z if self.transform.location.finetune else self.clip(z)

    def _inputs(self, streams: dict[str, np.ndarray], metric: np.ndarray, time: np.ndarray,
                elevation: np.ndarray | None, teacher: np.ndarray | None, relation: np.ndarray,
                lonlat) -> QueryInputs:
        """``lonlat()`` gives the queries' lon/lat (degrees), read only for the ``location_fm`` stream."""
        t, n = self.transform, len(metric)
        location = np.zeros((n, 0)) if t.location is None else self.location_stream(lonlat())
        return QueryInputs(
            imagery=streams.get("imagery", np.zeros((n, 0))), environment=streams.get("environment", np.zeros((n, 0))),
            pos=(metric - t.centre_m) / t.spread_m, time=time, metric=relation, spectral=self.spectral_of(streams),
            elevation=elevation, trend=None if teacher is None else teacher[:, 0], teacher=teacher,
            location_fm=location)

    # -- profiles: depth as a coordinate, a site's layers never each other's neighbours ---------------------------
    @property
    def uses_depth(self) -> bool:
        """Whether layer depth joins the relations' coordinates (``graph.depth_scale_m`` and samples with depths)."""
        return self.config.depth_scale_m is not None and self.labelled.depth is not None

    def _sample_depths(self, samples: SoilSamples) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.uses_depth:
            return None
        if samples.depth is None:
            raise ValueError(f"{samples.name}: the run's relations use layer depth (graph.depth_scale_m); give the "
                             "query layers' top and bottom depths")
        top, bottom = samples.depth
        return (samples.frame[top].to_numpy(dtype=np.float64), samples.frame[bottom].to_numpy(dtype=np.float64))

    def relation_coords(self, metric: np.ndarray, depths: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        """The spatial and elevation relations' coordinates ``(n, d)`` or ``(n, d + 1)``: the metric coordinates (m),
        and with ``graph.depth_scale_m`` each layer's mid depth (cm) times that many metres."""
        if depths is None:
            return metric
        mid_cm = (depths[0] + depths[1]) / 2.0
        return np.c_[metric, mid_cm * self.config.depth_scale_m]

    def _index(self, labelled: SoilSamples) -> RelationIndex:
        """The k-d trees of ``labelled`` for the fitted relations (built once, shared by graphs and the query path)."""
        cfg = self.config
        k = {"spatial": cfg.k_spatial, "spectral": cfg.k_spectral, "elevation": cfg.k_elevation}
        index = RelationIndex(self.relations, k, cfg.elevation_candidates, bool(labelled.crs.is_geographic),
                              workers=tree_threads(),  # parallel k-d tree queries under the one thread policy
                              spectral_eps=cfg.spectral_eps)
        spectral = self.spectral_space(labelled) if "spectral" in self.relations else None
        metric = self.relation_coords(labelled.metric_coords(), self._sample_depths(labelled))
        return index.fit(metric, spectral, labelled.elevation_m(), labelled.sites())

    def labelled_edges(self, relation: str) -> Edges:
        """Edges among the labelled nodes of ``relation`` (no self loops): ``(src, dst, distance)``; every relation's
        are searched once per builder, together, and reused by :meth:`fit` and every :meth:`build` (the labelled nodes
        do not change)."""
        if not self._labelled_edges:
            self._labelled_edges = self._edges(self.labelled, exclude_self=True)
        return self._labelled_edges[relation]

    def _edges(self, targets: SoilSamples, exclude_self: bool) -> dict[str, Edges]:
        spectral = self.spectral_space(targets) if "spectral" in self.relations else None
        metric = self.relation_coords(targets.metric_coords(), self._sample_depths(targets))
        return self.index.edges(metric, spectral, targets.elevation_m(), exclude_self, targets.sites())

    # -- building ---------------------------------------------------------------------------------------------------
    def build(self, query: SoilSamples | None = None, target: str | None = None) -> HeteroData:
        """The graph of the fitted labelled samples plus ``query`` samples attached to them.

        Args:
            query: Samples to predict (test fold, validation part or prediction locations), or ``None``.
            target: Target column stored as ``y`` (labelled nodes only; query nodes get NaN).

        Returns:
            HeteroData with node store ``"sample"``: ``x_imagery`` ``(N, F_img)``, ``x_environment`` ``(N, F_env)``,
            ``pos`` ``(N, d)`` offsets from the labelled centroid in units of the labelled spread, ``time`` ``(N, 3)``,
            ``x_location_fm`` ``(N, k)`` (only with the ``location_fm`` stream), ``y`` ``(N,)``, ``labelled``
            ``(N,)`` bool; and per relation ``edge_index`` ``(2, E)`` and ``edge_attr`` ``(E, 1)`` =
            ``log1p(distance / distance_scale)``.

        Raises:
            RuntimeError: The builder was not fitted.
        """
        if self.labelled is None:
            raise RuntimeError("GraphBuilder.build called before fit")
        lab = self.labelled
        n_lab, n_q = len(lab), 0 if query is None else len(query)
        data = HeteroData()
        store = data[NODE]
        parts = [lab] + ([query] if n_q else [])
        t = self.transform
        store.x_imagery = _cat([self.stream(p, "imagery") for p in parts])
        store.x_environment = _cat([self.stream(p, "environment") for p in parts])
        store.pos = _cat([t.position(p) for p in parts])
        store.time = _cat([t.time(p) for p in parts])
        if t.location is not None:
            store.x_location_fm = _cat([self.location_stream(p.lonlat()) for p in parts])
        y = np.full(n_lab + n_q, np.nan)
        y[:n_lab] = lab.target(target)
        store.y = torch.tensor(y, dtype=torch.float32)
        store.labelled = torch.arange(n_lab + n_q) < n_lab
        store.num_nodes = n_lab + n_q
        query_edges = self._edges(query, exclude_self=False) if n_q else {}
        for rel in self.relations:
            src, dst, dist = self.labelled_edges(rel)
            if n_q:
                qs, qd, qdist = query_edges[rel]
                src, dst, dist = np.r_[src, qs], np.r_[dst, qd + n_lab], np.r_[dist, qdist]
            es = data[edge_type(rel)]
            es.edge_index = torch.tensor(np.vstack([src, dst]), dtype=torch.long)
            es.edge_attr = torch.tensor(np.log1p(dist / self.distance_scale[rel])[:, None], dtype=torch.float32)
        return data


def _cat(arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.tensor(np.concatenate(arrays, axis=0), dtype=torch.float32)
