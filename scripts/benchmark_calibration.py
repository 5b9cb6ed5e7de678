"""Calibrated vs uncalibrated SpTGNN on the same fits (issue 27): ``calibration.method: auto`` on the shipped configs.

Each case cross-validates the SpTGNN ensemble alone (no baselines: the comparison is between two forecasts of the
same members) and scores both rows that every evaluation writes: ``sptgnn`` (calibrated by ``auto``) and
``sptgnn_uncalibrated`` (the raw mixture of the same members). Results are appended case by case, so an interrupted
run keeps what it finished.

    OMP_NUM_THREADS=1 python scripts/benchmark_calibration.py [--cases bb250,edgeroi_blocks,...]
        → benchmarks/results/calibration_auto.json and .md, evaluation folders under benchmarks/results/calibration_auto/

The check (issue 27): calibration error never higher than uncalibrated, CRPS at most 1 % higher, mean unchanged
(largest |mean difference| over the out-of-fold predictions); BB.250: calibration error ≤ 0.025, PICP90 in 0.88–0.92.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sptgnn.config import load_config
from sptgnn.evaluate.runfolder import evaluate_dataset

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "bb250": (ROOT / "sptgnn" / "configs" / "limesoda_bb250.yaml", {}),
    "bb250_folds5": (ROOT / "sptgnn" / "configs" / "limesoda_bb250.yaml", {"calibration": {"folds": 5}}),
    "edgeroi_blocks": (ROOT / "configs" / "edgeroi.yaml", {}),
    "edgeroi_knndm": (ROOT / "configs" / "edgeroi.yaml",
                      {"evaluate": {"split": "knndm", "knndm": {"domain": "edgeroi/edgeroi_covariates_250m.tif"}}}),
    "meuse": (ROOT / "configs" / "meuse.yaml", {}),
    "africa_blocks100km": (ROOT / "configs" / "afsp_africa_blocks100km.yaml", {}),
}
KEYS = ("r2", "me", "ccc", "crps", "nll", "calibration_error", "picp50", "picp90", "picp95", "mpiw90")


def compare(folder: Path, metrics: dict) -> dict:
    """The two rows of one evaluation and the largest mean difference between them (g/kg)."""
    pred = pd.read_csv(folder / "predictions.csv")  # before shrink() gzips it
    cal = pred[pred.model == "sptgnn"].set_index(["fold", "sample_id"])["mean"]
    raw = pred[pred.model == "sptgnn_uncalibrated"].set_index(["fold", "sample_id"])["mean"]
    models = metrics["models"]
    rows = {name: {k: models[name].get(k) for k in KEYS} for name in ("sptgnn", "sptgnn_uncalibrated") if name in models}
    chosen = [c.get("calibration") for c in models["sptgnn"].get("choices_per_fold", {}).values()]
    out = {"rows": rows, "calibration_per_fold": chosen, "n_samples": metrics["n_samples"], "split": metrics["split"]}
    if "sptgnn_uncalibrated" in rows:
        c, u = rows["sptgnn"], rows["sptgnn_uncalibrated"]
        out["max_abs_mean_difference"] = float(np.abs(cal - raw.loc[cal.index]).max())
        out["calibration_error_not_higher"] = c["calibration_error"] <= u["calibration_error"] + 1e-12
        out["crps_ratio"] = c["crps"] / u["crps"]
    return out


def shrink(folder: Path) -> None:
    """Keep the evaluation folder small enough to commit: predictions.csv gzipped, the MoE gates dropped."""
    import gzip

    (folder / "gates.csv").unlink(missing_ok=True)
    csv = folder / "predictions.csv"
    if csv.exists():
        with open(csv, "rb") as src, gzip.open(folder / "predictions.csv.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        csv.unlink()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "calibration_auto.json"))
    args = ap.parse_args()
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    for case in args.cases.split(","):
        path, overrides = CASES[case]
        cfg = load_config(path, {"evaluate": {"baselines": []}} | overrides if not overrides.get("evaluate") else
                          overrides | {"evaluate": overrides["evaluate"] | {"baselines": []}})
        folder = out.with_suffix("") / case
        if folder.exists():
            shutil.rmtree(folder)
        start, load0 = time.perf_counter(), os.getloadavg()
        _, metrics, _ = evaluate_dataset(cfg, folder)
        results[case] = compare(folder, metrics) | {
            "config": str(path.relative_to(ROOT)), "overrides": overrides, "wall_seconds": round(time.perf_counter() - start, 1),
            "load_average": [round(x, 2) for x in load0]}
        out.write_text(json.dumps(results, indent=2))
        shrink(folder)
        print(case, json.dumps(results[case]["rows"]), flush=True)
    lines = ["| case | forecast | " + " | ".join(KEYS) + " | calibration per fold |", "|---|---|" + "---:|" * len(KEYS) + "---|"]
    for case, r in results.items():
        for name, row in r["rows"].items():
            cells = ["—" if row[k] is None else f"{row[k]:.3f}" for k in KEYS]
            per_fold = ", ".join(str(c) for c in r["calibration_per_fold"]) if name == "sptgnn" else ""
            lines.append(f"| {case} | {name} | " + " | ".join(cells) + f" | {per_fold} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
