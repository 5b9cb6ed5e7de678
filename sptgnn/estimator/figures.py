"""Uncertainty figures of a run's calibration part, written with the run folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sptgnn.scores.figures import uncertainty_figures
from sptgnn.scores.metrics import distribution_columns


def calibration_part_figures(ensemble, folder: Path) -> list[Path]:
    """Uncertainty figures (calibration curve, PICP, sharpness, predicted vs observed; PNG) of the calibration part,
    predicted by the members' twins, which never trained on it. ``sptgnn_uncalibrated`` is out-of-sample there;
    ``sptgnn`` is in-sample for the calibrator, so it shows the fit, not a test (cross-validate for that).

    Args:
        ensemble: A fitted :class:`~sptgnn.train.ensemble.DeepEnsemble` with ``calibration_data``.
        folder: Existing folder to write the PNG files into.
    """
    raw, y = ensemble.calibration_data
    frames = []
    for name, pred in (("sptgnn", ensemble.calibrator.apply(raw)), ("sptgnn_uncalibrated", raw)):
        frame = pd.DataFrame({"sample_id": ensemble.calibration_ids, "model": name, "y_true": y, "mean": pred.mean,
                              "sd": pred.sd, "aleatoric_sd": pred.aleatoric_sd, "epistemic_sd": pred.epistemic_sd})
        frames.append(frame.assign(**distribution_columns(y, pred)))
    return uncertainty_figures(pd.concat(frames, ignore_index=True), folder)


__all__ = ["calibration_part_figures"]
