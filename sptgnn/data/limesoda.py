"""Loader for the LimeSoDa field datasets (Schmidinger et al. 2025, Geoderma, CC BY-SA 4.0).

LimeSoDa ships 31 datasets with SOC or SOM, pH and clay, covariates and 10 folds; those with coordinates become
:class:`~sptgnn.data.samples.SoilSamples`. SOC and SOM are shipped in %; they are converted to g/kg (× 10) and keep their
own names (``soc_g_kg``, ``som_g_kg``): SOM is never converted to SOC. Sentinel-2 band columns (B01 … B12, NDVI, GNDVI)
form the imagery stream, ``Altitude`` is the elevation (m), every other covariate is the environment stream (elevation
included, as the baselines see it). Sampling dates come from ``limesoda-metadata/`` in the data directory where the
dataset has a single sampling month.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

import geopandas as gpd
import numpy as np
import pandas as pd

from sptgnn.errors import UserError
from sptgnn.geo.paths import data_dir
from sptgnn.data.samples import SoilSamples

S2_COLUMN = re.compile(r"^(B(0[1-9]|1[0-2]|8A)|NDVI|GNDVI)$")
_COORD = re.compile(r"^([xy])_(dummy_)?(\d{4,5})$")
# LimeSoDa ships SOC in g dm^-3 and clay in g/kg for these two (limesoda-metadata, "target_unit"); they are kept in those
# units under their own names, since g dm^-3 cannot become g/kg without bulk density.
_VOLUMETRIC = {"MG.44", "SSP.58"}
_MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"], 1)}


class DatasetError(UserError):
    """A dataset that cannot be loaded; the message says which names are valid or what the dataset lacks."""


def _limesoda():
    import LimeSoDa  # imported lazily: it loads nothing until asked

    return LimeSoDa


@lru_cache(maxsize=None)
def _raw(name: str) -> dict:
    return _limesoda().load_dataset(name)


def _coordinate_epsg(columns: list[str]) -> tuple[int, bool] | None:
    """EPSG code and whether it is a dummy from LimeSoDa coordinate column names like ``x_25833``."""
    found = [_COORD.match(c) for c in columns]
    if len(columns) != 2 or not all(found):
        return None
    return int(found[0].group(3)), bool(found[0].group(2))


def all_limesoda_names() -> list[str]:
    """Every dataset LimeSoDa ships, with or without coordinates."""
    return [n for n in _limesoda().list_datasets() if n != "Overview_Datasets"]


@lru_cache(maxsize=None)
def limesoda_names() -> list[str]:
    """LimeSoDa datasets that have real (non-dummy) coordinates, hence can become a graph."""
    names = []
    for n in all_limesoda_names():
        coords = _raw(n)["Coordinates"]
        if isinstance(coords, pd.DataFrame):
            epsg = _coordinate_epsg(list(coords.columns))
            if epsg is not None and not epsg[1]:
                names.append(n)
    return names


def _parse_month(text: str) -> pd.Timestamp | None:
    """Mid-month date of a single ``"Month YYYY"`` sampling campaign; ``None`` for unknown or several campaigns."""
    m = re.fullmatch(r"\s*([A-Za-z]+)\s+(\d{4})\s*", str(text))
    if not m or m.group(1).lower() not in _MONTHS:
        return None
    return pd.Timestamp(year=int(m.group(2)), month=_MONTHS[m.group(1).lower()], day=15)


def sampling_date(name: str) -> pd.Timestamp | None:
    """Sampling date of a LimeSoDa dataset from ``limesoda-metadata/`` (mid-month), or ``None`` when not known."""
    path = data_dir() / "limesoda-metadata" / "limesoda_datasets_metadata.csv"
    if not path.is_file():
        warnings.warn(f"{path} not found: sampling dates unknown, the time stream is left out", stacklevel=2)
        return None
    meta = pd.read_csv(path).set_index("Dataset")
    return _parse_month(meta.loc[name, "sampling_date"]) if name in meta.index else None


def _target_name(dataset: str, base: str) -> tuple[str, float]:
    """Our column name and unit factor of a LimeSoDa target: % → g/kg (× 10) for SOC and SOM; g dm⁻³ and g/kg kept."""
    if dataset in _VOLUMETRIC:
        return {"SOC": ("soc_g_dm3", 1.0), "pH": ("ph", 1.0), "Clay": ("clay_g_kg", 1.0)}[base]
    return {"SOC": ("soc_g_kg", 10.0), "SOM": ("som_g_kg", 10.0), "pH": ("ph", 1.0), "Clay": ("clay_percent", 1.0)}[base]


def load_limesoda(name: str) -> SoilSamples:
    """Load one LimeSoDa dataset with coordinates as :class:`SoilSamples`.

    Args:
        name: LimeSoDa name, e.g. ``"BB.250"``.

    Returns:
        Samples in the dataset's projected CRS (EPSG from the coordinate column names) with targets ``soc_g_kg`` or
        ``som_g_kg`` (g/kg), ``ph`` and ``clay_percent`` (MG.44 and SSP.58: ``soc_g_dm3`` and ``clay_g_kg``, as shipped), the shipped folds (1…10) and, where known, the sampling date.

    Raises:
        DatasetError: Unknown name (the valid ones are listed) or a dataset without real coordinates.
    """
    every = all_limesoda_names()
    if name not in every:
        close = [n for n in every if n.lower() == name.lower()]
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise DatasetError(f"unknown LimeSoDa dataset '{name}'{hint}; datasets with coordinates: {', '.join(limesoda_names())}")
    raw = _raw(name)
    coords = raw["Coordinates"]
    epsg = _coordinate_epsg(list(coords.columns)) if isinstance(coords, pd.DataFrame) else None
    if epsg is None or epsg[1]:
        what = "only dummy coordinates" if epsg else "no coordinates"
        raise DatasetError(
            f"LimeSoDa dataset '{name}' has {what}, so no spatial graph can be built; "
            f"use one with coordinates: {', '.join(limesoda_names())}"
        )
    table = raw["Dataset"].reset_index(drop=True).astype(float)
    frame = pd.DataFrame({"sample_id": [f"{name}-{i + 1}" for i in range(len(table))]})
    targets = []
    for col in table.columns:
        if col.endswith("_target"):
            new, factor = _target_name(name, col[: -len("_target")])
            frame[new] = table[col] * factor
            targets.append(new)
    features = [c for c in table.columns if not c.endswith("_target")]
    frame = pd.concat([frame, table[features]], axis=1)  # one block: SC.93 has 2,146 covariate columns
    imagery = [c for c in features if S2_COLUMN.match(c)]
    environment = [c for c in features if c not in imagery]
    date = sampling_date(name)
    if date is not None:
        frame["date"] = date
    geometry = gpd.points_from_xy(coords.iloc[:, 0].to_numpy(float), coords.iloc[:, 1].to_numpy(float))
    gdf = gpd.GeoDataFrame(frame, geometry=geometry, crs=f"EPSG:{epsg[0]}")
    return SoilSamples(
        frame=gdf,
        targets=targets,
        feature_groups={"imagery": imagery, "environment": environment},
        elevation="Altitude" if "Altitude" in features else None,
        date_column="date" if date is not None else None,
        folds=np.asarray(raw["Folds"]).astype(int),
        name=f"limesoda:{name}",
        metadata={"source": "LimeSoDa (Schmidinger et al. 2025), CC BY-SA 4.0", "units": {"soc_g_kg": "g/kg", "som_g_kg": "g/kg", "soc_g_dm3": "g/dm3", "clay_percent": "%", "clay_g_kg": "g/kg"}},
    )


__all__ = ["DatasetError", "load_limesoda", "limesoda_names", "sampling_date"]
