"""Compare the post-hoc calibration methods on the same ensembles: one SpTGNN ensemble per shipped fold (trained once,
with its spatially held-out calibration part), then every method fitted on that part and scored on the test fold.

    OMP_NUM_THREADS=1 python scripts/calibration_compare.py [CONFIG] [--fraction 0.2] [--folds 5] [--out benchmarks/results/x.json]

Writes pooled out-of-fold metrics per method (``none`` = uncalibrated) as JSON, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sptgnn.config import load_config
from sptgnn.data.datasets import load_dataset
from sptgnn.splits import fold_ids
from sptgnn.scores.metrics import distribution_columns, score
from sptgnn.distributions.calibration import Calibrator
from sptgnn.train.ensemble import DeepEnsemble

DEFAULT = Path(__file__).resolve().parents[1] / "sptgnn" / "configs" / "limesoda_bb250.yaml"
KEYS = ("r2", "rmse", "nll", "crps", "calibration_error", "miscalibration_area", "picp50", "picp80", "picp90", "picp95",
        "mpiw90")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config", nargs="?", default=str(DEFAULT))
    ap.add_argument("--fraction", type=float, default=None, help="override calibration.fraction")
    ap.add_argument("--blocks", type=int, default=None, help="override calibration.blocks")
    ap.add_argument("--folds", type=int, default=None, help="override calibration.folds (cross-fitted calibration)")
    ap.add_argument("--members", type=int, default=None)
    ap.add_argument("--out", default="benchmarks/results/calibration_compare_bb250.json")
    args = ap.parse_args()
    cal = {"method": "isotonic"} | ({"fraction": args.fraction} if args.fraction else {}) | (
        {"blocks": args.blocks} if args.blocks else {}) | ({"folds": args.folds} if args.folds else {})
    cfg = load_config(args.config, {"calibration": cal} | ({"train": {"members": args.members}} if args.members else {}))
    samples = load_dataset(cfg.data.dataset)
    ev = cfg.evaluate
    folds = fold_ids(samples, ev.split, ev.n_folds, ev.block_size_km, ev.seed)
    methods = ("none", "variance", "isotonic", "isotonic_central", "conformal")
    rows = {m: [] for m in methods}
    start, load0 = time.perf_counter(), os.getloadavg()
    for fold in np.unique(folds):
        test_mask = folds == fold
        train, test = samples.subset(~test_mask), samples.subset(test_mask)
        y = test.target(cfg.data.target)
        ens = DeepEnsemble(cfg).fit(train)
        raw = ens.predict(test, calibrated=False)
        cal_pred, cal_y = ens.calibration_data
        for m in methods:
            pred = raw if m == "none" else Calibrator.fit(m, cal_pred, cal_y, cfg.calibration.min_samples).apply(raw)
            frame = pd.DataFrame({"y": y, "mean": pred.mean, **distribution_columns(y, pred)})
            rows[m].append(frame)
        print(f"fold {fold} done, {time.perf_counter() - start:.0f} s", flush=True)
    result = {}
    for m, frames in rows.items():
        f = pd.concat(frames, ignore_index=True)
        s = score(f["y"].to_numpy(), f["mean"].to_numpy(), None, columns=f)
        result[m] = {k: s[k] for k in KEYS}
    out = {"dataset": cfg.data.dataset, "members": cfg.train.members, "calibration_fraction": cfg.calibration.fraction,
           "calibration_blocks": cfg.calibration.blocks or cfg.train.val_blocks, "calibration_folds": cfg.calibration.folds,
           "seconds": round(time.perf_counter() - start, 1), "loadavg_start": load0, "loadavg_end": os.getloadavg(),
           "methods": result}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
