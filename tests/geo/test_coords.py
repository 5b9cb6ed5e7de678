"""CRS helpers and the path rule, against pyproj and rasterio themselves."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import CRS, Transformer
from rasterio.transform import from_origin, rowcol

from sptgnn.geo.paths import data_dir, resolve_data_path
from sptgnn.geo import CRSTransformError, equal_area_crs, metric_coords, pixel_index, transform_xy


def test_transform_xy_equals_pyproj():
    xy = np.array([[10.0, 50.0], [11.5, 51.2]])
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True).transform(xy[:, 0], xy[:, 1])
    np.testing.assert_allclose(transform_xy(xy, "EPSG:4326", "EPSG:32632"), np.c_[x, y])
    np.testing.assert_array_equal(transform_xy(xy, "EPSG:4326", CRS.from_epsg(4326)), xy)


def test_transform_without_a_path_names_both_crs():
    local = CRS.from_wkt('LOCAL_CS["arbitrary",UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
    with pytest.raises(CRSTransformError, match=r"from the points' CRS \(EPSG:4326\) to the grid"):
        transform_xy(np.zeros((1, 2)), "EPSG:4326", local, ("the points' CRS", "the grid"))


def test_pixel_index_equals_rasterio_rowcol():
    t = from_origin(500_000, 5_700_000, 30, 30)
    xy = np.array([[500_015.0, 5_699_985.0], [500_100.0, 5_699_000.0], [499_000.0, 5_700_100.0]])
    r, c, on = pixel_index(t, 50, 50, xy)
    rr, cc = rowcol(t, xy[:2, 0], xy[:2, 1])
    np.testing.assert_array_equal(r[:2], rr)
    np.testing.assert_array_equal(c[:2], cc)
    np.testing.assert_array_equal(on, [True, True, False])


def test_metric_coords_refuses_a_non_metric_projection():
    with pytest.raises(ValueError, match="unit"):
        metric_coords(np.zeros((1, 2)), "EPSG:2227")  # California zone 3, US survey feet
    sphere = metric_coords(np.array([[0.0, 0.0], [90.0, 0.0]]), "EPSG:4326")
    np.testing.assert_allclose(np.linalg.norm(sphere, axis=1), 6_371_008.8)


def test_equal_area_crs_is_centred_on_the_points():
    crs = CRS.from_user_input(equal_area_crs(np.array([[20.0, 0.0], [22.0, 2.0]])))
    params = {p.name: p.value for p in crs.coordinate_operation.params}
    assert params["Longitude of natural origin"] == pytest.approx(21.0, abs=0.01)
    assert equal_area_crs(np.array([[-170.0, 0.0], [170.0, 0.0], [0.0, 0.0]])) == "EPSG:6933"


def test_one_path_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("SPTGNN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.tif").write_bytes(b"")
    assert resolve_data_path(tmp_path / "x.tif") == tmp_path / "x.tif"  # absolute: as given
    assert resolve_data_path("here.tif") == tmp_path / "here.tif"  # found in the working directory
    assert resolve_data_path("*.tif") == tmp_path / "*.tif"  # a glob with matches there
    assert resolve_data_path("vindum/a.tif") == data_dir() / "vindum/a.tif" == tmp_path / "data" / "vindum/a.tif"


def test_swapped_axes_are_detected_by_the_crs_area_of_use():
    from sptgnn.geo import axes_swapped

    utm33 = np.array([[500_000.0, 5_700_000.0], [510_000.0, 5_710_000.0]])  # 15°E 51°N: inside UTM 33N's area
    assert not axes_swapped(utm33, "EPSG:32633")
    assert axes_swapped(utm33[:, ::-1], "EPSG:32633")
    rd = np.array([[180_000.0, 330_000.0], [181_000.0, 331_000.0]])  # Meuse in the Dutch RD grid
    assert not axes_swapped(rd, "EPSG:28992")
    assert axes_swapped(rd[:, ::-1], "EPSG:28992")
    assert not axes_swapped(np.array([[50.0, 10.0]]), "EPSG:4326")  # lon/lat: the world, nothing to tell
