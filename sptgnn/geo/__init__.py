"""Geometry and rasters, below the data: CRSs and coordinates (:mod:`~sptgnn.geo.coords`, re-exported here), the
data directory's path rules (:mod:`~sptgnn.geo.paths`), raster sources and their band names
(:mod:`~sptgnn.geo.sources`), the one aligned reader every raster goes through (:mod:`~sptgnn.geo.aligned`), covariate
stacks (:mod:`~sptgnn.geo.stack`) with their context windows (:mod:`~sptgnn.geo.context`), and the one pixel iterator
of map tiles, zone totals and pre-training cells (:mod:`~sptgnn.geo.pixels`)."""

from sptgnn.geo.coords import (EARTH_RADIUS_M, CRSTransformError, as_crs, axes_swapped, chord_to_great_circle_m,
                               equal_area_crs, grid_windows, metric_coords, pixel_index, transform_xy, transformer)

__all__ = ["CRSTransformError", "EARTH_RADIUS_M", "as_crs", "axes_swapped", "chord_to_great_circle_m", "equal_area_crs",
           "grid_windows", "metric_coords", "pixel_index", "transform_xy", "transformer"]
