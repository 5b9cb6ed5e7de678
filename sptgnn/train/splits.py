"""Spatially held-out part of a training fold, for early stopping without leaking the test fold."""

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
