"""Are intervals of block means calibrated? Spatially blocked CV of block means from correlated realisations (issue 15).

For every outer fold (whole spatial blocks held out), a run is trained on the other blocks with cross-fitted variance
calibration (``calibration.folds``), so that every training sample has an out-of-sample PIT value; the residual field
(:class:`sptgnn.accounting.residual_field.ResidualField`) is fitted on their normal scores and conditioned on them —
nothing of the test blocks is used. For every test block with at least ``--min-samples`` samples, ``--realisations``
realisations at its sample locations (point support) give the 90 % interval of the block mean, which is compared with
the observed mean of the block's samples. The naive interval from independent pixels (``mean ± 1.645 · sqrt(Σ sd²) /
n``) is scored beside. Target: realisation coverage across blocks 0.85–0.95.

    OMP_NUM_THREADS=1 python scripts/check_block_means.py --dataset limesoda:BB.250

Writes ``benchmarks/results/block_means_<dataset>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
Z90 = 1.6448536269514722


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="limesoda:BB.250")
    ap.add_argument("--config", default=str(ROOT / "sptgnn" / "configs" / "limesoda_bb250.yaml"))
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--folds", type=int, default=5, help="outer folds of whole blocks")
    ap.add_argument("--block-samples", type=float, default=5.0, help="block side chosen for this many samples a block")
    ap.add_argument("--block-km", type=float, default=None, help="block side in km instead (e.g. 100 for Africa)")
    ap.add_argument("--calibration-blocks", type=int, default=None,
                    help="calibration.blocks: k-means blocks the calibration parts are cut from (fewer: larger parts)")
    ap.add_argument("--tag", default="", help="suffix of the output file")
    ap.add_argument("--subsample", type=int, default=None, help="a seeded random subset of this many samples")
    ap.add_argument("--min-samples", type=int, default=3, help="blocks with fewer test samples are not scored")
    ap.add_argument("--realisations", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from sptgnn.accounting.realisations import soc_realisations
    from scipy.spatial.distance import cdist

    from sptgnn.accounting.aggregate import residual_field_from_calibration
    from sptgnn.accounting.residual_field import normal_scores
    from sptgnn.config import load_config
    from sptgnn.data.datasets import load_dataset
    from sptgnn.data.tables import load_samples
    from sptgnn.estimator.run import fit_run
    from sptgnn.predict.query import QueryInputs
    from sptgnn.splits import assign_blocks, block_ids, planar_coords

    cfg = load_config(args.config, {"data": {"dataset": args.dataset},
                                    "train": {"members": args.members},
                                    "calibration": {"method": "variance", "folds": 5,
                                                    "blocks": args.calibration_blocks}})
    # a config with data.table (e.g. configs/edgeroi.yaml) reads its table; --dataset then only names the output
    samples = load_samples(cfg.data) if cfg.data.table is not None else load_dataset(args.dataset)
    if args.subsample and args.subsample < len(samples):
        keep = np.zeros(len(samples), bool)
        keep[np.random.default_rng(args.seed).choice(len(samples), args.subsample, replace=False)] = True
        samples = samples.subset(keep)
    target = samples.targets[0]
    xy = planar_coords(samples)  # projected CRS: metres; LimeSoDa ships UTM
    span = xy.max(0) - xy.min(0)
    side = (args.block_km * 1000.0 if args.block_km else
            float(np.sqrt(span[0] * span[1] * args.block_samples / len(samples))))
    blocks = block_ids(xy, side)
    fold_of_block = assign_blocks(blocks, args.folds, args.seed)
    y = samples.target(target)
    seeds = args.seed * 1_000_003 + np.arange(args.realisations)
    rows, start = [], time.perf_counter()
    for f in np.unique(fold_of_block):
        test = fold_of_block == f
        train_s, test_s = samples.subset(~test), samples.subset(test)
        run = fit_run(cfg, train_s, aoa=False)
        ens = run.ensemble
        field = residual_field_from_calibration(ens, xy[~test])
        q = QueryInputs.from_samples(ens.builder, test_s, ens.trend)
        draws, pred = soc_realisations(run, q, xy[test], field, seeds, window_seed=int(f))
        tb, ty = blocks[test], y[test]
        z_test = normal_scores(pred.cdf(ty))  # point-level standardised errors at the test samples
        model = field._model()
        for b in np.unique(tb):
            inb = tb == b
            if inb.sum() < args.min_samples:
                continue
            means = draws[:, inb].mean(1)
            lo, hi = np.quantile(means, [0.05, 0.95])
            m, sd = pred.mean[inb].mean(), np.sqrt((pred.sd[inb] ** 2).sum()) / inb.sum()
            obs = float(ty[inb].mean())
            d = cdist(xy[test][inb], xy[test][inb])
            z_var_model = float((model.covariance(d) + model.nugget * (d == 0)).mean())  # unconditional var of mean z
            rows.append({"fold": int(f), "block": int(b), "n": int(inb.sum()), "observed": obs,
                         "low": float(lo), "high": float(hi), "naive_low": float(m - Z90 * sd),
                         "naive_high": float(m + Z90 * sd), "nugget": field.nugget, "len_scale_m": field.len_scale_m,
                         "z_mean": float(z_test[inb].mean()), "z_var_model": z_var_model,
                         "point_coverage": float(np.mean(np.abs(z_test[inb]) <= Z90))})
        (ROOT / "benchmarks" / "results" / "block_means_partial.json").write_text(json.dumps(rows))  # kept on a crash
        print(f"fold {f}: {len(rows)} blocks so far, field nugget {field.nugget:.2f}, range {field.len_scale_m:.0f} m, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    cover = np.mean([r["low"] <= r["observed"] <= r["high"] for r in rows])
    naive = np.mean([r["naive_low"] <= r["observed"] <= r["naive_high"] for r in rows])
    result = {"dataset": args.dataset, "target": target, "samples": len(samples), "block_side_m": side,
              "folds": args.folds, "members": args.members, "realisations": args.realisations,
              "blocks_scored": len(rows), "coverage_90_realisations": float(cover), "coverage_90_naive": float(naive),
              "mean_width_realisations": float(np.mean([r["high"] - r["low"] for r in rows])),
              "mean_width_naive": float(np.mean([r["naive_high"] - r["naive_low"] for r in rows])),
              "point_coverage_90": float(np.average([r["point_coverage"] for r in rows], weights=[r["n"] for r in rows])),
              "block_z_variance_ratio": float(np.mean([r["z_mean"] ** 2 for r in rows])
                                              / np.mean([r["z_var_model"] for r in rows])),
              "seconds": round(time.perf_counter() - start, 1),
              "command": f"OMP_NUM_THREADS=1 python scripts/check_block_means.py --dataset {args.dataset}",
              "blocks": rows}
    result["subsample"], result["calibration_blocks"] = args.subsample, args.calibration_blocks
    if args.subsample or args.block_km or cfg.data.table is not None:
        result["command"] += (f" --config {args.config}"
                              + (f" --subsample {args.subsample}" if args.subsample else "")
                              + (f" --block-km {args.block_km:g}" if args.block_km else "")
                              + (f" --calibration-blocks {args.calibration_blocks}" if args.calibration_blocks else "")
                              + (f" --tag {args.tag}" if args.tag else "")
                              + f" --members {args.members}")
    out = ROOT / "benchmarks" / "results" / f"block_means_{args.dataset.replace(':', '_')}{args.tag}.json"
    out.write_text(json.dumps(result, indent=2))
    (ROOT / "benchmarks" / "results" / "block_means_partial.json").unlink(missing_ok=True)
    print(json.dumps({k: v for k, v in result.items() if k != "blocks"}, indent=2))


if __name__ == "__main__":
    main()
