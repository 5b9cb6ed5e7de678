"""Chip extraction (sptgnn.data.chips) on the small seeded GeoTIFFs of tests/data/chips/ (make_data.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from sptgnn.data.chip_extractor import ChipExtractor
from sptgnn.data.chips import ChipError, ChipSource

DATA = Path(__file__).resolve().parents[1] / "data" / "chips"
X0, Y0, RES = 500_000.0, 5_000_160.0, 10.0


def _centre(row: int, col: int) -> tuple[float, float]:
    return X0 + (col + 0.5) * RES, Y0 - (row + 0.5) * RES


def _generator():
    spec = importlib.util.spec_from_file_location("make_chips_data", DATA / "make_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_files_match_the_seeded_generator(tmp_path):
    _generator().main(tmp_path)
    for name in ["s2.tif", "dem_lonlat.tif", "ndvi_series.tif", "clouds.tif"]:
        with rasterio.open(DATA / name) as a, rasterio.open(tmp_path / name) as b:
            np.testing.assert_array_equal(a.read(), b.read())
            assert a.descriptions == b.descriptions
            assert a.crs == b.crs


def test_chip_values_equal_raster_pixels():
    ex = ChipExtractor([ChipSource(DATA / "s2.tif", bands=("B08", "B02"))], size=5)
    xy = np.array([_centre(11, 12), _centre(3, 14)])
    chips = ex.extract(["a", "b"], xy, "EPSG:32633")
    assert chips.values.shape == (2, 2, 5, 5)
    assert chips.channels == ["s2:B08", "s2:B02"]
    with rasterio.open(DATA / "s2.tif") as ds:
        for i, (r, c) in enumerate([(11, 12), (3, 14)]):
            ref = ds.read([4, 1], window=Window(c - 2, r - 2, 5, 5))
            np.testing.assert_array_equal(chips.values[i], ref)
            assert chips.mask[i].all()


def test_edges_and_nodata_are_masked():
    ex = ChipExtractor([ChipSource(DATA / "s2.tif")], size=5)
    # a corner pixel (0, 0) and a pixel next to the nodata block at rows 5-6, cols 7-8
    chips = ex.extract(["corner", "hole"], np.array([_centre(0, 0), _centre(5, 6)]), "EPSG:32633")
    m = chips.mask[0, 0]
    assert not m[:2].any()
    assert not m[:, :2].any()
    assert m[2:, 2:].all()   # rows/cols -2, -1 outside the raster
    np.testing.assert_array_equal(chips.values[0, 0][~m], 0.0)
    with rasterio.open(DATA / "s2.tif") as ds:
        np.testing.assert_array_equal(chips.values[0, :, 2:, 2:], ds.read(window=Window(0, 0, 3, 3)))
    hole = chips.mask[1, 0]   # window rows 3..7, cols 4..8; nodata at rows 5-6, cols 7-8 -> chip rows 2-3, cols 3-4
    expected = np.ones((5, 5), bool)
    expected[2:4, 3:5] = False
    np.testing.assert_array_equal(hole, expected)


def test_crs_mismatch_is_reprojected_to_the_common_grid():
    gen = _generator()
    ex = ChipExtractor([ChipSource(DATA / "s2.tif", bands=("B04",)), ChipSource(DATA / "dem_lonlat.tif")], size=3)
    pts = [(2, 3), (10, 12)]
    chips = ex.extract(["p", "q"], np.array([_centre(r, c) for r, c in pts]), "EPSG:32633")
    assert chips.channels == ["s2:B04", "dem_lonlat:DEM"]
    for i, (r, c) in enumerate(pts):
        rows, cols = np.mgrid[r - 1:r + 2, c - 1:c + 2]
        x, y = X0 + (cols + 0.5) * RES, Y0 - (rows + 0.5) * RES
        # bilinear resampling of a linear function of the UTM coordinates: exact up to the ~5 m source pixels' curvature
        np.testing.assert_allclose(chips.values[i, 1], gen.dem_value(x, y), atol=0.3)
        assert chips.mask[i].all()


def test_points_in_another_crs_are_transformed():
    from pyproj import Transformer

    lon, lat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True).transform(*_centre(8, 10))
    ex = ChipExtractor([ChipSource(DATA / "s2.tif", bands=("B02",))], size=1)
    a = ex.extract(["a"], np.array([[lon, lat]]), "EPSG:4326")
    with rasterio.open(DATA / "s2.tif") as ds:
        assert a.values[0, 0, 0, 0] == ds.read(1)[8, 10]


def test_multi_date_series_with_dates_static_channels_and_cloud_mask():
    ex = ChipExtractor([
        ChipSource(DATA / "ndvi_series.tif", name="ndvi", dates="descriptions"),
        ChipSource(DATA / "s2.tif", bands=("B04",)),
        ChipSource(DATA / "clouds.tif", dates="descriptions", kind="cloud_mask", resampling="nearest"),
    ], size=3)
    chips = ex.extract(["a", "b"], np.array([_centre(2, 5), _centre(10, 5)]), "EPSG:32633")
    assert chips.values.shape == (2, 5, 2, 3, 3)
    assert chips.channels == ["ndvi:value", "s2:B04"]
    assert str(chips.dates[0]) == "2020-03-01T10:00:00"
    assert len(chips.dates) == 5
    np.testing.assert_allclose(chips.values[1, :, 0, 1, 1], np.arange(5) + 10 / 100, rtol=1e-6)
    # the static band is the same at every date
    np.testing.assert_array_equal(chips.values[1, 0, 1], chips.values[1, 4, 1])
    # cloudy at date 2 in rows 0-3: sample a (rows 1-3) is masked there in the series channel only, b is not
    assert not chips.mask[0, 2, 0].any()
    assert chips.mask[0, 2, 1].all()
    assert chips.mask[0, [0, 1, 3, 4]].all()
    assert chips.mask[1].all()
    np.testing.assert_array_equal(chips.values[0, 2, 0], 0.0)


def test_second_run_reads_no_raster(tmp_path, monkeypatch):
    sources = [ChipSource(DATA / "s2.tif"), ChipSource(DATA / "dem_lonlat.tif")]
    xy = np.array([_centre(4, 4), _centre(9, 15), _centre(12, 3)])
    first = ChipExtractor(sources, size=5, cache_dir=tmp_path).extract(["a", "b", "c"], xy, "EPSG:32633")

    def no_open(*args, **kwargs):
        raise AssertionError("a raster was opened although every chip is cached")

    monkeypatch.setattr(rasterio, "open", no_open)
    second_ex = ChipExtractor(sources, size=5, cache_dir=tmp_path)
    again = second_ex.extract(["c", "a"], xy[[2, 0]], "EPSG:32633")
    assert second_ex.opens == 0
    np.testing.assert_array_equal(again.values, first.values[[2, 0]])
    np.testing.assert_array_equal(again.mask, first.mask[[2, 0]])
    assert again.channels == first.channels
    assert list(again.sample_ids) == ["c", "a"]


def test_cache_misses_are_added_and_keys_depend_on_window_and_source(tmp_path):
    sources = [ChipSource(DATA / "s2.tif", bands=("B02",))]
    ex = ChipExtractor(sources, size=3, cache_dir=tmp_path)
    ex.extract(["a"], np.array([_centre(4, 4)]), "EPSG:32633")
    mixed = ex.extract(["a", "b"], np.array([_centre(4, 4), _centre(8, 8)]), "EPSG:32633")
    fresh = ChipExtractor(sources, size=3).extract(["a", "b"], np.array([_centre(4, 4), _centre(8, 8)]), "EPSG:32633")
    np.testing.assert_array_equal(mixed.values, fresh.values)
    # same id, moved point: a new window, not the cached chip
    moved = ex.extract(["a"], np.array([_centre(8, 8)]), "EPSG:32633")
    np.testing.assert_array_equal(moved.values, fresh.values[1:])
    # another chip size is another cache group
    bigger = ChipExtractor(sources, size=5, cache_dir=tmp_path).extract(["a"], np.array([_centre(4, 4)]), "EPSG:32633")
    assert bigger.values.shape == (1, 1, 5, 5)
    assert len(list(tmp_path.iterdir())) == 2


def test_windowed_reads_equal_in_memory_reads():
    sources = [ChipSource(DATA / "s2.tif"), ChipSource(DATA / "dem_lonlat.tif")]
    xy = np.array([_centre(0, 0), _centre(5, 6), _centre(15, 19), _centre(8, 10)])
    a = ChipExtractor(sources, size=5).extract(list("abcd"), xy, "EPSG:32633")
    b = ChipExtractor(sources, size=5, max_memory_mb=0).extract(list("abcd"), xy, "EPSG:32633")
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_allclose(a.values, b.values, atol=1e-4)


def test_missing_band_is_a_clear_error():
    with pytest.raises(ChipError, match=r"no band\(s\) \['B11'\].*B02"):
        ChipExtractor([ChipSource(DATA / "s2.tif", bands=("B04", "B11"))]).extract(["a"], np.array([_centre(3, 3)]), "EPSG:32633")


def test_encoder_channels_missing_from_chips_is_a_clear_error():
    chips = ChipExtractor([ChipSource(DATA / "s2.tif")], size=1).extract(["a"], np.array([_centre(3, 3)]), "EPSG:32633")
    with pytest.raises(ChipError, match=r"no channel\(s\) \['S1:VV'\]"):
        chips.select(["s2:B04", "S1:VV"])


def test_point_outside_every_raster_is_named():
    ex = ChipExtractor([ChipSource(DATA / "s2.tif")], size=3)
    with pytest.raises(ChipError, match=r"1 sample\(s\) lie outside every chip source: far"):
        ex.extract(["in", "far"], np.array([_centre(3, 3), (X0 + 5_000, Y0)]), "EPSG:32633")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ChipError, match="not found"):
        ChipExtractor([ChipSource(tmp_path / "nope.tif")], cache_dir=tmp_path).extract(["a"], np.zeros((1, 2)), "EPSG:32633")



def test_a_source_that_misses_a_point_is_masked_there_not_an_error(tmp_path):
    from rasterio.transform import from_origin

    half = tmp_path / "left_half.tif"           # covers cols 0-9 of the s2.tif grid only
    with rasterio.open(half, "w", driver="GTiff", height=16, width=10, count=1, dtype="float32", crs="EPSG:32633",
                       transform=from_origin(X0, Y0, RES, RES)) as dst:
        dst.write(np.full((1, 16, 10), 7.0, np.float32))
        dst.set_band_description(1, "L")
    ex = ChipExtractor([ChipSource(DATA / "s2.tif", bands=("B02",)), ChipSource(half)], size=3)
    chips = ex.extract(["left", "right"], np.array([_centre(8, 3), _centre(8, 15)]), "EPSG:32633")
    assert chips.mask[:, 0].all()                       # s2 covers both
    assert chips.mask[0, 1].all()
    assert (chips.values[0, 1] == 7.0).all()
    assert not chips.mask[1, 1].any()                    # the half raster does not reach the right point
