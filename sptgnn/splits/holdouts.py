"""Held-out parts of a training fold (early stopping, calibration) and k-means spatial folds (the AOA's training DI),
never touching the test fold."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans


def spatial_holdout(coords_m: np.ndarray, fraction: float, num_blocks: int, seed: int) -> np.ndarray:
    """Boolean mask of a spatially blocked hold-out: k-means blocks of the coordinates, whole blocks drawn at random
    until at least ``fraction`` of the nodes are held out (Roberts et al. 2017, block cross-validation).

    Args:
        coords_m: Metric coordinates, shape ``(num_samples, d)``.
        fraction: Target share of held-out samples, in (0, 0.5).
        num_blocks: Number of k-means blocks (capped at ``num_samples // 2``).
        seed: Seed of k-means and of the block draw.

    Returns:
        Mask, shape ``(num_samples,)``, True for held-out samples; at least one sample is held out and at least one kept.
    """
    n = len(coords_m)
    blocks = max(2, min(num_blocks, n // 2))
    labels = KMeans(n_clusters=blocks, n_init=3, random_state=seed).fit_predict(coords_m)
    order = np.random.default_rng(seed).permutation(blocks)
    held = np.zeros(n, dtype=bool)
    for b in order:
        if held.sum() >= fraction * n:
            break
        if (held | (labels == b)).sum() < n:
            held |= labels == b
    return held


def spatial_parts(coords_m: np.ndarray, num_parts: int, num_blocks: int, seed: int) -> np.ndarray:
    """Part of each sample when a training fold is cut into ``num_parts`` spatially blocked parts of similar size:
    k-means blocks of the coordinates, taken largest first (ties in a seeded random order) and each given to the part
    that is smallest so far (the balanced assignment of spatial block cross-validation, Roberts et al. 2017).

    Args:
        coords_m: Metric coordinates, shape ``(num_samples, d)``.
        num_parts: ``K >= 2``.
        num_blocks: Number of k-means blocks (at least ``num_parts``, at most ``num_samples // 2``).
        seed: Seed of k-means and of the tie order.

    Returns:
        Part labels ``0 … K−1``, shape ``(num_samples,)``; every part is non-empty.

    Raises:
        ValueError: Fewer than ``2 · num_parts`` samples.
    """
    n = len(coords_m)
    if num_parts < 2 or n < 2 * num_parts:
        raise ValueError(f"cannot cut {n} samples into {num_parts} parts of at least 2 samples")
    blocks = max(num_parts, min(num_blocks, n // 2))
    labels = KMeans(n_clusters=blocks, n_init=3, random_state=seed).fit_predict(coords_m)
    sizes = np.bincount(labels, minlength=blocks)
    order = sorted(np.random.default_rng(seed).permutation(blocks), key=lambda b: -sizes[b])
    part_of_block, part_size = np.zeros(blocks, dtype=int), np.zeros(num_parts, dtype=int)
    for b in order:
        p = int(np.argmin(part_size))
        part_of_block[b] = p
        part_size[p] += sizes[b]
    return part_of_block[labels]


def calibration_parts(coords_m: np.ndarray, split: str, fraction: float, folds: int, num_blocks: int,
                      seed: int) -> list[np.ndarray]:
    """The calibration part(s) of a training fold (``calibration`` section of the config), as boolean masks.

    Args:
        coords_m: Metric coordinates, shape ``(num_samples, d)``.
        split: ``"blocks"`` (k-means spatial blocks) or ``"random"`` (samples drawn at random).
        fraction: Share of samples in the single part (``folds == 1``).
        folds: ``1``: one part of ``fraction``; ``K >= 2``: ``K`` disjoint parts covering every sample (cross-fitting).
        num_blocks: k-means blocks for ``split="blocks"``.
        seed: Seed of the blocks and draws.

    Returns:
        ``folds`` masks (one when ``folds == 1``), each ``(num_samples,)``.
    """
    n = len(coords_m)
    rng = np.random.default_rng(seed)
    if folds > 1:  # cross-fitted: every sample of the fold is in one part
        label = rng.permutation(n) % folds if split == "random" else spatial_parts(coords_m, folds, num_blocks, seed)
        return [label == k for k in range(folds)]
    if split == "random":
        held = np.zeros(n, dtype=bool)
        held[rng.permutation(n)[: max(1, int(round(fraction * n)))]] = True
        return [held]
    return [spatial_holdout(coords_m, fraction, num_blocks, seed)]


def kmeans_folds(coords: np.ndarray, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold ids ``0 … n_folds-1`` ``(n,)`` from k-means blocks of the coordinates (m): the spatial CV folds of the
    training DI (CAST's ``trainDI`` takes the model's CV folds). k-means clusters, unlike the square blocks of
    :mod:`sptgnn.splits.folds`, need no block size and always give ``n_folds`` non-empty folds, whatever the extent."""
    n_folds = max(2, min(n_folds, len(coords)))
    return KMeans(n_clusters=n_folds, n_init=4, random_state=seed).fit_predict(np.asarray(coords, dtype=np.float64))


def inner_folds(n: int, folds: int, seed: int, sites: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffled K-fold positions ``[(train, test), ...]`` of ``n`` samples inside a training fold (teachers' out-of-fold
    values, cross-fitted kriging features, out-of-fold residuals): scikit-learn's ``KFold(min(folds, n),
    shuffle=True, random_state=seed)``, or with ``sites`` ``(n,)`` a shuffled K-fold of the sites, so that no layer's
    out-of-fold value comes from a fit that saw another layer of its profile (rule 11)."""
    if sites is None:
        from sklearn.model_selection import KFold

        return list(KFold(min(folds, n), shuffle=True, random_state=seed).split(np.zeros((n, 1))))
    names, site = np.unique(np.asarray(sites), return_inverse=True)
    k = min(folds, len(names))
    fold = np.random.default_rng(seed).permutation(np.arange(len(names)) % k)[site]
    return [(np.flatnonzero(fold != j), np.flatnonzero(fold == j)) for j in range(k)]


__all__ = ["calibration_parts", "inner_folds", "kmeans_folds", "spatial_holdout", "spatial_parts"]
