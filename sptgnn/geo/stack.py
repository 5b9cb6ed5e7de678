"""Covariate stacks: GeoTIFFs aligned on a reference grid (the first raster's unless named; others resampled on the fly
by a rasterio :class:`~rasterio.vrt.WarpedVRT`), sampled at points or read window by window. Bands are named features
(:mod:`sptgnn.geo.sources`); a pixel is valid for a feature when its GDAL mask is set and the value is finite.
Errors are :class:`RasterError` naming the file and the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import rasterio
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from sptgnn.geo.paths import resolve_data_path
from sptgnn.geo.sources import RasterError, RasterSource, raster_band_names, format_bounds, open_raster, expand_paths
from sptgnn.geo.aligned import aligned
from sptgnn.geo.coords import CRSTransformError, grid_windows, pixel_index, transform_xy


@dataclass
class _Band:
    feature: str
    file: int  # index into CovariateStack.files
    band: int  # 1-based band index
    stream: str


@dataclass
class CovariateStack:
    """Covariate rasters aligned on one reference grid; features are named bands.

    Build it with :meth:`open` (paths or :class:`RasterSource` objects). Use as a context manager or call
    :meth:`close`.

    Attributes:
        files: Paths of the opened rasters, in source order.
        crs: CRS of the reference grid (rasterio CRS).
        transform: Affine transform of the reference grid.
        width, height: Reference grid size in pixels.
        bands: Feature name → (file index, 1-based band, stream), in source order.
    """

    files: list[Path]
    crs: object
    transform: object
    width: int
    height: int
    bands: dict[str, _Band] = field(default_factory=dict)
    _datasets: list = field(default_factory=list, repr=False)
    _readers: list = field(default_factory=list, repr=False)

    @classmethod
    def open(cls, sources: Sequence[str | Path | RasterSource], reference: str | Path | None = None) -> "CovariateStack":
        """Open and align covariate rasters.

        Args:
            sources: Raster paths (or globs) or :class:`RasterSource` objects.
            reference: Raster whose grid (CRS, transform, shape) the stack takes; default the first raster.

        Raises:
            RasterError: No source, a file that is not a readable raster, one without CRS, a raster with no band,
                duplicated feature names, or a ``bands`` entry naming a band the file lacks.
        """
        srcs = [s if isinstance(s, RasterSource) else RasterSource(path=str(s)) for s in sources]
        if not srcs:
            raise RasterError("no covariate raster given; pass at least one GeoTIFF")
        opened: list[tuple[Path, object, RasterSource]] = []
        try:
            for s in srcs:
                for p in expand_paths(s.path):
                    opened.append((p, open_raster(p), s))
            ref_ds = open_raster(resolve_data_path(reference)) if reference is not None else opened[0][1]
            if ref_ds.crs is None:
                raise RasterError(f"{ref_ds.name} has no CRS; set one (e.g. gdal_edit.py -a_srs EPSG:XXXX) first")
            stack = cls(files=[p for p, _, _ in opened], crs=ref_ds.crs, transform=ref_ds.transform,
                        width=ref_ds.width, height=ref_ds.height)
            for i, (p, ds, s) in enumerate(opened):
                if ds.crs is None:
                    raise RasterError(f"{p} has no CRS; set one (e.g. gdal_edit.py -a_srs EPSG:XXXX) first")
                if ds.count == 0 or ds.width == 0 or ds.height == 0:
                    raise RasterError(f"{p} is empty ({ds.count} bands, {ds.width} x {ds.height} pixels)")
                stack._datasets.append(ds)
                stack._readers.append(aligned(ds, stack.crs, stack.transform, stack.width, stack.height, s.resampling))
                for feature, band in raster_band_names(p, ds, s).items():
                    if feature in stack.bands:
                        other = stack.files[stack.bands[feature].file]
                        raise RasterError(
                            f"feature '{feature}' is given by both {other} and {p}; rename one with `bands:` or `strip:` "
                            "in the raster's config entry"
                        )
                    stack.bands[feature] = _Band(feature, i, band, s.stream)
            if reference is not None:
                ref_ds.close()
        except BaseException:
            for _, ds, _ in opened:
                ds.close()
            raise
        return stack

    def close(self) -> None:
        """Close every raster and VRT."""
        for r in self._readers:
            if isinstance(r, WarpedVRT):
                r.close()
        for ds in self._datasets:
            ds.close()
        self._readers, self._datasets = [], []

    def __enter__(self) -> "CovariateStack":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def features(self) -> list[str]:
        """Feature names, in source and band order."""
        return list(self.bands)

    def streams(self) -> dict[str, list[str]]:
        """Feature names per stream, ``{"environment": [...], "imagery": [...]}`` (only non-empty streams)."""
        out: dict[str, list[str]] = {}
        for b in self.bands.values():
            out.setdefault(b.stream, []).append(b.feature)
        return out

    def check_features(self, features: Sequence[str]) -> None:
        """Raise when a needed feature has no band.

        Raises:
            RasterError: Names the missing features, the available ones and the fix.
        """
        missing = [f for f in features if f not in self.bands]
        if missing:
            raise RasterError(
                f"the covariate rasters have no band for feature(s) {missing}; available: {self.features}. Pass the "
                "raster(s) holding them, or map band names to features with `bands:` / `strip:` in data.rasters"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the reference grid."""
        return self.height, self.width

    @property
    def profile(self) -> dict:
        """CRS, transform, width and height of the reference grid, as a rasterio profile fragment."""
        return {"crs": self.crs, "transform": self.transform, "width": self.width, "height": self.height}

    def to_grid_xy(self, xy: np.ndarray, crs) -> np.ndarray:
        """Points ``(n, 2)`` in ``crs`` transformed to the stack CRS, ``(n, 2)`` (NaN where the transform fails).

        Raises:
            RasterError: No transformation between the two CRSs exists.
        """
        try:
            return transform_xy(xy, crs, self.crs, ("the points' CRS", "the rasters' CRS"))
        except CRSTransformError as exc:
            raise RasterError(f"{exc}; reproject the rasters or the points") from None

    def sample_points(self, xy: np.ndarray, crs, features: Sequence[str] | None = None, block: int = 1024,
                      require_any: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Covariate values of the pixels the points fall in (nearest pixel of the reference grid).

        Args:
            xy: Point coordinates ``(n, 2)`` in ``crs`` (x, y or lon, lat).
            crs: CRS of the points (anything pyproj accepts).
            features: Features to sample (default: all), in this order.
            block: Window size in pixels used to read the points' pixels (memory stays ``O(block² · F)``).
            require_any: Raise when no point falls on a valid pixel.

        Returns:
            ``values`` ``(n, F)`` float64 (NaN where invalid) and ``valid`` ``(n,)`` bool: on the grid and valid in
            every requested band.

        Raises:
            RasterError: A missing feature, an impossible CRS transform, or (``require_any``) no point on a valid pixel
                (the message gives both extents).
        """
        features = self.features if features is None else list(features)
        self.check_features(features)
        grid_xy = self.to_grid_xy(xy, crs)
        row, col, on = pixel_index(self.transform, self.height, self.width, grid_xy)
        n = len(grid_xy)
        values = np.full((n, len(features)), np.nan)
        if on.any():
            br, bc = row // block, col // block
            keys = np.unique(np.c_[br[on], bc[on]], axis=0)
            for kr, kc in keys:
                win = Window(kc * block, kr * block, min(block, self.width - kc * block), min(block, self.height - kr * block))
                sel = np.flatnonzero(on & (br == kr) & (bc == kc))
                data, valid = self.read_window(win, features)
                r, c = row[sel] - kr * block, col[sel] - kc * block
                v = data[:, r, c].T.astype(np.float64)
                v[~valid[r, c]] = np.nan
                values[sel] = v
        ok = np.isfinite(values).all(1) & on
        if require_any and n and not ok.any():
            b = rasterio.transform.array_bounds(self.height, self.width, self.transform)
            fin = np.isfinite(grid_xy).all(1)
            pb = (grid_xy[fin, 0].min(), grid_xy[fin, 1].min(), grid_xy[fin, 0].max(), grid_xy[fin, 1].max()) if fin.any() else None
            where = "off the grid" if not on.any() else "on nodata pixels"
            raise RasterError(
                f"the covariate rasters ({self.files[0].name}{' ...' if len(self.files) > 1 else ''}) cover none of the "
                f"{n} points: all are {where}. Raster bounds (W, S, E, N) {format_bounds(b)}, points' bounds in the raster CRS "
                f"{format_bounds(pb)}; check the points' CRS or the rasters"
            )
        return values, ok

    def windows(self, size: int = 512) -> Iterator[Window]:
        """Square windows of ``size`` pixels tiling the reference grid, row by row (edge windows are smaller):
        :func:`grid_windows` of the stack's shape."""
        return grid_windows(self.height, self.width, size)

    def num_windows(self, size: int = 512) -> int:
        """Number of windows :meth:`windows` yields."""
        return math.ceil(self.height / size) * math.ceil(self.width / size)

    def read_window(self, window: Window, features: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Values of a rasterio ``window`` of the reference grid for ``features`` (default: all), in this order:
        ``data`` ``(F, h, w)`` float32 and ``valid`` ``(h, w)`` bool, every band's mask set and every value finite.

        Raises:
            RasterError: A missing feature, or a read failure (named file).
        """
        data, valid = self.read_window_bands(window, features)
        return data, valid.all(0)

    def read_window_bands(self, window: Window, features: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`read_window` with each band's own validity: ``data`` ``(F, h, w)`` float32 and ``valid``
        ``(F, h, w)`` bool (that band's mask set and its value finite), raw bands only; one read per file.

        Raises:
            RasterError: A missing feature, or a read failure (named file).
        """
        features = list(self.bands) if features is None else list(features)
        CovariateStack.check_features(self, features)
        h, w = int(window.height), int(window.width)
        data = np.empty((len(features), h, w), dtype=np.float32)
        valid = np.ones((len(features), h, w), dtype=bool)
        by_file: dict[int, list[tuple[int, int]]] = {}
        for j, f in enumerate(features):
            b = self.bands[f]
            by_file.setdefault(b.file, []).append((j, b.band))
        for i, items in by_file.items():
            reader = self._readers[i]
            idx = [band for _, band in items]
            try:
                arr = reader.read(idx, window=window, out_dtype=np.float32)
                masks = reader.read_masks(idx, window=window)
            except rasterio.errors.RasterioIOError as exc:
                raise RasterError(f"cannot read {self.files[i]}: {exc}") from None
            for k, (j, _) in enumerate(items):
                data[j] = arr[k]
                valid[j] = masks[k] > 0
        valid &= np.isfinite(data)
        return data, valid

    def pixel_centres(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """x and y of the pixel centres of a window in the stack CRS, each ``(h, w)``."""
        h, w = int(window.height), int(window.width)
        cols = np.arange(w) + window.col_off + 0.5
        rows = np.arange(h) + window.row_off + 0.5
        t = self.transform
        cc, rr = np.meshgrid(cols, rows)
        x = t.a * cc + t.b * rr + t.c
        y = t.d * cc + t.e * rr + t.f
        return x, y


__all__ = ["CovariateStack"]
