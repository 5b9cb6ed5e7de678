"""SoilSamples: validation errors name the rows or columns at fault; accessors return what they promise."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from shapely.geometry import LineString

from sptgnn.data.samples import SamplesError, SoilSamples
from sptgnn.geo import EARTH_RADIUS_M, chord_to_great_circle_m


def _haversine_m(lon1, lat1, lon2, lat2):
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a))


def _rebuild(samples: SoilSamples, frame=None, **kwargs) -> SoilSamples:
    args = dict(frame=samples.frame.copy() if frame is None else frame, targets=list(samples.targets),
                feature_groups={k: list(v) for k, v in samples.feature_groups.items()}, elevation=samples.elevation,
                date_column=samples.date_column, folds=samples.folds, name=samples.name)
    args.update(kwargs)
    return SoilSamples(**args)


def test_valid_samples_and_accessors(samples):
    assert len(samples) == 60
    assert samples.crs.to_epsg() == 32633
    assert samples.feature_columns == ["B02", "B04", "NDVI", "Slope", "Altitude"]
    assert samples.stream("imagery").shape == (60, 3)
    assert samples.stream("environment").shape == (60, 2)
    np.testing.assert_array_equal(samples.stream("imagery"), samples.frame[["B02", "B04", "NDVI"]].to_numpy())
    np.testing.assert_array_equal(samples.target(), samples.frame["soc_g_kg"].to_numpy())
    np.testing.assert_array_equal(samples.target("soc_g_kg"), samples.frame["soc_g_kg"].to_numpy())
    np.testing.assert_array_equal(samples.elevation_m(), samples.frame["Altitude"].to_numpy())
    np.testing.assert_array_equal(samples.xy(), np.c_[samples.frame.geometry.x, samples.frame.geometry.y])
    # projected metric CRS: the metric coordinates are the projected ones
    np.testing.assert_array_equal(samples.metric_coords(), samples.xy())
    assert samples.dates().dtype.kind == "M"


def test_stream_absent_gives_zero_columns(samples):
    s = _rebuild(samples, feature_groups={"environment": ["Slope"]})
    assert s.stream("imagery").shape == (60, 0)
    assert s.feature_columns == ["Slope"]


def test_feature_columns_have_no_duplicates(samples):
    s = _rebuild(samples, feature_groups={"imagery": ["B02", "NDVI"], "environment": ["NDVI", "Slope"]})
    assert s.feature_columns == ["B02", "NDVI", "Slope"]


def test_missing_target_column(samples):
    frame = samples.frame.drop(columns=["soc_g_kg"])
    with pytest.raises(SamplesError, match="soc_g_kg"):
        _rebuild(samples, frame=frame)


def test_missing_feature_column(samples):
    with pytest.raises(SamplesError, match="B99"):
        _rebuild(samples, feature_groups={"imagery": ["B02", "B99"], "environment": []})


def test_nan_target_names_the_sample_ids(samples):
    frame = samples.frame.copy()
    frame.loc[[3, 17], "soc_g_kg"] = np.nan
    with pytest.raises(SamplesError) as info:
        _rebuild(samples, frame=frame)
    msg = str(info.value)
    assert "target 'soc_g_kg'" in msg
    assert "s3" in msg
    assert "s17" in msg
    assert "s4" not in msg


def test_nan_feature_names_the_sample_ids(samples):
    frame = samples.frame.copy()
    frame.loc[5, "NDVI"] = np.nan
    with pytest.raises(SamplesError) as info:
        _rebuild(samples, frame=frame)
    msg = str(info.value)
    assert "feature 'NDVI'" in msg
    assert "s5" in msg


def test_many_nan_rows_are_truncated(samples):
    frame = samples.frame.copy()
    frame.loc[:24, "Slope"] = np.nan
    with pytest.raises(SamplesError, match="and 15 more"):
        _rebuild(samples, frame=frame)


def test_non_numeric_feature_is_rejected(samples):
    frame = samples.frame.copy()
    frame["Slope"] = frame["Slope"].astype(object)
    frame.loc[2, "Slope"] = "steep"
    with pytest.raises(SamplesError, match="s2"):
        _rebuild(samples, frame=frame)


def test_nan_elevation_is_rejected(samples):
    frame = samples.frame.copy()
    frame.loc[7, "Altitude"] = np.nan
    with pytest.raises(SamplesError, match="s7"):
        _rebuild(samples, frame=frame, feature_groups={"imagery": ["B02"], "environment": []})


def test_no_crs(samples):
    frame = samples.frame.copy()
    frame = frame.set_crs(None, allow_override=True)
    assert frame.crs is None
    with pytest.raises(SamplesError, match="no CRS"):
        _rebuild(samples, frame=frame)


def test_geographic_crs_with_projected_looking_coordinates(samples):
    frame = samples.frame.set_crs("EPSG:4326", allow_override=True)
    with pytest.raises(SamplesError, match="geographic"):
        _rebuild(samples, frame=frame)


def test_plain_dataframe_is_rejected(samples):
    with pytest.raises(SamplesError, match="GeoDataFrame"):
        _rebuild(samples, frame=pd.DataFrame(samples.frame.drop(columns="geometry")))


def test_non_point_geometry(samples):
    frame = samples.frame.copy()
    frame.loc[0, "geometry"] = LineString([(0, 0), (1, 1)])
    with pytest.raises(SamplesError, match="Point"):
        _rebuild(samples, frame=frame)


def test_duplicated_sample_id(samples):
    frame = samples.frame.copy()
    frame.loc[9, "sample_id"] = "s8"
    with pytest.raises(SamplesError, match="duplicated sample_id: s8"):
        _rebuild(samples, frame=frame)


def test_missing_sample_id_column(samples):
    with pytest.raises(SamplesError, match="sample_id"):
        _rebuild(samples, frame=samples.frame.drop(columns="sample_id"))


def test_unknown_stream(samples):
    with pytest.raises(SamplesError, match="unknown feature stream"):
        _rebuild(samples, feature_groups={"imagery": ["B02"], "climate": ["Slope"]})


def test_missing_date_column(samples):
    with pytest.raises(SamplesError, match="date column 'when'"):
        _rebuild(samples, date_column="when")


def test_fold_count_must_match(samples):
    with pytest.raises(SamplesError, match="59 fold ids for 60 samples"):
        _rebuild(samples, folds=np.ones(59, dtype=int))


def test_empty_samples(samples):
    with pytest.raises(SamplesError, match="no samples"):
        _rebuild(samples, frame=samples.frame.iloc[:0])


def test_unknown_target_name(samples):
    with pytest.raises(SamplesError, match="available targets"):
        samples.target("ph")


def test_subset_by_mask_and_index_keeps_folds(samples):
    mask = np.zeros(60, dtype=bool)
    mask[[1, 4, 9]] = True
    by_mask, by_index = samples.subset(mask), samples.subset(np.array([1, 4, 9]))
    for sub in (by_mask, by_index):
        assert list(sub.sample_ids) == ["s1", "s4", "s9"]
        np.testing.assert_array_equal(sub.folds, samples.folds[[1, 4, 9]])
        np.testing.assert_array_equal(sub.xy(), samples.xy()[[1, 4, 9]])
        assert sub.frame.index.tolist() == [0, 1, 2]


def test_lonlat_of_projected_samples_matches_pyproj(samples):
    lon, lat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True).transform(samples.xy()[:, 0], samples.xy()[:, 1])
    np.testing.assert_allclose(samples.lonlat(), np.c_[lon, lat], rtol=0, atol=1e-9)


def test_geographic_metric_coords_give_great_circle_distances(geo_samples_factory):
    geo = geo_samples_factory(n=12, seed=3)
    lonlat = geo.xy()
    np.testing.assert_array_equal(geo.lonlat(), lonlat)
    xyz = geo.metric_coords()
    assert xyz.shape == (12, 3)
    np.testing.assert_allclose(np.linalg.norm(xyz, axis=1), EARTH_RADIUS_M, rtol=1e-12)
    i, j = np.triu_indices(12, 1)
    chord = np.linalg.norm(xyz[i] - xyz[j], axis=1)
    expected = _haversine_m(lonlat[i, 0], lonlat[i, 1], lonlat[j, 0], lonlat[j, 1])
    np.testing.assert_allclose(chord_to_great_circle_m(chord), expected, rtol=1e-9)


def test_chord_to_great_circle_limits():
    # antipodal points: the chord is the diameter, the great circle half the circumference
    np.testing.assert_allclose(chord_to_great_circle_m(2 * EARTH_RADIUS_M), np.pi * EARTH_RADIUS_M)
    assert chord_to_great_circle_m(0.0) == 0.0


def test_projected_crs_in_feet_is_rejected_for_neighbour_search(samples):
    # EPSG:2263 (NAD83 / New York Long Island, US survey feet)
    frame = samples.frame.copy()
    frame = gpd.GeoDataFrame(frame.drop(columns="geometry"),
                             geometry=gpd.points_from_xy(np.linspace(9.8e5, 9.9e5, 60), np.linspace(1.9e5, 2.0e5, 60)),
                             crs="EPSG:2263")
    s = _rebuild(samples, frame=frame)
    with pytest.raises(SamplesError, match="unit"):
        s.metric_coords()
