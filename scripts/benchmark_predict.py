"""Throughput and peak memory of `sptgnn predict --raster` on synthetic covariate stacks (issue 5).

For each size S the script writes a synthetic S × S covariate stack (6 float32 bands, 10 m, EPSG:32633, tiled and
DEFLATE compressed, written window by window), trains one 5-member ensemble on 300 points sampled from the first stack
(default model: hidden 32, 2 attention layers, 3 relations; few epochs, since throughput does not depend on fit), and
predicts every stack in a fresh subprocess, which reports wall and CPU seconds of the map, pixels per second and its
peak resident memory (``ru_maxrss``: imports + run + prediction). Load average is recorded before and after each size:
on a shared CPU, wall-clock pixels per second is a lower bound of what the code does on idle cores.

    OMP_NUM_THREADS=2 python scripts/benchmark_predict.py --sizes 2000 8000 --threads 2
    python scripts/benchmark_predict.py --sizes 1000 2000 --compile   # fused attention (torch.compile)

Writes ``benchmarks/results/predict.json``: per size ``pixels_per_second``, ``peak_rss_mb`` and the details.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

BANDS = ["blue", "red", "nir", "elevation", "slope", "twi"]
RES, X0, Y0 = 10.0, 400_000.0, 5_800_000.0


def _field(rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Six smooth synthetic covariates ``(6, h, w)`` of pixel rows/cols plus a little noise."""
    u, v = cols / 2000.0, rows / 2000.0
    elev = 100 + 40 * np.sin(2 * u) + 30 * np.cos(3 * v)
    slope = 2 + np.abs(np.cos(5 * u + v))
    twi = 8 + 2 * np.sin(4 * v - u)
    nir = 0.3 + 0.2 * np.sin(3 * u + 2 * v) ** 2
    red = 0.08 + 0.03 * np.cos(u - v)
    blue = 0.05 + 0.02 * v % 1
    out = np.stack([blue, red, nir, elev, slope, twi]).astype(np.float32)
    return out + rng.normal(0, 0.002, out.shape).astype(np.float32)


def write_stack(path: Path, size: int, window: int = 1024) -> None:
    """A ``size × size`` 6-band GeoTIFF written window by window (memory independent of ``size``)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    rng = np.random.default_rng(0)
    prof = dict(driver="GTiff", width=size, height=size, count=len(BANDS), dtype="float32", crs="EPSG:32633",
                transform=from_origin(X0, Y0, RES, RES), tiled=True, blockxsize=256, blockysize=256, compress="deflate",
                nodata=-9999.0, BIGTIFF="IF_SAFER")
    with rasterio.open(path, "w", **prof) as dst:
        for i, b in enumerate(BANDS, start=1):
            dst.set_band_description(i, b)
        for r in range(0, size, window):
            for c in range(0, size, window):
                h, w = min(window, size - r), min(window, size - c)
                rows, cols = np.mgrid[r:r + h, c:c + w]
                dst.write(_field(rows, cols, rng), window=Window(c, r, w, h))


def train_run(stack: Path, run: Path, members: int, epochs: int) -> None:
    """Train and save a ``members``-member ensemble on 300 points sampled from ``stack``."""
    import geopandas as gpd
    import pandas as pd

    from sptgnn.config import Config
    from sptgnn.geo.stack import CovariateStack
    from sptgnn.data.samples import SoilSamples
    from sptgnn.estimator.aoa import fit_aoa
    from sptgnn.estimator.run import Run
    from sptgnn.train.ensemble import DeepEnsemble

    rng = np.random.default_rng(1)
    with CovariateStack.open([stack]) as st:
        n = 300
        xy = np.c_[X0 + rng.uniform(0, st.width * RES, n), Y0 - rng.uniform(0, st.height * RES, n)]
        values, ok = st.sample_points(xy, "EPSG:32633")
    frame = pd.DataFrame(values, columns=BANDS)
    frame["sample_id"] = [f"p{i}" for i in range(n)]
    frame["soc_g_kg"] = 10 + 0.1 * (frame.elevation - 100) + 20 * frame.nir + rng.normal(0, 1, n)
    samples = SoilSamples(frame=gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs="EPSG:32633"),
                          targets=["soc_g_kg"], feature_groups={"imagery": BANDS[:3], "environment": BANDS[3:]},
                          elevation="elevation", name="synthetic")
    cfg = Config.model_validate({"model": {"streams": ["imagery", "environment", "position"]},
                                 "train": {"members": members, "epochs": epochs, "patience": epochs, "refit": False}})
    ens = DeepEnsemble(cfg).fit(samples)
    Run(ens, aoa=fit_aoa(samples, "soc_g_kg")).save(run, overwrite=True)


def predict_one(run: Path, stack: Path, out: Path, window: int, threads: int, compile_: bool) -> dict:
    """Predict one map in this process and measure it (called in a fresh subprocess per size)."""
    import torch

    torch.set_num_threads(threads)
    from sptgnn.estimator.run import load_run
    from sptgnn.predict.raster import predict_raster

    t0 = time.perf_counter()
    model = load_run(run, compile=compile_, workers=threads)
    load_s = time.perf_counter() - t0
    check = None
    if compile_:  # compiled and eager attention must agree
        lab = model.labelled
        vals = {c: lab.frame[c].to_numpy() for c in model.needed}
        a = model.predict_arrays(vals, lab.xy())["mean"]
        model.set_prediction_options(compile=False, workers=threads)
        b = model.predict_arrays(vals, lab.xy())["mean"]
        check = float(np.max(np.abs(a - b)))
        model.set_prediction_options(compile=True, workers=threads)
    load_before = os.getloadavg()
    c0, t1 = time.process_time(), time.perf_counter()
    summary = predict_raster(model, [stack], out, window=window, quicklook=False, overwrite=True)
    wall, cpu = time.perf_counter() - t1, time.process_time() - c0
    return {
        "pixels": summary["valid_pixels"], "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
        "pixels_per_second": round(summary["valid_pixels"] / wall, 1),
        "pixels_per_cpu_second": round(summary["valid_pixels"] / cpu, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_seconds": round(load_s, 2), "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()], "compiled_vs_eager_max_abs_diff": check,
    }


def _write_report(args, results: dict) -> None:
    import torch

    report = {
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "members": args.members, "window": args.window, "threads": args.threads, "compile": args.compile,
        "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "note": "wall-clock throughput on a shared CPU is a lower bound; see loadavg_before/after",
        "sizes": results,
    }
    if len(results) > 1:
        rss = [r["peak_rss_mb"] for r in results.values()]
        report["peak_rss_ratio_max_over_min"] = round(max(rss) / min(rss), 3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000], help="Stack sizes in pixels a side.")
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20, help="Training epochs per member (throughput does not depend on it).")
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="Fuse the attention step with torch.compile.")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "predict.json")
    ap.add_argument("--workdir", type=Path, default=None, help="Folder for the synthetic stacks (default: a temp dir).")
    ap.add_argument("--one", nargs=3, metavar=("RUN", "STACK", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(predict_one(Path(args.one[0]), Path(args.one[1]), Path(args.one[2]), args.window, args.threads, args.compile)))
        return
    work = Path(args.workdir or tempfile.mkdtemp(prefix="sptgnn-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    run = work / "run"
    for i, size in enumerate(args.sizes):
        stack = work / f"stack_{size}.tif"
        t = time.perf_counter()
        if not stack.exists():
            write_stack(stack, size)
        print(f"stack {size} x {size}: {time.perf_counter() - t:.0f} s", flush=True)
        if i == 0 and not run.exists():
            t = time.perf_counter()
            train_run(stack, run, args.members, args.epochs)
            print(f"trained {args.members} members: {time.perf_counter() - t:.0f} s", flush=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(run), str(stack), str(work / f"map_{size}.tif"),
               "--window", str(args.window), "--threads", str(args.threads)] + (["--compile"] if args.compile else [])
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode:
            raise SystemExit(f"size {size} failed:\n{proc.stderr[-3000:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results[str(size)] = res
        print(f"{size} x {size}: {res['pixels_per_second']:.0f} px/s wall ({res['pixels_per_cpu_second']:.0f} px per CPU s), "
              f"peak RSS {res['peak_rss_mb']:.0f} MB, load {res['loadavg_before']}", flush=True)
        (work / f"map_{size}.tif").unlink(missing_ok=True)
        _write_report(args, results)  # after every size, so an interrupted sweep keeps what it measured
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
