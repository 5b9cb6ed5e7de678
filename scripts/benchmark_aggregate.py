"""Time and peak memory of zone aggregation over Africa's 20 km grid with 100 realisations (issue 15).

A run is trained on a seeded subsample of the afsp-africa points (``--subsample``, ``--members``; the full corpus
takes hours here) with cross-fitted variance calibration, whose out-of-sample PIT values give the residual field.
The aggregation then covers every valid cell of ``afgrid20_covariates_20km.tif`` (about 145,000), with zones a regular
grid of ``--zone-km`` squares in the grid's CRS (metres, or degrees of about that size at the equator), in a fresh subprocess whose peak resident memory is read from
``ru_maxrss``.

    OMP_NUM_THREADS=1 python scripts/benchmark_aggregate.py

Writes ``benchmarks/results/aggregate_africa.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def measure(run_dir: str, field_json: str, raster: str, zone_km: float, realisations: int) -> dict:
    import geopandas as gpd
    from shapely.geometry import box

    from sptgnn.accounting.aggregate import aggregate_zones
    from sptgnn.accounting.residual_field import ResidualField
    from sptgnn.estimator.run import load_run

    f = json.loads(Path(field_json).read_text())
    field = ResidualField(np.array(f["xy"]), np.array(f["z"]), f["nugget"], f["len_scale_m"])
    run = load_run(run_dir)
    import rasterio

    with rasterio.open(raster) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
    size = zone_km / 111.32 if crs.is_geographic else zone_km * 1000.0  # degrees at the equator, or metres
    xs, ys = np.arange(left, right, size), np.arange(bottom, top, size)
    zones = gpd.GeoDataFrame({"zone": range(len(xs) * len(ys))}, crs=crs,
                             geometry=[box(x, y, x + size, y + size) for y in ys for x in xs])
    start = time.perf_counter()
    out = aggregate_zones(run, [raster], zones, field, realisations=realisations, window=256)
    return {"seconds": round(time.perf_counter() - start, 1), "zones": int((out["n_pixels"] > 0).sum()),
            "pixels": int(out["n_pixels"].sum()), "realisations": realisations,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "total_stock_t_c_q05_q50_q95": [float(out[f"stock_t_c_{q}"].sum()) for q in ("q05", "q50", "q95")]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subsample", type=int, default=3000)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--realisations", type=int, default=100)
    ap.add_argument("--zone-km", type=float, default=500.0)
    ap.add_argument("--measure", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        run_dir, field_json, raster, zone, r = args.measure
        print(json.dumps(measure(run_dir, field_json, raster, float(zone), int(r))))
        return

    import subprocess

    from sptgnn.accounting.residuals import residual_field_from_calibration
    from sptgnn.config import load_config
    from sptgnn.geo.paths import resolve_data_path
    from sptgnn.data.tables import load_samples
    from sptgnn.estimator.run import fit_run
    from sptgnn.splits import planar_coords

    cfg = load_config(ROOT / "configs" / "afsp_africa_map.yaml",
                      {"train": {"members": args.members}, "calibration": {"method": "variance", "folds": 5}})
    samples = load_samples(cfg.data)  # the map config's table: covariates named as the raster's bands
    keep = np.zeros(len(samples), bool)
    keep[np.random.default_rng(0).choice(len(samples), args.subsample, replace=False)] = True
    samples = samples.subset(keep)
    start = time.perf_counter()
    run = fit_run(cfg, samples)
    fit_s = time.perf_counter() - start
    ens = run.ensemble
    field = residual_field_from_calibration(ens, planar_coords(samples))
    raster = str(resolve_data_path("afsp-africa/afgrid20_covariates_20km.tif"))
    with tempfile.TemporaryDirectory() as tmp:
        run.save(Path(tmp) / "run")
        (Path(tmp) / "field.json").write_text(json.dumps({"xy": field.xy.tolist(), "z": field.z.tolist(),
                                                          "nugget": field.nugget, "len_scale_m": field.len_scale_m}))
        proc = subprocess.run([sys.executable, __file__, "--measure", str(Path(tmp) / "run"),
                               str(Path(tmp) / "field.json"), raster, str(args.zone_km), str(args.realisations)],
                              capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    result |= {"fit_seconds": round(fit_s, 1), "subsample": args.subsample, "members": args.members,
               "field": {"nugget": field.nugget, "len_scale_m": field.len_scale_m, "residuals": len(field.z)},
               "zone_km": args.zone_km, "command": "OMP_NUM_THREADS=1 python scripts/benchmark_aggregate.py"}
    out = ROOT / "benchmarks" / "results" / "aggregate_africa.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
