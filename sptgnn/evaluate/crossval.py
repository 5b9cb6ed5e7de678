"""Cross-validation: SpTGNN ensemble(s) and baselines trained on identical folds and features, scored by one function.

Folds come from ``evaluate.split`` (:mod:`sptgnn.splits`: shipped, random K-fold, spatial blocks, optional buffer).
Every model sees the same training and test samples of each fold and the same feature columns; the target transform
of ``data.target_transform`` applies to SpTGNN and the tree baselines alike. Scores are pooled over all out-of-fold
predictions (rule 5 of DESIGN.md) and also given per fold. ``r2_log`` is R² on ``log1p(SOC)``: for a model fitted in
``log1p`` space it scores that model's own log-space point prediction (for SpTGNN the members' mean of
``log1p``-space Gaussian means, recovered exactly from their lognormal moments), otherwise ``log1p`` of the predicted
mean (clipped at 0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from sptgnn.config import Config
from sptgnn import splits
from sptgnn.data.samples import SoilSamples
from sptgnn.evaluate.baselines import fit_predict_baseline, regression_kriging
from sptgnn.evaluate.metrics import _mape, distribution_columns, score
from sptgnn.estimator.run import Run
from sptgnn.train.ensemble import DeepEnsemble

PREDICTION_COLUMNS = ["sample_id", "fold", "model", "y_true", "mean", "sd", "mean_log"]


@dataclass
class CrossValidationResult:
    """Out-of-fold predictions and pooled metrics of every model.

    Attributes:
        predictions: One row per sample and model: ``sample_id, fold, model, y_true, mean, sd, mean_log`` (target
            units; ``sd`` NaN for point forecasts; ``mean_log`` the ``log1p``-space point prediction), plus ``x, y``
            (planar metres, :func:`sptgnn.splits.planar_coords`), for SpTGNN models ``aleatoric_sd`` and
            ``epistemic_sd``, and for models with a distribution object (SpTGNN's mixture, quantile baselines) the
            per-sample ``pit``, ``crps``, ``nll`` and ``lowerXX``/``upperXX`` columns of
            :func:`sptgnn.evaluate.metrics.distribution_columns`. Model ``sptgnn`` is calibrated
            (``calibration.method``); ``sptgnn_uncalibrated`` (only when a calibration method is set) is the same
            ensemble without the calibrator.
        metrics: ``{model: {metric: value}}`` from :func:`sptgnn.evaluate.metrics.score`, plus ``r2_log``,
            ``fit_seconds``, ``predict_seconds`` and ``per_fold`` (``{fold: {n, r2, rmse, mae, mape, r2_log}}``).
        folds: One dict per fold: ``fold, n_train, n_test, n_excluded`` (buffer).
        gates: MoE gate weights of the first SpTGNN model on each test sample, ``sample_id, fold, gate_0 …``.
        stream_usage: Share of the first SpTGNN model's expert input weight per stream, weighted by gate usage
            (see :func:`sptgnn.evaluate.reports.stream_usage`), averaged over folds.
    """

    predictions: pd.DataFrame
    metrics: dict[str, dict] = field(default_factory=dict)
    folds: list[dict] = field(default_factory=list)
    gates: pd.DataFrame | None = None
    stream_usage: dict[str, float] | None = None


def fold_ids(samples: SoilSamples, config: Config) -> np.ndarray:
    """Fold id of every sample for ``evaluate.split`` (see :func:`sptgnn.splits.fold_ids`).

    Raises:
        SamplesError: ``shipped`` folds requested but the samples have none.
    """
    ev = config.evaluate
    return splits.fold_ids(samples, ev.split, ev.n_folds, ev.block_size_km, ev.seed)


def make_folds(samples: SoilSamples, config: Config) -> list[splits.Fold]:
    """The folds of ``evaluate`` (split, K, block size, buffer, seed)."""
    ev = config.evaluate
    return splits.make_folds(samples, ev.split, ev.n_folds, ev.block_size_km, ev.buffer_km, ev.seed)


def log_point(member_mean: np.ndarray, member_var: np.ndarray) -> np.ndarray:
    """Mean over members of the ``log1p``-space Gaussian means behind lognormal member moments.

    A member with ``log(1 + Y) ~ N(m, v)`` has ``E = exp(m + v/2) − 1`` and ``Var = (exp(v) − 1) exp(2m + v)``, so
    ``v = log(1 + Var / (1 + E)²)`` and ``m = log(1 + E) − v / 2``.

    Shapes:
        ``(M, n)``, ``(M, n)`` → ``(n,)``.
    """
    one = 1.0 + np.asarray(member_mean, dtype=float)
    v = np.log1p(np.asarray(member_var, dtype=float) / one**2)
    return (np.log(one) - v / 2).mean(0)


def fold_scores(y: np.ndarray, mean: np.ndarray, mean_log: np.ndarray) -> dict:
    """``n, r2, rmse, mae, mape`` (target units, MAPE in %) and ``r2_log`` of one fold."""
    out = {"n": int(len(y))}
    if len(y) < 2:
        return out | {"r2": None, "rmse": None, "mae": None, "mape": None, "r2_log": None}
    out["r2"] = float(r2_score(y, mean))
    out["rmse"] = float(np.sqrt(mean_squared_error(y, mean)))
    out["mae"] = float(mean_absolute_error(y, mean))
    out["mape"] = _mape(y, mean)
    out["r2_log"] = float(r2_score(np.log1p(y), mean_log))
    return out


def cross_validate(
    samples: SoilSamples,
    config: Config,
    progress: Callable[[str], None] | None = None,
    variants: dict[str, Config] | None = None,
) -> CrossValidationResult:
    """Train and score SpTGNN and ``evaluate.baselines`` on every fold.

    Args:
        samples: All samples with the target (and shipped folds for ``evaluate.split: shipped``).
        config: Run configuration (folds, target, baselines).
        progress: Called with a short description after each trained member and each baseline fit.
        variants: SpTGNN configurations to train on the same folds, by model name (default ``{"sptgnn": config}``;
            ``sptgnn ablate`` passes its variants here). Baselines come from ``config.evaluate.baselines``.

    Returns:
        :class:`CrossValidationResult` with pooled out-of-fold metrics (R² pooled, rule 5 of DESIGN.md).

    Raises:
        SamplesError: The target is missing, or shipped folds are requested for samples without any.
        ValueError: Too few samples or blocks for the folds.
    """
    target = config.data.target
    samples.target(target)  # fails early with the available targets
    variants = {"sptgnn": config} if variants is None else variants
    ev, transform = config.evaluate, config.data.target_transform
    folds = make_folds(samples, config)
    rows: list[pd.DataFrame] = []
    fit_s: dict[str, float] = {}
    pred_s: dict[str, float] = {}
    gate_rows: list[pd.DataFrame] = []
    usage: list[dict[str, float]] = []
    tick = progress or (lambda _msg: None)
    planar = splits.planar_coords(samples)
    metric = dict(zip(samples.sample_ids, samples.metric_coords()))
    for i, f in enumerate(folds):
        fold = f.fold
        label = f"fold {i + 1}/{len(folds)}"
        train, test = samples.subset(f.train), samples.subset(f.test)
        y_test = test.target(target)
        xy = planar[f.test]
        for v_i, (name, cfg) in enumerate(variants.items()):
            ens = DeepEnsemble(cfg).fit(train, progress=lambda m, n=name, c=cfg: tick(
                f"{label}: {n} member {m + 1}/{c.train.members}"))
            start = time.perf_counter()
            run = Run(ens)  # the one prediction path, as for maps and point tables
            pred = run.predict(test)
            pred_s[name] = pred_s.get(name, 0.0) + time.perf_counter() - start
            fit_s[name] = fit_s.get(name, 0.0) + ens.fit_seconds
            # "name" is the calibrated ensemble; with a calibrator, "name_uncalibrated" is the same members without it
            outputs = [(name, pred)]
            if ens.calibrator is not None:
                outputs.append((f"{name}_uncalibrated", run.predict(test, calibrated=False)))
                fit_s[f"{name}_uncalibrated"] = fit_s.get(f"{name}_uncalibrated", 0.0) + ens.fit_seconds
            for out_name, p in outputs:
                mean_log = log_point(p.member_mean, p.member_var) if cfg.data.target_transform == "log1p" \
                    else np.log1p(np.clip(p.mean, 0, None))
                rows.append(_rows(test, fold, out_name, y_test, p.mean, p.sd, mean_log, xy, forecast=p,
                                  aleatoric_sd=p.aleatoric_sd, epistemic_sd=p.epistemic_sd))
            if v_i == 0:
                from sptgnn.evaluate.reports import stream_usage

                gates = ens.gates(test)
                frame = pd.DataFrame(gates, columns=[f"gate_{e}" for e in range(gates.shape[1])])
                frame.insert(0, "fold", fold)
                frame.insert(0, "sample_id", test.sample_ids)
                gate_rows.append(frame)
                usage.append(stream_usage(ens, gates))
        for name in ev.baselines:
            if name == "regression_kriging":
                res = regression_kriging(train, test, target, seed=config.train.seed, transform=transform,
                                         neighbours=ev.regression_kriging_neighbours, forest_trees=ev.forest_trees,
                                         forest_max_features=ev.forest_max_features)
            else:
                res = fit_predict_baseline(name, train, test, target, seed=config.train.seed, transform=transform,
                                           forest_trees=ev.forest_trees, forest_max_features=ev.forest_max_features)
            fit_s[name] = fit_s.get(name, 0.0) + res.fit_seconds
            mean_log = res.mean_log if res.mean_log is not None else np.log1p(np.clip(res.mean, 0, None))
            rows.append(_rows(test, fold, name, y_test, res.mean, res.sd, mean_log, xy, forecast=res.forecast))
            tick(f"{label}: {name}")
    predictions = pd.concat(rows, ignore_index=True)
    metrics = {}
    for name, group in predictions.groupby("model", sort=False):
        sd = group["sd"].to_numpy() if group["sd"].notna().all() else None
        y, mean, mlog = group["y_true"].to_numpy(), group["mean"].to_numpy(), group["mean_log"].to_numpy()
        xyz = np.stack([metric[s] for s in group["sample_id"]])
        m = score(y, mean, sd, xyz, ev.moran_k, ev.moran_permutations,
                  columns=group if "pit" in group and group["pit"].notna().all() else None)
        m["r2_log"] = float(r2_score(np.log1p(y), mlog))
        m["fit_seconds"] = round(fit_s.get(name, 0.0), 2)
        if name in pred_s:
            m["predict_seconds"] = round(pred_s[name], 2)
        if "aleatoric_sd" in group and group["aleatoric_sd"].notna().all():
            m["aleatoric_sd"] = float(group["aleatoric_sd"].mean())
            m["epistemic_sd"] = float(group["epistemic_sd"].mean())
        m["per_fold"] = {
            str(fold): fold_scores(g["y_true"].to_numpy(), g["mean"].to_numpy(), g["mean_log"].to_numpy())
            for fold, g in group.groupby("fold", sort=True)
        }
        metrics[name] = m
    fold_info = [{"fold": f.fold, "n_train": int(len(f.train)), "n_test": int(len(f.test)),
                  "n_excluded": int(len(f.excluded))} for f in folds]
    mean_usage = None
    if usage:
        mean_usage = {k: float(np.mean([u[k] for u in usage])) for k in usage[0]}
    return CrossValidationResult(predictions=predictions, metrics=metrics, folds=fold_info,
                                 gates=pd.concat(gate_rows, ignore_index=True) if gate_rows else None,
                                 stream_usage=mean_usage)


def _rows(test: SoilSamples, fold, model: str, y, mean, sd, mean_log, xy, forecast=None, **extra) -> pd.DataFrame:
    frame = pd.DataFrame({
        "sample_id": test.sample_ids, "fold": fold, "model": model, "y_true": y, "mean": mean,
        "sd": np.full(len(y), np.nan) if sd is None else sd, "mean_log": mean_log,
        "x": xy[:, 0], "y": xy[:, 1],
    })
    if forecast is not None:  # per-sample PIT, CRPS, NLL and interval bounds of the forecast's own distribution
        for k, v in distribution_columns(y, forecast).items():
            frame[k] = v
    for k, v in extra.items():
        frame[k] = v
    return frame
