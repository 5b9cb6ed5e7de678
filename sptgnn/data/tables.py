"""Generic point tables: CSV, GeoPackage or Parquet soil samples described by the YAML config (``data.table``).

:func:`load_table` reads a table, takes coordinates from x/y (or lon/lat) columns with a CRS or from the file's point
geometry, checks the target, date and feature columns, samples covariates from rasters (``data.rasters``, see
:mod:`sptgnn.geo.stack`) at the points, and returns :class:`~sptgnn.data.samples.SoilSamples`. Every problem is a
:class:`TableError` naming the file, the column, the rows and the fix; rows with a missing target or covariate are an
error unless ``drop_missing`` is set, in which case they are dropped and counted (``samples.metadata["dropped"]``).
:func:`load_samples` picks the table or the named dataset of a :class:`~sptgnn.config.DataConfig`.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from sptgnn.geo.paths import data_dir, resolve_data_path
from sptgnn.geo.sources import RasterError, RasterSource
from sptgnn.geo.stack import CovariateStack
from sptgnn.data.samples import SamplesError, SoilSamples
from sptgnn.geo import axes_swapped

CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
PARQUET_SUFFIXES = {".parquet", ".pq", ".geoparquet"}


class TableError(SamplesError):
    """A point table that cannot be read as samples; the message names the file, column, rows and the fix."""


def _rows(mask: np.ndarray, frame: pd.DataFrame, id_col: str | None, limit: int = 8) -> str:
    """``row 3 (ID 17), ...`` for the masked rows: 1-based data rows of the file and their identifiers."""
    idx = np.flatnonzero(mask)
    parts = []
    for i in idx[:limit]:
        label = f"row {int(frame.index[i]) + 1}"
        if id_col is not None:
            label += f" ({id_col} {frame[id_col].iloc[i]})"
        parts.append(label)
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return ", ".join(parts) + more


def read_table(path: Path, layer: str | None) -> pd.DataFrame:
    suffixes = [s.lower() for s in path.suffixes]
    last = suffixes[-2] if suffixes and suffixes[-1] in (".gz", ".bz2", ".zip", ".xz") and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    try:
        if last in CSV_SUFFIXES:
            return pd.read_csv(path, sep="\t" if last == ".tsv" else ",")
        if last in PARQUET_SUFFIXES:
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise TableError(f"{path}: reading Parquet needs pyarrow; `pip install pyarrow` (extra sptgnn[parquet])") from None
            try:
                return gpd.read_parquet(path)
            except (ValueError, KeyError):  # plain Parquet without geo metadata
                return pd.read_parquet(path)
        return gpd.read_file(path, layer=layer)
    except TableError:
        raise
    except Exception as exc:  # noqa: BLE001 - pandas/pyogrio raise many kinds; the user needs the file and the cause
        raise TableError(f"cannot read {path} as a point table ({type(exc).__name__}: {exc}); give a CSV, GeoPackage or Parquet file") from None


def _column(frame: pd.DataFrame, col: str, path: Path, key: str) -> None:
    if col not in frame.columns:
        names = [str(c) for c in frame.columns if c not in ("geometry", "__row")]
        close = [c for c in names if c.lower() == col.lower()] or difflib.get_close_matches(col, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise TableError(f"{path}: no column '{col}' (data.table.{key}){hint}; columns: {names}")


def _numeric(frame: pd.DataFrame, col: str, path: Path, id_col: str | None, what: str) -> pd.Series:
    """The column as float; text that is not a number is an error naming the rows (empty cells become NaN)."""
    raw = frame[col]
    values = pd.to_numeric(raw, errors="coerce")
    text = values.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if text.any():
        examples = ", ".join(repr(v) for v in raw[text].astype(str).unique()[:3])
        raise TableError(
            f"{path}: {what} column '{col}' holds text that is not a number ({examples}) in {_rows(text.to_numpy(), frame, id_col)}; "
            "fix those cells (use a dot as decimal separator, leave missing values empty)"
        )
    return values.astype(float)


def _id_text(ids: pd.Series) -> pd.Series:
    """Identifiers as text; whole numbers stored as floats (``17.0``) become ``"17"``."""
    num = pd.to_numeric(ids, errors="coerce")
    if num.notna().all() and (num == np.round(num)).all():
        return num.astype(np.int64).astype(str)
    return ids.astype(str)


def _join_sites(layers: pd.DataFrame, table, path: Path) -> pd.DataFrame:
    """The layers with their site's columns (``data.table.sites`` joined on ``data.table.site``). Raises
    :class:`TableError` naming a missing site column, duplicated site rows, or layers whose site is not in the table."""
    sites_path = resolve_data_path(table.sites)
    if not sites_path.is_file():
        raise TableError(f"site table not found: {sites_path} (data.table.sites '{table.sites}')")
    sites = read_table(sites_path, None)
    for frame, where in ((layers, path), (sites, sites_path)):
        _column(frame, table.site, where, "site")
    dup = sites[table.site].duplicated(keep=False)
    if dup.any():
        raise TableError(f"{sites_path}: site(s) {sites[table.site][dup].astype(str).unique()[:3].tolist()} appear "
                         "more than once; a site table holds one row per site")
    unknown = ~layers[table.site].isin(sites[table.site])
    if unknown.any():
        raise TableError(f"{path}: {int(unknown.sum())} layer(s) have a site missing from {sites_path.name} (e.g. "
                         f"{layers[table.site][unknown].astype(str).iloc[0]}); add the site or drop those layers")
    extra = [c for c in sites.columns if c == table.site or c not in layers.columns]
    joined = pd.DataFrame(layers).merge(pd.DataFrame(sites[extra]), on=table.site, how="left", validate="many_to_one")
    if isinstance(sites, gpd.GeoDataFrame) and sites.geometry.name in extra:
        joined = gpd.GeoDataFrame(joined, geometry=sites.geometry.name, crs=sites.crs)
    return joined


def load_table(table, target: str, rasters=(), name: str | None = None, duplicates: str = "keep",
               aux_targets: Sequence[str] = ()) -> SoilSamples:
    """Read a point table described by a :class:`~sptgnn.config.TableConfig` as soil samples.

    Args:
        table: The ``data.table`` section (path, coordinate columns and CRS, id, date, stream columns, elevation).
        target: Target column (``data.target``), kept under its own name (SOM stays SOM).
        rasters: ``data.rasters`` entries (config objects or :class:`~sptgnn.geo.stack.RasterSource`) whose bands
            are sampled at the points and added as feature columns of their stream.
        name: Dataset name of the samples (default: the file name).
        duplicates: Samples sharing a location: ``keep`` (warn), ``mean`` (average them, warn) or ``error``.
        aux_targets: Columns of the auxiliary targets of multi-task learning (``data.targets`` after the first),
            numeric; missing values are kept (NaN: a head is trained where its target is measured).

    Returns:
        :class:`SoilSamples` in the CRS of the coordinates, ``metadata`` with ``source``, ``units``, ``dropped``
        (reason → rows dropped) and ``rasters`` (the resolved raster paths).

    Raises:
        TableError: Missing file or column, text in a numeric column, missing or duplicated ids, no CRS, missing
            targets/features without ``drop_missing``, or nothing left after dropping.
        RasterError: A raster problem (missing band, CRS without transform, no point on the rasters).
    """
    path = resolve_data_path(table.path)
    if not path.is_file():
        raise TableError(f"point table not found: {path} (data.table.path '{table.path}'; relative paths are read under "
                         f"the data directory {data_dir()}, set SPTGNN_DATA_DIR to change it)")
    frame = read_table(path, table.layer)
    if len(frame) == 0:
        raise TableError(f"{path}: the table has no rows")
    frame = frame.reset_index(drop=True)
    if table.sites is not None:
        frame = _join_sites(frame, table, path)
    id_col = table.id
    if id_col is not None:
        _column(frame, id_col, path, "id")
        if frame[id_col].isna().any():
            raise TableError(f"{path}: id column '{id_col}' is empty in {_rows(frame[id_col].isna().to_numpy(), frame, None)}; fill it or drop data.table.id")
        dup = frame[id_col].duplicated(keep=False)
        if dup.any():
            raise TableError(f"{path}: id column '{id_col}' has duplicates in {_rows(dup.to_numpy(), frame, id_col)}; ids must be unique")

    # -- coordinates ----------------------------------------------------------------------------------------------
    if table.x is not None:
        for key, col in (("x", table.x), ("y", table.y)):
            _column(frame, col, path, key)
        crs = table.crs or (frame.crs if isinstance(frame, gpd.GeoDataFrame) else None)
        if crs is None:
            raise TableError(f"{path}: data.table.crs is required with x/y columns (e.g. EPSG:4326 for lon/lat degrees, or the "
                             "EPSG code of projected metres)")
        x = _numeric(frame, table.x, path, id_col, "x")
        y = _numeric(frame, table.y, path, id_col, "y")
        bad = (~np.isfinite(x) | ~np.isfinite(y)).to_numpy()
        if bad.any():
            raise TableError(f"{path}: coordinates '{table.x}'/'{table.y}' are missing in {_rows(bad, frame, id_col)}; fill or remove those rows")
        if axes_swapped(np.c_[x.to_numpy(), y.to_numpy()], crs):
            raise TableError(f"{path}: the points fall outside the area of {crs} unless '{table.x}' and '{table.y}' are "
                             "exchanged; swap data.table.x and data.table.y")
        data = pd.DataFrame(frame.drop(columns="geometry", errors="ignore"))
        gdf = gpd.GeoDataFrame(data, geometry=gpd.points_from_xy(x.to_numpy(), y.to_numpy()), crs=crs)
    else:
        if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry is None:
            raise TableError(f"{path}: the table has no point geometry; set data.table.x, data.table.y and data.table.crs "
                             f"to its coordinate columns (columns: {list(frame.columns)})")
        gdf = frame
        if table.crs is not None:
            gdf = gdf.set_crs(table.crs, allow_override=True)
        if gdf.crs is None:
            raise TableError(f"{path}: the geometry has no CRS; set data.table.crs (e.g. EPSG:25832)")
        if not (gdf.geometry.geom_type == "Point").all():
            raise TableError(f"{path}: the geometry must be points (found {sorted(set(gdf.geometry.geom_type))})")
    gdf = gdf.copy()
    gdf["__row"] = np.arange(len(gdf))

    dropped: dict[str, int] = {}
    missing_rows: dict[str, np.ndarray] = {}

    # -- target and table features --------------------------------------------------------------------------------
    _column(gdf, target, path, "target (data.target)")
    columns = {"imagery": list(table.imagery), "environment": list(table.environment)}
    for col in [target] + columns["imagery"] + columns["environment"]:
        _column(gdf, col, path, "imagery/environment")
        gdf[col] = _numeric(gdf, col, path, id_col, "target" if col == target else "feature")
        missing_rows[col] = gdf[col].isna().to_numpy()

    for col in aux_targets:
        _column(gdf, col, path, "auxiliary target (data.targets)")
        gdf[col] = _numeric(gdf, col, path, id_col, "target")

    # -- profiles: a site's layers and their depths ---------------------------------------------------------------
    if table.site is not None:
        _column(gdf, table.site, path, "site")
    for key in ("top_cm", "bottom_cm"):
        col = getattr(table, key)
        if col is not None:
            _column(gdf, col, path, key)
            gdf[col] = _numeric(gdf, col, path, id_col, "layer depth")
    if table.top_cm is not None:  # organic layers above the mineral surface (negative depths) or inverted records
        top, bottom = gdf[table.top_cm], gdf[table.bottom_cm]
        missing_rows["layer depths (missing, negative or bottom not below top)"] = ~(
            (top >= 0) & (bottom > top)).to_numpy()

    # -- date -----------------------------------------------------------------------------------------------------
    if table.date is not None:
        _column(gdf, table.date, path, "date")
        parsed = pd.to_datetime(gdf[table.date], errors="coerce")
        text = parsed.isna() & gdf[table.date].notna()
        if text.any():
            raise TableError(f"{path}: date column '{table.date}' has values that are not dates "
                             f"({gdf[table.date][text].astype(str).unique()[:3].tolist()}) in {_rows(text.to_numpy(), gdf, id_col)}; use YYYY-MM-DD")
        gdf[table.date] = parsed
        missing_rows[table.date] = parsed.isna().to_numpy()

    # -- raster covariates ----------------------------------------------------------------------------------------
    raster_paths: list[str] = []
    sources = [s if isinstance(s, RasterSource) else RasterSource.from_config(s) for s in rasters]
    if sources:
        with CovariateStack.open(sources) as stack:
            clash = [f for f in stack.features if f in gdf.columns]
            if clash:
                raise TableError(f"{path}: raster feature(s) {clash} have the names of table columns; rename them with `bands:` "
                                 "or `strip:` in data.rasters (or drop the `strip:` that made them equal)")
            xy = np.c_[gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy()]
            values, ok = stack.sample_points(xy, gdf.crs)
            for j, f in enumerate(stack.features):
                gdf[f] = values[:, j]
            for stream, feats in stack.streams().items():
                columns[stream] = columns.get(stream, []) + feats
            missing_rows["covariate rasters (off the grid or nodata)"] = ~ok
            raster_paths = [str(p) for p in stack.files]

    if table.elevation is not None:
        if table.elevation not in gdf.columns:
            raise TableError(f"{path}: elevation '{table.elevation}' is neither a column nor a raster feature; "
                             f"raster features and columns: {[c for c in gdf.columns if c not in ('geometry', '__row')]}")
        gdf[table.elevation] = _numeric(gdf, table.elevation, path, id_col, "elevation")
        missing_rows[table.elevation] = gdf[table.elevation].isna().to_numpy()

    # -- missing values: error or drop ----------------------------------------------------------------------------
    drop = np.zeros(len(gdf), dtype=bool)
    for what, mask in missing_rows.items():
        if not mask.any():
            continue
        if not table.drop_missing:
            kind = "target" if what == target else "value"
            raise TableError(
                f"{path}: {kind} '{what}' is missing in {int(mask.sum())} row(s): {_rows(mask, gdf, id_col)}; fill them, "
                "remove them, or set data.table.drop_missing: true to drop such rows"
            )
        if (mask & ~drop).any():
            dropped[what] = int((mask & ~drop).sum())
        drop |= mask
    if drop.all():
        raise TableError(f"{path}: every row misses a target or a covariate ({dropped}); nothing is left to train on")
    if drop.any():
        warnings.warn(f"{path.name}: dropped {int(drop.sum())} of {len(gdf)} rows with missing values ({dropped})", stacklevel=2)
        gdf = gdf.loc[~drop]

    ids = _id_text(gdf[id_col]) if id_col is not None else (gdf["__row"] + 1).map(lambda i: f"{path.stem}-{i}")
    if "sample_id" in gdf.columns and id_col != "sample_id":
        gdf = gdf.rename(columns={"sample_id": "sample_id_original"})
    gdf["sample_id"] = ids.to_numpy()
    gdf = gdf.drop(columns="__row").reset_index(drop=True)
    profile = [c for c in (table.site, table.top_cm, table.bottom_cm) if c is not None]
    gdf = _duplicate_locations(gdf, name or path.name, duplicates, profile)
    return SoilSamples(
        frame=gdf,
        targets=[target, *aux_targets],
        feature_groups=columns,
        elevation=table.elevation,
        date_column=table.date,
        folds=None,
        name=name or path.name,
        metadata={"source": str(path), "units": {target: table.units} if table.units else {}, "dropped": dropped,
                  "rasters": raster_paths},
        site=table.site,
        depth=None if table.top_cm is None else (table.top_cm, table.bottom_cm),
    )


def _duplicate_locations(gdf, name: str, rule: str, profile: Sequence[str] = ()):
    """Samples that share a location, by ``data.duplicates``: repeated samples of a plot sit in one spatial block, and
    different values at one point bound what any model can explain. ``keep`` warns, ``mean`` averages each group's
    numeric columns into its first row (warns), ``error`` raises :class:`TableError` naming them. The ``profile``
    columns (site, layer top and bottom) join the location: the layers of one profile are not duplicates."""
    key = pd.Series(list(zip(gdf.geometry.x.round(6), gdf.geometry.y.round(6), *(gdf[c] for c in profile))),
                    index=gdf.index)
    dup = key.duplicated(keep=False).to_numpy()
    if not dup.any():
        return gdf
    ids = ", ".join(gdf["sample_id"].astype(str)[dup].head(4))
    what = f"{name}: {int(dup.sum())} samples share their location with another sample (e.g. {ids})"
    if rule == "error":
        raise TableError(f"{what}; average them (data.duplicates: mean), keep them (keep) or fix the coordinates")
    if rule == "keep":
        warnings.warn(f"{what}; they are kept as separate samples (data.duplicates: keep)", stacklevel=3)
        return gdf
    groups = key.map({k: i for i, k in enumerate(dict.fromkeys(key))})
    numeric = [c for c in gdf.columns if c != gdf.geometry.name and pd.api.types.is_numeric_dtype(gdf[c])]
    first = gdf.groupby(groups.to_numpy(), sort=True).head(1).copy()
    first[numeric] = gdf.groupby(groups.to_numpy(), sort=True)[numeric].mean().to_numpy()
    warnings.warn(f"{what}; averaged into {int(len(gdf) - len(first))} fewer samples (data.duplicates: mean)",
                  stacklevel=3)
    return first.reset_index(drop=True)


def load_samples(data) -> SoilSamples:
    """Samples of a :class:`~sptgnn.config.DataConfig`: its ``table`` (with ``rasters``), else its named dataset; with
    ``data.context``, the context features added (:func:`sptgnn.data.context.add_context`).

    Raises:
        TableError, RasterError, DatasetError: See :func:`load_table`, :func:`~sptgnn.data.datasets.load_dataset`.
    """
    from sptgnn.data.context import add_context, context_sources
    from sptgnn.data.datasets import load_dataset

    if data.table is None and data.rasters:
        raise TableError("data.rasters is only read together with data.table (covariates sampled at the table's "
                         "points); add a data.table section or remove data.rasters")
    samples = (load_table(data.table, data.target, data.rasters, duplicates=data.duplicates,
                          aux_targets=data.aux_targets) if data.table is not None
               else load_dataset(data.dataset))
    if data.context is None:
        return samples
    sources, exclude = (data.rasters, ()) if data.table is not None else context_sources(samples)
    return add_context(samples, sources, data.context, exclude)


__all__ = ["TableError", "load_samples", "load_table", "RasterError"]
