"""``sptgnn harmonise``: a horizon table to standard depth intervals with equal-area splines (registered on the app by
:mod:`sptgnn.cli.app`)."""

from __future__ import annotations

from pathlib import Path

import typer

from sptgnn.cli.common import console, fail, parse_depths, user_errors


def harmonise_command(
    table: Path = typer.Argument(..., help="Horizon table (CSV, GeoPackage or Parquet): several rows per site."),
    out: Path = typer.Option(..., "--out", help="CSV file to write: one row per site, one column per value and interval."),
    site: str = typer.Option(..., "--site", help="Column of site (profile) ids."),
    top: str = typer.Option(..., "--top", help="Column of each horizon's top depth (cm)."),
    bottom: str = typer.Option(..., "--bottom", help="Column of each horizon's bottom depth (cm)."),
    value: list[str] = typer.Option(..., "--value", help="Column to harmonise, e.g. ORCDRC (repeatable)."),
    depths: str = typer.Option("0-5,5-15,15-30,30-60,60-100,100-200", "--depths", help="Standard intervals in cm (default GlobalSoilMap's six)."),
    lam: float = typer.Option(0.1, "--lambda", min=0.0, help="The spline's smoothing (0.1 as in Malone et al. 2009; 0 keeps every horizon mean)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Harmonise horizons to standard depth intervals with equal-area (mass-preserving) splines (Bishop et al. 1999):
    each interval's mean of each site's spline; NaN below a profile's deepest horizon, never extrapolated."""
    from sptgnn.atomic import atomic_file, check_new_file
    from sptgnn.data.spline import harmonise
    from sptgnn.data.tables import read_table

    intervals = parse_depths(depths)
    try:
        check_new_file(out, overwrite)
        if not table.is_file():
            raise FileNotFoundError(f"horizon table not found: {table}")
        frame = read_table(table, None)
        parts = [harmonise(frame, site, top, bottom, v, intervals, lam) for v in value]
        result = parts[0].join(parts[1:]) if len(parts) > 1 else parts[0]
        with atomic_file(out, ".csv") as tmp:
            result.to_csv(tmp)
    except user_errors() as exc:
        fail(str(exc))
    console.print(f"wrote {out}: {len(result)} sites × {len(result.columns)} columns "
                  f"({', '.join(value)} at {len(intervals)} intervals)")


__all__ = ["harmonise_command"]
