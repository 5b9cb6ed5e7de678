"""kNNDM on real clustered samples (issue 15): do its folds match the prediction area's nearest-neighbour distances
better than random folds and 100 km spatial blocks? (Linnenbrink et al. 2024, Fig. 3-type check.)

Africa: a seeded subsample of the afsp-africa points (clustered along surveys and roads), the prediction area every
valid cell of the 20 km covariate grid (1,000 regular points), 5 folds. For each fold scheme the Wasserstein distance
W (km) between the test-to-training nearest-neighbour distances and the prediction-to-training ones, and the medians.

    OMP_NUM_THREADS=1 python scripts/benchmark_knndm.py

Writes ``benchmarks/results/knndm_africa.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(subsample: int = 3000, k: int = 5) -> None:
    from scipy.stats import wasserstein_distance

    from sptgnn.data.datasets import load_dataset
    from sptgnn.geo.paths import resolve_data_path
    from sptgnn.splits import block_folds, planar_coords
    from sptgnn.splits.domain import knndm_folds
    from sptgnn.splits.knndm import cv_distances

    samples = load_dataset("afsp-africa")
    keep = np.zeros(len(samples), bool)
    keep[np.random.default_rng(0).choice(len(samples), subsample, replace=False)] = True
    samples = samples.subset(keep)
    domain = resolve_data_path("afsp-africa/afgrid20_covariates_20km.tif")
    start = time.perf_counter()
    res = knndm_folds(samples, domain, k, samplesize=1000)
    seconds = time.perf_counter() - start
    xy = planar_coords(samples)
    rows = {"random": res.W_random, "knndm": res.W}
    blocks = block_folds(xy, 100_000.0, k, 0)
    rows["blocks_100km"] = wasserstein_distance(cv_distances(xy, blocks), res.Gij)
    result = {"dataset": "afsp-africa", "samples": subsample, "folds": k, "prediction_points": len(res.Gij),
              "W_km": {name: round(w / 1000, 2) for name, w in rows.items()},
              "median_nn_km": {"prediction_to_training": round(float(np.median(res.Gij)) / 1000, 2),
                               "training_to_training": round(float(np.median(res.Gj)) / 1000, 2),
                               "knndm_test_to_training": round(float(np.median(res.Gjstar)) / 1000, 2),
                               "blocks_100km_test_to_training":
                                   round(float(np.median(cv_distances(xy, blocks))) / 1000, 2)},
              "knndm_clusters": res.clusters, "knndm_fold_sizes": res.summary()["fold_sizes"],
              "knndm_seconds": round(seconds, 1), "command": "OMP_NUM_THREADS=1 python scripts/benchmark_knndm.py"}
    out = ROOT / "benchmarks" / "results" / "knndm_africa.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
