"""Coordinates and CRSs, in one place: point transforms between CRSs, metric coordinates for neighbour search, and the
equal-area plane for blocking and kriging, and the pixel grid (pixel indices, windows). Everything goes through
pyproj."""

from __future__ import annotations

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError

from sptgnn.errors import UserError

EARTH_RADIUS_M = 6_371_008.8


class CRSTransformError(UserError):
    """No usable transformation between two CRSs; the message names both."""


def as_crs(crs) -> CRS:
    """A pyproj CRS from anything pyproj or rasterio gives (EPSG string, WKT, ``rasterio.crs.CRS``, pyproj CRS)."""
    return CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") and not isinstance(crs, CRS) else crs)


def _pair(src, dst, names: tuple[str, str]) -> str:
    s, d = as_crs(src).to_string(), as_crs(dst).to_string()
    return f"from {names[0]} ({s}) to {names[1]} ({d})" if names[0] else f"from {s} to {d}"


def transformer(src, dst, names: tuple[str, str] = ("", "")) -> Transformer | None:
    """An ``always_xy`` transformer from ``src`` to ``dst``, or ``None`` when they are the same CRS; ``names`` say
    whose CRSs they are in the error message (e.g. ``("the points' CRS", "the rasters' CRS")``).

    Raises:
        CRSTransformError: pyproj has no transformation between them.
    """
    s, d = as_crs(src), as_crs(dst)
    if s == d:
        return None
    try:
        return Transformer.from_crs(s, d, always_xy=True)
    except (ProjError, CRSError) as exc:
        raise CRSTransformError(f"no transformation {_pair(src, dst, names)}: {exc}") from None


def transform_xy(xy: np.ndarray, src, dst, names: tuple[str, str] = ("", "")) -> np.ndarray:
    """Points ``(n, 2)`` (x, y or lon, lat) from CRS ``src`` to ``dst``, ``(n, 2)`` float64, NaN where it fails.

    Raises:
        CRSTransformError: No transformation exists, or none of the points transforms to finite coordinates.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    tr = transformer(src, dst, names)
    if tr is None:
        return xy.copy()
    try:
        x, y = tr.transform(xy[:, 0], xy[:, 1], errcheck=False)
    except (ProjError, CRSError) as exc:
        raise CRSTransformError(f"no transformation {_pair(src, dst, names)}: {exc}") from None
    out = np.c_[x, y]
    out[~np.isfinite(out).all(1)] = np.nan
    if len(out) and np.isnan(out).all():
        raise CRSTransformError(f"no transformation {_pair(src, dst, names)} gives finite coordinates for these points")
    return out


def metric_coords(xy: np.ndarray, crs) -> np.ndarray:
    """Coordinates in metres for neighbour search.

    Projected CRS: ``(n, 2)``, the projected x, y (the CRS's unit must be the metre). Geographic CRS: ``(n, 3)``
    Earth-centred unit-sphere coordinates scaled by the mean Earth radius (6,371,008.8 m), whose chord distances order
    neighbours exactly as great-circle distances do (:func:`chord_to_great_circle_m`).

    Raises:
        ValueError: A projected CRS whose unit is not the metre.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    crs = as_crs(crs)
    if crs.is_geographic:
        lon, lat = np.radians(xy[:, 0]), np.radians(xy[:, 1])
        return EARTH_RADIUS_M * np.c_[np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)]
    unit = crs.axis_info[0].unit_name if crs.axis_info else "metre"
    if unit not in ("metre", "meter"):
        raise ValueError(f"projected CRS {crs.to_string()} has unit '{unit}'; reproject to a metric CRS")
    return xy


def chord_to_great_circle_m(chord_m: np.ndarray) -> np.ndarray:
    """Great-circle distance (m) from the chord distance (m) between two points on the sphere of radius 6,371,008.8 m."""
    return 2 * EARTH_RADIUS_M * np.arcsin(np.clip(np.asarray(chord_m) / (2 * EARTH_RADIUS_M), 0.0, 1.0))


def grid_windows(height: int, width: int, size: int = 512):
    """Square rasterio windows of ``size`` pixels tiling a ``height × width`` grid, row by row (edge windows are
    smaller).

    Raises:
        ValueError: ``size`` below 1.
    """
    from rasterio.windows import Window

    if size < 1:
        raise ValueError(f"window size must be >= 1, got {size}")
    for r in range(0, height, size):
        for c in range(0, width, size):
            yield Window(c, r, min(size, width - c), min(size, height - r))


def pixel_index(transform, height: int, width: int, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row and column ``(n,)`` of the pixel of an affine grid (``height × width``) holding each point ``(n, 2)`` in the
    grid's CRS, and whether it falls on the grid ``(n,)`` (rows and columns of points off the grid are 0)."""
    inv = ~transform
    x, y = np.asarray(xy, dtype=np.float64)[:, 0], np.asarray(xy, dtype=np.float64)[:, 1]
    col, row = inv.a * x + inv.b * y + inv.c, inv.d * x + inv.e * y + inv.f
    with np.errstate(invalid="ignore"):
        row, col = np.floor(row), np.floor(col)
        on = np.isfinite(row) & np.isfinite(col) & (row >= 0) & (row < height) & (col >= 0) & (col < width)
    return np.where(on, row, 0).astype(np.int64), np.where(on, col, 0).astype(np.int64), on


def axes_swapped(xy: np.ndarray, crs) -> bool:
    """Whether points ``(n, 2)`` fall outside the area of use of their CRS while the same points with x and y exchanged
    fall inside it (most outside, nearly all inside): a table whose x and y columns were swapped. ``False`` for a CRS
    without an area of use or one that covers the world (lon/lat)."""
    area = as_crs(crs).area_of_use
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if area is None or len(xy) == 0:
        return False
    w, s, e, n = area.bounds

    def share_inside(points: np.ndarray) -> float:
        try:
            ll = transform_xy(points, crs, "EPSG:4326")
        except CRSTransformError:
            return 0.0
        lon = (ll[:, 0] >= w) & (ll[:, 0] <= e) if w <= e else (ll[:, 0] >= w) | (ll[:, 0] <= e)
        return float((np.isfinite(ll).all(1) & lon & (ll[:, 1] >= s) & (ll[:, 1] <= n)).mean())

    return share_inside(xy) < 0.5 and share_inside(xy[:, ::-1]) > 0.9


def equal_area_crs(lonlat: np.ndarray) -> str:
    """The equal-area CRS of lon/lat points ``(n, 2)``: Lambert azimuthal equal-area centred on their mean direction
    (robust to the antimeridian), or EASE-Grid 2.0 (EPSG:6933) when the longitudes span more than 180°."""
    lonlat = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)
    if len(lonlat) and np.ptp(lonlat[:, 0]) > 180:
        return "EPSG:6933"
    lon, lat = np.radians(lonlat[:, 0]), np.radians(lonlat[:, 1])
    v = np.c_[np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)].mean(0)
    lon0 = float(np.degrees(np.arctan2(v[1], v[0])))
    lat0 = float(np.degrees(np.arctan2(v[2], np.hypot(v[0], v[1]))))
    return f"+proj=laea +lat_0={lat0:.6f} +lon_0={lon0:.6f} +datum=WGS84 +units=m +no_defs"


__all__ = ["CRSTransformError", "EARTH_RADIUS_M", "as_crs", "axes_swapped", "chord_to_great_circle_m", "equal_area_crs", "grid_windows", "metric_coords", "pixel_index",
           "transform_xy", "transformer"]
