"""Helpers shared by test modules (tests import this module, never each other): small GeoTIFF writers, a query
split and an exact comparison of two predictions."""

from __future__ import annotations

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

X0, Y0 = 500_000.0, 5_700_000.0  # upper-left corner, EPSG:32633


def write_tif(path, data, res, crs="EPSG:32633", origin=(X0, Y0), nodata=None, descriptions=None, dtype="float32"):
    data = np.asarray(data, dtype=dtype)
    if data.ndim == 2:
        data = data[None]
    prof = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0], dtype=dtype,
                crs=CRS.from_user_input(crs) if isinstance(crs, str) else crs, transform=from_origin(origin[0], origin[1], res, res),
                nodata=nodata)
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)
    return path


def soc_stack_and_points(folder, height, width, res, corner, n, seed, first_row, origin=(X0, Y0)):
    """A covariate stack ``stack.tif`` (bands ``elev``, m, and ``ndvi``: smooth fields of the pixel position) with a
    nodata (-9999) corner of ``corner`` = (rows, cols), and ``pts.csv``: ``n`` SOC points (g/kg, linear in both plus
    noise, seeded) on pixel centres from row ``first_row`` down; the grid's upper-left corner is ``origin``. Returns the ``data.table`` config section that reads
    the points (EPSG:32633, elevation ``elev``)."""
    import pandas as pd

    rows, cols = np.mgrid[0:height, 0:width]
    u, v = cols / width, rows / height
    elev = 50 + 20 * u + 5 * np.sin(4 * v)
    ndvi = 0.3 + 0.4 * np.sin(2 * u + v) ** 2
    elev[:corner[0], :corner[1]] = -9999.0
    write_tif(folder / "stack.tif", np.stack([elev, ndvi]), res, origin=origin, nodata=-9999.0,
              descriptions=["elev", "ndvi"])
    rng = np.random.default_rng(seed)
    r, c = rng.integers(first_row, height, n), rng.integers(0, width, n)
    soc = 10 + 0.3 * (elev[r, c] - 50) + 20 * ndvi[r, c] + rng.normal(0, 0.5, n)
    pd.DataFrame({"pid": np.arange(n), "x": origin[0] + (c + 0.5) * res, "y": origin[1] - (r + 0.5) * res,
                  "soc_g_kg": soc}).to_csv(folder / "pts.csv", index=False)
    return {"path": str(folder / "pts.csv"), "x": "x", "y": "y", "crs": "EPSG:32633", "id": "pid", "elevation": "elev",
            "units": "g/kg"}


def stack_sections(folder, table: dict, **data) -> dict:
    """Config sections of a run on :func:`soc_stack_and_points`' files in ``folder``: the points ``table``, the
    covariates of ``stack.tif`` and the spectral relation on the environment stream; ``data`` adds to the data
    section. Pass them as keyword arguments of the config factories."""
    return {"data": {"target": "soc_g_kg", "table": table, "rasters": [{"path": str(folder / "stack.tif")}], **data},
            "graph": {"spectral_streams": ["environment"]}}


def field(x, y):
    """A linear covariate of the coordinates (m): exact under nearest resampling at pixel centres."""
    return (x - X0) / 10.0 + 2 * (Y0 - y) / 10.0


def split_every_fourth(samples):
    """Labelled samples and every fourth sample as queries."""
    query = np.zeros(len(samples), dtype=bool)
    query[::4] = True
    return samples.subset(~query), samples.subset(query)


def assert_same_prediction(a, b):
    """Two ensemble predictions are identical (moments and member moments, exactly)."""
    for attr in ("mean", "aleatoric_sd", "epistemic_sd", "member_mean", "member_var"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=attr)
    np.testing.assert_array_equal(a.sd, b.sd)
