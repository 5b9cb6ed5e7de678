"""Check a predicted map against its input grid and against point predictions at the training locations (issue 5).

    python scripts/check_map.py RUN MAP.tif REFERENCE.tif

Prints CRS/transform/shape equality with the reference covariate raster, value ranges of every band, and the largest
difference between the map's mean band and point predictions (`sptgnn.predict.points`) at the training samples'
pixel centres (covariates sampled from the same rasters). Exits 1 when a check fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sptgnn.data.raster_sources import expand_paths  # noqa: E402
from sptgnn.predict.points import predict_points  # noqa: E402
from sptgnn.estimator.run import load_run  # noqa: E402
from sptgnn.predict.raster import NODATA, raster_sources  # noqa: E402


def main(run: str, tif: str, reference: str) -> int:
    model = load_run(run)
    with rasterio.open(tif) as m, rasterio.open(reference) as ref:
        same = {"crs": m.crs == ref.crs, "transform": m.transform.almost_equals(ref.transform), "shape": m.shape == ref.shape}
        arr = m.read(masked=True)
        ranges = {d: [float(arr[i].min()), float(arr[i].max())] for i, d in enumerate(m.descriptions)}
        lab = model.ensemble.builder.labelled
        pts = lab.frame.geometry.to_crs(m.crs) if lab.crs != m.crs else lab.frame.geometry
        rows, cols = rasterio.transform.rowcol(m.transform, pts.x.to_numpy(), pts.y.to_numpy())
        rows, cols = np.asarray(rows), np.asarray(cols)
        inside = (rows >= 0) & (rows < m.height) & (cols >= 0) & (cols < m.width)
        xc, yc = rasterio.transform.xy(m.transform, rows[inside], cols[inside])
        mean_at = arr[0][rows[inside], cols[inside]]
        inside_mask = ~np.ma.getmaskarray(mean_at)
    centres = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xc, yc), crs=m.crs)
    rasters = [str(p) for s in raster_sources(model) for p in expand_paths(s.path)]
    pred, n_bad = predict_points(model, centres, rasters)
    point_mean = pred[f"{model.prefix}_mean"].to_numpy()
    ok = inside_mask & np.isfinite(point_mean)
    diff = float(np.max(np.abs(point_mean[ok] - np.ma.filled(mean_at, np.nan)[ok]) / np.maximum(1e-9, np.abs(point_mean[ok]))))
    report = {"map": tif, "grid_equal": same, "ranges": ranges, "nodata": NODATA, "training_pixels_compared": int(ok.sum()),
              "max_relative_difference_mean_vs_points": diff, "aoa_share_inside": float(np.mean(arr[6].compressed()))}
    print(json.dumps(report, indent=2))
    return 0 if all(same.values()) and diff < 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:4]))
