"""The user inputs of a stock total, checked before any work (``sptgnn aggregate``): zone polygons (readable, with a
CRS, valid, with an area), a plausible bulk density, and sizes that fit in memory. Refusals raise
:class:`~sptgnn.accounting.aggregate.AggregateError` with the fix; doubtful values are warned about (one line each)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np

from sptgnn.accounting.aggregate import AggregateError

#: Bulk density of the fine earth beyond which a value is most likely a unit mistake (g/cm³): peat ~0.1, quartz 2.65.
BULK_DENSITY_RANGE = (0.1, 2.0)
#: Bytes per pixel and realisation of one window's arrays (SOC, stock, bulk density and coarse draws, the field).
BYTES_PER_DRAW = 6 * 8


def check_plausible(bulk_density: float, bulk_density_sd: float, coarse: float, coarse_sd: float, realisations: int,
                    window: int) -> None:
    """Refuse a bulk density (g/cm³) that is not finite and positive, sds that are not finite and non-negative, a
    coarse-fragment share outside [0, 1], and realisations whose window arrays would not fit in the free memory; warn
    about a bulk density outside :data:`BULK_DENSITY_RANGE` or an sd so large that the truncation of its draws at
    0.05 g/cm³ raises the mean.

    Raises:
        AggregateError: One of the refusals above (the message names the option).
    """
    if not 0 <= coarse <= 1:
        raise AggregateError(f"--coarse {coarse}: coarse fragments are a volume share in [0, 1]")
    for name, value in (("--bulk-density", bulk_density), ("--bulk-density-sd", bulk_density_sd),
                        ("--coarse-sd", coarse_sd)):
        if not np.isfinite(value) or value < 0 or (name == "--bulk-density" and value == 0):
            raise AggregateError(f"{name} {value}: must be a finite, "
                                 f"{'positive' if name == '--bulk-density' else 'non-negative'} number")
    lo, hi = BULK_DENSITY_RANGE
    if not lo <= bulk_density <= hi:
        warnings.warn(f"--bulk-density {bulk_density:g} g/cm3 lies outside {lo:g}-{hi:g}; is it in g/cm3 (not kg/m3)?")
    if bulk_density_sd > bulk_density / 3:
        warnings.warn(f"--bulk-density-sd {bulk_density_sd:g} is over a third of the bulk density: draws below 0.05 "
                      f"g/cm3 are cut off, which raises the mean bulk density and every stock above {bulk_density:g}")
    need = BYTES_PER_DRAW * realisations * window**2
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if need > free:
        raise AggregateError(f"{realisations} realisations of {window} x {window} px windows need about "
                             f"{need / 2**30:.1f} GiB, more than the {free / 2**30:.1f} GiB free; lower --realisations "
                             f"or --window")



def read_zones(path: str | Path, make_valid: bool = False):
    """The zone polygons of a GeoPackage or shapefile, checked: a CRS, polygons with an area; invalid polygons are
    repaired with shapely's ``make_valid`` when ``make_valid``, empty and point or line zones are warned about (they
    hold no pixel).

    Raises:
        AggregateError: The file cannot be read as vector data, holds no zone, has no CRS, or has invalid polygons and
            ``make_valid`` is False.
    """
    import pyogrio

    try:
        zones = gpd.read_file(path)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError) as exc:
        raise AggregateError(f"cannot read the zones {path} as vector data ({str(exc).splitlines()[0][:120]}); give a "
                             f"GeoPackage or shapefile of polygons") from None
    if zones.empty:
        raise AggregateError(f"the zones file {path} holds no zone")
    if zones.crs is None:
        raise AggregateError(f"the zones in {path} have no CRS; assign the CRS they were drawn in (e.g. in QGIS, or "
                             f"geopandas' set_crs) and write them again")
    invalid = ~zones.geometry.is_valid & zones.geometry.notna()
    if invalid.any():
        if not make_valid:
            raise AggregateError(f"{int(invalid.sum())} zone(s) of {path} are invalid polygons (e.g. self-intersecting, "
                                 f"row {int(np.flatnonzero(invalid)[0]) + 1}); repair them or give --make-valid")
        zones = zones.copy()
        zones.loc[invalid, zones.geometry.name] = zones.geometry[invalid].make_valid()
        warnings.warn(f"repaired {int(invalid.sum())} invalid zone polygon(s) of {path} with make_valid")
    no_area = zones.geometry.isna() | zones.geometry.is_empty | (zones.geometry.area <= 0)
    if no_area.all():
        raise AggregateError(f"no zone of {path} is a polygon with an area (points, lines or empty geometries)")
    if no_area.any():
        warnings.warn(f"{int(no_area.sum())} zone(s) of {path} have no area (empty, point or line geometries; first at "
                      f"row {int(np.flatnonzero(no_area)[0]) + 1}): they hold no pixel and get no total")
    return zones


#: Columns that name a zone, in the order they are looked for (zone tables from GIS use any of them).
ZONE_NAME_COLUMNS = ("name", "zone", "id", "field", "NAME")


def zone_name_column(columns) -> str | None:
    """The first of :data:`ZONE_NAME_COLUMNS` among ``columns``, or ``None`` (zones are then numbered)."""
    return next((c for c in ZONE_NAME_COLUMNS if c in columns), None)


__all__ = ["BULK_DENSITY_RANGE", "BYTES_PER_DRAW", "ZONE_NAME_COLUMNS", "check_plausible", "read_zones", "zone_name_column"]
