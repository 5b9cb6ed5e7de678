"""Neighbour search for the three relations (DESIGN.md, "relation").

:class:`RelationIndex` holds one labelled set's k-d trees (:class:`scipy.spatial.cKDTree`, on the labelled nodes only:
rule 1 of DESIGN.md, a query node never enters an index), built once. :meth:`RelationIndex.edges` attaches targets for a
graph as ``(src, dst, distance)`` arrays (``src`` indexes the labelled set, ``dst`` the targets; with
``exclude_self=True`` the targets are the labelled nodes and a node is never its own neighbour);
:meth:`RelationIndex.query` gives new points' neighbours as ``(n, k)`` arrays for the cached prediction path. Both search
the same trees with the same rules, so a map pixel gets exactly the neighbours a graph would give it.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from sptgnn.geo import chord_to_great_circle_m

Edges = tuple[np.ndarray, np.ndarray, np.ndarray]


#: Targets from which queries run in k-d tree leaf order (below it the reordering costs more than it saves).
LOCALITY_MIN = 20_000


def locality_order(points: np.ndarray, tree: cKDTree | None = None) -> np.ndarray | None:
    """A permutation of ``points`` ``(n, d)`` that visits them in k-d tree leaf order (``tree``'s, when the points are
    its own data), or ``None`` below :data:`LOCALITY_MIN` points.

    Consecutive queries then descend into the same leaves, which stay in cache: at 1M nodes the exact self-queries of
    the 5-D spectral relation ran 4.2× and of the 3-D spatial one 3.8× faster than in input order (same results; the
    measurement is in ``scripts/benchmark_scale.py``).
    """
    if len(points) < LOCALITY_MIN:
        return None
    if tree is None:
        tree = cKDTree(points, balanced_tree=False, compact_nodes=False)
    return tree.indices


def _knn(tree: cKDTree | None, n_ref: int, targets: np.ndarray, k: int, exclude_self: bool,
         workers: int = 1, eps: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices ``(n, k')`` of the ``k' = min(k, available)`` nearest reference points of each target,
    queried in leaf order (:func:`locality_order`; with ``exclude_self`` the targets are the tree's own points);
    ``eps > 0``: scipy's (1+eps)-approximate search.

    Raises:
        ValueError: Too few reference nodes to give any neighbour.
    """
    available = n_ref - (1 if exclude_self else 0)
    if available < 1:
        raise ValueError(f"need at least {2 if exclude_self else 1} labelled nodes to find neighbours, got {n_ref}")
    k_eff = min(k, available)
    order = locality_order(targets, tree if exclude_self and tree.n == len(targets) else None)
    query = targets if order is None else targets[order]
    dist, idx = tree.query(query, k=k_eff + (1 if exclude_self else 0), workers=workers, eps=eps)
    dist, idx = dist.reshape(len(targets), -1), idx.reshape(len(targets), -1)
    if order is not None:  # back to the targets' order
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        dist, idx = dist[back], idx[back]
    return _drop_self(dist, idx, k_eff) if exclude_self else (dist, idx)


def _first_kept(dist: np.ndarray, idx: np.ndarray, keep: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` neighbours of each row where ``keep`` ``(n, c)`` holds, in their order."""
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)


def _drop_self(dist: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index (rows are targets = references); duplicates in space may put self anywhere."""
    return _first_kept(dist, idx, idx != np.arange(len(idx))[:, None], k)


def _closest_in_elevation(cand: np.ndarray, elev_ref: np.ndarray, elev_tgt: np.ndarray,
                          k: int) -> tuple[np.ndarray, np.ndarray]:
    """Among candidate neighbours ``(n, c)`` the ``k`` closest in elevation (stable order): indices and absolute
    elevation differences (m), ``(n, min(k, c))`` each."""
    diff = np.abs(elev_ref[cand] - np.asarray(elev_tgt)[:, None])
    order = np.argsort(diff, axis=1, kind="stable")[:, : min(k, cand.shape[1])]
    return np.take_along_axis(cand, order, 1), np.take_along_axis(diff, order, 1)


def _drop_same_site(dist: np.ndarray, idx: np.ndarray, same, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` neighbours of each row that are not of the row's own site (``same(idx) -> bool (n, c)``)."""
    keep = ~same(idx)
    k = min(k, int(keep.sum(1).min()))
    if k < 1:
        raise ValueError("every labelled neighbour of a node lies in its own site: give more sites")
    return _first_kept(dist, idx, keep, k)


class RelationIndex:
    """The k-d trees of one labelled set for every relation, built once; graphs and new points search the same ones.

    Args:
        relations: Relation names (``spatial``, ``spectral``, ``elevation``).
        k: In-degree per relation, ``{"spatial": 8, "spectral": 8, "elevation": 4}``.
        candidates: Spatial candidates among which the elevation relation keeps the closest in elevation.
        geographic: Metric coordinates are Earth-centred sphere coordinates: spatial distances are turned from chords
            into great-circle metres.
        workers: Threads of the tree queries.
        spectral_eps: ``0``: exact spectral neighbours; ``> 0``: scipy's (1+eps)-approximate search (each returned
            distance within ``1 + eps`` of the true one; recall measured in ``scripts/benchmark_scale.py``).

    Shapes:
        fit: labelled metric coordinates ``(N, d)``, spectral space ``(N, F)`` (or ``None``), elevation ``(N,)`` m.
        edges: targets' spaces ``(n, ·)`` → per relation ``(src, dst, distance)``, each ``(n · k,)``.
        query: queries' spaces ``(n, ·)`` → per relation indices and distances ``(n, k)``.
    """

    def __init__(self, relations: list[str], k: dict[str, int], candidates: int, geographic: bool, workers: int = 1,
                 spectral_eps: float = 0.0):
        unknown = set(relations) - {"spatial", "spectral", "elevation"}
        if unknown:
            raise ValueError(f"unknown relation(s) {sorted(unknown)}; valid: spatial, spectral, elevation")
        self.relations, self.k, self.candidates = list(relations), dict(k), int(candidates)
        self.geographic, self.workers, self.spectral_eps = geographic, workers, float(spectral_eps)

    def fit(self, metric: np.ndarray, spectral: np.ndarray | None = None, elevation: np.ndarray | None = None,
            sites: np.ndarray | None = None) -> "RelationIndex":
        """Build the trees of the labelled nodes (the metric tree serves spatial and elevation candidates).

        ``sites`` ``(N,)``: the site of each labelled node when sites hold several layers; a node is then never the
        neighbour of a node of its own site (the same site's layers are never a layer's evidence: a query profile is
        predicted from other sites only, and training sees the same)."""
        self.n = len(metric)
        self.sites = None if sites is None else np.asarray(sites).astype(str)
        self.max_site = 1 if sites is None else int(np.unique(self.sites, return_counts=True)[1].max())
        self.metric_tree = cKDTree(metric) if self.n else None
        self.spectral_tree = cKDTree(spectral) if "spectral" in self.relations and self.n else None
        self.elevation = None if elevation is None else np.asarray(elevation, dtype=np.float64)
        return self

    def _same_site(self, sites, n: int, exclude_self: bool):
        """A function of neighbour indices ``(n, c)`` telling which are of each point's own site, or ``None`` when
        there is nothing to exclude beyond ``exclude_self``."""
        if self.sites is None or (sites is None and not exclude_self):
            return None
        own = self.sites if (sites is None and exclude_self) else np.asarray(sites).astype(str)
        if len(own) != n:
            raise ValueError(f"{len(own)} site ids for {n} points")
        return lambda idx: self.sites[idx] == own[:, None]

    def _spatial(self, dist: np.ndarray) -> np.ndarray:
        return chord_to_great_circle_m(dist) if self.geographic else dist

    def edges(self, metric: np.ndarray, spectral: np.ndarray | None = None, elevation: np.ndarray | None = None,
              exclude_self: bool = False, sites: np.ndarray | None = None) -> dict[str, Edges]:
        """Edges of every relation from the labelled nodes to the targets (the labelled nodes themselves with
        ``exclude_self``): ``{relation: (src, dst, distance)}``, distance in m (spatial), standardised units
        (spectral) or m of elevation difference; the searches of :meth:`query`."""
        n = len(metric)
        if n == 0:
            return {r: (np.empty(0, int), np.empty(0, int), np.empty(0)) for r in self.relations}
        nbr = self.query(metric, spectral, elevation, exclude_self=exclude_self, sites=sites)
        return {r: (idx.ravel(), np.repeat(np.arange(n), idx.shape[1]), dist.ravel()) for r, (idx, dist) in nbr.items()}

    def query(self, metric: np.ndarray, spectral: np.ndarray | None = None, elevation: np.ndarray | None = None,
              workers: int | None = None, exclude_self: bool = False,
              sites: np.ndarray | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Labelled neighbours of new points (the labelled nodes themselves, never their own neighbour, with
        ``exclude_self``) per relation: indices and distances ``(n, k)``; one search of the metric tree serves the
        spatial relation and the elevation candidates; ``workers`` threads for this call. With sites fitted, a point
        of site ``sites[i]`` gets no neighbour of that site (points of other or no site: ``None`` or unknown ids).

        Raises:
            ValueError: The elevation relation without the points' elevation.
        """
        out, w = {}, self.workers if workers is None else workers
        avail = self.n - (1 if exclude_self else 0)
        same = self._same_site(sites, len(metric), exclude_self)
        extra = 0 if same is None else self.max_site  # searched beyond k, then the same site's layers dropped
        k_metric = max(self.k["spatial"] if "spatial" in self.relations else 0,
                       max(self.candidates, self.k["elevation"]) if "elevation" in self.relations else 0)
        if k_metric:
            m_dist, m_idx = _knn(self.metric_tree, self.n, metric, k_metric + extra, exclude_self, w)
            if same is not None:
                m_dist, m_idx = _drop_same_site(m_dist, m_idx, same, k_metric)
                avail = m_idx.shape[1]
        for r in self.relations:
            if r == "spatial":
                k = min(self.k["spatial"], avail)
                out[r] = (m_idx[:, :k], self._spatial(m_dist[:, :k]))
            elif r == "spectral":
                dist, idx = _knn(self.spectral_tree, self.n, spectral, self.k["spectral"] + extra, exclude_self, w,
                                 self.spectral_eps)
                if same is not None:
                    dist, idx = _drop_same_site(dist, idx, same, self.k["spectral"])
                out[r] = (idx, dist)
            else:
                if elevation is None:
                    raise ValueError("the elevation relation needs the queries' elevation")
                cand = m_idx[:, : min(max(self.candidates, self.k["elevation"]), avail)]
                out[r] = _closest_in_elevation(cand, self.elevation, elevation, self.k["elevation"])
        return out


__all__ = ["Edges", "LOCALITY_MIN", "RelationIndex", "locality_order"]
