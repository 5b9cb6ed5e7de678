"""Scale-out on Ray (issue 16): task overhead per member and per map tile, speed-up of 2 workers over 1 on this machine,
and a projection of wall time for Africa at 250 m on 1, 10 and 100 workers.

Real input: the Vindum field (285 SOM samples, 19 covariate rasters at 1.6 m, ``configs/vindum.yaml``). One run of
the script measures, side by side:

1. **Training** — ``fit_run`` of the config (``--members`` members, ``--calibration variance``: each member has an
   early-stopped task, then its refit and calibration twin) on the local executor, on a Ray instance of 1 CPU and on one of 2 CPUs. Each Ray instance is
   started and its workers warmed (one trivial task per CPU that imports sptgnn) before the clock starts; the start-up
   is reported apart. Overhead per task = (Ray 1 CPU − local) / tasks. The members must be bitwise equal.
2. **Map** — ``predict_raster`` of the Vindum stack, ``--window`` px tiles, on the same three executors: per-tile
   cost, overhead per tile = (Ray 1 CPU − local tile phase) / tiles, speed-up of 2 workers over 1 (tile phase and
   whole map). The three maps must be equal. A no-op Ray task is timed too (200 of them on 1 CPU), and the serial
   COG assembly rate on a synthetic 4096² 7-band tile store.
3. **Projection** — Africa at 250 m (30,000 × 30,000 px, about 900 M px; ``--valid-share`` of them land) with 512 px
   tiles: ``tiles × (pixels per tile / per-worker rate + overhead per tile) / N`` plus the serial assembly of the
   whole grid at the measured rate (Amdahl). The per-pixel rate is Vindum's run (285 labelled nodes, 19 covariates);
   a query's cost depends on members, relations and neighbours, not on the number of labelled nodes, so the
   projection carries that assumption and says so.

    OMP_NUM_THREADS=1 python scripts/benchmark_scaleout.py            # about 5 minutes on 2 cores

Writes ``benchmarks/results/scaleout.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _warm(shared, item):
    import importlib

    importlib.import_module("sptgnn.train.ensemble")  # the import a member task pays once per worker

    time.sleep(0.5)  # hold the CPU so that every worker of the instance gets one
    return os.getpid()


def _noop(shared, item):
    return item


def assembly_rate(size: int = 4096, window: int = 512) -> dict:
    """Grid pixels per second of the serial COG assembly (:meth:`TileStore.write_cog`) of a ``size``² 7-band map from
    a store of smooth, noisy float32 tiles (a map's texture; constant tiles would compress unrealistically well)."""
    from rasterio.transform import from_origin

    from sptgnn.geo import grid_windows
    from sptgnn.predict.tiles import TileStore

    rng, names = np.random.default_rng(0), ["mean", "sd", "aleatoric_sd", "epistemic_sd", "q05", "q95", "aoa"]
    with tempfile.TemporaryDirectory() as tmp:
        store, wins = TileStore(Path(tmp) / "store", {"benchmark": size}), list(grid_windows(size, size, window))
        for k, win in enumerate(wins):
            c, r, w, h = win.col_off, win.row_off, win.width, win.height
            rows, cols = np.mgrid[r:r + h, c:c + w]
            block = np.stack([np.sin(rows / 300 + b) + np.cos(cols / 200) + rng.normal(0, 0.01, (h, w))
                              for b in range(len(names))]).astype(np.float32)
            store.add(k, block, h * w, {})
        start = time.perf_counter()
        store.write_cog(Path(tmp) / "map.tif", wins, {"crs": "EPSG:32633", "transform": from_origin(0, 0, 10, 10),
                                                      "width": size, "height": size}, names, [""] * 7, {})
        seconds = time.perf_counter() - start
    return {"grid": [size, size], "seconds": round(seconds, 2), "grid_pixels_per_second": round(size * size / seconds)}


def _ray(num_cpus: int):
    from sptgnn.parallel.ray_executor import RayExecutor

    start = time.perf_counter()
    ex = RayExecutor(num_cpus=num_cpus)
    pids = ex.map(_warm, range(num_cpus))
    return ex, {"cpus": num_cpus, "start_seconds": round(time.perf_counter() - start, 2), "workers": len(set(pids))}


def _max_rss_mb(shared, item) -> tuple[int, float]:
    import resource

    time.sleep(1.0)  # hold the CPU so that each worker answers once
    return os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_part(sizes: list[int], window: int, out: Path) -> None:
    """Peak resident memory of each Ray worker (2 CPUs, a fresh instance per size) and of the driver while mapping
    synthetic stacks of ``sizes`` px a side (scripts/benchmark_predict.py's stack and 2-member run)."""
    import subprocess

    from benchmark_predict import train_run, write_stack

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in sizes:
            write_stack(tmp / f"stack_{size}.tif", size)
        train_run(tmp / f"stack_{sizes[0]}.tif", tmp / "run", members=2, epochs=5)
        for size in sizes:  # a fresh driver process (and Ray instance) per size: their peaks are that map's
            cmd = [sys.executable, __file__, "--part", "memory-one", str(tmp / "run"), str(tmp / f"stack_{size}.tif"),
                   str(tmp / f"map_{size}.tif"), str(window)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
            if proc.returncode:
                raise SystemExit(proc.stderr[-2000:])
            row = {"size": size, "window": window} | json.loads(proc.stdout.strip().splitlines()[-1])
            print(row, flush=True)
            rows.append(row)
    result = json.loads(out.read_text()) if out.exists() else {}
    result["memory"] = {"command": "OMP_NUM_THREADS=1 python scripts/benchmark_scaleout.py --part memory",
                        "ray_cpus": 2, "rows": rows}
    out.write_text(json.dumps(result, indent=2))


def memory_one(run: str, stack: str, out: str, window: int) -> None:
    """One map on a fresh Ray instance of 2 CPUs; prints its pixels, seconds and the peak RSS of workers and driver."""
    import resource

    from sptgnn.estimator.run import load_run
    from sptgnn.parallel import use_executor
    from sptgnn.predict.raster import predict_raster

    ex, _ = _ray(2)
    with ex, use_executor(ex):
        s = predict_raster(load_run(run), [stack], out, window=window, quicklook=False)
        workers = dict(ex.map(_max_rss_mb, range(4)))
    print(json.dumps({"pixels": s["valid_pixels"], "seconds": round(s["seconds"], 1),
                      "worker_peak_rss_mb": sorted(round(v) for v in workers.values()),
                      "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "vindum.yaml"))
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--calibration", default="variance", help="calibration.method (a twin per member and part)")
    ap.add_argument("--window", type=int, default=64, help="map tile size (px) on the Vindum grid")
    ap.add_argument("--valid-share", type=float, default=0.75, help="share of Africa's 250 m grid on land")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scaleout.json"))
    ap.add_argument("--part", choices=["speed", "memory", "memory-one"], default="speed",
                    help="speed: overheads, speed-up, projection; memory: worker peak RSS for --sizes (kept beside)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 1500], help="memory part: stack sizes (px a side)")
    if sys.argv[1:3] == ["--part", "memory-one"]:
        return memory_one(sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
    args = ap.parse_args()
    if args.part == "memory":
        return memory_part(args.sizes, 256, Path(args.out))

    import torch

    from sptgnn.config import load_config
    from sptgnn.geo.sources import expand_paths
    from sptgnn.data.tables import load_samples
    from sptgnn.estimator.run import fit_run, load_run
    from sptgnn.parallel import LocalExecutor, use_executor
    from sptgnn.predict.raster import predict_raster
    from sptgnn.threads import apply_threads

    apply_threads({"threads": 1, "source": "benchmark"})  # one thread per task, as on every worker
    cfg = load_config(args.config, {"train": {"members": args.members}, "calibration": {"method": args.calibration}})
    samples = load_samples(cfg.data)
    rasters = [p for r in cfg.data.rasters for p in expand_paths(r.path)]
    tasks = args.members * (1 + int(cfg.train.refit) + (cfg.calibration.folds if cfg.calibration.method != "none" else 0))
    result = {"host": platform.node(), "cpu_count": os.cpu_count(), "load_average_before": os.getloadavg(),
              "dataset": samples.name, "samples": len(samples), "members": args.members, "member_tasks": tasks,
              "window": args.window, "command": "OMP_NUM_THREADS=1 python scripts/benchmark_scaleout.py"}
    runs, maps = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in ("local", "ray_1", "ray_2"):
            ex, info = (LocalExecutor(), {"cpus": 1}) if name == "local" else _ray(int(name[-1]))
            with ex, use_executor(ex):
                start = time.perf_counter()
                run = fit_run(cfg, samples, aoa=True)
                info["fit_seconds"] = round(time.perf_counter() - start, 2)
                start = time.perf_counter()
                ex.map(_noop, range(200))
                info["noop_task_seconds"] = round((time.perf_counter() - start) / 200, 5)
                run.save(tmp / f"run_{name}")
                s = predict_raster(load_run(tmp / "run_local"), rasters, tmp / f"{name}.tif", window=args.window,
                                   quicklook=False)
                info |= {"map_seconds": round(s["seconds"], 2), "tile_seconds": round(s["tile_seconds"], 2),
                         "assembly_seconds": round(s["assembly_seconds"], 2), "tiles": s["tiles"],
                         "valid_pixels": s["valid_pixels"], "shape": s["shape"]}
            runs[name], maps[name] = run, tmp / f"{name}.tif"
            result[name] = info
            print(name, info, flush=True)
        import rasterio

        ref = rasterio.open(maps["local"]).read()
        result["maps_equal"] = all(np.array_equal(ref, rasterio.open(maps[n]).read()) for n in ("ray_1", "ray_2"))
    result["members_equal"] = all(
        all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
        for n in ("ray_1", "ray_2") for a, b in zip(runs["local"].ensemble.members, runs[n].ensemble.members))
    loc, r1, r2 = result["local"], result["ray_1"], result["ray_2"]
    px, tiles = loc["valid_pixels"], loc["tiles"]
    result["training"] = {
        "overhead_per_member_task_seconds": round((r1["fit_seconds"] - loc["fit_seconds"]) / tasks, 3),
        "ray_noop_task_seconds": r1["noop_task_seconds"],
        "speedup_2_over_1_workers": round(r1["fit_seconds"] / r2["fit_seconds"], 2)}
    per_tile = (r1["tile_seconds"] - loc["tile_seconds"]) / tiles
    rate = px / loc["tile_seconds"]  # pixels per second of one worker, tile phase
    result["assembly"] = assembly_rate()
    rate_cog = result["assembly"]["grid_pixels_per_second"]  # serial, on the driver
    result["map"] = {
        "pixels_per_second_one_worker": round(rate), "overhead_per_tile_seconds": round(per_tile, 4),
        "seconds_per_tile": round(loc["tile_seconds"] / tiles, 4),
        "speedup_2_over_1_workers_tiles": round(r1["tile_seconds"] / r2["tile_seconds"], 2),
        "speedup_2_over_1_workers_map": round(r1["map_seconds"] / r2["map_seconds"], 2),
        "ray_noop_task_seconds": r1["noop_task_seconds"]}
    grid, tile_px = 30_000 * 30_000, 512 * 512
    n_tiles = int(np.ceil(30_000 / 512)) ** 2
    valid = args.valid_share * grid
    per_tile_s = valid / n_tiles / rate + max(per_tile, r1["noop_task_seconds"])
    result["projection_africa_250m"] = {
        "grid_pixels": grid, "valid_pixels": valid, "tiles_512": n_tiles, "assumptions": (
            f"per-pixel cost of the Vindum run ({args.members} members, 3 relations, 19 covariates); workers as fast "
            "as this machine's cores; one task per worker CPU; per-tile overhead the larger of the measured "
            "difference and a no-op Ray task; serial COG assembly on the driver at the rate measured on a 4096² map"),
        "wall_hours": {str(n): round((n_tiles * per_tile_s / n + grid / rate_cog) / 3600, 2) for n in (1, 10, 100)},
        "assembly_hours": round(grid / rate_cog / 3600, 2), "tile_pixels": tile_px}
    result["load_average_after"] = os.getloadavg()
    if Path(args.out).exists():  # keep the memory part of an earlier run
        result |= {k: v for k, v in json.loads(Path(args.out).read_text()).items() if k == "memory"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("training", "map", "projection_africa_250m", "members_equal",
                                             "maps_equal")}, indent=2))


if __name__ == "__main__":
    main()
