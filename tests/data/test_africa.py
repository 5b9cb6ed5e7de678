"""Named datasets afsp-africa, wise-global and their profile layers: covariates sampled at the points, drops counted, clear errors."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_origin

from sptgnn.data import load_dataset
from sptgnn.data.africa import GridCoverageError, load_afsp_africa, load_wise_global, sample_raster_points
from sptgnn.data.limesoda import DatasetError
from sptgnn.geo.paths import data_dir

LAEA = "+proj=laea +lat_0=5 +lon_0=20 +datum=WGS84 +units=m +no_defs"
REAL = (data_dir() / "afsp-africa" / "afsp_topsoil_soc.csv").is_file()


def _grid(path, nodata_cell=None, bands=("DEMSRE0a", "EVMMOD0a", "PREGSM0a", "SGEUSG0x")):
    """A 4 x 4 grid of 100 km cells around (lon 20, lat 5) in the afgrid20 LAEA; band b = b*100 + cell index,
    the geology band holds codes 0 or 1."""
    data = np.stack([np.arange(16, dtype="float32").reshape(4, 4) + 100 * b for b in range(len(bands))])
    data[-1] = np.arange(16).reshape(4, 4) % 2
    if nodata_cell is not None:
        data[1][nodata_cell] = -9999
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=len(bands), dtype="float32", crs=LAEA,
                       transform=from_origin(-200_000, 200_000, 100_000, 100_000), nodata=-9999) as ds:
        ds.write(data)
        for i, b in enumerate(bands, 1):
            ds.set_band_description(i, b)


def _folder(tmp_path, rows, nodata_cell=None):
    root = tmp_path / "data"
    folder = root / "afsp-africa"
    folder.mkdir(parents=True)
    _grid(folder / "afgrid20_covariates_20km.tif", nodata_cell)
    pd.DataFrame({"band": ["SGEUSG0x", "SGEUSG0x"], "code": [0, 1], "label": ["Mz", "Pz/Cm"]}).to_csv(
        folder / "afgrid20_categorical_codes.csv", index=False)
    pd.DataFrame(rows).to_csv(folder / "afsp_topsoil_soc.csv", index=False)
    return root


def _rows(lon, lat, soc=None, dates=None):
    n = len(lon)
    return {"SOURCEID": [f"p{i}" for i in range(n)], "SOURCEDB": ["A"] * n, "lon": lon, "lat": lat,
            "date": dates or ["2010-06-01"] * n, "soc_g_kg": soc or list(np.linspace(5, 20, n))}


def test_covariates_are_the_cells_values_and_drops_are_counted(tmp_path, caplog):
    # (20, 5) is the grid centre: cell (row 2, col 2) -> index 10; (19.5, 5.5) -> cell (1, 1) -> 5; (40, 5) off grid
    root = _folder(tmp_path, _rows([20.05, 19.5, 40.0, 19.5], [4.95, 5.5, 5.0, 4.5],
                                   dates=["2010-06-01", "", "2011-01-01", "2012-01-01"]), nodata_cell=(2, 1))
    with caplog.at_level(logging.WARNING):
        s = load_afsp_africa(root)
    # the off-grid point and the one on the nodata cell (row 2, col 1 = (19.5, 4.5)) are dropped, with a warning
    assert len(s) == 2
    assert s.metadata["dropped"]["off_grid"] == 1
    assert s.metadata["dropped"]["nodata"] == 1
    assert "dropped 2 of 4 points: 1 off" in caplog.text
    np.testing.assert_array_equal(s.frame["DEMSRE0a"], [10.0, 5.0])
    np.testing.assert_array_equal(s.frame["EVMMOD0a"], [110.0, 105.0])
    np.testing.assert_array_equal(s.frame["SGEUSG0x_Mz"], [1.0, 0.0])  # 10 % 2 = 0 -> Mz; 5 % 2 = 1 -> Pz/Cm
    np.testing.assert_array_equal(s.frame["SGEUSG0x_Pz_Cm"], [0.0, 1.0])
    assert s.feature_groups["imagery"] == ["EVMMOD0a"]
    assert s.feature_groups["environment"] == ["DEMSRE0a", "PREGSM0a", "SGEUSG0x_Mz", "SGEUSG0x_Pz_Cm"]
    assert s.elevation == "DEMSRE0a"
    assert not s.crs.is_geographic
    # the missing date is imputed (median of its source database) and flagged
    assert s.frame["date_imputed"].tolist() == [False, True]
    assert not s.dates().isna().any()


def test_missing_folder_says_where_to_put_it(tmp_path):
    with pytest.raises(DatasetError, match=r"afsp_topsoil_soc.csv.*missing.*SPTGNN_DATA_DIR"):
        load_afsp_africa(tmp_path)
    with pytest.raises(DatasetError, match="wise_topsoil_soc.csv"):
        load_wise_global(tmp_path)


def test_text_in_the_target_names_the_file_column_and_line(tmp_path):
    root = _folder(tmp_path, _rows([20.0, 20.1], [5.0, 5.1], soc=[3.0, "n.d."]))
    with pytest.raises(DatasetError, match=r"afsp_topsoil_soc.csv: column 'soc_g_kg' holds text \('n.d.'\) on line\(s\) \[3\]"):
        load_afsp_africa(root)


def test_coordinates_out_of_range(tmp_path):
    root = _folder(tmp_path, _rows([20.0, 500_000.0], [5.0, 5.0]))
    with pytest.raises(DatasetError, match=r"lon/lat out of range.*line\(s\) \[3\].*projected or swapped"):
        load_afsp_africa(root)


def test_raster_covering_none_of_the_points(tmp_path):
    root = _folder(tmp_path, _rows([-70.0, -71.0], [-30.0, -31.0]))
    with pytest.raises(GridCoverageError, match=r"afgrid20_covariates_20km.tif: the raster covers none of the 2 points"):
        load_afsp_africa(root)


def test_sample_raster_points_nan_off_grid(tmp_path):
    _grid(tmp_path / "g.tif")
    values, names, _ = sample_raster_points(tmp_path / "g.tif", np.array([[20.05, 4.95], [60.0, 0.0]]), "EPSG:4326")
    assert names[0] == "DEMSRE0a"
    assert values[0, 0] == 10.0
    assert np.isnan(values[1]).all()


@pytest.mark.skipif(not REAL, reason="afsp-africa not in the data directory")
def test_real_afsp_africa():
    s = load_dataset("afsp-africa")
    assert 21_000 < len(s) < 22_292
    assert s.metadata["dropped"]["off_grid"] > 0
    assert len(s.feature_groups["imagery"]) == 7
    assert len(s.feature_groups["environment"]) > 30
    assert s.target().min() >= 0
    assert np.isfinite(s.stream("environment")).all()


@pytest.mark.skipif(not (data_dir() / "wise-global").is_dir(), reason="wise-global not in the data directory")
def test_real_wise_global():
    s = load_dataset("wise-global")
    assert len(s) == 7838
    assert s.crs.is_geographic
    assert s.feature_columns == []


def test_cli_reports_a_missing_data_folder_in_one_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from sptgnn.cli import app

    monkeypatch.setenv("SPTGNN_DATA_DIR", str(tmp_path / "nowhere"))
    config = tmp_path / "c.yaml"
    config.write_text("data: {dataset: afsp-africa}\nevaluate: {split: blocks}\n")
    res = CliRunner().invoke(app, ["evaluate", str(config), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "afsp_topsoil_soc.csv" in res.output
    assert "SPTGNN_DATA_DIR" in res.output
    assert not (tmp_path / "out").exists()


def test_cli_reports_a_raster_covering_none_of_the_points(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from sptgnn.cli import app

    root = _folder(tmp_path, _rows([-70.0, -71.0], [-30.0, -31.0]))
    monkeypatch.setenv("SPTGNN_DATA_DIR", str(root))
    config = tmp_path / "c.yaml"
    config.write_text("data: {dataset: afsp-africa}\nevaluate: {split: blocks}\n")
    res = CliRunner().invoke(app, ["evaluate", str(config), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "covers none of the 2 points" in res.output


def test_secondary_soil_properties_are_targets_missing_where_not_measured(tmp_path):
    rows = _rows([20.05, 19.5], [4.95, 5.5]) | {"ph_h2o": [6.1, 5.2], "bulk_density_kg_m3": [1350.0, None]}
    s = load_afsp_africa(_folder(tmp_path, rows))
    assert s.targets == ["soc_g_kg", "ph_h2o", "bulk_density_kg_m3"]
    np.testing.assert_array_equal(s.target("ph_h2o"), [6.1, 5.2])
    assert s.target("bulk_density_kg_m3")[0] == 1350.0
    assert np.isnan(s.target("bulk_density_kg_m3")[1])
    assert s.metadata["units"]["bulk_density_kg_m3"] == "kg/m3"
    bad = _rows([20.05, 19.5], [4.95, 5.5]) | {"clay_pct": [30.0, "<5"]}
    with pytest.raises(DatasetError, match=r"column 'clay_pct' holds text \('<5'\) on line\(s\) \[3\]"):
        load_afsp_africa(_folder(tmp_path / "b", bad))


def _profile_folder(tmp_path):
    root = _folder(tmp_path, _rows([20.05], [4.95]))
    folder = root / "afsp-africa"
    pd.DataFrame({"SOURCEID": ["a", "b"], "SOURCEDB": ["A", "A"], "LONWGS84": [20.05, 19.5], "LATWGS84": [4.95, 5.5],
                  "date": ["2010-06-01", ""]}).to_csv(folder / "afsp_sites.csv.gz", index=False)
    pd.DataFrame({"SOURCEID": ["a", "a", "a", "a", "b", "b", "c"],
                  "UHDICM": [-5.0, 0.0, 20.0, 20.0, 0.0, 10.0, 0.0],
                  "LHDICM": [0.0, 20.0, 50.0, 50.0, 10.0, 30.0, 10.0],
                  "ORCDRC": [80.0, 12.0, 6.0, 6.5, 20.0, None, 9.0],
                  "BLD": [None, 1.3, 1.45, None, 1.1, 1.2, 1.0],
                  "CRFVOL": [None, 5.0, 10.0, None, None, None, None]}).to_csv(folder / "afsp_horizons.csv.gz",
                                                                                index=False)
    return root


def test_profiles_are_layers_of_their_sites_with_depths_and_units(tmp_path, caplog):
    from sptgnn.data.africa import load_afsp_profiles

    with caplog.at_level(logging.WARNING):
        s = load_afsp_profiles(_profile_folder(tmp_path))
    # a's organic layer above the surface and b's layer without SOC are dropped; site c has no site row
    assert "dropped 2 of 6 layers" in caplog.text
    assert list(s.frame["sample_id"]) == ["a@0-20", "a@20-50", "a@20-50#1", "b@0-10"]
    assert s.site == "SOURCEID" and s.depth == ("top_cm", "bottom_cm")
    np.testing.assert_array_equal(s.sites(), ["a", "a", "a", "b"])
    np.testing.assert_array_equal(s.frame["top_cm"], [0, 20, 20, 0])
    assert {"top_cm", "bottom_cm"} <= set(s.feature_groups["environment"])  # depth as a covariate
    np.testing.assert_allclose(s.target("bulk_density_kg_m3"), [1300.0, 1450.0, np.nan, 1100.0])  # t/m3 -> kg/m3
    np.testing.assert_allclose(s.target("coarse_frag_vol_pct"), [5.0, 10.0, np.nan, np.nan])
    assert s.metadata["units"]["top_cm"] == "cm"
    # the layers of one site share its cell's covariates; a's cell is index 10, b's index 5 (see _grid)
    np.testing.assert_array_equal(s.frame["DEMSRE0a"], [10.0, 10.0, 10.0, 5.0])


def test_wise_layers(tmp_path):
    from sptgnn.data.africa import load_wise_layers

    folder = tmp_path / "data" / "wise-global"
    folder.mkdir(parents=True)
    pd.DataFrame({"SOURCEID": ["w1", "w1", "w2"], "UHDICM": [0, 15, 0], "LHDICM": [15, 60, 20],
                  "ORCDRC": [7.6, 2.3, None], "LONWGS84": [69.2, 69.2, 10.0], "LATWGS84": [34.5, 34.5, 50.0],
                  "BLD": [1400, None, 1200], "CRFVOL": [20, None, None], "SOURCEDB": ["WISE"] * 3}).to_csv(
        folder / "wise_layers.csv.gz", index=False)
    s = load_wise_layers(tmp_path / "data")
    assert list(s.frame["sample_id"]) == ["w1@0-15", "w1@15-60"]
    assert s.depth == ("top_cm", "bottom_cm") and s.feature_groups["environment"] == ["top_cm", "bottom_cm"]
    np.testing.assert_allclose(s.target("bulk_density_kg_m3"), [1400.0, np.nan])


@pytest.mark.skipif(not REAL, reason="afsp-africa data folder not present")
def test_real_afsp_profiles():
    s = load_dataset("afsp-africa-profiles")
    frame = s.frame
    assert (frame["bottom_cm"] > frame["top_cm"]).all() and (frame["top_cm"] >= 0).all()
    assert frame["sample_id"].is_unique
    per_site = frame.groupby("SOURCEID")[["DEMSRE0a", "lon", "lat"]].nunique()
    assert (per_site == 1).all().all()  # every layer of a profile has its site's covariates
    assert len(set(s.sites())) < len(s)
