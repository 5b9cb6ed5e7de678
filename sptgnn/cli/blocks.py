"""``sptgnn check-blocks``: the block-mean coverage check of an evaluation's config, for the validation report
(registered on the app by :mod:`sptgnn.cli.app`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from sptgnn.cli.common import console, err_console, fail, user_errors
from sptgnn.progress import counter, progress_display


def check_blocks(
    evaluation: Path = typer.Argument(..., help="Evaluation folder of `sptgnn evaluate` (its config.yaml and samples are checked)."),
    out: Path = typer.Option(..., "--out", help="JSON file to write (then `sptgnn report ... --block-means FILE`); its folder must exist."),
    folds: int = typer.Option(5, "--folds", min=2, help="Outer folds of whole blocks."),
    block_samples: float = typer.Option(5.0, "--block-samples", min=1.0, help="Block side chosen for about this many samples a block."),
    block_km: Optional[float] = typer.Option(None, "--block-km", min=0.0, help="Block side in km instead (e.g. 100 for Africa)."),
    members: Optional[int] = typer.Option(None, "--members", min=1, help="Override train.members."),
    realisations: int = typer.Option(200, "--realisations", min=20, max=5000, help="Realisations per block."),
    min_samples: int = typer.Option(3, "--min-samples", min=1, help="Blocks with fewer test samples are not scored."),
    seed: int = typer.Option(0, "--seed", help="Seed of the blocks' folds and the realisations."),
    depths: Optional[str] = typer.Option(None, "--depths", help="TOP-BOTTOM in cm, e.g. 0-30, for profile layers: block means of the interval's thickness-weighted mean SOC (sites' equal-area splines against realisations correlated along depth); --block-samples and --min-samples then count sites."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Do the 90 % intervals of block means cover the observed block means? A spatially blocked CV of the evaluation's
    config: each fold's run gives realisations at the held-out blocks' samples (target: 85-95 % coverage)."""
    from sptgnn.accounting.block_means import check_block_means, check_profile_block_means
    from sptgnn.accounting.provenance import depth_interval
    from sptgnn.atomic import atomic_file, check_new_file
    from sptgnn.config import load_config
    from sptgnn.data.samples import samples_fingerprint
    from sptgnn.data.tables import load_samples
    from sptgnn.evaluate.html_report import ReportError, fingerprint, read_predictions

    try:
        check_new_file(out, overwrite)
        if not (evaluation / "config.yaml").is_file():
            raise ReportError(f"{evaluation} is not an evaluation folder of `sptgnn evaluate` (no config.yaml)")
        cfg = load_config(evaluation / "config.yaml", {"train": {"members": members}} if members else None)
        samples = load_samples(cfg.data)
        expected = fingerprint(read_predictions(evaluation))
        if samples_fingerprint(samples.sample_ids, samples.target(cfg.data.target)) != expected:
            raise ReportError(f"the samples of {evaluation / 'config.yaml'} are no longer those the evaluation scored "
                              f"(fingerprint differs); evaluate again")
        interval = None if depths is None else depth_interval(depths)
        with progress_display(err_console) as bar:
            if interval is None:
                result = check_block_means(cfg, samples, folds, block_samples, block_km, realisations, min_samples,
                                           seed, progress=counter(bar, "outer folds"))
            else:
                result = check_profile_block_means(cfg, samples, interval, folds, block_samples, block_km,
                                                   realisations, min_samples, seed, progress=counter(bar, "outer folds"))
        result["evaluation"], result["evaluation_fingerprint"] = str(evaluation), expected
        result["command"] = (f"sptgnn check-blocks {evaluation} --out {out} --folds {folds} --seed {seed}"
                             + (f" --block-km {block_km:g}" if block_km else f" --block-samples {block_samples:g}")
                             + (f" --members {members}" if members else "") + f" --realisations {realisations}"
                             + (f" --depths {depths}" if depths else ""))
        with atomic_file(out, ".json") as tmp:
            tmp.write_text(json.dumps(result, indent=2))
    except user_errors(ValueError) as exc:
        fail(str(exc))
    console.print(f"90 % intervals of block means cover {100 * result['coverage_90_realisations']:.0f} % of "
                  f"{result['blocks_scored']} blocks (naive independent points: {100 * result['coverage_90_naive']:.0f} %); "
                  f"wrote {out}", highlight=False)


__all__ = ["check_blocks"]
