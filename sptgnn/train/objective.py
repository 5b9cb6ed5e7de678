"""The parts of one member's training objective that depend on the config: the per-node loss, the early-stopping
score and the soft-target weight of the teacher."""

from __future__ import annotations

import torch

from sptgnn.config import Config
from sptgnn.losses import beta_nll, gaussian_nll


def objective(config: Config, epoch: int, y, mean, var) -> torch.Tensor:
    """The configured per-node objective (``loss.kind``) of the scored nodes, ``(n,)`` tensors → scalar."""
    loss = config.loss
    if loss.kind == "mse_warmup" and epoch < loss.warmup_epochs:
        return ((y - mean) ** 2).mean()
    if loss.kind == "beta_nll":
        return beta_nll(y, mean, var, loss.beta)
    return gaussian_nll(y, mean, var)


def teacher_weight(config: Config, epoch: int) -> float:
    """The soft-target weight at ``epoch``: ``loss.teacher_weight``, annealed linearly to 0 over
    ``loss.teacher_anneal_epochs`` when set."""
    lc = config.loss
    if lc.teacher_anneal_epochs is None:
        return lc.teacher_weight
    return lc.teacher_weight * max(0.0, 1.0 - epoch / lc.teacher_anneal_epochs)


def validation_score(config: Config, y, mean, var) -> float:
    """The early-stopping score of the validation nodes (``train.monitor``): RMSE or Gaussian NLL."""
    if config.train.monitor == "nll":
        return float(gaussian_nll(y, mean, var))
    return float(((y - mean) ** 2).mean().sqrt())


__all__ = ["objective", "teacher_weight", "validation_score"]
