"""Multi-scale context features: window means and sd against a brute-force numpy reference (NaN-aware, per band), the
same values in a tile as in the whole raster (halo), scales in km to odd pixel windows, samples and maps given the
same columns, and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from helpers import soc_stack_and_points, stack_sections, write_tif
from rasterio.windows import Window
from typer.testing import CliRunner

from sptgnn.config import ContextConfig, load_config
from sptgnn.geo.context import open_covariates, window_pixels
from sptgnn.geo.sources import RasterError

H, W, RES = 26, 22, 1000.0  # 1 km pixels: 3 km → 3 px, 5 km → 5 px


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("context")
    table = soc_stack_and_points(d, H, W, RES, corner=(4, 5), n=40, seed=3, first_row=5)
    rng = np.random.default_rng(0)
    rough = rng.normal(size=(H, W)).astype("float32")
    rough[10, 10] = -9999.0  # a hole in one band only
    write_tif(d / "rough.tif", rough, RES, nodata=-9999.0, descriptions=["rough"])
    return d, table


def _brute(values: np.ndarray, ok: np.ndarray, r: int, c: int, n: int) -> tuple[float, float]:
    h = n // 2
    v = values[max(r - h, 0):r + h + 1, max(c - h, 0):c + h + 1]
    m = ok[max(r - h, 0):r + h + 1, max(c - h, 0):c + h + 1]
    return float(v[m].mean()), float(v[m].std())


def test_window_means_and_sd_match_a_brute_force_reference(stack):
    d, _ = stack
    ctx = ContextConfig(scales_km=[3, 5], stats=["mean", "sd"])
    with rasterio.open(d / "rough.tif") as ds:
        rough, rough_ok = ds.read(1).astype(float), ds.read_masks(1) > 0
    with open_covariates([d / "stack.tif", d / "rough.tif"], ctx) as s:
        names = ["rough_mean3km", "rough_sd5km", "elev_mean5km"]
        data, valid = s.read_window(Window(0, 0, W, H), names)
        with rasterio.open(d / "stack.tif") as ds:
            elev, elev_ok = ds.read(1).astype(float), ds.read_masks(1) > 0
        for r, c in [(0, 0), (10, 11), (9, 10), (25, 21), (4, 6), (13, 2)]:
            np.testing.assert_allclose(data[0, r, c], _brute(rough, rough_ok, r, c, 3)[0], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(data[1, r, c], _brute(rough, rough_ok, r, c, 5)[1], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(data[2, r, c], _brute(elev, elev_ok, r, c, 5)[0], rtol=1e-5)
        assert not valid[10, 10]
        assert valid[10, 11]
        assert not valid[0, 0]  # own band's nodata makes the pixel invalid


def test_a_tile_equals_the_same_pixels_of_the_whole_raster(stack):
    d, _ = stack
    ctx = ContextConfig(scales_km=[3, 7], stats=["mean", "sd"])
    with open_covariates([d / "stack.tif"], ctx) as s:
        whole, ok = s.read_window(Window(0, 0, W, H))
        for win in [Window(0, 0, 8, 8), Window(8, 13, 8, 8), Window(16, 20, 6, 6)]:
            part, pok = s.read_window(win)
            rows = slice(win.row_off, win.row_off + win.height)
            cols = slice(win.col_off, win.col_off + win.width)
            np.testing.assert_allclose(part, whole[:, rows, cols], rtol=1e-6)
            assert (pok == ok[rows, cols]).all()
        assert s.features[:2] == ["elev", "ndvi"]
        assert "ndvi_sd7km" in s.streams()["environment"]


def test_scales_become_odd_pixel_windows():
    assert [window_pixels(km, 20_000) for km in (60, 140, 300, 1)] == [3, 7, 15, 1]
    assert window_pixels(4, 1000) == 5
    assert window_pixels(5, 1000) == 5


def test_samples_and_maps_get_the_same_context_columns(stack, config_dict_factory):
    from sptgnn.cli import app
    from sptgnn.data.tables import load_samples

    d, table = stack
    raw = config_dict_factory(**stack_sections(d, table, context={"scales_km": [3], "stats": ["mean", "sd"]}),
                              train={"members": 2, "epochs": 3})
    (d / "config.yaml").write_text(yaml.safe_dump(raw))
    samples = load_samples(load_config(d / "config.yaml").data)
    assert samples.feature_groups["environment"] == ["elev", "ndvi", "elev_mean3km", "ndvi_mean3km", "elev_sd3km",
                                                     "ndvi_sd3km"]
    with open_covariates([d / "stack.tif"], ContextConfig(scales_km=[3], stats=["mean"])) as s:
        values, _ = s.sample_points(samples.xy(), samples.crs, ["ndvi_mean3km"])
    np.testing.assert_allclose(samples.frame["ndvi_mean3km"], values[:, 0])
    run = CliRunner().invoke(app, ["train", str(d / "config.yaml"), "--out", str(d / "run")])
    assert run.exit_code == 0, run.output
    res = CliRunner().invoke(app, ["predict", str(d / "run"), "--raster", str(d / "stack.tif"), "--out",
                                   str(d / "map.tif"), "--window", "16"])
    assert res.exit_code == 0, res.output
    pts = CliRunner().invoke(app, ["predict", str(d / "run"), "--points", str(d / "pts.csv"), "--x", "x", "--y", "y",
                                   "--crs", "EPSG:32633", "--raster", str(d / "stack.tif"), "--out", str(d / "p.csv")])
    assert pts.exit_code == 0, pts.output
    p = pd.read_csv(d / "p.csv")
    with rasterio.open(d / "map.tif") as m:
        at = np.array([v[0] for v in m.sample(zip(p.x, p.y), indexes=[1])])
    np.testing.assert_allclose(at, p.soc_mean, rtol=1e-5)  # 16 px tiles with halos give the points' values


def test_errors(stack, config_dict_factory):
    d, _ = stack
    with pytest.raises(RasterError, match=r"data.context.bands \['clay'\]"):
        open_covariates([d / "stack.tif"], ContextConfig(scales_km=[3], bands=["clay"]))
    with pytest.raises(ValueError, match="every scale must be positive"):
        ContextConfig(scales_km=[0])
    # the grid is 26 km across: a 10,000 km window would be padding, and its halo would not fit in memory
    with pytest.raises(RasterError, match=r"scales_km \[10000.0\] exceed twice the covariate grid's extent .*up to 52 km"):
        open_covariates([d / "stack.tif"], ContextConfig(scales_km=[3, 10000]))
    from sptgnn.data.tables import load_samples

    cfg = load_config(None, {"data": {"dataset": "limesoda:BB.30_2", "context": {"scales_km": [1]}}})
    with pytest.raises(RasterError, match="data.context needs covariate rasters"):
        load_samples(cfg.data)
