"""LimeSoDa loader and named datasets, checked against the LimeSoDa package and its metadata table."""

from __future__ import annotations

import LimeSoDa
import numpy as np
import pandas as pd
import pytest

from sptgnn.data.datasets import NAMED, available_datasets, load_dataset
from sptgnn.data.limesoda import DatasetError, _parse_month, limesoda_names, load_limesoda, sampling_date
from sptgnn.geo.paths import data_dir

S2_BB250 = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "NDVI", "GNDVI"]


@pytest.fixture(scope="module")
def bb250():
    return load_limesoda("BB.250")


@pytest.fixture(scope="module")
def raw_bb250():
    return LimeSoDa.load_dataset("BB.250")


def test_metadata_is_present():
    # the sampling date test needs the shared metadata table
    assert (data_dir() / "limesoda-metadata" / "limesoda_datasets_metadata.csv").is_file()


def test_bb250_basic_shape(bb250):
    assert len(bb250) == 250
    assert bb250.crs.to_epsg() == 25833
    assert bb250.name == "limesoda:BB.250"
    assert bb250.targets == ["soc_g_kg", "ph", "clay_percent"]
    assert len(set(bb250.sample_ids)) == 250


def test_bb250_soc_is_percent_times_ten(bb250, raw_bb250):
    np.testing.assert_allclose(bb250.target("soc_g_kg"), raw_bb250["Dataset"]["SOC_target"].to_numpy(float) * 10, rtol=1e-12)
    np.testing.assert_array_equal(bb250.target("ph"), raw_bb250["Dataset"]["pH_target"].to_numpy(float))
    np.testing.assert_array_equal(bb250.target("clay_percent"), raw_bb250["Dataset"]["Clay_target"].to_numpy(float))


def test_bb250_folds_are_the_shipped_folds(bb250, raw_bb250):
    np.testing.assert_array_equal(bb250.folds, np.asarray(raw_bb250["Folds"]).astype(int))
    assert set(bb250.folds) == set(range(1, 11))


def test_bb250_coordinates_are_the_shipped_ones(bb250, raw_bb250):
    np.testing.assert_array_equal(bb250.xy(), raw_bb250["Coordinates"][["x_25833", "y_25833"]].to_numpy(float))


def test_bb250_streams(bb250, raw_bb250):
    assert bb250.feature_groups["imagery"] == S2_BB250
    meta = pd.read_csv(data_dir() / "limesoda-metadata" / "limesoda_datasets_metadata.csv").set_index("Dataset")
    # every Sentinel-2 band listed in the metadata is in the imagery stream
    assert set(meta.loc["BB.250", "sentinel2_bands"].split()) <= set(bb250.feature_groups["imagery"])
    env = bb250.feature_groups["environment"]
    assert env == ["Altitude", "Slope", "ERa", "G_Total_Counts", "pH_ISE"]
    covariates = [c for c in raw_bb250["Dataset"].columns if not c.endswith("_target")]
    assert sorted(env + bb250.feature_groups["imagery"]) == sorted(covariates)
    np.testing.assert_array_equal(bb250.stream("imagery"), raw_bb250["Dataset"][S2_BB250].to_numpy(float))


def test_bb250_elevation_and_date(bb250, raw_bb250):
    assert bb250.elevation == "Altitude"
    np.testing.assert_array_equal(bb250.elevation_m(), raw_bb250["Dataset"]["Altitude"].to_numpy(float))
    dates = bb250.dates()
    assert dates is not None
    assert (dates == pd.Timestamp("2020-05-15")).all()


def test_sampling_date_without_metadata_warns(monkeypatch, tmp_path):
    monkeypatch.setenv("SPTGNN_DATA_DIR", str(tmp_path))
    with pytest.warns(UserWarning, match="not found"):
        assert sampling_date("BB.250") is None
    with pytest.warns(UserWarning):
        samples = load_limesoda("BB.30_2")
    assert samples.date_column is None
    assert samples.dates() is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("May 2020", pd.Timestamp("2020-05-15")),
        (" september 2022 ", pd.Timestamp("2022-09-15")),
        ("February 2017, December 2017 and February 2018", None),
        ("Unknown month 2000", None),
        ("2020", None),
    ],
)
def test_parse_month(text, expected):
    assert _parse_month(text) == expected


def test_unknown_name_lists_valid_names():
    with pytest.raises(DatasetError) as info:
        load_limesoda("XX.999")
    msg = str(info.value)
    assert "XX.999" in msg
    for name in ("BB.250", "G.150", "B.204"):
        assert name in msg
    assert "CV.98" not in msg


def test_wrong_case_gets_a_suggestion():
    with pytest.raises(DatasetError, match="did you mean 'BB.250'"):
        load_limesoda("bb.250")


def test_dataset_without_coordinates():
    with pytest.raises(DatasetError, match="no coordinates"):
        load_limesoda("CV.98")


def test_dataset_with_dummy_coordinates():
    with pytest.raises(DatasetError, match="only dummy coordinates"):
        load_limesoda("SL.125")


def test_names_with_coordinates_match_the_package():
    names = limesoda_names()
    assert "BB.250" in names
    assert "BB.30_2" in names
    for name in names:
        coords = LimeSoDa.load_dataset(name)["Coordinates"]
        assert isinstance(coords, pd.DataFrame)
        assert not any("dummy" in c for c in coords.columns)
    assert "CV.98" not in names
    assert "SL.125" not in names


def test_available_datasets_and_load_dataset():
    names = available_datasets()
    assert "limesoda:BB.250" in names
    assert "limesoda:CV.98" not in names
    assert all(n.startswith("limesoda:") for n in names if n not in NAMED)
    assert {"afsp-africa", "wise-global", "afsp-africa-profiles", "wise-layers"} <= set(names)
    small = load_dataset("limesoda:BB.30_2")
    assert len(small) == 30
    assert small.name == "limesoda:BB.30_2"


@pytest.mark.parametrize("name", ["BB.250", "foo:BB.250", "limesoda:nope"])
def test_load_dataset_errors(name):
    with pytest.raises(DatasetError, match="limesoda:BB.250|BB.250"):
        load_dataset(name)


