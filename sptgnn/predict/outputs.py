"""One call from a run folder to a written prediction: a GeoTIFF map or a point table (what ``sptgnn predict`` does)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from sptgnn.estimator.run import load_run
from sptgnn.threads import apply_threads, resolve_threads
from sptgnn.atomic import check_writable
from sptgnn.predict.points import predict_points, read_points, write_points
from sptgnn.predict.raster import PredictError, predict_raster


def predict_to_file(run: str | Path, out: str | Path, rasters: Sequence[str | Path] = (), points: str | Path | None = None,
                    window: int = 512, date: str | None = None, x: str | None = None, y: str | None = None,
                    crs: str | None = None, overwrite: bool = False, threads: int = 1, compile: bool | None = None,
                    progress: Callable[..., None] | None = None, student: bool = False, resume: bool = False,
                    depth=None) -> str:
    """Predict a map (``rasters`` → GeoTIFF ``out``) or points (``points`` → ``out`` table) with a saved run.

    Args:
        run: Run folder (``sptgnn train`` or :meth:`~sptgnn.estimator.run.Run.save`).
        out: Output GeoTIFF or ``.gpkg``/``.csv``/``.parquet``; its folder must exist.
        rasters: Covariate GeoTIFFs (maps; none: the run's ``data.rasters``), or rasters to sample covariates the
            points lack.
        points: Table of locations; ``x``, ``y``, ``crs`` name coordinate columns of a CSV.
        window: Map window size in pixels (memory is bounded by it).
        date: Sampling date ``YYYY-MM-DD`` for the time stream (default: the training mean year).
        threads: CPU threads of torch and the neighbour search.
        compile: ``torch.compile`` the attention step (``None``: on for maps over 4 Mpx).
        progress: Called with ``(tiles done, tiles total, pixels predicted)`` while mapping.
        student: Predict with the run's distilled fast student (``student.enabled``) instead of the ensemble.
        resume: Finish an interrupted map from its tile store (:mod:`sptgnn.predict.tiles`).
        depth: The layer (top, bottom cm), or a sequence of layers, a run trained on profile layers predicts (``None``:
            the points' own depth columns, else the six GlobalSoilMap intervals); several give one band or column set
            each.

    Returns:
        A one-line summary of what was written.

    Raises:
        PredictError, RunError, RasterError, AOAError, TileStoreError: Unusable inputs; the message says what to change.
    """
    out = Path(out)
    if date is not None:
        try:
            pd.Timestamp(date)
        except ValueError:
            raise PredictError(f"--date '{date}' is not a date; use YYYY-MM-DD") from None
    if not out.parent.is_dir():
        raise PredictError(f"output folder {out.parent} does not exist; create it first or choose another --out")
    check_writable(out.parent)
    apply_threads(resolve_threads(threads))  # torch, BLAS and neighbour search: sptgnn.threads
    model = load_run(run, compile=bool(compile), workers=threads)
    if student and not model.has_student:
        raise PredictError(f"{run} has no student; train it with student.enabled: true, or drop --student")
    if points is not None:
        result, n_bad = predict_points(model, read_points(points, x, y, crs), rasters, date, student=student,
                                       depth=depth)
        write_points(result, out, overwrite)
        msg = f"predicted {len(result) - n_bad} of {len(result)} points; wrote {out}"
        if n_bad:
            msg += f" ({n_bad} rows lack a covariate or coordinate: empty predictions, aoa 0)"
        return msg
    if not rasters:  # a map of the run's own covariate rasters
        rasters = [r.path for r in model.config.data.rasters]
        if not rasters:
            raise PredictError("the run records no data.rasters: give --raster a.tif [--raster b.tif ...] for a map, "
                               "or --points in.gpkg for points")
    s = predict_raster(model, rasters, out, window, date, progress=progress, overwrite=overwrite, compile=compile,
                       student=student, resume=resume, depth=depth)

    def span(band: str) -> str:  # over every layer's band set: "mean", or "mean_0-5cm", "mean_5-15cm", ...
        ranges = [r for b, r in s["ranges"].items() if r is not None and re.fullmatch(rf"{band}(_[\d.]+-[\d.]+cm)?", b)]
        return f"{min(r[0] for r in ranges):.3g}-{max(r[1] for r in ranges):.3g}"

    resumed = f", {s['resumed_tiles']} of {s['tiles']} tiles from the interrupted run" if s["resumed_tiles"] else ""
    return (f"wrote {s['path']} ({s['shape'][0]} x {s['shape'][1]} px, {s['valid_pixels']} predicted{resumed}, "
            f"{s['seconds']:.1f} s) and {s['png']}; mean {span('mean')} {model.units}, sd {span('sd')}")


__all__ = ["predict_to_file"]
