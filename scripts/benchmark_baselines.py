"""Baselines of a run config on its folds, without SpTGNN: for a learner too slow to sit in the config's main run
(e.g. TabM on Africa), scored by the same code on the same folds, so its row joins that run's table.

    OMP_NUM_THREADS=1 python scripts/benchmark_baselines.py configs/afsp_africa_random_fm.yaml --models tabm \\
        --out benchmarks/results/afsp_africa_random_tabm_metrics.json [--params '{"tabm_k": 8, "d_block": 256}']

Writes the pooled metrics (``metrics.json`` layout: ``models``, with per-fold scores), wall and CPU seconds; a
progress line per fitted fold.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sptgnn.config import load_config
from sptgnn.data.tables import load_samples
from sptgnn.evaluate.crossval import config_split, cross_validate, make_baseline, require_extras


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--models", required=True, help="comma-separated baseline names, e.g. tabm,realmlp")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--params", default=None, help='JSON settings of a deep tabular learner, e.g. \'{"tabm_k": 8}\'')
    args = ap.parse_args()
    names = args.models.split(",")
    config = load_config(args.config).updated(evaluate={"baselines": names})
    require_extras(config)
    samples = load_samples(config.data)
    folds, _ = config_split(samples, config)
    start, cpu = time.perf_counter(), time.process_time()
    models = {n: make_baseline(n, config) for n in names}
    if args.params:
        for model in models.values():
            model.set_params(params=json.loads(args.params))
    result = cross_validate(models, samples, folds, config.data.target,
                            progress=lambda msg: print(f"[{time.perf_counter() - start:7.0f} s] {msg}", flush=True),
                            moran_k=config.evaluate.moran_k, moran_permutations=config.evaluate.moran_permutations)
    out = {"config": str(args.config), "params": json.loads(args.params) if args.params else None,
           "dataset": config.data.dataset, "n_samples": len(samples),
           "n_folds": len(folds), "wall_seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
           "models": result.metrics}
    args.out.write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
