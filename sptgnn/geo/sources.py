"""Raster sources of covariates: paths and globs (under the data directory), and the naming of their bands.

Each band becomes a named *feature*:

* the band description when the file sets one (e.g. the WorldGrids codes of ``afgrid20_covariates_20km.tif``),
* the file stem for a single-band file without description (``vindum_cov_ECa.tif`` → ``vindum_cov_ECa``), with an
  optional prefix stripped (``strip: vindum_cov_`` → ``ECa``),
* ``STEM_bN`` otherwise,

or explicitly by the config (``bands: {feature: description or 1-based index}``).
"""

from __future__ import annotations

import fnmatch
import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import rasterio

from sptgnn.errors import UserError
from sptgnn.geo.paths import data_dir, resolve_data_path


class RasterError(UserError):
    """A raster or covariate stack that cannot be used as it is; the message names the file or band and the fix."""


@dataclass
class RasterSource:
    """One covariate raster (or a glob of them) and how its bands map to feature names.

    Attributes:
        path: GeoTIFF path or glob pattern (``vindum/vindum_cov_*.tif``); relative paths are resolved against the data
            directory (:func:`sptgnn.geo.paths.data_dir`).
        bands: ``{feature: band}`` with ``band`` a band description or a 1-based band index; ``None`` takes every band
            under its automatic name (description, file stem, or ``STEM_bN``).
        strip: Prefix removed from automatic names (e.g. ``"vindum_cov_"``).
        stream: Feature stream the bands feed (``environment`` or ``imagery``).
        resampling: rasterio resampling used when the raster is aligned on another grid (``nearest`` keeps
            categorical codes intact; ``bilinear`` for continuous covariates).
    """

    path: str
    bands: dict[str, str | int] | None = None
    strip: str = ""
    stream: str = "environment"
    resampling: str = "nearest"

    @classmethod
    def from_config(cls, cfg) -> "RasterSource":
        """From a :class:`sptgnn.config.RasterSourceConfig` (or any object with the same attributes)."""
        return cls(path=str(cfg.path), bands=dict(cfg.bands) if cfg.bands else None, strip=cfg.strip, stream=cfg.stream,
                   resampling=cfg.resampling)


def expand_paths(pattern: str | Path) -> list[Path]:
    """The files a source path names: itself, or the sorted matches of a glob pattern.

    Raises:
        RasterError: Nothing matches (the message says where it looked).
    """
    p = resolve_data_path(pattern)
    if any(ch in str(p) for ch in "*?["):
        found = sorted(Path(f) for f in glob.glob(str(p)))
        if not found:
            raise RasterError(f"no raster matches '{pattern}' (looked for {p}); check the path or set SPTGNN_DATA_DIR")
        return found
    if not p.is_file():
        raise RasterError(f"raster file not found: {p} (from '{pattern}'); relative paths are read under the data "
                          f"directory {data_dir()} (SPTGNN_DATA_DIR)")
    return [p]


def open_raster(path: Path):
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise RasterError(f"cannot open {path} as a raster ({exc}); give a GeoTIFF") from None


def raster_band_names(path: Path, ds, source: RasterSource) -> dict[str, int]:
    """Feature name → 1-based band of one file, from the source's ``bands`` or the automatic names."""
    descriptions = list(ds.descriptions)
    if source.bands:
        out = {}
        for feature, sel in source.bands.items():
            if isinstance(sel, int) or (isinstance(sel, str) and sel.isdigit()):
                k = int(sel)
                if not 1 <= k <= ds.count:
                    raise RasterError(f"{path} has {ds.count} band(s); band {k} for feature '{feature}' does not exist")
                out[feature] = k
            elif sel in descriptions:
                out[feature] = descriptions.index(sel) + 1
            else:
                raise RasterError(
                    f"{path} has no band described '{sel}' (for feature '{feature}'); band descriptions: "
                    f"{[d for d in descriptions if d]} — use a description or a 1-based band index"
                )
        return out
    stem = path.stem
    out = {}
    for k, desc in enumerate(descriptions, start=1):
        name = desc if desc else (stem if ds.count == 1 else f"{stem}_b{k}")
        if source.strip and name.startswith(source.strip):
            name = name[len(source.strip):]
        if name in out:
            raise RasterError(f"{path}: two bands are both named '{name}'; map them with `bands:` in the config")
        out[name] = k
    return out


def format_bounds(b) -> str:
    return "(none finite)" if b is None else "(" + ", ".join(f"{v:.3f}" for v in b) + ")"


def match_sources(paths: Sequence[str | Path], configured: Sequence[RasterSource]) -> list[RasterSource]:
    """Raster sources for files given at prediction time, with the naming rules of the training config.

    A file takes the ``bands``, ``strip``, ``stream`` and ``resampling`` of the first configured source whose path
    pattern matches its file name (so a map is predicted from other copies of the training rasters under the same
    feature names); a file no configured source matches takes the automatic names.
    """
    out = []
    for p in paths:
        name = Path(p).name
        match = next((c for c in configured if fnmatch.fnmatch(name, Path(c.path).name)), None)
        if match is None:
            out.append(RasterSource(path=str(p)))
        else:
            out.append(RasterSource(path=str(p), bands=match.bands, strip=match.strip, stream=match.stream,
                                    resampling=match.resampling))
    return out


__all__ = ["RasterError", "RasterSource", "expand_paths", "match_sources"]
