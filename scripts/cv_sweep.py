"""Pooled out-of-fold R² of the SpTGNN ensemble alone, for one config override: the driver behind the ablation table
of the main-job issue note (no baselines, 1 torch thread, so two settings can run side by side on 2 cores).

Usage:
    .venv/bin/python scripts/cv_sweep.py limesoda:BB.250 "{train: {members: 5}, model: {label_inputs: true}}"

Prints one line: the dataset, the override, pooled R², RMSE (target units), PICP90, wall seconds and the mean best epoch.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
import yaml

from sptgnn.config import load_config
from sptgnn.data import load_dataset
from sptgnn.evaluate.metrics import picp
from sptgnn.train import DeepEnsemble


def main() -> None:
    torch.set_num_threads(1)
    dataset = sys.argv[1]
    override = yaml.safe_load(sys.argv[2]) if len(sys.argv) > 2 else {}
    override.setdefault("data", {})["dataset"] = dataset
    cfg = load_config(None, override)
    samples = load_dataset(dataset)
    y = samples.target(cfg.data.target)
    mean, sd, epochs = np.zeros(len(samples)), np.zeros(len(samples)), []
    start = time.perf_counter()
    for fold in np.unique(samples.folds):
        test = samples.folds == fold
        ens = DeepEnsemble(cfg).fit(samples.subset(~test))
        pred = ens.predict(samples.subset(test))
        mean[test], sd[test] = pred.mean, pred.sd
        epochs += ens.best_epochs
    r2 = 1 - ((y - mean) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    rmse = float(np.sqrt(((y - mean) ** 2).mean()))
    print(f"{dataset} {sys.argv[2] if len(sys.argv) > 2 else ''} R2 {r2:.4f} rmse {rmse:.3f} "
          f"picp90 {picp(y, mean, sd):.3f} time {time.perf_counter() - start:.0f} epochs {int(np.mean(epochs))}")


if __name__ == "__main__":
    main()
