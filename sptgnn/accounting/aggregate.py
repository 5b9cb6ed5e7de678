"""Zone means and totals of SOC and its stock from spatially correlated realisations (``sptgnn aggregate``).

For every zone (field, stratum, project polygon) the realisations (:mod:`sptgnn.accounting.realisations`) of its pixels
are summed per realisation, window by window, so memory is bounded by ``window² × realisations``. Each realisation
gives the zone's mean SOC (g/kg), mean stock (t C/ha) and total stock (t C, t CO₂e; pixel areas in ha, on the sphere
for a lon/lat grid); the 5/50/95 % quantiles over realisations are the zone's interval. Beside it stands the naive
90 % interval of the zone mean from independent pixels (``mean ± 1.645 · sqrt(Σ sd²) / n``), which ignores the
correlation of prediction errors and is far too narrow (Goovaerts 2001).

A last row, ``zone_kind == "project"``, is the project total over every zone, summed realisation by realisation (so its
quantiles are those of the total, not sums of zone quantiles). Every stock gets its sd over realisations, its relative
uncertainty (half-width of the 90 % interval over the mean, as VM0042 v2.2 / VT0014 deduct it) and a conservative
value at a stated percentile of the realisations (default the 5th). The zone means are means over realisations
conditioned on the out-of-fold residuals at the samples, so they differ from the mean map of ``sptgnn predict`` where
the residuals near samples are not zero (the realisations honour the observations, the map does not).
"""

from __future__ import annotations

from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Callable, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd

from sptgnn.errors import UserError
from sptgnn.accounting.residual_field import ResidualField
from sptgnn.geo.pixels import read_pixels
from sptgnn.accounting.realisations import interval_mean, joint_realisations, profile_realisations, soc_realisations
from sptgnn.accounting.stocks import CO2_PER_C, Property, profile_stock_t_ha, standard_layers, stock_draws

EARTH_RADIUS_M = 6_371_008.8
Z90 = 1.6448536269514722


class AggregateError(UserError):
    """Inputs that cannot be aggregated; the message says what to change."""


def pixel_area_ha(transform, crs, rows: np.ndarray) -> np.ndarray:
    """Area (ha) of pixels of grid rows ``rows``: ``|a·e|`` for a metric CRS, the spherical cell area for lon/lat."""
    if crs is not None and crs.is_geographic:
        lat_top = transform.f + transform.e * rows
        lat_bottom = lat_top + transform.e
        band = np.abs(np.sin(np.radians(lat_top)) - np.sin(np.radians(lat_bottom)))
        return EARTH_RADIUS_M**2 * np.radians(abs(transform.a)) * band / 1e4
    return np.full(len(rows), abs(transform.a * transform.e) / 1e4)


def _quantiles(prefix: str, draws: np.ndarray) -> dict:
    q05, q50, q95 = np.quantile(draws, [0.05, 0.5, 0.95], axis=0)
    return {f"{prefix}_mean": draws.mean(0), f"{prefix}_q05": q05, f"{prefix}_q50": q50, f"{prefix}_q95": q95}


def _stock_columns(prefix: str, draws: np.ndarray, percentile: float) -> dict:
    """Quantiles, sd, relative uncertainty (90 % half-width / |mean|) and the conservative value at ``percentile``."""
    cols = _quantiles(prefix, draws)
    with np.errstate(invalid="ignore", divide="ignore"):
        cols[f"{prefix}_sd"] = draws.std(0, ddof=1)
        cols[f"{prefix}_rel_uncertainty"] = (cols[f"{prefix}_q95"] - cols[f"{prefix}_q05"]) / 2 / np.abs(
            cols[f"{prefix}_mean"])
    cols[f"{prefix}_conservative"] = np.percentile(draws, percentile, axis=0)
    return cols


def aggregate_zones(run, rasters: Sequence[str | Path], zones, field: ResidualField, realisations: int = 100,
                    thickness_cm: float = 30.0, bulk_density: Property = Property(1.3, 0.1),
                    coarse: Property | None = None, window: int = 256, seed: int = 0, dates=None,
                    baseline: tuple | None = None, progress: Callable[[int, int], None] | None = None,
                    bulk_density_raster: str | Path | None = None, bulk_density_target: tuple | None = None,
                    conversion: float = 1.0, conservative_percentile: float = 5.0,
                    mean_raster: str | Path | None = None, depths: tuple[float, float] | None = None,
                    coarse_target: tuple | None = None):
    """Zone means and totals of SOC (g/kg) and stock (t C/ha, t C, t CO₂e) with 5/50/95 % quantiles.

    Args:
        run: The :class:`~sptgnn.estimator.run.Run` (primary target SOC in g/kg).
        rasters: Its covariate rasters (as for ``sptgnn predict``).
        zones: GeoDataFrame of zone polygons (any CRS; its columns are kept).
        field: The residual field (:func:`~sptgnn.accounting.residuals.residual_field_from_evaluation`).
        realisations: Number of realisations ``R``.
        thickness_cm: Layer thickness, cm; a run trained on profile layers (``data.table.site``, depths) predicts the
            layer from the surface to ``thickness_cm`` itself.
        bulk_density, coarse: :class:`~sptgnn.accounting.stocks.Property` of bulk density (g/cm³) and coarse
            fragments (0–1).
        window: Window size in pixels (memory ``O(window² · R)``).
        seed: Seed of the realisations.
        dates: Sampling date of the map for the time stream (``None``: the training mean year).
        baseline: ``(run, dates)`` of the earlier state for the **change** since then: the same realisations (members,
            residual field, bulk density and coarse draws) at both states, so errors common to both cancel and the
            variance of a zone's mean change is ``Var(t₁) + Var(t₀) − 2 Cov(t₀, t₁)``, not the sum of two
            independent variances (Verra VT0014's requirement for the mean change in stock). Adds
            ``soc_change_g_kg_*`` and ``stock_change_t_c_*`` (mean, q05, q50, q95, ``sd``) and their ``sd_independent``
            (what independent realisations of the two states would give).
        progress: Called with ``(windows done, windows total)``.
        bulk_density_raster: A GeoTIFF of bulk density (g/cm³, band 1) on the covariate grid: its values replace
            ``bulk_density.value`` pixel by pixel (``bulk_density.sd`` stays the sd); its nodata pixels are left out.
        bulk_density_target: ``(target, correlation, scale)``: bulk density from the run's multi-task head for
            ``target`` (an entry of ``data.targets``), times ``scale`` to g/cm³ (0.001 for kg/m³), drawn jointly with
            SOC (:func:`~sptgnn.accounting.realisations.joint_realisations`: the same member, residual correlation
            ``correlation``); replaces ``bulk_density`` and the raster. A change shares these draws at both dates.
        conversion: Factor from the run's target to SOC in g/kg (:func:`~sptgnn.accounting.provenance.soc_conversion`;
            1 for SOC in g/kg), applied to every draw.
        conservative_percentile: Percentile of the realisations reported as the conservative stock (and change).
        mean_raster: A GeoTIFF to write on the covariate grid: the mean over realisations of SOC (g/kg, band 1) and of
            the stock (t C/ha, band 2) at every zone pixel, the conditioned surface whose zone means the table gives
            (nodata outside the zones).
        depths: ``(top_cm, bottom_cm)``: the stock of this interval integrated over its standard layers
            (:func:`~sptgnn.accounting.stocks.standard_layers`; 0–30 cm: 0–5, 5–15, 15–30), each predicted by a run
            of profile layers with its own bulk density and coarse fragments
            (:func:`~sptgnn.accounting.stocks.profile_stock_t_ha`), from realisations correlated along depth as well
            as in space (:func:`~sptgnn.accounting.realisations.profile_realisations`; ``field`` fitted with depths).
            SOC columns are then thickness-weighted means over the interval. Replaces ``thickness_cm``.
        coarse_target: With ``depths``: ``(target, correlation, scale)`` as ``bulk_density_target``, for the coarse
            fragments (``scale`` to a volume share: 0.01 for %); draws are clipped to [0, 1]; replaces ``coarse``.

    Returns:
        GeoDataFrame: the zones and a last project row (column ``zone_kind``: ``zone`` or ``project``; the project's
        geometry is the union of the zones) with ``n_pixels``, ``area_ha``, ``soc_g_kg_{mean,q05,q50,q95}``, ``stock_t_ha_{...}``,
        ``stock_t_c_{..., sd, rel_uncertainty, conservative}``, ``stock_t_co2e_{...}`` and
        ``soc_g_kg_naive_q05``/``_q95``; with a baseline also ``stock_change_t_co2e_{...}``. ``attrs["stock_t_c_draws"]``
        holds the total stock of each realisation ``(R, Z + 1)``, the project's last.

    Raises:
        AggregateError: No zone overlaps a valid pixel, a bulk-density raster off the covariate grid, a
            ``bulk_density_target`` or ``coarse_target`` the run does not predict, ``depths`` for a run of one layer
            or with a residual field fitted without depths, or a ``coarse_target`` without ``depths``.
    """
    import rasterio
    from rasterio.features import rasterize
    from rasterio.windows import transform as window_transform

    from sptgnn.geo.context import open_covariates
    from sptgnn.geo import transform_xy
    from sptgnn.geo.sources import match_sources
    from sptgnn.predict.raster import raster_sources
    from sptgnn.splits import planar_crs

    if coarse_target is not None and depths is None:
        raise AggregateError("coarse fragments from a head are integrated by depth: give the depth interval too")
    for what, head in (("bulk density", bulk_density_target), ("coarse fragments", coarse_target)):
        if head is None:
            continue
        if not -1 <= head[1] <= 1:
            raise AggregateError(f"the correlation of SOC and {what} residuals must lie in [-1, 1], got {head[1]}")
        if head[0] == run.target:
            raise AggregateError(f"'{head[0]}' is the primary target (SOC); name the {what} target")
        if head[0] not in run.targets:
            raise AggregateError(f"target '{head[0]}' was not trained; the run's targets: {run.targets}; "
                                 "train the run with data.targets including it, or give a constant or raster")
    layers = None
    if depths is not None:
        if run.depth is None or (baseline is not None and baseline[0].depth is None):
            raise AggregateError(f"stocks of {depths[0]:g}-{depths[1]:g} cm integrated by depth need a run of profile "
                                 "layers (data.table.site and top_cm/bottom_cm); this run predicts one sampled layer: "
                                 "give its thickness instead")
        if field.vertical_range_cm is None:
            raise AggregateError("stocks integrated by depth need a residual field of profile layers (fitted with the "
                                 "layers' depths and sites) for realisations correlated along depth")
        try:
            layers = standard_layers(*depths)
        except ValueError as exc:
            raise AggregateError(str(exc)) from None
    elif field.vertical_range_cm is not None:
        raise AggregateError("the residual field is of profile layers (fitted with depths): give the depth interval "
                             "it is drawn over (depths), or fit the field without depths for one layer")

    def stock_layer(r):  # a run of profile layers predicts the stock's layer (0 to thickness_cm), one of a layer its own
        return (0.0, float(thickness_cm)) if r.depth is not None else None

    layer = stock_layer(run)
    layer0 = None if baseline is None else stock_layer(baseline[0])
    seeds = seed * 1_000_003 + np.arange(realisations)
    sources = match_sources([str(p) for p in rasters], raster_sources(run))
    with ExitStack() as files:
        stack = files.enter_context(open_covariates(sources, run.config.data.context))
        bd_src = files.enter_context(rasterio.open(bulk_density_raster) if bulk_density_raster else nullcontext())
        stack.check_features(run.needed)
        surface = None if mean_raster is None else files.enter_context(rasterio.open(
            mean_raster, "w", driver="GTiff", width=stack.shape[1], height=stack.shape[0], count=2, dtype="float32",
            crs=stack.crs, transform=stack.transform, nodata=-9999.0, tiled=True, compress="deflate"))
        if bd_src is not None and (bd_src.shape != stack.shape or bd_src.transform != stack.transform
                                   or bd_src.crs != stack.crs):
            raise AggregateError(f"the bulk-density raster {bulk_density_raster} is not on the covariate grid "
                                 f"{stack.shape} px, {stack.crs}; resample it to that grid first (e.g. gdalwarp)")
        zones = zones.to_crs(stack.crs).reset_index(drop=True)
        Z = len(zones)
        soc_sum, stock_sum, area_sum = np.zeros((realisations, Z)), np.zeros((realisations, Z)), np.zeros(Z)
        n_px, mean_sum, var_sum = np.zeros(Z), np.zeros(Z), np.zeros(Z)
        soc0_sum, stock0_sum = np.zeros((realisations, Z)), np.zeros((realisations, Z))
        pcrs = planar_crs(run.labelled)
        shapes = [(g, i + 1) for i, g in enumerate(zones.geometry)]
        total = stack.num_windows(window)
        rng = np.random.default_rng([seed, 3])
        if progress is not None:
            progress(0, total)  # shown from the start: a window of many pixels takes a while
        for k, win in enumerate(stack.windows(window)):
            zone = rasterize(shapes, out_shape=(int(win.height), int(win.width)),
                             transform=window_transform(win, stack.transform), fill=0, dtype="int32")
            block = None if surface is None else np.full((2, int(win.height), int(win.width)), -9999.0, "float32")
            if zone.any():
                inside = zone > 0
                if bd_src is not None:
                    bd_values = bd_src.read(1, window=win, masked=True)
                    inside &= ~np.ma.getmaskarray(bd_values)
                pixels = read_pixels(stack, win, run.needed, inside, k)
                valid = pixels.valid
                if valid.any():
                    xy = transform_xy(pixels.xy, stack.crs, run.labelled.crs)
                    xy_planar = xy if pcrs is None else transform_xy(xy, run.labelled.crs, pcrs)
                    vals = pixels.columns()
                    area = pixel_area_ha(stack.transform, stack.crs, np.nonzero(valid)[0] + win.row_off)
                    idx = zone[valid] - 1
                    bd_fixed = bulk_density if bd_src is None else Property(
                        np.ma.getdata(bd_values)[valid].astype(float), bulk_density.sd, bulk_density.low,
                        bulk_density.high)
                    if layers is None:
                        soc, stock, pmean, pvar, shared = layer_draws(
                            run, vals, xy, dates, layer, xy_planar, field, seeds, k, conversion, thickness_cm,
                            bd_fixed, coarse, bulk_density_target, rng)
                    else:  # a depth interval: the sum over its standard layers
                        soc, stock, pmean, pvar, shared = profile_draws(
                            run, vals, xy, dates, xy_planar, field, seeds, k, layers, conversion, bd_fixed, coarse,
                            bulk_density_target, coarse_target, rng)
                    if baseline is not None:  # the same members, residual field, bulk density and coarse draws
                        run0, dates0 = baseline
                        soc0, stock0 = (layer_draws(run0, vals, xy, dates0, layer0, xy_planar, field, seeds, k,
                                                    conversion, thickness_cm, shared=shared) if layers is None
                                        else profile_draws(run0, vals, xy, dates0, xy_planar, field, seeds, k, layers,
                                                           conversion, shared=shared))[:2]
                        for r in range(realisations):
                            soc0_sum[r] += np.bincount(idx, soc0[r], Z)
                            stock0_sum[r] += np.bincount(idx, stock0[r] * area, Z)
                    if block is not None:
                        block[0][valid], block[1][valid] = soc.mean(0), stock.mean(0)
                    for r in range(realisations):
                        soc_sum[r] += np.bincount(idx, soc[r], Z)
                        stock_sum[r] += np.bincount(idx, stock[r] * area, Z)
                    area_sum += np.bincount(idx, area, Z)
                    n_px += np.bincount(idx, minlength=Z)
                    mean_sum += np.bincount(idx, pmean, Z)
                    var_sum += np.bincount(idx, pvar, Z)
            if block is not None:
                surface.write(block, window=win)
            if progress is not None:
                progress(k + 1, total)
        if surface is not None:
            surface.descriptions = ("soc_g_kg_mean", "stock_t_ha_mean")
            surface.update_tags(source="sptgnn aggregate", note="means over realisations conditioned on the out-of-fold "
                                "residuals at the samples; the zone means of the table are means of this surface")
    if not n_px.any():
        raise AggregateError("no zone overlaps a pixel that is valid in every needed covariate; check the zones' "
                             "CRS and extent against the rasters")
    # the project: every zone's pixels, summed realisation by realisation
    soc_sum, stock_sum, soc0_sum, stock0_sum = (np.c_[a, a.sum(1)] for a in (soc_sum, stock_sum, soc0_sum, stock0_sum))
    n_px, area_sum, mean_sum, var_sum = (np.r_[a, a.sum()] for a in (n_px, area_sum, mean_sum, var_sum))
    p = conservative_percentile
    with np.errstate(invalid="ignore", divide="ignore"):
        soc_mean, stock_t_c = soc_sum / n_px, stock_sum
        naive_mean, naive_sd = mean_sum / n_px, np.sqrt(var_sum) / n_px
        cols = {"n_pixels": n_px.astype(int), "area_ha": area_sum,
                **_quantiles("soc_g_kg", soc_mean), **_stock_columns("stock_t_ha", stock_t_c / area_sum, p),
                **_stock_columns("stock_t_c", stock_t_c, p), **_stock_columns("stock_t_co2e", stock_t_c * CO2_PER_C, p),
                "soc_g_kg_naive_q05": naive_mean - Z90 * naive_sd, "soc_g_kg_naive_q95": naive_mean + Z90 * naive_sd}
        if baseline is not None:
            soc0_mean = soc0_sum / n_px
            for name, now, then in (("soc_change_g_kg", soc_mean, soc0_mean), ("stock_change_t_c", stock_t_c, stock0_sum),
                                    ("stock_change_t_co2e", stock_t_c * CO2_PER_C, stock0_sum * CO2_PER_C)):
                cols |= _quantiles(name, now - then)
                cols[f"{name}_sd"] = (now - then).std(0, ddof=1)
                cols[f"{name}_sd_independent"] = np.sqrt(now.var(0, ddof=1) + then.var(0, ddof=1))
                if name != "soc_change_g_kg":
                    cols[f"{name}_conservative"] = np.percentile(now - then, p, axis=0)
    geom = zones.geometry.name
    project = gpd.GeoDataFrame({geom: [zones.geometry.union_all()]}, geometry=geom, crs=zones.crs)
    out = pd.concat([zones.assign(zone_kind="zone"), project.assign(zone_kind="project")], ignore_index=True)
    out = gpd.GeoDataFrame(out, geometry=geom, crs=zones.crs)
    for name, v in cols.items():
        out[name] = v
    out.attrs["stock_t_c_draws"] = stock_t_c
    return out


def layer_draws(run, vals, xy, dates, layer, xy_planar, field, seeds, window_seed, conversion, thickness_cm,
                bulk_density=None, coarse=None, bulk_density_target=None, rng=None, shared=None):
    """Draws of one layer at ``n`` pixels: SOC (g/kg) and stock (t C/ha), each ``(R, n)``, the predicted SOC mean and
    variance per pixel (the naive interval's), and the bulk-density and coarse draws ``shared`` with a change's
    earlier state (given as ``shared`` they are used instead of new draws)."""
    if bulk_density_target is None:
        pred = run.predict_distributions(vals, xy, dates, depth=layer)[run.target]
        soc, bd = soc_realisations(pred, xy_planar, field, seeds, window_seed=window_seed), None
    else:  # SOC and bulk density drawn jointly from the run's multi-task heads
        name, rho, scale = bulk_density_target
        preds = run.predict_distributions(vals, xy, dates, [run.target, name], depth=layer)
        pred = preds[run.target]
        soc, bd = joint_realisations(pred, preds[name], xy_planar, field, seeds, window_seed, rho, scale)
        bd = np.maximum(bd, 0.0)
    soc = soc * conversion
    if shared is None:
        bd = bulk_density.draws(soc.shape, rng) if bd is None else bd
        shared = (bd, None if coarse is None else coarse.draws(soc.shape, rng))
    stock = stock_draws(soc, shared[0], thickness_cm, shared[1])  # t C/ha, (R, n)
    return soc, stock, conversion * pred.mean, (conversion * pred.sd) ** 2, shared


def profile_draws(run, vals, xy, dates, xy_planar, field, seeds, window_seed, layers, conversion, bulk_density=None,
                  coarse=None, bulk_density_target=None, coarse_target=None, rng=None, shared=None):
    """Draws of a depth interval at ``n`` pixels from its standard ``layers``: the thickness-weighted mean SOC
    (g/kg) and the stock summed over the layers (t C/ha), each ``(R, n)``, from realisations correlated along depth
    (:func:`~sptgnn.accounting.realisations.profile_realisations`); the naive mean and variance of the interval's mean
    SOC per pixel (layers and pixels independent); the bulk-density and coarse draws ``(L, R, n)`` ``shared`` with a
    change's earlier state (as for :func:`layer_draws`). Heads' bulk density is clipped at 0, coarse shares to [0, 1]."""
    heads = {} if shared is not None else {
        t[0]: (t[1], t[2]) for t in (bulk_density_target, coarse_target) if t is not None}
    preds = [run.predict_distributions(vals, xy, dates, [run.target, *heads], depth=lay) for lay in layers]
    draws = profile_realisations(preds, run.target, xy_planar, layers, field, seeds, window_seed, heads)
    soc = draws[run.target] * conversion  # (L, R, n)
    if shared is None:
        bd = (np.maximum(draws[bulk_density_target[0]], 0.0) if bulk_density_target is not None
              else bulk_density.draws(soc.shape, rng))
        cf = (np.clip(draws[coarse_target[0]], 0.0, 1.0) if coarse_target is not None
              else None if coarse is None else coarse.draws(soc.shape, rng))
        shared = (bd, cf)
    soc_mean, mean, var = interval_mean(soc, preds, run.target, layers, conversion)
    return soc_mean, profile_stock_t_ha(soc, shared[0], layers, shared[1]), mean, var, shared


__all__ = ["AggregateError", "aggregate_zones", "layer_draws", "pixel_area_ha", "profile_draws"]
