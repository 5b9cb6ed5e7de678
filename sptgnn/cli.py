"""Command line: ``sptgnn evaluate``, ``sptgnn train``, ``sptgnn datasets``.

Every known failure ends with one line on stderr saying what to do, exit code 2, and no partial output: results are
written to a temporary folder beside ``--out`` and renamed when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sptgnn.config import Config, ConfigError, load_config
from sptgnn.data.datasets import available_datasets, load_dataset
from sptgnn.data.limesoda import DatasetError
from sptgnn.data.rasters import RasterError
from sptgnn.data.samples import SamplesError
from sptgnn.data.splits import SplitError
from sptgnn.data.tables import load_samples
from sptgnn.train.calibration import CalibrationError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="SpTGNN: soil organic carbon mapping with graph neural networks.")
console = Console(width=None if sys.stdout.isatty() else 150)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)
DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "limesoda_bb250.yaml"
USER_ERRORS = (ConfigError, DatasetError, SamplesError, SplitError, RasterError, FileExistsError, FileNotFoundError,
               CalibrationError)


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(code=2)


def _config(config: Optional[Path], dataset: Optional[str], members: Optional[int]) -> Config:
    overrides: dict = {}
    if dataset:
        overrides["data"] = {"dataset": dataset}
    if members is not None:
        overrides["train"] = {"members": members}
    return load_config(config if config is not None else DEFAULT_CONFIG, overrides)


def _check_out(out: Path) -> None:
    """Fail before any work when ``out`` cannot be created; missing parents are made only when the run succeeds."""
    if out.exists():
        raise FileExistsError(f"output folder {out} already exists; pass another --out or remove it")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise FileExistsError(f"{parent} is a file, not a folder; pass another --out")
            break


@contextmanager
def atomic_dir(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` renamed to ``out`` when the block succeeds, removed when it fails."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class _LineProgress:
    """Progress as plain lines on stderr, for logs and pipes where a live bar shows nothing until the end: a line when
    the description changes or another tenth of the total is done, with the elapsed time. The subset of
    :class:`rich.progress.Progress` the commands use (``add_task``, ``update``, context manager)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tasks: dict[int, dict] = {}

    def __enter__(self) -> "_LineProgress":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: float | None = None) -> int:
        tid = len(self.tasks)
        self.tasks[tid] = {"description": description, "total": total, "completed": 0, "tenth": -1}
        self._line(tid)
        return tid

    def update(self, task: int, advance: float = 0, description: str | None = None, completed: float | None = None,
               total: float | None = None) -> None:
        t = self.tasks[task]
        if total is not None:
            t["total"] = total
        t["completed"] = completed if completed is not None else t["completed"] + advance
        tenth = int(10 * t["completed"] / t["total"]) if t["total"] else -1
        if (description is not None and description != t["description"]) or tenth > t["tenth"]:
            t["description"] = description if description is not None else t["description"]
            t["tenth"] = max(tenth, t["tenth"])
            self._line(task)

    def _line(self, task: int) -> None:
        t = self.tasks[task]
        done = f" {t['completed']:g}/{t['total']:g}" if t["total"] else ""
        elapsed = time.perf_counter() - self.start
        print(f"[{int(elapsed // 60):d}:{int(elapsed % 60):02d}]{done} {t['description']}", file=self.stream, flush=True)


def _progress() -> Progress | _LineProgress:
    """A live progress bar on a terminal, plain progress lines otherwise (nohup, CI, a pipe)."""
    if not err_console.is_terminal:
        return _LineProgress()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=False)


def _table(title: str, metrics: dict) -> Table:
    table = Table(title=title)
    cols = [("r2", "R²", 3), ("rmse", "RMSE", 3), ("mae", "MAE", 3), ("mape", "MAPE %", 1), ("nll", "NLL", 3),
            ("crps", "CRPS", 3), ("picp90", "PICP90", 3), ("calibration_error", "cal. err", 3), ("morans_i", "Moran's I", 3),
            ("fit_seconds", "fit s", 1)]
    table.add_column("model")
    for _, label, _ in cols:
        table.add_column(label, justify="right")
    for model, m in metrics.items():
        table.add_row(model, *["—" if m.get(k) is None else f"{m[k]:.{d}f}" for k, _, d in cols])
    return table


@app.command()
def evaluate(
    config: Optional[Path] = typer.Argument(None, help="YAML config; default: the embedded LimeSoDa BB.250 config."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Override data.dataset, e.g. limesoda:G.150."),
    members: Optional[int] = typer.Option(None, "--members", min=1, help="Override train.members (ensemble size M)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (must not exist; parents are created on success); default runs/evaluate-<dataset>-<time>."),
) -> None:
    """Cross-validate the SpTGNN ensemble and the baselines on the same folds (evaluate.split: shipped, random or
    spatial blocks); print a table, write metrics.json, predictions.csv, report.md, the report figures and the
    uncertainty figures (calibration curve, PICP, sharpness, predicted vs observed; PNG)."""

    try:
        cfg = _config(config, dataset, members)
        out, metrics, result = _cross_validate_dataset(cfg, out, "evaluate")
        n_folds = metrics["n_folds"]
    except USER_ERRORS as exc:
        _fail(str(exc))
    console.print(_table(f"{metrics['dataset']}: pooled out-of-fold scores of {cfg.data.target} ({n_folds} folds, "
                         f"split {cfg.evaluate.split})", result.metrics))
    console.print(f"wrote {out / 'metrics.json'}, {out / 'predictions.csv'} and {out / 'report.md'}")


@app.command()
def train(
    config: Optional[Path] = typer.Argument(None, help="YAML config; default: the embedded LimeSoDa BB.250 config."),
    out: Path = typer.Option(..., "--out", help="Run folder to create (must not exist)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Override data.dataset."),
    members: Optional[int] = typer.Option(None, "--members", min=1, help="Override train.members."),
) -> None:
    """Train the ensemble on every sample of the dataset and save a run folder that `DeepEnsemble.load` reads back
    (with a calibration method: plus the uncertainty figures of the calibration part)."""
    from sptgnn.train.ensemble import DeepEnsemble

    try:
        cfg = _config(config, dataset, members)
        _check_out(out)
        samples = load_samples(cfg.data)
        samples.target(cfg.data.target)
        with _progress() as bar:
            task = bar.add_task("members", total=cfg.train.members)
            ens = DeepEnsemble(cfg).fit(samples, progress=lambda m: bar.update(task, advance=1))
        if samples.feature_columns:  # the area-of-applicability reference that `sptgnn predict` uses
            from sptgnn.evaluate.aoa import fit_aoa

            ens.aoa = fit_aoa(samples, cfg.data.target, seed=cfg.train.seed)
        with atomic_dir(out) as tmp:
            ens.write_into(tmp)
            if ens.calibration_data is not None:
                _calibration_part_figures(ens, tmp)
    except USER_ERRORS as exc:
        _fail(str(exc))
    console.print(f"trained {cfg.train.members} members on {len(samples)} samples in {ens.fit_seconds:.1f} s; run saved to {out}")


def _calibration_part_figures(ens, folder: Path) -> None:
    """Uncertainty figures of the calibration part (predicted by the members' twins, which never trained on it):
    ``sptgnn_uncalibrated`` is out-of-sample there; ``sptgnn`` is in-sample for the calibrator, so it shows the fit,
    not a test (cross-validate with ``sptgnn evaluate`` for that)."""
    import pandas as pd

    from sptgnn.evaluate.figures import uncertainty_figures
    from sptgnn.evaluate.metrics import distribution_columns

    raw, y = ens.calibration_data
    frames = []
    for name, pred in (("sptgnn", ens.calibrator.apply(raw)), ("sptgnn_uncalibrated", raw)):
        frame = pd.DataFrame({"sample_id": ens.calibration_ids, "model": name, "y_true": y, "mean": pred.mean,
                              "sd": pred.sd, "aleatoric_sd": pred.aleatoric_sd, "epistemic_sd": pred.epistemic_sd})
        frames.append(frame.assign(**distribution_columns(y, pred)))
    uncertainty_figures(pd.concat(frames, ignore_index=True), folder)


@app.command()
def datasets() -> None:
    """List the named datasets `--dataset` accepts."""
    for name in available_datasets():
        console.print(name, highlight=False)


@app.command()
def ablate(
    config: Optional[Path] = typer.Argument(None, help="YAML config of the full model; default: the embedded BB.250 config."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (must not exist); default runs/ablate-<dataset>-<time>."),
    members: Optional[int] = typer.Option(None, "--members", min=1, help="Override train.members for every variant."),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated variants to run besides 'full', e.g. no_graph,no_moe."),
    baselines: bool = typer.Option(False, "--baselines/--no-baselines", help="Also run evaluate.baselines on the same folds."),
    calibration: bool = typer.Option(
        True, "--calibration/--no-calibration",
        help="Keep the config's calibration section; --no-calibration sets calibration.method none, so no calibration part "
             "is held out and no twins are trained (point scores are then from members trained on the whole fold)."),
) -> None:
    """Ablation: the full SpTGNN and its variants (no graph, each relation alone, no MoE, no Moran penalty, no
    position or time stream, no label inputs) on the same folds; one table, metrics.json, predictions.csv, report.md."""
    from sptgnn.evaluate.ablation import ablation_variants

    try:
        cfg = _config(config, None, members)
        if not baselines:
            cfg = cfg.updated(evaluate={"baselines": []})
        if not calibration:
            cfg = cfg.updated(calibration={"method": "none"})
        try:
            variants = ablation_variants(cfg, only.split(",") if only else None)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        out, metrics, result = _cross_validate_dataset(cfg, out, "ablate", variants)
    except USER_ERRORS as exc:
        _fail(str(exc))
    console.print(_table(f"{cfg.data.dataset}: ablation, pooled out-of-fold scores ({metrics['n_folds']} folds, "
                         f"split {cfg.evaluate.split})", result.metrics))
    console.print(f"wrote {out / 'metrics.json'} and {out / 'report.md'}")


@app.command()
def benchmark(
    suite: str = typer.Argument(..., help="Benchmark suite: 'limesoda' (10 LimeSoDa datasets with coordinates and Sentinel-2)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config; default: the embedded BB.250 config."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (must not exist); default runs/benchmark-<suite>-<time>."),
    members: Optional[int] = typer.Option(None, "--members", min=1, help="Override train.members."),
    only: Optional[str] = typer.Option(None, "--datasets", help="Comma-separated subset of the suite, e.g. BB.250,G.150."),
) -> None:
    """Run SpTGNN and the baselines on every dataset of a suite on its shipped folds; write one table of pooled R² and
    RMSE per dataset and model (benchmark.md, benchmark.json) and all out-of-fold predictions. A dataset whose folds
    are too small for the config's calibration part (the 30–104-sample ones with the default config) runs without
    calibration, with a warning; benchmark.json's ``calibration`` gives the method used per dataset."""
    import pandas as pd

    from sptgnn.evaluate.ablation import LIMESODA_SUITE
    from sptgnn.evaluate.crossval import cross_validate

    try:
        if suite != "limesoda":
            raise ConfigError(f"unknown benchmark suite '{suite}'; valid: limesoda")
        names = list(LIMESODA_SUITE)
        if only:
            wanted = only.split(",")
            unknown = sorted(set(wanted) - set(names))
            if unknown:
                raise ConfigError(f"dataset(s) {unknown} not in the {suite} suite: {', '.join(names)}")
            names = [n for n in names if n in wanted]
        base = _config(config, None, members)
        if out is None:
            out = Path("runs") / f"benchmark-{suite}-{time.strftime('%Y%m%d-%H%M%S')}"
        _check_out(out)
        results: dict[str, dict] = {}
        calibration: dict[str, str] = {}  # method per dataset: "none (why)" where the folds were too small for it
        frames = []
        start = time.perf_counter()
        with _progress() as bar:
            task = bar.add_task(suite, total=len(names))
            for name in names:
                cfg = _config(config, f"limesoda:{name}", members)
                cfg = cfg.updated(evaluate={"split": "shipped"})
                samples = load_dataset(cfg.data.dataset)
                calibration[name] = cfg.calibration.method
                progress = lambda msg, n=name: bar.update(task, description=f"{n}: {msg}")  # noqa: E731
                try:
                    res = cross_validate(samples, cfg, progress=progress)
                except CalibrationError as exc:  # a small dataset: its folds cannot spare a calibration part
                    err_console.print(f"[yellow]{name}: {exc}. Running {name} without calibration.[/]", soft_wrap=True)
                    calibration[name] = f"none ({exc})"
                    res = cross_validate(samples, cfg.updated(calibration={"method": "none"}), progress=progress)
                results[name] = {k: {"r2": v["r2"], "rmse": v["rmse"], "r2_log": v["r2_log"], "mape": v["mape"],
                                     "fit_seconds": v["fit_seconds"]} for k, v in res.metrics.items()}
                frames.append(res.predictions.assign(dataset=name))
                bar.update(task, advance=1)
        models = list(dict.fromkeys(m for r in results.values() for m in r))
        lines = ["| dataset | " + " | ".join(f"{m} R² | {m} RMSE" for m in models) + " |",
                 "|---|" + "---:|---:|" * len(models)]
        for name, r in results.items():
            cells = [f"{r[m]['r2']:.3f} | {r[m]['rmse']:.2f}" if m in r else "— | —" for m in models]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        uncalibrated = [n for n, c in calibration.items() if c.startswith("none (")]
        if uncalibrated:
            lines.append(f"\nRun without calibration (folds too small for a calibration part): {', '.join(uncalibrated)}; "
                         "point scores do not depend on it.")
        table = "\n".join(lines)
        meta = {"suite": suite, "members": base.train.members, "wall_seconds": round(time.perf_counter() - start, 1),
                "load_average": [round(x, 2) for x in os.getloadavg()], "calibration": calibration, "datasets": results}
        with atomic_dir(out) as tmp:
            (tmp / "benchmark.json").write_text(json.dumps(meta, indent=2))
            (tmp / "benchmark.md").write_text(f"# {suite} benchmark: pooled R² and RMSE (g/kg) on shipped folds\n\n{table}\n")
            pd.concat(frames, ignore_index=True).to_csv(tmp / "predictions.csv", index=False)
            (tmp / "config.yaml").write_text(base.to_yaml())
    except USER_ERRORS as exc:
        _fail(str(exc))
    console.print(table, highlight=False)
    console.print(f"wrote {out / 'benchmark.md'} and {out / 'benchmark.json'}")


def _cross_validate_dataset(cfg: Config, out: Path | None, command: str, variants: dict | None = None):
    """Load ``data.table`` or ``data.dataset`` and cross-validate it into ``out`` (default ``runs/<command>-<dataset>-<time>``), which
    must not exist. Returns the output folder, the metrics dict and the :class:`CrossValidationResult`."""
    name = Path(cfg.data.table.path).stem if cfg.data.table is not None else cfg.data.dataset.replace(":", "-")
    if out is None:
        out = Path("runs") / f"{command}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    _check_out(out)
    samples = load_samples(cfg.data)  # data.table (+ data.rasters) when set, else the named dataset
    samples.target(cfg.data.target)
    metrics, result = _cross_validate(cfg, samples, out, variants)
    return out, metrics, result


def _cross_validate(cfg: Config, samples, out: Path, variants: dict | None = None) -> tuple[dict, object]:
    """Run the cross-validation with a progress bar and write metrics.json, predictions.csv, report.md, figures and
    config.yaml into ``out`` (atomically). Returns the metrics dict and the :class:`CrossValidationResult`."""
    from sptgnn.evaluate.crossval import cross_validate, make_folds
    from sptgnn.evaluate.reports import write_report

    n_folds = len(make_folds(samples, cfg))
    variants = variants or {"sptgnn": cfg}
    total = n_folds * (sum(v.train.members for v in variants.values()) + len(cfg.evaluate.baselines))
    start, cpu = time.perf_counter(), time.process_time()
    with _progress() as bar:
        task = bar.add_task(f"{cfg.data.dataset}: folds × models", total=total)
        result = cross_validate(samples, cfg, progress=lambda msg: bar.update(task, advance=1, description=msg),
                                variants=variants)
    ev = cfg.evaluate
    metrics = {
        "dataset": samples.name, "target": cfg.data.target, "n_samples": len(samples),
        "folds": ev.split, "n_folds": n_folds, "members": cfg.train.members, "sptgnn_version": _version(),
        "split": {"split": ev.split, "n_folds": n_folds, "block_size_km": ev.block_size_km, "buffer_km": ev.buffer_km,
                  "seed": ev.seed},
        "target_transform": cfg.data.target_transform,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "torch_threads": _torch_threads(),
        "fold_sizes": result.folds,
        "stream_usage": result.stream_usage,
        "dropped": samples.metadata.get("dropped"),
        "models": result.metrics,
    }
    with atomic_dir(out) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        result.predictions.to_csv(tmp / "predictions.csv", index=False)
        if result.gates is not None:
            result.gates.to_csv(tmp / "gates.csv", index=False)
        (tmp / "config.yaml").write_text(cfg.to_yaml())
        write_report(tmp, metrics, result.predictions)
        from sptgnn.evaluate.figures import uncertainty_figures

        uncertainty_figures(result.predictions, tmp)
    return metrics, result


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _version() -> str:
    from sptgnn import __version__

    return __version__


@app.command()
def predict(
    run: Path = typer.Argument(..., help="Run folder written by `sptgnn train`."),
    out: Path = typer.Option(..., "--out", help="Output: a GeoTIFF map (with --raster) or a .gpkg/.csv/.parquet (with --points); its folder must exist."),
    raster: Optional[list[Path]] = typer.Option(None, "--raster", help="Covariate GeoTIFF(s); repeat for several. With --points: sample covariates the points lack."),
    points: Optional[Path] = typer.Option(None, "--points", help="GeoPackage/CSV/Parquet of locations to predict."),
    window: int = typer.Option(512, "--window", min=16, help="Window size in pixels (memory is bounded by it)."),
    date: Optional[str] = typer.Option(None, "--date", help="Sampling date YYYY-MM-DD for the time stream (default: the training mean year)."),
    x: Optional[str] = typer.Option(None, "--x", help="x/longitude column of a CSV of points."),
    y: Optional[str] = typer.Option(None, "--y", help="y/latitude column of a CSV of points."),
    crs: Optional[str] = typer.Option(None, "--crs", help="CRS of the points' x/y columns, e.g. EPSG:4326."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads (torch and neighbour search)."),
    compile_: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="Fuse the attention step with torch.compile: about 3x faster per pixel, tens of seconds to compile first (default: on for maps over 4 Mpx)."),
) -> None:
    """Predict a map (--raster ... --out map.tif) or points (--points in.gpkg --out out.gpkg) with a trained run: mean,
    total/aleatoric/epistemic sd, q05, q95 and the area-of-applicability flag."""
    import torch

    from sptgnn.evaluate.aoa import AOAError
    from sptgnn.predict.points import predict_points, read_points, write_points
    from sptgnn.predict.raster import PredictError, load_run, predict_raster
    from sptgnn.train.ensemble import RunError

    errors = USER_ERRORS + (RunError, PredictError, AOAError)
    torch.set_num_threads(threads)
    import signal

    # a terminated run unwinds like Ctrl-C, so the temporary map is removed and nothing stays under --out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if points is None and not raster:
            raise PredictError("give --raster a.tif [--raster b.tif ...] for a map, or --points in.gpkg for points")
        if date is not None:
            import pandas as pd

            try:
                pd.Timestamp(date)
            except ValueError:
                raise PredictError(f"--date '{date}' is not a date; use YYYY-MM-DD") from None
        if not out.parent.is_dir():
            raise PredictError(f"output folder {out.parent} does not exist; create it first or choose another --out")
        raster = [_cwd_path(p) for p in raster or []]
        model = load_run(run, compile=bool(compile_), workers=threads)
        if points is not None:
            frame = read_points(points, x, y, crs)
            result, n_bad = predict_points(model, frame, raster, date)
            write_points(result, out, overwrite)
            msg = f"predicted {len(result) - n_bad} of {len(result)} points; wrote {out}"
            if n_bad:
                msg += f" ({n_bad} rows lack a covariate or coordinate: empty predictions, aoa 0)"
            console.print(msg, highlight=False)
            return
        with _progress() as bar:
            task = bar.add_task(f"windows of {window} px", total=None)
            summary = predict_raster(model, raster, out, window, date,
                                     progress=lambda k, n: bar.update(task, completed=k, total=n), overwrite=overwrite,
                                     compile=compile_)
    except errors as exc:
        _fail(str(exc))
    r = summary["ranges"]
    console.print(
        f"wrote {summary['path']} ({summary['shape'][0]} x {summary['shape'][1]} px, {summary['valid_pixels']} predicted, "
        f"{summary['seconds']:.1f} s) and {summary['png']}; mean {r['mean'][0]:.3g}-{r['mean'][1]:.3g} {model.units}, "
        f"sd {r['sd'][0]:.3g}-{r['sd'][1]:.3g}", highlight=False)


def _cwd_path(path: Path) -> Path:
    """A --raster path (or glob) as given when it exists relative to the working directory, made absolute; otherwise
    unchanged, so that relative names are read under the data directory like config paths."""
    import glob as _glob

    if path.is_absolute():
        return path
    if path.exists() or _glob.glob(str(path)):
        return Path.cwd() / path
    return path
