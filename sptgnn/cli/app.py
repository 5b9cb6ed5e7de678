"""Command line: typer wiring over the Python API (evaluate, train, predict, aggregate, check-blocks, report, ablate,
benchmark, datasets).

Every known failure ends with one line on stderr saying what to do, exit code 2, and no partial output: results are
written to a temporary folder beside ``--out`` and renamed when complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from sptgnn.atomic import check_new_folder
from sptgnn.cli.common import (BACKEND, CONFIG, DATASET, MEMBERS, RAY_ADDRESS, backend, console, err_console, fail,
                               user_errors)
from sptgnn.cli.aggregate import aggregate
from sptgnn.cli.blocks import check_blocks
from sptgnn.cli.harmonise import harmonise_command
from sptgnn.cli.predict import predict
from sptgnn.cli.pretrain import pretrain
from sptgnn.progress import progress_display, starter, warnings_to

if TYPE_CHECKING:
    from sptgnn.config import Config

app = typer.Typer(add_completion=False, no_args_is_help=True, help="SpTGNN: soil organic carbon mapping with graph neural networks.")


@app.callback()
def _main() -> None:
    warnings_to(err_console)  # a warning is one line, like an error


def _config(config: Optional[Path], dataset: Optional[str], members: Optional[int]) -> Config:
    from sptgnn.config import EMBEDDED_CONFIG, load_config

    overrides = ({"data": {"dataset": dataset}} if dataset else {}) | ({"train": {"members": members}} if members else {})
    return load_config(config if config is not None else EMBEDDED_CONFIG, overrides)


def _evaluate(cfg: Config, out: Optional[Path], command: str, variants: dict | None = None):
    from sptgnn.evaluate.crossval import require_extras
    from sptgnn.evaluate.reports import console_table
    from sptgnn.evaluate.runfolder import evaluate_dataset

    require_extras(cfg)  # a missing optional package is named before any work starts

    with progress_display(err_console) as bar:
        def start(total: int):
            task = bar.add_task(f"{cfg.data.source}: folds × models", total=total)
            return lambda msg: bar.update(task, advance=1, description=msg)

        out, metrics, result = evaluate_dataset(cfg, out, command, variants, start)
    console.print(console_table(f"{metrics['dataset']}: {command}, pooled out-of-fold scores of {cfg.data.target} "
                         f"({metrics['n_folds']} folds, split {cfg.evaluate.split})", result.metrics))
    console.print(f"wrote {out / 'metrics.json'}, {out / 'predictions.csv'} and {out / 'report.md'}")


@app.command()
def evaluate(
    config: Optional[Path] = CONFIG,
    dataset: Optional[str] = DATASET,
    members: Optional[int] = MEMBERS,
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (must not exist; parents are created on success); default runs/evaluate-<dataset>-<time>."),
    backend_: str = BACKEND,
    ray_address: Optional[str] = RAY_ADDRESS,
) -> None:
    """Cross-validate SpTGNN and the baselines on the same folds (evaluate.split: shipped, random or spatial blocks):
    a table, metrics.json, predictions.csv, report.md and the uncertainty figures."""
    try:
        cfg = _config(config, dataset, members)
        with backend(backend_, ray_address, cfg):
            _evaluate(cfg, out, "evaluate")
    except user_errors() as exc:
        fail(str(exc))


@app.command()
def train(
    config: Optional[Path] = CONFIG,
    out: Path = typer.Option(..., "--out", help="Run folder to create (must not exist)."),
    dataset: Optional[str] = DATASET,
    members: Optional[int] = MEMBERS,
    backend_: str = BACKEND,
    ray_address: Optional[str] = RAY_ADDRESS,
) -> None:
    """Train on every sample and save the run folder `sptgnn.load_run` reads (as `SpTGNNRegressor.save` does)."""
    from sptgnn.estimator.run import train_to_folder
    from sptgnn.evaluate.crossval import require_extras

    try:
        cfg = _config(config, dataset, members)
        check_new_folder(out)
        require_extras(cfg, baselines=False)
        with progress_display(err_console) as bar, backend(backend_, ray_address, cfg):
            run = train_to_folder(cfg, out, start=starter(bar, "members", cfg.train.members))
    except user_errors() as exc:
        fail(str(exc))
    console.print(f"trained {cfg.train.members} members on {len(run.labelled)} samples in {run.fit_seconds:.1f} s; saved {out}")


@app.command()
def datasets() -> None:
    """List the named datasets `--dataset` accepts."""
    from sptgnn.data.datasets import available_datasets

    for name in available_datasets():
        console.print(name, highlight=False)


@app.command()
def ablate(
    config: Optional[Path] = CONFIG,
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (must not exist); default runs/ablate-<dataset>-<time>."),
    members: Optional[int] = MEMBERS,
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated variants to run besides 'full', e.g. no_graph,no_moe."),
    baselines: bool = typer.Option(False, "--baselines/--no-baselines", help="Also run evaluate.baselines on the same folds."),
    calibration: bool = typer.Option(True, "--calibration/--no-calibration", help="--no-calibration: calibration.method none (no twins; point scores unchanged)."),
    backend_: str = BACKEND,
    ray_address: Optional[str] = RAY_ADDRESS,
) -> None:
    """The full SpTGNN and its ablation variants (no graph, each relation alone, no MoE, no Moran penalty, no position
    or time stream, no label inputs) on the same folds: one table, metrics.json, predictions.csv, report.md."""
    from sptgnn.evaluate.ablation import ablation_variants

    try:
        cfg = _config(config, None, members)
        cfg = cfg.updated(**({} if baselines else {"evaluate": {"baselines": []}}),
                          **({} if calibration else {"calibration": {"method": "none"}}))
        variants = ablation_variants(cfg, only.split(",") if only else None)
        with backend(backend_, ray_address, cfg):
            _evaluate(cfg, out, "ablate", variants)
    except user_errors() as exc:
        fail(str(exc))


@app.command()
def benchmark(
    suite: str = typer.Argument(..., help="'limesoda' (10 LimeSoDa sets with Sentinel-2) or 'limesoda_all' (all with coordinates)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config; default: the embedded BB.250 config."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (must not exist); default runs/benchmark-<suite>-<time>."),
    members: Optional[int] = MEMBERS,
    only: Optional[str] = typer.Option(None, "--datasets", help="Comma-separated subset of the suite, e.g. BB.250,G.150."),
    target: Optional[str] = typer.Option(None, "--target", help="Primary target instead of the config's, e.g. ph or clay_percent (multi-task configs keep their other targets)."),
    backend_: str = BACKEND,
    ray_address: Optional[str] = RAY_ADDRESS,
) -> None:
    """SpTGNN and the baselines on every dataset of a suite (shipped folds): pooled R² and RMSE per dataset and model in
    benchmark.md/.json, all out-of-fold predictions; datasets too small for a calibration part run without it."""
    from sptgnn.evaluate.crossval import require_extras
    from sptgnn.evaluate.suite import default_suite_folder, run_suite, suite_datasets

    try:
        names, base = suite_datasets(suite, only.split(",") if only else None), _config(config, None, members)
        if target is not None:
            others = [t for t in base.data.targets or [] if t != target]
            base = base.updated(data={"target": target, "targets": [target, *others] if others else None},
                                loss={"task_weights": None})
        out = out or default_suite_folder(suite)
        check_new_folder(out)
        require_extras(base)
        with progress_display(err_console) as bar, backend(backend_, ray_address, base):
            task = bar.add_task(suite, total=len(names))
            table, _ = run_suite(base, suite, out, names,
                                 progress=lambda name, msg: bar.update(task, description=f"{name}: {msg}"),
                                 done=lambda name: bar.update(task, advance=1),
                                 warn=lambda msg: err_console.print(f"[yellow]{msg}[/]", soft_wrap=True))
    except user_errors() as exc:
        fail(str(exc))
    console.print(table, highlight=False)
    console.print(f"wrote {out / 'benchmark.md'} and {out / 'benchmark.json'}")


@app.command()
def report(
    folders: list[Path] = typer.Argument(..., help="Evaluation folders of `sptgnn evaluate` (e.g. random, blocks and kNNDM folds of one config)."),
    out: Path = typer.Option(..., "--out", help="HTML file to write (self-contained: figures embedded)."),
    block_means: Optional[list[Path]] = typer.Option(None, "--block-means", help="JSON of `sptgnn check-blocks` (repeatable)."),
    maps: Optional[list[Path]] = typer.Option(None, "--map", help="Map of `sptgnn predict` (repeatable): share of its pixels inside the area of applicability, DI quantiles."),
    totals: Optional[list[Path]] = typer.Option(None, "--totals", help="GeoPackage of `sptgnn aggregate` (repeatable): zone and project totals with their provenance."),
) -> None:
    """One self-contained HTML validation report: data fingerprint and sample summary, CV design, accuracy with bias
    (ME) and Lin's CCC, calibration, interval coverage, Moran's I, area of applicability of a map, block-mean coverage,
    map totals with their provenance, configuration, seeds and versions."""
    from sptgnn.atomic import atomic_file, check_writable
    from sptgnn.evaluate.html_report import ReportError, render_report

    try:
        if out.suffix.lower() not in (".html", ".htm") or not out.parent.is_dir():
            raise ReportError(f"--out {out}: give an .html file in an existing folder")
        check_writable(out.parent)
        page = render_report(folders, block_means or [], maps or [], totals or [])
        with atomic_file(out, ".html") as tmp:
            tmp.write_text(page)
    except user_errors() as exc:
        fail(str(exc))
    console.print(f"wrote {out}")


app.command(name="predict")(predict)
app.command(name="aggregate")(aggregate)
app.command(name="check-blocks")(check_blocks)
app.command(name="pretrain")(pretrain)
app.command(name="harmonise")(harmonise_command)
