"""Neighbour search for the three relations (DESIGN.md, "relation").

Every function returns edges *from* labelled nodes *to* target nodes as ``(src, dst, distance)`` arrays. ``src``
indexes the labelled (reference) set, ``dst`` the target set. When the targets are the labelled nodes themselves
(``exclude_self=True``) a node is never its own neighbour. Neighbour indices are built with :class:`scipy.spatial.cKDTree`
on the labelled nodes only (rule 1 of DESIGN.md): a query node never enters an index.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

Edges = tuple[np.ndarray, np.ndarray, np.ndarray]


def knn_edges(reference: np.ndarray, targets: np.ndarray, k: int, exclude_self: bool) -> Edges:
    """k nearest reference points of every target point (Euclidean).

    Args:
        reference: Labelled node coordinates, shape ``(num_labelled, d)``.
        targets: Target node coordinates, shape ``(num_targets, d)``; the labelled nodes themselves if ``exclude_self``.
        k: Neighbours per target; capped at the number of available reference nodes.
        exclude_self: Targets are the reference nodes (same order); drop each node from its own neighbour list.

    Returns:
        ``(src, dst, dist)``, each of shape ``(num_targets * k',)``: reference index, target index, distance.

    Raises:
        ValueError: Too few reference nodes to give any neighbour.
    """
    available = len(reference) - (1 if exclude_self else 0)
    if available < 1 or len(targets) == 0:
        if len(targets) == 0:
            return np.empty(0, int), np.empty(0, int), np.empty(0)
        raise ValueError(f"need at least {2 if exclude_self else 1} labelled nodes to find neighbours, got {len(reference)}")
    k_eff = min(k, available)
    tree = cKDTree(reference)
    dist, idx = tree.query(targets, k=k_eff + (1 if exclude_self else 0))
    dist, idx = dist.reshape(len(targets), -1), idx.reshape(len(targets), -1)
    if exclude_self:
        dist, idx = _drop_self(dist, idx, k_eff)
    dst = np.repeat(np.arange(len(targets)), k_eff)
    return idx.ravel(), dst, dist.ravel()


def _drop_self(dist: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index (rows are targets = references); duplicates in space may put self anywhere."""
    rows = np.arange(len(idx))[:, None]
    keep = idx != rows
    # keep the first k non-self entries of each row
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)


def elevation_edges(
    coords_ref: np.ndarray,
    elev_ref: np.ndarray,
    coords_tgt: np.ndarray,
    elev_tgt: np.ndarray,
    k: int,
    candidates: int,
    exclude_self: bool,
) -> Edges:
    """Among the ``candidates`` spatially nearest labelled nodes, the ``k`` closest in elevation.

    Same landscape position nearby: the edge attribute is the absolute elevation difference in metres.

    Args:
        coords_ref: Labelled coordinates (m), shape ``(num_labelled, d)``.
        elev_ref: Labelled elevation (m), shape ``(num_labelled,)``.
        coords_tgt: Target coordinates (m), shape ``(num_targets, d)``.
        elev_tgt: Target elevation (m), shape ``(num_targets,)``.
        k: Neighbours per target.
        candidates: Spatial candidates searched (``>= k``).
        exclude_self: Targets are the labelled nodes; no self loops.

    Returns:
        ``(src, dst, abs_elevation_difference_m)``.
    """
    src, dst, _ = knn_edges(coords_ref, coords_tgt, max(candidates, k), exclude_self)
    if len(dst) == 0:
        return src, dst, np.empty(0)
    n_t = len(coords_tgt)
    src = src.reshape(n_t, -1)
    diff = np.abs(elev_ref[src] - elev_tgt[:, None])
    k_eff = min(k, src.shape[1])
    order = np.argsort(diff, axis=1, kind="stable")[:, :k_eff]
    src = np.take_along_axis(src, order, 1)
    diff = np.take_along_axis(diff, order, 1)
    return src.ravel(), np.repeat(np.arange(n_t), k_eff), diff.ravel()
