"""The fine-tuned location encoder of the ``location_fm`` stream (``model.location_fm.finetune_lr_scale > 0``)."""

from __future__ import annotations

import copy

from torch import Tensor, nn

from sptgnn.imagery.location import GEOCLIP_DIM, geoclip_encoder
from sptgnn.nn.mlp import MLP


class FineTunedLocationEncoder(nn.Module):
    """GeoCLIP's pre-trained location encoder (Vivanco Cepeda et al. 2023), a copy per member that trains at
    ``train.lr × model.location_fm.finetune_lr_scale``, then a LayerNorm and a two-layer MLP to the hidden width.

    The random Fourier matrices of its three scales stay fixed (they are frequencies, not weights); its MLPs train.

    Args:
        out_dim: Hidden width ``d``.
        dropout: Dropout of the MLP.

    Shapes:
        ``(num_nodes, 2)`` latitude, longitude in degrees → ``(num_nodes, out_dim)``.
    """

    def __init__(self, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.backbone = copy.deepcopy(geoclip_encoder())
        for name, p in self.backbone.named_parameters():
            p.requires_grad_(not name.endswith(".b"))
        self.norm = nn.LayerNorm(GEOCLIP_DIM)
        self.mlp = MLP(GEOCLIP_DIM, out_dim, out_dim, layers=2, dropout=dropout)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The pre-trained parameters that train (the optimiser's scaled group)."""
        return [p for p in self.backbone.parameters() if p.requires_grad]

    def forward(self, latlon: Tensor) -> Tensor:  # noqa: D102 - shapes in the class docstring
        return self.mlp(self.norm(self.backbone(latlon)))


__all__ = ["FineTunedLocationEncoder"]
