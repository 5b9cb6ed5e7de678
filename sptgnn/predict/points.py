"""Point predictions: a GeoPackage/CSV/Parquet of locations in, the same rows with prediction columns out.

Columns added (prefix ``soc`` for an SOC target, else the target's name, e.g. ``som_pct``): ``{p}_mean``, ``{p}_sd``
(total), ``{p}_aleatoric_sd``, ``{p}_epistemic_sd``, ``{p}_q05``, ``{p}_q95`` in target units, and ``aoa`` (1 inside the
area of applicability, 0 outside). Covariates the points lack are sampled from rasters (the given ones, else the run
config's ``data.rasters``). Rows without every covariate get empty predictions and ``aoa`` 0; their count is returned.
The output is written to a temporary file beside it and renamed when complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd

from sptgnn.atomic import atomic_file
from sptgnn.geo.paths import resolve_data_path
from sptgnn.geo.sources import expand_paths, match_sources
from sptgnn.geo.context import open_covariates
from sptgnn.data.tables import TableError, read_table
from sptgnn.estimator.run import Run, RunError
from sptgnn.predict.raster import PredictError, raster_sources


def read_points(path: str | Path, x: str | None = None, y: str | None = None, crs: str | None = None,
                layer: str | None = None) -> gpd.GeoDataFrame:
    """Read prediction locations: point geometry of a GeoPackage/GeoParquet, or x/y columns with a CRS.

    Raises:
        PredictError: Missing file, missing coordinate columns or CRS, non-point geometry.
    """
    path = Path(path)
    if not path.is_file():
        raise PredictError(f"points file not found: {path}")
    try:
        frame = read_table(path, layer)
    except TableError as exc:
        raise PredictError(str(exc)) from None
    if x is None and isinstance(frame, gpd.GeoDataFrame) and frame.geometry is not None:
        if crs is not None:
            frame = frame.set_crs(crs, allow_override=True)
        if frame.crs is None:
            raise PredictError(f"{path}: the geometry has no CRS; pass --crs")
        if not (frame.geometry.geom_type == "Point").all():
            raise PredictError(f"{path}: the geometry must be points")
        return frame.reset_index(drop=True)
    for cx, cy in ([(x, y)] if x else [("x", "y"), ("lon", "lat"), ("longitude", "latitude"), ("X", "Y")]):
        if cx in frame.columns and cy in frame.columns:
            x, y = cx, cy
            break
    else:
        if x:  # the user named columns the table lacks
            missing = [c for c in (x, y) if c not in frame.columns]
            raise PredictError(f"{path}: no column {' or '.join(repr(c) for c in missing)} (given with --x/--y); its "
                               f"columns are {list(frame.columns)}")
        raise PredictError(f"{path}: no coordinate columns found; pass --x and --y (columns: {list(frame.columns)})")
    if x not in frame.columns or y not in frame.columns:
        raise PredictError(f"{path}: no columns '{x}'/'{y}'; columns: {list(frame.columns)}")
    if crs is None:
        raise PredictError(f"{path}: coordinates in columns '{x}'/'{y}' need a CRS: pass --crs (e.g. EPSG:4326)")
    xs, ys = pd.to_numeric(frame[x], errors="coerce"), pd.to_numeric(frame[y], errors="coerce")
    if xs.isna().any() or ys.isna().any():
        bad = np.flatnonzero((xs.isna() | ys.isna()).to_numpy())[:5] + 1
        raise PredictError(f"{path}: missing or non-numeric coordinates in row(s) {bad.tolist()}")
    return gpd.GeoDataFrame(pd.DataFrame(frame), geometry=gpd.points_from_xy(xs, ys), crs=crs)


def predict_points(model: Run, points: gpd.GeoDataFrame, rasters: Sequence[str | Path] = (), dates=None,
                   date_column: str | None = None, student: bool = False,
                   depth=None) -> tuple[gpd.GeoDataFrame, int]:
    """Predictions at points.

    Args:
        model: The :class:`~sptgnn.estimator.run.Run` (see :func:`sptgnn.load_run`).
        points: Locations with a CRS; covariate columns named as in training are used as they are.
        rasters: Rasters to sample missing covariates from (default: the run config's ``data.rasters``).
        dates: Sampling date for the time stream when the points have no date column.
        date_column: Column of the points' dates (default: the training date column if present).
        student: The primary target from the run's distilled fast student instead of the ensemble.
        depth: The layer (top, bottom cm), or a sequence of layers, a run trained on profile layers predicts at every
            point (several: one set of columns per interval, suffixed ``_0-5cm`` …); ``None`` reads each point's own
            depth columns (named as in training) or, without them, predicts the six GlobalSoilMap intervals.

    Returns:
        The rows with prediction columns, and the number of rows that could not be predicted.

    Raises:
        RasterError: Missing band or CRS problem when sampling covariates.
    """
    n = len(points)
    need = model.needed
    values = {}
    missing = [f for f in need if f not in points.columns]
    xy = np.c_[points.geometry.x.to_numpy(), points.geometry.y.to_numpy()]
    ok = np.ones(n, dtype=bool)
    for f in need:
        if f in points.columns:
            values[f] = pd.to_numeric(points[f], errors="coerce").to_numpy(dtype=np.float64)
    if missing:
        paths = [str(p) for p in rasters] or [str(p) for s in raster_sources(model) for p in _expand(s.path)]
        if not paths:
            raise PredictError(f"the points lack covariate(s) {missing} and no raster is given to sample them from; "
                               "pass --raster")
        with open_covariates(match_sources(paths, raster_sources(model)), model.config.data.context) as stack:
            sampled, _ = stack.sample_points(xy, points.crs, missing)
        for j, f in enumerate(missing):
            values[f] = sampled[:, j]
    own = model.depth is not None and depth is None and all(f in points.columns for f in model.depth)
    try:
        layers = [None] if own else model.layers(depth)
    except RunError as exc:
        raise PredictError(str(exc)) from None
    if own:  # each point's own layer
        for f in model.depth:
            values[f] = pd.to_numeric(points[f], errors="coerce").to_numpy(dtype=np.float64)
    for f in values:
        ok &= np.isfinite(values[f])
    train_crs = model.labelled.crs
    g = points.geometry if points.crs == train_crs else points.geometry.to_crs(train_crs)
    xy_train = np.c_[g.x.to_numpy(), g.y.to_numpy()]
    ok &= np.isfinite(xy_train).all(1)
    date_column = date_column or model.labelled.date_column
    if date_column and date_column in points.columns:
        dates = pd.to_datetime(points[date_column], errors="coerce")
        ok &= dates.notna().to_numpy()
        dates = dates[ok]
    p = model.prefix
    out = points.copy()
    cols = {"mean": f"{p}_mean", "sd": f"{p}_sd", "aleatoric_sd": f"{p}_aleatoric_sd", "epistemic_sd": f"{p}_epistemic_sd",
            "q05": f"{p}_q05", "q95": f"{p}_q95"}
    cols |= {b: b for b in model.map_bands if b not in cols and b != "aoa"}  # auxiliary targets: ph_mean, ...
    for layer in layers:  # one column set per depth interval when several are asked for
        suffix = "" if len(layers) == 1 else "_" + model.layer_label(layer)
        for c in list(cols.values()):
            out[c + suffix] = np.nan
        out["aoa" + suffix] = 0
        if ok.any():
            bands = model.predict_arrays({f: v[ok] for f, v in values.items()}, xy_train[ok], dates, student=student,
                                         depth=layer)
            for b, c in cols.items():
                out.loc[ok, c + suffix] = bands[b]
            out.loc[ok, "aoa" + suffix] = bands["aoa"].astype(int)
    return out, int((~ok).sum())


def _expand(pattern: str) -> list[Path]:

    try:
        return expand_paths(pattern)
    except Exception:  # noqa: BLE001 - a configured raster that moved is reported when sampling
        return [resolve_data_path(pattern)]


POINT_FORMATS = (".gpkg", ".csv", ".parquet", ".pq")


def write_points(frame: gpd.GeoDataFrame, out: str | Path, overwrite: bool = False) -> Path:
    """Write predictions atomically: ``.gpkg``, ``.csv`` (with x, y) or ``.parquet``, by the suffix of ``out``.

    Raises:
        PredictError: Missing output folder, existing output, or a suffix of another format (e.g. ``.tif``).
    """
    out = Path(out)
    if not out.parent.is_dir():
        raise PredictError(f"output folder {out.parent} does not exist; create it first or choose another --out")
    if out.exists() and not overwrite:
        raise PredictError(f"{out} already exists; remove it or choose another --out")
    suffix = out.suffix.lower()
    if suffix not in POINT_FORMATS:
        raise PredictError(f"--out {out.name}: point predictions are written as {', '.join(POINT_FORMATS)}; "
                           "name the output with one of these")
    with atomic_file(out, suffix=suffix) as tmp:
        if suffix == ".csv":
            f = pd.DataFrame(frame.drop(columns="geometry"))
            f["x"], f["y"] = frame.geometry.x, frame.geometry.y
            f.to_csv(tmp, index=False)
        elif suffix in (".parquet", ".pq"):
            frame.to_parquet(tmp)
        else:
            tmp.unlink()
            frame.to_file(tmp, driver="GPKG", layer="predictions")
    return out


__all__ = ["predict_points", "read_points", "write_points"]
