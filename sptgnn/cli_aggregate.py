"""``sptgnn aggregate``: zone means and totals of SOC and its stock from correlated realisations (registered on the app
by :mod:`sptgnn.cli`)."""

from __future__ import annotations

from pathlib import Path

import typer

from sptgnn.cli_common import USER_ERRORS, console, err_console, fail
from sptgnn.progress import counter, progress_display


def aggregate(
    run: Path = typer.Argument(..., help="Run folder written by `sptgnn train` (primary target SOC in g/kg)."),
    raster: list[Path] = typer.Option(..., "--raster", help="The run's covariate GeoTIFF(s), as for `sptgnn predict`."),
    zones: Path = typer.Option(..., "--zones", help="Polygons (GeoPackage, shapefile) of the fields, strata or project areas."),
    residuals: Path = typer.Option(..., "--residuals", help="predictions.csv (or its folder) of `sptgnn evaluate` of the run's config: the out-of-fold residuals the residual field is fitted on and conditioned on."),
    out: Path = typer.Option(..., "--out", help="GeoPackage to write: the zones with SOC, stock and total columns; its folder must exist."),
    realisations: int = typer.Option(100, "--realisations", min=10, help="Spatially correlated realisations (quantiles need about 100)."),
    depth_cm: float = typer.Option(30.0, "--depth-cm", help="Layer thickness in cm (0-30 cm topsoil: 30)."),
    bulk_density: float = typer.Option(1.3, "--bulk-density", help="Bulk density of the fine earth, g/cm3."),
    bulk_density_sd: float = typer.Option(0.1, "--bulk-density-sd", help="Its sd, g/cm3."),
    bulk_density_raster: Path = typer.Option(None, "--bulk-density-raster", help="GeoTIFF of bulk density (g/cm3, band 1) on the covariate grid; replaces --bulk-density pixel by pixel (--bulk-density-sd stays its sd)."),
    bulk_density_target: str = typer.Option(None, "--bulk-density-target", help="Bulk density from the run's multi-task head for this target of data.targets, drawn jointly with SOC (same member); replaces --bulk-density and the raster."),
    bulk_density_correlation: float = typer.Option(0.0, "--bulk-density-correlation", help="With --bulk-density-target: correlation of the SOC and bulk-density residuals, in [-1, 1]."),
    bulk_density_scale: float = typer.Option(1.0, "--bulk-density-scale", help="With --bulk-density-target: factor to g/cm3 (0.001 for kg/m3)."),
    coarse: float = typer.Option(0.0, "--coarse", help="Volume share of coarse fragments (0-1)."),
    coarse_sd: float = typer.Option(0.0, "--coarse-sd", help="Its sd."),
    window: int = typer.Option(256, "--window", min=16, help="Window size in pixels (memory is window^2 x realisations)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the realisations."),
    date: str = typer.Option(None, "--date", help="Sampling date YYYY-MM-DD of the map (time stream; default: the training mean year)."),
    baseline_run: Path = typer.Option(None, "--baseline-run", help="Run of the earlier state for the change since then (default: RUN, with --baseline-date)."),
    baseline_date: str = typer.Option(None, "--baseline-date", help="Date of the earlier state: adds the mean change per zone and its sd from shared realisations."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Zone means of SOC (g/kg), mean stock (t C/ha) and total stock (t C, t CO2e) with 5/50/95 % quantiles from
    realisations (ensemble member x conditioned residual Gaussian random field), beside the naive interval of
    independent pixels."""
    import geopandas as gpd
    import pandas as pd

    from sptgnn.accounting.aggregate import AggregateError, aggregate_zones, residual_field_from_evaluation
    from sptgnn.accounting.stocks import Property
    from sptgnn.atomic import atomic_file
    from sptgnn.estimator.run import RunError, load_run

    try:
        if out.suffix.lower() != ".gpkg":
            raise AggregateError(f"--out {out.name}: zone totals are written as a GeoPackage; name it .gpkg")
        if out.exists() and not overwrite:
            raise AggregateError(f"{out} already exists; remove it, choose another --out or give --overwrite")
        if not out.parent.is_dir():
            raise AggregateError(f"output folder {out.parent} does not exist; create it first")
        if not 0 <= coarse <= 1:
            raise AggregateError(f"--coarse {coarse}: coarse fragments are a volume share in [0, 1]")
        if depth_cm <= 0 or bulk_density <= 0:
            raise AggregateError("--depth-cm and --bulk-density must be positive")
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
        model = load_run(run)
        field = residual_field_from_evaluation(residuals)
        baseline = None
        if baseline_run is not None or baseline_date is not None:
            baseline = (model if baseline_run is None else load_run(baseline_run), baseline_date)
        frame = gpd.read_file(zones)
        with progress_display(err_console) as bar:
            result = aggregate_zones(model, raster, frame, field, realisations, depth_cm,
                                     Property(bulk_density, bulk_density_sd, low=0.05),
                                     Property(coarse, coarse_sd, high=1.0), window, seed, date, baseline,
                                     progress=counter(bar, f"windows of {window} px"),
                                     bulk_density_raster=bulk_density_raster,
                                     bulk_density_target=None if bulk_density_target is None else
                                     (bulk_density_target, bulk_density_correlation, bulk_density_scale))
        with atomic_file(out, ".gpkg") as tmp:
            tmp.unlink()  # the GeoPackage driver creates the file itself
            result.to_file(tmp, driver="GPKG", layer="zone_totals")
    except USER_ERRORS + (AggregateError, RunError) as exc:
        fail(str(exc))
    for i, row in result.iterrows():
        console.print(f"zone {i + 1}: SOC {row.soc_g_kg_mean:.3g} g/kg [{row.soc_g_kg_q05:.3g}-{row.soc_g_kg_q95:.3g}], "
                      f"stock {row.stock_t_c_mean:,.0f} t C [{row.stock_t_c_q05:,.0f}-{row.stock_t_c_q95:,.0f}] over "
                      f"{row.area_ha:,.1f} ha", highlight=False)
        if baseline is not None:
            console.print(f"        change {row.stock_change_t_c_mean:,.0f} t C (sd {row.stock_change_t_c_sd:,.0f}; "
                          f"{row.stock_change_t_c_sd_independent:,.0f} if the states were independent)", highlight=False)
    console.print(f"wrote {out} ({len(result)} zones, {realisations} realisations)")


__all__ = ["aggregate"]
