"""Cross-validation: SpTGNN ensemble and baselines trained on identical folds and features, scored by one function."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from sptgnn.config import Config
from sptgnn.data import splits
from sptgnn.data.samples import SoilSamples
from sptgnn.evaluate.baselines import fit_predict_baseline
from sptgnn.evaluate.metrics import distribution_columns, score
from sptgnn.train.ensemble import DeepEnsemble

PREDICTION_COLUMNS = ["sample_id", "fold", "model", "y_true", "mean", "sd"]


@dataclass
class CrossValidationResult:
    """Out-of-fold predictions and pooled metrics of every model.

    Attributes:
        predictions: One row per sample and model: ``sample_id, fold, model, y_true, mean, sd`` (target units;
            ``sd`` NaN for point forecasts), plus ``aleatoric_sd`` and ``epistemic_sd`` for SpTGNN, and for models
            with a distribution object (SpTGNN's mixture, quantile baselines) the per-sample ``pit``, ``crps``,
            ``nll`` and ``lowerXX``/``upperXX`` columns of :func:`sptgnn.evaluate.metrics.distribution_columns`.
            Model ``sptgnn`` is calibrated (``calibration.method``); ``sptgnn_uncalibrated`` (only when a calibration
            method is set) is the same ensemble without the calibrator.
        metrics: ``{model: {metric: value}}`` from :func:`sptgnn.evaluate.metrics.score`, plus ``fit_seconds``.
    """

    predictions: pd.DataFrame
    metrics: dict[str, dict] = field(default_factory=dict)


def fold_ids(samples: SoilSamples, config: Config) -> np.ndarray:
    """Fold id of every sample for ``evaluate.split`` (see :func:`sptgnn.data.splits.fold_ids`).

    Raises:
        SamplesError: ``shipped`` folds requested but the samples have none.
    """
    ev = config.evaluate
    return splits.fold_ids(samples, ev.split, ev.n_folds, ev.block_size_km, ev.seed)


def cross_validate(
    samples: SoilSamples,
    config: Config,
    progress: Callable[[str], None] | None = None,
) -> CrossValidationResult:
    """Train and score SpTGNN and ``evaluate.baselines`` on every fold.

    Args:
        samples: All samples with the target and folds.
        config: Run configuration.
        progress: Called with a short description after each trained member and each baseline fit.

    Returns:
        :class:`CrossValidationResult` with pooled out-of-fold metrics (R² pooled, rule 5 of DESIGN.md).
    """
    target = config.data.target
    samples.target(target)  # fails early with the available targets
    ev = config.evaluate
    folds = splits.make_folds(samples, ev.split, ev.n_folds, ev.block_size_km, ev.buffer_km, ev.seed)
    rows: list[pd.DataFrame] = []
    seconds: dict[str, float] = {}
    tick = progress or (lambda _msg: None)
    for f in folds:
        fold = f.fold
        train, test = samples.subset(f.train), samples.subset(f.test)
        y_test = test.target(target)
        ens = DeepEnsemble(config).fit(train, progress=lambda m, f=fold: tick(f"fold {f}: sptgnn member {m + 1}"))
        # "sptgnn" is the calibrated ensemble; with a calibrator, "sptgnn_uncalibrated" is the same members without it
        variants = [("sptgnn", ens.predict(test))]
        if ens.calibrator is not None:
            variants.append(("sptgnn_uncalibrated", ens.predict(test, calibrated=False)))
        for name, pred in variants:
            seconds[name] = seconds.get(name, 0.0) + ens.fit_seconds
            rows.append(_rows(test, fold, name, y_test, pred.mean, pred.sd, forecast=pred,
                              aleatoric_sd=pred.aleatoric_sd, epistemic_sd=pred.epistemic_sd))
        for name in config.evaluate.baselines:
            res = fit_predict_baseline(name, train, test, target, seed=config.train.seed)
            seconds[name] = seconds.get(name, 0.0) + res.fit_seconds
            rows.append(_rows(test, fold, name, y_test, res.mean, res.sd, forecast=res.forecast))
            tick(f"fold {fold}: {name}")
    predictions = pd.concat(rows, ignore_index=True)
    coords = dict(zip(samples.sample_ids, samples.metric_coords()))
    metrics = {}
    for name, group in predictions.groupby("model", sort=False):
        sd = group["sd"].to_numpy() if group["sd"].notna().all() else None
        xy = np.stack([coords[s] for s in group["sample_id"]])
        metrics[name] = score(group["y_true"].to_numpy(), group["mean"].to_numpy(), sd, xy,
                              config.evaluate.moran_k, config.evaluate.moran_permutations,
                              columns=group if "pit" in group else None)
        metrics[name]["fit_seconds"] = round(seconds[name], 2)
        if name.startswith("sptgnn"):
            metrics[name]["aleatoric_sd"] = float(group["aleatoric_sd"].mean())
            metrics[name]["epistemic_sd"] = float(group["epistemic_sd"].mean())
    return CrossValidationResult(predictions=predictions, metrics=metrics)


def _rows(test: SoilSamples, fold, model: str, y, mean, sd, forecast=None, **extra) -> pd.DataFrame:
    frame = pd.DataFrame({
        "sample_id": test.sample_ids, "fold": fold, "model": model, "y_true": y, "mean": mean,
        "sd": np.full(len(y), np.nan) if sd is None else sd,
    })
    if forecast is not None:  # per-sample PIT, CRPS, NLL and interval bounds of the forecast's own distribution
        for k, v in distribution_columns(y, forecast).items():
            frame[k] = v
    for k, v in extra.items():
        frame[k] = v
    return frame
