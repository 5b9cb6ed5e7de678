"""Cross-validate only some baselines of a config, on its folds and scored by the same code as `sptgnn evaluate`.

For re-measuring baselines after a change to them without retraining SpTGNN, e.g. the kriging baselines of the Africa
runs after kriging started to merge samples that share a location:

    OMP_NUM_THREADS=1 python scripts/baselines_only.py configs/afsp_africa_blocks100km.yaml \
        --models regression_kriging,kpr_random_forest --out benchmarks/results/afsp_africa_blocks100km_kriging.json

Writes ``{"config", "commit", "models": {name: pooled metrics}}`` (the ``metrics.json`` entries of those models).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from sptgnn import load_config
from sptgnn.data.tables import load_samples
from sptgnn.evaluate.crossval import config_folds, cross_validate, make_baseline
from sptgnn.evaluate.runfolder import finite_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--models", required=True, help="comma-separated baseline names of evaluate.baselines")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    cfg = load_config(args.config)
    samples = load_samples(cfg.data)
    models = {name: make_baseline(name, cfg) for name in args.models.split(",")}
    start = time.perf_counter()
    res = cross_validate(models, samples, config_folds(samples, cfg), cfg.data.target,
                         lambda msg: print(f"[{time.perf_counter() - start:6.0f} s] {msg}", flush=True),
                         cfg.evaluate.moran_k, cfg.evaluate.moran_permutations)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    clean, _ = finite_json({"config": str(args.config), "commit": commit, "models": res.metrics})
    args.out.write_text(json.dumps(clean, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
