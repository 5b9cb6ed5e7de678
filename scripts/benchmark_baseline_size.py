"""Size of the ``xgboost_quantile`` baseline: CPU seconds and scores of its cross-validation at several (rounds,
learning rate) on LimeSoDa datasets, on the datasets' shipped folds and scored by the same code as `sptgnn evaluate`
(issue 18, item 6).

    OMP_NUM_THREADS=1 python scripts/benchmark_baseline_size.py --out benchmarks/results/baseline_size.json

Writes ``{"rows": [{dataset, rounds, learning_rate, cpu_s, r2, crps, picp90}]}``, after each row.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import sptgnn.models.baselines as baselines
from sptgnn import load_config
from sptgnn.data.tables import load_samples
from sptgnn.evaluate.crossval import config_folds, cross_validate
from sptgnn.threads import apply_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["BB.250", "SC.50", "G.150", "B.204"])
    parser.add_argument("--sizes", nargs="+", default=["500:0.05", "200:0.1", "100:0.2"], help="rounds:learning_rate")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    apply_threads({"threads": 1, "source": "benchmark"})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result: dict = {"commit": commit, "threads": 1, "rows": []}
    for name in args.datasets:
        cfg = load_config(overrides={"data": {"dataset": f"limesoda:{name}"}})
        samples = load_samples(cfg.data)
        folds = config_folds(samples, cfg)
        for size in args.sizes:
            rounds, lr = size.split(":")
            baselines.XGB_QUANTILE_ROUNDS, baselines.XGB_QUANTILE_LR = int(rounds), float(lr)
            start = time.process_time()
            res = cross_validate({"xgboost_quantile": baselines.QuantileBaseline("xgboost_quantile")}, samples, folds,
                                 cfg.data.target, None, cfg.evaluate.moran_k, 0)
            m = res.metrics["xgboost_quantile"]
            result["rows"].append({"dataset": name, "rounds": int(rounds), "learning_rate": float(lr),
                                   "cpu_s": round(time.process_time() - start, 1),
                                   **{k: round(float(m[k]), 4) for k in ("r2", "crps", "picp90")}})
            args.out.write_text(json.dumps(result, indent=2))
            print(result["rows"][-1], flush=True)


if __name__ == "__main__":
    main()
