"""Stocks integrated by depth (issue 30): the standard layers of an interval, a stock integral by hand over three
layers, a residual field of profile layers that recovers its anisotropy and correlates a pixel's layers along depth,
and ``sptgnn aggregate --depths`` end to end on a run of profile layers, with its refusals."""

from __future__ import annotations

from dataclasses import replace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from helpers import X0, Y0, soc_stack_and_points
from shapely.geometry import box

from sptgnn.accounting.aggregate import AggregateError, aggregate_zones
from sptgnn.accounting.realisations import profile_realisations
from sptgnn.accounting.residual_field import ResidualField
from sptgnn.accounting.stocks import Property, profile_stock_t_ha, standard_layers

H, W, RES = 24, 20, 10.0
LAYERS = ((0.0, 10.0), (10.0, 30.0), (30.0, 60.0))


def test_standard_layers_cut_the_globalsoilmap_intervals_at_the_ends():
    assert standard_layers(0, 30) == [(0, 5), (5, 15), (15, 30)]
    assert standard_layers(0, 20) == [(0, 5), (5, 15), (15, 20)]
    assert standard_layers(10, 100) == [(10, 15), (15, 30), (30, 60), (60, 100)]
    assert standard_layers(150, 250) == [(150, 200), (200, 250)]
    with pytest.raises(ValueError, match="deeper bottom"):
        standard_layers(30, 30)


def test_a_stock_integral_by_hand_over_three_layers():
    # 0-5 cm: 20 g/kg x 1.2 g/cm3 x 5 cm x 0.1 = 12; 5-15: 12 x 1.35 x 10 x 0.9 x 0.1 = 14.58;
    # 15-30: 6 x 1.5 x 15 x 0.8 x 0.1 = 10.8 t C/ha
    stock = profile_stock_t_ha([20.0, 12.0, 6.0], [1.2, 1.35, 1.5], standard_layers(0, 30), [0.0, 0.1, 0.2])
    assert stock == pytest.approx(12.0 + 14.58 + 10.8)
    draws = profile_stock_t_ha(np.full((3, 4, 2), 10.0), 1.0, standard_layers(0, 30))  # (L, R, n) -> (R, n)
    np.testing.assert_allclose(draws, np.full((4, 2), 10.0 * 30 * 0.1))
    with pytest.raises(ValueError, match="2 layers of SOC for 3"):
        profile_stock_t_ha([1.0, 2.0], 1.0, standard_layers(0, 30))


def _layered_field(seed=0, sites=300, len_xy=15_000.0, len_z=40.0, nugget=0.2, site_var=0.0):
    """Residuals of 5 layers at each of ``sites`` profiles: a 3D exponential field (variance ``1 − nugget − site_var``,
    geometric anisotropy), a site part (variance ``site_var``, exponential along depth, independent between sites)
    and white noise (``nugget``)."""
    import gstools as gs

    rng = np.random.default_rng(seed)
    mids = np.array([5.0, 20.0, 45.0, 80.0, 125.0])
    xy = np.repeat(rng.uniform(0, 100_000, (sites, 2)), len(mids), 0)
    depth, site = np.tile(mids, sites), np.repeat(np.arange(sites), len(mids))
    srf = gs.SRF(gs.Exponential(dim=3, var=1 - nugget - site_var, len_scale=len_xy), seed=seed + 3)
    z = srf(np.c_[xy, depth * len_xy / len_z].T) + np.sqrt(nugget) * rng.standard_normal(len(depth))
    chol = np.linalg.cholesky(site_var * np.exp(-np.abs(mids[:, None] - mids) / len_z) + 1e-12 * np.eye(len(mids)))
    z += (rng.standard_normal((sites, len(mids))) @ chol.T).ravel()
    return xy, z, depth, site


def test_a_residual_field_of_profile_layers_recovers_its_anisotropy():
    xy, z, depth, site = _layered_field()
    field = ResidualField.fit(xy, z, depth_cm=depth, sites=site)
    # ranges of an exponential model are poorly determined on one 100 km square; their ratio (metres of horizontal
    # distance per cm of depth) is what the realisations use, and it is recovered: simulated 15,000 / 40 = 375
    assert field.vertical_scale == pytest.approx(375.0, rel=0.35)
    assert 0.05 < field.nugget < 0.45
    assert field.site_var < 0.1  # no site part simulated
    planar = ResidualField.fit(xy, z)
    assert planar.vertical_range_cm is None
    with pytest.raises(ValueError, match="in the plane"):
        planar.realisations(xy[:2], np.arange(3), depth_cm=np.ones(2))
    with pytest.raises(ValueError, match="mid depths"):
        field.realisations(xy[:2], np.arange(3))
    with pytest.raises(ValueError, match="both"):
        ResidualField.fit(xy, z, depth_cm=depth)


def test_the_site_part_of_the_nugget_is_told_from_white_noise():
    """A site effect shared by a profile's layers looks like nugget between sites; the pairs within profiles reveal it
    (simulated: 0.4 of the variance a site part, 0.1 white)."""
    xy, z, depth, site = _layered_field(seed=1, nugget=0.1, site_var=0.4)
    field = ResidualField.fit(xy, z, depth_cm=depth, sites=site)
    assert field.nugget == pytest.approx(0.5, abs=0.15)
    assert field.site_var == pytest.approx(0.4, abs=0.15)


class _Pred:
    """The member moments of a Prediction (log1p False): every member ``loc``, scale 1."""

    def __init__(self, n, loc=0.0):
        self.member_loc, self.member_scale, self.log1p = np.full((3, n), loc), np.ones((3, n)), False


@pytest.mark.parametrize("site_var", [0.0, 0.5])
def test_the_layers_of_a_pixel_are_correlated_along_depth_as_the_field_says(site_var):
    rng = np.random.default_rng(0)  # conditioning residuals far away: the draws follow the model alone
    field = ResidualField(rng.uniform(-1e6, -9e5, (20, 2)), rng.normal(size=20), 0.6, 15_000.0,
                          np.full(20, 10.0), 40.0, site_var, np.arange(20).astype(str))
    far = np.c_[np.arange(50) * 1e6 + 1e7, np.full(50, 1e7)]  # 50 pixels 1,000 km apart: independent profiles
    layers = [(0.0, 5.0), (5.0, 15.0), (15.0, 30.0), (100.0, 200.0)]
    preds = [{"soc": _Pred(50), "bd": _Pred(50, 1.3)} for _ in layers]
    draws = profile_realisations(preds, "soc", far, layers, field, np.arange(100), 0, {"bd": (1.0, 1.0)})
    corr = np.corrcoef(draws["soc"].reshape(4, -1))  # (L, R x n): 5,000 profiles
    mids = np.array([2.5, 10.0, 22.5, 150.0])
    # the structured part and the site part share the range along depth; white noise is not shared
    expected = (1 - field.nugget + site_var) * np.exp(-np.abs(mids[:, None] - mids) / field.vertical_range_cm)
    np.testing.assert_allclose(corr[np.triu_indices(4, 1)], expected[np.triu_indices(4, 1)], atol=0.08)
    # a residual correlation of 1 makes the bulk-density draws the SOC draws shifted by their mean (same member, z)
    np.testing.assert_allclose(draws["bd"] - 1.3, draws["soc"], atol=1e-12)


@pytest.fixture(scope="module")
def profile_run(tmp_path_factory, config_factory):
    from sptgnn.data.tables import load_samples
    from sptgnn.estimator.run import fit_run

    d = tmp_path_factory.mktemp("profile_stocks")
    table = soc_stack_and_points(d, H, W, RES, corner=(3, 3), n=30, seed=4, first_row=3)
    points = pd.read_csv(d / "pts.csv").drop_duplicates(["x", "y"])
    rng = np.random.default_rng(1)
    rows = [{"site": f"s{p.pid}", "x": p.x, "y": p.y, "top": top, "bottom": bottom,
             "soc_g_kg": p.soc_g_kg * np.exp(-top / 30.0) * rng.lognormal(0, 0.05)}
            for p in points.itertuples() for top, bottom in LAYERS]
    pd.DataFrame(rows).to_csv(d / "layers.csv", index=False)
    table = {**table, "path": str(d / "layers.csv"), "id": None, "site": "site", "top_cm": "top",
             "bottom_cm": "bottom", "environment": ["top", "bottom"]}
    cfg = config_factory(data={"target": "soc_g_kg", "table": table, "rasters": [{"path": str(d / "stack.tif")}]},
                         graph={"spectral_streams": ["environment"], "depth_scale_m": 2.0},
                         train={"members": 2, "epochs": 3})
    run = fit_run(cfg, load_samples(cfg.data))
    lab = run.labelled
    xy = lab.metric_coords()
    residuals = pd.DataFrame({"model": "sptgnn", "sample_id": lab.sample_ids, "y_true": lab.target(run.target),
                              "x": xy[:, 0], "y": xy[:, 1], "pit": rng.uniform(0.05, 0.95, len(lab))})
    zones = gpd.GeoDataFrame({"name": ["west", "east"]}, crs="EPSG:32633", geometry=[
        box(X0, Y0 - H * RES, X0 + 10 * RES, Y0), box(X0 + 10 * RES, Y0 - H * RES, X0 + W * RES, Y0)])
    return run, d, residuals, zones


def test_a_depth_interval_is_the_sum_of_its_standard_layers(profile_run):
    from sptgnn.accounting.residuals import fit_residual_field

    run, d, residuals, zones = profile_run
    field = fit_residual_field(residuals, "test", run)
    assert field.vertical_range_cm is not None
    out = aggregate_zones(run, [d / "stack.tif"], zones, field, realisations=20, bulk_density=Property(1.25, 0.0),
                          window=16, depths=(0, 30))
    # constant bulk density, no coarse fragments, equal pixel areas: the zone's mean stock is 0.1 x BD x 30 cm x the
    # thickness-weighted mean SOC of the interval
    np.testing.assert_allclose(out["stock_t_ha_mean"], 0.1 * 1.25 * 30 * out["soc_g_kg_mean"], rtol=1e-9)
    # the topsoil is richer than the subsoil: the 0-30 cm stock is above 30 cm of the 30-60 cm layer's SOC
    deep = aggregate_zones(run, [d / "stack.tif"], zones, field, realisations=20, bulk_density=Property(1.25, 0.0),
                           window=16, depths=(30, 60))
    assert (out["soc_g_kg_mean"] > deep["soc_g_kg_mean"]).all()
    with pytest.raises(AggregateError, match="residual field of profile layers"):
        aggregate_zones(run, [d / "stack.tif"], zones, ResidualField(field.xy, field.z, 0.2, 100.0),
                        realisations=10, window=16, depths=(0, 30))
    with pytest.raises(AggregateError, match="give the depth interval"):
        aggregate_zones(run, [d / "stack.tif"], zones, field, realisations=10, window=16,
                        coarse_target=("soc_g_kg", 0.0, 0.01))


def test_cli_states_the_interval_and_refuses_what_it_cannot_integrate(profile_run, tmp_path):
    from typer.testing import CliRunner

    from sptgnn.cli import app

    run, d, residuals, zones = profile_run
    run.save(tmp_path / "run")
    residuals.to_csv(tmp_path / "predictions.csv", index=False)
    zones.to_file(tmp_path / "zones.gpkg")
    base = ["aggregate", str(tmp_path / "run"), "--raster", str(d / "stack.tif"), "--zones",
            str(tmp_path / "zones.gpkg"), "--residuals", str(tmp_path), "--realisations", "10", "--window", "16"]
    res = CliRunner().invoke(app, base + ["--depths", "0-30", "--out", str(tmp_path / "t.gpkg")])
    assert res.exit_code == 0, res.output
    meta = gpd.read_file(tmp_path / "t.gpkg", layer="provenance").set_index("key")["value"]
    assert "0-30 cm, the sum over the standard layers 0-5, 5-15, 15-30 cm" in meta["layer"]
    assert "along depth" in meta["residual_field"]
    for extra, words in ((["--depths", "0-30", "--depth-cm", "30"], "not both"),
                         (["--depths", "30-0"], "below the top"), (["--depths", "top"], "TOP-BOTTOM"),
                         (["--depths", "0-30", "--coarse-target", "clay"], "was not trained")):
        res = CliRunner().invoke(app, base + extra + ["--out", str(tmp_path / "r.gpkg")])
        assert res.exit_code == 2, (extra, res.output)
        assert words in res.output
        assert not (tmp_path / "r.gpkg").exists()


def test_block_means_of_a_depth_interval_score_sites_against_their_splines(profile_run):
    from sptgnn.accounting.block_means import check_profile_block_means, site_interval_means
    from sptgnn.data.spline import EqualAreaSpline

    run, d, residuals, zones = profile_run
    samples = run.labelled
    sites, observed = site_interval_means(samples, run.target, (0, 30))
    f = samples.frame.assign(y=samples.target(run.target))
    one = f[f["site"] == sites[0]]
    spline = EqualAreaSpline.fit(one["top"], one["bottom"], one["y"])
    assert observed[0] == pytest.approx(spline.mean(0, 30))  # the thickness-weighted mean of the spline
    assert len(sites) == len(set(f["site"]))  # every site reaches 30 cm from the surface
    assert len(site_interval_means(samples, run.target, (0, 100))[0]) == 0  # none reaches 100 cm
    out = check_profile_block_means(run.config.updated(train={"members": 1, "epochs": 2}), samples, (0, 30), folds=2,
                                    block_samples=4, realisations=20, min_samples=2)
    rows = out["blocks"]
    assert out["blocks_scored"] == len(rows) > 0
    assert out["coverage_90_realisations"] == pytest.approx(np.mean([r["low"] <= r["observed"] <= r["high"]
                                                                      for r in rows]))
    assert sum(r["n"] for r in rows) <= out["sites"] == len(sites)  # blocks count sites, not layers
    assert all(r["vertical_range_cm"] > 0 and r["low"] < r["high"] for r in rows)
    single = replace(samples, site=None, depth=None)
    with pytest.raises(ValueError, match="profile layers"):
        site_interval_means(single, run.target, (0, 30))
