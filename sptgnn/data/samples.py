"""`SoilSamples`: georeferenced soil samples with targets, a sampling date and named feature streams."""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd

from sptgnn.errors import UserError
from sptgnn.geo import metric_coords

STREAMS = ("imagery", "environment")


def samples_fingerprint(sample_ids, values) -> str:
    """SHA-256 of the sample ids with their observed values, sorted by id (one line ``id<TAB>repr(float)`` each;
    duplicate ids count once): which samples, with which labels, a model or a score was made from.

    Args:
        sample_ids: ``(n,)`` identifiers.
        values: ``(n,)`` observed target values.
    """
    import hashlib

    rows = pd.DataFrame({"sample_id": np.asarray(sample_ids).astype(str), "y": np.asarray(values, dtype=float)})
    rows = rows.drop_duplicates("sample_id").sort_values("sample_id", kind="stable")
    text = "\n".join(f"{s}\t{y!r}" for s, y in zip(rows["sample_id"], rows["y"].astype(float)))
    return hashlib.sha256(text.encode()).hexdigest()


class SamplesError(UserError):
    """Samples that cannot be used as they are; the message names the rows or columns at fault."""


def _rows(mask: np.ndarray, ids: pd.Series, limit: int = 10) -> str:
    bad = ids[mask].astype(str).tolist()
    more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
    return ", ".join(bad[:limit]) + more


@dataclass
class SoilSamples:
    """Soil samples as nodes-to-be: point geometry with a CRS, targets and feature streams.

    Attributes:
        frame: GeoDataFrame, one row per sample, point geometry with a CRS. Holds the ``sample_id`` column, the target
            columns, the feature columns and optionally the date column.
        targets: Target column names, e.g. ``["soc_g_kg"]`` (SOC in g/kg).
        feature_groups: Feature columns per stream: ``{"imagery": [...], "environment": [...]}``. The position stream is
            derived from the geometry, the time stream from ``date_column``.
        elevation: Column with elevation in metres (used by the elevation relation), or ``None``.
        date_column: Column of sampling dates (``datetime64``), or ``None`` when unknown.
        folds: Shipped fold ids, shape ``(num_samples,)``, or ``None``.
        name: Dataset name, e.g. ``"limesoda:BB.250"``.
        site: Column of site (profile) ids when a site holds several layers (every split keeps them together), or
            ``None``: every sample its own site.
        depth: Columns of each layer's top and bottom depth (cm), or ``None`` (one layer, recorded in the config).

    Raises:
        SamplesError: On construction, when a column is missing, the first target or a feature is NaN (the rows are
            named; targets after the first may be missing, NaN, as multi-task learning masks them), a value is not
            numeric, the geometry is not points, or the CRS is missing.
    """

    frame: gpd.GeoDataFrame
    targets: list[str]
    feature_groups: dict[str, list[str]]
    elevation: str | None = None
    date_column: str | None = None
    folds: np.ndarray | None = None
    name: str = "samples"
    metadata: dict = field(default_factory=dict)
    site: str | None = None
    depth: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        self.frame = self.frame.reset_index(drop=True)
        if self.folds is not None:
            self.folds = np.asarray(self.folds)
        self.validate()

    # -- validation -------------------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Check columns, values and CRS; raise :class:`SamplesError` with the offending rows or columns."""
        f = self.frame
        if not isinstance(f, gpd.GeoDataFrame):
            raise SamplesError(f"{self.name}: frame must be a GeoDataFrame with point geometry")
        if f.crs is None:
            raise SamplesError(
                f"{self.name}: the geometry has no CRS; set one, e.g. frame.set_crs('EPSG:4326') for lon/lat degrees "
                "or the EPSG code of the projected coordinates"
            )
        if len(f) == 0:
            raise SamplesError(f"{self.name}: no samples")
        if not (f.geometry.geom_type == "Point").all():
            raise SamplesError(f"{self.name}: every geometry must be a Point")
        if "sample_id" not in f.columns:
            raise SamplesError(f"{self.name}: missing column 'sample_id'")
        if f["sample_id"].duplicated().any():
            raise SamplesError(f"{self.name}: duplicated sample_id: {_rows(f['sample_id'].duplicated().values, f['sample_id'])}")
        unknown = set(self.feature_groups) - set(STREAMS)
        if unknown:
            raise SamplesError(f"{self.name}: unknown feature stream(s) {sorted(unknown)}; valid: {list(STREAMS)}")
        needed = list(self.targets) + self.feature_columns + ([self.elevation] if self.elevation else [])
        missing = [c for c in needed if c not in f.columns]
        if missing:
            raise SamplesError(f"{self.name}: missing column(s) {missing}; available: {list(f.columns)}")
        if self.date_column is not None and self.date_column not in f.columns:
            raise SamplesError(f"{self.name}: missing date column '{self.date_column}'")
        self._validate_profiles()
        for col in needed:
            values = pd.to_numeric(f[col], errors="coerce")
            if np.isinf(values.to_numpy(dtype=np.float64)).any():
                kind = "target" if col in self.targets else "feature"
                bad = np.isinf(values.to_numpy(dtype=np.float64))
                raise SamplesError(f"{self.name}: {kind} '{col}' is infinite in sample_id(s) {_rows(bad, f['sample_id'])}; "
                                   "drop or fix those rows first")
            bad = values.isna()
            if col in self.targets[1:]:  # a secondary target may be missing (multi-task masks it), never non-numeric
                bad = bad & f[col].notna()
            if bad.any():
                kind = "target" if col in self.targets else "feature"
                raise SamplesError(
                    f"{self.name}: {kind} '{col}' is NaN or not numeric in sample_id(s) "
                    f"{_rows(bad.values, f['sample_id'])}; drop or impute those rows first"
                )
        xy = np.c_[f.geometry.x.values, f.geometry.y.values]
        if not np.isfinite(xy).all():
            raise SamplesError(f"{self.name}: non-finite coordinates in sample_id(s) {_rows(~np.isfinite(xy).all(1), f['sample_id'])}")
        degrees = (np.abs(xy[:, 0]) <= 180).all() and (np.abs(xy[:, 1]) <= 90).all()
        if not f.crs.is_geographic and len(xy) > 1 and degrees and np.ptp(xy, axis=0).max() < 360:
            raise SamplesError(
                f"{self.name}: CRS {f.crs.to_string()} is projected (metres) but every coordinate lies within ±180/±90 "
                "and the samples span less than 360 m: they are probably lon/lat degrees; set the CRS to EPSG:4326"
            )
        if f.crs.is_geographic and ((np.abs(xy[:, 0]) > 180).any() or (np.abs(xy[:, 1]) > 90).any()):
            raise SamplesError(
                f"{self.name}: CRS {f.crs.to_string()} is geographic (degrees) but coordinates exceed ±180/±90; "
                "the points are probably projected: set the projected CRS instead"
            )
        if self.folds is not None and len(self.folds) != len(f):
            raise SamplesError(f"{self.name}: {len(self.folds)} fold ids for {len(f)} samples")

    # -- accessors --------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frame)

    @property
    def crs(self):
        """The samples' CRS (pyproj.CRS)."""
        return self.frame.crs

    @property
    def sample_ids(self) -> np.ndarray:
        """Sample identifiers, shape ``(num_samples,)``."""
        return self.frame["sample_id"].to_numpy()

    @property
    def feature_columns(self) -> list[str]:
        """All imagery and environment feature columns, in stream order, without duplicates."""
        cols: list[str] = []
        for stream in STREAMS:
            cols += [c for c in self.feature_groups.get(stream, []) if c not in cols]
        return cols

    def stream(self, name: str) -> np.ndarray:
        """Feature values of one stream, shape ``(num_samples, num_stream_features)``, float64 (zero columns if absent)."""
        cols = self.feature_groups.get(name, [])
        return self.frame[cols].to_numpy(dtype=np.float64).reshape(len(self), len(cols))

    def target(self, name: str | None = None) -> np.ndarray:
        """Target values in their units, shape ``(num_samples,)``.

        Raises:
            SamplesError: ``name`` is not one of :attr:`targets`.
        """
        name = name or self.targets[0]
        if name not in self.targets:
            raise SamplesError(f"{self.name}: target '{name}' not found; available targets: {self.targets}")
        return self.frame[name].to_numpy(dtype=np.float64)

    def elevation_m(self) -> np.ndarray | None:
        """Elevation in metres, shape ``(num_samples,)``, or ``None`` when the samples have none."""
        return None if self.elevation is None else self.frame[self.elevation].to_numpy(dtype=np.float64)

    def xy(self) -> np.ndarray:
        """Coordinates in the samples' CRS, shape ``(num_samples, 2)`` (x, y or lon, lat)."""
        return np.c_[self.frame.geometry.x.to_numpy(), self.frame.geometry.y.to_numpy()]

    def metric_coords(self) -> np.ndarray:
        """Coordinates in metres for neighbour search, shape ``(num_samples, d)``: ``d = 2`` projected x, y (the CRS's
        unit must be the metre), ``d = 3`` Earth-centred sphere coordinates for a geographic CRS (see
        :func:`sptgnn.geo.metric_coords`).

        Raises:
            SamplesError: A projected CRS whose unit is not the metre.
        """
        try:
            return metric_coords(self.xy(), self.crs)
        except ValueError as exc:
            raise SamplesError(f"{self.name}: {exc}") from None

    def lonlat(self) -> np.ndarray:
        """Longitude and latitude in degrees (WGS84), shape ``(num_samples, 2)``."""
        g = self.frame.geometry if self.crs.is_geographic else self.frame.geometry.to_crs("EPSG:4326")
        return np.c_[g.x.to_numpy(), g.y.to_numpy()]

    def dates(self) -> pd.Series | None:
        """Sampling dates as ``datetime64`` or ``None`` when unknown."""
        return None if self.date_column is None else pd.to_datetime(self.frame[self.date_column])

    def _validate_profiles(self) -> None:
        f = self.frame
        if self.site is not None:
            if self.site not in f.columns:
                raise SamplesError(f"{self.name}: missing site column '{self.site}'")
            if f[self.site].isna().any():
                raise SamplesError(f"{self.name}: site column '{self.site}' is empty in sample_id(s) "
                                   f"{_rows(f[self.site].isna().to_numpy(), f['sample_id'])}; fill it")
        if self.depth is not None:
            top, bottom = self.depth
            missing = [c for c in (top, bottom) if c not in f.columns]
            if missing:
                raise SamplesError(f"{self.name}: missing depth column(s) {missing}")
            u = pd.to_numeric(f[top], errors="coerce").to_numpy(dtype=np.float64)
            v = pd.to_numeric(f[bottom], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(u) | ~np.isfinite(v) | (u < 0) | (v <= u)
            if bad.any():
                raise SamplesError(f"{self.name}: layer depths '{top}'-'{bottom}' are missing, negative or inverted "
                                   f"(bottom not below top) in sample_id(s) {_rows(bad, f['sample_id'])}")

    def mid_depth_cm(self) -> np.ndarray | None:
        """Mid depth of every layer, cm, ``(num_samples,)`` (halfway between its top and bottom), or ``None`` for
        samples without layer depths."""
        if self.depth is None:
            return None
        top, bottom = self.depth
        return (self.frame[top].to_numpy(dtype=np.float64) + self.frame[bottom].to_numpy(dtype=np.float64)) / 2

    def sites(self) -> np.ndarray | None:
        """Site id of every sample ``(num_samples,)`` when the samples are profile layers (the ``site`` column), else
        ``None`` (every sample its own site)."""
        return None if self.site is None else self.frame[self.site].astype(str).to_numpy()

    def subset(self, index: np.ndarray) -> "SoilSamples":
        """The samples at ``index`` (integer positions or a boolean mask), with their folds."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return SoilSamples(
            frame=self.frame.iloc[index].reset_index(drop=True),
            targets=list(self.targets),
            feature_groups={k: list(v) for k, v in self.feature_groups.items()},
            elevation=self.elevation,
            date_column=self.date_column,
            folds=None if self.folds is None else self.folds[index],
            name=self.name,
            metadata=dict(self.metadata),
            site=self.site,
            depth=self.depth,
        )
