"""The out-of-fold residuals a residual field is fitted on: an evaluation's ``predictions.csv`` (``sptgnn aggregate``)
or a just-fitted ensemble's calibration part (``sptgnn check-blocks``), as normal scores of PIT values at planar
coordinates (:class:`~sptgnn.accounting.residual_field.ResidualField`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sptgnn.accounting.aggregate import AggregateError
from sptgnn.accounting.residual_field import ResidualField, normal_scores


def read_residuals(predictions_csv: str | Path, model: str = "sptgnn") -> tuple[pd.DataFrame, Path]:
    """The rows of ``model`` with out-of-fold PIT values in an evaluation's ``predictions.csv`` (or its folder).

    Raises:
        AggregateError: The file is missing or not a predictions table, or it has no PIT values of ``model``.
    """
    path = Path(predictions_csv)
    if path.is_dir():
        path = path / "predictions.csv"
    if not path.is_file():
        raise AggregateError(f"{path} not found; give the predictions.csv (or folder) of `sptgnn evaluate` of this config")
    if any(part.endswith(".partial") for part in path.resolve().parts):
        raise AggregateError(f"{path} lies in an unfinished evaluation folder (.partial); give a finished one")
    try:
        frame = pd.read_csv(path)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise AggregateError(f"{path} is not a predictions.csv of `sptgnn evaluate` ({type(exc).__name__})") from None
    rows = frame[frame["model"] == model] if "model" in frame else frame.iloc[:0]
    if rows.empty or "pit" not in rows or rows["pit"].isna().all():
        raise AggregateError(f"{path} has no out-of-fold PIT values of model '{model}'; evaluate the run's config with "
                             "`sptgnn evaluate` first")
    return rows[rows["pit"].notna()], path


def residual_field_from_evaluation(predictions_csv: str | Path, model: str = "sptgnn") -> ResidualField:
    """The residual field of an evaluation folder's ``predictions.csv`` (``sptgnn evaluate``): the normal scores of
    ``model``'s out-of-fold PIT values at its samples' planar coordinates (``x``, ``y``, m). Check that they belong to
    the run with :func:`~sptgnn.accounting.provenance.check_residuals` on :func:`read_residuals`' rows.

    Raises:
        AggregateError: The file, the model's rows or their PIT values are missing.
    """
    rows, path = read_residuals(predictions_csv, model)
    return fit_residual_field(rows, path)


def fit_residual_field(rows: pd.DataFrame, source: str | Path, run=None) -> ResidualField:
    """The residual field of :func:`read_residuals`' rows: normal scores of their PIT values at ``x``, ``y`` (m).
    With ``run``, a run of profile layers whose samples the rows are (checked by
    :func:`~sptgnn.accounting.provenance.check_residuals`), the field is three-dimensional: each row's layer depth and
    site are the run's for its ``sample_id`` (mid depth, cm), and realisations are correlated along depth.

    Raises:
        AggregateError: The variogram cannot be fitted, or a row's sample is not the run's (the message names
            ``source``).
    """
    depth, sites = None, None
    if run is not None and run.depth is not None:
        lab = run.labelled
        pos = pd.Series(np.arange(len(lab)), index=lab.sample_ids.astype(str))
        ids = rows["sample_id"].astype(str)
        missing = ~ids.isin(pos.index)
        if missing.any():
            raise AggregateError(f"{source}: sample {ids[missing].iloc[0]} is not a layer of the run; give the "
                                 "predictions.csv of `sptgnn evaluate` of the run's own config")
        depth, sites = layer_depths_and_sites(lab, pos.loc[ids].to_numpy())
    try:
        return ResidualField.fit(rows[["x", "y"]].to_numpy(float), normal_scores(rows["pit"].to_numpy()),
                                 depth_cm=depth, sites=sites)
    except ValueError as exc:
        raise AggregateError(f"{source}: {exc}") from None


def layer_depths_and_sites(samples, rows) -> tuple[np.ndarray, np.ndarray]:
    """Mid depths (cm) and sites of the profile layers at positions ``rows`` of ``samples``, each ``(len(rows),)``
    (a layer without a site column is its own site): the coordinates a residual field of profile layers is fitted on."""
    sites = samples.sites() if samples.site else samples.sample_ids.astype(str)
    return samples.mid_depth_cm()[rows], sites[rows]


def residual_field_from_calibration(ensemble, xy_planar: np.ndarray) -> ResidualField:
    """The residual field of a just-fitted ensemble's calibration part: the normal scores of its calibrated PIT values
    there (predicted by twins that never saw them) at the training samples' planar coordinates ``xy_planar``
    ``(num_train, 2)``, m, in training-sample order; for profile layers with their mid depths and sites (a field
    correlated along depth). Kept in memory only, so for fits in this process.

    Raises:
        AggregateError: The ensemble has no calibration part (``calibration.method: none``) or was loaded from disk.
    """
    if ensemble.calibration_data is None or ensemble.calibrator is None:
        raise AggregateError("the ensemble has no calibration part in memory; fit it with calibration.method other "
                             "than none, or fit the residual field on `sptgnn evaluate` predictions")
    raw, y_cal = ensemble.calibration_data
    lab = ensemble.builder.labelled
    pos = {s: i for i, s in enumerate(lab.sample_ids)}
    rows = [pos[s] for s in ensemble.calibration_ids]
    xy = np.asarray(xy_planar, float)[rows]
    depth, sites = (None, None) if lab.depth is None else layer_depths_and_sites(lab, rows)
    return ResidualField.fit(xy, normal_scores(ensemble.calibrator.apply(raw).cdf(y_cal)), depth_cm=depth,
                             sites=sites)


__all__ = ["fit_residual_field", "layer_depths_and_sites", "read_residuals", "residual_field_from_calibration",
           "residual_field_from_evaluation"]
