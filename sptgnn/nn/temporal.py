"""Time stream: sampling year and cyclic day of year."""

from __future__ import annotations

from torch import Tensor, nn

from sptgnn.graph.features import TIME_FEATURES


class TemporalEncoder(nn.Module):
    """Linear map and GELU of ``[decades since reference year, sin(doy), cos(doy)]``.

    Args:
        out_dim: Embedding width.

    Shapes:
        input ``(num_nodes, 3)`` → output ``(num_nodes, out_dim)``.
    """

    def __init__(self, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(TIME_FEATURES, out_dim), nn.GELU())

    def forward(self, time: Tensor) -> Tensor:
        return self.net(time)
