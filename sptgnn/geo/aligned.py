"""The one aligned reader: every raster that must be read on another grid (covariate stacks, their context windows,
imagery chips) goes through a rasterio :class:`~rasterio.vrt.WarpedVRT` made here, with one resampling vocabulary and
one error, so that a pixel read for a map, a zone total, a pre-training cell or a chip is warped the same way."""

from __future__ import annotations

from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from sptgnn.geo.sources import RasterError

#: The usual resampling names (any of :class:`rasterio.enums.Resampling` is accepted).
RESAMPLING = ("nearest", "bilinear", "cubic", "average")


def on_grid(ds, crs, transform, width: int, height: int) -> bool:
    """Whether ``ds`` already lies on the grid: same CRS, transform (to float tolerance) and shape."""
    return ds.crs == crs and ds.transform.almost_equals(transform) and (ds.width, ds.height) == (width, height)


def warped(ds, crs, transform, width: int, height: int, resampling: str = "nearest", **options) -> WarpedVRT:
    """``ds`` reprojected and resampled on the grid ``(crs, transform, width, height)`` as a lazy
    :class:`~rasterio.vrt.WarpedVRT` (GDAL warps each window when it is read).

    Args:
        ds: An open rasterio dataset.
        crs, transform, width, height: The target grid.
        resampling: A :class:`rasterio.enums.Resampling` name (:data:`RESAMPLING` lists the usual ones).
        **options: More :class:`WarpedVRT` options (``nodata``, ``dtype``, ``add_alpha``).

    Raises:
        RasterError: An unknown resampling, or a warp GDAL cannot make (the file and both CRSs named).
    """
    if resampling not in Resampling.__members__:
        raise RasterError(f"unknown resampling '{resampling}' for {ds.name}; use one of {', '.join(RESAMPLING)}")
    try:
        return WarpedVRT(ds, crs=crs, transform=transform, width=width, height=height,
                         resampling=Resampling[resampling], **options)
    except Exception as exc:  # noqa: BLE001 - GDAL raises various errors for impossible warps
        raise RasterError(f"{ds.name} (CRS {ds.crs}) cannot be aligned on the reference grid (CRS {crs}): {exc}") from None


def aligned(ds, crs, transform, width: int, height: int, resampling: str = "nearest"):
    """``ds`` itself when it lies on the grid, else :func:`warped` onto it; a source without nodata gets a float VRT
    with NaN nodata, so pixels outside it read as invalid, not as zeros.

    Raises:
        RasterError: As :func:`warped`.
    """
    if on_grid(ds, crs, transform, width, height):
        return ds
    extra = {}
    if ds.nodata is None:
        extra = {"nodata": float("nan"), "dtype": "float64" if "float64" in ds.dtypes else "float32"}
    return warped(ds, crs, transform, width, height, resampling, **extra)


__all__ = ["RESAMPLING", "aligned", "on_grid", "warped"]
