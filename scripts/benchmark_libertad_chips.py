"""La Libertad (Colombia) SOC 0-30 cm: point values vs random-convolution chips vs both, 5-fold spatial block CV.

Usage: python scripts/benchmark_libertad_chips.py [configs/libertad_chips.yaml] [--members M] [--split blocks|random]
       [--out benchmarks/results/libertad_chips.json]

The samples are read from data.table with the 17-band stack sampled at the points (data.rasters, the "point values");
CO30 (SOC, %) is converted to g/kg (x 10) as ``soc_g_kg``. Three variants differ only in the imagery stream:

- point values: ``imagery.encoder: columns`` (the 17 band values at each point);
- chips: ``imagery.encoder: random_conv``, MOSAIKS features of 9 x 9 chips of the stack, fitted per fold on the
  labelled chips only;
- both: the two concatenated (``keep_columns: true``).

SpTGNN runs through :func:`sptgnn.evaluate.crossval.cross_validate`; XGBoost and random forest are fitted on the same
folds with the variant's own imagery features (chip features computed per fold, encoder fitted on the training fold)
and scored by the same :func:`sptgnn.scores.metrics.score`. Writes a JSON with every metric and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd


from sptgnn.config import load_config  # noqa: E402
from sptgnn import splits  # noqa: E402
from sptgnn.data.samples import SoilSamples  # noqa: E402
from sptgnn.data.tables import load_table  # noqa: E402
from sptgnn.imagery.stream import ImageryStream  # noqa: E402
from sptgnn.models.baselines import TreeBaseline  # noqa: E402
from sptgnn.evaluate.crossval import cross_validate_config  # noqa: E402
from sptgnn.scores.metrics import score  # noqa: E402

VARIANTS = {
    "point values": {"encoder": "columns", "keep_columns": False},
    "chips (random conv)": {"encoder": "random_conv", "keep_columns": False},
    "both": {"encoder": "random_conv", "keep_columns": True},
}
BASELINES = ["xgboost", "random_forest"]


def load_libertad(cfg) -> SoilSamples:
    s = load_table(cfg.data.table, "CO30", cfg.data.rasters, name="la-libertad:0-30cm")
    frame = s.frame.copy()
    frame["soc_g_kg"] = frame["CO30"] * 10.0           # SOC % -> g/kg
    return SoilSamples(frame=frame, targets=["soc_g_kg"], feature_groups=s.feature_groups, elevation=None,
                       name=s.name, metadata={**s.metadata, "units": {"soc_g_kg": "g/kg"}})


def with_features(samples: SoilSamples, names: list[str], values: np.ndarray) -> SoilSamples:
    """The samples with ``values`` as their imagery columns (for the baselines)."""
    frame = samples.frame.copy()
    for j, n in enumerate(names):
        frame[n] = values[:, j]
    return SoilSamples(frame=frame, targets=list(samples.targets), feature_groups={"imagery": list(names), "environment": []},
                       name=samples.name)


def baseline_cv(samples: SoilSamples, cfg) -> dict:
    ev = cfg.evaluate
    rows = {b: [] for b in BASELINES + ["training mean"]}
    for fold in splits.make_folds(samples, ev.split, ev.n_folds, ev.block_size_km, ev.buffer_km, ev.seed):
        train, test = samples.subset(fold.train), samples.subset(fold.test)
        if cfg.imagery.encoder == "columns":
            tr, te = train, test
        else:
            stream = ImageryStream(cfg.imagery).fit(train)       # chip encoder fitted on the training fold only
            names = (list(train.feature_groups["imagery"]) if cfg.imagery.keep_columns else []) + stream.feature_names
            def feats(s):
                f = stream.features(s)
                return np.c_[s.stream("imagery"), f] if cfg.imagery.keep_columns else f
            tr, te = with_features(train, names, feats(train)), with_features(test, names, feats(test))
        for b in BASELINES:
            res = TreeBaseline(b, "soc_g_kg", seed=cfg.train.seed).fit(tr).predict_dist(te)
            rows[b].append(pd.DataFrame({"sample_id": test.sample_ids, "y": test.target("soc_g_kg"), "mean": res.mean,
                                         "sd": np.nan if res.sd is None else res.sd}))
        # null model: the training fold's mean and sd (what R² = 0 means under pooled out-of-fold scoring)
        y_tr = train.target("soc_g_kg")
        rows["training mean"].append(pd.DataFrame({"sample_id": test.sample_ids, "y": test.target("soc_g_kg"),
                                                   "mean": y_tr.mean(), "sd": y_tr.std(ddof=1)}))
    coords = dict(zip(samples.sample_ids, samples.metric_coords()))
    out = {}
    for b, parts in rows.items():
        p = pd.concat(parts)
        sd = p["sd"].to_numpy() if p["sd"].notna().all() else None
        out[b] = score(p["y"].to_numpy(), p["mean"].to_numpy(), sd, np.stack([coords[i] for i in p["sample_id"]]),
                       ev.moran_k, ev.moran_permutations)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default="configs/libertad_chips.yaml")
    ap.add_argument("--members", type=int, default=None)
    ap.add_argument("--split", choices=["blocks", "random"], default=None,
                    help="override evaluate.split (random K-fold is reported beside the spatial blocks, never instead)")
    ap.add_argument("--out", default="benchmarks/results/libertad_chips.json")
    args = ap.parse_args()
    overrides = {}
    if args.members:
        overrides["train"] = {"members": args.members}
    if args.split:
        overrides["evaluate"] = {"split": args.split}
    base = load_config(args.config, overrides or None)
    base.data.target = "soc_g_kg"
    samples = load_libertad(base)
    print(f"{len(samples)} samples, imagery columns {len(samples.feature_groups['imagery'])}, "
          f"SOC {samples.target().min():.1f}-{samples.target().max():.1f} g/kg", flush=True)
    results, start_all = {}, time.perf_counter()
    for name, over in VARIANTS.items():
        cfg = base.model_copy(deep=True)
        cfg.imagery = cfg.imagery.model_copy(update=over)
        t0 = time.perf_counter()
        cv = cross_validate_config(samples, cfg)
        results[name] = {"sptgnn": cv.metrics["sptgnn"], **baseline_cv(samples, cfg)}
        results[name]["seconds"] = round(time.perf_counter() - t0, 1)
        m = cv.metrics["sptgnn"]
        print(f"{name}: SpTGNN R2 {m['r2']:.3f} RMSE {m['rmse']:.2f}; "
              + ", ".join(f"{b} R2 {results[name][b]['r2']:.3f}" for b in BASELINES)
              + f" ({results[name]['seconds']} s)", flush=True)
    meta = {"dataset": "la-libertad-colombia libertad_soc_0_30cm.csv (118 points), libertad_covariates_30m.tif (17 bands, 30 m)",
            "target": "soc_g_kg = CO30 (%) x 10", "split": f"{base.evaluate.n_folds}-fold {base.evaluate.split}"
            + (f" ({base.evaluate.block_size_km} km blocks)" if base.evaluate.split == "blocks" else ""),
            "config": args.config, "members": base.train.members, "seconds_total": round(time.perf_counter() - start_all, 1),
            "loadavg_end": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=float))
    print("\n| imagery features | model | R² | RMSE (g/kg) | MAE (g/kg) | CRPS | PICP90 | Moran's I |")
    print("|---|---|---|---|---|---|---|---|")
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for name, res in results.items():
        for model in ["sptgnn"] + BASELINES + (["training mean"] if name == "point values" else []):
            m = res[model]
            print(f"| {name if model != 'training mean' else '(none)'} | {model} | {fmt(m['r2'])} | {fmt(m['rmse'])} | {fmt(m['mae'])} | {fmt(m.get('crps'))} | "
                  f"{fmt(m.get('picp90'))} | {fmt(m.get('morans_i'))} |")
    print(f"\nload average at the end: {os.getloadavg()}; wrote {args.out}")


if __name__ == "__main__":
    main()
