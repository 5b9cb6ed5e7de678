"""Do the models of one evaluation make the same errors? Pooled R² log of each model, the correlation of their log
residuals, and the best convex blend of two models' log predictions, from a run's ``predictions.csv``.

A blend weight chosen on the test predictions is an optimistic upper reach of what averaging the two could give, not a
result: it says whether the models' errors leave room for a combination at all (issue 14: on Africa's 100 km blocks
SpTGNN's and XGBoost's log residuals correlate at 0.94).

Usage:
    python scripts/model_agreement.py runs/africa-pretrained/predictions.csv --pair sptgnn xgboost \
        --out benchmarks/results/model_agreement_africa_blocks.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score


def agreement(predictions: pd.DataFrame, pair: tuple[str, str]) -> dict:
    """Scores of a long ``predictions.csv`` frame (``sample_id, model, y_true, mean_log``), log1p space."""
    wide = predictions.pivot_table(index="sample_id", columns="model", values="mean_log", aggfunc="first").dropna()
    y = np.log1p(predictions.groupby("sample_id")["y_true"].first().loc[wide.index].to_numpy())
    models = [m for m in wide.columns if not m.endswith("_uncalibrated")]
    residual = {m: y - wide[m].to_numpy() for m in models}
    a, b = (wide[m].to_numpy() for m in pair)
    weights = np.linspace(0, 1, 21)
    blend = [r2_score(y, w * a + (1 - w) * b) for w in weights]
    best = int(np.argmax(blend))
    return {
        "n_samples": len(y),
        "r2_log": {m: round(float(r2_score(y, wide[m])), 4) for m in models},
        "residual_correlation": {f"{p}|{q}": round(float(np.corrcoef(residual[p], residual[q])[0, 1]), 3)
                                 for i, p in enumerate(models) for q in models[i + 1:]},
        "blend": {"models": list(pair), "best_weight_of_first": round(float(weights[best]), 2),
                  "r2_log": round(float(blend[best]), 4),
                  "note": "weight chosen on the test predictions: an upper reach, not a result"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions", type=Path)
    parser.add_argument("--pair", nargs=2, default=["sptgnn", "xgboost"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    frame = pd.read_csv(args.predictions)
    missing = [m for m in args.pair if m not in set(frame["model"])]
    if missing:
        raise SystemExit(f"{args.predictions} has no predictions of {missing}; it has {sorted(set(frame['model']))}")
    result = {"predictions": str(args.predictions), **agreement(frame, tuple(args.pair))}
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
