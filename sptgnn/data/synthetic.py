"""Synthetic soil samples of any size, for benchmarks and scale tests (torchgeo-style fake data).

The samples lie uniformly in a square of ``extent_m`` metres (UTM zone 33N). Their covariates are smooth functions of
position plus noise: five imagery bands (``blue``, ``green``, ``red``, ``nir``, ``swir``) and two environmental covariates (``elevation``
in m, ``slope`` in degrees). SOC (g/kg) is log-normal around a smooth function of position and the covariates, so it
has spatial structure and covariate signal. Nothing here is real data: use it to measure cost, never accuracy.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from sptgnn.data.samples import SoilSamples

IMAGERY = ["blue", "green", "red", "nir", "swir"]
ENVIRONMENT = ["elevation", "slope"]


def synthetic_samples(n: int, seed: int = 0, extent_m: float = 100_000.0) -> SoilSamples:
    """``n`` seeded synthetic samples with SOC (``soc_g_kg``), 5 imagery bands, 2 covariates, elevation and dates.

    Args:
        n: Number of samples (``>= 1``).
        seed: Seed of the positions and noise.
        extent_m: Side of the square they lie in (m).

    Returns:
        :class:`SoilSamples` in EPSG:32633 with ``elevation`` as the elevation column and a ``date`` column.

    Raises:
        ValueError: ``n < 1`` or ``extent_m <= 0``.
    """
    if n < 1 or extent_m <= 0:
        raise ValueError(f"synthetic_samples needs n >= 1 and extent_m > 0, got n={n}, extent_m={extent_m}")
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    noise = lambda scale: rng.normal(0, scale, n)  # noqa: E731
    elevation = 200 + 80 * np.sin(3 * u) + 50 * np.cos(4 * v) + noise(2.0)
    slope = np.abs(3 + 2 * np.cos(6 * u + v) + noise(0.5))
    nir = 0.3 + 0.2 * np.sin(5 * u + 2 * v) ** 2 + noise(0.02)
    red = 0.08 + 0.03 * np.cos(4 * (u - v)) + noise(0.005)
    blue = 0.05 + 0.02 * np.sin(7 * v) + noise(0.005)
    green = 0.07 + 0.02 * np.cos(3 * u + 5 * v) + noise(0.005)
    swir = 0.2 + 0.05 * np.sin(4 * u - 3 * v) + 0.1 * (slope / 10) + noise(0.01)
    soc = np.exp(2.3 + 0.4 * np.sin(6 * u) * np.cos(5 * v) + 1.5 * (nir - 0.4) - 0.002 * (elevation - 200) + noise(0.2))
    frame = pd.DataFrame({"sample_id": np.char.add("s", np.arange(n).astype(str)), "soc_g_kg": soc, "blue": blue,
                          "green": green, "red": red, "nir": nir, "swir": swir, "elevation": elevation, "slope": slope,
                          "date": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365, n), unit="D")})
    geometry = gpd.points_from_xy(400_000 + extent_m * u, 5_700_000 + extent_m * v)
    return SoilSamples(frame=gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:32633"), targets=["soc_g_kg"],
                       feature_groups={"imagery": list(IMAGERY), "environment": list(ENVIRONMENT)},
                       elevation="elevation", date_column="date", name=f"synthetic:{n}")


__all__ = ["synthetic_samples"]
