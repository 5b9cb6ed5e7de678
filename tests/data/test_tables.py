"""Generic point tables (CSV, GeoPackage, Parquet) driven by the config, with raster covariates."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from sptgnn.config import ConfigError, DataConfig, load_config
from sptgnn.geo.sources import RasterError
from sptgnn.data.tables import TableError, load_samples, load_table

from helpers import X0, Y0, field, write_tif


def _frame(n=12, seed=0):
    rng = np.random.default_rng(seed)
    col, row = rng.integers(0, 20, n), rng.integers(0, 20, n)
    return pd.DataFrame({
        "pid": np.arange(100, 100 + n),
        "east": X0 + (col + 0.5) * 10,
        "north": Y0 - (row + 0.5) * 10,
        "soc": rng.uniform(5, 30, n),
        "clay": rng.uniform(10, 40, n),
        "when": pd.date_range("2020-03-01", periods=n, freq="7D").strftime("%Y-%m-%d"),
    })


def _data(path, **table):
    rasters = table.pop("rasters", [])
    base = {"path": str(path), "x": "east", "y": "north", "crs": "EPSG:32633", "id": "pid", "environment": ["clay"]}
    base.update(table)
    return DataConfig.model_validate({"target": "soc", "table": base, "rasters": rasters})


def test_csv_with_raster_covariates(tmp_path):
    rows, cols = np.mgrid[0:20, 0:20]
    write_tif(tmp_path / "lin.tif", field(X0 + (cols + 0.5) * 10, Y0 - (rows + 0.5) * 10), 10)
    f = _frame()
    f.to_csv(tmp_path / "pts.csv", index=False)
    cfg = DataConfig.model_validate({"target": "soc", "table": {"path": str(tmp_path / "pts.csv"), "x": "east", "y": "north",
                                     "crs": "EPSG:32633", "id": "pid", "date": "when", "environment": ["clay"], "elevation": "lin"},
                                     "rasters": [{"path": str(tmp_path / "lin.tif")}]})
    s = load_samples(cfg)
    assert len(s) == 12
    assert s.targets == ["soc"]
    assert s.feature_groups == {"imagery": [], "environment": ["clay", "lin"]}
    np.testing.assert_allclose(s.frame["lin"], field(f["east"], f["north"]), rtol=1e-6)
    np.testing.assert_allclose(s.target("soc"), f["soc"])
    assert s.sample_ids.tolist() == [str(i) for i in f["pid"]]
    assert s.dates().iloc[1] == pd.Timestamp("2020-03-08")
    assert s.crs.to_epsg() == 32633


def test_relative_paths_read_under_data_dir(tmp_path, monkeypatch):
    _frame().to_csv(tmp_path / "pts.csv", index=False)
    monkeypatch.setenv("SPTGNN_DATA_DIR", str(tmp_path))
    s = load_samples(_data("pts.csv"))
    assert len(s) == 12
    monkeypatch.setenv("SPTGNN_DATA_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(TableError, match="point table not found.*SPTGNN_DATA_DIR"):
        load_samples(_data("pts.csv"))


def test_geopackage_geometry_and_lonlat(tmp_path):
    f = _frame()
    gdf = gpd.GeoDataFrame(f, geometry=gpd.points_from_xy(f.east, f.north), crs="EPSG:32633").to_crs("EPSG:4326")
    gdf.to_file(tmp_path / "pts.gpkg", driver="GPKG")
    s = load_table(_data(tmp_path / "pts.gpkg", x=None, y=None, crs=None).table, "soc")
    assert s.crs.is_geographic
    np.testing.assert_allclose(s.frame.geometry.to_crs("EPSG:32633").x, f.east, atol=1e-3)
    g = pd.DataFrame(gdf.drop(columns="geometry"))
    g["lon"], g["lat"] = gdf.geometry.x, gdf.geometry.y
    g.to_csv(tmp_path / "ll.csv", index=False)
    s2 = load_table(_data(tmp_path / "ll.csv", x="lon", y="lat", crs="EPSG:4326").table, "soc")
    np.testing.assert_allclose(s2.xy(), s.xy())


def test_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    _frame().to_parquet(tmp_path / "pts.parquet")
    assert len(load_samples(_data(tmp_path / "pts.parquet"))) == 12


def test_missing_target_is_an_error_or_dropped_with_a_count(tmp_path):
    f = _frame()
    f.loc[[2, 5], "soc"] = np.nan
    f.to_csv(tmp_path / "pts.csv", index=False)
    with pytest.raises(TableError, match=r"target 'soc' is missing in 2 row\(s\): row 3 \(pid 102\), row 6 \(pid 105\).*drop_missing: true"):
        load_samples(_data(tmp_path / "pts.csv"))
    with pytest.warns(UserWarning, match="dropped 2 of 12 rows"):
        s = load_samples(_data(tmp_path / "pts.csv", drop_missing=True))
    assert len(s) == 10
    assert s.metadata["dropped"] == {"soc": 2}
    assert "102" not in s.sample_ids.tolist()


def test_text_in_target_names_file_column_and_row(tmp_path):
    f = _frame().astype({"soc": object})
    f.loc[4, "soc"] = "12,5"
    f.to_csv(tmp_path / "pts.csv", index=False)
    with pytest.raises(TableError, match=r"pts.csv: target column 'soc' holds text.*'12,5'.*row 5 \(pid 104\).*decimal separator"):
        load_samples(_data(tmp_path / "pts.csv"))


def test_missing_columns_and_crs(tmp_path):
    _frame().to_csv(tmp_path / "pts.csv", index=False)
    with pytest.raises(TableError, match=r"no column 'cly' \(data.table.imagery/environment\) \(did you mean 'clay'\?\)"):
        load_samples(_data(tmp_path / "pts.csv", environment=["cly"]))
    with pytest.raises(TableError, match="data.table.crs is required"):
        load_samples(_data(tmp_path / "pts.csv", crs=None))
    with pytest.raises(TableError, match="no point geometry"):
        load_samples(_data(tmp_path / "pts.csv", x=None, y=None))
    cfg = DataConfig.model_validate({"target": "SOC", "table": {"path": str(tmp_path / "pts.csv"), "x": "east", "y": "north", "crs": "EPSG:32633"}})
    with pytest.raises(TableError, match=r"no column 'SOC'.*did you mean 'soc'"):
        load_samples(cfg)


def test_points_off_the_rasters(tmp_path):
    write_tif(tmp_path / "lin.tif", np.ones((20, 20)), 10)
    f = _frame()
    f["east"] += 10_000
    f.to_csv(tmp_path / "pts.csv", index=False)
    with pytest.raises(RasterError, match="cover none of the 12 points"):
        load_samples(_data(tmp_path / "pts.csv", rasters=[{"path": str(tmp_path / "lin.tif")}]))
    f.loc[:3, "east"] -= 10_000
    f.to_csv(tmp_path / "pts.csv", index=False)
    with pytest.raises(TableError, match=r"'covariate rasters \(off the grid or nodata\)' is missing in 8 row"):
        load_samples(_data(tmp_path / "pts.csv", rasters=[{"path": str(tmp_path / "lin.tif")}]))


def test_config_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'data.table.xcol' \(did you mean 'x'\?\)|unknown key 'data.table.xcol'"):
        load_config(None, {"data": {"table": {"path": "a.csv", "xcol": "x"}}})
    with pytest.raises(ConfigError, match="give both x and y"):
        load_config(None, {"data": {"table": {"path": "a.csv", "x": "x"}}})
    with pytest.raises(ConfigError, match=r"unknown key 'data.rasters.0.strp' \(did you mean 'strip'\?\)"):
        load_config(None, {"data": {"rasters": [{"path": "a.tif", "strp": "x"}]}})
    assert load_config(None).data.table is None
    assert load_config(None).data.rasters == []


@pytest.mark.parametrize("rule", ["keep", "mean", "error"])
def test_duplicate_locations_follow_data_duplicates(tmp_path, rule):
    f = _frame(n=8)
    f.loc[[1, 4], ["east", "north"]] = f.loc[0, ["east", "north"]].to_numpy()  # three samples at sample 0's point
    f.to_csv(tmp_path / "pts.csv", index=False)
    data = _data(tmp_path / "pts.csv").model_copy(update={"duplicates": rule})
    if rule == "error":
        with pytest.raises(TableError, match="3 samples share their location"):
            load_samples(data)
        return
    with pytest.warns(UserWarning, match="3 samples share their location"):
        s = load_samples(data)
    if rule == "keep":
        assert len(s) == 8
    else:
        assert len(s) == 6
        first = s.frame[s.frame["sample_id"] == "100"].iloc[0]
        assert first["soc"] == pytest.approx(f.loc[[0, 1, 4], "soc"].mean())
        assert first["clay"] == pytest.approx(f.loc[[0, 1, 4], "clay"].mean())
        assert list(s.frame["sample_id"]) == ["100", "102", "103", "105", "106", "107"]


def test_a_profile_table_keeps_sites_and_layer_depths(tmp_path):
    """Three layers at each of four sites: not duplicates of each other (with data.duplicates: error), each layer's
    depths kept, every split keeping a site whole."""
    f = _frame(n=4).loc[np.repeat(np.arange(4), 3)].reset_index(drop=True)
    f["pid"] = np.arange(len(f))
    f["profile"] = np.repeat(["a", "b", "c", "d"], 3)
    f["top"], f["bottom"] = np.tile([0, 10, 30], 4), np.tile([10, 30, 60], 4)
    f.to_csv(tmp_path / "layers.csv", index=False)
    data = _data(tmp_path / "layers.csv", site="profile", top_cm="top", bottom_cm="bottom",
                 environment=["clay", "top", "bottom"]).model_copy(update={"duplicates": "error"})
    s = load_samples(data)
    assert s.site == "profile"
    assert s.depth == ("top", "bottom")
    assert s.sites().tolist() == list(np.repeat(["a", "b", "c", "d"], 3))
    sub = s.subset(np.arange(3, 9))
    assert sub.site == "profile"
    assert sub.depth == ("top", "bottom")
    f.loc[[0, 1], "profile"] = "x"  # two sites' layers at one point: a duplicate again
    f.loc[[0, 1], "top"] = 0
    f.loc[[0, 1], "bottom"] = 10
    f.to_csv(tmp_path / "layers.csv", index=False)
    with pytest.raises(TableError, match="2 samples share their location"):
        load_samples(data)


def test_layer_depths_come_in_pairs():
    with pytest.raises(ConfigError, match="give both top_cm and bottom_cm"):
        load_config(None, {"data": {"table": {"path": "x.csv", "top_cm": "top"}}})


def test_layers_take_their_coordinates_from_a_site_table(tmp_path):
    sites = _frame(n=3)[["east", "north", "clay"]].assign(profile=["a", "b", "c"])
    sites.to_csv(tmp_path / "sites.csv", index=False)
    layers = pd.DataFrame({"profile": ["a", "a", "b", "c", "c"], "top": [0, 10, 0, 0, 20],
                           "bottom": [10, 40, 15, 20, 50], "soc": [20.0, 9.0, 14.0, 30.0, 11.0]})
    layers.to_csv(tmp_path / "layers.csv", index=False)
    data = _data(tmp_path / "layers.csv", id=None, site="profile", sites=str(tmp_path / "sites.csv"), top_cm="top",
                 bottom_cm="bottom")
    s = load_samples(data)
    assert len(s) == 5
    np.testing.assert_allclose(s.xy()[:2, 0], sites.loc[0, "east"])  # both layers of site a at a's point
    np.testing.assert_allclose(s.frame["clay"], sites.set_index("profile").loc[layers["profile"], "clay"])
    layers.assign(profile=["a", "a", "b", "c", "z"]).to_csv(tmp_path / "layers.csv", index=False)
    with pytest.raises(TableError, match="1 layer\\(s\\) have a site missing from sites.csv \\(e.g. z\\)"):
        load_samples(data)
    layers.to_csv(tmp_path / "layers.csv", index=False)
    pd.concat([sites, sites.iloc[:1]]).to_csv(tmp_path / "sites.csv", index=False)
    with pytest.raises(TableError, match=r"site\(s\) \['a'\] appear more than once"):
        load_samples(data)
    with pytest.raises(ConfigError, match="data.table.sites is joined on data.table.site"):
        load_config(None, {"data": {"table": {"path": "x.csv", "sites": "s.csv"}}})


def test_auxiliary_targets_and_invalid_layer_depths_of_a_profile_table(tmp_path):
    """data.targets read from the table (missing values kept for a masked head), and layers with negative or
    inverted depths dropped and counted with drop_missing, an error without."""
    layers = _frame(n=6).assign(profile=list("aabbcc"), top=[0, 10, 0, -5, 0, 20], bottom=[10, 40, 15, 0, 20, 20],
                                bd=[1.2, np.nan, 1.4, 1.1, np.nan, 1.5])
    layers.to_csv(tmp_path / "layers.csv", index=False)
    base = {"path": str(tmp_path / "layers.csv"), "x": "east", "y": "north", "crs": "EPSG:32633", "id": "pid",
            "site": "profile", "top_cm": "top", "bottom_cm": "bottom", "drop_missing": True}
    data = DataConfig.model_validate({"targets": ["soc", "bd"], "table": base})
    with pytest.warns(UserWarning, match="dropped 2 of 6 rows"):
        s = load_samples(data)
    assert s.targets == ["soc", "bd"]
    assert s.metadata["dropped"] == {"layer depths (missing, negative or bottom not below top)": 2}
    np.testing.assert_array_equal(s.target("bd"), [1.2, np.nan, 1.4, np.nan])  # pid 103 (-5 cm) and 105 (20-20) out
    strict = DataConfig.model_validate({"targets": ["soc", "bd"], "table": {**base, "drop_missing": False}})
    with pytest.raises(TableError, match="layer depths"):
        load_samples(strict)
