"""Pooled out-of-fold scores of the SpTGNN ensemble alone, for one config override: the driver behind the ablation
table of the main-job issue note. It is `cross_validate` with no baselines and no Moran permutations, at 1 torch
thread (``OMP_NUM_THREADS`` sets another), so two settings can run side by side on 2 cores.

Usage:
    .venv/bin/python scripts/cv_sweep.py limesoda:BB.250 "{train: {members: 5}, model: {label_inputs: true}}"
    .venv/bin/python scripts/cv_sweep.py configs/afsp_africa_random.yaml "{train: {members: 1}, model: {trend: random_forest}}"

The first argument is a dataset name (defaults plus the override) or a YAML config (the config plus the override).
Prints one line: the dataset, the override, pooled R², R² of log(1 + y), RMSE (target units), PICP90 and wall seconds.
"""

from __future__ import annotations

import os
import sys
import time

import torch
import yaml

from sptgnn.config import load_config
from sptgnn.data import load_dataset
from sptgnn.evaluate.crossval import cross_validate_config


def main() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))  # 1 unless asked: two sweeps share 2 cores
    source = sys.argv[1]
    text = sys.argv[2] if len(sys.argv) > 2 else "{}"
    override = yaml.safe_load(text) or {}
    override.setdefault("evaluate", {}).update(baselines=[], moran_permutations=0)
    if source.endswith((".yaml", ".yml")):
        cfg = load_config(source, override)
    else:
        override.setdefault("data", {})["dataset"] = source
        cfg = load_config(None, override)
    start = time.perf_counter()
    m = cross_validate_config(load_dataset(cfg.data.dataset), cfg).metrics["sptgnn"]
    print(f"{cfg.data.dataset} {text} R2 {m['r2']:.4f} R2_log {m.get('r2_log', float('nan')):.4f} rmse {m['rmse']:.3f} "
          f"picp90 {m['picp90']:.3f} time {time.perf_counter() - start:.0f}")


if __name__ == "__main__":
    main()
