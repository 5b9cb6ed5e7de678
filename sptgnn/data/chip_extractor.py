"""`ChipExtractor`: chips centred on samples from one or more GeoTIFF stacks on a common grid, cached on disk
(see :mod:`sptgnn.data.chips` for the chip model)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from pyproj import CRS

from sptgnn.data.chip_cache import ChipCache, file_key
from sptgnn.data.chip_reader import cut_chip, cut_windowed, default_grid, inspect_source, SourceReader
from sptgnn.geo import CRSTransformError, transform_xy
from sptgnn.data.chips import CACHE_FORMAT, ChipError, Chips, ChipSource


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
                op, geo = inspect_source(s)
                self.opens += 1
                opened.append(op)
                geos.append(geo)
            data = [(o, g) for o, g in zip(opened, geos) if o.src.kind == "data"]
            grid = default_grid([g for _, g in data], self.crs, self.resolution)
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
                dates = file_key(Path(s.dates))          # a timestamps file: its identity, like the raster's
            parts.append({**file_key(path), "bands": s.bands, "name": s.label, "dates": dates, "kind": s.kind,
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
        try:
            gx, gy = transform_xy(xy, crs, grid.crs).T
        except CRSTransformError as exc:
            raise ChipError(f"samples vs chip grid: {exc}; reproject the samples or the rasters") from None
        cols = np.floor((np.asarray(gx) - grid.origin[0]) / grid.res[0]).astype(int)
        rows = np.floor((grid.origin[1] - np.asarray(gy)) / grid.res[1]).astype(int)
        n, size = len(ids), self.size
        covered = np.zeros(n, dtype=bool)
        static_v, static_m, series_v, series_m, cloud = [], [], None, None, None
        for op, geo in zip(opened, geos):
            reader = SourceReader(op, grid)
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
                    v, m = cut_chip(values, valid, (reader.offset[0] + r0, reader.offset[1] + c0), rows, cols, size)
                    del values, valid
                else:
                    v, m = cut_windowed(reader, rows, cols, size)
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


__all__ = ["ChipExtractor"]
