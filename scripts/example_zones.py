"""Two example zones, the west and east halves of a raster's extent, as a GeoPackage (for the guide's carbon section).

    python scripts/example_zones.py RASTER OUT.gpkg
"""

from __future__ import annotations

import sys

import geopandas as gpd
import rasterio
from shapely.geometry import box


def main(raster: str, out: str) -> None:
    with rasterio.open(raster) as src:
        b, crs = src.bounds, src.crs
    mid = (b.left + b.right) / 2
    zones = gpd.GeoDataFrame({"name": ["west", "east"]}, crs=crs,
                             geometry=[box(b.left, b.bottom, mid, b.top), box(mid, b.bottom, b.right, b.top)])
    zones.to_file(out, driver="GPKG")
    print(f"wrote {out}: 2 zones in {crs}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
