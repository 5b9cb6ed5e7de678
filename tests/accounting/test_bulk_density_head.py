"""Bulk density from a multi-task head, drawn jointly with SOC: the same member in both, the residual correlation as
asked (checked by hand on the draws), zone stocks that follow the head's bulk density, and clear errors."""

from __future__ import annotations

from dataclasses import replace

import geopandas as gpd
import numpy as np
import pytest
from helpers import X0, Y0, soc_stack_and_points, stack_sections
from shapely.geometry import box

from sptgnn.accounting.aggregate import AggregateError, aggregate_zones
from sptgnn.accounting.realisations import joint_realisations, realisation_members
from sptgnn.accounting.residual_field import ResidualField
from sptgnn.accounting.stocks import Property

H, W, RES = 20, 16, 10.0


@pytest.fixture(scope="module")
def multitask(tmp_path_factory, config_factory):
    from sptgnn.data.tables import load_samples
    from sptgnn.estimator.run import fit_run

    d = tmp_path_factory.mktemp("bd_head")
    table = soc_stack_and_points(d, H, W, RES, corner=(2, 2), n=40, seed=5, first_row=2)
    cfg = config_factory(**stack_sections(d, table, targets=["soc_g_kg", "bd_g_cm3"]), train={"members": 3, "epochs": 4})
    samples = load_samples(cfg.data.model_copy(update={"targets": None}))  # SOC alone: bulk density added below
    frame = samples.frame.copy()
    frame["bd_g_cm3"] = 1.1 + 0.01 * (frame["elev"] - 50) + np.random.default_rng(0).normal(0, 0.02, len(frame))
    samples = replace(samples, frame=frame, targets=["soc_g_kg", "bd_g_cm3"])
    return fit_run(cfg, samples, aoa=False), d


def _field():
    rng = np.random.default_rng(0)
    return ResidualField(rng.uniform(-1e5, -9e4, (20, 2)), rng.normal(size=20), 0.2, 500.0)


def test_joint_draws_share_the_member_and_the_correlation(multitask):
    run, _ = multitask
    pred, aux = run.predict(run.labelled), run.predict(run.labelled, target="bd_g_cm3")
    xy = run.labelled.metric_coords()
    seeds = np.arange(60)
    soc, bd = joint_realisations(pred, aux, xy, _field(), seeds, 0, correlation=1.0, scale=1.0)
    m = realisation_members(len(pred.member_loc), seeds)
    z_soc = (np.log1p(soc) if pred.log1p else soc) - np.asarray(pred.member_loc)[m]
    z_soc /= np.asarray(pred.member_scale)[m]
    z_bd = (bd - np.asarray(aux.member_loc)[m]) / np.asarray(aux.member_scale)[m]
    np.testing.assert_allclose(z_bd, z_soc, atol=1e-8)  # ρ = 1: the same standardised residual, the same member
    _, bd0 = joint_realisations(pred, aux, xy, _field(), seeds, 0, correlation=0.0, scale=1000.0)
    z0 = (bd0 / 1000.0 - np.asarray(aux.member_loc)[m]) / np.asarray(aux.member_scale)[m]
    assert abs(np.corrcoef(z0.ravel(), z_soc.ravel())[0, 1]) < 0.1
    assert z0.std() == pytest.approx(1.0, abs=0.1)


def test_zone_stocks_follow_the_heads_bulk_density(multitask):
    run, d = multitask
    zones = gpd.GeoDataFrame({"name": ["all"]}, crs="EPSG:32633", geometry=[box(X0, Y0 - H * RES, X0 + W * RES, Y0)])
    head = aggregate_zones(run, [d / "stack.tif"], zones, _field(), realisations=40, window=16,
                           bulk_density_target=("bd_g_cm3", 0.0, 1.0))
    const = aggregate_zones(run, [d / "stack.tif"], zones, _field(), realisations=40, window=16,
                            bulk_density=Property(2.0, 0.0))
    np.testing.assert_allclose(head["soc_g_kg_mean"], const["soc_g_kg_mean"])  # the same SOC realisations
    implied_bd = head["stock_t_ha_mean"] / (head["soc_g_kg_mean"] * 30 * 0.1)
    assert 0.9 < float(implied_bd.iloc[0]) < 1.4  # the head's ~1.1 g/cm3, not the constant 2.0
    with pytest.raises(AggregateError, match="was not trained"):
        aggregate_zones(run, [d / "stack.tif"], zones, _field(), bulk_density_target=("clay", 0.0, 1.0))
    with pytest.raises(AggregateError, match="is the primary target"):
        aggregate_zones(run, [d / "stack.tif"], zones, _field(), bulk_density_target=("soc_g_kg", 0.0, 1.0))
    with pytest.raises(AggregateError, match=r"\[-1, 1\]"):
        aggregate_zones(run, [d / "stack.tif"], zones, _field(), bulk_density_target=("bd_g_cm3", 1.5, 1.0))
