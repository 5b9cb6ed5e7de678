"""Sampling noise of the interval calibration error: what a perfectly calibrated forecaster scores on ``n`` samples.

The calibration error (:func:`sptgnn.scores.metrics.calibration_scores`, mean absolute gap between nominal and observed
coverage of central intervals, Kuleshov et al. 2018) of a forecaster whose PIT values are exactly uniform is not 0 on a
finite test set: each observed coverage is a binomial proportion. This script draws ``n`` uniform PIT values many times
and reports the distribution of the calibration error, so a measured value can be read against it (e.g. BB.250 pools
250 test samples over its shipped folds).

    python scripts/calibration_noise_floor.py --n 250 21562 --observed 0.025

Writes ``benchmarks/results/calibration_noise_floor.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sptgnn.scores.metrics import calibration_scores  # noqa: E402


def noise_floor(n: int, draws: int, seed: int) -> np.ndarray:
    """Calibration errors of ``draws`` test sets of ``n`` uniform PIT values, ``(draws,)``."""
    rng = np.random.default_rng(seed)
    return np.array([calibration_scores(rng.uniform(size=n))[0] for _ in range(draws)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[250, 21562], help="Test-set sizes (pooled samples).")
    ap.add_argument("--draws", type=int, default=5000)
    ap.add_argument("--observed", type=float, nargs="*", default=[0.02, 0.025], help="Values to give tail probabilities of.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "calibration_noise_floor.json")
    args = ap.parse_args()
    report = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "draws": args.draws, "sizes": {}}
    for n in args.n:
        ce = noise_floor(n, args.draws, args.seed)
        row = {"mean": round(float(ce.mean()), 4), "median": round(float(np.median(ce)), 4),
               "q90": round(float(np.quantile(ce, 0.9)), 4), "q95": round(float(np.quantile(ce, 0.95)), 4),
               "p_at_least": {str(v): round(float((ce >= v).mean()), 3) for v in args.observed}}
        report["sizes"][str(n)] = row
        print(f"n={n}: calibration error of a calibrated forecaster mean {row['mean']}, 90 % quantile {row['q90']}; "
              f"P(CE >= v) {row['p_at_least']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
