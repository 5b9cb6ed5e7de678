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

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd
from pyproj import CRS

from sptgnn.errors import UserError


CACHE_FORMAT = 1


class ChipError(UserError):
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


def source_dates(src: ChipSource, descriptions: Sequence[str | None], count: int) -> np.ndarray | None:
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


@dataclass(frozen=True)
class ChipGrid:
    """The common pixel grid: CRS, pixel size and origin (a grid corner); every source is read on it."""

    crs: str
    res: tuple[float, float]
    origin: tuple[float, float]

    def key(self) -> dict:
        return {"crs": CRS.from_user_input(self.crs).to_wkt(), "res": list(self.res), "origin": list(self.origin)}


def resolve_source_path(path: str | Path) -> Path:
    """A source path as given if it exists (absolute or relative to the working directory), else relative to the data
    directory (``SPTGNN_DATA_DIR``).

    Raises:
        ChipError: Neither exists.
    """
    from sptgnn.geo.paths import data_dir, resolve_data_path

    p = resolve_data_path(path)
    if p.is_file():
        return p
    raise ChipError(f"chip source {path} not found (looked in the working directory and in the data directory {data_dir()}); "
                    "give an absolute path or set SPTGNN_DATA_DIR")


__all__ = ["CACHE_FORMAT", "ChipError", "ChipGrid", "ChipSource", "Chips", "resolve_source_path"]
