"""``sptgnn predict``: a map or a point table from a saved run (registered on the app by :mod:`sptgnn.cli.app`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from sptgnn.cli.common import (BACKEND, RAY_ADDRESS, backend, console, err_console, fail, parse_depths,
                               user_errors)
from sptgnn.progress import counter, progress_display


def predict(
    run: Path = typer.Argument(..., help="Run folder written by `sptgnn train` (verified against its manifest.json; nothing in it is executed)."),
    out: Path = typer.Option(..., "--out", help="Output: a Cloud-Optimized GeoTIFF map (with --raster) or a .gpkg/.csv/.parquet (with --points); its folder must exist."),
    raster: Optional[list[Path]] = typer.Option(None, "--raster", help="Covariate GeoTIFF(s); repeat for several (default: the run's data.rasters). With --points: sample covariates the points lack."),
    points: Optional[Path] = typer.Option(None, "--points", help="GeoPackage/CSV/Parquet of locations to predict."),
    window: int = typer.Option(512, "--window", min=16, help="Tile size in pixels: one task each (memory per worker is bounded by it)."),
    date: Optional[str] = typer.Option(None, "--date", help="Sampling date YYYY-MM-DD for the time stream (default: the training mean year)."),
    x: Optional[str] = typer.Option(None, "--x", help="x/longitude column of a CSV of points."),
    y: Optional[str] = typer.Option(None, "--y", help="y/latitude column of a CSV of points."),
    crs: Optional[str] = typer.Option(None, "--crs", help="CRS of the points' x/y columns, e.g. EPSG:4326."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted map: predict only the tiles its store (.<out>.tiles beside --out) lacks."),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads per task (torch and neighbour search)."),
    student: bool = typer.Option(False, "--student", help="Use the run's distilled fast student (student.enabled: true) instead of the ensemble: several times faster, nearly the same map."),
    compile_: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="Fuse the attention step with torch.compile: about 3x faster per pixel, tens of seconds to compile first (default: on for maps over 4 Mpx)."),
    depth: Optional[str] = typer.Option(None, "--depth", help="The layer(s) a run trained on profile layers predicts, top-bottom in cm, e.g. 0-30 or 0-5,5-15,15-30 (one band or column set each); default: the six GlobalSoilMap intervals, or the points' own depth columns."),
    backend_: str = BACKEND,
    ray_address: Optional[str] = RAY_ADDRESS,
) -> None:
    """Predict a map (--raster ... --out map.tif) or points (--points in.gpkg --out out.gpkg) with a trained run: mean,
    total/aleatoric/epistemic sd, q05, q95 and the area-of-applicability flag."""
    import signal

    from sptgnn.config import Config
    from sptgnn.predict.outputs import predict_to_file

    layers = None if depth is None else parse_depths(depth)
    # a terminated run unwinds like Ctrl-C, so nothing stays under --out (finished tiles stay for --resume)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        with progress_display(err_console) as bar, backend(backend_, ray_address, Config()):
            msg = predict_to_file(run, out, raster or [], points, window, date, x, y, crs, overwrite, threads, compile_,
                                  counter(bar, f"tiles of {window} px"), student=student, resume=resume,
                                  depth=layers)
    except user_errors() as exc:
        fail(str(exc))
    console.print(msg, highlight=False)


__all__ = ["predict"]
