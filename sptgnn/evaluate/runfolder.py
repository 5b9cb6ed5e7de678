"""Evaluation folders: cross-validate samples and write ``metrics.json``, ``predictions.csv``, ``gates.csv``,
``config.yaml``, ``report.md`` and the figures, atomically (what ``sptgnn evaluate`` and ``sptgnn ablate`` write)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sptgnn._version import __version__
from sptgnn.threads import apply_threads, resolve_threads
from sptgnn.atomic import atomic_dir, check_new_folder
from sptgnn.config import Config
from sptgnn.data.samples import SoilSamples
from sptgnn.evaluate.crossval import CrossValidationResult, check_target_varies, config_folds, cross_validate_config
from sptgnn.scores.figures import uncertainty_figures
from sptgnn.evaluate.reports import write_report


def finite_json(obj, path: str = "") -> tuple[object, dict[str, str]]:
    """``obj`` with every float that is not finite replaced by ``None``, and ``{dotted.path: reason}`` of each
    (``metrics.json`` never holds NaN or Infinity, which strict JSON readers reject)."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None, {path: f"not finite ({obj}): undefined for these predictions, e.g. a constant residual"}
    if isinstance(obj, dict):
        out, why = {}, {}
        for k, v in obj.items():
            out[k], w = finite_json(v, f"{path}.{k}" if path else str(k))
            why |= w
        return out, why
    if isinstance(obj, (list, tuple)):
        items = [finite_json(v, f"{path}[{i}]") for i, v in enumerate(obj)]
        return [v for v, _ in items], {k: r for _, w in items for k, r in w.items()}
    return obj, {}


def timestamped_folder(command: str, name: str) -> Path:
    """``runs/<command>-<name>-<time>``, the default output folder of every command."""
    return Path("runs") / f"{command}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def default_folder(config: Config, command: str) -> Path:
    """:func:`timestamped_folder` named after the config's dataset or table."""
    name = Path(config.data.table.path).stem if config.data.table is not None else config.data.dataset.replace(":", "-")
    return timestamped_folder(command, name)


def evaluation_total(config: Config, samples: SoilSamples, variants: dict[str, Config] | None = None) -> int:
    """Progress steps of :func:`evaluate_to_folder`: one per trained member and baseline fit of every fold."""
    variants = variants or {"sptgnn": config}
    ev = config.evaluate  # kNNDM makes K folds; it is not run twice just to count them
    n_folds = ev.n_folds if ev.split == "knndm" else len(config_folds(samples, config))
    return n_folds * (sum(v.train.members for v in variants.values())
                                               + len(config.evaluate.baselines))


def evaluate_to_folder(config: Config, samples: SoilSamples, out: Path, variants: dict[str, Config] | None = None,
                       progress: Callable[[str], None] | None = None) -> tuple[dict, CrossValidationResult]:
    """Cross-validate SpTGNN (or its ``variants``) and ``evaluate.baselines`` on the same folds and write the folder.

    Args:
        config: Run configuration (folds, target, baselines).
        samples: Every sample with the target.
        out: Folder to create (must not exist; written atomically).
        variants: SpTGNN configurations by model name (default ``{"sptgnn": config}``).
        progress: Called with a short description after each trained member and baseline fit.

    Returns:
        The metrics dict written to ``metrics.json`` and the :class:`~sptgnn.evaluate.crossval.CrossValidationResult`.

    Raises:
        FileExistsError: ``out`` exists.
        SamplesError, SplitError, CalibrationError: Unusable samples, folds or calibration part.
    """
    check_new_folder(out)
    threads = apply_threads(resolve_threads(config.train.threads, len(samples)))  # one policy, stated in metrics.json
    start, cpu = time.perf_counter(), time.process_time()
    result = cross_validate_config(samples, config, progress=progress, variants=variants)
    ev, n_folds = config.evaluate, len(result.folds)
    metrics = {
        "dataset": samples.name, "target": config.data.target, "n_samples": len(samples),
        "folds": ev.split, "n_folds": n_folds, "members": config.train.members, "sptgnn_version": __version__,
        "split": {"split": ev.split, "n_folds": n_folds, "block_size_km": ev.block_size_km, "buffer_km": ev.buffer_km,
                  "seed": ev.seed} | ({"knndm": result.split_info} if result.split_info else {}),
        "target_transform": config.data.target_transform,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "torch_threads": torch.get_num_threads(), "threads": threads,
        "fold_sizes": result.folds,
        "stream_usage": result.stream_usage,
        "dropped": samples.metadata.get("dropped"),
        "models": result.metrics,
    }
    metrics, undefined = finite_json(metrics)
    if undefined:
        metrics["undefined"] = undefined
    with atomic_dir(out) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False))
        result.predictions.to_csv(tmp / "predictions.csv", index=False)
        if result.gates is not None:
            result.gates.to_csv(tmp / "gates.csv", index=False)
        (tmp / "config.yaml").write_text(config.to_yaml())
        write_report(tmp, metrics, result.predictions)
        uncertainty_figures(result.predictions, tmp)
    return metrics, result


def evaluate_dataset(config: Config, out: Path | None = None, command: str = "evaluate",
                     variants: dict[str, Config] | None = None,
                     start: Callable[[int], Callable[[str], None]] | None = None) -> tuple[Path, dict, CrossValidationResult]:
    """Load ``data.table`` (with ``data.rasters``) or ``data.dataset`` and :func:`evaluate_to_folder` it into ``out``
    (default :func:`default_folder`), which is checked before any work. ``start`` is called with the number of
    progress steps and returns the progress callback. Returns the folder, the metrics and the result."""
    from sptgnn.data.tables import load_samples

    out = out or default_folder(config, command)
    check_new_folder(out)
    samples = load_samples(config.data)
    check_target_varies(samples, config.data.target)
    tick = None if start is None else start(evaluation_total(config, samples, variants))
    metrics, result = evaluate_to_folder(config, samples, out, variants, progress=tick)
    return out, metrics, result


__all__ = ["default_folder", "evaluate_dataset", "evaluate_to_folder", "evaluation_total", "finite_json",
           "timestamped_folder"]
