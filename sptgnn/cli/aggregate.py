"""``sptgnn aggregate``: zone means and totals of SOC and its stock from correlated realisations (registered on the app
by :mod:`sptgnn.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sptgnn.cli.common import console, err_console, fail, user_errors
from sptgnn.progress import counter, progress_display


def aggregate(
    run: Path = typer.Argument(..., help="Run folder written by `sptgnn train` (primary target SOC in g/kg)."),
    raster: Optional[list[Path]] = typer.Option(None, "--raster", help="The run's covariate GeoTIFF(s), as for `sptgnn predict`; default: the run's data.rasters."),
    zones: Path = typer.Option(..., "--zones", help="Polygons (GeoPackage, shapefile) of the fields, strata or project areas."),
    residuals: Path = typer.Option(..., "--residuals", help="predictions.csv (or its folder) of `sptgnn evaluate` of the run's config: the out-of-fold residuals the residual field is fitted on and conditioned on."),
    out: Path = typer.Option(..., "--out", help="GeoPackage to write: the zones with SOC, stock and total columns; its folder must exist."),
    realisations: int = typer.Option(100, "--realisations", min=10, help="Spatially correlated realisations (quantiles need about 100)."),
    depth_cm: Optional[float] = typer.Option(None, "--depth-cm", help="Layer thickness in cm (0-30 cm topsoil: 30); default: the run's sampled layer (data.top_cm/bottom_cm), else an error."),
    depths: Optional[str] = typer.Option(None, "--depths", help="TOP-BOTTOM in cm, e.g. 0-30: with a run of profile layers, the stock of this interval summed over its standard layers (0-5, 5-15, 15-30 cm), each with its own SOC, bulk density and coarse fragments, from realisations correlated along depth; replaces --depth-cm."),
    conversion: Optional[str] = typer.Option(None, "--conversion", help="The run's target to SOC g/kg when it is not: soc_percent (x10), som_percent (x10 x 0.58, van Bemmelen) or som_g_kg (x0.58); stated in the output."),
    conservative_percentile: float = typer.Option(5.0, "--conservative-percentile", min=0.0, max=50.0, help="Percentile of the realisations reported as the conservative stock and change (VM0042 / VT0014 deduction); stated in the output."),
    bulk_density: float = typer.Option(1.3, "--bulk-density", help="Bulk density of the fine earth, g/cm3."),
    bulk_density_sd: float = typer.Option(0.1, "--bulk-density-sd", help="Its sd, g/cm3."),
    bulk_density_raster: Path = typer.Option(None, "--bulk-density-raster", help="GeoTIFF of bulk density (g/cm3, band 1) on the covariate grid; replaces --bulk-density pixel by pixel (--bulk-density-sd stays its sd)."),
    bulk_density_target: str = typer.Option(None, "--bulk-density-target", help="Bulk density from the run's multi-task head for this target of data.targets, drawn jointly with SOC (same member); replaces --bulk-density and the raster."),
    bulk_density_correlation: float = typer.Option(0.0, "--bulk-density-correlation", help="With --bulk-density-target: correlation of the SOC and bulk-density residuals, in [-1, 1]."),
    bulk_density_scale: float = typer.Option(1.0, "--bulk-density-scale", help="With --bulk-density-target: factor to g/cm3 (0.001 for kg/m3)."),
    coarse: float = typer.Option(0.0, "--coarse", help="Volume share of coarse fragments (0-1)."),
    coarse_sd: float = typer.Option(0.0, "--coarse-sd", help="Its sd."),
    coarse_target: str = typer.Option(None, "--coarse-target", help="With --depths: coarse fragments from the run's multi-task head for this target of data.targets, drawn jointly with SOC; replaces --coarse."),
    coarse_correlation: float = typer.Option(0.0, "--coarse-correlation", help="With --coarse-target: correlation of the SOC and coarse-fragment residuals, in [-1, 1]."),
    coarse_scale: float = typer.Option(0.01, "--coarse-scale", help="With --coarse-target: factor to a volume share (0.01 for %)."),
    window: int = typer.Option(256, "--window", min=16, help="Window size in pixels (memory is window^2 x realisations)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the realisations."),
    date: str = typer.Option(None, "--date", help="Sampling date YYYY-MM-DD of the map (time stream; default: the training mean year)."),
    baseline_run: Path = typer.Option(None, "--baseline-run", help="Run of the earlier state for the change since then (default: RUN, with --baseline-date)."),
    baseline_date: str = typer.Option(None, "--baseline-date", help="Date of the earlier state: adds the mean change per zone and its sd from shared realisations."),
    make_valid: bool = typer.Option(False, "--make-valid", help="Repair invalid (e.g. self-intersecting) zone polygons with make_valid instead of refusing them."),
    mean_raster: Optional[Path] = typer.Option(None, "--mean-raster", help="Also write the conditioned mean surface as a GeoTIFF on the covariate grid (SOC g/kg, stock t C/ha): the surface the zone means average, which differs from the map of `sptgnn predict` near the samples."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Zone means of SOC (g/kg), mean stock (t C/ha) and total stock (t C, t CO2e) with 5/50/95 % quantiles, sd,
    relative uncertainty and a conservative value from realisations (ensemble member x conditioned residual Gaussian
    random field), a project-total row, and the naive interval of independent pixels. Refuses inputs that cannot be
    shown to belong together (another dataset's residuals, SOM read as SOC, a change between two models of the same
    samples, an unknown layer depth); what was used is written into the GeoPackage (layer `provenance`)."""
    from contextlib import ExitStack

    import geopandas as gpd
    import pandas as pd

    from sptgnn.accounting.aggregate import AggregateError, aggregate_zones
    from sptgnn.accounting.inputs import check_plausible, read_zones
    from sptgnn.accounting.residuals import fit_residual_field, read_residuals
    from sptgnn.accounting.provenance import (check_change, check_residuals, depth_interval, layer_thickness,
                                              provenance_record, soc_conversion)
    from sptgnn.accounting.stocks import Property
    from sptgnn.atomic import atomic_file, check_new_file
    from sptgnn.estimator.run import load_run

    try:
        if out.suffix.lower() != ".gpkg":
            raise AggregateError(f"--out {out.name}: zone totals are written as a GeoPackage; name it .gpkg")
        check_new_file(out, overwrite)
        check_plausible(bulk_density, bulk_density_sd, coarse, coarse_sd, realisations, window)
        for name, value in (("--date", date), ("--baseline-date", baseline_date)):
            if value is not None:
                try:
                    pd.Timestamp(value)
                except ValueError:
                    raise AggregateError(f"{name} '{value}' is not a date; use YYYY-MM-DD") from None
        if bulk_density_raster is not None and not bulk_density_raster.is_file():
            raise AggregateError(f"bulk-density raster {bulk_density_raster} not found")
        if not zones.is_file():
            raise AggregateError(f"zones file {zones} not found")
        if mean_raster is not None and (mean_raster.suffix.lower() not in (".tif", ".tiff")
                                        or not mean_raster.parent.is_dir() or (mean_raster.exists() and not overwrite)):
            raise AggregateError(f"--mean-raster {mean_raster}: give a new .tif in an existing folder (or --overwrite)")
        model = load_run(run)  # every check before any progress output: a refusal is one line on stderr
        factor, conversion_note = conversion_used = soc_conversion(model, conversion)
        interval = None if depths is None else depth_interval(depths, depth_cm)
        thickness, depth_note = layer = layer_thickness(model, depth_cm, interval)
        rows, residual_path = read_residuals(residuals)
        residual_fp = check_residuals(rows, model, residual_path)
        field = fit_residual_field(rows, residual_path, model if interval is not None else None)
        baseline, change = None, None
        if baseline_run is not None or baseline_date is not None:
            base = model if baseline_run is None else load_run(baseline_run)
            change = check_change(model, base, date, baseline_date)
            baseline = (base, baseline_date)
        rasters = [Path(r) for r in raster] if raster else [Path(r.path) for r in model.config.data.rasters]
        if not rasters:
            raise AggregateError("the run records no data.rasters; give the covariate rasters with --raster")
        frame = read_zones(zones, make_valid)
        with ExitStack() as files:
            surface = None if mean_raster is None else files.enter_context(atomic_file(mean_raster, ".tif"))
            with progress_display(err_console) as bar:
                result = aggregate_zones(model, rasters, frame, field, realisations, thickness,
                                         Property(bulk_density, bulk_density_sd, low=0.05),
                                         Property(coarse, coarse_sd, high=1.0), window, seed, date, baseline,
                                         progress=counter(bar, f"windows of {window} px"),
                                         bulk_density_raster=bulk_density_raster,
                                         bulk_density_target=None if bulk_density_target is None else
                                         (bulk_density_target, bulk_density_correlation, bulk_density_scale),
                                         conversion=factor, conservative_percentile=conservative_percentile,
                                         mean_raster=surface, depths=interval,
                                         coarse_target=None if coarse_target is None else
                                         (coarse_target, coarse_correlation, coarse_scale))
            record = provenance_record(
                model, run, residual_fp, residual_path, len(rows), conversion_used, layer, change,
                bulk_density_g_cm3=bulk_density_raster or (f"head {bulk_density_target}" if bulk_density_target
                                                           else bulk_density),
                bulk_density_sd_g_cm3=bulk_density_sd,
                coarse_fraction=f"head {coarse_target} x {coarse_scale:g}" if coarse_target else coarse,
                coarse_fraction_sd=coarse_sd,
                residual_field=(f"exponential, nugget {field.nugget:.3f}, range {field.len_scale_m:,.0f} m"
                                + ("" if field.vertical_range_cm is None else
                                   f", along depth {field.vertical_range_cm:.1f} cm, site part "
                                   f"{field.site_var:.3f} of the nugget shared by a profile's layers")),
                realisations=realisations, seed=seed, conservative_percentile=conservative_percentile, date=date,
                rasters=", ".join(str(r) for r in rasters), mean_raster=mean_raster)
            with atomic_file(out, ".gpkg") as tmp:
                tmp.unlink()  # the GeoPackage driver creates the file itself
                result.to_file(tmp, driver="GPKG", layer="zone_totals", layer_metadata=record)
                gpd.GeoDataFrame(pd.DataFrame({"key": list(record), "value": list(record.values())})).to_file(
                    tmp, driver="GPKG", layer="provenance")
    except user_errors() as exc:
        fail(str(exc))
    from sptgnn.accounting.inputs import zone_name_column

    names = zone_name_column(frame.columns)
    p = f"q{conservative_percentile:g}"
    for i, row in result.iterrows():
        label = "project total" if row.zone_kind == "project" else (
            f"zone {row[names]}" if names else f"zone {i + 1}")
        console.print(f"{label}: SOC {row.soc_g_kg_mean:.3g} g/kg [{row.soc_g_kg_q05:.3g}-{row.soc_g_kg_q95:.3g}], "
                      f"stock {row.stock_t_c_mean:,.0f} t C [{row.stock_t_c_q05:,.0f}-{row.stock_t_c_q95:,.0f}], "
                      f"±{100 * row.stock_t_c_rel_uncertainty:.1f} %, conservative ({p}) {row.stock_t_c_conservative:,.0f} "
                      f"t C over {row.area_ha:,.1f} ha", highlight=False)
        if baseline is not None:
            console.print(f"        change {row.stock_change_t_c_mean:,.0f} t C = {row.stock_change_t_co2e_mean:,.0f} t CO2e "
                          f"(sd {row.stock_change_t_c_sd:,.0f} t C; {row.stock_change_t_c_sd_independent:,.0f} if the "
                          f"states were independent; conservative ({p}) {row.stock_change_t_co2e_conservative:,.0f} t CO2e)",
                          highlight=False)
    console.print(f"layer: {depth_note}; {conversion_note}", highlight=False)
    console.print(f"wrote {out} ({len(result) - 1} zones and the project total, {realisations} realisations; "
                  f"provenance in its layer 'provenance')" + (f" and the conditioned mean surface {mean_raster}"
                                                              if mean_raster else ""))


__all__ = ["aggregate"]
