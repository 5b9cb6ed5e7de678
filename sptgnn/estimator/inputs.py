"""Tables as the estimator takes them (GeoDataFrame, DataFrame with coordinate columns, array) → `SoilSamples`."""

from __future__ import annotations

from typing import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd

from sptgnn.data.samples import SamplesError, SoilSamples


def as_frame(X, coords: Sequence[str] | None, crs) -> gpd.GeoDataFrame:
    """``X`` as a point GeoDataFrame.

    Args:
        X: A GeoDataFrame with point geometry and a CRS; a DataFrame with the ``coords`` columns; or an array
            ``(num_samples, 2 + num_features)`` whose first two columns are x and y (then features are named
            ``f0, f1, …``).
        coords: ``(x, y)`` column names of a DataFrame (default ``("x", "y")``); ignored for a GeoDataFrame.
        crs: CRS of the coordinates of a DataFrame or array, e.g. ``"EPSG:4326"`` or ``"EPSG:25832"``; for a
            GeoDataFrame it overrides nothing and may be ``None``.

    Raises:
        SamplesError: No coordinates, no CRS, or an array with fewer than two columns.
    """
    if isinstance(X, gpd.GeoDataFrame):
        if X.crs is None and crs is not None:
            X = X.set_crs(crs)
        return X.reset_index(drop=True)
    if not isinstance(X, pd.DataFrame):
        arr = np.asarray(X)
        if np.iscomplexobj(arr):
            raise SamplesError("X holds complex numbers; coordinates and covariates must be real")
        arr = arr.astype(np.float64)
        if arr.ndim != 2 or arr.shape[1] < 2:
            raise SamplesError(f"X must be a table with coordinates: a GeoDataFrame, a DataFrame with x/y columns, or an "
                               f"array (num_samples, 2 + num_features) with x, y first; got shape {arr.shape}")
        X = pd.DataFrame(arr[:, 2:], columns=[f"f{i}" for i in range(arr.shape[1] - 2)]).assign(x=arr[:, 0], y=arr[:, 1])
        coords = ("x", "y")
    xc, yc = tuple(coords or ("x", "y"))
    missing = [c for c in (xc, yc) if c not in X.columns]
    if missing:
        raise SamplesError(f"X has no coordinate column(s) {missing}: pass a GeoDataFrame, or coords=(x, y) naming the "
                           f"coordinate columns; columns: {list(X.columns)[:20]}")
    if crs is None:
        raise SamplesError("X has plain coordinate columns but no CRS: pass crs=, e.g. crs='EPSG:4326' for lon/lat")
    frame = X.drop(columns=[xc, yc]).reset_index(drop=True)
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(X[xc].to_numpy(float), X[yc].to_numpy(float)), crs=crs)


def streams(frame: gpd.GeoDataFrame, imagery: Sequence[str] | None, environment: Sequence[str] | None,
            exclude: Sequence[str]) -> dict[str, list[str]]:
    """Feature columns per stream: the given lists, and when both are ``None`` every numeric column that is not
    in ``exclude`` (target, id, date, elevation) as the environment stream."""
    if imagery is None and environment is None:
        skip = set(exclude) | {frame.geometry.name}
        environment = [c for c in frame.columns if c not in skip and pd.api.types.is_numeric_dtype(frame[c])
                       and not pd.api.types.is_bool_dtype(frame[c])]
    return {"imagery": list(imagery or []), "environment": list(environment or [])}


def to_samples(X, y=None, *, target: str, coords=None, crs=None, imagery=None, environment=None, elevation=None,
               date=None, id_column=None, name: str = "samples", aux_targets=()) -> SoilSamples:
    """:class:`~sptgnn.data.samples.SoilSamples` of a table (or of ``SoilSamples``, whose streams, elevation and date
    column are then the defaults), with ``y`` (``(num_samples,)``, target units) stored as the ``target`` column when
    given. ``aux_targets`` (multi-task ``data.targets`` after the first) present in the table join the targets and
    leave the streams.

    Raises:
        SamplesError: Bad coordinates or CRS, a missing column, a NaN feature, ``y`` of another length.
    """
    metadata: dict = {}
    site, depth = None, None
    if isinstance(X, SoilSamples):  # the project's own loaders: their streams, elevation and dates are the defaults
        if imagery is None and environment is None:
            imagery, environment = X.feature_groups.get("imagery", []), X.feature_groups.get("environment", [])
        elevation, date = elevation or X.elevation, date or X.date_column
        site, depth = X.site, X.depth  # profile layers stay layers of their sites
        name, metadata, X = X.name, dict(X.metadata), X.frame
    frame = as_frame(X, coords, crs).copy()
    if y is not None:
        values = np.asarray(y, dtype=np.float64).reshape(-1)
        if values.size != len(frame):
            raise SamplesError(f"y has {values.size} values for {len(frame)} rows of X")
        frame[target] = values
    if id_column is not None:
        if id_column not in frame.columns:
            raise SamplesError(f"id column '{id_column}' not in X; columns: {list(frame.columns)[:20]}")
        frame["sample_id"] = frame[id_column].astype(str)
    elif "sample_id" not in frame.columns:
        frame["sample_id"] = np.arange(len(frame)).astype(str)
    if date is not None:
        if date not in frame.columns:
            raise SamplesError(f"date column '{date}' not in X; columns: {list(frame.columns)[:20]}")
        frame[date] = pd.to_datetime(frame[date])
    aux = [t for t in aux_targets if t in frame.columns and t != target]
    exclude = [target, *aux, "sample_id", id_column, date, elevation, site]
    groups = streams(frame, imagery, environment, [c for c in exclude if c])
    targets = [target] if target in frame.columns else []
    return SoilSamples(frame=frame, targets=targets + aux if targets else [], feature_groups=groups,
                       elevation=elevation, date_column=date, name=name, metadata=metadata, site=site,
                       depth=None if depth is None else tuple(depth))


__all__ = ["as_frame", "streams", "to_samples"]
