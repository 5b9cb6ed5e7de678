"""Every spatial partition in one package: test folds (shipped, random, spatial blocks, buffers), held-out parts of a
training fold (early stopping, calibration, k-means folds of the AOA) and :class:`BlockKFold` for scikit-learn."""

from sptgnn.splits.cv import BlockKFold
from sptgnn.splits.folds import (
    SPLITS,
    Fold,
    SplitError,
    assign_blocks,
    block_folds,
    block_ids,
    buffer_exclusion,
    fold_ids,
    folds_from_ids,
    make_folds,
    planar_coords,
    planar_crs,
    random_folds,
)
from sptgnn.splits.holdouts import calibration_parts, inner_folds, kmeans_folds, spatial_holdout, spatial_parts

__all__ = ["SPLITS", "BlockKFold", "Fold", "SplitError", "assign_blocks", "block_folds", "block_ids", "buffer_exclusion",
           "calibration_parts", "inner_folds", "fold_ids", "folds_from_ids", "kmeans_folds", "make_folds", "planar_coords", "planar_crs", "random_folds",
           "spatial_holdout", "spatial_parts"]
