"""Cross-validation: any models on identical folds and features, scored by one function (rules 4–6 of DESIGN.md).

:func:`cross_validate` takes models that follow one protocol — ``fit(samples, progress=None)`` and
``predict_dist(samples)`` returning a forecast with ``mean`` (the mean of its predictive distribution, target units),
``median`` (optional; default the mean), ``sd`` (or ``None``) and ``mean_log`` (the model's own ``log1p``-scale point
prediction, or ``None``) — and a splitter (``split(samples)`` yielding train and test
positions, e.g. :class:`~sptgnn.splits.BlockKFold`) or a list of :class:`~sptgnn.splits.Fold`. SpTGNN
(:class:`~sptgnn.estimator.regressor.SpTGNNRegressor`) and every baseline (:mod:`sptgnn.models.baselines`) follow
it (:class:`~sptgnn.models.protocol.ForecastModel`). The hooks of :class:`~sptgnn.models.protocol.FoldModel` say what
else a fit gives: ``forecasts(samples)`` every forecast of the fit from one prediction pass (``""`` the model's own,
other keys more rows of the same fit: SpTGNN's uncalibrated mixture and student), ``target_forecasts(samples)`` the
auxiliary targets' forecasts (rows ``<model>@<target>``), ``fit_choices()`` what the fit chose, ``diagnostics(samples)``
the MoE gates of the first model that has them; a model with only ``fit`` and ``predict_dist`` gets their defaults.

Scores are pooled over all out-of-fold predictions (rule 5) and also given per fold. Every model is scored in target
units through the same back-transform (:mod:`sptgnn.models.backtransform`): ``r2``, ``rmse``, ``mae`` of the mean of
its predictive distribution, and ``r2_median``, ``rmse_median``, ``mae_median`` of its median as a named second
variant. ``r2_log`` is R² on ``log1p(SOC)`` of the model's ``mean_log`` when it has one, else of ``log1p`` of its mean
(clipped at 0).
:func:`cross_validate_config` builds the models and folds of a run config (what ``sptgnn evaluate`` runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from sptgnn.data.samples import SamplesError, SoilSamples
from sptgnn.data.spline import GSM_DEPTHS
from sptgnn.imagery.location import require_geoclip
from sptgnn.models.deep_tabular import DEEP_BASELINES, DeepTabularBaseline, require_pytabkit
from sptgnn.models.baselines import (BASELINES, FM_BASELINES, QUANTILE_BASELINES, QUANTILE_FM_BASELINES,
                                     SPATIAL_BASELINES, TREE_FM_BASELINES, QuantileBaseline, TreeBaseline)
from sptgnn.models.kriging import RegressionKriging
from sptgnn.models.kriging_prior import KrigingPriorForest
from sptgnn.models.protocol import fold_model
from sptgnn.evaluate.fold_tasks import FoldTasks, fit_fold_model
from sptgnn.scores.metrics import mape, distribution_columns, score
from sptgnn.parallel import current_executor
from sptgnn.progress import TaskTicks
from sptgnn.splits import Fold, planar_coords

PREDICTION_COLUMNS = ["sample_id", "fold", "model", "y_true", "mean", "sd", "mean_log", "median"]


@dataclass
class CrossValidationResult:
    """Out-of-fold predictions and pooled metrics of every model.

    Attributes:
        predictions: One row per sample and model: ``sample_id, fold, model, y_true, mean, sd, mean_log, median``
            (target units; ``sd`` NaN for point forecasts), ``x, y`` (planar metres, :func:`sptgnn.splits.planar_coords`),
            ``aleatoric_sd`` and ``epistemic_sd`` where the forecast has them, and for forecasts with distribution
            functions (SpTGNN's mixture, quantile baselines) the per-sample ``pit``, ``crps``, ``nll`` and
            ``lowerXX``/``upperXX`` columns of :func:`sptgnn.scores.metrics.distribution_columns`.
        metrics: ``{model: {metric: value}}`` from :func:`sptgnn.scores.metrics.score` (of the mean), plus
            ``r2_median``, ``rmse_median``, ``mae_median`` (of the median), ``r2_log``, ``fit_seconds``,
            ``predict_seconds``, ``per_fold`` (``{fold: {n, r2, rmse, mae, mape, r2_log}}``) and, for models with
            ``fit_choices()``, ``choices_per_fold`` (what each fold's fit chose from its training data alone); for
            profile layers, ``per_depth`` (:func:`per_depth`).
        folds: One dict per fold: ``fold, n_train, n_test, n_excluded`` (buffer).
        gates: MoE gate weights of the first model with ``diagnostics`` on each test sample, ``sample_id, fold,
            gate_0 …``.
        stream_usage: That model's share of expert input weight per stream, averaged over folds.
        split_info: Figures of the split when it has any (kNNDM: ``W``, ``W_random``, ``clusters``, fold sizes).
    """

    predictions: pd.DataFrame
    metrics: dict[str, dict] = field(default_factory=dict)
    folds: list[dict] = field(default_factory=list)
    gates: pd.DataFrame | None = None
    stream_usage: dict[str, float] | None = None
    split_info: dict | None = None


def fold_scores(y: np.ndarray, mean: np.ndarray, mean_log: np.ndarray) -> dict:
    """``n, r2, rmse, mae, mape`` (target units, MAPE in %) and ``r2_log`` of one fold."""
    out = {"n": int(len(y))}
    if len(y) < 2:
        return out | {"r2": None, "rmse": None, "mae": None, "mape": None, "r2_log": None}
    out["r2"] = float(r2_score(y, mean))
    out["rmse"] = float(np.sqrt(mean_squared_error(y, mean)))
    out["mae"] = float(mean_absolute_error(y, mean))
    out["mape"] = mape(y, mean)
    out["r2_log"] = float(r2_score(np.log1p(y), mean_log))
    return out


def check_target_varies(samples: SoilSamples, target: str) -> None:
    """Raise before any work when the target is missing or constant (R² and the distributional scores are undefined).

    Raises:
        SamplesError: The target is missing or (near) constant.
    """
    y = samples.target(target)  # fails early with the available targets
    if np.isnan(y).any():
        raise SamplesError(f"{samples.name}: target '{target}' is missing (NaN) at {int(np.isnan(y).sum())} samples; "
                           "cross-validate a target present at every sample, or drop those samples")
    if len(y) and np.ptp(y) <= 1e-9 * max(1.0, float(np.abs(y).max())):
        raise SamplesError(f"{samples.name}: target '{target}' is constant ({y[0]:g}) over all {len(y)} samples, so R² and "
                           "the distributional scores are undefined; cross-validate a target that varies")


def _folds(cv, samples: SoilSamples) -> list[Fold]:
    if hasattr(cv, "split"):
        return [Fold(k + 1, np.asarray(tr), np.asarray(te), np.array([], dtype=int))
                for k, (tr, te) in enumerate(cv.split(samples))]
    return list(cv)


def _rows(test: SoilSamples, fold, model: str, y, forecast, xy) -> pd.DataFrame:
    mean = np.asarray(forecast.mean, dtype=float)
    # a forecast with distribution functions gets its median from distribution_columns' one quantiles call below
    median = None if hasattr(forecast, "cdf") else getattr(forecast, "median", None)
    sd = getattr(forecast, "sd", None)
    mean_log = getattr(forecast, "mean_log", None)
    frame = pd.DataFrame({
        "sample_id": test.sample_ids, "fold": fold, "model": model, "y_true": y, "mean": mean,
        "sd": np.full(len(y), np.nan) if sd is None else sd,
        "mean_log": np.log1p(np.clip(mean, 0, None)) if mean_log is None else mean_log,
        "median": mean if median is None else np.asarray(median, dtype=float), "x": xy[:, 0], "y": xy[:, 1],
    })
    if hasattr(forecast, "cdf"):  # per-sample PIT, CRPS, NLL and interval bounds of the forecast's own distribution
        for k, v in distribution_columns(y, forecast).items():
            frame[k] = v
    for k in ("aleatoric_sd", "epistemic_sd"):
        if hasattr(forecast, k):
            frame[k] = getattr(forecast, k)
    return frame


def _pooled(predictions: pd.DataFrame, metric_xy: dict, fit_s: dict, pred_s: dict, moran_k: int,
            moran_permutations: int) -> dict[str, dict]:
    metrics = {}
    for name, group in predictions.groupby("model", sort=False):
        sd = group["sd"].to_numpy() if group["sd"].notna().all() else None
        y, mean, mlog = group["y_true"].to_numpy(), group["mean"].to_numpy(), group["mean_log"].to_numpy()
        xyz = np.stack([metric_xy[s] for s in group["sample_id"]])
        m = score(y, mean, sd, xyz, moran_k, moran_permutations,
                  columns=group if "pit" in group and group["pit"].notna().all() else None)
        median = group["median"].to_numpy()
        m["r2_median"] = float(r2_score(y, median))
        m["rmse_median"] = float(np.sqrt(mean_squared_error(y, median)))
        m["mae_median"] = float(mean_absolute_error(y, median))
        m["r2_log"] = float(r2_score(np.log1p(y), mlog))
        m["fit_seconds"] = round(fit_s.get(name, 0.0), 2)
        m["predict_seconds"] = round(pred_s.get(name, 0.0), 2)
        if "aleatoric_sd" in group and group["aleatoric_sd"].notna().all():
            m["aleatoric_sd"] = float(group["aleatoric_sd"].mean())
            m["epistemic_sd"] = float(group["epistemic_sd"].mean())
        m["per_fold"] = {str(fold): fold_scores(g["y_true"].to_numpy(), g["mean"].to_numpy(), g["mean_log"].to_numpy())
                         for fold, g in group.groupby("fold", sort=True)}
        metrics[name] = m
    return metrics


def per_depth(predictions: pd.DataFrame, samples: SoilSamples,
              intervals: tuple[tuple[float, float], ...] = GSM_DEPTHS) -> dict[str, dict]:
    """Scores of profile layers by standard depth interval: each layer goes to the interval holding its mid depth
    (deeper ones to ``>200``), and every model gets ``{"0-5": {n, r2, rmse, mae, mape, r2_log}, ...}`` (target units)
    of its out-of-fold predictions there, as SoilGrids reports accuracy per depth."""
    mid = dict(zip(samples.sample_ids, samples.mid_depth_cm()))
    labels = [f"{a:g}-{b:g}" for a, b in intervals]
    edges = np.array([a for a, _ in intervals] + [intervals[-1][1]], dtype=float)
    out = {}
    for name, group in predictions.groupby("model", sort=False):
        depth = np.array([mid[s] for s in group["sample_id"]])
        k = np.clip(np.searchsorted(edges, depth, side="right") - 1, 0, len(labels))
        scores = {}
        for j, label in enumerate([*labels, f">{edges[-1]:g}"]):
            g = group[k == j]
            if len(g):
                scores[label] = fold_scores(g["y_true"].to_numpy(), g["mean"].to_numpy(), g["mean_log"].to_numpy())
        out[name] = scores
    return out


def cross_validate(models: dict, samples: SoilSamples, cv, target: str | None = None,
                   progress: Callable[[str], None] | None = None, moran_k: int = 8,
                   moran_permutations: int = 199) -> CrossValidationResult:
    """Fit every model on each fold's training samples and score its forecast of the test samples.

    Args:
        models: ``{name: model}`` following the protocol of the module docstring; each fold fits a
            :func:`sklearn.base.clone` of it.
        samples: Every sample, with the target.
        cv: A splitter with ``split(samples)`` or a list of :class:`~sptgnn.splits.Fold` (buffers: ``excluded``).
        target: Target column (default the samples' first target).
        progress: Called with a short description after each SpTGNN member and each model fit (when a task ran on
            a worker, that many times when it returns).
        moran_k, moran_permutations: kNN weights and permutations of the residuals' Moran's I.

    Returns:
        :class:`CrossValidationResult` with pooled out-of-fold metrics.

    Raises:
        SamplesError: The target is missing, or constant (R² undefined).
    """
    target = target or samples.targets[0]
    check_target_varies(samples, target)
    folds = _folds(cv, samples)
    tick = progress or (lambda _msg: None)
    planar, metric_xy = planar_coords(samples), dict(zip(samples.sample_ids, samples.metric_coords()))
    rows, gate_rows, usage, fit_s, pred_s, choices = [], [], [], {}, {}, {}
    models = {name: fold_model(m, name) for name, m in models.items()}
    diagnosed = next((n for n, m in models.items() if m.has_diagnostics), None)
    # one task per (fold, model) on the current executor (sptgnn.parallel); results come back in this order
    items = [(i, name, TaskTicks(progress)) for i in range(len(folds)) for name in models]

    def done(k: int) -> None:  # the steps a task did not show itself (all of them when it ran on a worker)
        i, name, ticks = items[k]
        for _ in range(max(0, int(getattr(models[name], "members", 1) or 1) - ticks.count)):
            tick(f"fold {i + 1}/{len(folds)}: {name} done")

    results = current_executor().map(fit_fold_model, items, FoldTasks(models, samples, folds, diagnosed), done)
    for (i, name, _), res in zip(items, results):
        f = folds[i]
        test = samples.subset(f.test)
        y_test, xy = test.target(target), planar[f.test]
        pred_s[name] = pred_s.get(name, 0.0) + res["predict_seconds"]
        if res["choices"] is not None:  # what the fit chose from its training fold (e.g. the trend of `auto`)
            choices.setdefault(name, {})[str(f.fold)] = res["choices"]
        for out_name, forecast in res["outputs"].items():
            fit_s[out_name] = fit_s.get(out_name, 0.0) + res["fit_seconds"]
            rows.append(_rows(test, f.fold, out_name, y_test, forecast, xy))
        for aux, forecast in res["targets"].items():
            y_aux = test.target(aux)  # scored where the auxiliary target was measured
            seen = np.isfinite(y_aux)
            fit_s[f"{name}@{aux}"] = fit_s.get(f"{name}@{aux}", 0.0) + res["fit_seconds"]
            rows.append(_rows(test.subset(seen), f.fold, f"{name}@{aux}", y_aux[seen], forecast.subset(seen),
                              xy[seen]))
        if res["diagnostics"] is not None:
            d = res["diagnostics"]
            frame = pd.DataFrame(d["gates"], columns=[f"gate_{e}" for e in range(d["gates"].shape[1])])
            gate_rows.append(frame.assign(fold=f.fold, sample_id=test.sample_ids)[
                ["sample_id", "fold", *frame.columns]])
            usage.append(d["stream_usage"])
    predictions = pd.concat(rows, ignore_index=True)
    fold_info = [{"fold": f.fold, "n_train": int(len(f.train)), "n_test": int(len(f.test)),
                  "n_excluded": int(len(f.excluded))} for f in folds]
    metrics = _pooled(predictions, metric_xy, fit_s, pred_s, moran_k, moran_permutations)
    if samples.depth is not None:
        for name, scores in per_depth(predictions, samples).items():
            metrics[name]["per_depth"] = scores
    for name, per_fold in choices.items():
        metrics[name]["choices_per_fold"] = per_fold
    return CrossValidationResult(
        predictions=predictions, metrics=metrics,
        folds=fold_info, gates=pd.concat(gate_rows, ignore_index=True) if gate_rows else None,
        stream_usage={k: float(np.mean([u[k] for u in usage])) for k in usage[0]} if usage else None)


def make_baseline(name: str, config):
    """The baseline ``name`` (:data:`BASELINES`, :data:`QUANTILE_BASELINES`, :data:`SPATIAL_BASELINES`,
    :data:`FM_BASELINES`, :data:`DEEP_BASELINES`) set up from a run :class:`~sptgnn.config.Config` (target, target
    transform, seed, forest size, kriging neighbours, location-FM components).

    Raises:
        ValueError: An unknown name.
    """
    ev, target, transform, seed = config.evaluate, config.data.target, config.data.target_transform, config.train.seed
    dims = config.model.location_fm.dims
    if name in QUANTILE_BASELINES or name in QUANTILE_FM_BASELINES:
        return QuantileBaseline(name, target, seed, transform=transform, trees=ev.forest_trees,
                                max_features=ev.forest_max_features, fm_dims=dims)
    if name in DEEP_BASELINES:
        return DeepTabularBaseline(name, target, transform, seed, dims)
    if name == "kpr_random_forest":
        return KrigingPriorForest(target, transform, seed, ev.forest_trees, ev.forest_max_features,
                                  ev.regression_kriging_neighbours)
    if name in SPATIAL_BASELINES:
        return RegressionKriging(target, transform, seed, ev.regression_kriging_neighbours, ev.forest_trees,
                                 ev.forest_max_features)
    if name in BASELINES or name in TREE_FM_BASELINES:
        return TreeBaseline(name, target, transform, seed, ev.forest_trees, ev.forest_max_features, dims)
    valid = BASELINES + QUANTILE_BASELINES + SPATIAL_BASELINES + FM_BASELINES + DEEP_BASELINES
    raise ValueError(f"unknown baseline '{name}'; valid: {', '.join(valid)}")


def require_extras(config, baselines: bool = True) -> None:
    """Check that the optional packages a run config needs are installed, before any work starts: ``geoclip`` for the
    ``location_fm`` stream and (``baselines``) the ``+fm`` baselines, ``pytabkit`` for RealMLP and TabM (an ablation
    variant only ever drops the stream, so the full config decides).

    Raises:
        LocationEncoderMissing: ``geoclip`` is needed and not installed.
        DeepTabularMissing: ``pytabkit`` is needed and not installed.
    """
    names = config.evaluate.baselines if baselines else []
    if "location_fm" in config.model.streams or any(name.endswith("+fm") for name in names):
        require_geoclip()
    for name in names:
        if name in DEEP_BASELINES:
            require_pytabkit(name)


def config_models(config, variants: dict | None = None) -> dict:
    """The models a run config cross-validates: SpTGNN (or each of ``variants``, ``{name: Config}``) and
    ``evaluate.baselines``, in that order.

    Raises:
        LocationEncoderMissing: A model reads the location stream and ``geoclip`` is not installed.
        DeepTabularMissing: A RealMLP or TabM baseline without ``pytabkit``.
    """
    from sptgnn.estimator.regressor import SpTGNNRegressor

    variants = {"sptgnn": config} if variants is None else variants
    require_extras(config)
    models = {name: SpTGNNRegressor.from_config(cfg, area_of_applicability=False) for name, cfg in variants.items()}
    return models | {name: make_baseline(name, config) for name in config.evaluate.baselines}


def config_split(samples: SoilSamples, config) -> tuple[list[Fold], dict | None]:
    """The folds of a config's ``evaluate`` section (:func:`sptgnn.splits.make_folds`: split, K, block size, buffer,
    seed; kNNDM folds for its domain, :func:`sptgnn.splits.domain.knndm_folds`) and, for kNNDM, its figures
    (:meth:`~sptgnn.splits.knndm.KNNDMResult.summary`: W against the domain, W of random folds beside)."""
    from sptgnn.geo.paths import resolve_data_path
    from sptgnn.splits import folds_from_ids, make_folds
    from sptgnn.splits.domain import knndm_folds

    ev = config.evaluate
    if ev.split != "knndm":
        return make_folds(samples, ev.split, ev.n_folds, ev.block_size_km, ev.buffer_km, ev.seed), None
    kc = ev.knndm
    res = knndm_folds(samples, resolve_data_path(kc.domain), ev.n_folds, kc.space, kc.samplesize, kc.maxp,
                      kc.clustering, ev.seed)
    return folds_from_ids(samples, res.folds, ev.buffer_km), res.summary()


def config_folds(samples: SoilSamples, config) -> list[Fold]:
    """The folds of a config's ``evaluate`` section (see :func:`config_split`)."""
    return config_split(samples, config)[0]


def cross_validate_config(samples: SoilSamples, config, progress: Callable[[str], None] | None = None,
                          variants: dict | None = None) -> CrossValidationResult:
    """:func:`cross_validate` of the models of ``config`` (:func:`config_models`) on its ``evaluate`` folds
    (:func:`sptgnn.splits.make_folds`: shipped, random, spatial blocks, buffer).

    Raises:
        SamplesError: The target is missing, or shipped folds are requested for samples without any.
        SplitError: Too few samples or blocks for the folds.
    """
    ev = config.evaluate
    folds, split_info = config_split(samples, config)
    result = cross_validate(config_models(config, variants), samples, folds, config.data.target, progress, ev.moran_k,
                            ev.moran_permutations)
    result.split_info = split_info
    return result


__all__ = ["require_extras", "PREDICTION_COLUMNS", "CrossValidationResult", "check_target_varies", "config_folds", "config_models",
           "config_split", "cross_validate", "cross_validate_config", "fold_scores", "make_baseline", "per_depth"]
