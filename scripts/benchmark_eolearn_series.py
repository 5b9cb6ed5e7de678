"""Real Sentinel-2 NDVI time series (68 dates) and DEM of eo-learn's TestEOPatch through chip extraction and the
temporal encoder: embeddings are produced, cached and deterministic.

Usage: python scripts/benchmark_eolearn_series.py [--points 60] [--out benchmarks/results/eolearn_series.json]

Data: ``eolearn-s2-slovenia/`` in the data directory (SOURCE.md: eo-learn, MIT; contains modified Copernicus Sentinel
data 2015-2017). There are no soil labels there: the first 2/3 of the seeded random points play the labelled samples the
encoder is fitted on, all points are encoded. Steps: (1) extract 7 x 7 chips (70 m) of NDVI (68 dates, band
descriptions are the dates), the DEM (static, broadcast over the dates) and the cloud mask (masks NDVI); cache them;
(2) extract again from the cache: no raster is opened and the chips are identical; (3) fit and encode twice with fresh
encoders (random convolutional features per date, harmonic pooling over the day of year): identical embeddings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio


from sptgnn.data.chip_extractor import ChipExtractor  # noqa: E402
from sptgnn.data.chips import ChipSource  # noqa: E402
from sptgnn.geo.paths import data_dir  # noqa: E402
from sptgnn.imagery.encoders import RandomConvEncoder  # noqa: E402
from sptgnn.imagery.series import SeriesEncoder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=60)
    ap.add_argument("--out", default="benchmarks/results/eolearn_series.json")
    args = ap.parse_args()
    folder = data_dir() / "eolearn-s2-slovenia"
    ndvi = folder / "s2_ndvi_timeseries_68dates.tif"
    if not ndvi.is_file():
        sys.exit(f"{ndvi} not found: put the eolearn-s2-slovenia folder in the data directory (SPTGNN_DATA_DIR)")
    sources = [
        ChipSource(ndvi, name="ndvi", dates="descriptions"),
        ChipSource(folder / "dem.tif", name="dem"),
        ChipSource(folder / "s2_cloudmask_timeseries_68dates.tif", name="clm", dates="descriptions", kind="cloud_mask",
                   resampling="nearest"),
    ]
    with rasterio.open(ndvi) as ds:
        b, crs = ds.bounds, ds.crs
    rng = np.random.default_rng(0)
    n = args.points
    xy = np.c_[rng.uniform(b.left + 40, b.right - 40, n), rng.uniform(b.bottom + 40, b.top - 40, n)]
    ids = np.array([f"p{i:03d}" for i in range(n)])
    labelled = np.arange(n) < (2 * n) // 3

    with tempfile.TemporaryDirectory() as cache:
        ex1 = ChipExtractor(sources, size=7, cache_dir=cache)
        t0 = time.perf_counter()
        chips = ex1.extract(ids, xy, crs)
        cold = time.perf_counter() - t0
        ex2 = ChipExtractor(sources, size=7, cache_dir=cache)
        t0 = time.perf_counter()
        again = ex2.extract(ids, xy, crs)
        cached = time.perf_counter() - t0
        same_chips = bool(np.array_equal(chips.values, again.values) and np.array_equal(chips.mask, again.mask))

    def embed():
        enc = SeriesEncoder(RandomConvEncoder(num_filters=8, patch_size=3, seed=0), pooling="harmonic", harmonics=1)
        enc.fit(again.subset(np.flatnonzero(labelled)))
        return enc, enc.encode(again)

    enc, emb1 = embed()
    _, emb2 = embed()
    valid_dates = (again.mask[:, :, 0].mean((2, 3)) >= 0.5).sum(1)
    centre_ndvi = np.where(again.mask[:, :, 0, 3, 3], again.values[:, :, 0, 3, 3], np.nan)
    report = {
        "data": "eolearn-s2-slovenia: NDVI 68 dates (2015-07-11 to 2017-12-22) + DEM + cloud mask, 10 m, EPSG:32633",
        "points": n, "labelled_for_fit": int(labelled.sum()),
        "chips_shape": list(chips.values.shape), "channels": chips.channels,
        "dates": [str(chips.dates[0]), str(chips.dates[-1])],
        "valid_dates_per_point": {"min": int(valid_dates.min()), "median": float(np.median(valid_dates)), "max": int(valid_dates.max())},
        "centre_ndvi_mean_over_clear_dates": float(np.nanmean(centre_ndvi)),
        "embedding_shape": list(emb1.shape), "embedding_finite": bool(np.isfinite(emb1).all()),
        "embedding_sha256": hashlib.sha256(emb1.tobytes()).hexdigest()[:16],
        "deterministic": bool(np.array_equal(emb1, emb2)),
        "cache": {"cold_seconds": round(cold, 3), "rasters_opened_cold": ex1.opens, "cached_seconds": round(cached, 3),
                  "rasters_opened_cached": ex2.opens, "cached_chips_identical": same_chips},
        "first_features": enc.feature_names[:3],
        "loadavg": os.getloadavg(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
