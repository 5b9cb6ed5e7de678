"""`sptgnn train` from a table + rasters config, then `sptgnn predict` of a map and of points; bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
import yaml
from rasterio.crs import CRS
from typer.testing import CliRunner

from sptgnn.cli import app
from sptgnn.distributions import Prediction
from sptgnn.estimator.run import load_run
from sptgnn.predict.raster import BANDS, NODATA

from helpers import soc_stack_and_points, write_tif

X0, Y0, RES, H, W = 600_000.0, 5_500_000.0, 10.0, 30, 40


def _invoke(args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, config_dict_factory):
    d = tmp_path_factory.mktemp("predict")
    table = soc_stack_and_points(d, H, W, RES, corner=(3, 4), n=45, seed=0, first_row=4,  # a nodata corner
                                 origin=(X0, Y0))
    rb, cb = np.mgrid[0:H // 2, 0:W // 2]
    write_tif(d / "cov_slope.tif", 1 + np.cos(cb / 5.0) + rb / 30.0, 2 * RES, origin=(X0, Y0))  # coarser grid
    raw = config_dict_factory(
        data={"target": "soc_g_kg", "target_transform": "none", "table": table,
              "rasters": [{"path": str(d / "stack.tif")}, {"path": str(d / "cov_*.tif"), "strip": "cov_"}]},
        graph={"spectral_streams": ["environment"]},
        train={"members": 2, "epochs": 4},
    )
    (d / "config.yaml").write_text(yaml.safe_dump(raw))
    res = _invoke(["train", d / "config.yaml", "--out", d / "run"])
    assert res.exit_code == 0, res.output
    return d


def test_run_holds_the_aoa_reference(trained):
    model = load_run(trained / "run")
    assert (trained / "run" / "aoa.npz").is_file()
    assert model.features == ["elev", "ndvi", "slope"]
    assert model.elevation == "elev"
    assert model.units == "g/kg"


@pytest.fixture(scope="module")
def mapped(trained):
    out = trained / "maps" / "soc.tif"
    out.parent.mkdir()
    res = _invoke(["predict", trained / "run", "--raster", trained / "stack.tif", "--raster", trained / "cov_slope.tif",
                   "--out", out, "--window", 16])
    assert res.exit_code == 0, res.output
    return out


def test_map_grid_bands_and_nodata(trained, mapped):
    assert sorted(p.name for p in mapped.parent.iterdir()) == ["soc.png", "soc.tif"]
    with rasterio.open(mapped) as m, rasterio.open(trained / "stack.tif") as ref:
        assert m.crs == ref.crs
        assert m.transform == ref.transform
        assert m.shape == ref.shape
        assert m.count == 8
        assert m.descriptions == BANDS
        assert m.nodata == NODATA
        threshold = float(m.tags()["di_threshold"])
        assert m.units[0] == "g/kg"
        assert m.profile["tiled"]
        assert m.profile["compress"] == "deflate"
        a = m.read()
    assert (a[:, :3, :4] == NODATA).all()  # nodata in, nodata out
    valid = a[0] != NODATA
    assert valid.sum() == H * W - 12
    mean, sd, ale, epi, q05, q95, aoa, di = (a[i][valid] for i in range(8))
    np.testing.assert_allclose(sd, np.sqrt(ale.astype(float) ** 2 + epi.astype(float) ** 2), rtol=1e-4)
    assert (q05 < mean).all()
    assert (mean < q95).all()
    assert set(np.unique(aoa)) <= {0.0, 1.0}
    assert aoa.mean() > 0.5
    np.testing.assert_array_equal(aoa == 1, di <= np.float32(threshold) * (1 + 1e-6))  # the flag is the DI's threshold


def test_map_mean_agrees_with_point_predictions_at_training_pixels(trained, mapped):
    out = trained / "pts_pred.csv"
    res = _invoke(["predict", trained / "run", "--points", trained / "pts.csv", "--x", "x", "--y", "y", "--crs", "EPSG:32633",
                   "--raster", trained / "stack.tif", "--raster", trained / "cov_slope.tif", "--out", out])
    assert res.exit_code == 0, res.output
    pts = pd.read_csv(out)
    for col in ["soc_mean", "soc_sd", "soc_aleatoric_sd", "soc_epistemic_sd", "soc_q05", "soc_q95", "aoa"]:
        assert col in pts.columns
    with rasterio.open(mapped) as m:
        vals = np.array(list(m.sample(zip(pts.x, pts.y), indexes=[1, 2])))
    np.testing.assert_allclose(vals[:, 0], pts.soc_mean, rtol=1e-5)
    np.testing.assert_allclose(vals[:, 1], pts.soc_sd, rtol=1e-4)


def test_points_sample_missing_covariates_from_config_rasters(trained):
    pts = pd.read_csv(trained / "pts.csv").head(5)
    import geopandas as gpd

    g = gpd.GeoDataFrame(pts, geometry=gpd.points_from_xy(pts.x, pts.y), crs="EPSG:32633").to_crs("EPSG:4326")
    g.to_file(trained / "ll.gpkg", driver="GPKG")
    res = _invoke(["predict", trained / "run", "--points", trained / "ll.gpkg", "--out", trained / "ll_pred.gpkg"])
    assert res.exit_code == 0, res.output
    assert gpd.read_file(trained / "ll_pred.gpkg")["soc_mean"].notna().all()


def test_bad_input_is_one_line_and_no_output(trained):
    run = trained / "run"
    cases = [
        (["--raster", trained / "stack.tif", "--out", trained / "nowhere" / "m.tif"], "output folder"),
        (["--raster", trained / "stack.tif", "--out", trained / "m.tif"], "no band for feature(s) ['slope']"),
    ]
    local = CRS.from_wkt('LOCAL_CS["arbitrary",UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
    write_tif(trained / "local.tif", np.ones((3, 5, 5)), 10, crs=local, origin=(0, 100), descriptions=["elev", "ndvi", "slope"])
    cases.append((["--raster", trained / "local.tif", "--out", trained / "m.tif"], "no transformation"))
    for args, msg in cases:
        res = _invoke(["predict", run] + args)
        assert res.exit_code == 2, res.output
        assert msg in " ".join(res.output.split()), res.output
    assert not (trained / "m.tif").exists()
    assert not list(trained.glob(".m.tif*"))


def test_corrupt_and_other_version_runs(trained, tmp_path):
    import shutil

    from sptgnn.estimator.manifest import write_manifest

    bad = tmp_path / "run"
    shutil.copytree(trained / "run", bad)
    (bad / "ensemble.pt").write_bytes(b"garbage")
    res = _invoke(["predict", bad, "--raster", trained / "stack.tif", "--out", tmp_path / "m.tif"])
    assert res.exit_code == 2
    assert "ensemble.pt differs from the manifest" in res.output
    assert len(res.stderr.strip().splitlines()) == 1  # one line, no progress before it
    write_manifest(bad, {"format": 3})
    res = _invoke(["predict", bad, "--raster", trained / "stack.tif", "--out", tmp_path / "m.tif"])
    assert res.exit_code == 2
    assert "corrupt" in res.output
    state = torch.load(trained / "run" / "ensemble.pt", weights_only=True)
    state["format"] = 99
    torch.save(state, bad / "ensemble.pt")
    write_manifest(bad, {"format": 3})
    res = _invoke(["predict", bad, "--raster", trained / "stack.tif", "--out", tmp_path / "m.tif"])
    assert res.exit_code == 2
    assert "format 99" in res.output
    res = _invoke(["predict", tmp_path / "nope", "--raster", trained / "stack.tif", "--out", tmp_path / "m.tif"])
    assert res.exit_code == 2
    assert "run directory not found" in res.output
    assert not (tmp_path / "m.tif").exists()


def test_interrupted_map_leaves_no_file(trained, monkeypatch, tmp_path):
    from sptgnn.predict import raster as raster_mod

    model = load_run(trained / "run")
    calls = {"n": 0}

    def boom(k, n, pixels):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        raster_mod.predict_raster(model, [trained / "stack.tif", trained / "cov_slope.tif"], tmp_path / "m.tif", window=16, progress=boom)
    assert [p.name for p in tmp_path.iterdir()] == [".m.tif.tiles"]  # no map; only the store a rerun resumes from


def test_mixture_quantiles_match_a_root_finder():
    from scipy.optimize import brentq
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    mu = rng.normal(0, 3, (5, 40))
    var = rng.uniform(0.1, 4, (5, 40))
    q = Prediction.from_gaussian_space(mu, np.sqrt(var), log1p=False).quantiles((0.05, 0.5, 0.95))
    for i in range(40):
        cdf = lambda x: norm.cdf(x, mu[:, i], np.sqrt(var[:, i])).mean()  # noqa: E731
        for j, p in enumerate((0.05, 0.5, 0.95)):
            assert q[i, j] == pytest.approx(brentq(lambda x: cdf(x) - p, -100, 100), abs=1e-5)
    one = Prediction.from_gaussian_space(np.array([[2.0]]), np.array([[2.0]]), log1p=False).quantiles((0.05,))
    assert one[0, 0] == pytest.approx(2 + 2 * norm.ppf(0.05))


def test_log1p_quantiles_are_lognormal_mixture_quantiles():
    from scipy.optimize import brentq
    from scipy.stats import norm

    rng = np.random.default_rng(1)
    m, v = rng.normal(2, 0.5, (4, 10)), rng.uniform(0.05, 0.8, (4, 10))  # members in log1p space
    q = Prediction.from_gaussian_space(m, np.sqrt(v), log1p=True).quantiles((0.05, 0.95))
    for i in range(10):
        cdf = lambda y: norm.cdf(np.log1p(y), m[:, i], np.sqrt(v[:, i])).mean()  # noqa: E731
        for j, p in enumerate((0.05, 0.95)):
            assert q[i, j] == pytest.approx(brentq(lambda y: cdf(y) - p, -0.999, 1e6), rel=1e-6)


def test_evaluate_cross_validates_a_point_table_config(trained, tmp_path):
    raw = yaml.safe_load((trained / "config.yaml").read_text())
    raw["evaluate"] = {"split": "random", "n_folds": 3, "baselines": ["xgboost"], "moran_permutations": 0}
    raw["train"]["members"] = 1
    (tmp_path / "cv.yaml").write_text(yaml.safe_dump(raw))
    res = _invoke(["evaluate", tmp_path / "cv.yaml", "--out", tmp_path / "cv"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    assert metrics["n_samples"] == 45
    assert metrics["n_folds"] == 3
    assert set(metrics["models"]) == {"sptgnn", "xgboost"}
    predictions = pd.read_csv(tmp_path / "cv" / "predictions.csv")
    assert sorted(predictions.loc[predictions.model == "sptgnn", "sample_id"].astype(int)) == list(range(45))


def test_a_map_without_raster_reads_the_runs_own_rasters(trained, mapped):
    out = trained / "maps_default" / "soc.tif"
    out.parent.mkdir()
    res = _invoke(["predict", trained / "run", "--out", out, "--window", 16])
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as a, rasterio.open(mapped) as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_a_band_without_any_valid_pixel_is_named(trained, tmp_path):
    with rasterio.open(trained / "stack.tif") as src:
        profile, data, names = src.profile, src.read(), src.descriptions
    data[names.index("ndvi")] = profile["nodata"]
    with rasterio.open(tmp_path / "stack.tif", "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = names
    res = _invoke(["predict", trained / "run", "--raster", tmp_path / "stack.tif", "--raster",
                   trained / "cov_slope.tif", "--out", tmp_path / "m.tif", "--window", 16])
    assert res.exit_code == 2
    assert "band(s) ['ndvi'] hold no valid pixel at all" in " ".join(res.output.split())
    assert not (tmp_path / "m.tif").exists()


def test_x_and_y_columns_the_table_lacks_are_named(trained, tmp_path):
    pd.DataFrame({"east": [1.0], "north": [2.0]}).to_csv(tmp_path / "p.csv", index=False)
    res = _invoke(["predict", trained / "run", "--points", tmp_path / "p.csv", "--x", "foo", "--y", "north", "--crs",
                   "EPSG:32633", "--out", tmp_path / "o.csv"])
    assert res.exit_code == 2
    assert "no column 'foo' (given with --x/--y)" in res.output
