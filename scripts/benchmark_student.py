"""The fast student against its ensemble: what it keeps (R², CRPS, PICP90 on the same test folds) and how much faster
it maps (px/s of ``Run.predict_arrays``, the map path, side by side in one process).

    OMP_NUM_THREADS=1 python scripts/benchmark_student.py configs/limesoda_small.yaml --members 5 \
        --out benchmarks/results/student_bb250.json

1. Cross-validation on the config's folds with ``student.enabled``: the ensemble is ``sptgnn``, its student
   ``sptgnn_student`` (same fit, same folds, same scoring code).
2. Speed: the ensemble fitted on every sample maps ``--pixels`` query points (covariates of the samples drawn with
   replacement, coordinates uniform over their bounding box), ensemble and student alternately, ``--repeats`` times;
   the median px/s of each and their ratio; and the same for the networks alone (``predictor.predict_inputs`` on
   query inputs built once, so without the covariate trend's forest and kriging, which both paths share, and without
   the map bands' quantiles and AOA). Results are written after each step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np

from sptgnn import SpTGNNRegressor, load_config
from sptgnn.data.tables import load_samples
from sptgnn.evaluate.crossval import config_folds, cross_validate
from sptgnn.evaluate.runfolder import finite_json

KEEP = ("r2", "rmse", "crps", "picp90", "calibration_error", "fit_seconds", "predict_seconds")


def _write(out: Path, result: dict) -> None:
    clean, _ = finite_json(result)
    out.write_text(json.dumps(clean, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--pixels", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-cv", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    cfg = load_config(args.config).updated(student={"enabled": True}, train={"members": args.members},
                                           evaluate={"baselines": []})
    samples = load_samples(cfg.data)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result: dict = {"config": str(args.config), "dataset": cfg.data.dataset, "members": args.members, "commit": commit,
                    "student": cfg.student.model_dump()}
    start = time.perf_counter()
    if not args.skip_cv:
        res = cross_validate({"sptgnn": SpTGNNRegressor.from_config(cfg, area_of_applicability=False)}, samples,
                             config_folds(samples, cfg), cfg.data.target,
                             lambda msg: print(f"[{time.perf_counter() - start:6.0f} s] {msg}", flush=True),
                             cfg.evaluate.moran_k, cfg.evaluate.moran_permutations)
        cv = {k: {m: v.get(m) for m in KEEP} for k, v in res.metrics.items()}
        ens, stu = cv["sptgnn"], cv["sptgnn_student"]
        cv["student_keeps"] = {"r2_share": stu["r2"] / ens["r2"], "crps_ratio": stu["crps"] / ens["crps"],
                               "picp90_difference": stu["picp90"] - ens["picp90"]}
        result["cross_validation"] = cv
        _write(args.out, result)
    est = SpTGNNRegressor.from_config(cfg).fit(samples)
    run = est.run_
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(samples), args.pixels)
    xy = samples.xy()
    query_xy = np.c_[rng.uniform(xy[:, 0].min(), xy[:, 0].max(), args.pixels),
                     rng.uniform(xy[:, 1].min(), xy[:, 1].max(), args.pixels)]
    values = {c: samples.frame[c].to_numpy(dtype=np.float64)[rows] for c in run.needed}
    run.predict_arrays({c: v[:100] for c, v in values.items()}, query_xy[:100])  # build the caches once
    run.predict_arrays({c: v[:100] for c, v in values.items()}, query_xy[:100], student=True)
    q = run.predictor.array_inputs(values, query_xy, None, run.elevation)
    seconds: dict[str, list[float]] = {"ensemble": [], "student": [], "ensemble_network": [], "student_network": []}
    for _ in range(args.repeats):
        for name, student in (("ensemble", False), ("student", True)):
            t = time.perf_counter()
            run.predict_arrays(values, query_xy, student=student)
            seconds[name].append(time.perf_counter() - t)
            t = time.perf_counter()
            run.predictor.predict_inputs(q, student=student)
            seconds[f"{name}_network"].append(time.perf_counter() - t)
    px = {k: args.pixels / float(np.median(v)) for k, v in seconds.items()}
    result["speed"] = {"pixels": args.pixels, "seconds": seconds, "px_per_s": px,
                       "student_speedup_map": px["student"] / px["ensemble"],
                       "student_speedup_network": px["student_network"] / px["ensemble_network"],
                       "trend": "none" if run.ensemble.trend is None else run.ensemble.trend.kind}
    _write(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
