"""One cross-validation task: fit a clone of one model on one fold's training samples and forecast its test samples.

:func:`~sptgnn.evaluate.crossval.cross_validate` hands one task per (fold, model) to the current executor
(:mod:`sptgnn.parallel`) and scores what comes back in fold-then-model order, so the scores never depend on the
executor. A fold's SpTGNN fit hands its members to the same executor in turn.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sklearn.base import clone

from sptgnn.data.samples import SoilSamples
from sptgnn.progress import TaskTicks


@dataclass
class FoldTasks:
    """What every task of one cross-validation reads: ``models`` (:class:`~sptgnn.models.protocol.FoldModel`
    prototypes by name), ``samples`` and ``folds``
    (:class:`~sptgnn.splits.Fold`), and the name of the model whose ``diagnostics`` (MoE gates) are kept."""

    models: dict
    samples: SoilSamples
    folds: list
    diagnosed: str | None


def fit_fold_model(ctx: FoldTasks, item: tuple[int, str, TaskTicks]) -> dict:
    """Fit model ``name`` on fold ``i`` and forecast the fold's test samples.

    Returns:
        ``outputs`` (``{row name: forecast}``: the model's own and the fit's other forecasts, from the
        :class:`~sptgnn.models.protocol.FoldModel` hooks), ``targets`` (auxiliary targets' forecasts), ``fit_seconds``, ``predict_seconds``,
        ``choices`` (or ``None``) and ``diagnostics`` (or ``None``).
    """
    i, name, tick = item
    f = ctx.folds[i]
    train, test = ctx.samples.subset(f.train), ctx.samples.subset(f.test)
    model = clone(ctx.models[name])
    label = f"fold {i + 1}/{len(ctx.folds)}"
    start = time.perf_counter()
    model.fit(train, progress=lambda msg: tick(f"{label}: {name} {msg}"))
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    # every forecast of the fit from one prediction pass
    outputs = {f"{name}_{k}" if k else name: v for k, v in model.forecasts(test).items()}
    predict_seconds = time.perf_counter() - start
    return {
        "outputs": outputs, "fit_seconds": fit_seconds, "predict_seconds": predict_seconds,
        "targets": model.target_forecasts(test), "choices": model.fit_choices(),
        "diagnostics": model.diagnostics(test) if name == ctx.diagnosed else None,
    }


__all__ = ["FoldTasks", "fit_fold_model"]
