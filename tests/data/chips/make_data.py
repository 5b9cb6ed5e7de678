"""Seeded generator of the small GeoTIFFs used by tests/data/test_chips.py (run: python tests/data/chips/make_data.py).

Files (written next to this script, or into the folder given as the first argument):
- ``s2.tif``: 4 bands ``B02 B03 B04 B08`` (descriptions), 16 rows × 20 cols at 10 m, EPSG:32633, float32, nodata -9999
  in a 2×2 block at rows 5-6, cols 7-8; values = band * 1000 + row * 20 + col + seeded noise.
- ``dem_lonlat.tif``: 1 band ``DEM``, EPSG:4326, covering the same area at ~5 m, value = the linear function
  ``(x - 500000) / 10 + (y - 5000000) / 100`` of the UTM 33N coordinates of each pixel centre (so a reprojected chip has
  a known value at every pixel).
- ``ndvi_series.tif``: 5 dates (band descriptions are ISO dates), same grid as ``s2.tif``, value = date index + row/100.
- ``clouds.tif``: 5 bands, 1 where cloudy (date 2, rows 0-3), else 0, uint8, same dates.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

SEED = 6
X0, Y0, RES = 500_000.0, 5_000_160.0, 10.0
ROWS, COLS = 16, 20
BANDS = ["B02", "B03", "B04", "B08"]
DATES = ["2020-03-01T10:00:00", "2020-05-10T10:00:00", "2020-07-04T10:00:00", "2020-09-12T10:00:00", "2020-11-20T10:00:00"]


def _write(path: Path, data: np.ndarray, crs: str, transform, descriptions, nodata=None) -> None:
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[1], width=data.shape[2], count=data.shape[0],
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions, 1):
            dst.set_band_description(i, d)


def s2_array() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    r, c = np.mgrid[0:ROWS, 0:COLS]
    data = np.stack([(b + 1) * 1000 + r * 20 + c + rng.uniform(0, 0.5, (ROWS, COLS)) for b in range(len(BANDS))])
    data = data.astype(np.float32)
    data[:, 5:7, 7:9] = -9999
    return data


def dem_value(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x - 500_000.0) / 10.0 + (y - 5_000_000.0) / 100.0


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    transform = from_origin(X0, Y0, RES, RES)
    _write(out / "s2.tif", s2_array(), "EPSG:32633", transform, BANDS, nodata=-9999)

    to_ll = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    lon0, lat1 = to_ll.transform(X0 - 50, Y0 + 50)
    lon1, lat0 = to_ll.transform(X0 + COLS * RES + 50, Y0 - ROWS * RES - 50)
    dlon, dlat = 5 / 78_000, 5 / 111_000
    w, h = int(np.ceil((lon1 - lon0) / dlon)), int(np.ceil((lat1 - lat0) / dlat))
    ll_transform = from_origin(lon0, lat1, dlon, dlat)
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    lon, lat = lon0 + cols * dlon, lat1 - rows * dlat
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True).transform(lon, lat)
    _write(out / "dem_lonlat.tif", dem_value(x, y)[None].astype(np.float32), "EPSG:4326", ll_transform, ["DEM"])

    r = np.mgrid[0:ROWS, 0:COLS][0]
    ndvi = np.stack([t + r / 100.0 for t in range(len(DATES))]).astype(np.float32)
    _write(out / "ndvi_series.tif", ndvi, "EPSG:32633", transform, DATES)
    clouds = np.zeros((len(DATES), ROWS, COLS), np.uint8)
    clouds[2, 0:4, :] = 1
    _write(out / "clouds.tif", clouds, "EPSG:32633", transform, DATES)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
