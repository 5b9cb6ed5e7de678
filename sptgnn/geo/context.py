"""Multi-scale context features: covariate means (and sd) over square windows of several sizes around each pixel
(multi-scale contextual covariates, Behrens et al. 2018, Geoderma 310, 128–137; issue 14).

:class:`ContextStack` is a :class:`~sptgnn.geo.stack.CovariateStack` with derived features ``<band>_mean<km>km``
and ``<band>_sd<km>km`` in the ``environment`` stream. A window is read with a halo of half the largest window, so a
tile's context equals that of the whole raster (tested); the statistics are NaN-aware (``scipy.ndimage.uniform_filter``
of values and of the valid mask). Samples get the same features from the same code (:func:`sptgnn.data.context.add_context`), so
members, baselines, maps and pre-training cells all see identical columns.

A scale of ``s`` km is a window of ``round(s / pixel size)`` pixels, made odd (centred on the pixel); the pixel size
in m is the grid's for a metric CRS and, for lon/lat, its degrees × 111.32 km × cos(latitude of the grid's centre).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from rasterio.windows import Window
from scipy.ndimage import uniform_filter

from sptgnn.geo.sources import RasterError, RasterSource
from sptgnn.geo.stack import CovariateStack

STREAM = "environment"


def context_name(band: str, stat: str, km: float) -> str:
    """Column name of a context feature, e.g. ``elev_mean60km``."""
    return f"{band}_{stat}{km:g}km"


def pixel_size_m(stack: CovariateStack) -> float:
    """Pixel size (m) of the stack's grid: the mean of its two sides (see the module docstring for lon/lat)."""
    a, e = abs(stack.transform.a), abs(stack.transform.e)
    if stack.crs is not None and stack.crs.is_geographic:
        lat = stack.transform.f + stack.transform.e * stack.height / 2
        return 111_320.0 * (a * math.cos(math.radians(lat)) + e) / 2
    return (a + e) / 2


def window_pixels(km: float, pixel_m: float) -> int:
    """Odd window side (pixels) of a ``km`` scale on pixels of ``pixel_m`` m (at least 1)."""
    n = max(1, int(round(km * 1000.0 / pixel_m)))
    return n if n % 2 else n + 1


class ContextStack(CovariateStack):
    """A covariate stack with context features (see the module docstring); open it with :func:`open_covariates`."""

    context_bands: list[str]
    scales_km: list[float]
    stats: list[str]
    derived: dict = {}  # name -> (band, stat, window pixels); replaced (never mutated) by set_context

    def set_context(self, scales_km: Sequence[float], stats: Sequence[str], bands: Sequence[str] | None) -> None:
        """Derive context features of ``bands`` (default: every band) at ``scales_km`` for ``stats`` (mean, sd).

        Raises:
            RasterError: A band the stack lacks, or a scale wider than twice the grid's extent (its windows would be
                mostly padding, and their halo would allocate the square of that).
        """
        base = list(self.bands)
        bands = base if bands is None else list(bands)
        missing = [b for b in bands if b not in self.bands]
        if missing:
            raise RasterError(f"data.context.bands {missing} are not bands of the covariate rasters ({base})")
        px = pixel_size_m(self)
        extent_km = max(self.height, self.width) * px / 1000.0
        too_wide = [km for km in scales_km if km > 2 * extent_km]
        if too_wide:
            raise RasterError(f"data.context.scales_km {too_wide} exceed twice the covariate grid's extent "
                              f"({self.height} x {self.width} px, about {extent_km:.3g} km across); use scales up to "
                              f"{2 * extent_km:.3g} km")
        self.context_bands, self.scales_km, self.stats = bands, list(scales_km), list(stats)
        self.derived = {context_name(b, s, km): (b, s, window_pixels(km, px))
                        for km in scales_km for s in stats for b in bands}

    @property
    def features(self) -> list[str]:
        return list(self.bands) + list(self.derived)

    def streams(self) -> dict[str, list[str]]:
        out = super().streams()
        out.setdefault(STREAM, []).extend(self.derived)
        return out

    def check_features(self, features: Sequence[str]) -> None:
        super().check_features([f for f in features if f not in self.derived])

    def read_window(self, window: Window, features: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        features = self.features if features is None else list(features)
        self.check_features(features)
        wanted = [f for f in features if f in self.derived]
        if not wanted:
            return super().read_window(window, features)
        halo = max(self.derived[f][2] for f in wanted) // 2
        base = list(dict.fromkeys([f for f in features if f not in self.derived]
                                  + [self.derived[f][0] for f in wanted]))
        data, valid = self._read_padded(window, base, halo)  # per-band validity (F, h, w)
        h, w = int(window.height), int(window.width)
        inner = (slice(halo, halo + h), slice(halo, halo + w))
        out = np.empty((len(features), h, w), dtype=np.float32)
        counts: dict[tuple[int, int], np.ndarray] = {}
        for j, f in enumerate(features):
            if f not in self.derived:
                out[j] = data[base.index(f)][inner]
                continue
            band, stat, n = self.derived[f]
            b = base.index(band)
            if (b, n) not in counts:  # share of the window's pixels valid in the band; NaN context where none is
                share = uniform_filter(valid[b].astype(np.float64), n, mode="constant")
                counts[b, n] = np.where(share > 0.5 / n**2, share, np.nan)
            x = np.where(valid[b], data[b], 0.0).astype(np.float64)
            mean = uniform_filter(x, n, mode="constant") / counts[b, n]
            if stat == "mean":
                out[j] = mean[inner]
            else:
                sq = uniform_filter(x * x, n, mode="constant") / counts[b, n]
                out[j] = np.sqrt(np.maximum(sq - mean * mean, 0.0))[inner]
        return out, valid.all(0)[inner]

    def _read_padded(self, window: Window, features: list[str], halo: int) -> tuple[np.ndarray, np.ndarray]:
        """``window`` grown by ``halo`` pixels on every side: values ``(F, h, w)`` and each band's own validity
        ``(F, h, w)`` (a window mean skips only that band's nodata); parts off the grid are invalid."""
        r0, c0 = int(window.row_off) - halo, int(window.col_off) - halo
        h, w = int(window.height) + 2 * halo, int(window.width) + 2 * halo
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r0 + h, self.height), min(c0 + w, self.width)
        data = np.zeros((len(features), h, w), dtype=np.float32)
        valid = np.zeros((len(features), h, w), dtype=bool)
        if rr1 > rr0 and cc1 > cc0:
            inside = (slice(rr0 - r0, rr1 - r0), slice(cc0 - c0, cc1 - c0))
            part, ok = self.read_window_bands(Window(cc0, rr0, cc1 - cc0, rr1 - rr0), features)
            data[(slice(None), *inside)], valid[(slice(None), *inside)] = part, ok
        return data, valid


def open_covariates(sources, context=None, exclude: Sequence[str] = ()) -> CovariateStack:
    """Open covariate rasters (paths, :class:`RasterSource` or ``data.rasters`` entries), with the context features of a ``data.context`` section
    when given (its ``bands``, or every band but ``exclude``).

    Raises:
        RasterError: See :meth:`CovariateStack.open` and :meth:`ContextStack.set_context`.
    """
    sources = [s if isinstance(s, (str, Path, RasterSource)) else RasterSource.from_config(s) for s in sources]
    if context is None:
        return CovariateStack.open(sources)
    stack = ContextStack.open(sources)
    try:
        bands = context.bands if context.bands is not None else [b for b in stack.bands if b not in exclude]
        stack.set_context(context.scales_km, context.stats, bands)
    except BaseException:
        stack.close()
        raise
    return stack


__all__ = ["ContextStack", "context_name", "open_covariates", "pixel_size_m", "window_pixels"]
