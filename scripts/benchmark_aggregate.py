"""Time and peak memory of zone aggregation over Africa's 20 km grid with 100 realisations (issue 15).

A run is trained on a seeded subsample of the afsp-africa points (``--subsample``, ``--members``; the full corpus
takes hours here) with cross-fitted variance calibration, whose out-of-sample PIT values give the residual field.
The aggregation then covers every valid cell of ``afgrid20_covariates_20km.tif`` (about 145,000), with zones a regular
grid of ``--zone-km`` squares in the grid's CRS (metres, or degrees of about that size at the equator), in a fresh subprocess whose peak resident memory is read from
``ru_maxrss``.

    OMP_NUM_THREADS=1 python scripts/benchmark_aggregate.py

Writes ``benchmarks/results/aggregate_africa.json``.

**0–30 cm stocks of profile layers** (issue 30): with a profile config and ``--depths``, the subsample is of sites (all
their layers), the residual field is three-dimensional (correlated along depth), and every pixel's stock is the sum over
the interval's standard layers with bulk density and coarse fragments drawn from the run's heads (``--bulk-density-target``,
``--coarse-target``), jointly with SOC:

    OMP_NUM_THREADS=1 python scripts/benchmark_aggregate.py --config configs/afsp_africa_profiles_map.yaml \
        --depths 0-30 --bulk-density-target BLD --coarse-target CRFVOL

writes ``benchmarks/results/aggregate_africa_0-30cm.json``.
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


def measure(run_dir: str, field_json: str, raster: str, zone_km: float, realisations: int, heads_json: str) -> dict:
    import geopandas as gpd
    from shapely.geometry import box

    from sptgnn.accounting.aggregate import aggregate_zones
    from sptgnn.accounting.residual_field import ResidualField
    from sptgnn.estimator.run import load_run

    f = json.loads(Path(field_json).read_text())
    field = ResidualField(np.array(f["xy"]), np.array(f["z"]), f["nugget"], f["len_scale_m"],
                          None if f.get("depth_cm") is None else np.array(f["depth_cm"]), f.get("vertical_range_cm"),
                          f.get("site_var", 0.0), None if f.get("sites") is None else np.array(f["sites"]))
    heads = json.loads(heads_json)
    depths = None if heads.get("depths") is None else tuple(heads["depths"])
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
    bd = heads.get("bulk_density_target")
    cf = heads.get("coarse_target")
    out = aggregate_zones(run, [raster], zones, field, realisations=realisations, window=256, depths=depths,
                          bulk_density_target=None if bd is None else (bd, 0.0, 1.0),
                          coarse_target=None if cf is None else (cf, 0.0, 0.01))
    in_zones = out["zone_kind"] == "zone"
    result = {"seconds": round(time.perf_counter() - start, 1), "zones": int(((out["n_pixels"] > 0) & in_zones).sum()),
              "pixels": int(out.loc[in_zones, "n_pixels"].sum()), "realisations": realisations,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              # sums of the zones' quantiles (indicative only); until 2026-12 this also added the project row
              "total_stock_t_c_q05_q50_q95": [float(out.loc[in_zones, f"stock_t_c_{q}"].sum())
                                              for q in ("q05", "q50", "q95")]}
    project = out[out["zone_kind"] == "project"].iloc[0]  # the total's own quantiles, realisation by realisation
    result["project_stock_t_c_q05_q50_q95"] = [float(project[f"stock_t_c_{q}"]) for q in ("q05", "q50", "q95")]
    if depths is not None:
        zones_ = out[(out["zone_kind"] == "zone") & (out["n_pixels"] > 0)]
        result |= {
            "depths_cm": list(depths), "bulk_density": f"head {bd} (g/cm3)" if bd else "1.3 +- 0.1 g/cm3",
            "coarse_fragments": f"head {cf} (volume %, x 0.01)" if cf else "none",
            "project_area_ha": float(project["area_ha"]),
            "project_stock_t_ha_mean": float(project["stock_t_ha_mean"]),
            "project_soc_g_kg_mean": float(project["soc_g_kg_mean"]),
            "zone_stock_t_ha_mean_quartiles": np.quantile(zones_["stock_t_ha_mean"], [0.25, 0.5, 0.75]).tolist(),
            "zone_rel_uncertainty_median": float(zones_["stock_t_c_rel_uncertainty"].median()),
        }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subsample", type=int, default=3000)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--realisations", type=int, default=100)
    ap.add_argument("--zone-km", type=float, default=500.0)
    ap.add_argument("--config", default=str(ROOT / "configs" / "afsp_africa_map.yaml"))
    ap.add_argument("--depths", help="TOP-BOTTOM cm for a profile config, e.g. 0-30")
    ap.add_argument("--bulk-density-target", help="the run's bulk-density target (g/cm3) for --depths")
    ap.add_argument("--coarse-target", help="the run's coarse-fragment target (volume %%) for --depths")
    ap.add_argument("--measure", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        run_dir, field_json, raster, zone, r, heads = args.measure
        print(json.dumps(measure(run_dir, field_json, raster, float(zone), int(r), heads)))
        return

    import subprocess

    from sptgnn.accounting.residuals import residual_field_from_calibration
    from sptgnn.config import load_config
    from sptgnn.geo.paths import resolve_data_path
    from sptgnn.data.tables import load_samples
    from sptgnn.estimator.run import fit_run
    from sptgnn.splits import planar_coords

    cfg = load_config(args.config,
                      {"train": {"members": args.members}, "calibration": {"method": "variance", "folds": 5}})
    samples = load_samples(cfg.data)  # the map config's table: covariates named as the raster's bands
    rng = np.random.default_rng(0)
    if samples.site is None:
        keep = np.zeros(len(samples), bool)
        keep[rng.choice(len(samples), args.subsample, replace=False)] = True
    else:  # profiles: whole sites, all their layers
        sites = np.unique(samples.sites())
        keep = np.isin(samples.sites(), rng.choice(sites, min(args.subsample, len(sites)), replace=False))
    samples = samples.subset(keep)
    start = time.perf_counter()
    run = fit_run(cfg, samples)
    fit_s = time.perf_counter() - start
    ens = run.ensemble
    field = residual_field_from_calibration(ens, planar_coords(samples))
    raster = str(resolve_data_path("afsp-africa/afgrid20_covariates_20km.tif"))
    with tempfile.TemporaryDirectory() as tmp:
        run.save(Path(tmp) / "run")
        (Path(tmp) / "field.json").write_text(json.dumps({
            "xy": field.xy.tolist(), "z": field.z.tolist(), "nugget": field.nugget, "len_scale_m": field.len_scale_m,
            "depth_cm": None if field.depth_cm is None else field.depth_cm.tolist(),
            "vertical_range_cm": field.vertical_range_cm, "site_var": field.site_var,
            "sites": None if field.sites is None else field.sites.tolist()}))
        depths = None if args.depths is None else [float(v) for v in args.depths.split("-")]
        heads = json.dumps({"depths": depths, "bulk_density_target": args.bulk_density_target,
                            "coarse_target": args.coarse_target})
        proc = subprocess.run([sys.executable, __file__, "--measure", str(Path(tmp) / "run"),
                               str(Path(tmp) / "field.json"), raster, str(args.zone_km), str(args.realisations),
                               heads],
                              capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    command = "OMP_NUM_THREADS=1 python scripts/benchmark_aggregate.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        if v is not None and k != "measure" and v != ap.get_default(k))
    result |= {"fit_seconds": round(fit_s, 1), "subsample": args.subsample, "members": args.members,
               "config": str(Path(args.config).resolve().relative_to(ROOT)), "layers": len(samples),
               "field": {"nugget": field.nugget, "len_scale_m": field.len_scale_m, "residuals": len(field.z),
                         "vertical_range_cm": field.vertical_range_cm, "site_var": field.site_var},
               "zone_km": args.zone_km, "command": command}
    name = "aggregate_africa.json" if args.depths is None else f"aggregate_africa_{args.depths}cm.json"
    out = ROOT / "benchmarks" / "results" / name
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
