"""``sptgnn pretrain``: masked-reconstruction pre-training of the stream encoders on the unlabelled cells of a config's
covariates (registered on the app by :mod:`sptgnn.cli.app`)."""

from __future__ import annotations

from pathlib import Path

import typer

from sptgnn.cli.common import console, err_console, fail, user_errors
from sptgnn.progress import counter, progress_display


def pretrain(
    config: Path = typer.Argument(..., help="YAML config with data.rasters (or the afsp-africa dataset): its model and pretrain sections."),
    out: Path = typer.Option(..., "--out", help="Checkpoint folder to write (must not exist); give it as model.pretrained."),
    max_cells: int = typer.Option(None, "--max-cells", min=100, help="Override pretrain.max_cells (a seeded sample of the valid cells)."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Override pretrain.epochs."),
) -> None:
    """Pre-train the imagery and environment encoders by masked reconstruction (random bands and whole
    neighbourhoods hidden; STCLN, Qin et al. 2025) on every valid cell of the covariates. No label is read."""
    from sptgnn.atomic import check_new_folder
    from sptgnn.config import load_config
    from sptgnn.pretrain import config_cells, save_pretrained
    from sptgnn.pretrain.trainer import pretrain_cells

    try:
        check_new_folder(out)
        overrides = {"pretrain": {k: v for k, v in (("max_cells", max_cells), ("epochs", epochs)) if v is not None}}
        cfg = load_config(config, overrides)
        with progress_display(err_console) as bar:
            cells = config_cells(cfg, counter(bar, "reading cells (windows)"))
            result = pretrain_cells(cells, cfg, counter(bar, f"pre-training on {len(cells):,} cells (epochs)"))
        save_pretrained(result, cfg, out)
    except user_errors() as exc:
        fail(str(exc))
    h = result.history[-1]
    console.print(f"{result.cells:,} cells, {len(result.history)} epochs in {result.seconds:.0f} s (peak RSS "
                  f"{result.peak_rss_mb:,.0f} MB): masked-value RMSE {h['val_rmse']:.3f} sd on held-out cells "
                  f"(mean fill {result.val_rmse_mean_fill:.3f})")
    console.print(f"wrote {out}; fine-tune with model.pretrained: {out}")
