"""Zone aggregation: pixel counts and areas by hand, stocks consistent with SOC draw by draw, realisation intervals
wider than the naive independent-pixel interval, the spherical pixel area, and clear errors."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from helpers import X0, Y0, soc_stack_and_points, stack_sections, write_tif
from shapely.geometry import box

from sptgnn.accounting.aggregate import AggregateError, aggregate_zones, pixel_area_ha
from sptgnn.accounting.residuals import residual_field_from_evaluation
from sptgnn.accounting.residual_field import ResidualField
from sptgnn.accounting.stocks import Property

H, W, RES = 30, 24, 10.0


@pytest.fixture(scope="module")
def run_and_stack(tmp_path_factory, config_factory):
    from sptgnn.data.tables import load_samples
    from sptgnn.estimator.run import fit_run

    d = tmp_path_factory.mktemp("aggregate")
    # nodata corner: 4 × 5 = 20 pixels, all in the upper-left zone
    table = soc_stack_and_points(d, H, W, RES, corner=(4, 5), n=40, seed=2, first_row=4)
    cfg = config_factory(**stack_sections(d, table, target_transform="log1p"), train={"members": 2, "epochs": 4})
    run = fit_run(cfg, load_samples(cfg.data))
    zones = gpd.GeoDataFrame({"name": ["west", "east"]}, crs="EPSG:32633", geometry=[
        box(X0, Y0 - H * RES, X0 + 12 * RES, Y0), box(X0 + 12 * RES, Y0 - H * RES, X0 + W * RES, Y0)])
    return run, [d / "stack.tif"], zones


def _field(nugget=0.05, len_scale=2000.0):
    rng = np.random.default_rng(0)  # conditioning residuals far away: the field is unconditioned in the zones
    return ResidualField(rng.uniform(-1e5, -9e4, (20, 2)), rng.normal(size=20), nugget, len_scale)


def _zones(out):
    return out[out["zone_kind"] == "zone"].reset_index(drop=True)


def test_counts_areas_and_stocks(run_and_stack):
    run, rasters, zones = run_and_stack
    out = _zones(aggregate_zones(run, rasters, zones, _field(), realisations=40, thickness_cm=30.0,
                                 bulk_density=Property(1.3, 0.0), window=16))
    assert list(out["name"]) == ["west", "east"]
    assert list(out["n_pixels"]) == [12 * H - 20, 12 * H]
    np.testing.assert_allclose(out["area_ha"], out["n_pixels"] * 0.01)  # 10 m × 10 m = 0.01 ha
    # bulk density known exactly: every draw's stock is SOC × 1.3 × 30 × 0.1, so the means agree to rounding
    np.testing.assert_allclose(out["stock_t_ha_mean"], out["soc_g_kg_mean"] * 1.3 * 30 * 0.1, rtol=1e-9)
    np.testing.assert_allclose(out["stock_t_c_mean"], out["stock_t_ha_mean"] * out["area_ha"], rtol=1e-9)
    np.testing.assert_allclose(out["stock_t_co2e_q50"], out["stock_t_c_q50"] * 44 / 12, rtol=1e-9)
    assert (out["soc_g_kg_q05"] < out["soc_g_kg_q50"]).all()
    assert (out["soc_g_kg_q50"] < out["soc_g_kg_q95"]).all()


def test_correlated_realisations_widen_the_interval_of_a_zone_mean(run_and_stack):
    run, rasters, zones = run_and_stack
    out = _zones(aggregate_zones(run, rasters, zones, _field(0.05, 5000.0), realisations=60, window=16, seed=1))
    wide = out["soc_g_kg_q95"] - out["soc_g_kg_q05"]
    naive = out["soc_g_kg_naive_q95"] - out["soc_g_kg_naive_q05"]
    assert (wide > 3 * naive).all()  # 350 pixels with correlated errors are nowhere near 350 independent ones


def test_pixel_area_on_the_sphere():
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    t = from_origin(0.0, 1.0, 1.0, 1.0)  # a 1° × 1° cell from the equator to 1° N
    R = 6_371_008.8
    by_hand = R**2 * np.radians(1.0) * np.sin(np.radians(1.0)) / 1e4
    assert pixel_area_ha(t, CRS.from_epsg(4326), np.array([0]))[0] == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(1_236_400, rel=2e-3)  # about 12,364 km² at the equator


def test_bad_inputs_say_what_to_do(run_and_stack, tmp_path):
    run, rasters, zones = run_and_stack
    far = zones.set_geometry(zones.geometry.translate(1e6, 0))
    with pytest.raises(AggregateError, match="no zone overlaps"):
        aggregate_zones(run, rasters, far, _field(), realisations=5, window=16)
    with pytest.raises(AggregateError, match="not found"):
        residual_field_from_evaluation(tmp_path / "nope.csv")
    pd.DataFrame({"model": ["xgboost"], "x": [0.0], "y": [0.0]}).to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(AggregateError, match="sptgnn evaluate"):
        residual_field_from_evaluation(tmp_path / "p.csv")


def test_cli_writes_zone_totals_and_refuses_bad_input(run_and_stack, tmp_path):
    from typer.testing import CliRunner

    from sptgnn.cli import app

    run, rasters, zones = run_and_stack
    run.save(tmp_path / "run")
    zones.to_file(tmp_path / "zones.gpkg")
    rng = np.random.default_rng(0)
    lab = run.labelled.metric_coords()
    _residuals(run, rng).to_csv(tmp_path / "predictions.csv", index=False)
    args = ["aggregate", str(tmp_path / "run"), "--raster", str(rasters[0]), "--zones", str(tmp_path / "zones.gpkg"),
            "--residuals", str(tmp_path), "--realisations", "20", "--window", "16", "--depth-cm", "30"]
    res = CliRunner().invoke(app, args + ["--out", str(tmp_path / "totals.gpkg"), "--mean-raster",
                                          str(tmp_path / "mean.tif")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "mean.tif").is_file()
    assert not list(tmp_path.glob(".*partial*"))
    totals = gpd.read_file(tmp_path / "totals.gpkg", layer="zone_totals")
    assert list(totals["zone_kind"]) == ["zone", "zone", "project"]
    assert list(totals["name"][:2]) == ["west", "east"]
    assert (totals["stock_t_c_q95"] > totals["stock_t_c_q05"]).all()
    assert "project total" in res.output
    assert "zone west" in res.output
    prov = dict(gpd.read_file(tmp_path / "totals.gpkg", layer="provenance")[["key", "value"]].to_numpy())
    from sptgnn.accounting.provenance import run_fingerprint
    from sptgnn.estimator.manifest import sha256

    assert prov["run_manifest_sha256"] == sha256(tmp_path / "run" / "manifest.json")
    assert prov["residual_samples_fingerprint"] == prov["run_samples_fingerprint"] == run_fingerprint(run)
    assert prov["layer_thickness_cm"] == "30.0"
    assert prov["realisations"] == "20"
    assert prov["seed"] == "0"
    assert prov["bulk_density_g_cm3"] == "1.3"
    assert prov["conservative_percentile"] == "5.0"
    import pyogrio

    assert pyogrio.read_info(tmp_path / "totals.gpkg", layer="zone_totals")["layer_metadata"]["seed"] == "0"
    res = CliRunner().invoke(app, args + ["--out", str(tmp_path / "totals.gpkg")])
    assert res.exit_code == 2
    assert "already exists" in res.output
    res = CliRunner().invoke(app, args + ["--out", str(tmp_path / "t2.gpkg"), "--coarse", "15"])
    assert res.exit_code == 2
    assert "volume share" in res.output
    assert not (tmp_path / "t2.gpkg").exists()


def _residuals(run, rng):
    """A predictions.csv of the run's own samples (ids, targets, planar coordinates) with random PIT values."""
    lab = run.labelled
    xy = lab.metric_coords()
    return pd.DataFrame({"model": "sptgnn", "sample_id": lab.sample_ids, "y_true": lab.target(run.target),
                         "x": xy[:, 0], "y": xy[:, 1], "pit": rng.uniform(size=len(lab))})


def test_project_total_is_the_sum_of_zone_totals_realisation_by_realisation(run_and_stack):
    run, rasters, zones = run_and_stack
    out = aggregate_zones(run, rasters, zones, _field(0.05, 5000.0), realisations=30, window=16,
                          conservative_percentile=10.0)
    draws = out.attrs["stock_t_c_draws"]  # (R, zones + project)
    np.testing.assert_allclose(draws[:, -1], draws[:, :-1].sum(1), rtol=1e-12)
    proj = out.iloc[-1]
    assert proj["zone_kind"] == "project"
    assert proj["n_pixels"] == out["n_pixels"][:-1].sum()
    assert proj["stock_t_c_q05"] == pytest.approx(np.quantile(draws[:, -1], 0.05))
    assert proj["stock_t_c_sd"] == pytest.approx(np.std(draws[:, -1], ddof=1))
    assert proj["stock_t_c_conservative"] == pytest.approx(np.percentile(draws[:, -1], 10.0))
    half = (proj["stock_t_c_q95"] - proj["stock_t_c_q05"]) / 2
    assert proj["stock_t_c_rel_uncertainty"] == pytest.approx(half / proj["stock_t_c_mean"])
    # the project's SOC mean is the pixel-weighted mean of the zones'
    n = out["n_pixels"][:-1].to_numpy()
    assert proj["soc_g_kg_mean"] == pytest.approx(float((out["soc_g_kg_mean"][:-1] * n).sum() / n.sum()))
    # q05 of a sum is not the sum of q05s
    assert proj["stock_t_c_q05"] != pytest.approx(out["stock_t_c_q05"][:-1].sum(), rel=1e-6)


def test_change_shares_realisations_so_common_errors_cancel(run_and_stack, config_factory):
    from sptgnn.estimator.run import fit_run

    run, rasters, zones = run_and_stack
    same = _zones(aggregate_zones(run, rasters, zones, _field(0.05, 5000.0), realisations=30, window=16,
                                  baseline=(run, None)))
    np.testing.assert_array_equal(same["soc_change_g_kg_mean"], 0.0)  # the same state twice: no change in any draw
    assert (same["stock_change_t_c_sd"] == 0).all()
    assert (same["stock_change_t_c_sd_independent"] > 0).all()
    other = fit_run(run.config.updated(train={"seed": 7}), run.labelled, aoa=False)  # a second survey's model
    change = _zones(aggregate_zones(other, rasters, zones, _field(0.05, 5000.0), realisations=30, window=16,
                                    baseline=(run, None)))
    np.testing.assert_allclose(change["stock_change_t_co2e_mean"], change["stock_change_t_c_mean"] * 44 / 12, rtol=1e-9)
    assert (change["soc_change_g_kg_sd"] > 0).all()
    assert (change["soc_change_g_kg_sd"] < 0.5 * change["soc_change_g_kg_sd_independent"]).all()
    np.testing.assert_allclose(change["soc_change_g_kg_mean"],
                               change["soc_g_kg_mean"] - same["soc_g_kg_mean"], rtol=1e-9, atol=1e-9)


def test_a_bulk_density_raster_replaces_the_constant_pixel_by_pixel(run_and_stack, tmp_path):
    run, rasters, zones = run_and_stack
    bd = np.full((H, W), 1.1, dtype="float32")
    bd[:, :3] = -9999.0  # no bulk density in the three westernmost columns: those pixels are left out
    write_tif(tmp_path / "bd.tif", bd, RES, nodata=-9999.0)
    out = _zones(aggregate_zones(run, rasters, zones, _field(), realisations=20, bulk_density=Property(9.9, 0.0),
                                 window=16, bulk_density_raster=tmp_path / "bd.tif"))
    assert list(out["n_pixels"]) == [12 * H - 20 - 3 * (H - 4), 12 * H]  # the nodata corner lies in those columns
    np.testing.assert_allclose(out["stock_t_ha_mean"], out["soc_g_kg_mean"] * 1.1 * 30 * 0.1, rtol=1e-6)
    write_tif(tmp_path / "off.tif", bd[:-2], RES, nodata=-9999.0)
    with pytest.raises(AggregateError, match="not on the covariate grid"):
        aggregate_zones(run, rasters, zones, _field(), realisations=5, window=16, bulk_density_raster=tmp_path / "off.tif")


def test_residual_field_from_a_fitted_calibration_part(run_and_stack):
    from sptgnn.accounting.residuals import residual_field_from_calibration
    from sptgnn.estimator.run import fit_run

    run, _, _ = run_and_stack
    with pytest.raises(AggregateError, match="no calibration part"):  # the fixture's run has none
        residual_field_from_calibration(run.ensemble, run.labelled.metric_coords())
    cal = fit_run(run.config.updated(calibration={"method": "variance", "fraction": 0.3, "min_samples": 10}),
                  run.labelled, aoa=False).ensemble
    xy = cal.builder.labelled.metric_coords()
    field = residual_field_from_calibration(cal, xy)
    ids = list(cal.builder.labelled.sample_ids)
    np.testing.assert_array_equal(field.xy, xy[[ids.index(s) for s in cal.calibration_ids]])
    assert len(field.z) == len(cal.calibration_ids)
    assert np.isfinite(field.z).all()


# -- refusals: each a one-line error with the fix, exit 2, nothing written --------------------------------------------
@pytest.fixture(scope="module")
def cli_setup(run_and_stack, tmp_path_factory):
    from sptgnn.estimator.run import fit_run

    run, rasters, zones = run_and_stack
    d = tmp_path_factory.mktemp("refusals")
    run.save(d / "run")
    zones.to_file(d / "zones.gpkg")
    _residuals(run, np.random.default_rng(0)).to_csv(d / "predictions.csv", index=False)
    # the same samples read as SOM in %, and sampled from 0 to 10 cm
    som = fit_run(run.config.updated(data={"quantity": "som", "top_cm": 0.0, "bottom_cm": 10.0,
                                           "table": run.config.data.table.model_copy(update={"units": "%"})}),
                  run.labelled, aoa=False)
    som.save(d / "som_run")
    return d, rasters


def _aggregate(d, rasters, *extra, out="totals.gpkg", run="run"):
    from typer.testing import CliRunner

    from sptgnn.cli import app

    args = ["aggregate", str(d / run), "--raster", str(rasters[0]), "--zones", str(d / "zones.gpkg"),
            "--residuals", str(d / "predictions.csv"), "--realisations", "10", "--window", "16",
            "--out", str(d / out), *map(str, extra)]
    return CliRunner().invoke(app, args)


def _refused(res, d, out, *words):
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error:"), res.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not (d / out).exists()
    assert "Traceback" not in res.output


def test_som_in_percent_needs_a_stated_conversion(cli_setup):
    d, rasters = cli_setup
    _refused(_aggregate(d, rasters, run="som_run", out="som.gpkg"), d, "som.gpkg", "SOM", "--conversion som_percent")
    _refused(_aggregate(d, rasters, "--conversion", "soc_percent", run="som_run", out="som.gpkg"), d, "som.gpkg",
             "converts SOC")
    _refused(_aggregate(d, rasters, "--depth-cm", "30", "--conversion", "som_percent", out="soc.gpkg"), d, "soc.gpkg",
             "drop --conversion")
    res = _aggregate(d, rasters, "--conversion", "som_percent", run="som_run", out="som.gpkg")
    assert res.exit_code == 0, res.output
    prov = dict(gpd.read_file(d / "som.gpkg", layer="provenance")[["key", "value"]].to_numpy())
    assert "0.58" in prov["conversion_to_soc_g_kg"]
    assert float(prov["conversion_factor"]) == pytest.approx(5.8)
    assert prov["layer"].startswith("0-10 cm")
    assert prov["layer_thickness_cm"] == "10.0"  # the run's own layer


def test_the_conversion_multiplies_every_draw(run_and_stack):
    run, rasters, zones = run_and_stack
    plain = aggregate_zones(run, rasters, zones, _field(), realisations=10, window=16, bulk_density=Property(1.3, 0.0))
    som = aggregate_zones(run, rasters, zones, _field(), realisations=10, window=16, bulk_density=Property(1.3, 0.0),
                          conversion=5.8)
    np.testing.assert_allclose(som.attrs["stock_t_c_draws"], 5.8 * plain.attrs["stock_t_c_draws"], rtol=1e-12)
    np.testing.assert_allclose(som["soc_g_kg_mean"], 5.8 * plain["soc_g_kg_mean"], rtol=1e-12)


def test_residuals_of_other_samples_or_another_crs_are_refused(cli_setup, run_and_stack):
    d, rasters = cli_setup
    run, _, _ = run_and_stack
    good = pd.read_csv(d / "predictions.csv")
    other = d / "other"
    other.mkdir(exist_ok=True)
    good.assign(y_true=good["y_true"] * 1.1).to_csv(other / "predictions.csv", index=False)  # another target
    res = _aggregate(d, rasters, "--depth-cm", "30", "--residuals", other / "predictions.csv", out="o.gpkg")
    _refused(res, d, "o.gpkg", "not the out-of-fold residuals of this run's samples", "sptgnn evaluate")
    good.assign(x=good["x"] + 5000.0).to_csv(other / "predictions.csv", index=False)  # the same samples, another plane
    res = _aggregate(d, rasters, "--depth-cm", "30", "--residuals", other / "predictions.csv", out="o.gpkg")
    _refused(res, d, "o.gpkg", "another CRS")


def test_a_change_between_two_models_of_the_same_samples_is_refused(cli_setup):
    d, rasters = cli_setup
    res = _aggregate(d, rasters, "--depth-cm", "30", "--baseline-run", d / "run", out="c.gpkg")
    _refused(res, d, "c.gpkg", "not a change in the soil")
    res = _aggregate(d, rasters, "--depth-cm", "30", "--baseline-date", "2019-05-01", "--date", "2019-05-01",
                     out="c.gpkg")
    _refused(res, d, "c.gpkg", "not a change in the soil")


def test_no_depth_is_assumed(cli_setup):
    d, rasters = cli_setup
    _refused(_aggregate(d, rasters, out="n.gpkg"), d, "n.gpkg", "does not record the sampled layer", "--depth-cm")
    _refused(_aggregate(d, rasters, "--depth-cm", "0", out="n.gpkg"), d, "n.gpkg", "positive")
    _refused(_aggregate(d, rasters, "--depth-cm", "30", "--bulk-density", "nan", out="n.gpkg"), d, "n.gpkg",
             "--bulk-density")


def test_mean_raster_is_the_surface_whose_zone_means_the_table_gives(run_and_stack, tmp_path):
    import rasterio

    run, rasters, zones = run_and_stack
    out = aggregate_zones(run, rasters, zones, _field(0.05, 5000.0), realisations=12, window=16,
                          bulk_density=Property(1.3, 0.0), mean_raster=tmp_path / "mean.tif")
    with rasterio.open(tmp_path / "mean.tif") as src:
        soc, stock = src.read(1, masked=True), src.read(2, masked=True)
        assert src.descriptions == ("soc_g_kg_mean", "stock_t_ha_mean")
    west, east = soc[:, :12], soc[:, 12:]  # the zones split the 24 columns in two
    assert west.count() == 12 * H - 20
    assert east.count() == 12 * H  # nodata corner and nothing outside the zones
    np.testing.assert_allclose([west.mean(), east.mean()], out["soc_g_kg_mean"][:2], rtol=1e-5)
    np.testing.assert_allclose(stock.compressed(), soc.compressed() * 1.3 * 30 * 0.1, rtol=1e-5)


def test_zones_and_sizes_that_cannot_give_a_total_are_refused(cli_setup, run_and_stack):
    from shapely.geometry import Point, Polygon

    d, rasters = cli_setup
    _, _, zones = run_and_stack
    (d / "empty.gpkg").write_bytes(b"")
    _refused(_aggregate(d, rasters, "--depth-cm", "30", "--zones", d / "empty.gpkg", out="z.gpkg"), d, "z.gpkg",
             "cannot read the zones")
    zones.set_crs(None, allow_override=True).to_file(d / "nocrs.gpkg")
    _refused(_aggregate(d, rasters, "--depth-cm", "30", "--zones", d / "nocrs.gpkg", out="z.gpkg"), d, "z.gpkg",
             "have no CRS")
    x0, y0 = zones.total_bounds[0], zones.total_bounds[1]
    bowtie = Polygon([(x0, y0), (x0 + 100, y0 + 100), (x0 + 100, y0), (x0, y0 + 100)])  # self-intersecting
    gpd.GeoDataFrame({"name": ["bow", "pt"]}, geometry=[bowtie, Point(x0 + 5, y0 + 5)], crs=zones.crs).to_file(
        d / "odd.gpkg")
    _refused(_aggregate(d, rasters, "--depth-cm", "30", "--zones", d / "odd.gpkg", out="z.gpkg"), d, "z.gpkg",
             "invalid polygons", "--make-valid")
    res = _aggregate(d, rasters, "--depth-cm", "30", "--zones", d / "odd.gpkg", "--make-valid", out="z.gpkg")
    assert res.exit_code == 0, res.output
    assert "repaired 1 invalid zone" in res.stderr
    assert "have no area" in res.stderr
    _refused(_aggregate(d, rasters, "--depth-cm", "30", "--realisations", "1000000", "--window", "4096",
                        out="m.gpkg"), d, "m.gpkg", "GiB", "lower --realisations")


def test_an_implausible_bulk_density_is_warned_about(cli_setup):
    d, rasters = cli_setup
    res = _aggregate(d, rasters, "--depth-cm", "30", "--bulk-density", "1300", "--bulk-density-sd", "500", out="w.gpkg")
    assert res.exit_code == 0, res.output
    assert "not kg/m3" in res.stderr
    assert "cut off" in res.stderr
