"""Covariate stacks: alignment of rasters with other CRS/resolution, point sampling, windows, errors."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Transformer
from rasterio.crs import CRS

from sptgnn.geo.sources import RasterError, RasterSource, match_sources
from sptgnn.geo.stack import CovariateStack

from helpers import X0, Y0, field, write_tif

@pytest.fixture
def stack_files(tmp_path):
    """A: 2 bands with descriptions, 10 m, 20 x 20; B: single band, 20 m, 10 x 10, stem ``cov_b`` with nodata at one
    cell; all EPSG:32633 over the same 200 m square."""
    rows, cols = np.mgrid[0:20, 0:20]
    xc, yc = X0 + (cols + 0.5) * 10, Y0 - (rows + 0.5) * 10
    a = np.stack([field(xc, yc), np.full((20, 20), 7.0)])
    write_tif(tmp_path / "a.tif", a, 10, descriptions=["lin", "const"])
    rb, cb = np.mgrid[0:10, 0:10]
    b = (rb * 10 + cb).astype("float32")
    b[0, 0] = -9999
    write_tif(tmp_path / "cov_b.tif", b, 20, nodata=-9999)
    return tmp_path


def test_features_named_by_description_and_stem(stack_files):
    with CovariateStack.open([stack_files / "a.tif", stack_files / "cov_b.tif"]) as st:
        assert st.features == ["lin", "const", "cov_b"]
        assert st.shape == (20, 20)
    with CovariateStack.open([RasterSource(str(stack_files / "cov_b.tif"), strip="cov_")]) as st:
        assert st.features == ["b"]
    with CovariateStack.open([RasterSource(str(stack_files / "a.tif"), bands={"flat": "const", "first": 1})]) as st:
        assert st.features == ["flat", "first"]
        assert st.bands["flat"].band == 2
        assert st.bands["first"].band == 1


def test_glob_and_duplicate_names(stack_files):
    with CovariateStack.open([str(stack_files / "*.tif")]) as st:
        assert set(st.features) == {"lin", "const", "cov_b"}
    with pytest.raises(RasterError, match="given by both"):
        CovariateStack.open([stack_files / "a.tif", stack_files / "a.tif"])


def test_sample_points_nearest_pixel_and_other_resolution(stack_files):
    with CovariateStack.open([stack_files / "a.tif", stack_files / "cov_b.tif"]) as st:
        # pixel centres of A at (row 3, col 5) and (row 15, col 12), plus a point inside the nodata cell of B
        pts = np.array([[X0 + 55, Y0 - 35], [X0 + 125, Y0 - 155], [X0 + 5, Y0 - 5], [X0 - 50, Y0 - 50]])
        values, valid = st.sample_points(pts, "EPSG:32633")
        np.testing.assert_allclose(values[0], [field(*pts[0]), 7.0, 1 * 10 + 2])  # B cell (row 1, col 2)
        np.testing.assert_allclose(values[1], [field(*pts[1]), 7.0, 7 * 10 + 6])
        assert valid.tolist() == [True, True, False, False]  # nodata in B; off the grid
        assert np.isnan(values[2, 2])
        assert np.isnan(values[3]).all()


def test_points_in_other_crs_are_transformed(stack_files):
    pts = np.array([[X0 + 55, Y0 - 35], [X0 + 125, Y0 - 155]])
    lon, lat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True).transform(pts[:, 0], pts[:, 1])
    with CovariateStack.open([stack_files / "a.tif"]) as st:
        v1, ok1 = st.sample_points(pts, "EPSG:32633")
        v2, ok2 = st.sample_points(np.c_[lon, lat], "EPSG:4326")
    np.testing.assert_allclose(v1, v2)
    assert ok1.all()
    assert ok2.all()


def test_raster_in_other_crs_is_warped_to_the_reference_grid(stack_files):
    # the same linear field written on a 5 m grid in Web Mercator: after warping onto A's grid, values at A's pixel
    # centres match the field up to the 5 m (scaled) pixel of the source
    tr = Transformer.from_crs("EPSG:32633", "EPSG:3857", always_xy=True)
    inv = Transformer.from_crs("EPSG:3857", "EPSG:32633", always_xy=True)
    mx0, my0 = tr.transform(X0 - 50, Y0 + 50)
    n = 120  # 5 m Mercator pixels are about 3 m on the ground at 51° N
    rows, cols = np.mgrid[0:n, 0:n]
    mx, my = mx0 + (cols + 0.5) * 5, my0 - (rows + 0.5) * 5
    ux, uy = inv.transform(mx, my)
    write_tif(stack_files / "merc.tif", field(ux, uy), 5, crs="EPSG:3857", origin=(mx0, my0), descriptions=["merc"])
    with CovariateStack.open([stack_files / "a.tif", RasterSource(str(stack_files / "merc.tif"), resampling="bilinear")]) as st:
        data, valid = st.read_window(next(st.windows(64)), ["lin", "merc"])
    assert valid.all()
    np.testing.assert_allclose(data[1], data[0], atol=1.0)
    # outside the Mercator raster's footprint the warped band is invalid, not zero
    sx, sy = tr.transform(X0 + 20, Y0 - 20)
    write_tif(stack_files / "small.tif", np.ones((8, 8)), 5, crs="EPSG:3857", origin=(sx, sy), descriptions=["small"], dtype="int16")
    with CovariateStack.open([stack_files / "a.tif", stack_files / "small.tif"]) as st:
        _, valid = st.read_window(next(st.windows(64)))
    assert 0 < valid.sum() < 20  # field changes 1 per 10 m in x, 2 per 10 m in y


def test_windows_tile_the_grid_and_read_window(stack_files):
    with CovariateStack.open([stack_files / "a.tif", stack_files / "cov_b.tif"]) as st:
        wins = list(st.windows(8))
        assert len(wins) == st.num_windows(8) == 9
        assert sum(int(w.width * w.height) for w in wins) == 400
        data, valid = st.read_window(wins[0])
        assert data.shape == (3, 8, 8)
        assert data.dtype == np.float32
        assert not valid[0, 0]
        assert not valid[1, 1]
        assert valid[2, 2]  # B's nodata cell covers A's 2 x 2 pixels
        x, y = st.pixel_centres(wins[4])
        np.testing.assert_allclose(data.shape[1:], x.shape)
        d4, _ = st.read_window(wins[4], ["lin"])
        np.testing.assert_allclose(d4[0], field(x, y), rtol=1e-6)
        assert sum(int(st.read_window(w)[1].sum()) for w in st.windows(8)) == 400 - 4


def test_errors(stack_files, tmp_path):
    with CovariateStack.open([stack_files / "a.tif"]) as st:
        with pytest.raises(RasterError, match=r"no band for feature\(s\) \['ndvi'\]; available: \['lin', 'const'\]"):
            st.sample_points(np.array([[X0 + 5, Y0 - 5]]), "EPSG:32633", ["lin", "ndvi"])
        with pytest.raises(RasterError, match="cover none of the 2 points: all are off the grid"):
            st.sample_points(np.array([[10.0, 50.0], [11.0, 51.0]]), "EPSG:4326")
    with pytest.raises(RasterError, match="raster file not found"):
        CovariateStack.open([tmp_path / "nope.tif"])
    with pytest.raises(RasterError, match="no raster matches"):
        CovariateStack.open([str(tmp_path / "nope_*.tif")])
    (tmp_path / "junk.tif").write_text("not a tiff")
    with pytest.raises(RasterError, match="cannot open"):
        CovariateStack.open([tmp_path / "junk.tif"])
    with pytest.raises(RasterError, match="no band described 'red'"):
        CovariateStack.open([RasterSource(str(stack_files / "a.tif"), bands={"r": "red"})])
    with pytest.raises(RasterError, match="band 5 for feature 'r' does not exist"):
        CovariateStack.open([RasterSource(str(stack_files / "a.tif"), bands={"r": 5})])


def test_empty_raster_covers_no_point(tmp_path):
    write_tif(tmp_path / "empty.tif", np.full((5, 5), -1.0), 10, nodata=-1.0)
    with CovariateStack.open([tmp_path / "empty.tif"]) as st:
        with pytest.raises(RasterError, match="all are on nodata pixels"):
            st.sample_points(np.array([[X0 + 15, Y0 - 15]]), "EPSG:32633")
        assert sum(int(st.read_window(w)[1].sum()) for w in st.windows(8)) == 0


def test_crs_without_transform(tmp_path):
    local = CRS.from_wkt('LOCAL_CS["arbitrary",UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
    write_tif(tmp_path / "local.tif", np.ones((5, 5)), 10, crs=local, origin=(0, 100))
    with CovariateStack.open([tmp_path / "local.tif"]) as st:
        with pytest.raises(RasterError, match="no transformation from the points' CRS"):
            st.sample_points(np.array([[10.0, 50.0]]), "EPSG:4326")


def test_match_sources_reuses_config_naming(tmp_path):
    conf = [RasterSource("vindum/vindum_cov_*.tif", strip="vindum_cov_"), RasterSource("grid.tif", bands={"dem": 1})]
    out = match_sources([tmp_path / "vindum_cov_ECa.tif", tmp_path / "grid.tif", tmp_path / "other.tif"], conf)
    assert [o.strip for o in out] == ["vindum_cov_", "", ""]
    assert out[1].bands == {"dem": 1}
    assert out[2].bands is None
