"""Masked spatio-temporal pre-training on the Slovenia Sentinel-2 NDVI series against harmonic regression (issue 14).

The 100 x 101 px, 68-date NDVI stack with its cloud mask (``../shared/data/eolearn-s2-slovenia``) is split once, by
a seed, into visible entries and held-out clear entries. The held-out entries are cloud-like: whole patches (a pixel and
its 24 nearest pixels, 5 x 5) at single dates, plus scattered single entries. They stay hidden in every pre-training
epoch and are never scored there. Then:

* the pre-trained pixel series encoder (:mod:`sptgnn.pretrain.series`) reconstructs them from the visible entries;
* harmonic regression per pixel (constant, linear trend, 1-3 annual harmonics; CCDC-style) is fitted on the same
  visible entries and evaluated at the held-out dates;
* the pixel's mean of visible values is the no-skill reference.

Reported: RMSE of NDVI on held-out entries for each, pre-training time, and whether two runs with one seed give the
same embeddings.

    OMP_NUM_THREADS=1 python scripts/benchmark_series_pretrain.py

Writes ``benchmarks/results/series_pretrain_slovenia.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--held-out-patches", type=float, default=0.10, help="share of entries in held-out patches")
    args = ap.parse_args()

    from sptgnn.geo.paths import data_dir
    from sptgnn.pretrain.series import (PixelSeries, embeddings, harmonic_fill, pretrain_series, reconstruct,
                                        spatiotemporal_mask)

    folder = data_dir() / "eolearn-s2-slovenia"
    series = PixelSeries.from_rasters(folder / "s2_ndvi_timeseries_68dates.tif",
                                      folder / "s2_cloudmask_timeseries_68dates.tif")
    rng = np.random.default_rng(args.seed + 100)
    patch_nbrs = cKDTree(series.xy).query(series.xy, k=25)[1][:, 1:]
    held = spatiotemporal_mask(patch_nbrs, len(series.dates), 0.02, args.held_out_patches, 1, rng) & series.clear
    visible = series.clear & ~held
    start = time.perf_counter()
    result = pretrain_series(series, held, epochs=args.epochs, seed=args.seed)
    seconds = time.perf_counter() - start
    rec = reconstruct(result, series, visible)

    def rmse(pred):
        return float(np.sqrt(((pred - series.values)[held] ** 2).mean()))

    scores = {"pretrained_series_encoder": rmse(rec)}
    for h in (1, 2, 3):
        scores[f"harmonic_regression_h{h}_trend"] = rmse(harmonic_fill(series, visible, h, trend=True))
    w = visible.astype(float)
    scores["pixel_mean"] = rmse(np.repeat(((series.values * w).sum(1) / np.maximum(w.sum(1), 1))[:, None],
                                          len(series.dates), 1))
    # embeddings deterministic for a seed: a second run from scratch
    again = pretrain_series(series, held, epochs=2, seed=args.seed)
    first = pretrain_series(series, held, epochs=2, seed=args.seed)
    e1, e2 = embeddings(first, series, visible), embeddings(again, series, visible)
    best_harmonic = min(v for k, v in scores.items() if k.startswith("harmonic"))
    out = {"pixels": int(series.values.shape[0]), "dates": int(len(series.dates)),
           "clear_share": float(series.clear.mean()), "held_out_entries": int(held.sum()),
           "rmse_ndvi_held_out": scores, "ratio_to_best_harmonic": scores["pretrained_series_encoder"] / best_harmonic,
           "epochs": args.epochs, "pretrain_seconds": round(seconds, 1), "threads": torch.get_num_threads(),
           "embeddings_equal_for_one_seed": bool(np.array_equal(e1, e2)), "history": result.history,
           "command": "OMP_NUM_THREADS=1 python scripts/benchmark_series_pretrain.py"}
    path = ROOT / "benchmarks" / "results" / "series_pretrain_slovenia.json"
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k != "history"}, indent=2))


if __name__ == "__main__":
    main()
