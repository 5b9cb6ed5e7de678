"""Image chips centred on samples, from one or more GeoTIFF stacks on a common grid, with an on-disk cache.

For every sample a ``C × H × W`` chip (single-date sources) or a ``T × C × H × W`` series (a multi-date stack with its
acquisition dates) is cut from the sources, all reprojected to one grid (the first data source's CRS and pixel size
unless set) with :class:`rasterio.vrt.WarpedVRT`. Reads are boundless: pixels outside a raster, or equal to its nodata,
or non-finite, are marked invalid in a boolean mask of the same shape, so encoders can ignore them. Static channels
(e.g. a DEM) are broadcast over the dates of a multi-date stack, so a series chip holds every channel at every date.

Chips are cached on disk (``.npz`` shards) under a key of the sources (resolved path, size and modification time, bands,
dates, resampling), the grid and the chip size; within it each chip is keyed by the sample id and its coordinates (its
window). A second extraction of the same samples opens no raster.

This is the point/patch sampler that torchgeo lacks (torchgeo PR #800); the chip is the input of the imagery encoders
of :mod:`sptgnn.imagery`.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd
import rasterio
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

CACHE_FORMAT = 1


class ChipError(ValueError):
    """Chip sources or samples that cannot give chips; the message names the file, band or samples and the fix."""


@dataclass(frozen=True)
class ChipSource:
    """One GeoTIFF stack that chips are cut from.

    Attributes:
        path: GeoTIFF file.
        bands: Band names to read, matched against the band descriptions (``B04``, ``VV``, ``DEM`` ...); ``None`` reads
            every band. For a multi-date stack, the channel names of one date (its bands are date-major:
            ``t0c0, t0c1, …, t1c0, …``).
        name: Prefix of the channel names (default: the file's stem); the channel of band ``B04`` is ``"{name}:B04"``.
        dates: Acquisition dates of a multi-date stack: ``"descriptions"`` (each band description is a date, one
            channel per date), a path to a text file with one date per line, or a list of dates. ``None``: a
            single-date source.
        kind: ``"data"`` gives channels; ``"cloud_mask"`` gives none but marks pixels where it is non-zero invalid in
            the multi-date channels of the same date (it must have the dates of the multi-date data source; static
            channels such as a DEM are not masked).
        resampling: Resampling used when the source must be reprojected (``bilinear``, ``nearest``, ``cubic``...).
    """

    path: str | Path
    bands: tuple[str, ...] | None = None
    name: str | None = None
    dates: str | tuple | None = None
    kind: Literal["data", "cloud_mask"] = "data"
    resampling: str = "bilinear"

    def __post_init__(self):
        if self.bands is not None and not isinstance(self.bands, tuple):
            object.__setattr__(self, "bands", tuple(self.bands))
        if isinstance(self.dates, list):
            object.__setattr__(self, "dates", tuple(self.dates))

    @property
    def label(self) -> str:
        return self.name or Path(self.path).stem


@dataclass
class Chips:
    """Chips of ``N`` samples.

    Attributes:
        values: ``(N, C, H, W)`` float32, or ``(N, T, C, H, W)`` for a multi-date series; invalid pixels hold 0.
        mask: Same shape, bool: True where the pixel is valid.
        channels: ``C`` channel names, ``"{source}:{band}"``.
        dates: ``(T,)`` ``datetime64[s]`` acquisition dates, or ``None`` for single-date chips.
        sample_ids: ``(N,)`` sample ids.
        resolution: Pixel size of the common grid, in its CRS units (m).
    """

    values: np.ndarray
    mask: np.ndarray
    channels: list[str]
    dates: np.ndarray | None
    sample_ids: np.ndarray
    resolution: tuple[float, float] = (1.0, 1.0)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def is_series(self) -> bool:
        return self.dates is not None

    def subset(self, index: np.ndarray) -> "Chips":
        """The chips at ``index`` (positions or mask)."""
        return Chips(self.values[index], self.mask[index], list(self.channels), self.dates, self.sample_ids[index],
                     self.resolution)

    def select(self, channels: Sequence[str]) -> "Chips":
        """The named channels in the given order.

        Raises:
            ChipError: A channel is not in the chips; the message lists the available ones.
        """
        missing = [c for c in channels if c not in self.channels]
        if missing:
            raise ChipError(
                f"chips have no channel(s) {missing}; available: {self.channels}. Add a source with those bands to "
                "imagery.sources (channel names are 'SOURCE_NAME:BAND')"
            )
        idx = [self.channels.index(c) for c in channels]
        axis = 2 if self.is_series else 1
        return Chips(np.take(self.values, idx, axis=axis), np.take(self.mask, idx, axis=axis), list(channels), self.dates,
                     self.sample_ids, self.resolution)


# -- dates -----------------------------------------------------------------------------------------------------------
def _parse_dates(values: Sequence[str], what: str) -> np.ndarray:
    try:
        return pd.to_datetime(pd.Series([str(v).strip() for v in values]), utc=True).dt.tz_localize(None).to_numpy(
            dtype="datetime64[s]")
    except (ValueError, TypeError) as exc:
        raise ChipError(f"{what}: cannot read acquisition dates ({exc}); give ISO dates such as 2017-05-31T10:00:00") from None


def _source_dates(src: ChipSource, descriptions: Sequence[str | None], count: int) -> np.ndarray | None:
    if src.dates is None:
        return None
    if src.dates == "descriptions":
        if any(d is None for d in descriptions):
            raise ChipError(f"{src.path}: dates='descriptions' but some bands have no description; give a timestamps file")
        return _parse_dates(descriptions, str(src.path))
    if isinstance(src.dates, (str, Path)):
        path = Path(src.dates)
        if not path.is_file():
            raise ChipError(f"{src.path}: timestamps file {path} not found (one ISO date per line)")
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        return _parse_dates(lines, str(path))
    return _parse_dates(list(src.dates), str(src.path))


# -- grid ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChipGrid:
    """The common pixel grid: CRS, pixel size and origin (a grid corner); every source is read on it."""

    crs: str
    res: tuple[float, float]
    origin: tuple[float, float]

    def key(self) -> dict:
        return {"crs": CRS.from_user_input(self.crs).to_wkt(), "res": list(self.res), "origin": list(self.origin)}


@dataclass
class _Opened:
    src: ChipSource
    band_index: list[int]          # 1-based indexes into the file
    channels: list[str]
    dates: np.ndarray | None
    nodata: float | None


def _inspect(src: ChipSource) -> tuple[_Opened, dict]:
    """Band indexes, channel names, dates and georeferencing of a source. Raises :class:`ChipError`."""
    path = Path(src.path)
    if not path.is_file():
        raise ChipError(f"chip source {path} not found; check imagery.sources[].path")
    with rasterio.open(path) as ds:
        if ds.crs is None:
            raise ChipError(f"{path} has no CRS; assign one (e.g. gdal_edit.py -a_srs EPSG:32633 {path.name})")
        descriptions = list(ds.descriptions)
        names = [d if d else f"b{i + 1}" for i, d in enumerate(descriptions)]
        dates = _source_dates(src, descriptions, ds.count)
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


def _default_grid(geos: list[dict], crs: str | None, resolution: float | None) -> ChipGrid:
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


class _Reader:
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
            self.vrt = WarpedVRT(self.ds, crs=grid.crs, transform=transform, width=cols, height=rows, nodata=nodata,
                                 add_alpha=nodata is None, resampling=Resampling[op.src.resampling])
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


def _cut(values: np.ndarray, valid: np.ndarray, offset: tuple[int, int], rows: np.ndarray, cols: np.ndarray,
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


def _cut_windowed(reader: _Reader, rows: np.ndarray, cols: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`_cut`, one windowed read per chip (the intersection of its window with the raster), for rasters too
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


# -- cache -----------------------------------------------------------------------------------------------------------
def _file_key(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class ChipCache:
    """On-disk chip cache: ``DIR/<group key>/meta.json`` and ``shard-*.npz`` files of ``keys, values, mask``.

    Shards are written to a temporary name and renamed, so an interrupted run never leaves a half-written shard.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def group(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str) -> tuple[dict | None, dict[str, tuple[Path, int]]]:
        folder = self.group(key)
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            return None, {}
        meta = json.loads(meta_path.read_text())
        index: dict[str, tuple[Path, int]] = {}
        for shard in sorted(folder.glob("shard-*.npz")):
            with np.load(shard) as z:
                for i, k in enumerate(z["keys"].tolist()):
                    index[k] = (shard, i)
        return meta, index

    def gather(self, index: dict[str, tuple[Path, int]], keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        by_shard: dict[Path, list[tuple[int, int]]] = {}
        for pos, k in enumerate(keys):
            shard, i = index[k]
            by_shard.setdefault(shard, []).append((pos, i))
        values = mask = None
        for shard, pairs in by_shard.items():
            with np.load(shard) as z:
                v, m = z["values"], z["mask"]
                if values is None:
                    values = np.empty((len(keys),) + v.shape[1:], v.dtype)
                    mask = np.empty((len(keys),) + m.shape[1:], bool)
                pos, idx = np.array(pairs).T
                values[pos], mask[pos] = v[idx], m[idx]
        return values, mask

    def write(self, key: str, meta: dict, keys: list[str], values: np.ndarray, mask: np.ndarray) -> None:
        folder = self.group(key)
        folder.mkdir(parents=True, exist_ok=True)
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            tmp = folder / f".meta-{uuid.uuid4().hex}.json"
            tmp.write_text(json.dumps(meta))
            os.replace(tmp, meta_path)
        name = f"shard-{uuid.uuid4().hex}.npz"
        tmp = folder / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            np.savez(fh, keys=np.array(keys), values=values, mask=mask)
        os.replace(tmp, folder / name)


# -- extractor -------------------------------------------------------------------------------------------------------
@dataclass
class ChipExtractor:
    """Cuts chips centred on points from one or more sources on a common grid.

    Args:
        sources: Chip sources; at most one multi-date data source (its dates become ``T``) plus its cloud masks.
        size: Chip height and width ``H = W`` in grid pixels (odd sizes centre the sample's pixel exactly; even sizes put
            it just below and right of the centre).
        crs: CRS of the common grid (default: the first data source's).
        resolution: Pixel size of the common grid in its units (default: the first data source's).
        cache_dir: Folder of the on-disk cache, or ``None`` for no cache.
        max_memory_mb: When the part of a source the chips touch (the bounding window of all chips, on the grid) is
            at most this size it is read at once and chips are sliced from memory; otherwise each chip is read with
            its own window.

    Attributes:
        opens: Number of raster files opened by this extractor (a fully cached call adds none).
    """

    sources: list[ChipSource]
    size: int = 9
    crs: str | None = None
    resolution: float | None = None
    cache_dir: str | Path | None = None
    max_memory_mb: float = 512.0
    opens: int = field(default=0, init=False)

    def __post_init__(self):
        self.sources = [s if isinstance(s, ChipSource) else ChipSource(**s) for s in self.sources]
        if not self.sources or not any(s.kind == "data" for s in self.sources):
            raise ChipError("imagery.sources needs at least one data source (a GeoTIFF path)")
        if self.size < 1:
            raise ChipError(f"chip size must be >= 1, got {self.size}")
        self._layout: tuple | None = None

    # layout: opened sources, grid, channels and dates; needs only metadata reads (counted as opens)
    def _prepare(self):
        if self._layout is None:
            opened, geos = [], []
            for s in self.sources:
                op, geo = _inspect(s)
                self.opens += 1
                opened.append(op)
                geos.append(geo)
            data = [(o, g) for o, g in zip(opened, geos) if o.src.kind == "data"]
            grid = _default_grid([g for _, g in data], self.crs, self.resolution)
            series = [o for o, _ in data if o.dates is not None]
            if len(series) > 1:
                raise ChipError("at most one multi-date data source is supported; stack the dates of the others into it")
            dates = series[0].dates if series else None
            for o in opened:
                if o.src.kind == "cloud_mask":
                    if dates is None or o.dates is None or len(o.dates) != len(dates):
                        raise ChipError(f"cloud mask {o.src.path} needs the same dates as the multi-date data source")
            channels = [c for o in opened for c in o.channels]
            self._layout = (opened, geos, grid, channels, dates)
        return self._layout

    def _group_key(self) -> str:
        parts = []
        for s in self.sources:
            path = Path(s.path)
            if not path.is_file():
                raise ChipError(f"chip source {path} not found; check imagery.sources[].path")
            dates = str(s.dates)
            if isinstance(s.dates, (str, Path)) and s.dates != "descriptions" and Path(s.dates).is_file():
                dates = _file_key(Path(s.dates))          # a timestamps file: its identity, like the raster's
            parts.append({**_file_key(path), "bands": s.bands, "name": s.label, "dates": dates, "kind": s.kind,
                          "resampling": s.resampling})
        key = {"format": CACHE_FORMAT, "sources": parts, "size": self.size, "crs": self.crs, "resolution": self.resolution}
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]

    @staticmethod
    def _sample_keys(ids: np.ndarray, xy: np.ndarray, crs) -> list[str]:
        crs_txt = CRS.from_user_input(crs).to_string()
        return [hashlib.sha1(f"{i}|{x:.6f}|{y:.6f}|{crs_txt}".encode()).hexdigest() for i, (x, y) in zip(ids.astype(str), xy)]

    def extract(self, sample_ids: Sequence, xy: np.ndarray, crs) -> Chips:
        """Chips centred on points.

        Args:
            sample_ids: ``(N,)`` ids (cache keys together with the coordinates).
            xy: ``(N, 2)`` coordinates in ``crs``.
            crs: CRS of ``xy`` (anything pyproj accepts).

        Returns:
            :class:`Chips`: ``(N, C, H, W)``, or ``(N, T, C, H, W)`` with a multi-date source.

        Raises:
            ChipError: A missing file or band, unreadable dates, or samples outside every data source (named).
        """
        ids = np.asarray(sample_ids)
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        cache = ChipCache(self.cache_dir) if self.cache_dir else None
        keys = self._sample_keys(ids, xy, crs)
        meta, index, group = None, {}, None
        if cache is not None:
            group = self._group_key()
            meta, index = cache.load(group)
        missing = [i for i, k in enumerate(keys) if k not in index]
        if meta is not None and not missing:
            values, mask = cache.gather(index, keys)
            dates = None if meta["dates"] is None else np.array(meta["dates"], dtype="datetime64[s]")
            return Chips(values, mask, list(meta["channels"]), dates, ids, tuple(meta["resolution"]))
        miss = np.array(missing, dtype=int)
        values_m, mask_m, channels, dates, res = self._extract(ids[miss], xy[miss], crs)
        meta = {"channels": channels, "dates": None if dates is None else [str(d) for d in dates], "resolution": list(res)}
        if cache is not None:
            cache.write(group, meta, [keys[i] for i in miss], values_m, mask_m)
        if len(miss) == len(keys):
            return Chips(values_m, mask_m, channels, dates, ids, res)
        values = np.empty((len(keys),) + values_m.shape[1:], values_m.dtype)
        mask = np.empty((len(keys),) + mask_m.shape[1:], bool)
        values[miss], mask[miss] = values_m, mask_m
        hit = np.setdiff1d(np.arange(len(keys)), miss)
        values[hit], mask[hit] = cache.gather(index, [keys[i] for i in hit])
        return Chips(values, mask, channels, dates, ids, res)

    def _extract(self, ids: np.ndarray, xy: np.ndarray, crs):
        opened, geos, grid, channels, dates = self._prepare()
        gx, gy = Transformer.from_crs(CRS.from_user_input(crs), CRS.from_user_input(grid.crs), always_xy=True).transform(
            xy[:, 0], xy[:, 1])
        cols = np.floor((np.asarray(gx) - grid.origin[0]) / grid.res[0]).astype(int)
        rows = np.floor((grid.origin[1] - np.asarray(gy)) / grid.res[1]).astype(int)
        n, size = len(ids), self.size
        covered = np.zeros(n, dtype=bool)
        static_v, static_m, series_v, series_m, cloud = [], [], None, None, None
        for op, geo in zip(opened, geos):
            reader = _Reader(op, grid)
            self.opens += 1
            try:
                nr, nc = reader.shape
                r, c = rows - reader.offset[0], cols - reader.offset[1]
                inside = (r >= 0) & (r < nr) & (c >= 0) & (c < nc)
                # the part of the raster the chips touch: read it at once when it fits in memory
                half = size // 2
                r0, r1 = max(int(r.min()) - half, 0), min(int(r.max()) - half + size, nr)
                c0, c1 = max(int(c.min()) - half, 0), min(int(c.max()) - half + size, nc)
                nbytes = max(r1 - r0, 0) * max(c1 - c0, 0) * len(op.band_index) * 4
                if r1 <= r0 or c1 <= c0:
                    nb = len(op.band_index)
                    v, m = np.zeros((n, nb, size, size), np.float32), np.zeros((n, nb, size, size), bool)
                elif nbytes <= self.max_memory_mb * 2**20:
                    from rasterio.windows import Window

                    values, valid = reader.read(Window(c0, r0, c1 - c0, r1 - r0))
                    v, m = _cut(values, valid, (reader.offset[0] + r0, reader.offset[1] + c0), rows, cols, size)
                    del values, valid
                else:
                    v, m = _cut_windowed(reader, rows, cols, size)
            finally:
                reader.close()
            if op.src.kind == "cloud_mask":
                clear = (v == 0) & m
                cloud = clear if cloud is None else cloud & clear           # (N, T, H, W)
                continue
            covered |= inside
            if op.dates is None:
                static_v.append(v)
                static_m.append(m)
            else:
                t, cpd = len(op.dates), len(op.channels)
                series_v = v.reshape(n, t, cpd, size, size)
                series_m = m.reshape(n, t, cpd, size, size)
        if not covered.all():
            bad = ids[~covered].astype(str).tolist()
            bounds = {str(op.src.path): [round(b, 3) for b in geo["bounds"]] for op, geo in zip(opened, geos)}
            more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
            raise ChipError(
                f"{len(bad)} sample(s) lie outside every chip source: {', '.join(bad[:10])}{more}; source bounds "
                f"(own CRS): {bounds}. Drop those samples or add a raster that covers them"
            )
        if series_v is None:
            return np.concatenate(static_v, 1), np.concatenate(static_m, 1), channels, None, grid.res
        t = series_v.shape[1]
        if cloud is not None:
            series_m = series_m & cloud[:, :, None]
            series_v = np.where(series_m, series_v, 0.0).astype(np.float32)
        parts_v, parts_m = [], []
        si = 0
        for op in opened:          # keep the channel order of the sources
            if op.src.kind == "cloud_mask":
                continue
            if op.dates is None:
                parts_v.append(np.broadcast_to(static_v[si][:, None], (n, t) + static_v[si].shape[1:]))
                parts_m.append(np.broadcast_to(static_m[si][:, None], (n, t) + static_m[si].shape[1:]))
                si += 1
            else:
                parts_v.append(series_v)
                parts_m.append(series_m)
        return (np.ascontiguousarray(np.concatenate(parts_v, 2)), np.ascontiguousarray(np.concatenate(parts_m, 2)),
                channels, dates, grid.res)

    def extract_samples(self, samples) -> Chips:
        """Chips of a :class:`~sptgnn.data.samples.SoilSamples` (its ``sample_id`` and point geometry)."""
        return self.extract(samples.sample_ids, samples.xy(), samples.crs)


def resolve_source_path(path: str | Path) -> Path:
    """A source path as given if it exists (absolute or relative to the working directory), else relative to the data
    directory (``SPTGNN_DATA_DIR``).

    Raises:
        ChipError: Neither exists.
    """
    from sptgnn.data.paths import data_dir

    p = Path(path).expanduser()
    if p.is_file():
        return p
    alt = data_dir() / p
    if not p.is_absolute() and alt.is_file():
        return alt
    raise ChipError(f"chip source {path} not found (looked in the working directory and in the data directory {data_dir()}); "
                    "give an absolute path or set SPTGNN_DATA_DIR")


__all__ = ["ChipCache", "ChipError", "ChipExtractor", "ChipGrid", "ChipSource", "Chips", "resolve_source_path"]
