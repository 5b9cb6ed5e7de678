"""Cross-validation splits: shipped folds, random K-fold, spatial block K-fold and buffered leave-block-out.

Spatial blocks are square cells of ``block_size_km`` on a projected, metric grid (Roberts et al. 2017, "Cross-validation
strategies for data with temporal, spatial, hierarchical, or phylogenetic structure", Ecography 40: 913-929; Valavi et
al. 2019, blockCV). Samples in geographic coordinates (lon/lat) are first projected to an equal-area CRS: a Lambert
azimuthal equal-area projection centred on the samples for a regional extent, or the global EASE-Grid 2.0
(EPSG:6933) when the samples span more than a hemisphere, so that a block is about ``block_size_km`` square everywhere.

Whole blocks go to folds by a seeded greedy balanced assignment: blocks are shuffled with the seed, sorted by their
sample count (largest first, ties in shuffled order), and each goes to the fold that holds the fewest samples so far
(the "longest processing time" rule of Graham 1969). Every sample of a block is in the same fold, so no test sample
shares a block with a training sample.

Samples that are layers of one site (``SoilSamples.site``: several depths of one profile) always fall in the same fold,
for every split: random folds are drawn over sites, and shipped, block and kNNDM folds give each site the fold most of
its layers have (rule 11 of docs/design.md: profiles stay whole).

A buffer (``buffer_km > 0``) removes from each fold's training set the samples closer than the buffer to any test
sample (buffered leave-block-out, Le Rest et al. 2014; Roberts et al. 2017), so spatial autocorrelation across block
edges cannot reach the test fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from sptgnn.errors import UserError
from sptgnn.data.samples import SamplesError, SoilSamples
from sptgnn.geo import EARTH_RADIUS_M, equal_area_crs

SPLITS = ("shipped", "random", "blocks")


class SplitError(UserError):
    """A split that cannot be made (too few samples or blocks for the folds, a buffer that empties a fold)."""


def planar_crs(samples: SoilSamples) -> str | None:
    """The equal-area CRS :func:`planar_coords` projects lon/lat samples to, or ``None`` for a projected CRS.

    Lambert azimuthal equal-area centred on the samples' mean direction (robust to the antimeridian), or EASE-Grid 2.0
    (EPSG:6933) when the longitudes span more than 180°.
    """
    if not samples.crs.is_geographic:
        return None
    return equal_area_crs(samples.xy())


def planar_coords(samples: SoilSamples, crs: str | None = None) -> np.ndarray:
    """Planar coordinates in metres for blocking and kriging, shape ``(num_samples, 2)``.

    A projected CRS gives its own x, y (:meth:`SoilSamples.metric_coords`, whose unit must be the metre). A geographic
    CRS is projected to ``crs``, by default :func:`planar_crs` of the samples themselves (pass the training set's
    ``planar_crs`` to put a test set on the same plane).

    Raises:
        SamplesError: A projected CRS whose unit is not the metre.
    """
    if not samples.crs.is_geographic:
        return samples.metric_coords()
    g = samples.frame.geometry.to_crs(crs or planar_crs(samples))
    return np.c_[g.x.to_numpy(), g.y.to_numpy()]


def block_ids(coords_m: np.ndarray, block_size_m: float) -> np.ndarray:
    """Id of the square block (cell of a grid anchored at the origin of the CRS) that holds each point.

    Args:
        coords_m: Planar coordinates in metres, shape ``(num_samples, 2)``.
        block_size_m: Side of a block in metres.

    Returns:
        Integer block ids ``0 … num_blocks-1``, shape ``(num_samples,)``; equal ids = same block.

    Raises:
        ValueError: ``block_size_m`` is not positive or the coordinates are not 2-D.
    """
    coords_m = np.asarray(coords_m, dtype=float)
    if block_size_m <= 0:
        raise ValueError(f"block size must be positive, got {block_size_m} m")
    if coords_m.ndim != 2 or coords_m.shape[1] != 2:
        raise ValueError(f"blocking needs planar (x, y) coordinates of shape (n, 2), got {coords_m.shape}")
    cells = np.floor(coords_m / block_size_m).astype(np.int64)
    _, ids = np.unique(cells, axis=0, return_inverse=True)
    return ids.ravel()


def random_folds(num_samples: int, n_folds: int, seed: int = 0) -> np.ndarray:
    """Random K-fold ids ``1 … n_folds`` of (as near as possible) equal size, shape ``(num_samples,)``.

    Raises:
        ValueError: Fewer samples than folds, or fewer than 2 folds.
    """
    _check_folds(num_samples, n_folds)
    folds = np.arange(num_samples) % n_folds + 1
    return np.random.default_rng(seed).permutation(folds)


def assign_blocks(blocks: np.ndarray, n_folds: int, seed: int = 0) -> np.ndarray:
    """Greedy balanced assignment of whole blocks to folds.

    Blocks are shuffled with ``seed``, then taken largest first (stable, so equal sizes stay shuffled) and each goes to
    the fold with the fewest samples so far (ties: the lowest fold id).

    Args:
        blocks: Block id of every sample, shape ``(num_samples,)``.
        n_folds: Number of folds ``K``.
        seed: Seed of the shuffle.

    Returns:
        Fold ids ``1 … K`` per sample, shape ``(num_samples,)``.

    Raises:
        ValueError: Fewer blocks than folds (some fold would be empty).
    """
    uniq, inverse, counts = np.unique(blocks, return_inverse=True, return_counts=True)
    if len(uniq) < n_folds:
        raise SplitError(
            f"only {len(uniq)} spatial block(s) for {n_folds} folds; use smaller blocks (evaluate.block_size_km) or fewer folds"
        )
    order = np.random.default_rng(seed).permutation(len(uniq))
    order = order[np.argsort(-counts[order], kind="stable")]
    load = np.zeros(n_folds, dtype=np.int64)
    block_fold = np.empty(len(uniq), dtype=np.int64)
    for b in order:
        f = int(np.argmin(load))
        block_fold[b] = f + 1
        load[f] += counts[b]
    return block_fold[inverse.ravel()]


def block_folds(coords_m: np.ndarray, block_size_m: float, n_folds: int, seed: int = 0) -> np.ndarray:
    """Spatial block K-fold ids: square blocks of ``block_size_m`` assigned to folds by :func:`assign_blocks`.

    Shapes:
        ``coords_m`` ``(num_samples, 2)`` planar metres → fold ids ``(num_samples,)`` in ``1 … n_folds``.
    """
    _check_folds(len(coords_m), n_folds)
    return assign_blocks(block_ids(coords_m, block_size_m), n_folds, seed)


def buffer_exclusion(coords_m: np.ndarray, test_mask: np.ndarray, buffer_m: float) -> np.ndarray:
    """Training samples that lie within ``buffer_m`` of any test sample (to be left out of training).

    Args:
        coords_m: Metric coordinates, shape ``(num_samples, d)``.
        test_mask: True for the test fold, shape ``(num_samples,)``.
        buffer_m: Buffer radius in metres (0: nothing is excluded).

    Returns:
        Boolean mask, shape ``(num_samples,)``; always False on test samples.
    """
    test_mask = np.asarray(test_mask, dtype=bool)
    out = np.zeros(len(test_mask), dtype=bool)
    if buffer_m <= 0 or not test_mask.any() or test_mask.all():
        return out
    tree = cKDTree(coords_m[test_mask])
    dist, _ = tree.query(coords_m[~test_mask], k=1, distance_upper_bound=buffer_m)
    out[np.flatnonzero(~test_mask)] = dist < buffer_m
    return out


@dataclass
class Fold:
    """One fold of a split.

    Attributes:
        fold: Fold id (1-based).
        train: Integer positions of the training samples, ``(num_train,)``.
        test: Integer positions of the test samples, ``(num_test,)``.
        excluded: Positions left out of training by the buffer, ``(num_excluded,)``.
    """

    fold: int
    train: np.ndarray
    test: np.ndarray
    excluded: np.ndarray


def site_folds(ids: np.ndarray, samples: SoilSamples) -> np.ndarray:
    """Fold ids ``(num_samples,)`` with every site's layers in one fold: the fold most of its layers have (the
    smallest id on a tie); unchanged when the samples have no ``site`` column."""
    ids = np.asarray(ids)
    if samples.site is None:
        return ids
    _, site = np.unique(samples.sites(), return_inverse=True)
    folds, fold = np.unique(ids, return_inverse=True)
    counts = np.zeros((site.max() + 1, len(folds)), dtype=int)
    np.add.at(counts, (site, fold), 1)
    return folds[counts.argmax(1)][site]  # argmax takes the first (smallest) fold on a tie


def fold_ids(samples: SoilSamples, split: str = "shipped", n_folds: int = 5, block_size_km: float = 100.0,
             seed: int = 0) -> np.ndarray:
    """Fold id of every sample for a split scheme.

    Args:
        samples: The samples.
        split: ``"shipped"`` (the dataset's own folds), ``"random"`` (random K-fold) or ``"blocks"`` (spatial block
            K-fold of ``block_size_km`` squares on :func:`planar_coords`).
        n_folds: ``K`` for ``random`` and ``blocks``.
        block_size_km: Block side in km for ``blocks``.
        seed: Seed of the random assignment.

    Returns:
        Fold ids, shape ``(num_samples,)``.

    Raises:
        SamplesError: ``shipped`` for samples without folds.
        ValueError: Unknown split, too few samples or blocks for the folds.
    """
    if split == "shipped":
        if samples.folds is None:
            raise SamplesError(
                f"{samples.name} ships no folds; set evaluate.split to 'blocks' (spatial blocks, the honest default) or 'random'"
            )
        return np.asarray(samples.folds)
    if split == "random":
        if samples.site is None:
            return random_folds(len(samples), n_folds, seed)
        sites, index = np.unique(samples.sites(), return_inverse=True)
        return random_folds(len(sites), n_folds, seed)[index]
    if split == "blocks":
        return site_folds(block_folds(planar_coords(samples), block_size_km * 1000.0, n_folds, seed), samples)
    raise SplitError(f"unknown split '{split}'; valid: {', '.join(SPLITS)}")


def make_folds(samples: SoilSamples, split: str = "shipped", n_folds: int = 5, block_size_km: float = 100.0,
               buffer_km: float = 0.0, seed: int = 0) -> list[Fold]:
    """The folds of a split, each with its training and test positions; a buffer removes training samples closer
    than ``buffer_km`` to the test fold (see the module docstring): planar distance for a projected CRS, great-circle
    distance for lon/lat.

    Raises:
        ValueError: A fold whose buffer leaves fewer than 2 training samples.
    """
    return folds_from_ids(samples, fold_ids(samples, split, n_folds, block_size_km, seed), buffer_km)


def folds_from_ids(samples: SoilSamples, ids: np.ndarray, buffer_km: float = 0.0) -> list[Fold]:
    """The folds of given fold ids ``(num_samples,)`` (e.g. kNNDM's), with :func:`make_folds`'s buffer.

    Raises:
        SplitError: A fold whose buffer leaves fewer than 2 training samples.
    """
    ids = site_folds(np.asarray(ids), samples)
    coords = samples.metric_coords() if buffer_km > 0 else None
    buffer_m = buffer_km * 1000.0
    if coords is not None and samples.crs.is_geographic:  # metric_coords are chords on the sphere: same ordering
        buffer_m = 2 * EARTH_RADIUS_M * np.sin(min(buffer_m / (2 * EARTH_RADIUS_M), np.pi / 2))
    folds = []
    for f in np.unique(ids):
        test = ids == f
        excluded = buffer_exclusion(coords, test, buffer_m) if coords is not None else np.zeros(len(ids), bool)
        train = ~test & ~excluded
        if train.sum() < 2:
            raise SplitError(f"fold {f}: the {buffer_km} km buffer leaves {int(train.sum())} training samples; use a smaller evaluate.buffer_km")
        folds.append(Fold(int(f), np.flatnonzero(train), np.flatnonzero(test), np.flatnonzero(excluded)))
    return folds


def _check_folds(num_samples: int, n_folds: int) -> None:
    if n_folds < 2:
        raise SplitError(f"need at least 2 folds, got {n_folds}")
    if num_samples < n_folds:
        raise SplitError(f"{num_samples} samples cannot fill {n_folds} folds; lower evaluate.n_folds")


__all__ = ["SPLITS", "SplitError", "Fold", "site_folds", "planar_crs", "planar_coords", "block_ids", "random_folds", "assign_blocks", "block_folds",
           "buffer_exclusion", "fold_ids", "folds_from_ids", "make_folds"]
