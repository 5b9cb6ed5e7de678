"""Chip extraction throughput: chips per second for N points on a 12-band stack, cold and cached.

Usage: python scripts/benchmark_chips.py [--points 10000] [--size 9] [--pixels 2048] [--repeats 3]
       [--out benchmarks/results/chips.json]

Each measurement is repeated ``--repeats`` times (fresh extractor, fresh cache folder where one is written) and every
time is kept; the first cold run also pays GDAL's first reads of the file. A seeded 12-band uint16 GeoTIFF (``pixels × pixels`` at 10 m, EPSG:32633, tiled 256 × 256, deflate; like a Sentinel-2
L2A stack) is written to a temporary folder with N seeded random points on it. Timed, each on a fresh extractor:

- ``cold_in_memory``: no chip cache; the stack is read whole and chips are sliced from memory (the default up to
  ``max_memory_mb``);
- ``cold_in_memory_writing_cache``: the same, also writing the on-disk cache;
- ``cached``: the second run, every chip from the cache (no raster opened);
- ``cold_windowed``: one boundless windowed read per chip (``max_memory_mb=0``, the path for rasters larger than memory).

"Cold" means no chip cache; the GeoTIFF itself may sit in the OS page cache after it is written. The machine's CPU is
shared: the load average is recorded before and after, and the figures are lower bounds on throughput when it is high.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin


from sptgnn.data.chip_extractor import ChipExtractor  # noqa: E402
from sptgnn.data.chips import ChipSource  # noqa: E402

BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def write_stack(path: Path, pixels: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    profile = dict(driver="GTiff", height=pixels, width=pixels, count=len(BANDS), dtype="uint16", crs="EPSG:32633",
                   transform=from_origin(500_000, 5_100_000, 10, 10), tiled=True, blockxsize=256, blockysize=256,
                   compress="deflate", nodata=0)
    with rasterio.open(path, "w", **profile) as dst:
        for i, name in enumerate(BANDS, 1):
            dst.write(rng.integers(1, 10_000, (pixels, pixels), dtype=np.uint16), i)
            dst.set_band_description(i, name)


def timed(extractor: ChipExtractor, ids, xy) -> tuple[float, object]:
    t0 = time.perf_counter()
    chips = extractor.extract(ids, xy, "EPSG:32633")
    return time.perf_counter() - t0, chips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=9)
    ap.add_argument("--pixels", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/chips.json")
    args = ap.parse_args()
    load_before = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        stack = tmp / "s2_12band.tif"
        write_stack(stack, args.pixels)
        rng = np.random.default_rng(1)
        extent = args.pixels * 10.0
        xy = np.c_[500_000 + rng.uniform(0, extent, args.points), 5_100_000 - rng.uniform(0, extent, args.points)]
        ids = np.array([f"p{i}" for i in range(args.points)])
        src = [ChipSource(stack)]
        runs = [
            ("cold_in_memory", lambda r: dict()),
            ("cold_in_memory_writing_cache", lambda r: dict(cache_dir=tmp / f"cache{r}")),
            ("cached", lambda r: dict(cache_dir=tmp / "cache0")),
            ("cold_windowed", lambda r: dict(max_memory_mb=0)),
        ]
        reference = None
        for name, kwargs in runs:
            times = []
            for r in range(args.repeats):
                ex = ChipExtractor(src, size=args.size, **kwargs(r))
                seconds, chips = timed(ex, ids, xy)
                if reference is None:
                    reference = chips.values
                assert np.array_equal(chips.values, reference), name
                times.append(seconds)
            best = min(times)
            results[name] = {"seconds_each_repeat": [round(t, 3) for t in times], "best_seconds": round(best, 3),
                             "chips_per_second_best": round(args.points / best, 1), "rasters_opened": ex.opens}
            print(f"{name}: {', '.join(f'{t:.2f}' for t in times)} s; best {args.points / best:,.0f} chips/s, "
                  f"rasters opened {ex.opens}", flush=True)
    report = {
        "points": args.points, "chip": f"12 x {args.size} x {args.size}", "stack": f"12-band uint16 {args.pixels}x{args.pixels} at 10 m, tiled, deflate",
        "results": results, "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "rasterio": rasterio.__version__,
        "note": "CPU shared with other jobs: figures are lower bounds on throughput when the load average exceeds the cores",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"load average before {load_before}, after {report['loadavg_after']}; wrote {args.out}")


if __name__ == "__main__":
    main()
