"""0–30 cm SOC stocks of the Edgeroi district from its profile layers, and the coverage of their block means (issue 30).

Four commands of the CLI, on ``configs/edgeroi_profiles.yaml`` (all 2,076 layers with SOC of 323 profiles):

1. ``sptgnn evaluate`` (5 km blocks grouped by site): the out-of-fold residuals of the layers;
2. ``sptgnn train``: the run on every layer;
3. ``sptgnn aggregate --depths 0-30`` over the district (the convex hull of the sites, buffered by 1 km, clipped to
   nothing else), with bulk density 1.3 ± 0.1 g/cm³ (the horizons carry none) and no coarse fragments (cracking clays);
4. ``sptgnn check-blocks --depths 0-30``: 90 % intervals of 5 km block means of the 0–30 cm mean SOC against the sites'
   equal-area spline means, in a blocked CV.

    OMP_NUM_THREADS=1 python scripts/benchmark_profile_stocks.py

Writes ``benchmarks/results/stocks_edgeroi_0-30cm.json`` (work files under ``runs/edgeroi-stocks``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sptgnn(*args: str) -> float:
    """Run one ``sptgnn`` command (one thread); its wall seconds."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sptgnn", *args], capture_output=True, text=True,
                          env=os.environ | {"OMP_NUM_THREADS": "1"})
    if proc.returncode:
        raise SystemExit(f"sptgnn {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return round(time.perf_counter() - start, 1)


def district(config: Path, out: Path) -> None:
    """The zone: the convex hull of the profiles' sites, buffered by 1 km, as a GeoPackage."""
    import geopandas as gpd

    from sptgnn.config import load_config
    from sptgnn.data.tables import load_samples

    samples = load_samples(load_config(config).data)
    hull = samples.frame.geometry.union_all().convex_hull.buffer(1000.0)
    gpd.GeoDataFrame({"name": ["Edgeroi district"]}, geometry=[hull], crs=samples.crs).to_file(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "edgeroi_profiles.yaml"))
    ap.add_argument("--work", default=str(ROOT / "runs" / "edgeroi-stocks"))
    ap.add_argument("--depths", default="0-30")
    ap.add_argument("--realisations", type=int, default=100)
    ap.add_argument("--block-members", type=int, default=3)
    args = ap.parse_args()
    work, config = Path(args.work), Path(args.config)
    work.mkdir(parents=True, exist_ok=True)
    seconds = {}
    if not (work / "evaluation" / "predictions.csv").is_file():
        seconds["evaluate"] = sptgnn("evaluate", str(config), "--out", str(work / "evaluation"))
    if not (work / "run").is_dir():
        seconds["train"] = sptgnn("train", str(config), "--out", str(work / "run"))
    if not (work / "district.gpkg").is_file():
        district(config, work / "district.gpkg")
    totals = work / f"stocks_{args.depths}cm.gpkg"
    seconds["aggregate"] = sptgnn("aggregate", str(work / "run"), "--zones", str(work / "district.gpkg"),
                                  "--residuals", str(work / "evaluation"), "--depths", args.depths,
                                  "--realisations", str(args.realisations), "--out", str(totals), "--overwrite")
    blocks = work / f"blocks_{args.depths}cm.json"
    seconds["check_blocks"] = sptgnn("check-blocks", str(work / "evaluation"), "--out", str(blocks), "--block-km", "5",
                                     "--members", str(args.block_members), "--depths", args.depths,
                                     "--min-samples", "3", "--overwrite")

    import geopandas as gpd

    table = gpd.read_file(totals, layer="zone_totals")
    project = table[table["zone_kind"] == "project"].iloc[0]
    provenance = gpd.read_file(totals, layer="provenance").set_index("key")["value"].to_dict()
    check = json.loads(blocks.read_text())
    result = {
        "config": str(config.resolve().relative_to(ROOT)), "depths_cm": args.depths,
        "area_ha": float(project["area_ha"]), "pixels": int(project["n_pixels"]),
        "soc_g_kg_mean": float(project["soc_g_kg_mean"]),
        "stock_t_ha_mean": float(project["stock_t_ha_mean"]),
        "stock_t_ha_q05_q95": [float(project["stock_t_ha_q05"]), float(project["stock_t_ha_q95"])],
        "stock_t_c_mean": float(project["stock_t_c_mean"]),
        "stock_t_c_q05_q50_q95": [float(project[f"stock_t_c_{q}"]) for q in ("q05", "q50", "q95")],
        "stock_t_c_rel_uncertainty": float(project["stock_t_c_rel_uncertainty"]),
        "layer": provenance.get("layer"), "residual_field": provenance.get("residual_field"),
        "bulk_density_g_cm3": provenance.get("bulk_density_g_cm3"),
        "block_means": {k: check[k] for k in ("block_side_m", "sites", "blocks_scored", "coverage_90_realisations",
                                              "coverage_90_naive", "mean_width_realisations", "mean_width_naive",
                                              "members", "realisations")},
        "seconds": seconds, "realisations": args.realisations,
        "command": "OMP_NUM_THREADS=1 python scripts/benchmark_profile_stocks.py",
    }
    out = ROOT / "benchmarks" / "results" / f"stocks_edgeroi_{args.depths}cm.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
