"""Reading chip windows from GeoTIFF stacks on one grid: source inspection, the common grid, boundless windowed reads
(:func:`sptgnn.geo.aligned.warped`) and cutting chips out of a read block."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from pyproj import CRS
from rasterio.transform import Affine
from rasterio.warp import transform_bounds

from sptgnn.geo.aligned import warped
from sptgnn.data.chips import ChipError, ChipGrid, ChipSource, source_dates


@dataclass
class _Opened:
    src: ChipSource
    band_index: list[int]          # 1-based indexes into the file
    channels: list[str]
    dates: np.ndarray | None
    nodata: float | None


def inspect_source(src: ChipSource) -> tuple[_Opened, dict]:
    """Band indexes, channel names, dates and georeferencing of a source. Raises :class:`ChipError`."""
    path = Path(src.path)
    if not path.is_file():
        raise ChipError(f"chip source {path} not found; check imagery.sources[].path")
    with rasterio.open(path) as ds:
        if ds.crs is None:
            raise ChipError(f"{path} has no CRS; assign one (e.g. gdal_edit.py -a_srs EPSG:32633 {path.name})")
        descriptions = list(ds.descriptions)
        names = [d if d else f"b{i + 1}" for i, d in enumerate(descriptions)]
        dates = source_dates(src, descriptions, ds.count)
        geo = {"crs": ds.crs.to_wkt(), "res": ds.res, "bounds": tuple(ds.bounds), "count": ds.count}
        nodata = ds.nodata
    if dates is None:
        wanted = list(src.bands) if src.bands is not None else names
        missing = [b for b in wanted if b not in names]
        if missing:
            raise ChipError(f"{path} has no band(s) {missing}; its bands (descriptions) are {names}. Fix imagery.sources[].bands "
                            "or set the band descriptions of the file")
        index = [names.index(b) + 1 for b in wanted]
        channels = wanted
    else:
        per_date = list(src.bands) if src.bands is not None else ["value" if src.dates == "descriptions" else "b1"]
        if len(dates) * len(per_date) != geo["count"]:
            raise ChipError(f"{path}: {len(dates)} dates × {len(per_date)} channels per date ≠ {geo['count']} bands")
        index = list(range(1, geo["count"] + 1))
        channels = per_date
    chan = [] if src.kind == "cloud_mask" else [f"{src.label}:{b}" for b in channels]
    return _Opened(src, index, chan, dates, nodata), geo


def default_grid(geos: list[dict], crs: str | None, resolution: float | None) -> ChipGrid:
    first = geos[0]
    target = CRS.from_user_input(crs) if crs else CRS.from_wkt(first["crs"])
    if resolution:
        res = (float(resolution), float(resolution))
    elif CRS.from_wkt(first["crs"]) == target:
        res = tuple(float(r) for r in first["res"])
    else:
        b = transform_bounds(CRS.from_wkt(first["crs"]), target, *first["bounds"])
        width = (first["bounds"][2] - first["bounds"][0]) / first["res"][0]
        r = (b[2] - b[0]) / width
        res = (r, r)
    if CRS.from_wkt(first["crs"]) == target:
        origin = (first["bounds"][0], first["bounds"][3])
    else:
        b = transform_bounds(CRS.from_wkt(first["crs"]), target, *first["bounds"])
        origin = (b[0], b[3])
    return ChipGrid(target.to_string(), res, origin)


def _on_grid(geo: dict, grid: ChipGrid) -> tuple[bool, tuple[int, int, int, int]]:
    """Whether a source already lies on the grid, and its pixel extent on the grid ``(row0, col0, rows, cols)``."""
    gcrs = CRS.from_user_input(grid.crs)
    scrs = CRS.from_wkt(geo["crs"])
    rx, ry = grid.res
    if scrs == gcrs:
        b = geo["bounds"]
    else:
        b = transform_bounds(scrs, gcrs, *geo["bounds"])
    col0 = int(np.floor((b[0] - grid.origin[0]) / rx + 1e-6))
    row0 = int(np.floor((grid.origin[1] - b[3]) / ry + 1e-6))
    cols = int(np.ceil((b[2] - grid.origin[0]) / rx - 1e-6)) - col0
    rows = int(np.ceil((grid.origin[1] - b[1]) / ry - 1e-6)) - row0
    same = (
        scrs == gcrs
        and np.allclose(geo["res"], grid.res, rtol=1e-9, atol=1e-9)
        and abs((geo["bounds"][0] - grid.origin[0]) / rx - round((geo["bounds"][0] - grid.origin[0]) / rx)) < 1e-6
        and abs((grid.origin[1] - geo["bounds"][3]) / ry - round((grid.origin[1] - geo["bounds"][3]) / ry)) < 1e-6
    )
    return same, (row0, col0, rows, cols)


class SourceReader:
    """A source opened on the grid: a dataset, or a :class:`WarpedVRT` when it must be reprojected or resampled."""

    def __init__(self, op: _Opened, grid: ChipGrid):
        self.op = op
        self.ds = rasterio.open(op.src.path)
        geo = {"crs": self.ds.crs.to_wkt(), "res": self.ds.res, "bounds": tuple(self.ds.bounds)}
        same, (row0, col0, rows, cols) = _on_grid(geo, grid)
        self.offset = (row0, col0)
        self.vrt = None
        if same:
            self.shape = (self.ds.height, self.ds.width)
            self.reader = self.ds
        else:
            transform = Affine(grid.res[0], 0, grid.origin[0] + col0 * grid.res[0], 0, -grid.res[1],
                               grid.origin[1] - row0 * grid.res[1])
            is_float = np.issubdtype(np.dtype(self.ds.dtypes[0]), np.floating)
            nodata = self.ds.nodata if self.ds.nodata is not None else (np.nan if is_float else None)
            self.vrt = warped(self.ds, grid.crs, transform, cols, rows, op.src.resampling, nodata=nodata,
                              add_alpha=nodata is None)
            self.shape = (rows, cols)
            self.reader = self.vrt

    def close(self):
        if self.vrt is not None:
            self.vrt.close()
        self.ds.close()

    def _clean(self, values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        valid = valid & np.isfinite(values)
        if self.op.nodata is not None and np.isfinite(self.op.nodata):
            valid &= values != np.float32(self.op.nodata)
        return np.where(valid, values, 0.0).astype(np.float32), valid

    def read(self, window=None) -> tuple[np.ndarray, np.ndarray]:
        """``(bands, rows, cols)`` values (float32, 0 where invalid) and validity of a window (grid-local pixels)."""
        idx = self.op.band_index
        values = self.reader.read(idx, window=window, out_dtype="float32")
        valid = self.reader.read_masks(idx, window=window) > 0
        return self._clean(values, valid)


def cut_chip(values: np.ndarray, valid: np.ndarray, offset: tuple[int, int], rows: np.ndarray, cols: np.ndarray,
         size: int) -> tuple[np.ndarray, np.ndarray]:
    """Boundless windows: ``(N, bands, size, size)`` values and validity, rows/cols = grid pixel of each chip's centre."""
    half = size // 2
    nb, nr, nc = values.shape
    r = rows[:, None] - offset[0] - half + np.arange(size)[None, :]   # (N, size) raster rows
    c = cols[:, None] - offset[1] - half + np.arange(size)[None, :]
    inside = ((r >= 0) & (r < nr))[:, :, None] & ((c >= 0) & (c < nc))[:, None, :]   # (N, size, size)
    rr = np.clip(r, 0, nr - 1)[:, :, None]
    cc = np.clip(c, 0, nc - 1)[:, None, :]
    out = values[:, rr, cc].transpose(1, 0, 2, 3)        # (N, bands, size, size)
    ok = valid[:, rr, cc].transpose(1, 0, 2, 3) & inside[:, None]
    return np.where(ok, out, 0.0).astype(np.float32), ok


def cut_windowed(reader: SourceReader, rows: np.ndarray, cols: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`cut_chip`, one windowed read per chip (the intersection of its window with the raster), for rasters too
    large to hold in memory."""
    from rasterio.windows import Window

    half = size // 2
    nr, nc = reader.shape
    nb = len(reader.op.band_index)
    out = np.zeros((len(rows), nb, size, size), np.float32)
    ok = np.zeros((len(rows), nb, size, size), bool)
    for i, (r, c) in enumerate(zip(rows - reader.offset[0] - half, cols - reader.offset[1] - half)):
        r0, c0, r1, c1 = max(r, 0), max(c, 0), min(r + size, nr), min(c + size, nc)
        if r1 <= r0 or c1 <= c0:
            continue
        v, m = reader.read(Window(c0, r0, c1 - c0, r1 - r0))
        out[i, :, r0 - r:r1 - r, c0 - c:c1 - c] = v
        ok[i, :, r0 - r:r1 - r, c0 - c:c1 - c] = m
    return out, ok
