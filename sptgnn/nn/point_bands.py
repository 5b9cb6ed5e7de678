"""The model-side MLP over per-point band values (LimeSoDa's Sentinel-2 columns, or chip features after
standardisation); it is trained with the rest of SpTGNN."""

from __future__ import annotations

from torch import Tensor, nn

from sptgnn.nn.mlp import MLP


class PointBandEncoder(nn.Module):
    """MLP over per-point band values.

    Args:
        in_dim: Number of bands / indices.
        out_dim: Embedding width.
        dropout: Hidden dropout.

    Shapes:
        input ``(num_nodes, in_dim)`` standardised reflectances → output ``(num_nodes, out_dim)``.
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.net = MLP(in_dim, out_dim, out_dim, layers=2, dropout=dropout)

    def forward(self, bands: Tensor) -> Tensor:
        return self.net(bands)


__all__ = ["PointBandEncoder"]
