"""Named datasets ``afsp-africa`` and ``wise-global`` (topsoil SOC points), ``afsp-africa-profiles`` and
``wise-layers`` (every layer of their profiles), read from the data directory.

``afsp-africa``: the Africa Soil Profiles database and AfSIS sentinel sites (Leenaars et al. 2014; Hengl et al. 2015),
22,292 topsoil SOC points (g/kg) with sampling dates, and the 38-band 20 km covariate grid of Africa ``afgrid20``
(WorldGrids layers, Hengl 2019, GSIF). Covariates are sampled with rasterio at the grid cell each point falls in, after
transforming lon/lat (WGS84) to the grid's Lambert azimuthal equal-area CRS; the samples are kept in that CRS (metres),
so spatial neighbours and blocks are planar distances on an equal-area map. Points off the grid or on a nodata cell of
a continuous band are dropped and counted (a logged warning and ``metadata["dropped"]``); a nodata cell of a
categorical band only leaves that point's one-hot columns at zero (also counted). Categorical bands (``SGEUSG0x``
geology, ``L3POBI0a`` landform) are one-hot encoded with the codes of ``afgrid20_categorical_codes.csv``. MODIS EVI and
land-surface-temperature bands form the imagery stream, the other bands the environment stream; ``DEMSRE0a`` is the
elevation (m). The table's pH (water), clay, sand, silt, bulk density, CEC and total N become secondary targets
(``ph_h2o``, ``clay_pct``, …; NaN where not measured) for multi-task learning (``data.targets``). Sampling dates become
the time stream; the 1,758 points without a date get the median date of their
source database (flag column ``date_imputed``). Use ``data.target_transform: log1p`` to model log SOC.

``wise-global``: WISE 3.1 topsoil SOC of 7,838 profiles (Batjes 2009) in lon/lat, no covariates and no dates; the
position stream (and ``+xy`` baselines) are all there is.

``afsp-africa-profiles`` and ``wise-layers``: all layers with SOC of the same databases (87,693 AfSP horizons of 26,270
profiles joined to their sites; 47,833 WISE layers of 10,253 profiles), as profile layers: the site id ``SOURCEID``
keeps a profile's layers in one fold, ``top_cm``/``bottom_cm`` (cm) are the layer's depths and covariates. Layers
without SOC or a depth interval (negative depths of organic layers above the mineral surface) are dropped and counted.

Files are read from ``sptgnn.geo.paths.data_dir()`` (``$SPTGNN_DATA_DIR``, default ``../shared/data``); a missing file
raises :class:`~sptgnn.data.limesoda.DatasetError` saying where to put it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from sptgnn.data.limesoda import DatasetError
from sptgnn.geo.paths import data_dir
from sptgnn.data.samples import SoilSamples
from sptgnn.geo import CRSTransformError, pixel_index, transform_xy

log = logging.getLogger(__name__)

AFSP_DIR = "afsp-africa"
AFSP_POINTS = "afsp_topsoil_soc.csv"
AFSP_GRID = "afgrid20_covariates_20km.tif"
AFSP_CODES = "afgrid20_categorical_codes.csv"
WISE_DIR = "wise-global"
WISE_POINTS = "wise_topsoil_soc.csv"
WISE_LAYERS = "wise_layers.csv.gz"

#: MODIS bands of afgrid20 (EVI mean/sd, LST day/night mean and sd): the imagery stream.
AFGRID_IMAGERY = ("EVMMOD0a", "EVSMOD0a", "TDMMOD0a", "TNMMOD0a", "TDSMOD0a", "TNSMOD0a", "TDHMOD0a")
#: Categorical bands, one-hot encoded.
AFGRID_CATEGORICAL = ("SGEUSG0x", "L3POBI0a")
#: Bands left out: the land mask is 1 on every valid cell.
AFGRID_DROP = ("SMKMOD0x",)
AFGRID_ELEVATION = "DEMSRE0a"
#: Further soil properties of the topsoil table, secondary targets for multi-task learning (``data.targets``), with
#: their units; each is measured at only part of the points (NaN elsewhere).
AFSP_SECONDARY = {"ph_h2o": "pH", "clay_pct": "%", "sand_pct": "%", "silt_pct": "%", "bulk_density_kg_m3": "kg/m3",
                  "cec_cmol_kg": "cmol(+)/kg", "total_n_g_kg": "g/kg"}
#: The profile layers' secondary targets: the topsoil ones and the coarse fragments (volume %), which stocks need.
AFSP_PROFILE_SECONDARY = AFSP_SECONDARY | {"coarse_frag_vol_pct": "%"}
AFSP_HORIZONS = "afsp_horizons.csv.gz"
AFSP_SITES = "afsp_sites.csv.gz"
#: Columns of the horizon table under the names the topsoil table uses.
AFSP_HORIZON_COLUMNS = {"ORCDRC": "soc_g_kg", "UHDICM": "top_cm", "LHDICM": "bottom_cm", "PHIHOX": "ph_h2o",
                        "CLYPPT": "clay_pct", "SNDPPT": "sand_pct", "SLTPPT": "silt_pct", "BLD": "bulk_density_kg_m3",
                        "CEC": "cec_cmol_kg", "NTO": "total_n_g_kg", "CRFVOL": "coarse_frag_vol_pct"}


class GridCoverageError(DatasetError):
    """A covariate raster that covers none of the points; the message names the raster and both extents."""


def need_file(path: Path, dataset: str) -> Path:
    if not path.is_file():
        raise DatasetError(
            f"dataset '{dataset}' needs {path}, which is missing: put the '{path.parent.name}' folder (see its SOURCE.md) "
            f"under the data directory {data_dir()} or point SPTGNN_DATA_DIR at the folder that holds it"
        )
    return path


def _numeric(frame: pd.DataFrame, path: Path, required: list[str], columns: tuple = ()) -> pd.DataFrame:
    """``frame`` (read from ``path``, rows in file order) with its ``required`` columns present and ``columns`` and
    the secondary targets numeric; errors name the file, column and lines."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}; the file has {list(frame.columns)}")
    numeric = [c for c in required if c not in ("SOURCEID", "SOURCEDB", "date")]
    for col in dict.fromkeys([*numeric, *columns, *[c for c in AFSP_PROFILE_SECONDARY if c in frame.columns]]):
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna()
        if bad.any():
            rows = (np.flatnonzero(bad.to_numpy()) + 2)[:5].tolist()  # +2: header line and 1-based lines
            raise DatasetError(
                f"{path}: column '{col}' holds text ({frame[col][bad].iloc[0]!r}) on line(s) {rows}; it must be numeric "
                "(fix or delete those rows)"
            )
        frame[col] = values
    return frame


def _read_points(path: Path, target: str, required: list[str], frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """A points table (read from ``path`` unless ``frame`` holds it) with numeric target and lon/lat in range; errors
    name the file, column and rows."""
    frame = _numeric(pd.read_csv(path) if frame is None else frame, path, [target, *required], ("lon", "lat"))
    out = (frame["lon"].abs() > 180) | (frame["lat"].abs() > 90)
    if out.any():
        rows = (np.flatnonzero(out.to_numpy()) + 2)[:5].tolist()
        raise DatasetError(
            f"{path}: lon/lat out of range (|lon| <= 180, |lat| <= 90 in WGS84 degrees) on line(s) {rows}; "
            "are the coordinates projected or swapped? Convert them to WGS84 lon/lat"
        )
    keep = frame[[target, "lon", "lat"]].notna().all(axis=1)
    if not keep.all():
        log.warning("%s: dropped %d row(s) without %s or coordinates", path.name, int((~keep).sum()), target)
    return frame[keep].reset_index(drop=True)


def sample_raster_points(path: Path, xy: np.ndarray, crs) -> tuple[np.ndarray, list[str], object]:
    """Band values of the raster cell each point falls in, NaN off the grid or on nodata.

    Kept apart from :meth:`sptgnn.geo.stack.CovariateStack.sample_points` (which marks a point invalid when any
    band is nodata there) because it keeps per-band NaN for the 20 km grid; the Africa figures in README were made
    with it. Moving the loader onto ``CovariateStack`` is an open follow-up.

    Args:
        path: GeoTIFF with band descriptions.
        xy: Point coordinates, shape ``(num_points, 2)``, in ``crs``.
        crs: CRS of the points.

    Returns:
        ``values`` ``(num_points, num_bands)`` float64, the band names, and the raster CRS.

    Raises:
        GridCoverageError: No point falls on a valid cell (the message gives the raster's and the points' bounds).
    """
    import rasterio

    with rasterio.open(path) as ds:
        names = [d or f"band{i + 1}" for i, d in enumerate(ds.descriptions)]
        try:
            gx, gy = transform_xy(xy, crs, ds.crs).T
        except CRSTransformError as exc:
            raise GridCoverageError(f"{path}: {exc}; check the points' CRS") from None
        data = ds.read(masked=True)
        r, c, on = pixel_index(ds.transform, ds.height, ds.width, np.c_[gx, gy])
        values = np.asarray(data.filled(np.nan)[:, r, c].T, dtype=np.float64)
        values[~on] = np.nan
        if not np.isfinite(values).any(1).any():
            b = ds.bounds
            raise GridCoverageError(
                f"{path}: the raster covers none of the {len(xy)} points (raster bounds W {b.left:.0f}, S {b.bottom:.0f}, "
                f"E {b.right:.0f}, N {b.top:.0f} in {ds.crs}; points' bounds there W {np.nanmin(gx):.0f}, "
                f"S {np.nanmin(gy):.0f}, E {np.nanmax(gx):.0f}, N {np.nanmax(gy):.0f}); check the points' CRS "
                "(lon/lat must be WGS84 degrees) or use a raster of the same area"
            )
        return values, names, ds.crs


def categorical_codes(path: Path) -> dict[str, dict[int, str]]:
    codes = pd.read_csv(path)
    out: dict[str, dict[int, str]] = {}
    for band, group in codes.groupby("band"):
        out[str(band)] = {int(k): str(v) for k, v in zip(group["code"], group["label"])}
    return out


def _one_hot_name(band: str, label: str) -> str:
    safe = "".join(ch if ch.isalnum() else "_" for ch in label).strip("_")
    return f"{band}_{safe}"


def afgrid_columns(values: np.ndarray, bands: list[str], codes: dict[str, dict[int, str]]):
    """Feature columns of afgrid20 band values ``(n, num_bands)``: the continuous bands as they are and the categorical
    bands one-hot encoded with ``codes``. Returns ``{column: (n,)}``, the one-hot column names and the largest count of
    nodata values in a categorical band (those rows get zeros)."""
    categorical = [b for b in AFGRID_CATEGORICAL if b in bands]
    continuous = [b for b in bands if b not in categorical and b not in AFGRID_DROP]
    columns: dict[str, np.ndarray] = {b: values[:, bands.index(b)] for b in continuous}
    one_hot: list[str] = []
    cat_missing = 0
    for band in categorical:
        v = values[:, bands.index(band)]
        cat_missing = max(cat_missing, int((~np.isfinite(v)).sum()))
        for code, label in sorted(codes.get(band, {}).items()):
            name = _one_hot_name(band, label)
            columns[name] = (v == code).astype(np.float64)
            one_hot.append(name)
    return columns, one_hot, cat_missing


def load_afsp_africa(root: Path | None = None) -> SoilSamples:
    """Load ``afsp-africa``: AfSP/AfSIS topsoil SOC (g/kg) with afgrid20 covariates (see the module docstring).

    Args:
        root: The data directory (default :func:`~sptgnn.geo.paths.data_dir`).

    Returns:
        Samples in the grid's LAEA CRS (metres) with target ``soc_g_kg``, imagery (MODIS) and environment streams,
        elevation ``DEMSRE0a`` and the sampling date; ``metadata["dropped"]`` counts what was left out.

    Raises:
        DatasetError: A missing file (says where to put it), a non-numeric SOC or coordinate (names the line), lon/lat
            out of range, or a grid covering none of the points.
    """
    folder = (root or data_dir()) / AFSP_DIR
    points = need_file(folder / AFSP_POINTS, "afsp-africa")
    frame = _read_points(points, "soc_g_kg", ["SOURCEID", "SOURCEDB", "date"])
    return _afgrid_samples(frame.assign(sample_id=frame["SOURCEID"].astype(str)), folder, "afsp-africa", points)


def load_afsp_profiles(root: Path | None = None) -> SoilSamples:
    """Load ``afsp-africa-profiles``: every layer with SOC of the Africa Soil Profiles database (horizons joined to
    their sites), with the afgrid20 covariates of the site's cell, as profile layers (see the module docstring).

    Returns:
        Samples as :func:`load_afsp_africa` gives them, one per layer: site ``SOURCEID``, depths ``top_cm`` and
        ``bottom_cm`` (cm, also environment covariates: depth as a covariate, the SoilGrids recipe), SOC ``soc_g_kg``
        (``ORCDRC``, g/kg) and the secondary targets, ``coarse_frag_vol_pct`` (``CRFVOL``, %) and
        ``bulk_density_kg_m3`` (``BLD`` t/m³ × 1000) among them.

    Raises:
        DatasetError: A missing file, a non-numeric value or coordinate (names the file, column and line), lon/lat
            out of range, or a grid covering none of the sites.
    """
    folder = (root or data_dir()) / AFSP_DIR
    horizons_path = need_file(folder / AFSP_HORIZONS, "afsp-africa-profiles")
    sites_path = need_file(folder / AFSP_SITES, "afsp-africa-profiles")
    horizons = _numeric(pd.read_csv(horizons_path).rename(columns=AFSP_HORIZON_COLUMNS), horizons_path,
                        ["SOURCEID", "soc_g_kg", "top_cm", "bottom_cm"])
    horizons["bulk_density_kg_m3"] = horizons["bulk_density_kg_m3"] * 1000.0  # AfSP records BLD in t/m3
    sites = pd.read_csv(sites_path).rename(columns={"LONWGS84": "lon", "LATWGS84": "lat"})
    sites = _read_points(sites_path, "lon", ["lat", "SOURCEID", "SOURCEDB", "date"], sites)
    frame = _layers(horizons.merge(sites[["SOURCEID", "SOURCEDB", "lon", "lat", "date"]], on="SOURCEID"),
                    "afsp-africa-profiles")
    return _afgrid_samples(frame, folder, "afsp-africa-profiles", horizons_path, site="SOURCEID",
                           depth=("top_cm", "bottom_cm"))


def _layers(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Layers with SOC and a depth interval (0 <= top < bottom, cm), each with a unique ``sample_id``
    ``SITE@TOP-BOTTOM``; the others are dropped and counted."""
    ok = frame["soc_g_kg"].notna() & (frame["top_cm"] >= 0) & (frame["bottom_cm"] > frame["top_cm"])
    if not ok.all():
        log.warning("%s: dropped %d of %d layers without SOC or with no depth interval (top >= 0, bottom below it; "
                    "organic layers above the mineral surface have negative depths)", name, int((~ok).sum()), len(frame))
    frame = frame[ok].reset_index(drop=True)
    ids = (frame["SOURCEID"].astype(str) + "@" + frame["top_cm"].map("{:g}".format) + "-"
           + frame["bottom_cm"].map("{:g}".format))
    repeat = ids.groupby(ids).cumcount()
    return frame.assign(sample_id=ids.where(repeat == 0, ids + "#" + repeat.astype(str)))


def _afgrid_samples(frame: pd.DataFrame, folder: Path, name: str, points: Path, site: str | None = None,
                    depth: tuple[str, str] | None = None) -> SoilSamples:
    """Samples of points or layers (``sample_id``, ``soc_g_kg``, secondary targets, ``SOURCEDB``, ``lon``, ``lat``,
    ``date``) with the afgrid20 covariates of their cells: drops, one-hot categories and imputed dates as the module
    docstring says; ``site`` and ``depth`` name a profile table's site and depth columns (kept as columns, the depths
    also as environment covariates)."""
    grid = need_file(folder / AFSP_GRID, name)
    codes = categorical_codes(need_file(folder / AFSP_CODES, name))
    values, bands, grid_crs = sample_raster_points(grid, frame[["lon", "lat"]].to_numpy(float), "EPSG:4326")
    categorical = [b for b in AFGRID_CATEGORICAL if b in bands]
    continuous = [b for b in bands if b not in categorical and b not in AFGRID_DROP]
    cont_idx = [bands.index(b) for b in continuous]
    off_grid = ~np.isfinite(values).any(1)
    on_nodata = ~off_grid & ~np.isfinite(values[:, cont_idx]).all(1)
    keep = ~(off_grid | on_nodata)
    if (~keep).any():
        log.warning("%s: dropped %d of %d points: %d off the %s grid, %d on a nodata cell", name, int((~keep).sum()),
                    len(frame), int(off_grid.sum()), grid.name, int(on_nodata.sum()))
    frame, values = frame[keep].reset_index(drop=True), values[keep]
    columns, one_hot, cat_missing = afgrid_columns(values, bands, codes)
    if cat_missing:
        log.warning("%s: %d point(s) on a nodata cell of a categorical band (%s): their one-hot columns are 0",
                    name, cat_missing, ", ".join(categorical))
    dates = pd.to_datetime(frame["date"], errors="coerce")
    imputed = dates.isna().to_numpy()
    if imputed.any():
        fill = dates.groupby(frame["SOURCEDB"]).transform(lambda d: d.dropna().median() if d.notna().any() else pd.NaT)
        dates = dates.fillna(fill).fillna(dates.median())
        log.warning("%s: %d point(s) without a sampling date get the median date of their source database", name,
                    int(imputed.sum()))
    secondary = [c for c in (AFSP_PROFILE_SECONDARY if depth else AFSP_SECONDARY) if c in frame.columns]
    base = pd.DataFrame({
        "sample_id": frame["sample_id"].astype(str).to_numpy(),
        **({site: frame[site].astype(str).to_numpy()} if site else {}),
        **({c: frame[c].to_numpy(float) for c in depth} if depth else {}),
        "soc_g_kg": frame["soc_g_kg"].to_numpy(float),
        **{c: frame[c].to_numpy(float) for c in secondary},
        "source_db": frame["SOURCEDB"].astype(str).to_numpy(),
        "lon": frame["lon"].to_numpy(float),
        "lat": frame["lat"].to_numpy(float),
        "date": dates.to_numpy(),
        "date_imputed": imputed,
    })
    base = pd.concat([base, pd.DataFrame(columns)], axis=1)
    geometry = gpd.points_from_xy(base["lon"], base["lat"], crs="EPSG:4326").to_crs(grid_crs)
    gdf = gpd.GeoDataFrame(base, geometry=geometry, crs=grid_crs)
    imagery = [b for b in AFGRID_IMAGERY if b in continuous]
    environment = [b for b in continuous if b not in imagery] + one_hot + (list(depth) if depth else [])
    return SoilSamples(
        frame=gdf,
        targets=["soc_g_kg", *secondary],
        feature_groups={"imagery": imagery, "environment": environment},
        elevation=AFGRID_ELEVATION if AFGRID_ELEVATION in continuous else None,
        date_column="date",
        name=name,
        site=site,
        depth=depth,
        metadata={
            "source": "Africa Soil Profiles DB 1.2 + AfSIS (Leenaars et al. 2014; Hengl et al. 2015), afgrid20 (GSIF); GPL",
            "units": {"soc_g_kg": "g/kg", **{c: AFSP_PROFILE_SECONDARY[c] for c in secondary},
                      **({c: "cm" for c in depth} if depth else {})},
            "dropped": {"off_grid": int(off_grid.sum()), "nodata": int(on_nodata.sum()),
                        "categorical_nodata": cat_missing, "dates_imputed": int(imputed.sum())},
            "points_file": str(points),
            "grid_file": str(grid),
        },
    )


def load_wise_global(root: Path | None = None) -> SoilSamples:
    """Load ``wise-global``: WISE 3.1 topsoil SOC (g/kg) of 7,838 profiles in lon/lat (WGS84), no covariates.

    Raises:
        DatasetError: A missing file (says where to put it), a non-numeric SOC or coordinate, lon/lat out of range.
    """
    folder = (root or data_dir()) / WISE_DIR
    points = need_file(folder / WISE_POINTS, "wise-global")
    frame = _read_points(points, "soc_g_kg", ["SOURCEID"])
    base = pd.DataFrame({
        "sample_id": frame["SOURCEID"].astype(str).to_numpy(),
        "soc_g_kg": frame["soc_g_kg"].to_numpy(float),
        "source_db": frame.get("SOURCEDB", pd.Series(["WISE"] * len(frame))).astype(str).to_numpy(),
    })
    gdf = gpd.GeoDataFrame(base, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs="EPSG:4326")
    return SoilSamples(
        frame=gdf, targets=["soc_g_kg"], feature_groups={"imagery": [], "environment": []}, name="wise-global",
        metadata={"source": "WISE 3.1 (Batjes 2009) via Predictive Soil Mapping, CC BY-SA 4.0", "units": {"soc_g_kg": "g/kg"},
                  "points_file": str(points)},
    )


def load_wise_layers(root: Path | None = None) -> SoilSamples:
    """Load ``wise-layers``: every layer with SOC of the WISE 3.1 profiles (Batjes 2009), in lon/lat, no covariates
    but the layer's depths.

    Returns:
        Samples in EPSG:4326, one per layer: site ``SOURCEID``, depths ``top_cm``/``bottom_cm`` (cm; also the
        environment stream), SOC ``soc_g_kg`` (``ORCDRC``, g/kg), secondary targets ``bulk_density_kg_m3`` (``BLD``,
        kg/m³) and ``coarse_frag_vol_pct`` (``CRFVOL``, %) where measured.

    Raises:
        DatasetError: A missing file, a non-numeric value or coordinate, lon/lat out of range.
    """
    folder = (root or data_dir()) / WISE_DIR
    path = need_file(folder / WISE_LAYERS, "wise-layers")
    columns = {"ORCDRC": "soc_g_kg", "UHDICM": "top_cm", "LHDICM": "bottom_cm", "LONWGS84": "lon", "LATWGS84": "lat",
               "BLD": "bulk_density_kg_m3", "CRFVOL": "coarse_frag_vol_pct"}
    frame = _read_points(path, "soc_g_kg", ["SOURCEID", "top_cm", "bottom_cm"], pd.read_csv(path).rename(columns=columns))
    frame = _layers(frame, "wise-layers")
    secondary = [c for c in ("bulk_density_kg_m3", "coarse_frag_vol_pct") if c in frame.columns]
    base = pd.DataFrame({
        "sample_id": frame["sample_id"].to_numpy(),
        "SOURCEID": frame["SOURCEID"].astype(str).to_numpy(),
        "top_cm": frame["top_cm"].to_numpy(float),
        "bottom_cm": frame["bottom_cm"].to_numpy(float),
        "soc_g_kg": frame["soc_g_kg"].to_numpy(float),
        **{c: frame[c].to_numpy(float) for c in secondary},
        "source_db": frame.get("SOURCEDB", pd.Series(["WISE"] * len(frame))).astype(str).to_numpy(),
    })
    gdf = gpd.GeoDataFrame(base, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs="EPSG:4326")
    return SoilSamples(
        frame=gdf, targets=["soc_g_kg", *secondary], feature_groups={"imagery": [], "environment": ["top_cm", "bottom_cm"]},
        name="wise-layers", site="SOURCEID", depth=("top_cm", "bottom_cm"),
        metadata={"source": "WISE 3.1 (Batjes 2009) via Predictive Soil Mapping, CC BY-SA 4.0",
                  "units": {"soc_g_kg": "g/kg", "top_cm": "cm", "bottom_cm": "cm", "bulk_density_kg_m3": "kg/m3",
                            "coarse_frag_vol_pct": "%"},
                  "points_file": str(path)},
    )


def afgrid_cells(context=None, root: Path | None = None):
    """Every valid cell of the 20 km grid ``afgrid20`` as unlabelled cells (pre-training's domain): a cell is valid
    where every continuous band is finite; its columns and streams are those the points get
    (:func:`load_afsp_africa`), with the context features of a ``data.context`` section (as the points get them).

    Returns:
        ``streams`` ``{stream: (n, F)}`` float64, ``groups`` ``{stream: [columns]}``, cell centres ``(n, 2)`` in the
        grid's CRS, that CRS, and the grid file's name.

    Raises:
        DatasetError: A file of the dataset is missing.
    """
    import rasterio
    from rasterio.windows import Window

    from sptgnn.geo.context import open_covariates

    folder = (root or data_dir()) / AFSP_DIR
    grid = need_file(folder / AFSP_GRID, "afsp-africa")
    codes = categorical_codes(need_file(folder / AFSP_CODES, "afsp-africa"))
    with rasterio.open(grid) as ds:
        bands = [d or f"band{i + 1}" for i, d in enumerate(ds.descriptions)]
        data = ds.read(masked=True).filled(np.nan).astype(np.float64)
        rows, cols = np.mgrid[0:ds.height, 0:ds.width]
        x, y = ds.transform * (cols + 0.5, rows + 0.5)
        crs = ds.crs
    continuous = [b for b in bands if b not in AFGRID_CATEGORICAL and b not in AFGRID_DROP]
    values = data.reshape(len(bands), -1).T
    valid = np.isfinite(values[:, [bands.index(b) for b in continuous]]).all(1)
    columns, one_hot, _ = afgrid_columns(values[valid], bands, codes)
    imagery = [b for b in AFGRID_IMAGERY if b in continuous]
    groups = {"imagery": imagery, "environment": [b for b in continuous if b not in imagery] + one_hot}
    if context is not None:
        with open_covariates([str(grid)], context, (*AFGRID_CATEGORICAL, *AFGRID_DROP)) as stack:
            names = list(stack.derived)
            derived, _ = stack.read_window(Window(0, 0, stack.width, stack.height), names)
        columns.update({n: derived[j].ravel()[valid].astype(np.float64) for j, n in enumerate(names)})
        groups["environment"] += names
    streams = {s: np.stack([columns[c] for c in cols], axis=1) for s, cols in groups.items()}
    return streams, groups, np.c_[np.ravel(x)[valid], np.ravel(y)[valid]], crs, grid.name


__all__ = ["afgrid_cells", "afgrid_columns", "load_afsp_africa", "load_wise_global", "sample_raster_points", "GridCoverageError"]
