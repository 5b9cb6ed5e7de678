"""A small multi-layer perceptron used by stream encoders, experts and heads."""

from __future__ import annotations

from torch import Tensor, nn


class MLP(nn.Sequential):
    """Linear → GELU → Dropout blocks, last layer linear.

    Args:
        in_dim: Input features.
        hidden: Hidden width.
        out_dim: Output features.
        layers: Number of linear layers (``>= 1``).
        dropout: Dropout after each hidden activation.

    Shapes:
        input ``(num_nodes, in_dim)`` → output ``(num_nodes, out_dim)``.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int = 2, dropout: float = 0.0):
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        mods: list[nn.Module] = []
        for i in range(layers):
            mods.append(nn.Linear(dims[i], dims[i + 1]))
            if i < layers - 1:
                mods += [nn.GELU(), nn.Dropout(dropout)]
        super().__init__(*mods)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102 - nn.Sequential contract
        return super().forward(x)
