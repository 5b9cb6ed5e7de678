"""`BlockKFold`: spatial block K-fold cross-validation with scikit-learn's splitter interface (as ``verde.BlockKFold``),
so that ``cross_val_score``, ``GridSearchCV`` and ``SpTGNNRegressor`` use the same spatial folds as ``sptgnn evaluate``."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator

from sptgnn.data.samples import SoilSamples
from sptgnn.splits.folds import block_folds, planar_coords


def _planar(X, coords, crs) -> np.ndarray:
    """Planar metres ``(n, 2)`` of the rows of ``X`` (SoilSamples, GeoDataFrame, DataFrame with ``coords``, or an
    array whose first two columns are x and y in metres)."""
    if isinstance(X, SoilSamples):
        return planar_coords(X)
    if isinstance(X, gpd.GeoDataFrame) or isinstance(X, pd.DataFrame):
        if not isinstance(X, gpd.GeoDataFrame):
            xc, yc = coords or ("x", "y")
            X = gpd.GeoDataFrame(geometry=gpd.points_from_xy(X[xc], X[yc]), crs=crs)
        if X.crs is None:
            raise ValueError("BlockKFold needs the CRS of the coordinates: set the GeoDataFrame's CRS or pass crs=")
        frame = gpd.GeoDataFrame({"sample_id": np.arange(len(X)).astype(str)}, geometry=X.geometry.values, crs=X.crs)
        return planar_coords(SoilSamples(frame=frame, targets=[], feature_groups={}))
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"BlockKFold needs coordinates: X of shape (n, >= 2) with x, y first, got {arr.shape}")
    return arr[:, :2]


class BlockKFold(BaseCrossValidator):
    """Spatial block K-fold: square blocks of ``block_size_km`` on the samples' equal-area plane, whole blocks
    assigned to folds with balanced sample counts (Roberts et al. 2017; :func:`sptgnn.splits.folds.block_folds`, the
    folds of ``evaluate.split: blocks``).

    Args:
        n_splits: Number of folds ``K``.
        block_size_km: Side of a block in km.
        seed: Seed of the block-to-fold assignment.
        coords: ``(x, y)`` column names when ``X`` is a plain DataFrame.
        crs: CRS of those columns.

    Raises:
        SplitError / ValueError (in :meth:`split`): fewer blocks than folds, or ``X`` without coordinates or CRS.
    """

    def __init__(self, n_splits: int = 5, block_size_km: float = 100.0, seed: int = 0, coords=None, crs=None):
        self.n_splits, self.block_size_km, self.seed, self.coords, self.crs = n_splits, block_size_km, seed, coords, crs

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def split(self, X, y=None, groups=None):
        """Train and test positions ``(n_train,)``, ``(n_test,)`` of each fold; ``X`` may be
        :class:`~sptgnn.data.samples.SoilSamples` (which scikit-learn's own input checks do not accept)."""
        n = len(X)
        for test in self._iter_test_indices(X):
            yield np.setdiff1d(np.arange(n), test), test

    def _iter_test_indices(self, X=None, y=None, groups=None):
        folds = block_folds(_planar(X, self.coords, self.crs), self.block_size_km * 1000.0, self.n_splits, self.seed)
        for k in range(1, self.n_splits + 1):
            yield np.flatnonzero(folds == k)


__all__ = ["BlockKFold"]
