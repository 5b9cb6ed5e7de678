"""The prediction domain of kNNDM folds: a regular sample of points of a raster's valid cells or of polygons, and the
kNNDM folds of samples for it (``evaluate.split: knndm``).

CAST samples ``samplesize`` points regularly over the model domain (``sf::st_sample(type = "regular")``); here a
raster is read decimated so that about ``samplesize`` of its valid cells remain (a regular grid of cell centres), and
polygons are covered by a regular grid of that many points inside them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sptgnn.data.samples import SoilSamples
from sptgnn.geo import transform_xy
from sptgnn.splits.folds import SplitError, planar_coords, planar_crs
from sptgnn.splits.knndm import KNNDMResult, knndm

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt")


def raster_points(path: str | Path, samplesize: int, features: list[str] | None = None):
    """About ``samplesize`` regularly spaced valid cells of a raster: ``(xy (n, 2) in its CRS, values (n, F) of the
    bands named ``features`` or ``None``, CRS)``. A cell is valid where every band (or every named band) is valid."""
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.transform import xy as xy_of

    with rasterio.open(path) as src:
        names = [d or f"band_{i + 1}" for i, d in enumerate(src.descriptions)]
        idx = list(range(1, src.count + 1)) if features is None else [names.index(f) + 1 for f in features]
        probe = max(1.0, max(src.height, src.width) / 256)  # a cheap first look for the valid share
        shape = (max(1, int(src.height / probe)), max(1, int(src.width / probe)))
        share = (src.read_masks(idx, out_shape=(len(idx),) + shape).min(0) > 0).mean()
        if share == 0:
            raise SplitError(f"kNNDM domain {path}: no valid cell; check its nodata")
        f = max(1.0, math.sqrt(src.height * src.width * share / samplesize))
        shape = (max(1, round(src.height / f)), max(1, round(src.width / f)))
        data = src.read(idx, out_shape=(len(idx),) + shape, resampling=Resampling.nearest, masked=True)
        valid = ~np.ma.getmaskarray(data).any(0)
        rows, cols = np.nonzero(valid)
        t = src.transform @ Affine.scale(src.width / shape[1], src.height / shape[0])  # the decimated grid
        x, y = (np.asarray(v) for v in xy_of(t, rows, cols, offset="center"))
        values = None if features is None else np.ma.getdata(data)[:, rows, cols].T.astype(float)
        return np.c_[x, y], values, src.crs


def polygon_points(path: str | Path, samplesize: int):
    """About ``samplesize`` points of a regular grid inside the union of a vector file's polygons: ``(xy, CRS)``."""
    import geopandas as gpd
    import shapely

    frame = gpd.read_file(path)
    area = frame.union_all()
    if area.is_empty or area.area == 0:
        raise SplitError(f"kNNDM domain {path}: no polygon with an area")
    step = math.sqrt(area.area / samplesize)
    x0, y0, x1, y1 = area.bounds
    gx, gy = np.meshgrid(np.arange(x0 + step / 2, x1, step), np.arange(y0 + step / 2, y1, step))
    inside = shapely.contains_xy(area, gx.ravel(), gy.ravel())
    return np.c_[gx.ravel()[inside], gy.ravel()[inside]], frame.crs


def knndm_folds(samples: SoilSamples, domain: str | Path, k: int, space: str = "geographical", samplesize: int = 1000,
                maxp: float = 0.5, clustering: str = "hierarchical", seed: int = 0) -> KNNDMResult:
    """kNNDM folds of ``samples`` for the prediction ``domain`` (a raster, or a GeoPackage/shapefile of polygons).

    Args:
        samples: Training samples.
        domain: Where the map will be predicted.
        k: Number of folds.
        space: ``geographical`` (planar metres) or ``feature`` (the covariates the domain raster and the samples
            share, standardised by the samples' mean and sd; needs a raster domain).
        samplesize, maxp, clustering, seed: See :func:`~sptgnn.splits.knndm.knndm`.

    Raises:
        SplitError: A missing or unusable domain, no shared covariate in the feature space, or no valid candidate.
    """
    path = Path(domain)
    if not path.exists():
        raise SplitError(f"kNNDM domain {path} not found; set evaluate.knndm.domain to a raster or a polygon file")
    is_raster = path.suffix.lower() in RASTER_SUFFIXES
    if space == "feature":
        if not is_raster:
            raise SplitError("kNNDM in the feature space needs a raster domain (covariates at the prediction points)")
        import rasterio

        with rasterio.open(path) as src:
            bands = list(src.descriptions)
        columns = [c for g in ("imagery", "environment") for c in samples.feature_groups.get(g, [])]
        shared = [c for c in columns if c in bands]
        if not shared:
            raise SplitError(f"kNNDM feature space: no band of {path.name} is named like a covariate of the samples "
                             f"({', '.join(columns[:6])}...)")
        _, values, _ = raster_points(path, samplesize, shared)
        X = samples.frame[shared].to_numpy(float)
        mu, sd = np.nanmean(X, 0), np.nanstd(X, 0)
        sd[sd == 0] = 1.0
        ok = np.isfinite(X).all(1)
        if not ok.all():
            raise SplitError(f"kNNDM feature space: {int((~ok).sum())} samples lack a covariate of {shared}")
        return knndm((X - mu) / sd, (values - mu) / sd, k, maxp, clustering, seed=seed, space="feature")
    xy, crs = (raster_points(path, samplesize)[0::2] if is_raster else polygon_points(path, samplesize))
    names = ("the kNNDM domain's CRS", "the samples' CRS")
    xy = transform_xy(xy, crs, samples.crs, names)
    pcrs = planar_crs(samples)
    if pcrs is not None:
        xy = transform_xy(xy, samples.crs, pcrs, names)
    return knndm(planar_coords(samples), xy, k, maxp, clustering, seed=seed, space="geographical")


__all__ = ["knndm_folds", "polygon_points", "raster_points"]
