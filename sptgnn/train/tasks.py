"""Multi-task learning (``data.targets``): the auxiliary targets' standardisation and their part of the loss.

Each auxiliary target (pH, clay, bulk density, …) has its own heteroscedastic head over the shared streams, MoE and
attention (:class:`~sptgnn.nn.model.SpTGNN` ``num_aux``), is standardised on its own (no log), and is masked at the
nodes where it was not measured, for that node only. Its Gaussian NLL joins the primary's loss with a fixed weight or a
learned homoscedastic weight (Kendall, Gal & Cipolla 2018; :func:`sptgnn.losses.multitask_loss`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sptgnn.config import Config
from sptgnn.data.samples import SoilSamples
from sptgnn.losses import masked_gaussian_nll, multitask_loss
from sptgnn.nn.model import SpTGNN
from sptgnn.train.checks import aux_target_values
from sptgnn.train.target import TargetTransform


def fit_aux_targets(samples: SoilSamples, names: list[str]) -> tuple[list[TargetTransform], torch.Tensor | None]:
    """The standardisation of each auxiliary target, fitted where it is present, and the standardised values
    ``(num_samples, len(names))`` with NaN where a sample lacks one (``None`` without auxiliary targets).

    Raises:
        SamplesError: An auxiliary target is missing, infinite or too rarely present (:func:`aux_target_values`).
    """
    if not names:
        return [], None
    values = aux_target_values(samples, names)
    transforms = [TargetTransform("none").fit(v[np.isfinite(v)]) for v in values.T]
    z = np.stack([t.transform(np.where(np.isfinite(v), v, 0.0)) for t, v in zip(transforms, values.T)], 1)
    return transforms, torch.tensor(np.where(np.isfinite(values), z, np.nan), dtype=torch.float32)


def aux_loss(config: Config, model: SpTGNN, out, nodes: torch.Tensor, aux: torch.Tensor | None,
              aux_y: torch.Tensor | None = None) -> torch.Tensor:
    """The auxiliary targets' part of the loss at ``nodes`` (an index or mask into the output), 0 without them:
    per-target Gaussian NLL where the target is present (:func:`~sptgnn.losses.masked_gaussian_nll`), weighted by
    ``loss.task_weighting``. ``aux_y`` (the targets of ``nodes``) defaults to ``aux[nodes]``."""
    if aux is None or out.aux_mean is None:
        return out.mean.new_zeros(())
    y = aux[nodes] if aux_y is None else aux_y
    per_task = masked_gaussian_nll(y, out.aux_mean[nodes], out.aux_var[nodes])
    lc = config.loss
    weights = None if lc.task_weights is None else torch.tensor(lc.task_weights, dtype=per_task.dtype)
    floors = torch.full_like(per_task, 0.5 * math.log(2 * math.pi * config.model.var_floor))
    return multitask_loss(per_task, lc.task_weighting, model.task_log_vars, weights, floors)


__all__ = ["aux_loss", "fit_aux_targets"]
