"""Shared small fixtures: seeded synthetic soil samples and tiny run configurations.

Everything here is small on purpose (tens of points, hidden width 16, a few epochs) so that the whole suite runs in
well under a few minutes on two CPU cores.
"""

from __future__ import annotations

import copy

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import torch

from sptgnn.config import Config
from sptgnn.data.samples import SoilSamples

torch.set_num_threads(1)


def pytest_configure(config):
    # torch_geometric's import-time use of torch.jit.script: not this package's concern
    config.addinivalue_line("filterwarnings", "ignore:`torch.jit.script` is deprecated:DeprecationWarning")

IMAGERY = ["B02", "B04", "NDVI"]
ENVIRONMENT = ["Slope", "Altitude"]


def make_samples(
    n: int = 60,
    seed: int = 0,
    crs: str = "EPSG:32633",
    origin: tuple[float, float] = (500_000.0, 5_700_000.0),
    extent: float = 2_000.0,
    with_elevation: bool = True,
    with_date: bool = True,
    prefix: str = "s",
    folds: int | None = 5,
) -> SoilSamples:
    """Seeded synthetic samples in a projected CRS: 3 imagery bands, 2 environment covariates (``Altitude`` is also
    the elevation), a positive spatially smooth SOC target in g/kg, sampling dates and cyclic folds."""
    rng = np.random.default_rng(seed)
    x = origin[0] + rng.uniform(0, extent, n)
    y = origin[1] + rng.uniform(0, extent, n)
    u, v = (x - origin[0]) / extent, (y - origin[1]) / extent
    altitude = 50 + 20 * u + 10 * np.sin(3 * v) + rng.normal(0, 1.0, n)
    slope = np.abs(2 + np.cos(4 * u) + rng.normal(0, 0.3, n))
    b02 = 0.05 + 0.02 * v + rng.normal(0, 0.005, n)
    b04 = 0.08 + 0.03 * u + rng.normal(0, 0.005, n)
    ndvi = 0.3 + 0.4 * np.sin(2 * u + v) ** 2 + rng.normal(0, 0.02, n)
    soc = np.exp(2.3 + 0.5 * np.sin(3 * u) * np.cos(2 * v) + 0.8 * (ndvi - 0.5) + rng.normal(0, 0.1, n))
    frame = pd.DataFrame({
        "sample_id": [f"{prefix}{i}" for i in range(n)],
        "soc_g_kg": soc,
        "B02": b02,
        "B04": b04,
        "NDVI": ndvi,
        "Slope": slope,
        "Altitude": altitude,
    })
    if with_date:
        frame["date"] = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365, n), unit="D")
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(x, y), crs=crs)
    return SoilSamples(
        frame=gdf,
        targets=["soc_g_kg"],
        feature_groups={"imagery": list(IMAGERY), "environment": list(ENVIRONMENT)},
        elevation="Altitude" if with_elevation else None,
        date_column="date" if with_date else None,
        folds=None if folds is None else (np.arange(n) % folds) + 1,
        name="synthetic",
    )


def make_geo_samples(n: int = 40, seed: int = 0) -> SoilSamples:
    """Seeded samples in lon/lat degrees (EPSG:4326) spread over several degrees, so that great-circle and planar
    distances differ."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(10.0, 16.0, n)
    lat = rng.uniform(45.0, 52.0, n)
    frame = pd.DataFrame({
        "sample_id": [f"g{i}" for i in range(n)],
        "soc_g_kg": rng.uniform(5, 30, n),
        "B04": rng.normal(0.1, 0.02, n),
        "Altitude": rng.uniform(100, 900, n),
    })
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
    return SoilSamples(frame=gdf, targets=["soc_g_kg"], feature_groups={"imagery": ["B04"], "environment": ["Altitude"]},
                       elevation="Altitude", name="geo")


TINY = {
    "data": {"dataset": "limesoda:BB.30_2", "target": "soc_g_kg", "target_transform": "log1p"},
    "graph": {"k_spatial": 4, "k_spectral": 3, "k_elevation": 2, "elevation_candidates": 6},
    "model": {"hidden": 16, "num_experts": 3, "top_k": 2, "num_layers": 1, "heads": 2, "dropout": 0.0,
              "position_frequencies": 4, "position_scales": [0.5, 2.0], "label_inputs": True},
    "loss": {"kind": "beta_nll", "beta": 0.5, "moran_weight": 0.1, "balance_weight": 0.01},
    "train": {"members": 2, "epochs": 5, "patience": 3, "val_blocks": 4, "seed": 0, "refit": False, "ema_decay": 0.0},
    "evaluate": {"baselines": ["xgboost"], "moran_k": 4, "moran_permutations": 0},
    "calibration": {"method": "none"},  # the default `auto` trains twins: tests that need calibration ask for it
}


def tiny_config_dict(**sections: dict) -> dict:
    """The tiny configuration as a plain dict, with ``sections`` merged over each section."""
    raw = copy.deepcopy(TINY)
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


def tiny_config(**sections: dict) -> Config:
    """A validated tiny :class:`Config` (hidden 16, 1 layer, 2 members, 5 epochs)."""
    return Config.model_validate(tiny_config_dict(**sections))


@pytest.fixture(scope="session")
def samples_factory():
    return make_samples


@pytest.fixture(scope="session")
def geo_samples_factory():
    return make_geo_samples


@pytest.fixture(scope="session")
def config_factory():
    return tiny_config


@pytest.fixture(scope="session")
def config_dict_factory():
    return tiny_config_dict


@pytest.fixture
def samples() -> SoilSamples:
    return make_samples()


@pytest.fixture
def split(samples) -> tuple[SoilSamples, SoilSamples]:
    """48 labelled and 12 query samples of :func:`samples`."""
    query = np.zeros(len(samples), dtype=bool)
    query[::5] = True
    return samples.subset(~query), samples.subset(query)
