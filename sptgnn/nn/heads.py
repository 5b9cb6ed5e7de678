"""Heteroscedastic regression head: mean and variance per node (Nix & Weigend 1994; Kendall & Gal 2017)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from sptgnn.nn.mlp import MLP


class HeteroscedasticHead(nn.Module):
    """Predicts a Gaussian ``N(mean, var)`` per node in standardised target space; ``var = softplus(s) + floor``.

    Args:
        dim: Hidden width.
        var_floor: Lower bound of the variance (standardised units²), keeps the NLL finite.
        dropout: Hidden dropout.

    Shapes:
        input ``(num_nodes, dim)`` → ``mean`` ``(num_nodes,)``, ``var`` ``(num_nodes,)``.
    """

    def __init__(self, dim: int, var_floor: float = 1e-4, dropout: float = 0.0):
        super().__init__()
        self.net = MLP(dim, dim, 2, layers=2, dropout=dropout)
        self.var_floor = var_floor

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(h)
        return out[:, 0], F.softplus(out[:, 1]) + self.var_floor
