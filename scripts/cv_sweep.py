"""Pooled out-of-fold scores of the SpTGNN ensemble alone, for one config override: the driver behind the ablation
table of the main-job issue note. It is `cross_validate` with no baselines and no Moran permutations, at 1 torch
thread, so two settings can run side by side on 2 cores.

Usage:
    .venv/bin/python scripts/cv_sweep.py limesoda:BB.250 "{train: {members: 5}, model: {label_inputs: true}}"

Prints one line: the dataset, the override, pooled R², RMSE (target units), PICP90 and wall seconds.
"""

from __future__ import annotations

import sys
import time

import torch
import yaml

from sptgnn.config import load_config
from sptgnn.data import load_dataset
from sptgnn.evaluate import cross_validate


def main() -> None:
    torch.set_num_threads(1)
    dataset = sys.argv[1]
    text = sys.argv[2] if len(sys.argv) > 2 else "{}"
    override = yaml.safe_load(text) or {}
    override.setdefault("data", {})["dataset"] = dataset
    override.setdefault("evaluate", {}).update(baselines=[], moran_permutations=0)
    cfg = load_config(None, override)
    start = time.perf_counter()
    m = cross_validate(load_dataset(dataset), cfg).metrics["sptgnn"]
    print(f"{dataset} {text} R2 {m['r2']:.4f} rmse {m['rmse']:.3f} picp90 {m['picp90']:.3f} "
          f"time {time.perf_counter() - start:.0f}")


if __name__ == "__main__":
    main()
