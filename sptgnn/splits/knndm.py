"""k-fold nearest-neighbour distance matching (kNNDM) cross-validation (Linnenbrink et al. 2024, Geosci. Model Dev. 17,
5897–5912; a port of ``CAST::knndm``, CAST 1.0).

A map is judged by how well it predicts where it will be used. The nearest-neighbour distances from the prediction
area to the training samples (``Gij``) say how far a prediction extrapolates; kNNDM builds ``k`` folds whose
test-to-training nearest-neighbour distances (``Gj*``) have the same distribution. When the training samples are not
more clustered than the prediction area needs (a one-sided Kolmogorov–Smirnov test of ``Gj`` against ``Gij``,
α = 0.05), random folds already match and are returned. Otherwise the samples are clustered (Ward hierarchical
clustering, or k-means) into ``q`` clusters for ``q`` from ``k`` to ``n − 2`` on a log grid; clusters of at least
``n / k`` samples become folds of their own and the others are merged into the remaining folds in the order of their
centroids along the first principal component; every candidate with no fold above ``maxp`` of the samples is scored
by the Wasserstein distance ``W`` between ``Gj*`` and ``Gij``, and the candidate with the smallest ``W`` wins.

Distances are Euclidean on planar coordinates (metres; :func:`sptgnn.splits.planar_coords`) in the geographical
space, and on covariates standardised by the training samples' mean and sd in the feature space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import cut_tree, linkage
from scipy.spatial import cKDTree
from scipy.stats import ks_2samp, wasserstein_distance
from sklearn.cluster import KMeans

from sptgnn.splits.folds import SplitError


@dataclass
class KNNDMResult:
    """Folds and the distance distributions they were matched on.

    Attributes:
        folds: Fold id of every training sample, 1..k, ``(num_samples,)``.
        W: Wasserstein distance between ``Gjstar`` and ``Gij`` (m in the geographical space).
        W_random: The same for random folds of the same ``k`` (seeded), for comparison.
        clusters: Number of clusters ``q`` of the chosen candidate; ``None`` when random folds were returned.
        Gj: Nearest-neighbour distance of every training sample to the others, ``(num_samples,)``.
        Gij: Nearest-neighbour distance of every prediction point to the training samples, ``(num_points,)``.
        Gjstar: Nearest-neighbour distance of every sample to the samples outside its fold, ``(num_samples,)``.
        space: ``geographical`` or ``feature``.
    """

    folds: np.ndarray
    W: float
    W_random: float
    clusters: int | None
    Gj: np.ndarray
    Gij: np.ndarray
    Gjstar: np.ndarray
    space: str = "geographical"

    def summary(self) -> dict:
        """JSON-able figures: ``W``, ``W_random``, ``clusters``, fold sizes and the medians of the three distributions."""
        ids, sizes = np.unique(self.folds, return_counts=True)
        return {"space": self.space, "W": float(self.W), "W_random": float(self.W_random), "clusters": self.clusters,
                "fold_sizes": {str(int(i)): int(s) for i, s in zip(ids, sizes)},
                "median_Gj": float(np.median(self.Gj)), "median_Gij": float(np.median(self.Gij)),
                "median_Gjstar": float(np.median(self.Gjstar))}


def cv_distances(X: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """``Gj*``: for every sample, the distance to its nearest sample in another fold, ``(num_samples,)``."""
    out = np.empty(len(X))
    for f in np.unique(folds):
        test = folds == f
        if test.all():
            raise SplitError("kNNDM: a fold holds every sample; use more folds or more samples")
        out[test] = cKDTree(X[~test]).query(X[test], k=1)[0]
    return out


def _merge(labels: np.ndarray, X: np.ndarray, pc1: np.ndarray, k: int) -> np.ndarray:
    """CAST's assignment of clusters to ``k`` folds: big clusters (≥ n/k samples) alone, the others in turn along the
    first principal component of their centroids."""
    n = len(labels)
    ids, sizes = np.unique(labels, return_counts=True)
    centroid_pc = np.array([X[labels == c].mean(0) @ pc1 for c in ids])
    order = np.argsort(centroid_pc, kind="stable")
    fold_of = np.zeros(len(ids), dtype=int)
    nxt = 1
    for i in order:
        if sizes[i] >= n / k:
            fold_of[i], nxt = nxt, nxt + 1
    rest = [f for f in range(1, k + 1) if f not in set(fold_of[fold_of > 0])]
    small = [i for i in order if fold_of[i] == 0]
    if rest:
        for j, i in enumerate(small):
            fold_of[i] = rest[j % len(rest)]
    else:  # every fold id is taken by a big cluster: the small ones join folds in turn
        for j, i in enumerate(small):
            fold_of[i] = 1 + j % k
    lookup = dict(zip(ids, fold_of))
    return np.array([lookup[c] for c in labels])


def knndm(X_train: np.ndarray, X_pred: np.ndarray, k: int = 10, maxp: float = 0.5, clustering: str = "hierarchical",
          nk_len: int = 100, seed: int = 0, space: str = "geographical") -> KNNDMResult:
    """kNNDM folds of training samples for a prediction area (see the module docstring).

    Args:
        X_train: Training samples' coordinates (m) or standardised covariates, ``(num_samples, D)``.
        X_pred: Prediction points in the same space, ``(num_points, D)`` (a regular sample of the prediction area).
        k: Number of folds.
        maxp: Largest share of the samples one fold may hold.
        clustering: ``hierarchical`` (Ward, CAST's default; memory ``O(n²)``) or ``kmeans`` (large samples).
        nk_len: Number of cluster counts ``q`` tried, on a log grid from ``k`` to ``n − 2``.
        seed: Seed of random folds and of k-means.
        space: Label stored in the result (``geographical`` or ``feature``).

    Returns:
        :class:`KNNDMResult`.

    Raises:
        SplitError: Fewer than ``k + 2`` samples, no prediction point, or no candidate within ``maxp``.
    """
    X_train, X_pred = np.asarray(X_train, float), np.asarray(X_pred, float)
    n = len(X_train)
    if n < k + 2:
        raise SplitError(f"kNNDM needs at least k + 2 = {k + 2} samples, got {n}; lower evaluate.n_folds")
    if len(X_pred) == 0:
        raise SplitError("kNNDM: the prediction domain gave no point; check evaluate.knndm.domain")
    tree = cKDTree(X_train)
    Gj = tree.query(X_train, k=2)[0][:, 1]
    Gij = tree.query(X_pred, k=1)[0]
    rng = np.random.default_rng(seed)
    random = rng.permutation(np.resize(np.arange(1, k + 1), n))
    G_random = cv_distances(X_train, random)
    W_random = wasserstein_distance(G_random, Gij)
    method = "exact" if len(Gj) * len(Gij) < 10_000 else "asymp"  # as R's ks.test
    if ks_2samp(Gj, Gij, alternative="greater", method=method).pvalue >= 0.05:  # not more clustered: random folds
        return KNNDMResult(random, W_random, W_random, None, Gj, Gij, G_random, space)
    grid = np.unique(np.round(np.exp(np.linspace(np.log(k), np.log(n - 2), nk_len))).astype(int))
    pc1 = np.linalg.svd(X_train - X_train.mean(0), full_matrices=False)[2][0]
    cuts = cut_tree(linkage(X_train, method="ward"), n_clusters=grid) if clustering == "hierarchical" else None
    best = None
    for j, q in enumerate(grid):
        if cuts is not None:  # Ward on Euclidean distances: R's hclust(method = "ward.D2")
            labels = cuts[:, j]
        else:
            labels = KMeans(int(q), n_init=1, random_state=seed).fit(X_train).labels_
        folds = _merge(labels, X_train, pc1, k)
        if np.bincount(folds).max() / n > maxp:
            continue
        Gjstar = cv_distances(X_train, folds)
        W = wasserstein_distance(Gjstar, Gij)
        if best is None or W < best[0]:
            best = (W, int(q), folds, Gjstar)
    if best is None:
        raise SplitError(f"kNNDM: every candidate puts more than maxp = {maxp} of the samples in one fold; raise "
                         "evaluate.knndm.maxp or evaluate.n_folds")
    W, q, folds, Gjstar = best
    return KNNDMResult(folds, W, W_random, q, Gj, Gij, Gjstar, space)


__all__ = ["KNNDMResult", "cv_distances", "knndm"]
