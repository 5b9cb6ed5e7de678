"""Zone aggregation: pixel counts and areas by hand, stocks consistent with SOC draw by draw, realisation intervals
wider than the naive independent-pixel interval, the spherical pixel area, and clear errors."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from helpers import X0, Y0, soc_stack_and_points, stack_sections, write_tif
from shapely.geometry import box

from sptgnn.accounting.aggregate import (AggregateError, aggregate_zones, pixel_area_ha,
                                         residual_field_from_evaluation)
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


def test_counts_areas_and_stocks(run_and_stack):
    run, rasters, zones = run_and_stack
    out = aggregate_zones(run, rasters, zones, _field(), realisations=40, thickness_cm=30.0,
                          bulk_density=Property(1.3, 0.0), window=16)
    assert list(out["name"]) == ["west", "east"]
    assert list(out["n_pixels"]) == [12 * H - 20, 12 * H]
    np.testing.assert_allclose(out["area_ha"], out["n_pixels"] * 0.01)  # 10 m × 10 m = 0.01 ha
    # bulk density known exactly: every draw's stock is SOC × 1.3 × 30 × 0.1, so the means agree to rounding
    np.testing.assert_allclose(out["stock_t_ha_mean"], out["soc_g_kg_mean"] * 1.3 * 30 * 0.1, rtol=1e-9)
    np.testing.assert_allclose(out["stock_t_c_mean"], out["stock_t_ha_mean"] * out["area_ha"], rtol=1e-9)
    np.testing.assert_allclose(out["stock_t_co2e_q50"], out["stock_t_c_q50"] * 44 / 12, rtol=1e-9)
    assert (out["soc_g_kg_q05"] < out["soc_g_kg_q50"]).all() and (out["soc_g_kg_q50"] < out["soc_g_kg_q95"]).all()


def test_correlated_realisations_widen_the_interval_of_a_zone_mean(run_and_stack):
    run, rasters, zones = run_and_stack
    out = aggregate_zones(run, rasters, zones, _field(0.05, 5000.0), realisations=60, window=16, seed=1)
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
    pd.DataFrame({"model": "sptgnn", "x": lab[:, 0], "y": lab[:, 1], "pit": rng.uniform(size=len(lab))}).to_csv(
        tmp_path / "predictions.csv", index=False)
    args = ["aggregate", str(tmp_path / "run"), "--raster", str(rasters[0]), "--zones", str(tmp_path / "zones.gpkg"),
            "--residuals", str(tmp_path), "--realisations", "20", "--window", "16"]
    res = CliRunner().invoke(app, args + ["--out", str(tmp_path / "totals.gpkg")])
    assert res.exit_code == 0, res.output
    totals = gpd.read_file(tmp_path / "totals.gpkg")
    assert list(totals["name"]) == ["west", "east"] and (totals["stock_t_c_q95"] > totals["stock_t_c_q05"]).all()
    res = CliRunner().invoke(app, args + ["--out", str(tmp_path / "totals.gpkg")])
    assert res.exit_code == 2 and "already exists" in res.output
    res = CliRunner().invoke(app, args + ["--out", str(tmp_path / "t2.gpkg"), "--coarse", "15"])
    assert res.exit_code == 2 and "volume share" in res.output and not (tmp_path / "t2.gpkg").exists()


def test_change_shares_realisations_so_common_errors_cancel(run_and_stack, config_factory):
    from sptgnn.estimator.run import fit_run

    run, rasters, zones = run_and_stack
    same = aggregate_zones(run, rasters, zones, _field(0.05, 5000.0), realisations=30, window=16, baseline=(run, None))
    np.testing.assert_array_equal(same["soc_change_g_kg_mean"], 0.0)  # the same state twice: no change in any draw
    assert (same["stock_change_t_c_sd"] == 0).all() and (same["stock_change_t_c_sd_independent"] > 0).all()
    other = fit_run(run.config.updated(train={"seed": 7}), run.labelled, aoa=False)  # a second survey's model
    change = aggregate_zones(other, rasters, zones, _field(0.05, 5000.0), realisations=30, window=16,
                             baseline=(run, None))
    assert (change["soc_change_g_kg_sd"] > 0).all()
    assert (change["soc_change_g_kg_sd"] < 0.5 * change["soc_change_g_kg_sd_independent"]).all()
    np.testing.assert_allclose(change["soc_change_g_kg_mean"],
                               change["soc_g_kg_mean"] - same["soc_g_kg_mean"], rtol=1e-9, atol=1e-9)


def test_a_bulk_density_raster_replaces_the_constant_pixel_by_pixel(run_and_stack, tmp_path):
    run, rasters, zones = run_and_stack
    bd = np.full((H, W), 1.1, dtype="float32")
    bd[:, :3] = -9999.0  # no bulk density in the three westernmost columns: those pixels are left out
    write_tif(tmp_path / "bd.tif", bd, RES, nodata=-9999.0)
    out = aggregate_zones(run, rasters, zones, _field(), realisations=20, bulk_density=Property(9.9, 0.0), window=16,
                          bulk_density_raster=tmp_path / "bd.tif")
    assert list(out["n_pixels"]) == [12 * H - 20 - 3 * (H - 4), 12 * H]  # the nodata corner lies in those columns
    np.testing.assert_allclose(out["stock_t_ha_mean"], out["soc_g_kg_mean"] * 1.1 * 30 * 0.1, rtol=1e-6)
    write_tif(tmp_path / "off.tif", bd[:-2], RES, nodata=-9999.0)
    with pytest.raises(AggregateError, match="not on the covariate grid"):
        aggregate_zones(run, rasters, zones, _field(), realisations=5, window=16, bulk_density_raster=tmp_path / "off.tif")


def test_residual_field_from_a_fitted_calibration_part(run_and_stack):
    from sptgnn.accounting.aggregate import residual_field_from_calibration
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
    assert len(field.z) == len(cal.calibration_ids) and np.isfinite(field.z).all()
