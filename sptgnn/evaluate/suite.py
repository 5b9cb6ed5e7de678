"""Benchmark suites: SpTGNN and the baselines on every dataset of a suite, on its shipped folds, in one table."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from sptgnn.atomic import atomic_dir, check_new_folder
from sptgnn.config import Config, ConfigError
from sptgnn.data.datasets import load_dataset
from sptgnn.distributions import CalibrationError
from sptgnn.evaluate.ablation import LIMESODA_SUITE
from sptgnn.threads import applied_threads
from sptgnn.evaluate.crossval import cross_validate_config
from sptgnn.evaluate.runfolder import timestamped_folder

SUITES = {"limesoda": LIMESODA_SUITE, "limesoda_all": None}  # None: every LimeSoDa dataset with real coordinates


def _suite_names(suite: str) -> list[str]:
    if SUITES[suite] is None:
        from sptgnn.data.limesoda import limesoda_names

        return limesoda_names()
    return list(SUITES[suite])


def suite_datasets(suite: str, only: list[str] | None = None) -> list[str]:
    """The datasets of ``suite`` (all, or the ``only`` subset in suite order).

    Raises:
        ConfigError: An unknown suite, or a name of ``only`` not in it.
    """
    if suite not in SUITES:
        raise ConfigError(f"unknown benchmark suite '{suite}'; valid: {', '.join(SUITES)}")
    names = _suite_names(suite)
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ConfigError(f"dataset(s) {unknown} not in the {suite} suite: {', '.join(names)}")
        names = [n for n in names if n in only]
    return names


def default_suite_folder(suite: str) -> Path:
    """``runs/benchmark-<suite>-<time>``."""
    return timestamped_folder("benchmark", suite)


def _table(results: dict[str, dict], calibration: dict[str, str]) -> str:
    models = list(dict.fromkeys(m for r in results.values() for m in r))
    lines = ["| dataset | " + " | ".join(f"{m} R² | {m} RMSE" for m in models) + " |", "|---|" + "---:|---:|" * len(models)]
    for name, r in results.items():
        cells = [f"{r[m]['r2']:.3f} | {r[m]['rmse']:.2f}" if m in r else "— | —" for m in models]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    uncalibrated = [n for n, c in calibration.items() if c.startswith("none (")]
    if uncalibrated:
        lines.append(f"\nRun without calibration (folds too small for a calibration part): {', '.join(uncalibrated)}; "
                     "point scores do not depend on it.")
    return "\n".join(lines)


def run_suite(config: Config, suite: str, out: Path, datasets: list[str] | None = None,
              progress: Callable[[str, str], None] | None = None, done: Callable[[str], None] | None = None,
              warn: Callable[[str], None] | None = None) -> tuple[str, dict]:
    """Cross-validate ``config`` on each dataset of ``suite`` (shipped folds) and write ``benchmark.md``,
    ``benchmark.json``, ``predictions.csv`` and ``config.yaml`` into ``out`` (atomically).

    A dataset whose folds are too small for the config's calibration part runs without calibration (``warn`` is told);
    ``benchmark.json``'s ``calibration`` gives the method used per dataset. Point scores do not depend on it.

    Args:
        progress: Called with ``(dataset, message)`` after each trained member and baseline fit.
        done: Called with the dataset name when it is finished.

    Returns:
        The markdown table of pooled R² and RMSE per dataset and model, and the ``benchmark.json`` content.

    Raises:
        ConfigError: Unknown suite or dataset. FileExistsError: ``out`` exists.
    """
    names = suite_datasets(suite, datasets)
    check_new_folder(out)
    results: dict[str, dict] = {}
    calibration: dict[str, str] = {}
    frames = []
    start = time.perf_counter()
    for name in names:
        cfg = config.updated(data={"dataset": f"limesoda:{name}"}, evaluate={"split": "shipped"})
        samples = load_dataset(cfg.data.dataset)
        if cfg.data.target not in samples.targets:  # e.g. a SOM dataset in a SOC suite
            if warn is not None:
                warn(f"{name}: no '{cfg.data.target}' (it has {', '.join(samples.targets)}); skipped")
            continue
        absent = [t for t in cfg.data.aux_targets if t not in samples.targets]
        if absent:  # e.g. MG.44 and SSP.58 ship clay in g/kg (clay_g_kg), not clay_percent
            if warn is not None:
                warn(f"{name}: no auxiliary target(s) {absent}; trained without them")
            kept = [t for t in cfg.data.targets if t not in absent]
            cfg = cfg.updated(data={"targets": kept if len(kept) > 1 else None},
                              loss={"task_weights": None if cfg.loss.task_weights is None else
                                    [w for t, w in zip(cfg.data.aux_targets, cfg.loss.task_weights) if t not in absent]
                                    or None})
        calibration[name] = cfg.calibration.method
        tick = None if progress is None else (lambda msg, n=name: progress(n, msg))
        try:
            res = cross_validate_config(samples, cfg, progress=tick)
        except CalibrationError as exc:  # a small dataset: its folds cannot spare a calibration part
            if warn is not None:
                warn(f"{name}: {exc}. Running {name} without calibration.")
            calibration[name] = f"none ({exc})"
            res = cross_validate_config(samples, cfg.updated(calibration={"method": "none"}), progress=tick)
        keep = ("r2", "rmse", "mae", "r2_log", "r2_median", "mape", "fit_seconds", "choices_per_fold")
        results[name] = {k: {key: v[key] for key in keep if key in v} for k, v in res.metrics.items()}
        frames.append(res.predictions.assign(dataset=name))
        if done is not None:
            done(name)
    table = _table(results, calibration)
    meta = {"suite": suite, "members": config.train.members, "threads": applied_threads(), "wall_seconds": round(time.perf_counter() - start, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()], "calibration": calibration, "datasets": results}
    with atomic_dir(out) as tmp:
        (tmp / "benchmark.json").write_text(json.dumps(meta, indent=2))
        (tmp / "benchmark.md").write_text(f"# {suite} benchmark: pooled R² and RMSE (g/kg) on shipped folds\n\n{table}\n")
        (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()).to_csv(tmp / "predictions.csv", index=False)
        (tmp / "config.yaml").write_text(config.to_yaml())
    return table, meta


__all__ = ["SUITES", "default_suite_folder", "run_suite", "suite_datasets"]
