"""Compare two metrics.json files of `sptgnn evaluate` model by model (the check that a refactor left results unchanged).

Usage: python scripts/compare_metrics.py BEFORE/metrics.json AFTER/metrics.json [--out result.json]
Prints every score that differs by more than 1e-9 and the largest difference per model.
"""

import argparse
import json
from pathlib import Path

SCORES = ("r2", "rmse", "mae", "crps", "nll", "calibration_error", "picp90", "r2_log", "morans_i")

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    a, b = (json.loads(p.read_text())["models"] for p in (args.before, args.after))
    result = {}
    for model in a:
        diffs = {k: abs(a[model][k] - b[model][k]) for k in SCORES
                 if a[model].get(k) is not None and b.get(model, {}).get(k) is not None}
        result[model] = {"largest_difference": max(diffs.values(), default=0.0),
                         "before": {k: a[model].get(k) for k in SCORES}, "after": {k: b[model].get(k) for k in SCORES}}
        for k, d in diffs.items():
            if d > 1e-9:
                print(f"{model:22s} {k:18s} {a[model][k]:.10f} -> {b[model][k]:.10f} (diff {d:.1e})")
        print(f"{model:22s} largest difference {result[model]['largest_difference']:.1e}")
    if args.out:
        args.out.write_text(json.dumps({"before": str(args.before), "after": str(args.after), "models": result}, indent=2))
